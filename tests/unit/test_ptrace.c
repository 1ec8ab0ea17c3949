/* test_ptrace.c - proc/ptrace.c on a real child process with two threads:
 * a stopped thread shows as stopped (and only it), runs again untraced once
 * resumed; a signal its stop took is handed back and reaches its handler,
 * whether the thread is stopped again or reaped from the late list; a late
 * stop that another wait took is used all the same; a thread that is gone
 * is an error; the exit of our own child is left to our
 * waitpid. Waits for the child are bounded (5 s) but assert no timing. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "proc/ptrace.h"

/* Shared with the child (MAP_SHARED before fork). */
struct shared {
	volatile pid_t worker;          /* the second thread's tid */
	volatile uint64_t ticks[2];     /* main thread, worker */
	volatile int usr1;              /* SIGUSR1 handled */
};

static struct shared *sh;
static pid_t child = -1;

static void sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
	nanosleep(&ts, NULL);
}

static void on_usr1(int sig)
{
	(void)sig;
	sh->usr1++;
}

static void *worker(void *arg)
{
	(void)arg;
	sh->worker = (pid_t)syscall(SYS_gettid);
	for (;;) {
		sh->ticks[1]++;
		sleep_us(200);
	}
	return NULL;
}

static void start_child(void)
{
	memset((void *)sh, 0, sizeof *sh);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_usr1;
		sa.sa_flags = SA_RESTART;
		sigaction(SIGUSR1, &sa, NULL);
		pthread_t th;
		if (pthread_create(&th, NULL, worker, NULL) != 0)
			_exit(1);
		for (;;) {
			sh->ticks[0]++;
			sleep_us(200);
		}
	}
	for (int i = 0; i < 5000 && !(sh->worker && sh->ticks[1] && sh->ticks[0]); i++)
		sleep_us(1000);
	assert_true(sh->worker > 0);
}

static int stop_child(void **state)
{
	(void)state;
	if (child > 0) {
		/* Also reaps a thread a failed test left traced (its zombie
		 * would hold the process's exit back). */
		kill(child, SIGKILL);
		while (waitpid(-1, NULL, __WALL) > 0 || errno == EINTR)
			;
	}
	child = -1;
	return 0;
}

/* State letter of /proc/PID/task/TID/status and its TracerPid. */
static char thread_state(pid_t tid, int *tracer)
{
	char path[64], line[256], st = '?';
	snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)child, (int)tid);
	FILE *f = fopen(path, "r");
	*tracer = -1;
	if (!f)
		return st;
	while (fgets(line, sizeof line, f)) {
		if (!strncmp(line, "State:", 6))
			sscanf(line + 6, " %c", &st);
		else if (!strncmp(line, "TracerPid:", 10))
			*tracer = atoi(line + 10);
	}
	fclose(f);
	return st;
}

/* Wait (bounded) until the thread runs untraced and has ticked again. */
static void assert_runs_again(pid_t tid, int k)
{
	uint64_t t0 = sh->ticks[k];
	int tracer = 0;
	char st = '?';
	for (int i = 0; i < 5000; i++) {
		st = thread_state(tid, &tracer);
		if (st != 't' && tracer == 0 && sh->ticks[k] > t0)
			break;
		sleep_us(1000);
	}
	assert_int_not_equal(st, 't');
	assert_int_equal(tracer, 0);
	assert_true(sh->ticks[k] > t0);
}

/* Stop with a generous timeout: a loaded machine may not run it soon. */
static int stop(hm_ptrace *pt, pid_t tid, int *sig)
{
	int r;
	for (int i = 0; i < 50; i++) {
		r = hm_ptrace_stop(pt, tid, sig);
		if (!(r == HM_ESYS && strstr(hm_errmsg(), "did not stop within")))
			break;
	}
	return r;
}

static void test_stop_resume(void **state)
{
	(void)state;
	hm_ptrace pt = {.timeout_ns = 1000000000ull};
	start_child();
	pid_t tid = sh->worker;
	int tracer, sig = -1;
	for (int round = 0; round < 3; round++) {
		assert_int_equal(stop(&pt, tid, &sig), HM_OK);
		assert_int_equal(sig, 0);
		assert_int_equal(thread_state(tid, &tracer), 't');
		assert_int_equal(tracer, getpid());
		/* Only that thread: the main thread still ticks. */
		uint64_t w = sh->ticks[1], m = sh->ticks[0];
		for (int i = 0; i < 5000 && sh->ticks[0] == m; i++)
			sleep_us(1000);
		assert_true(sh->ticks[0] > m);
		assert_int_equal(sh->ticks[1], w);
		assert_int_not_equal(thread_state(child, &tracer), 't');
		hm_ptrace_resume(&pt, tid, sig);
		assert_runs_again(tid, 1);
	}
	assert_int_equal(pt.nlate, 0);
	/* A thread that does not exist. */
	assert_int_equal(hm_ptrace_stop(&pt, 0x3ffffff0, &sig), HM_ENOPROC);
	hm_ptrace_release(&pt);
}

/* Put tid in a signal-delivery stop for SIGUSR1 as a seized thread of pt
 * whose stop came late: stopped, the signal queued, let run (traced) so that
 * it takes the signal into a stop we have not collected, and listed late. */
static void late_with_signal(hm_ptrace *pt, pid_t tid)
{
	int sig, tracer;
	assert_int_equal(stop(pt, tid, &sig), HM_OK);
	assert_int_equal(syscall(SYS_tgkill, child, tid, SIGUSR1), 0);
	assert_int_equal(ptrace(PTRACE_CONT, tid, 0, 0), 0);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	assert_int_equal(waitid(P_PID, (id_t)tid, &si, WSTOPPED | WNOWAIT | __WALL), 0);
	assert_int_equal(si.si_status, SIGUSR1);
	assert_int_equal(thread_state(tid, &tracer), 't');
	pt->late = realloc(pt->late, sizeof *pt->late);
	assert_non_null(pt->late);
	pt->late[0] = (hm_ptrace_late){tid, 0};
	pt->nlate = pt->latecap = 1;
}

static void wait_usr1(int want)
{
	for (int i = 0; i < 5000 && sh->usr1 < want; i++)
		sleep_us(1000);
	assert_int_equal(sh->usr1, want);
}

static void test_signal_handed_back(void **state)
{
	(void)state;
	hm_ptrace pt = {.timeout_ns = 1000000000ull};
	start_child();
	pid_t tid = sh->worker;
	int sig = 0, tracer;

	/* Stopped again: the stop that took SIGUSR1 is ours, with it. */
	late_with_signal(&pt, tid);
	assert_int_equal(hm_ptrace_stop(&pt, tid, &sig), HM_OK);
	assert_int_equal(sig, SIGUSR1);
	assert_int_equal(pt.nlate, 0);
	assert_int_equal(thread_state(tid, &tracer), 't');
	assert_int_equal(sh->usr1, 0);   /* still in our hands */
	hm_ptrace_resume(&pt, tid, sig);
	wait_usr1(1);
	assert_runs_again(tid, 1);

	/* Reaped from the late list: detached with it. */
	late_with_signal(&pt, tid);
	hm_ptrace_reap(&pt, 1);
	assert_int_equal(pt.nlate, 0);
	wait_usr1(2);
	assert_runs_again(tid, 1);
	hm_ptrace_release(&pt);
}

/* A late thread whose stop another wait took (our own waitpid on a
 * launched child does that): found stopped, used, and let go. */
static void test_stop_taken_elsewhere(void **state)
{
	(void)state;
	hm_ptrace pt = {.timeout_ns = 1000000000ull};
	start_child();
	pid_t tid = sh->worker;
	int sig, tracer, status;
	for (int round = 0; round < 2; round++) {
		assert_int_equal(stop(&pt, tid, &sig), HM_OK);
		assert_int_equal(ptrace(PTRACE_CONT, tid, 0, 0), 0);
		assert_int_equal(ptrace(PTRACE_INTERRUPT, tid, 0, 0), 0);
		assert_int_equal(waitpid(tid, &status, __WALL), tid);   /* taken here */
		assert_true(WIFSTOPPED(status));
		pt.late = realloc(pt.late, sizeof *pt.late);
		assert_non_null(pt.late);
		pt.late[0] = (hm_ptrace_late){tid, 0};
		pt.nlate = pt.latecap = 1;
		if (round == 0) {
			/* stopped again: no wait for a stop already taken */
			assert_int_equal(hm_ptrace_stop(&pt, tid, &sig), HM_OK);
			assert_int_equal(pt.nlate, 0);
			assert_int_equal(thread_state(tid, &tracer), 't');
			hm_ptrace_resume(&pt, tid, sig);
		} else {
			hm_ptrace_reap(&pt, 0);   /* detached all the same */
			assert_int_equal(pt.nlate, 0);
		}
		assert_runs_again(tid, 1);
	}
	hm_ptrace_release(&pt);
}

static void test_exit_left_to_parent(void **state)
{
	(void)state;
	hm_ptrace pt = {.timeout_ns = 1000000000ull};
	start_child();
	int sig, status;
	/* The main thread, seized and late; then the process is killed. */
	assert_int_equal(stop(&pt, child, &sig), HM_OK);
	assert_int_equal(ptrace(PTRACE_CONT, child, 0, 0), 0);
	pt.late = malloc(sizeof *pt.late);
	assert_non_null(pt.late);
	pt.late[0] = (hm_ptrace_late){child, 0};
	pt.nlate = pt.latecap = 1;
	kill(child, SIGKILL);
	for (int i = 0; i < 5000 && pt.nlate; i++) {
		hm_ptrace_reap(&pt, 0);
		if (pt.nlate)
			sleep_us(1000);
	}
	assert_int_equal(pt.nlate, 0);
	hm_ptrace_release(&pt);
	/* Its status is still ours to collect. */
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	child = -1;
}

int main(void)
{
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_stop_resume, stop_child),
		cmocka_unit_test_teardown(test_signal_handed_back, stop_child),
		cmocka_unit_test_teardown(test_stop_taken_elsewhere, stop_child),
		cmocka_unit_test_teardown(test_exit_left_to_parent, stop_child),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
