/* test_launch.c - hm_launch and its two steps (proc/launch.h) with real
 * children: a held child runs nothing before the go, a cancelled one never
 * runs, a command that cannot be run gives exec's errno (child reaped),
 * and the one-step hm_launch still runs its command. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "proc/launch.h"

static char dir[] = "/tmp/hm_launch_XXXXXX";

static void path_in_dir(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* `sh -c "echo > FILE"` as argv (the file tells whether it ran) */
static char **touch_cmd(const char *file, char *buf, size_t n)
{
	static char *argv[4];
	snprintf(buf, n, "echo ran > '%s'", file);
	argv[0] = "/bin/sh";
	argv[1] = "-c";
	argv[2] = buf;
	argv[3] = NULL;
	return argv;
}

static void test_held_runs_nothing_before_go(void **state)
{
	(void)state;
	char file[256], buf[512];
	path_in_dir(file, sizeof file, "held");
	hm_held h;
	assert_int_equal(hm_launch_held(touch_cmd(file, buf, sizeof buf), 0, &h), 0);
	assert_true(h.pid > 0);
	/* it waits: still homura's child, not exec'd, however long we take */
	usleep(100000);
	assert_false(exists(file));
	int st = 0;
	assert_int_equal(waitpid(h.pid, &st, WNOHANG), 0);
	pid_t pid = hm_launch_go(&h);
	assert_int_equal(pid, h.pid);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(exists(file));
	unlink(file);
}

static void test_cancel_runs_nothing(void **state)
{
	(void)state;
	char file[256], buf[512];
	path_in_dir(file, sizeof file, "cancelled");
	hm_held h;
	assert_int_equal(hm_launch_held(touch_cmd(file, buf, sizeof buf), 0, &h), 0);
	pid_t pid = h.pid;
	hm_launch_cancel(&h);
	/* reaped by cancel, and it never ran the command */
	errno = 0;
	assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	assert_false(exists(file));
	assert_int_equal(h.pid, -1);
}

static void test_exec_error(void **state)
{
	(void)state;
	char *argv[] = {"/nonexistent/homura-no-such-program", NULL};
	hm_held h;
	assert_int_equal(hm_launch_held(argv, 1, &h), 0);
	pid_t child = h.pid;
	errno = 0;
	assert_int_equal(hm_launch_go(&h), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(waitpid(child, NULL, WNOHANG), -1);   /* already reaped */
	assert_int_equal(errno, ECHILD);
	/* the one-step form too */
	errno = 0;
	assert_int_equal(hm_launch(argv, 1), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_one_step(void **state)
{
	(void)state;
	char file[256], buf[512];
	path_in_dir(file, sizeof file, "onestep");
	pid_t pid = hm_launch(touch_cmd(file, buf, sizeof buf), 1);
	assert_true(pid > 0);
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(exists(file));
	unlink(file);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_held_runs_nothing_before_go),
		cmocka_unit_test(test_cancel_runs_nothing),
		cmocka_unit_test(test_exec_error),
		cmocka_unit_test(test_one_step),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(dir);
	return rc;
}
