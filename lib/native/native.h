/* native.h - native (C/C++/Cython) stacks of a target's threads, merged
 * into their Python stacks (--native).
 *
 * A hm_native is one libdwfl session per target: the modules mapped by the
 * process (re-read when /proc/PID/maps changes, e.g. after dlopen), CFI-based
 * unwinding through our own memory reader (process_vm_readv, page-cached per
 * unwind) and a bounded LRU cache from program counter to symbol name, source
 * file and line.
 *
 * Unwinding a thread needs its registers, so the thread must be stopped:
 * hm_native_sample seizes and interrupts (ptrace) exactly the threads it is
 * about to unwind, reads their Python stacks while they stand still, unwinds
 * each and detaches it again right after its own unwind. Symbols are looked
 * up after the thread is running again. No thread is ever left stopped: every
 * error path detaches, a thread that does not stop in time is detached as soon
 * as it does, and the kernel detaches all of them if homura dies.
 * hm_native_unwind_copy stops nothing: it unwinds from registers and a copy
 * of the top of the stack that the kernel took at one instant (record
 * --ebpf --native, sample/ebpf.c).
 *
 * Merging (hm_native_merge): walking the native stack leaf to root, each
 * frame of the evaluation loop (_PyEval_EvalFrameDefault; PyEval_EvalFrameEx
 * on 2.7) is replaced by the Python frames it runs - exactly one per call on
 * <=3.10, a run ending at the frame flagged hm_pyframe.entry on 3.11+. The
 * interpreter's call plumbing (vectorcall trampolines, _PyEval_Vector,
 * function_code_fastcall, ...) is dropped, and so is everything root-ward of
 * the outermost Python frame (interpreter start-up, thread bootstrap). */
#ifndef HOMURA_NATIVE_H
#define HOMURA_NATIVE_H

#include <stdint.h>
#include <sys/types.h>

#include "base/profile.h"
#include "proc/target.h"
#include "python/python.h"

typedef struct hm_native hm_native;

enum hm_natrole {
	HM_NAT_PLAIN = 0,        /* ordinary native code: shown */
	HM_NAT_EVAL = 1,         /* the evaluation loop: replaced by Python frames */
	HM_NAT_PLUMBING = 2,     /* interpreter call plumbing: hidden */
};

/* A resolved program counter (one cache entry). Valid until the next
 * hm_native_sample / hm_native_unwind call on the same hm_native. */
typedef struct hm_natsym {
	uint64_t pc;             /* the address looked up (return address - 1
				  * for caller frames) */
	const char *name;        /* symbol, demangled when C++; "[module]" if
				  * the module has no symbol there */
	const char *file;        /* source file from DWARF, else the module's
				  * basename, else NULL */
	int32_t line;            /* 0 if unknown */
	const char *module;      /* basename of the module, "" if none */
	int role;                /* enum hm_natrole */
	uint32_t user, user2, user_gen;   /* free for the caller (interned ids) */
} hm_natsym;

enum hm_natstate {
	HM_NATSTACK_SKIP = 0,    /* thread not sampled (not on CPU, gone) */
	HM_NATSTACK_OK = 1,      /* frames hold the native stack */
	HM_NATSTACK_FAILED = 2,  /* could not stop or unwind: use Python only */
};

typedef struct hm_natstack {
	pid_t tid;
	int state;               /* enum hm_natstate */
	int nframes, cap;
	const hm_natsym **frames;   /* leaf first */
	uint64_t *pcs;           /* raw pcs (internal) */
	int pcs_cap;
	int complete;            /* the unwind reached the thread's first frame
				  * (_start, clone): no Python frame can lie
				  * beyond it */
} hm_natstack;

/* Native stacks parallel to a hm_pysample: stacks[i] belongs to threads[i]. */
typedef struct hm_natsample {
	int nstacks, cap;
	hm_natstack *stacks;
} hm_natsample;

typedef struct hm_native_stats {
	uint64_t unwinds;        /* threads unwound */
	uint64_t failed;         /* threads that could not be stopped/unwound */
	uint64_t stop_ns;        /* total time threads spent stopped by us */
	uint64_t stop_max_ns;    /* longest single stop */
	uint64_t map_reloads;    /* module list re-read (dlopen, exec) */
	uint64_t sym_hits, sym_misses;
} hm_native_stats;

/* Start a session for t (reads its maps, loads nothing else yet). HM_OK;
 * HM_EINVAL on an unsupported architecture; HM_ESYS if libdwfl fails. */
int hm_native_open(hm_target *t, hm_native **out);
void hm_native_close(hm_native *n);   /* detaches anything still traced */
const hm_native_stats *hm_native_stats_get(const hm_native *n);

/* One combined sample: hm_python_sample(py, s, flags) picks the threads
 * (HM_SAMPLE_ONCPU, HM_SAMPLE_GIL honoured), those with Python frames are
 * stopped, s is re-read while they stand still, and each is unwound and
 * resumed. ns->stacks[i] then describes s->threads[i]; threads whose stack
 * is HM_NATSTACK_SKIP were not selected and should not be recorded.
 * HM_OK, or the error of hm_python_sample (nothing is left stopped). */
int hm_native_sample(hm_native *n, hm_python *py, hm_pysample *s, hm_natsample *ns,
		     unsigned flags);
void hm_natsample_free(hm_natsample *ns);
void hm_natstack_free(hm_natstack *st);

/* Stop one thread, unwind it, resume it and resolve its frames (for
 * callers that want a native stack alone). HM_OK; HM_ENOPROC if the thread
 * is gone; HM_EPERM / HM_ESYS if it cannot be stopped. */
int hm_native_unwind(hm_native *n, pid_t tid, hm_natstack *out);

/* Unwind a thread that is NOT stopped, from its registers and a copy of the
 * top of its stack taken at one instant (record --ebpf --native: a perf
 * sample's PERF_SAMPLE_REGS_USER and PERF_SAMPLE_STACK_USER). regs are in
 * DWARF order (x86-64: rax rdx rcx rbx rsi rdi rbp rsp r8-r15 rip, nregs
 * 17); the copy starts at rsp. Memory reads inside the copy come from it;
 * reads of the stack beyond it end the unwind (the live stack has moved on:
 * out->complete stays 0, and hm_native_merge places the Python frames left
 * as callers); other reads go to the process. py is the thread's
 * interpreter (for its evaluation loop). Frames are resolved; out->state is
 * HM_NATSTACK_OK or _FAILED. Counted in hm_native_stats (unwinds, failed;
 * stop_ns stays 0: nothing is stopped). */
int hm_native_unwind_copy(hm_native *n, hm_python *py, pid_t tid, const uint64_t *regs, int nregs,
			  const uint8_t *stack, size_t stack_len, hm_natstack *out);

/* The address ranges [lo, hi) of the biggest functions listed in an
 * .eh_frame_hdr section (hdr, len bytes, at file address hdr_vaddr): each
 * function ends where the next one starts; only those inside
 * [text_lo, text_hi) count unless text_hi is 0; kept are those at least half
 * as big as the biggest and at least 16 KiB, up to max. Returns how many. An
 * unnamed pc of the interpreter inside one is taken for its evaluation loop
 * (a stripped binary running a compiler-made copy of
 * _PyEval_EvalFrameDefault). */
int hm_native_big_functions(const uint8_t *hdr, size_t len, uint64_t hdr_vaddr, uint64_t text_lo,
			    uint64_t text_hi, uint64_t *lo, uint64_t *hi, int max);

/* One frame of a merged stack: exactly one of py / nat is set. */
typedef struct hm_mframe {
	const hm_pyframe *py;
	const hm_natsym *nat;
} hm_mframe;

/* Merge a thread's native and Python stacks, leaf first, into out (cap
 * entries; ns->nframes + th->nframes always suffices). L gives the frame
 * model (<=3.10: one Python frame per eval call). Returns the number of
 * frames, or -1 when the two stacks do not fit together (a torn sample:
 * more eval calls than Python frames, or Python frames left over although
 * the unwind was complete); the caller then uses th alone. When the unwind
 * stopped early (no CFI somewhere), left-over Python frames are placed
 * root-ward as the callers. */
int hm_native_merge(const hm_natstack *ns, const hm_pythread *th, const hm_pylayout *L,
		    hm_mframe *out, int cap);

/* Classify a raw (not demangled) symbol name for Python major version
 * `major` (2 or 3): enum hm_natrole. Suffixes such as ".cold" are ignored. */
int hm_native_role(const char *sym, int major);

#endif
