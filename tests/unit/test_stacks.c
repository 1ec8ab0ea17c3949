/* test_stacks.c - the stack builders of the sampling loop (sample/stacks.c):
 * a sampled thread's Python stack with its root pseudo frames (the process
 * with --subprocesses, the thread with --threads), the garbage collector's
 * frame, --nolineno, and --async's task stacks (a task running on a thread:
 * its frames from the coroutine to the leaf under "Task <name>"; a waiting
 * task: its await chain on the pseudo thread "asyncio"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/profile.h"
#include "python/pyasync.h"
#include "sample/sampler.h"

struct fixture {
	hm_pycode codes[4];
	hm_pyframe frames[4];
	hm_pythread th;
};

/* A thread running names[0] (the leaf) called by names[1], ... */
static void set_thread(struct fixture *f, const char *const *names, int n)
{
	memset(f, 0, sizeof *f);
	for (int i = 0; i < n; i++) {
		f->codes[i].name = f->codes[i].qualname = names[i];
		f->codes[i].filename = "app.py";
		f->codes[i].firstlineno = 100 * (i + 1);
		f->frames[i] = (hm_pyframe){&f->codes[i], 100 * (i + 1) + 5, 0x1000u * (unsigned)(i + 1), 0};
	}
	f->th.valid = 1;
	f->th.tid = 4321;
	f->th.name = "worker";
	f->th.nframes = n;
	f->th.frames = f->frames;
}

/* The names of stack id's frames, root first, joined with ';'. */
static const char *stack_text(const hm_profile *p, uint32_t id, char *buf, size_t cap)
{
	uint32_t n;
	const uint32_t *ids = hm_profile_stack(p, id, &n);
	size_t o = 0;
	buf[0] = 0;
	for (uint32_t i = 0; i < n && o < cap; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ";" : "",
				      hm_profile_str(p, hm_profile_frame(p, ids[i])->name));
	return buf;
}

static void test_thread_roots_gc_nolineno(void **state)
{
	(void)state;
	struct fixture f;
	static const char *const names[] = {"leaf", "middle", "<module>"};
	set_thread(&f, names, 3);
	f.th.in_gc = 1;
	hm_sampler_opts o;
	hm_sampler_opts_init(&o);
	o.threads_root = 1;
	o.process_pid = 77;
	o.process_label = "process 77: app";
	hm_profile *p = hm_profile_new(0);
	assert_non_null(p);
	hm_sampler_add_thread(p, &f.th, &o, 10, 0);
	char buf[256];
	assert_int_equal(hm_profile_nstacks(p), 1);
	assert_string_equal(stack_text(p, 0, buf, sizeof buf),
			    "process 77: app;thread 4321;<module>;middle;leaf;<gc>");
	uint32_t n;
	const uint32_t *ids = hm_profile_stack(p, 0, &n);
	assert_int_equal(hm_profile_frame(p, ids[0])->kind, HM_FRAME_PROCESS);
	assert_int_equal(hm_profile_frame(p, ids[1])->kind, HM_FRAME_THREAD);
	const hm_frame *leaf = hm_profile_frame(p, ids[4]);
	assert_int_equal(leaf->kind, HM_FRAME_PYTHON);
	assert_int_equal(leaf->line, 105);
	assert_int_equal(leaf->start_line, 100);
	assert_string_equal(hm_profile_str(p, leaf->file), "app.py");
	/* The profile thread carries the tid, the name and the process. */
	const hm_sample *s = hm_profile_sample(p, 0);
	const hm_thread *t = hm_profile_thread(p, s->thread);
	assert_int_equal(t->tid, 4321);
	assert_int_equal(t->pid, 77);
	assert_string_equal(hm_profile_str(p, t->name), "worker");
	assert_int_equal(s->weight_ns, 10);

	/* By function: no lines, the same stack for another line. */
	o.nolineno = 1;
	f.th.in_gc = 0;
	hm_sampler_add_thread(p, &f.th, &o, 10, 0);
	f.frames[0].line = 999;
	hm_sampler_add_thread(p, &f.th, &o, 10, 0);
	assert_int_equal(hm_profile_nstacks(p), 2);
	ids = hm_profile_stack(p, 1, &n);
	assert_int_equal(hm_profile_frame(p, ids[n - 1])->line, 0);
	hm_profile_free(p);
}

static void test_tasks(void **state)
{
	(void)state;
	struct fixture f;
	/* leaf <- handler (the task's coroutine) <- Handle._run <- run_forever */
	static const char *const names[] = {"leaf", "handler", "_run", "run_forever"};
	set_thread(&f, names, 4);
	hm_pytask running;
	memset(&running, 0, sizeof running);
	snprintf(running.name, sizeof running.name, "Task-1");
	running.valid = running.running = 1;
	running.coro_frame = f.frames[1].addr;

	hm_sampler_opts o;
	hm_sampler_opts_init(&o);
	o.threads_root = 1;
	hm_profile *p = hm_profile_new(0);
	assert_non_null(p);
	char buf[256];
	/* Running: the event loop's frames above the coroutine are dropped. */
	hm_sampler_add_task(p, &running, &f.th, 1, &o, 10, 0);
	assert_string_equal(stack_text(p, 0, buf, sizeof buf), "thread 4321;Task Task-1;handler;leaf");
	const hm_thread *t = hm_profile_thread(p, hm_profile_sample(p, 0)->thread);
	assert_int_equal(t->tid, 4321);

	/* Waiting: its await chain (innermost first in the task), outermost
	 * first in the stack, no thread root, on the "asyncio" thread. */
	struct fixture w;
	static const char *const chain[] = {"sleep", "fetch", "main"};
	set_thread(&w, chain, 3);
	hm_pytask waiting;
	memset(&waiting, 0, sizeof waiting);
	snprintf(waiting.name, sizeof waiting.name, "poller");
	waiting.valid = 1;
	waiting.nframes = 3;
	waiting.frames = w.frames;
	hm_sampler_add_task(p, &waiting, NULL, 0, &o, 10, 0);
	assert_string_equal(stack_text(p, 1, buf, sizeof buf), "Task poller;main;fetch;sleep");
	t = hm_profile_thread(p, hm_profile_sample(p, 1)->thread);
	assert_int_equal(t->tid, 0);
	assert_string_equal(hm_profile_str(p, t->name), "asyncio");
	hm_profile_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thread_roots_gc_nolineno),
		cmocka_unit_test(test_tasks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
