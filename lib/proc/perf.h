/* perf.h - on-CPU samples of a process's threads from the kernel
 * (perf_event_open), without signals or pauses in the target.
 *
 * A software cpu-clock event per thread fires only while that thread runs
 * on a CPU; each sample carries the instruction pointer (user or kernel),
 * the pid/tid and a CLOCK_MONOTONIC time. Events are opened with inherit,
 * so threads (and processes) the target creates later are counted too,
 * their samples going to the ring of the event they inherited from. The
 * kernel maps inherited events only when they are bound to a CPU, so there
 * is an event per (thread, CPU) at open time, and one ring per CPU that all
 * events of that CPU write to. The kernel wakes a waiter (hm_perf_wait) at
 * each sample. Context switch records are parsed but not asked for (too
 * costly for programs that switch a lot: see perf.c). */
#ifndef HOMURA_PERF_H
#define HOMURA_PERF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct hm_perf hm_perf;

/* What a record is: an on-CPU sample, or a context switch of the thread
 * (in: it starts running; out: it stops, blocked or sleeping; preempt: it
 * stops but is still runnable, so it stays where it was). */
enum hm_perf_kind { HM_PERF_SAMPLE = 0, HM_PERF_SWITCH_IN, HM_PERF_SWITCH_OUT,
		    HM_PERF_SWITCH_PREEMPT };

typedef struct hm_perf_sample {
	uint64_t ip;             /* samples only */
	uint64_t t_ns;           /* CLOCK_MONOTONIC */
	pid_t pid, tid;
	int kernel;              /* the IP is in the kernel */
	int kind;                /* enum hm_perf_kind */
} hm_perf_sample;

/* Sample every thread of pid at rate_hz of CPU time per thread. HM_OK, or
 * HM_EPERM / HM_EINVAL with a one-line message (perf_event_paranoid, no
 * perf events in this kernel, ...). Kernel IPs are asked for; where the
 * kernel refuses them (paranoid 2 without root), user IPs only and
 * hm_perf_kernel_ips says 0. */
int hm_perf_open(pid_t pid, double rate_hz, hm_perf **out);
/* The same for a launched child held before its exec (proc/launch.h),
 * counted from its exec on. Opened on a program already running, the
 * events of a thread busy on a CPU may stay silent for a while (tens of
 * milliseconds seen, when the kernel had to switch its perf hooks on), and
 * a thread the program starts and ends meanwhile is never counted; opened
 * before the exec, the program's every thread is. */
int hm_perf_open_exec(pid_t pid, double rate_hz, hm_perf **out);
void hm_perf_close(hm_perf *p);
int hm_perf_kernel_ips(const hm_perf *p);

/* Wait up to timeout_ns for a sample (the kernel wakes a waiter at each)
 * or for extra_fd (< 0: none) to be readable: 1 samples, 2 extra_fd, 0
 * neither (time out, or a signal). */
int hm_perf_wait(hm_perf *p, int extra_fd, uint64_t timeout_ns);
/* Whether context switches are reported too (kernel 4.3+): the exact
 * stretches of time each thread was on a CPU. */
int hm_perf_switches(const hm_perf *p);
/* Stop them (each costs the program a record written at each switch:
 * too many, for a program that switches hundreds of thousands of times a
 * second); those already written still come. */
void hm_perf_switches_off(hm_perf *p);

/* Hand every record waiting in the rings to fn (samples and switches, in
 * time order within one CPU's ring, not across rings); returns how many
 * samples. */
typedef void (*hm_perf_fn)(void *ctx, const hm_perf_sample *s);
size_t hm_perf_drain(hm_perf *p, hm_perf_fn fn, void *ctx);
/* Samples the kernel dropped (rings full) so far. */
uint64_t hm_perf_lost(const hm_perf *p);

#endif
