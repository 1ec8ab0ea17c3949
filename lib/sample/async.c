/* async.c - `record --async`: this round's asyncio tasks for the sampling
 * loop (sample/async.h), which records them (sample/stacks.c).
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

int hm_asyncsampler_span_torn(const hm_asyncsampler *as)
{
	return as->ok ? as->tasks.nspan_torn : 0;
}

const hm_pytask *hm_asyncsampler_running(hm_asyncsampler *as, const hm_pythread *th, int *coro)
{
	if (!as->ok || !th->valid)
		return NULL;
	/* The outermost task frame on the stack wins (a loop run inside a
	 * task, e.g. a nested asyncio.run in a thread, is rare). */
	for (int i = th->nframes - 1; i >= 0; i--) {
		uint64_t fa = th->frames[i].addr;
		for (int j = 0; j < as->tasks.ntasks; j++) {
			const hm_pytask *t = &as->tasks.tasks[j];
			if (!t->valid || !t->running || t->coro_frame != fa)
				continue;
			as->taken[j] = 1;
			*coro = i;
			return t;
		}
	}
	return NULL;
}

const hm_pytask *hm_asyncsampler_waiting(hm_asyncsampler *as, int *iter)
{
	if (!as->ok)
		return NULL;
	while (*iter < as->tasks.ntasks) {
		int j = (*iter)++;
		if (!as->taken[j])
			return &as->tasks.tasks[j];
	}
	return NULL;
}
