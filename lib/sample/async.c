/* async.c - `record --async`: asyncio tasks as stacks in the
 * sampling loop (sample/async.h).
 *
 * Each round reads the target's tasks once (hm_pyasync_tasks). A sampled
 * thread whose stack holds the frame of a running task's coroutine is
 * recorded as that task: [thread root,] "Task <name>", then the thread's
 * frames from the coroutine down to the leaf - the event-loop frames above it
 * (run_forever, _run_once, Handle._run, Task.__step) are dropped, so the
 * flame graph groups time by task. Every other task (suspended in an await,
 * or running on a thread that was not sampled) is recorded once per round as
 * "Task <name>" and its await chain, outermost coroutine first, with the
 * weight of one thread sample, on a pseudo thread named "asyncio". A task
 * that switches between the thread sample and the task read is seen as
 * suspended for that round. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "python/pyasync.h"
#include "python/pyinternal.h"
#include "sample/async.h"

struct hm_asyncsampler {
	hm_python *py;               /* py the reader was opened for */
	uint64_t py_runtime, py_bias; /* ... and its addresses (a re-attached
				       * py may reuse the struct's address) */
	hm_pyasync *a;
	int failed;                  /* open failed for this py: don't retry */
	hm_pytasks tasks;
	int ok;                      /* this round's read worked */
	uint8_t *taken;              /* per task: recorded through a thread */
	int taken_cap;
};

hm_asyncsampler *hm_asyncsampler_new(void)
{
	return calloc(1, sizeof(hm_asyncsampler));
}

void hm_asyncsampler_free(hm_asyncsampler *as)
{
	if (!as)
		return;
	hm_pyasync_close(as->a);
	hm_pytasks_free(&as->tasks);
	free(as->taken);
	free(as);
}

void hm_asyncsampler_read(hm_asyncsampler *as, hm_python *py)
{
	as->ok = 0;
	as->tasks.ntasks = 0;
	if (!py)
		return;
	if (py != as->py || py->runtime != as->py_runtime || py->mod_bias != as->py_bias) {
		/* A new interpreter (re-attached after an exec). */
		hm_pyasync_close(as->a);
		as->a = NULL;
		as->py = py;
		as->py_runtime = py->runtime;
		as->py_bias = py->mod_bias;
		as->failed = hm_pyasync_open(py, &as->a) != HM_OK;
	}
	if (as->failed || hm_pyasync_tasks(as->a, &as->tasks) != HM_OK)
		return;
	if (as->taken_cap < as->tasks.ntasks) {
		uint8_t *nt = realloc(as->taken, (size_t)as->tasks.ntasks);
		if (!nt)
			return;
		as->taken = nt;
		as->taken_cap = as->tasks.ntasks;
	}
	if (as->tasks.ntasks)
		memset(as->taken, 0, (size_t)as->tasks.ntasks);
	as->ok = 1;
}

/* Record the root pseudo frames (for a thread's own stack: with_roots), a
 * "Task <name>" frame, then frames[hi..0] (a leaf-first array). */
static void add_stack(hm_profile *p, int with_roots, const char *task, const hm_pyframe *frames,
		      int hi, int in_gc, const hm_sampler_opts *o, pid_t tid, const char *tname,
		      const hm_pyspan *span, int64_t weight_ns, uint64_t t_ns)
{
	uint32_t stackbuf[512];
	uint32_t n = (uint32_t)(hi + 1) + 4;
	uint32_t *ids = n <= 512 ? stackbuf : malloc(n * sizeof *ids);
	if (!ids)
		return;
	uint32_t k = with_roots ? hm_sampler_root_frames(p, o, tid, ids) : 0;
	char name[96];
	snprintf(name, sizeof name, "Task %s", task);
	hm_frame tf = {hm_profile_intern_cstr(p, name), 0, 0, 0, HM_FRAME_OTHER};
	ids[k++] = hm_profile_frame_id(p, &tf);
	for (int i = hi; i >= 0; i--)
		ids[k++] = hm_sampler_py_frame(p, &frames[i], o);
	if (in_gc) {
		hm_frame f = {hm_profile_intern_cstr(p, "<gc>"), 0, 0, 0, HM_FRAME_OTHER};
		ids[k++] = hm_profile_frame_id(p, &f);
	}
	uint32_t stack = hm_profile_stack_id(p, ids, k);
	hm_profile_add_span(p, stack, hm_sampler_thread(p, o, tid, tname), hm_sampler_span(p, span),
			    1, weight_ns, t_ns);
	if (ids != stackbuf)
		free(ids);
}

int hm_asyncsampler_add_thread(hm_asyncsampler *as, hm_profile *p, const hm_pythread *th,
			       const hm_sampler_opts *o, int64_t weight_ns, uint64_t t_ns)
{
	if (!as->ok || !th->valid)
		return 0;
	/* The outermost task frame on the stack wins (a loop run inside a
	 * task, e.g. a nested asyncio.run in a thread, is rare). */
	for (int i = th->nframes - 1; i >= 0; i--) {
		uint64_t fa = th->frames[i].addr;
		for (int j = 0; j < as->tasks.ntasks; j++) {
			const hm_pytask *t = &as->tasks.tasks[j];
			if (!t->valid || !t->running || t->coro_frame != fa)
				continue;
			add_stack(p, 1, t->name, th->frames, i, th->in_gc, o, th->tid, th->name,
				  &th->span, weight_ns, t_ns);
			as->taken[j] = 1;
			return 1;
		}
	}
	return 0;
}

int hm_asyncsampler_add_tasks(hm_asyncsampler *as, hm_profile *p, const hm_sampler_opts *o,
			      int64_t weight_ns, uint64_t t_ns, int *invalid)
{
	int n = 0;
	if (invalid)
		*invalid = 0;
	if (!as->ok)
		return 0;
	for (int j = 0; j < as->tasks.ntasks; j++) {
		const hm_pytask *t = &as->tasks.tasks[j];
		if (as->taken[j])
			continue;
		if (!t->valid || !t->nframes) {
			if (invalid && !t->valid)
				(*invalid)++;
			continue;
		}
		add_stack(p, 0, t->name, t->frames, t->nframes - 1, 0, o, 0, "asyncio", &t->span,
			  weight_ns, t_ns);
		n++;
	}
	return n;
}
