/* ptrace.c - stopping and resuming one thread of another process (see
 * ptrace.h for the rules).
 *
 * A seized thread is watched with waitid(): first a look that leaves the
 * event in place (WNOWAIT), then, for a stop, the stop itself is taken
 * (WSTOPPED only, so an exit is never taken by mistake). A stop's status
 * carries the ptrace event in its high bits: none means a signal-delivery
 * stop, whose signal the thread must still get. An exit is taken (the
 * traced zombie reaped) unless the thread leads a process whose parent we
 * are: that status belongs to our own waitpid (the launched command's). A
 * running thread stops within microseconds: the wait yields the CPU for the
 * first millisecond (the thread may share it), then sleeps 50 us at a time. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "base/error.h"
#include "proc/ptrace.h"

static uint64_t timeout_of(const hm_ptrace *pt)
{
	return pt->timeout_ns ? pt->timeout_ns : HM_PTRACE_TIMEOUT_NS;
}

/* Thread group and parent of a thread (/proc/TID/status); 0 if unknown. */
static void thread_ids(pid_t tid, pid_t *tgid, pid_t *ppid)
{
	char path[64], buf[1024];
	*tgid = *ppid = 0;
	snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	const char *p = strstr(buf, "\nTgid:");
	if (p)
		*tgid = atoi(p + 6);
	p = strstr(buf, "\nPPid:");
	if (p)
		*ppid = atoi(p + 6);
}

/* One look at a seized thread. 1 stopped (*sig set when its stop took a
 * signal), 0 gone, -1 nothing yet. */
static int poll_thread(pid_t tid, int *sig)
{
	for (;;) {
		siginfo_t si;
		memset(&si, 0, sizeof si);
		if (waitid(P_PID, (id_t)tid, &si, WEXITED | WSTOPPED | WNOHANG | WNOWAIT | __WALL)) {
			if (errno == EINTR)
				continue;
			return 0;   /* not our tracee any more: gone */
		}
		if (si.si_pid == 0)
			return -1;
		if (si.si_code == CLD_TRAPPED || si.si_code == CLD_STOPPED) {
			memset(&si, 0, sizeof si);
			if (waitid(P_PID, (id_t)tid, &si, WSTOPPED | WNOHANG | __WALL) && errno == EINTR)
				continue;
			if (si.si_pid == 0)
				continue;   /* the stop ended at once (SIGKILL): look again */
			/* status: signal | event << 8; no event = signal-delivery stop */
			if ((si.si_status >> 8) == 0 && (si.si_status & 0xff))
				*sig = si.si_status & 0xff;
			return 1;
		}
		/* Exited or killed. */
		pid_t tgid, ppid;
		thread_ids(tid, &tgid, &ppid);
		if (tgid > 0 && !(tgid == tid && ppid == getpid()))
			while (waitid(P_PID, (id_t)tid, &si, WEXITED | WNOHANG | __WALL) && errno == EINTR)
				;
		return 0;
	}
}

/* Wait at most timeout_ns for a seized thread's stop: 1, 0 or -1 as
 * poll_thread. */
static int wait_stop(pid_t tid, int *sig, uint64_t timeout_ns)
{
	uint64_t t0 = hm_mono_ns();
	for (;;) {
		int r = poll_thread(tid, sig);
		if (r >= 0)
			return r;
		uint64_t el = hm_mono_ns() - t0;
		if (el >= timeout_ns)
			return -1;
		if (el < 1000000ull) {
			sched_yield();
		} else {
			struct timespec ts = {0, 50000};
			nanosleep(&ts, NULL);
		}
	}
}

/* One detach hands back one signal: with two, queue the older again. */
static int merge_signal(pid_t tid, int older, int newer)
{
	if (!older || older == newer)
		return newer;
	if (!newer)
		return older;
	pid_t tgid, ppid;
	thread_ids(tid, &tgid, &ppid);
	if (tgid > 0)
		syscall(SYS_tgkill, tgid, tid, older);
	return newer;
}

static void late_add(hm_ptrace *pt, pid_t tid, int signal)
{
	if (pt->nlate == pt->latecap) {
		int nc = pt->latecap ? pt->latecap * 2 : 8;
		hm_ptrace_late *p = realloc(pt->late, (size_t)nc * sizeof *p);
		if (!p)
			return;   /* the kernel detaches it when we exit */
		pt->late = p;
		pt->latecap = nc;
	}
	pt->late[pt->nlate++] = (hm_ptrace_late){tid, signal};
}

int hm_ptrace_stop(hm_ptrace *pt, pid_t tid, int *signal)
{
	uint64_t timeout = timeout_of(pt);
	*signal = 0;
	if (ptrace(PTRACE_SEIZE, tid, 0, 0) != 0) {
		if (errno == ESRCH)
			return hm_error(HM_ENOPROC, "thread %d is gone", (int)tid);
		if (errno != EPERM)
			return hm_error(HM_ESYS, "cannot stop thread %d: %s", (int)tid,
					strerror(errno));
		/* Ours already: seized earlier, its stop came late (a busy
		 * machine). It is on its way: wait for it as for a fresh one. */
		for (int i = 0; i < pt->nlate; i++) {
			if (pt->late[i].tid != tid)
				continue;
			unsigned long msg;
			int sig = 0, r = wait_stop(tid, &sig, 0);
			if (r < 0 && ptrace(PTRACE_GETEVENTMSG, tid, 0, &msg) == 0)
				r = 1;   /* stopped, the stop taken by another wait */
			if (r < 0)
				r = wait_stop(tid, &sig, timeout);
			if (r < 0)
				return hm_error(HM_ESYS, "thread %d did not stop within %llu ms",
						(int)tid, (unsigned long long)(timeout / 1000000));
			int older = pt->late[i].signal;
			pt->late[i] = pt->late[--pt->nlate];
			if (r == 0)
				return hm_error(HM_ENOPROC, "thread %d is gone", (int)tid);
			*signal = merge_signal(tid, older, sig);
			return HM_OK;
		}
		/* Our tracee, stopped through another set? (Asks a stopped
		 * tracee of ours only, on every architecture.) */
		unsigned long msg;
		if (ptrace(PTRACE_GETEVENTMSG, tid, 0, &msg) == 0)
			return HM_PTRACE_BORROWED;
		return hm_error(HM_EPERM, "cannot stop thread %d: %s (another tracer, or missing "
				"ptrace rights)", (int)tid, strerror(EPERM));
	}
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0 && errno != ESRCH) {
		int e = errno;
		late_add(pt, tid, 0);
		return hm_error(HM_ESYS, "cannot interrupt thread %d: %s", (int)tid, strerror(e));
	}
	int r = wait_stop(tid, signal, timeout);
	if (r == 0)
		return hm_error(HM_ENOPROC, "thread %d is gone", (int)tid);
	if (r < 0) {
		late_add(pt, tid, 0);
		return hm_error(HM_ESYS, "thread %d did not stop within %llu ms", (int)tid,
				(unsigned long long)(timeout / 1000000));
	}
	return HM_OK;
}

void hm_ptrace_resume(hm_ptrace *pt, pid_t tid, int signal)
{
	if (ptrace(PTRACE_DETACH, tid, 0, (void *)(long)signal) == 0 || errno != ESRCH)
		return;
	/* Out of its stop (SIGKILL woke it) or gone: make it stop again and
	 * detach it when it does. */
	ptrace(PTRACE_INTERRUPT, tid, 0, 0);
	late_add(pt, tid, signal);
	hm_ptrace_reap(pt, 0);
}

void hm_ptrace_reap(hm_ptrace *pt, int wait)
{
	uint64_t timeout = wait ? timeout_of(pt) : 0;
	int k = 0;
	for (int i = 0; i < pt->nlate; i++) {
		hm_ptrace_late e = pt->late[i];
		int sig = 0, r = wait_stop(e.tid, &sig, timeout);
		if (r == 1) {
			ptrace(PTRACE_DETACH, e.tid, 0, (void *)(long)merge_signal(e.tid, e.signal, sig));
			continue;
		}
		if (r == 0)
			continue;
		/* Its stop may have been taken by another wait (ours on the
		 * launched child): a detach works in any ptrace stop. */
		if (ptrace(PTRACE_DETACH, e.tid, 0, (void *)(long)e.signal) == 0)
			continue;
		pt->late[k++] = e;
	}
	pt->nlate = k;
}

void hm_ptrace_release(hm_ptrace *pt)
{
	hm_ptrace_reap(pt, 1);
	free(pt->late);
	pt->late = NULL;
	pt->nlate = pt->latecap = 0;
}
