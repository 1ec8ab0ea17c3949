/* test_cpuattr.c - analyze/cpu.c, the CPU attribution behind `homura run`:
 * which IPs are Python, native or system; which files are the program's;
 * library frames folded into the program's calling line (or kept with
 * profile_all); each sample joined with its thread's nearest stack walk;
 * per-function totals; GPU samples credited to the running lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "analyze/cpu.h"

#define MS 1000000ull

static hm_pycode codes[8];

static const hm_pycode *code(int i, const char *name, const char *file, int first)
{
	hm_pycode *c = &codes[i];
	memset(c, 0, sizeof *c);
	c->addr = 0x1000 + (uint64_t)i;
	c->name = c->qualname = name;
	c->filename = file;
	c->firstlineno = first;
	return c;
}

/* A thread whose stack is n (code, line) pairs, leaf first. */
static void thread(hm_pythread *th, hm_pyframe *frames, pid_t tid, int n, ...)
{
	memset(th, 0, sizeof *th);
	th->tid = tid;
	th->valid = 1;
	th->nframes = n;
	th->frames = frames;
	va_list ap;
	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		frames[i].code = va_arg(ap, const hm_pycode *);
		frames[i].line = va_arg(ap, int);
		frames[i].addr = 0;
		frames[i].entry = 0;
	}
	va_end(ap);
}

static const hm_cpuline *find(const hm_cpuline *l, size_t n, const char *file, int line)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(l[i].file, file) && l[i].line == line)
			return &l[i];
	return NULL;
}

static void test_classify(void **state)
{
	(void)state;
	hm_cpuattr *a = hm_cpuattr_new(0);
	hm_cpuattr_add_interp_range(a, 10, 0x400000, 0x800000);
	hm_cpuattr_add_interp_range(a, 10, 0x7f0000000000, 0x7f0000100000);
	assert_int_equal(hm_cpuattr_classify(a, 10, 0x400000, 0), HM_CPU_PYTHON);
	assert_int_equal(hm_cpuattr_classify(a, 10, 0x7fffff, 0), HM_CPU_PYTHON);
	assert_int_equal(hm_cpuattr_classify(a, 10, 0x800000, 0), HM_CPU_NATIVE);
	assert_int_equal(hm_cpuattr_classify(a, 10, 0x7f0000000010, 0), HM_CPU_PYTHON);
	assert_int_equal(hm_cpuattr_classify(a, 10, 0x7f2000000000, 0), HM_CPU_NATIVE);
	/* another process (a child): its own ranges */
	assert_int_equal(hm_cpuattr_classify(a, 11, 0x400000, 0), HM_CPU_NATIVE);
	hm_cpuattr_add_interp_range(a, 11, 0x500000, 0x600000);
	assert_int_equal(hm_cpuattr_classify(a, 11, 0x500000, 0), HM_CPU_PYTHON);
	assert_int_equal(hm_cpuattr_classify(a, 11, 0x400000, 0), HM_CPU_NATIVE);
	/* a kernel IP is system whatever its value */
	assert_int_equal(hm_cpuattr_classify(a, 10, 0x400010, 1), HM_CPU_SYSTEM);
	assert_int_equal(hm_cpuattr_classify(a, 10, 0xffffffff81000000ull, 1), HM_CPU_SYSTEM);
	hm_cpuattr_free(a);
}

static void test_own_files(void **state)
{
	(void)state;
	assert_true(hm_cpuattr_own_file("/home/me/app/main.py"));
	assert_true(hm_cpuattr_own_file("main.py"));
	assert_true(hm_cpuattr_own_file("<string>"));
	assert_false(hm_cpuattr_own_file("/usr/lib/python3.11/json/encoder.py"));
	assert_false(hm_cpuattr_own_file("/root/.pyenv/versions/3.12.1/lib/python3.12/threading.py"));
	assert_false(hm_cpuattr_own_file("/venv/lib/python3.12/site-packages/numpy/core/x.py"));
	assert_false(hm_cpuattr_own_file("/usr/lib/python3/dist-packages/pandas/x.py"));
	assert_false(hm_cpuattr_own_file("<frozen importlib._bootstrap>"));
	assert_false(hm_cpuattr_own_file(""));
	assert_false(hm_cpuattr_own_file(NULL));
}

static void test_fold_and_join(void **state)
{
	(void)state;
	hm_cpuattr *a = hm_cpuattr_new(0);
	hm_pythread th;
	hm_pyframe fr[4];
	const hm_pycode *lib = code(0, "dumps", "/usr/lib/python3.11/json/__init__.py", 180);
	const hm_pycode *mine = code(1, "work", "/app/main.py", 10);
	const hm_pycode *mod = code(2, "<module>", "/app/main.py", 1);
	/* thread 100 in the library called from main.py:12, at t = 10 ms */
	thread(&th, fr, 100, 3, lib, 231, mine, 12, mod, 30);
	hm_cpuattr_observe(a, &th, 10 * MS);
	/* then on main.py:14 itself at t = 20 ms */
	thread(&th, fr, 100, 2, mine, 14, mod, 30);
	hm_cpuattr_observe(a, &th, 20 * MS);
	/* thread 200: a library thread with nothing of the program's */
	thread(&th, fr, 200, 1, lib, 99);
	hm_cpuattr_observe(a, &th, 10 * MS);

	hm_cpuattr_sample(a, 100, 11 * MS, HM_CPU_PYTHON, 5 * MS);   /* nearest: 10 ms */
	hm_cpuattr_sample(a, 100, 14 * MS, HM_CPU_NATIVE, 5 * MS);   /* 10 ms */
	hm_cpuattr_sample(a, 100, 16 * MS, HM_CPU_SYSTEM, 5 * MS);   /* 20 ms */
	hm_cpuattr_sample(a, 100, 22 * MS, HM_CPU_PYTHON, 5 * MS);   /* 20 ms */
	hm_cpuattr_sample(a, 100, 40 * MS, HM_CPU_PYTHON, 5 * MS);   /* too far: outside */
	/* far from both walks, but they agree: that line */
	thread(&th, fr, 400, 1, mine, 13);
	hm_cpuattr_observe(a, &th, 100 * MS);
	hm_cpuattr_observe(a, &th, 200 * MS);
	hm_cpuattr_sample(a, 400, 150 * MS, HM_CPU_NATIVE, 5 * MS);
	hm_cpuattr_sample(a, 200, 10 * MS, HM_CPU_NATIVE, 5 * MS);   /* no own frame */
	hm_cpuattr_sample(a, 300, 10 * MS, HM_CPU_SYSTEM, 5 * MS);   /* never walked */

	uint64_t total[3], outside[3];
	hm_cpuattr_totals(a, total, outside);
	assert_int_equal(total[HM_CPU_PYTHON], 3);
	assert_int_equal(total[HM_CPU_NATIVE], 3);
	assert_int_equal(total[HM_CPU_SYSTEM], 2);
	assert_int_equal(outside[HM_CPU_PYTHON], 1);
	assert_int_equal(outside[HM_CPU_NATIVE], 1);
	assert_int_equal(outside[HM_CPU_SYSTEM], 1);

	const hm_cpuline *l;
	size_t n = hm_cpuattr_lines(a, &l);
	assert_int_equal(n, 3);     /* no library line */
	const hm_cpuline *l13 = find(l, n, "/app/main.py", 13);
	assert_non_null(l13);
	assert_int_equal(l13->samples[HM_CPU_NATIVE], 1);
	const hm_cpuline *l12 = find(l, n, "/app/main.py", 12), *l14 = find(l, n, "/app/main.py", 14);
	assert_non_null(l12);
	assert_non_null(l14);
	assert_int_equal(l12->samples[HM_CPU_PYTHON], 1);
	assert_int_equal(l12->samples[HM_CPU_NATIVE], 1);
	assert_int_equal(l14->samples[HM_CPU_SYSTEM], 1);
	assert_int_equal(l14->samples[HM_CPU_PYTHON], 1);
	assert_string_equal(l12->func, "work");
	assert_int_equal(l12->func_line, 10);

	const hm_cpuline *f;
	n = hm_cpuattr_functions(a, &f);
	assert_int_equal(n, 1);
	assert_string_equal(f[0].func, "work");
	assert_int_equal(f[0].line, 10);
	assert_int_equal(f[0].samples[0] + f[0].samples[1] + f[0].samples[2], 5);
	hm_cpuattr_free(a);
}

/* A thread that sleeps at one line and wakes briefly to run another: the
 * walks made while it slept show the sleep line at both ends of each
 * burst; the samples go to the line it was seen running at (within five
 * times the gap), not to the sleep line. Without switches, or with no
 * walk of it running near enough, the nearest walk as before. */
static void test_join_prefers_walks_made_running(void **state)
{
	(void)state;
	hm_cpuattr *a = hm_cpuattr_new(0);
	hm_pythread th;
	hm_pyframe fr[2];
	const hm_pycode *mine = code(1, "main", "/app/loop.py", 3);
	const hm_pycode *mod = code(2, "<module>", "/app/loop.py", 1);
	/* bursts of 0.2 ms every 2 ms: in at 2k ms, out at 2k + 0.2 ms */
	for (uint64_t k = 0; k < 20; k++) {
		hm_cpuattr_switch(a, 100, 2 * k * MS, 1);
		hm_cpuattr_switch(a, 100, 2 * k * MS + 200000, 0);
		/* asleep at line 9 half-way between bursts */
		thread(&th, fr, 100, 2, mine, 9, mod, 20);
		hm_cpuattr_observe(a, &th, 2 * k * MS + MS);
	}
	/* seen running at line 7 once, in the burst at 10 ms */
	thread(&th, fr, 100, 2, mine, 7, mod, 20);
	hm_cpuattr_observe(a, &th, 10 * MS + 100000);
	/* samples in bursts at 4, 20 and 34 ms: all on line 7 (34 ms: 24 ms
	 * from the running walk, within 5 x 5 ms) */
	hm_cpuattr_sample(a, 100, 4 * MS + 100000, HM_CPU_PYTHON, 5 * MS);
	hm_cpuattr_sample(a, 100, 20 * MS + 100000, HM_CPU_PYTHON, 5 * MS);
	hm_cpuattr_sample(a, 100, 34 * MS + 100000, HM_CPU_SYSTEM, 5 * MS);
	/* a preempted thread stays runnable: its walks count as running */
	hm_cpuattr_switch(a, 300, 0, 1);
	hm_cpuattr_switch(a, 300, 1 * MS, 1);    /* out, preempted (on) */
	thread(&th, fr, 300, 2, mine, 12, mod, 20);
	hm_cpuattr_observe(a, &th, 1 * MS + 500000);
	hm_cpuattr_sample(a, 300, 1 * MS + 400000, HM_CPU_PYTHON, 5 * MS);
	/* switches given out of order (two CPUs' rings) are put in order */
	hm_cpuattr_switch(a, 400, 3 * MS, 0);
	hm_cpuattr_switch(a, 400, 1 * MS, 1);
	hm_cpuattr_switch(a, 400, 2 * MS, 1);
	thread(&th, fr, 400, 2, mine, 13, mod, 20);
	hm_cpuattr_observe(a, &th, 2 * MS + 500000);   /* running: 1-3 ms */
	thread(&th, fr, 400, 2, mine, 14, mod, 20);
	hm_cpuattr_observe(a, &th, 2 * MS + 700000);   /* running too */
	thread(&th, fr, 400, 2, mine, 9, mod, 20);
	hm_cpuattr_observe(a, &th, 3 * MS + 10000);    /* blocked */
	hm_cpuattr_sample(a, 400, 3 * MS, HM_CPU_PYTHON, 5 * MS);   /* line 14, not 9 */
	/* no switches known for thread 200: the nearest walk, as before */
	thread(&th, fr, 200, 2, mine, 9, mod, 20);
	hm_cpuattr_observe(a, &th, 1 * MS);
	hm_cpuattr_observe(a, &th, 3 * MS);
	hm_cpuattr_sample(a, 200, 2 * MS, HM_CPU_PYTHON, 5 * MS);

	const hm_cpuline *l;
	size_t n = hm_cpuattr_lines(a, &l);
	const hm_cpuline *l7 = find(l, n, "/app/loop.py", 7);
	const hm_cpuline *l9 = find(l, n, "/app/loop.py", 9);
	const hm_cpuline *l12 = find(l, n, "/app/loop.py", 12);
	const hm_cpuline *l14 = find(l, n, "/app/loop.py", 14);
	assert_non_null(l7);
	assert_int_equal(l7->samples[HM_CPU_PYTHON], 2);
	assert_int_equal(l7->samples[HM_CPU_SYSTEM], 1);
	assert_non_null(l9);
	assert_int_equal(l9->samples[HM_CPU_PYTHON], 1);   /* thread 200's only */
	assert_non_null(l12);
	assert_int_equal(l12->samples[HM_CPU_PYTHON], 1);
	assert_non_null(l14);
	assert_int_equal(l14->samples[HM_CPU_PYTHON], 1);
	/* far from any running walk: the sleep line's walks, as before */
	hm_cpuattr_switch(a, 100, 200 * MS, 1);
	hm_cpuattr_switch(a, 100, 200 * MS + 200000, 0);
	thread(&th, fr, 100, 2, mine, 9, mod, 20);
	hm_cpuattr_observe(a, &th, 201 * MS);
	hm_cpuattr_sample(a, 100, 200 * MS + 100000, HM_CPU_PYTHON, 5 * MS);
	n = hm_cpuattr_lines(a, &l);
	l9 = find(l, n, "/app/loop.py", 9);
	assert_int_equal(l9->samples[HM_CPU_PYTHON], 2);
	hm_cpuattr_free(a);
}

static void test_profile_all_and_string(void **state)
{
	(void)state;
	hm_cpuattr *a = hm_cpuattr_new(1);
	hm_pythread th;
	hm_pyframe fr[4];
	const hm_pycode *lib = code(0, "dumps", "/usr/lib/python3.11/json/__init__.py", 180);
	const hm_pycode *mine = code(1, "work", "/app/main.py", 10);
	thread(&th, fr, 7, 2, lib, 231, mine, 12);
	hm_cpuattr_observe(a, &th, 0);
	hm_cpuattr_sample(a, 7, 0, HM_CPU_PYTHON, MS);
	const hm_cpuline *l;
	size_t n = hm_cpuattr_lines(a, &l);
	assert_int_equal(n, 1);
	assert_string_equal(l[0].file, "/usr/lib/python3.11/json/__init__.py");
	assert_int_equal(l[0].line, 231);
	hm_cpuattr_free(a);

	/* "<string>" is the program's as the outermost frame (python -c), not
	 * when a library exec()s it */
	a = hm_cpuattr_new(0);
	const hm_pycode *str = code(3, "<module>", "<string>", 1);
	const hm_pycode *site = code(4, "addpackage", "/usr/lib/python3.11/site.py", 160);
	thread(&th, fr, 8, 2, str, 1, site, 200);
	hm_cpuattr_observe(a, &th, 0);
	hm_cpuattr_sample(a, 8, 0, HM_CPU_PYTHON, MS);
	assert_int_equal(hm_cpuattr_lines(a, &l), 0);
	thread(&th, fr, 9, 1, str, 3);
	hm_cpuattr_observe(a, &th, 0);
	hm_cpuattr_sample(a, 9, 0, HM_CPU_NATIVE, MS);
	n = hm_cpuattr_lines(a, &l);
	assert_int_equal(n, 1);
	assert_string_equal(l[0].file, "<string>");
	assert_int_equal(l[0].line, 3);
	hm_cpuattr_free(a);

	/* ... and the program's when the program runs it: a function of
	 * python -c, the program's own exec() (as the memory side decides) */
	a = hm_cpuattr_new(0);
	const hm_pycode *fn = code(5, "f", "<string>", 1);
	const hm_pycode *app = code(6, "<module>", "/app/t.py", 1);
	thread(&th, fr, 10, 2, fn, 2, str, 5);
	hm_cpuattr_observe(a, &th, 0);
	hm_cpuattr_sample(a, 10, 0, HM_CPU_PYTHON, MS);
	thread(&th, fr, 11, 2, str, 7, app, 10);
	hm_cpuattr_observe(a, &th, 0);
	hm_cpuattr_sample(a, 11, 0, HM_CPU_PYTHON, MS);
	n = hm_cpuattr_lines(a, &l);
	assert_int_equal(n, 2);
	assert_string_equal(l[0].file, "<string>");
	assert_int_equal(l[0].line, 2);
	assert_string_equal(l[1].file, "<string>");
	assert_int_equal(l[1].line, 7);
	hm_cpuattr_free(a);
}

static void test_gpu_credit(void **state)
{
	(void)state;
	hm_cpuattr *a = hm_cpuattr_new(0);
	hm_pythread th;
	hm_pyframe fr[2];
	const hm_pycode *mine = code(1, "train", "/app/t.py", 1);
	thread(&th, fr, 1, 1, mine, 5);
	hm_cpuattr_observe(a, &th, 1000 * MS);
	thread(&th, fr, 2, 1, mine, 9);
	hm_cpuattr_observe(a, &th, 1000 * MS);
	hm_cpuattr_sample(a, 2, 1000 * MS, HM_CPU_PYTHON, MS);
	/* thread 2 ran recently: it gets the GPU samples, thread 1 not */
	hm_cpuattr_gpu(a, 1100 * MS, 80, 512);
	hm_cpuattr_gpu(a, 1150 * MS, 40, 1024);
	/* later nobody ran: the first thread's line */
	hm_cpuattr_gpu(a, 5000 * MS, 90, 256);
	const hm_cpuline *l;
	size_t n = hm_cpuattr_lines(a, &l);
	const hm_cpuline *l5 = find(l, n, "/app/t.py", 5), *l9 = find(l, n, "/app/t.py", 9);
	assert_non_null(l5);
	assert_non_null(l9);
	assert_int_equal(l9->gpu_n, 2);
	assert_true(l9->gpu_util_sum == 120.0);
	assert_true(l9->gpu_mem_max_mb == 1024.0);
	assert_int_equal(l5->gpu_n, 1);
	assert_true(l5->gpu_mem_max_mb == 256.0);
	hm_cpuattr_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_own_files),
		cmocka_unit_test(test_fold_and_join),
		cmocka_unit_test(test_join_prefers_walks_made_running),
		cmocka_unit_test(test_profile_all_and_string),
		cmocka_unit_test(test_gpu_credit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
