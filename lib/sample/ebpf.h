/* ebpf.h - `record --ebpf`: Python stacks walked in the kernel.
 *
 * A BPF program (sample/bpf/pystack.bpf.c) runs on a software cpu-clock
 * perf event of every CPU, so it fires only where and while a thread runs:
 * each run is one sample of on-CPU time, exactly, and nobody in the target
 * is woken, stopped or read from user space per sample. For a thread of a
 * watched process it walks the Python frames in the thread's own context
 * and counts each (thread, stack of (code object, instruction) pairs) in a
 * hash map (or, when that is full, writes the pairs to a ring buffer); this
 * side reads the counts about once a second and drains the ring a few times
 * a second, resolves code objects once each with
 * the walker's caches (python/python.h hm_python_resolve) and adds the
 * stacks through the one sampling loop (sample/sampler.h, opts.ebpf), as
 * the user-space reads do. It also reads the thread's current
 * OpenTelemetry span at sample time (sample/bpf/otelspan.bpf.h), unless
 * tracing is off (hm_python_set_trace, --no-trace).
 *
 * Needs root (or CAP_BPF + CAP_PERFMON) and a kernel with BPF ring
 * buffers (5.8+); hm_ebpf_open says in one line why not, and the loop then
 * samples from user space. */
#ifndef HOMURA_SAMPLE_EBPF_H
#define HOMURA_SAMPLE_EBPF_H

#include "base/profile.h"
#include "native/native.h"
#include "proc/target.h"
#include "python/python.h"

/* 1 if this build has the in-kernel sampler. */
int hm_ebpf_built(void);

/* ---- a session: one BPF program for any number of processes ---- */

typedef struct hm_ebpf hm_ebpf;

/* count resolved samples of one stack: a thread of a watched process
 * (th->tid the host tid, th's frames leaf first), weight_ns of on-CPU time
 * in all (the kernel's runtime of the thread since each sample's previous
 * one, hm_ebpf_counts.cpu_from_kernel; else count periods), the latest at
 * t_ns (unix time); with kernel stacks on, the nk kernel frames (symbol
 * names, leaf first) it interrupted, else nk 0. */
typedef void (*hm_ebpf_sample_fn)(void *arg, void *owner, const hm_pythread *th, int64_t count,
				  int64_t weight_ns, uint64_t t_ns, const char *const *kframes,
				  int nk);

typedef struct hm_ebpf_counts {
	uint64_t samples;        /* resolved and delivered */
	uint64_t invalid;        /* torn walks or frames that failed checks */
	uint64_t no_python;      /* on-CPU in a watched process without Python
				  * running (no thread state, or no frame) */
	uint64_t runs, run_ns;   /* the kernel's count and run time of the
				  * program, on every CPU, for any task */
	uint64_t matched;        /* runs that found a watched process */
	uint64_t dropped;        /* events lost to a full ring buffer */
	/* --native (hm_ebpf_open_native): */
	uint64_t native_joined;  /* records joined with their perf sample */
	uint64_t native_unjoined; /* records whose perf sample never came:
				  * delivered with Python frames only */
	uint64_t native_lost;    /* perf samples lost (full perf ring) or
				  * without a record */
	uint64_t aggregated;     /* samples counted in the kernel's per-stack map */
	uint64_t agg_full;       /* samples sent to the ring as that map was full */
	uint64_t agg_entries;    /* its entries read (stacks per period) */
	uint64_t new_stacks;     /* stacks sent at their first count in a
				  * process (HM_BPF_NEW_STACK), whose code
				  * objects were read at once */
	uint64_t root_scans;     /* traces whose local root span was looked for
				  * among a thread's locals (first samples) */
	uint64_t roots_found;    /* ... and found there */
	uint64_t roots_at_frame; /* ... of them, at the frame the kernel named
				  * (hm_bpf_event.root_frame) */
	uint64_t roots_in_kernel; /* roots the BPF program read itself there
				  * (hm_bpf_event.root): no look */
	uint64_t root_scan_ns;   /* the time those looks took */
	int cpu_from_kernel;     /* 1: each sample's CPU time is the thread's
				  * runtime since its previous sample, as the
				  * kernel accounts it; 0: the period (the
				  * kernel's BTF does not say where it is) */
} hm_ebpf_counts;

/* Load the program and attach it to a cpu-clock event of every CPU at
 * rate_hz; kernel_stacks: samples taken in kernel mode carry the kernel
 * stack (symbols from /proc/kallsyms). HM_EPERM/HM_ESYS with a one-line
 * reason where BPF is refused. */
int hm_ebpf_open(double rate_hz, int kernel_stacks, hm_ebpf **out);
/* Sample process pid (its interpreter py stays owned by the caller and must
 * outlive the watch); owner is passed back with its samples. HM_EVERSION
 * for interpreters the in-kernel walker cannot walk (before 3.8). */
int hm_ebpf_watch(hm_ebpf *e, pid_t pid, hm_python *py, void *owner);
void hm_ebpf_unwatch(hm_ebpf *e, pid_t pid);
/* Wait up to timeout_ms for samples, deliver them, and refresh what the
 * kernel side needs (thread states) where due. The per-stack counts kept in
 * the kernel are read about once a second; timeout_ms < 0: no wait, and
 * everything now (at the end). Returns samples delivered or < 0 on error. */
int hm_ebpf_poll(hm_ebpf *e, int timeout_ms, hm_ebpf_sample_fn fn, void *arg);
void hm_ebpf_counts_get(hm_ebpf *e, hm_ebpf_counts *c);
/* The end of sampling (after the last hm_ebpf_poll): the CPU time each
 * thread ran after its latest sample (its schedstat now, less its runtime
 * at the latest sample the kernel took) goes to that sample's stack, as
 * samples of count 0, so that a thread sampled rarely keeps its time.
 * Only with the kernel's runtime weights, not with --native. */
void hm_ebpf_finish(hm_ebpf *e, hm_ebpf_sample_fn fn, void *arg);
/* How long the loop may sleep between polls when only the kernel samples:
 * 50 ms when every sample goes through the ring buffer, up to 200 ms when
 * the kernel counts them per stack (the ring then carries only what does
 * not fit, and wakes the loop early when it fills up), less when the counts
 * are due: 50 ms after a process is watched, then twice as long each time
 * up to a second. */
int hm_ebpf_wake_ms(const hm_ebpf *e);
/* counts.invalid alone, without asking the kernel (for every poll). */
uint64_t hm_ebpf_invalid(const hm_ebpf *e);
void hm_ebpf_close(hm_ebpf *e);

/* ---- native frames without stopping anyone (record --ebpf --native) ----
 *
 * The same perf events also carry, for each record of a process watched
 * with hm_ebpf_watch_native, the thread's user registers and a copy of the
 * top of its user stack (PERF_SAMPLE_REGS_USER, PERF_SAMPLE_STACK_USER,
 * stack_bytes of it): the BPF program lets the event write its sample only
 * then. Each record is joined with the perf sample of the same interrupt
 * (same tid, same CLOCK_MONOTONIC instant within a few microseconds), the
 * native stack is unwound from the copy after the fact
 * (hm_native_unwind_copy) and both are handed to nfn together; a record
 * whose perf sample does not come (lost, unwatched) is handed over with
 * ns NULL. The thread is never stopped or read while it runs on. x86-64
 * only. */
typedef void (*hm_ebpf_native_fn)(void *arg, void *owner, const hm_pythread *th,
				  const hm_natstack *ns, int64_t weight_ns, uint64_t t_ns,
				  const char *const *kframes, int nk);
#define HM_EBPF_STACK_BYTES 16384    /* default copy of the user stack */
int hm_ebpf_open_native(double rate_hz, int kernel_stacks, int stack_bytes, hm_ebpf_native_fn nfn,
			hm_ebpf **out);
/* Unwind pid's samples with nat (opened by the caller for its target, kept
 * alive while watched). Call after hm_ebpf_watch. */
int hm_ebpf_watch_native(hm_ebpf *e, pid_t pid, hm_native *nat);

#endif
