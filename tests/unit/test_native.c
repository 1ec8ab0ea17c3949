/* test_native.c - the --native module: symbol roles, merging native and
 * Python stacks for both frame models (one Python frame per eval call on
 * <=3.10, runs ending at an entry frame on 3.11+), torn and truncated
 * stacks, the profile stack it builds, and a live unwind of a forked child
 * that must be left running and untraced. */
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "native/native.h"
#include "sample/sampler.h"

static void test_roles(void **state)
{
	(void)state;
	assert_int_equal(hm_native_role("_PyEval_EvalFrameDefault", 3), HM_NAT_EVAL);
	assert_int_equal(hm_native_role("_PyEval_EvalFrameDefault.cold", 3), HM_NAT_EVAL);
	assert_int_equal(hm_native_role("PyEval_EvalFrameEx", 2), HM_NAT_EVAL);
	assert_int_equal(hm_native_role("PyEval_EvalFrameEx", 3), HM_NAT_PLUMBING);
	assert_int_equal(hm_native_role("_PyFunction_Vectorcall", 3), HM_NAT_PLUMBING);
	assert_int_equal(hm_native_role("function_code_fastcall", 3), HM_NAT_PLUMBING);
	assert_int_equal(hm_native_role("cfunction_vectorcall_O", 3), HM_NAT_PLUMBING);
	assert_int_equal(hm_native_role("_PyEval_Vector.isra.0", 3), HM_NAT_PLUMBING);
	assert_int_equal(hm_native_role("deflate", 3), HM_NAT_PLAIN);
	assert_int_equal(hm_native_role("_PyEval_EvalFrameDefaultX", 3), HM_NAT_PLAIN);
	assert_int_equal(hm_native_role("main", 3), HM_NAT_PLAIN);
	assert_int_equal(hm_native_role(NULL, 3), HM_NAT_PLAIN);
}

/* ---- synthetic stacks ---------------------------------------------------- */

static hm_natsym nsym(const char *name)
{
	hm_natsym s;
	memset(&s, 0, sizeof s);
	s.name = name;
	s.file = "lib.so";
	s.module = "lib.so";
	s.role = hm_native_role(name, 3);
	return s;
}

struct fixture {
	hm_natsym syms[16];
	const hm_natsym *ptrs[16];
	hm_natstack ns;
	hm_pycode codes[8];
	hm_pyframe frames[8];
	hm_pythread th;
};

static void set_native(struct fixture *f, const char *const *names, int n)
{
	for (int i = 0; i < n; i++) {
		f->syms[i] = nsym(names[i]);
		f->ptrs[i] = &f->syms[i];
	}
	memset(&f->ns, 0, sizeof f->ns);
	f->ns.state = HM_NATSTACK_OK;
	f->ns.nframes = n;
	f->ns.frames = f->ptrs;
}

static void set_python(struct fixture *f, const char *const *names, const int *entry, int n)
{
	for (int i = 0; i < n; i++) {
		memset(&f->codes[i], 0, sizeof f->codes[i]);
		f->codes[i].name = f->codes[i].qualname = names[i];
		f->codes[i].filename = "prog.py";
		f->frames[i] = (hm_pyframe){&f->codes[i], 10 + i, 0x1000u * (unsigned)(i + 1),
					    entry ? entry[i] : 0};
	}
	memset(&f->th, 0, sizeof f->th);
	f->th.valid = 1;
	f->th.tid = 1234;
	f->th.nframes = n;
	f->th.frames = f->frames;
}

static void expect(const hm_mframe *m, int n, const char *const *want, int nwant)
{
	assert_int_equal(n, nwant);
	for (int i = 0; i < n; i++) {
		const char *got = m[i].py ? m[i].py->code->name : m[i].nat->name;
		assert_string_equal(got, want[i]);
		assert_true((m[i].py != NULL) != (m[i].nat != NULL));
	}
}

static hm_pylayout layout(int model)
{
	hm_pylayout L;
	memset(&L, 0, sizeof L);
	L.major = 3;
	L.minor = model == HM_FRAMES_OBJECTS ? 10 : 12;
	L.frame_model = model;
	return L;
}

static void test_merge_310(void **state)
{
	(void)state;
	struct fixture f;
	static const char *const nat[] = {
		"deflate", "zlib_compress", "cfunction_vectorcall_O", "_PyEval_EvalFrameDefault",
		"function_code_fastcall", "_PyFunction_Vectorcall", "_PyEval_EvalFrameDefault",
		"_PyEval_EvalFrameDefault", "PyEval_EvalCode", "run_mod", "main", "__libc_start_main"};
	static const char *const py[] = {"compress_loop", "outer", "<module>"};
	set_native(&f, nat, 12);
	set_python(&f, py, NULL, 3);
	hm_pylayout L = layout(HM_FRAMES_OBJECTS);
	hm_mframe m[32];
	int n = hm_native_merge(&f.ns, &f.th, &L, m, 32);
	static const char *const want[] = {"deflate", "zlib_compress", "compress_loop", "outer",
					   "<module>"};
	expect(m, n, want, 5);   /* start-up below <module> is dropped */
}

static void test_merge_312_entry_runs(void **state)
{
	(void)state;
	struct fixture f;
	/* qsort called from sort_once, calling back into cmp: the inner eval
	 * call runs cmp (entry), the outer one sort_once, main and <module>. */
	static const char *const nat[] = {
		"PyLong_FromLong", "_PyEval_EvalFrameDefault", "_PyObject_Call", "closure_fcn",
		"msort_with_tmp", "qsort_r", "ffi_call", "PyCFuncPtr_call", "_PyEval_EvalFrameDefault",
		"PyEval_EvalCode", "main"};
	static const char *const py[] = {"cmp", "sort_once", "main", "<module>"};
	static const int entry[] = {1, 0, 0, 1};
	set_native(&f, nat, 11);
	set_python(&f, py, entry, 4);
	hm_pylayout L = layout(HM_FRAMES_INTERP);
	hm_mframe m[32];
	int n = hm_native_merge(&f.ns, &f.th, &L, m, 32);
	static const char *const want[] = {"PyLong_FromLong", "cmp", "closure_fcn",
					   "msort_with_tmp", "qsort_r", "ffi_call",
					   "PyCFuncPtr_call", "sort_once", "main", "<module>"};
	expect(m, n, want, 10);
}

static void test_merge_torn_and_truncated(void **state)
{
	(void)state;
	struct fixture f;
	hm_mframe m[32];
	/* Two eval calls, one Python frame: torn. */
	static const char *const nat[] = {"_PyEval_EvalFrameDefault", "_PyEval_EvalFrameDefault",
					  "main"};
	static const char *const py1[] = {"only"};
	set_native(&f, nat, 3);
	set_python(&f, py1, NULL, 1);
	hm_pylayout L = layout(HM_FRAMES_OBJECTS);
	assert_int_equal(hm_native_merge(&f.ns, &f.th, &L, m, 32), -1);
	/* An out-of-range cap is refused rather than overrun. */
	static const char *const py2[] = {"a", "b"};
	set_python(&f, py2, NULL, 2);
	assert_int_equal(hm_native_merge(&f.ns, &f.th, &L, m, 1), -1);

	/* The unwind stopped inside native code (no CFI further up): the
	 * Python frames follow as the callers; runs of unnamed code in one
	 * module read as one frame. */
	static const char *const nat2[] = {"[libz.so]", "[libz.so]", "deflate"};
	static const char *const py3[] = {"compress_loop", "<module>"};
	set_native(&f, nat2, 3);
	f.syms[1].name = "[libz.so]";
	set_python(&f, py3, NULL, 2);
	int n = hm_native_merge(&f.ns, &f.th, &L, m, 32);
	static const char *const want[] = {"[libz.so]", "deflate", "compress_loop", "<module>"};
	expect(m, n, want, 4);
	/* The same with an unwind that reached the thread's first frame: the
	 * Python frames cannot be callers that were not unwound - torn. */
	f.ns.complete = 1;
	assert_int_equal(hm_native_merge(&f.ns, &f.th, &L, m, 32), -1);
}

static void test_add_thread_profile(void **state)
{
	(void)state;
	struct fixture f;
	static const char *const nat[] = {"deflate", "_PyEval_EvalFrameDefault",
					  "_PyEval_EvalFrameDefault", "main"};
	static const char *const py[] = {"work", "<module>"};
	set_native(&f, nat, 4);
	set_python(&f, py, NULL, 2);
	f.syms[0].line = 77;
	hm_pylayout L = layout(HM_FRAMES_OBJECTS);
	hm_sampler_opts o;
	hm_sampler_opts_init(&o);
	o.threads_root = 1;
	hm_profile *p = hm_profile_new(0);
	assert_non_null(p);
	assert_int_equal(hm_sampler_add_native(p, &f.th, &f.ns, &L, &o, 10, 0), 0);
	assert_int_equal(hm_profile_nstacks(p), 1);
	uint32_t n;
	const uint32_t *ids = hm_profile_stack(p, 0, &n);
	assert_int_equal(n, 4);   /* thread, <module>, work, deflate */
	const hm_frame *root = hm_profile_frame(p, ids[0]);
	assert_int_equal(root->kind, HM_FRAME_THREAD);
	const hm_frame *mod = hm_profile_frame(p, ids[1]);
	assert_string_equal(hm_profile_str(p, mod->name), "<module>");
	assert_int_equal(mod->kind, HM_FRAME_PYTHON);
	const hm_frame *leaf = hm_profile_frame(p, ids[3]);
	assert_string_equal(hm_profile_str(p, leaf->name), "deflate");
	assert_string_equal(hm_profile_str(p, leaf->file), "lib.so");
	assert_int_equal(leaf->line, 77);
	assert_int_equal(leaf->kind, HM_FRAME_NATIVE);

	/* Torn: falls back to the Python frames alone and says so. */
	static const char *const py1[] = {"work"};
	set_python(&f, py1, NULL, 1);
	assert_int_equal(hm_sampler_add_native(p, &f.th, &f.ns, &L, &o, 10, 0), 1);
	ids = hm_profile_stack(p, 1, &n);
	assert_int_equal(n, 2);   /* thread, work */
	assert_int_equal(hm_profile_frame(p, ids[1])->kind, HM_FRAME_PYTHON);
	hm_profile_free(p);
}

/* ---- live unwind of a child ------------------------------------------------- */

static volatile uint64_t spin_counter;

__attribute__((noinline)) static void native_test_spin(void)
{
	for (;;) {
		spin_counter++;
		__asm__ volatile("" ::: "memory");
	}
}

__attribute__((noinline)) static void native_test_outer(void)
{
	native_test_spin();
	__asm__ volatile("");
}

static char proc_field(pid_t pid, const char *key, char *val, size_t cap)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	val[0] = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, key, strlen(key))) {
			snprintf(val, cap, "%s", line + strlen(key));
			break;
		}
	fclose(f);
	return val[0];
}

static pid_t live_child;

/* Teardown: the spinning child goes even if an assertion failed. */
static int kill_live_child(void **state)
{
	(void)state;
	if (live_child > 0) {
		kill(live_child, SIGKILL);
		waitpid(live_child, NULL, 0);
	}
	live_child = 0;
	return 0;
}

static void test_live_unwind(void **state)
{
	(void)state;
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		native_test_outer();
		_exit(0);
	}
	live_child = child;
	struct timespec ts = {0, 50000000};
	nanosleep(&ts, NULL);
	hm_target *t = NULL;
	hm_native *n = NULL;
	assert_int_equal(hm_target_open(child, &t), HM_OK);
	/* Wait until the child spins (a busy machine may not have run it yet). */
	uint64_t spun = 0;
	for (int i = 0; i < 200 && !spun; i++) {
		assert_int_equal(hm_target_read(t, (uint64_t)(uintptr_t)&spin_counter, &spun, 8),
				 HM_OK);
		if (!spun)
			nanosleep(&ts, NULL);
	}
	assert_true(spun > 0);
	assert_int_equal(hm_native_open(t, &n), HM_OK);
	hm_natstack st;
	memset(&st, 0, sizeof st);
	int found_spin = 0, found_outer = 0;
	for (int round = 0, tries = 0; round < 5; tries++) {
		/* A thread that does not stop within the sampler's 50 ms (a busy
		 * machine may not run it that soon) is skipped, as in a real
		 * sample: try again, a bounded number of times. */
		assert_true(tries < 200);
		int r = hm_native_unwind(n, child, &st);
		if (r == HM_ESYS && strstr(hm_errmsg(), "did not stop within"))
			continue;
		assert_int_equal(r, HM_OK);
		round++;
		assert_int_equal(st.state, HM_NATSTACK_OK);
		assert_true(st.nframes >= 3);
		for (int i = 0; i < st.nframes; i++) {
			found_spin |= !strcmp(st.frames[i]->name, "native_test_spin");
			found_outer |= !strcmp(st.frames[i]->name, "native_test_outer");
		}
		assert_string_equal(st.frames[0]->name, "native_test_spin");
		assert_non_null(st.frames[0]->file);
		assert_non_null(strstr(st.frames[0]->file, "test_native.c"));
		assert_true(st.frames[0]->line > 0);
	}
	assert_true(found_spin && found_outer);
	const hm_native_stats *ns = hm_native_stats_get(n);
	assert_true(ns->unwinds >= 5);
	assert_true(ns->sym_hits > 0);   /* the cache answers repeated pcs */
	/* A thread that does not exist is an error, not a crash. */
	assert_int_equal(hm_native_unwind(n, 0x3ffffff0, &st), HM_ENOPROC);
	assert_int_equal(st.state, HM_NATSTACK_FAILED);
	hm_natstack_free(&st);
	hm_native_close(n);

	/* Left running and untraced. */
	char v[128];
	proc_field(child, "TracerPid:", v, sizeof v);
	assert_int_equal(atoi(v), 0);
	proc_field(child, "State:", v, sizeof v);
	assert_null(strstr(v, "stopped"));
	assert_null(strstr(v, "tracing"));
	uint64_t before = 0, after = 0;
	assert_int_equal(hm_target_read(t, (uint64_t)(uintptr_t)&spin_counter, &before, 8), HM_OK);
	/* It spins on: its counter moves (within 10 s, however busy the machine). */
	for (int i = 0; i < 200 && after <= before; i++) {
		nanosleep(&ts, NULL);
		assert_int_equal(hm_target_read(t, (uint64_t)(uintptr_t)&spin_counter, &after, 8),
				 HM_OK);
	}
	assert_true(after > before);

	hm_target_close(t);
	kill_live_child(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_merge_310),
		cmocka_unit_test(test_merge_312_entry_runs),
		cmocka_unit_test(test_merge_torn_and_truncated),
		cmocka_unit_test(test_add_thread_profile),
		cmocka_unit_test_teardown(test_live_unwind, kill_live_child),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
