/* test_discover.c - the /proc helpers behind `homura agent --all`: program
 * names from command lines, start times, the cheap "is it Python" filter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <unistd.h>

#include "proc/discover.h"

static void name_of(const char *args[], int n, char *buf, size_t cap)
{
	char cmd[512];
	size_t len = 0;
	for (int i = 0; i < n; i++) {
		size_t l = strlen(args[i]) + 1;
		memcpy(cmd + len, args[i], l);
		len += l;
	}
	hm_proc_program_name(cmd, len, buf, cap);
}

static void test_program_name(void **state)
{
	(void)state;
	char b[64];
	const char *a1[] = {"/usr/bin/python3", "/srv/app/server.py", "--port", "80"};
	name_of(a1, 4, b, sizeof b);
	assert_string_equal(b, "server");
	const char *a2[] = {"python", "-u", "-X", "dev", "worker.py"};
	name_of(a2, 5, b, sizeof b);
	assert_string_equal(b, "worker");
	const char *a3[] = {"python3.12", "-m", "gunicorn", "app:wsgi"};
	name_of(a3, 4, b, sizeof b);
	assert_string_equal(b, "gunicorn");
	const char *a4[] = {"/opt/py/bin/python3.11", "-c", "print(1)"};
	name_of(a4, 3, b, sizeof b);
	assert_string_equal(b, "python3.11");
	/* an entry-point script started by its shebang: the kernel puts the
	 * interpreter first */
	const char *a5[] = {"/usr/bin/python3", "/usr/local/bin/celery", "worker"};
	name_of(a5, 3, b, sizeof b);
	assert_string_equal(b, "celery");
	/* not an interpreter: a program embedding Python, named by argv[0] */
	const char *a8[] = {"/usr/bin/uwsgi", "--plugin", "python3", "--http-socket", ":8000"};
	name_of(a8, 5, b, sizeof b);
	assert_string_equal(b, "uwsgi");
	const char *a9[] = {"celery", "worker"};   /* a rewritten command line */
	name_of(a9, 2, b, sizeof b);
	assert_string_equal(b, "celery");
	const char *a6[] = {"python", "-mhttp.server"};
	name_of(a6, 2, b, sizeof b);
	assert_string_equal(b, "http.server");
	hm_proc_program_name("", 0, b, sizeof b);
	assert_string_equal(b, "python");
	/* truncation is safe */
	const char *a7[] = {"python", "a_very_long_script_name_indeed.py"};
	name_of(a7, 2, b, 8);
	assert_int_equal(strlen(b), 7);
}

static void test_proc_helpers(void **state)
{
	(void)state;
	pid_t self = getpid();
	assert_true(hm_proc_starttime(self) > 0);
	assert_int_equal(hm_proc_starttime(self), hm_proc_starttime(self));
	assert_int_equal(hm_proc_starttime(0x3ffffff0), 0);
	assert_int_equal(hm_proc_looks_python(self), 0);     /* a C test program */
	assert_int_equal(hm_proc_looks_python(0x3ffffff0), 0);
	char *cmd = hm_proc_cmdline(self, 4096);
	assert_non_null(cmd);
	assert_non_null(strstr(cmd, "test_discover"));
	free(cmd);
	assert_null(hm_proc_cmdline(0x3ffffff0, 4096));
	pid_t pids[4096];
	int n = hm_discover_pids(pids, 4096);
	assert_true(n > 0);
	int found = 0;
	for (int i = 0; i < n; i++)
		found |= pids[i] == self;
	assert_true(found || n == 4096);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_program_name),
		cmocka_unit_test(test_proc_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
