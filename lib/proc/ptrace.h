/* ptrace.h - stopping one thread of another process and letting it run
 * again: the one way homura stops a target's threads (--blocking pauses
 * every thread, proc/target.c; --native stops the thread it unwinds,
 * native/native.c).
 *
 * hm_ptrace_stop seizes the thread (PTRACE_SEIZE: no signal is sent) and
 * interrupts it (PTRACE_INTERRUPT), then waits for its stop, at most the
 * set's timeout; hm_ptrace_resume detaches it. What keeps the target
 * unharmed:
 * - a signal the thread took as it stopped (a signal-delivery stop: any
 *   signal, SIGTRAP and SIGSTOP included) is handed back on detach, so the
 *   thread still gets it; our interrupt stop and group stops carry none;
 * - a thread that exits is forgotten; the exit of a process whose parent we
 *   are is left for that parent's waitpid (the launched child's status);
 * - a thread that did not stop in time, or that is found out of its stop
 *   when resumed, stays seized: it goes on the set's late list and is
 *   detached (with its signal) as soon as its stop comes: hm_ptrace_reap,
 *   at every hm_ptrace_stop of it, and for the last time, waiting, in
 *   hm_ptrace_release. No thread is left stopped or traced.
 * A set is used from one thread only: ptrace binds a tracee to the thread
 * that seized it. */
#ifndef HOMURA_PTRACE_H
#define HOMURA_PTRACE_H

#include <stdint.h>
#include <sys/types.h>

#define HM_PTRACE_TIMEOUT_NS 50000000ull   /* default wait for one stop */

/* hm_ptrace_stop: the thread was already our tracee, stopped through
 * another set (--blocking's pause seen by --native): use it, but leave its
 * resume to that set. */
#define HM_PTRACE_BORROWED 1

typedef struct hm_ptrace_late {
	pid_t tid;
	int signal;              /* to hand back on detach */
} hm_ptrace_late;

/* Zero-initialised is ready (timeout HM_PTRACE_TIMEOUT_NS). */
typedef struct hm_ptrace {
	uint64_t timeout_ns;     /* longest wait for one thread's stop; 0 = default */
	hm_ptrace_late *late;    /* seized threads whose stop has not come */
	int nlate, latecap;
} hm_ptrace;

/* Seize and stop tid. HM_OK: stopped, *signal (0 or a signal to hand back
 * with hm_ptrace_resume); HM_PTRACE_BORROWED (see above); HM_ENOPROC: the
 * thread is gone; HM_EPERM: another tracer, or no ptrace rights; HM_ESYS:
 * it did not stop in time ("did not stop within"; it is on the late list),
 * or another failure. */
int hm_ptrace_stop(hm_ptrace *pt, pid_t tid, int *signal);

/* Let a thread stopped by hm_ptrace_stop run again, handing back signal. */
void hm_ptrace_resume(hm_ptrace *pt, pid_t tid, int signal);

/* Detach the late threads whose stop has come; with wait, wait for each at
 * most the timeout. */
void hm_ptrace_reap(hm_ptrace *pt, int wait);

/* Reap, waiting, and free the late list (threads still not stopped stay
 * seized until we exit, when the kernel detaches them). */
void hm_ptrace_release(hm_ptrace *pt);

#endif
