/* test_target.c - hm_target against this very process and forked children:
 * memory reads, maps, module bias, thread listing and states (exited threads included), errors for
 * missing / exited / forbidden processes, and pause/resume of a child. */
#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "proc/elf.h"
#include "proc/target.h"

static volatile uint64_t magic_a = 0x1122334455667788ull;
static volatile char magic_b[64] = "homura reads this string";
static volatile uint32_t magic_c = 0xdecafbad;
static volatile uint64_t counters[3];   /* advanced by the pause child */

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static hm_target *open_self(void)
{
	hm_target *t = NULL;

	assert_int_equal(hm_target_open(getpid(), &t), HM_OK);
	assert_non_null(t);
	assert_int_equal(hm_target_pid(t), getpid());
	return t;
}

static void test_open_missing(void **state)
{
	hm_target *t = (hm_target *)1;

	assert_int_equal(hm_target_open(999999, &t), HM_ENOPROC);
	assert_null(t);
	assert_int_equal(hm_errcode(), HM_ENOPROC);
	assert_string_equal(hm_errmsg(), "no such process: 999999");
	assert_int_equal(hm_target_open(-5, &t), HM_ENOPROC);
}

static void test_open_zombie(void **state)
{
	pid_t child = fork();
	hm_target *t = NULL;
	char path[64], buf[256];
	int i, status;

	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	/* Wait (without reaping) until the child is a zombie. */
	snprintf(path, sizeof(path), "/proc/%d/stat", child);
	for (i = 0; i < 200; i++) {
		FILE *f = fopen(path, "r");
		char *p = NULL;

		if (f && fgets(buf, sizeof(buf), f))
			p = strrchr(buf, ')');
		if (f)
			fclose(f);
		if (p && p[2] == 'Z')
			break;
		sleep_ms(5);
	}
	assert_int_equal(hm_target_open(child, &t), HM_ENOPROC);
	assert_null(t);
	assert_non_null(strstr(hm_errmsg(), "has exited"));
	assert_int_equal(waitpid(child, &status, 0), child);
}

static void test_open_forbidden(void **state)
{
	pid_t parent = getpid(), child;
	int fds[2], status;
	char msg[512] = { 0 };
	ssize_t n;

	if (geteuid() != 0)
		skip();
	assert_int_equal(pipe(fds), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		hm_target *t = NULL;
		int rc;

		close(fds[0]);
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(2);
		rc = hm_target_open(parent, &t);
		snprintf(msg, sizeof(msg), "%d %s", rc, hm_errmsg());
		if (write(fds[1], msg, strlen(msg)) < 0)
			_exit(3);
		_exit(0);
	}
	close(fds[1]);
	n = read(fds[0], msg, sizeof(msg) - 1);
	close(fds[0]);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(n > 0);
	msg[n] = '\0';
	assert_int_equal(atoi(msg), HM_EPERM);
	assert_non_null(strstr(msg, "permission denied"));
	assert_non_null(strstr(msg, "CAP_SYS_PTRACE"));
	assert_non_null(strstr(msg, "uid 0"));
	assert_null(strchr(msg, '\n'));
}

static void test_read_self(void **state)
{
	hm_target *t = open_self();
	uint64_t a = 0;
	char b[64];
	uint8_t junk[16];

	assert_true(hm_target_alive(t));
	assert_int_equal(hm_target_read(t, (uint64_t)(uintptr_t)&magic_a, &a, sizeof(a)), HM_OK);
	assert_int_equal(a, magic_a);
	assert_int_equal(hm_target_read(t, (uint64_t)(uintptr_t)magic_b, b, sizeof(b)), HM_OK);
	assert_string_equal(b, "homura reads this string");
	assert_int_equal(hm_target_read(t, 16, junk, sizeof(junk)), HM_EIO);
	assert_non_null(strstr(hm_errmsg(), "0x10"));
	assert_int_equal(hm_target_read(t, 16, junk, 0), HM_OK);
	hm_target_close(t);
}

static void test_readv(void **state)
{
	hm_target *t = open_self();
	uint64_t a = 0;
	char b[64] = { 0 };
	uint32_t c = 0;
	char *heap = malloc(4096);
	char *copy = calloc(1, 4096);
	uint32_t *many;
	hm_iov *iov;
	int i, n = 3000;        /* more than IOV_MAX: must be split */

	assert_non_null(heap);
	assert_non_null(copy);
	for (i = 0; i < 4096; i++)
		heap[i] = (char)(i * 7);
	{
		hm_iov v[4] = {
			{ (uint64_t)(uintptr_t)&magic_a, &a, sizeof(a) },
			{ (uint64_t)(uintptr_t)magic_b, b, sizeof(b) },
			{ (uint64_t)(uintptr_t)&magic_c, &c, sizeof(c) },
			{ (uint64_t)(uintptr_t)heap, copy, 4096 },
		};

		assert_int_equal(hm_target_readv(t, v, 4), HM_OK);
		assert_int_equal(a, magic_a);
		assert_string_equal(b, "homura reads this string");
		assert_int_equal(c, 0xdecafbad);
		assert_memory_equal(copy, heap, 4096);

		/* One bad region spoils the whole call. */
		v[2].addr = 8;
		assert_int_equal(hm_target_readv(t, v, 4), HM_EIO);
		v[2].addr = (uint64_t)(uintptr_t)&magic_c;
	}

	many = calloc((size_t)n, sizeof(*many));
	iov = calloc((size_t)n, sizeof(*iov));
	assert_non_null(many);
	assert_non_null(iov);
	for (i = 0; i < n; i++) {
		iov[i].addr = (uint64_t)(uintptr_t)(heap + (i % 1024) * 4);
		iov[i].buf = &many[i];
		iov[i].len = 4;
	}
	assert_int_equal(hm_target_readv(t, iov, n), HM_OK);
	for (i = 0; i < n; i++)
		assert_memory_equal(&many[i], heap + (i % 1024) * 4, 4);
	assert_int_equal(hm_target_readv(t, iov, 0), HM_OK);
	free(many);
	free(iov);
	free(heap);
	free(copy);
	hm_target_close(t);
}

static void test_maps(void **state)
{
	hm_target *t = open_self();
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const hm_map *m;
	size_t count = 0, i;
	int found = 0, found_rx = 0, anon = 0;
	uint64_t here = (uint64_t)(uintptr_t)&magic_a;
	char *p;

	assert_true(n > 0);
	exe[n] = '\0';
	m = hm_target_maps(t, &count);
	assert_non_null(m);
	assert_true(count > 5);
	for (i = 0; i < count; i++) {
		assert_true(m[i].start < m[i].end);
		assert_int_equal(strlen(m[i].perms), 4);
		if (m[i].path && strcmp(m[i].path, exe) == 0) {
			found = 1;
			if (m[i].perms[0] == 'r' && m[i].perms[2] == 'x')
				found_rx = 1;
		}
		if (!m[i].path)
			anon = 1;
		if (here >= m[i].start && here < m[i].end)
			assert_int_equal(m[i].perms[1], 'w');
	}
	assert_true(found);
	assert_true(found_rx);
	assert_true(anon);
	assert_int_equal(hm_target_refresh_maps(t), HM_OK);
	assert_non_null(hm_target_maps(t, &count));

	p = hm_target_path(t, "/usr/lib/libfoo.so");
	assert_non_null(p);
	snprintf(exe, sizeof(exe), "/proc/%d/root/usr/lib/libfoo.so", getpid());
	assert_string_equal(p, exe);
	free(p);
	hm_target_close(t);
}

static int match_libc(const char *base, void *ctx)
{
	(*(int *)ctx)++;
	return strncmp(base, "libc.so", 7) == 0 || strncmp(base, "libc-", 5) == 0;
}

static int match_none(const char *base, void *ctx)
{
	return 0;
}

static void test_find_module_bias(void **state)
{
	hm_target *t = open_self();
	hm_module mod;
	hm_elf *e;
	uint64_t value = 0;
	void *real = dlsym(RTLD_DEFAULT, "getpid");
	int calls = 0;
	char *path;

	assert_non_null(real);
	assert_int_equal(hm_target_find_module(t, match_libc, &calls, &mod), HM_OK);
	assert_true(calls > 0);
	assert_non_null(mod.path);
	assert_non_null(strstr(mod.path, "libc"));
	assert_true(mod.start < mod.end);
	assert_true((uint64_t)(uintptr_t)real >= mod.start &&
		    (uint64_t)(uintptr_t)real < mod.end);
	path = hm_target_path(t, mod.path);
	e = hm_elf_open(path);
	free(path);
	assert_non_null(e);
	assert_int_equal(hm_elf_symbol(e, "getpid", &value, NULL), HM_OK);
	assert_int_equal(mod.bias + value, (uint64_t)(uintptr_t)real);
	hm_elf_close(e);
	hm_module_free(&mod);
	assert_null(mod.path);

	assert_int_equal(hm_target_find_module(t, match_none, NULL, &mod), HM_ENOTPY);
	hm_target_close(t);
}

/* A library whose file was deleted after loading ("... (deleted)" in maps)
 * is still found, through /proc/PID/map_files. */
static int match_hmdel(const char *base, void *ctx)
{
	return strcmp(base, "libhmdel.so") == 0;
}

static void test_find_module_deleted(void **state)
{
	static const char *candidates[] = {
		"/usr/lib/x86_64-linux-gnu/libuuid.so.1", "/usr/lib/x86_64-linux-gnu/libbz2.so.1",
		"/usr/lib/x86_64-linux-gnu/libexpat.so.1", "/usr/lib/x86_64-linux-gnu/libffi.so.8",
	};
	char dir[] = "/tmp/hm_del_XXXXXX", path[128], cmd[512];
	hm_target *t = open_self();
	struct link_map *lm = NULL;
	const char *src = NULL;
	hm_module mod;
	void *h;
	size_t i;

	for (i = 0; i < sizeof(candidates) / sizeof(*candidates) && !src; i++)
		if (access(candidates[i], R_OK) == 0)
			src = candidates[i];
	if (!src)
		skip();
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/libhmdel.so", dir);
	snprintf(cmd, sizeof(cmd), "cp %s %s", src, path);
	assert_int_equal(system(cmd), 0);
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	assert_non_null(h);
	assert_int_equal(unlink(path), 0);
	rmdir(dir);

	assert_int_equal(hm_target_find_module(t, match_hmdel, NULL, &mod), HM_OK);
	assert_string_equal(mod.path, path);
	assert_int_equal(dlinfo(h, RTLD_DI_LINKMAP, &lm), 0);
	assert_int_equal(mod.bias, (uint64_t)lm->l_addr);
	hm_module_free(&mod);
	dlclose(h);
	hm_target_close(t);
}

static void test_cmdline_environ(void **state)
{
	hm_target *t = open_self();
	size_t len = 0;
	char *s = hm_target_cmdline(t, &len);

	assert_non_null(s);
	assert_true(len > 0);
	assert_non_null(strstr(s, "test_target"));
	free(s);
	s = hm_target_environ(t, &len);
	assert_non_null(s);
	free(s);
	hm_target_close(t);
}

/* ---- threads ---- */

static volatile int spin_stop;
static int sleeper_pipe[2];
static volatile pid_t spinner_tid, sleeper_tid;

static void *spinner(void *arg)
{
	spinner_tid = (pid_t)syscall(SYS_gettid);
	while (!spin_stop)
		;
	return NULL;
}

static void *sleeper(void *arg)
{
	char c;

	sleeper_tid = (pid_t)syscall(SYS_gettid);
	if (read(sleeper_pipe[0], &c, 1) < 0)
		return NULL;
	return NULL;
}

static int has_tid(const pid_t *tids, int n, pid_t tid)
{
	int i;

	for (i = 0; i < n; i++)
		if (tids[i] == tid)
			return 1;
	return 0;
}

/* Up to 10 s for tid to leave /proc/self/task: 1 once it has, else 0. */
static int gone_soon(hm_target *t, pid_t tid)
{
	pid_t tids[256];
	int i, n;

	for (i = 0; i < 10000; i++) {
		n = hm_target_threads(t, tids, 256);
		if (n >= 0 && !has_tid(tids, n, tid))
			return 1;
		sleep_ms(1);
	}
	return 0;
}

static void test_threads_and_states(void **state)
{
	hm_target *t = open_self();
	pthread_t a, b;
	pid_t tids[256];
	int n, i;
	char st = 0;

	spin_stop = 0;
	spinner_tid = sleeper_tid = 0;
	assert_int_equal(pipe(sleeper_pipe), 0);
	assert_int_equal(pthread_create(&a, NULL, spinner, NULL), 0);
	assert_int_equal(pthread_create(&b, NULL, sleeper, NULL), 0);
	for (i = 0; i < 1000 && (!spinner_tid || !sleeper_tid); i++)
		sleep_ms(1);
	assert_true(spinner_tid && sleeper_tid);

	n = hm_target_threads(t, tids, 256);
	assert_true(n >= 3);
	assert_true(has_tid(tids, n, getpid()));
	assert_true(has_tid(tids, n, spinner_tid));
	assert_true(has_tid(tids, n, sleeper_tid));
	assert_int_equal(hm_target_threads(t, tids, 1), 1);

	/* Same namespace: tids map to themselves. */
	assert_int_equal(hm_target_host_tid(t, spinner_tid), spinner_tid);

	for (i = 0; i < 2000; i++) {
		st = hm_target_thread_state(t, sleeper_tid);
		if (st == 'S')
			break;
		sleep_ms(1);
	}
	assert_int_equal(st, 'S');
	/* Repeated polls use the cached fd and agree. */
	for (i = 0; i < 100; i++) {
		assert_int_equal(hm_target_thread_state(t, spinner_tid), 'R');
		assert_int_equal(hm_target_thread_state(t, sleeper_tid), 'S');
		/* The cheap on-CPU check agrees. */
		assert_int_equal(hm_target_thread_oncpu(t, spinner_tid), 'R');
		assert_int_equal(hm_target_thread_oncpu(t, sleeper_tid), 'S');
	}
	/* We are running while we ask. */
	assert_int_equal(hm_target_thread_state(t, (pid_t)syscall(SYS_gettid)), 'R');

	spin_stop = 1;
	assert_int_equal(write(sleeper_pipe[1], "x", 1), 1);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	close(sleeper_pipe[0]);
	close(sleeper_pipe[1]);
	/* Gone threads report 0 (their cached fds are dropped). A joined
	 * thread can still be in /proc for a moment (its exit is not over when
	 * the join returns): wait for the kernel, bounded. */
	assert_true(gone_soon(t, spinner_tid));
	assert_true(gone_soon(t, sleeper_tid));
	assert_int_equal(hm_target_thread_state(t, spinner_tid), 0);
	assert_int_equal(hm_target_thread_state(t, sleeper_tid), 0);
	assert_int_equal(hm_target_thread_state(t, 999999), 0);
	assert_int_equal(hm_target_thread_oncpu(t, spinner_tid), 0);
	assert_int_equal(hm_target_thread_oncpu(t, 999999), 0);
	hm_target_close(t);
}

/* In the child of test_zombie_thread_is_gone: sends its tid, exits once
 * told to. */
static int zombie_fds[2];       /* write the tid here; read "go" here */
static pid_t zombie_child, zombie_tid;

/* Teardown: the child and its traced thread go even if an assertion failed
 * (else the child would outlive the test, holding its output open). */
static int zombie_teardown(void **state)
{
	int status;

	if (zombie_child > 0) {
		kill(zombie_child, SIGKILL);
		if (zombie_tid > 0)
			waitpid(zombie_tid, &status, __WALL);
		waitpid(zombie_child, &status, 0);
	}
	zombie_child = zombie_tid = 0;
	return 0;
}

static void *zombie_thread(void *arg)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);
	char c;

	(void)arg;
	if (write(zombie_fds[0], &tid, sizeof(tid)) != (ssize_t)sizeof(tid) ||
	    read(zombie_fds[1], &c, 1) < 0)
		return NULL;
	return NULL;
}

/* State letter of /proc/PID/task/TID/stat, 0 if unreadable. */
static char task_state(pid_t pid, pid_t tid)
{
	char path[64], buf[512], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	return p && p[1] == ' ' ? p[2] : 0;
}

/* An exited thread that is still listed counts as gone: here a zombie,
 * held by us as its tracer until we reap it. */
static void test_zombie_thread_is_gone(void **state)
{
	int tidpipe[2], gopipe[2];
	pid_t child, tid = 0;
	hm_target *t = NULL;
	int i, status;

	assert_int_equal(pipe(tidpipe), 0);
	assert_int_equal(pipe(gopipe), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		pthread_t th;

		close(tidpipe[0]);
		close(gopipe[1]);
		zombie_fds[0] = tidpipe[1];
		zombie_fds[1] = gopipe[0];
		if (pthread_create(&th, NULL, zombie_thread, NULL) != 0)
			_exit(1);
		for (;;)
			pause();
	}
	zombie_child = child;
	close(tidpipe[1]);
	close(gopipe[0]);
	assert_int_equal(read(tidpipe[0], &tid, sizeof(tid)), (ssize_t)sizeof(tid));
	assert_true(tid > 0 && tid != child);
	assert_int_equal(ptrace(PTRACE_SEIZE, tid, 0, 0), 0);
	zombie_tid = tid;
	assert_int_equal(write(gopipe[1], "x", 1), 1);  /* the thread exits */
	for (i = 0; i < 10000 && task_state(child, tid) != 'Z'; i++)
		sleep_ms(1);
	assert_int_equal(task_state(child, tid), 'Z');

	assert_int_equal(hm_target_open(child, &t), HM_OK);
	assert_int_equal(hm_target_thread_state(t, tid), 0);
	assert_int_equal(hm_target_thread_oncpu(t, tid), 0);
	assert_true(hm_target_thread_state(t, child) != 0);   /* the main thread lives */
	hm_target_close(t);

	assert_int_equal(waitpid(tid, &status, __WALL), tid);   /* reap it */
	zombie_tid = 0;
	kill(child, SIGKILL);
	assert_int_equal(waitpid(child, &status, 0), child);
	zombie_child = 0;
	close(tidpipe[0]);
	close(gopipe[1]);
}

/* Many short-lived threads, each polled only while alive: the state table
 * must close the fds of the dead ones instead of piling them up. */
static int quick_pipe[2];

static void *quick(void *arg)
{
	char c;

	*(volatile pid_t *)arg = (pid_t)syscall(SYS_gettid);
	if (read(quick_pipe[0], &c, 1) < 0)
		return NULL;
	return NULL;
}

static int lowest_free_fd(void)
{
	int fd = dup(0);

	close(fd);
	return fd;
}

static void test_state_fds_released(void **state)
{
	hm_target *t;
	int i, j, before, during;

	assert_int_equal(pipe(quick_pipe), 0);
	before = lowest_free_fd();
	t = open_self();
	for (i = 0; i < 300; i++) {
		pthread_t th;
		volatile pid_t tid = 0;

		assert_int_equal(pthread_create(&th, NULL, quick, (void *)&tid), 0);
		for (j = 0; j < 1000 && !tid; j++)
			sleep_ms(1);
		assert_true(tid != 0);
		assert_true(hm_target_thread_state(t, tid) != 0);
		assert_int_equal(write(quick_pipe[1], "x", 1), 1);
		pthread_join(th, NULL);
	}
	during = lowest_free_fd();
	assert_true(during < before + 40);
	hm_target_close(t);
	assert_int_equal(lowest_free_fd(), before);
	close(quick_pipe[0]);
	close(quick_pipe[1]);
}

/* CPU time from schedstat: a spinning thread's grows, a blocked one's
 * stays put, a tid that is not the process's is refused; the schedstat
 * fds are closed with the target. */
static void test_thread_cputime(void **state)
{
	hm_target *t;
	pthread_t a, b;
	uint64_t s0 = 0, s1 = 0, z0 = 0, z1 = 0;
	int i, before;
	char st = 0;

	before = lowest_free_fd();
	t = open_self();
	if (!hm_target_has_cputime(t)) {
		hm_target_close(t);
		skip();   /* a kernel without scheduler statistics */
	}
	spin_stop = 0;
	spinner_tid = sleeper_tid = 0;
	assert_int_equal(pipe(sleeper_pipe), 0);
	assert_int_equal(pthread_create(&a, NULL, spinner, NULL), 0);
	assert_int_equal(pthread_create(&b, NULL, sleeper, NULL), 0);
	for (i = 0; i < 1000 && (!spinner_tid || !sleeper_tid); i++)
		sleep_ms(1);
	assert_true(spinner_tid && sleeper_tid);
	for (i = 0; i < 2000 && st != 'S'; i++) {
		st = hm_target_thread_state(t, sleeper_tid);
		if (st != 'S')
			sleep_ms(1);
	}
	assert_int_equal(st, 'S');

	/* A thread not charged yet (just started) reads 0, then its time. */
	for (i = 0; i < 5000 && hm_target_thread_cputime(t, spinner_tid, &s0) != 1; i++)
		sleep_ms(1);
	assert_true(s0 > 0);
	assert_int_equal(hm_target_thread_cputime(t, sleeper_tid, &z0), 1);
	for (i = 0; i < 5000 && s1 <= s0; i++) {
		sleep_ms(1);
		assert_int_equal(hm_target_thread_cputime(t, spinner_tid, &s1), 1);
	}
	assert_true(s1 > s0);
	/* Still blocked in read(): it has not run since. */
	assert_int_equal(hm_target_thread_cputime(t, sleeper_tid, &z1), 1);
	assert_true(z1 == z0);
	assert_int_equal(hm_target_thread_cputime(t, 999999, &z1), -1);

	spin_stop = 1;
	assert_int_equal(write(sleeper_pipe[1], "x", 1), 1);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	close(sleeper_pipe[0]);
	close(sleeper_pipe[1]);
	hm_target_close(t);
	assert_int_equal(lowest_free_fd(), before);
}

/* ---- pause / resume a child ---- */

static void *child_worker(void *arg)
{
	volatile uint64_t *c = arg;

	for (;;)
		(*c)++;
	return NULL;
}

static int any_thread_traced(pid_t pid)
{
	char path[128], line[256];
	pid_t tids[64];
	int i, n = 0, traced = 0;
	FILE *f;
	hm_target *t = NULL;

	if (hm_target_open(pid, &t) != HM_OK)
		return -1;
	n = hm_target_threads(t, tids, 64);
	hm_target_close(t);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/proc/%d/task/%d/status", pid, tids[i]);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			if (strncmp(line, "State:", 6) == 0 && strstr(line, "tracing stop"))
				traced = 1;
			if (strncmp(line, "TracerPid:", 10) == 0 && atoi(line + 10) != 0)
				traced = 1;
		}
		fclose(f);
	}
	return traced;
}

static void read_counters(hm_target *t, uint64_t out[3])
{
	hm_iov v = { (uint64_t)(uintptr_t)counters, out, 3 * sizeof(uint64_t) };

	assert_int_equal(hm_target_readv(t, &v, 1), HM_OK);
}

static void test_pause_resume(void **state)
{
	pid_t child = fork();
	hm_target *t = NULL;
	uint64_t c0[3], c1[3], c2[3];
	pid_t tids[16];
	int i, n = 0, status, round;

	assert_true(child >= 0);
	if (child == 0) {
		pthread_t th;

		for (i = 1; i < 3; i++)
			if (pthread_create(&th, NULL, child_worker, (void *)&counters[i]) != 0)
				_exit(1);
		child_worker((void *)&counters[0]);
		_exit(0);
	}
	assert_int_equal(hm_target_open(child, &t), HM_OK);
	for (i = 0; i < 2000 && n < 3; i++) {
		n = hm_target_threads(t, tids, 16);
		sleep_ms(1);
	}
	assert_int_equal(n, 3);
	sleep_ms(20);

	for (round = 0; round < 3; round++) {
		assert_int_equal(hm_target_pause(t), HM_OK);
		for (i = 0; i < n; i++)
			assert_int_equal(hm_target_thread_state(t, tids[i]), 't');
		read_counters(t, c0);
		sleep_ms(30);
		read_counters(t, c1);
		assert_memory_equal(c0, c1, sizeof(c0));   /* nothing moved */
		hm_target_resume(t);
		/* Every thread runs again (allow a loaded machine 5 s). */
		for (i = 0; i < 5000; i++) {
			read_counters(t, c2);
			if (c2[0] > c1[0] && c2[1] > c1[1] && c2[2] > c1[2])
				break;
			sleep_ms(1);
		}
		for (i = 0; i < 3; i++)
			assert_true(c2[i] > c1[i]);
		assert_int_equal(any_thread_traced(child), 0);
	}
	/* Resume without pause is harmless. */
	hm_target_resume(t);
	assert_true(hm_target_alive(t));

	kill(child, SIGKILL);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_false(hm_target_alive(t));
	assert_int_equal(hm_target_pause(t), HM_ENOPROC);
	assert_int_equal(hm_target_read(t, (uint64_t)(uintptr_t)counters, c0, 8), HM_EIO);
	hm_target_close(t);
}

/* A grandchild in a new PID namespace sees itself as pid 1; the host tid of
 * its ns tid 1 is the pid we know it by. Skipped where unshare is denied. */
static void test_host_tid_other_namespace(void **state)
{
	int fds[2], status;
	pid_t mid, inner = 0;
	hm_target *t = NULL;
	pid_t tids[8];
	int n;

	assert_int_equal(pipe(fds), 0);
	mid = fork();
	assert_true(mid >= 0);
	if (mid == 0) {
		pid_t g;

		close(fds[0]);
		if (unshare(CLONE_NEWPID) != 0)
			_exit(77);
		g = fork();
		if (g == 0) {
			pthread_t th;

			close(fds[1]);
			if (pthread_create(&th, NULL, child_worker, (void *)&counters[1]) != 0)
				_exit(1);
			child_worker((void *)&counters[0]);
			_exit(0);
		}
		if (g < 0 || write(fds[1], &g, sizeof(g)) != sizeof(g))
			_exit(1);
		waitpid(g, NULL, 0);
		_exit(0);
	}
	close(fds[1]);
	if (read(fds[0], &inner, sizeof(inner)) != sizeof(inner)) {
		close(fds[0]);
		waitpid(mid, &status, 0);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
			skip();
		fail_msg("namespace helper failed");
	}
	close(fds[0]);
	assert_int_equal(hm_target_open(inner, &t), HM_OK);
	assert_int_equal(hm_target_host_tid(t, 1), inner);
	for (n = 0; n < 1000 && hm_target_threads(t, tids, 8) < 2; n++)
		sleep_ms(1);
	n = hm_target_threads(t, tids, 8);
	assert_int_equal(n, 2);
	/* The second thread is tid 2 inside; it may be newer than the table,
	 * which is rebuilt on a miss at most every 50 ms. */
	sleep_ms(60);
	assert_int_equal(hm_target_host_tid(t, 2), tids[0] == inner ? tids[1] : tids[0]);
	assert_int_equal(hm_target_host_tid(t, 777), 0);
	assert_int_equal(hm_target_host_tid(t, 778), 0);   /* rate-limited miss */
	hm_target_close(t);
	kill(inner, SIGKILL);
	waitpid(mid, &status, 0);
}

static void test_pause_self_refused(void **state)
{
	hm_target *t = open_self();

	assert_int_equal(hm_target_pause(t), HM_EINVAL);
	hm_target_resume(t);
	hm_target_close(t);
}

/* hm_target_open_mem: memory from a callback (what fuzz_walker reads). */
static int arena_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	const uint8_t *a = ctx;
	if (addr < 0x1000 || addr - 0x1000 > 64 || len > 64 - (addr - 0x1000))
		return -1;
	memcpy(buf, a + (addr - 0x1000), len);
	return 0;
}

static void test_open_mem(void **state)
{
	uint8_t arena[64];
	for (int i = 0; i < 64; i++)
		arena[i] = (uint8_t)i;
	hm_target *t;
	assert_int_equal(hm_target_open_mem(arena_read, arena, &t), HM_OK);
	uint8_t b[8], c[4];
	assert_int_equal(hm_target_read(t, 0x1008, b, 8), HM_OK);
	assert_int_equal(b[0], 8);
	assert_int_equal(hm_target_read(t, 0x1040 - 4, b, 8), HM_EIO);
	hm_iov iov[2] = {{0x1010, b, 8}, {0x1003, c, 4}};
	assert_int_equal(hm_target_readv(t, iov, 2), HM_OK);
	assert_int_equal(b[7], 0x17);
	assert_int_equal(c[0], 3);
	iov[1].addr = 0x900;
	assert_int_equal(hm_target_readv(t, iov, 2), HM_EIO);
	/* no process behind it: /proc lookups find nothing, tids map to themselves */
	assert_int_equal(hm_target_alive(t), 0);
	assert_int_equal(hm_target_thread_state(t, getpid()), 0);
	assert_int_equal(hm_target_host_tid(t, 42), 42);
	hm_target_close(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_missing),
		cmocka_unit_test(test_open_zombie),
		cmocka_unit_test(test_open_forbidden),
		cmocka_unit_test(test_read_self),
		cmocka_unit_test(test_readv),
		cmocka_unit_test(test_maps),
		cmocka_unit_test(test_find_module_bias),
		cmocka_unit_test(test_find_module_deleted),
		cmocka_unit_test(test_cmdline_environ),
		cmocka_unit_test(test_threads_and_states),
		cmocka_unit_test_teardown(test_zombie_thread_is_gone, zombie_teardown),
		cmocka_unit_test(test_state_fds_released),
		cmocka_unit_test(test_thread_cputime),
		cmocka_unit_test(test_pause_resume),
		cmocka_unit_test(test_host_tid_other_namespace),
		cmocka_unit_test(test_pause_self_refused),
		cmocka_unit_test(test_open_mem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
