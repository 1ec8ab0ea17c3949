/* test_target_exec.c - hm_target_open on a process that is exec'ing: a child
 * (this binary, started with --exec-chain N) replaces itself N times in a row
 * while the parent opens it again and again. An open that lands in an exec
 * (its maps read from the old image, its memory probed in the new one) must
 * still succeed; only the end of the chain (the process gone) may fail, and
 * then as "no such process". */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "proc/target.h"

#define CHAIN 400

/* The child: exec itself with n-1 until n is 0, then exit. */
static int exec_chain(int n)
{
	if (n <= 0)
		return 0;
	char arg[16];
	snprintf(arg, sizeof arg, "%d", n - 1);
	char *argv[] = {"test_target_exec", "--exec-chain", arg, NULL};
	execv("/proc/self/exe", argv);
	return 127;
}

static void test_open_during_exec(void **state)
{
	(void)state;
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* start when the parent is ready */
		char c;
		close(fds[1]);
		if (read(fds[0], &c, 1) != 1)
			_exit(1);
		_exit(exec_chain(CHAIN));
	}
	close(fds[0]);
	assert_int_equal(write(fds[1], "g", 1), 1);
	close(fds[1]);
	int opened = 0, bad = 0, status;
	char last[256] = "";
	while (waitpid(child, &status, WNOHANG) == 0) {
		hm_target *t = NULL;
		int rc = hm_target_open(child, &t);
		if (rc == HM_OK) {
			opened++;
			hm_target_close(t);
		} else if (rc != HM_ENOPROC) {
			bad++;
			snprintf(last, sizeof last, "%s", hm_errmsg());
		}
	}
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (bad)
		fail_msg("%d of %d opens failed during exec, last: %s", bad, opened + bad, last);
	assert_true(opened > 0);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--exec-chain") == 0)
		return exec_chain(atoi(argv[2]));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_during_exec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
