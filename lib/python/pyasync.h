/* pyasync.h - asyncio tasks of a target and the coroutines they await.
 *
 * hm_pyasync_tasks reads every live asyncio Task of a CPython 3.8-3.13
 * target without stopping it: the task sets the asyncio module keeps
 * (asyncio.tasks._all_tasks, or _scheduled_tasks and _eager_tasks on 3.12+),
 * each task's name and coroutine, and the chain of objects each suspended
 * coroutine awaits (coroutine -> coroutine -> ... -> Future), as frames with
 * their code and current line. Reads are validated like the stack walker's
 * (types, states, bounds, depth); a task whose read is torn is reported
 * invalid.
 *
 * How the sampling loop turns tasks into stacks is sample/async.h. */
#ifndef HOMURA_PYASYNC_H
#define HOMURA_PYASYNC_H

#include <stdint.h>

#include "base/profile.h"
#include "python/python.h"

typedef struct hm_pyasync hm_pyasync;

typedef struct hm_pytask {
	uint64_t addr;           /* the Task object */
	char name[64];           /* get_name(): "Task-3" or the name given */
	int valid;               /* 0: torn/garbage read, frames empty */
	int running;             /* its coroutine is executing (on a thread) */
	int truncated;           /* await chain deeper than the depth limit */
	uint64_t coro_frame;     /* address of the task coroutine's frame, as
				  * hm_pyframe.addr has it on a thread stack */
	int nframes;
	int frames_cap;
	hm_pyframe *frames;      /* await chain, innermost (leaf) first; for a
				  * running task only its own coroutine */
	uint64_t context;        /* its contextvars.Context, 0 unknown */
	hm_pyspan span;          /* its current OpenTelemetry span, when
				  * tracing is on (hm_python_set_trace) */
} hm_pytask;

typedef struct hm_pytasks {
	int ntasks;
	int tasks_cap;
	hm_pytask *tasks;
	int ninvalid;            /* tasks whose read failed */
	int nspan_torn;          /* tasks whose span changed while their
				  * await chain was read: without a span */
} hm_pytasks;

/* Prepare to read py's tasks. HM_OK; HM_EVERSION for versions other than
 * 3.8-3.13; HM_ENOTPY if the interpreter's binary cannot be read. */
int hm_pyasync_open(hm_python *py, hm_pyasync **out);
void hm_pyasync_close(hm_pyasync *a);

/* Read every live, unfinished task into *out (replacing its contents).
 * HM_OK, with zero tasks when asyncio is not imported. Frames' code objects
 * stay valid until the next call. */
int hm_pyasync_tasks(hm_pyasync *a, hm_pytasks *out);
/* The contexts (contextvars.Context objects) of every live, unfinished
 * task, at most max of them, into ctxs: their number, or -1. For the span
 * reader's look for the local roots of the traces that tasks run; each
 * step reads all the tasks at once (their weakrefs, their heads), so a
 * look costs a few system calls, not a few per task. A context is an
 * address read from the task, to be checked by its reader. */
int hm_pyasync_contexts(hm_pyasync *a, uint64_t *ctxs, int max);
/* How long a task-container lookup stays valid (ns): 10 s when it found
 * containers (found != 0; resets *backoff_ns), else a back-off kept in
 * *backoff_ns (0 initially): 100 ms, 200 ms, 400 ms, ... up to 10 s. */
uint64_t hm_pyasync_next_lookup(uint64_t *backoff_ns, int found);
void hm_pytasks_free(hm_pytasks *t);

#endif
