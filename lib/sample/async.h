/* async.h - `record --async`: this round's asyncio tasks, for the sampling
 * loop.
 *
 * A thread that is running a task is recorded as that task (root frame
 * "Task <name>", then its frames from the task's coroutine to the leaf; the
 * event-loop frames above the coroutine are dropped), and every other task
 * is recorded once per round as "Task <name>" followed by its await chain,
 * outermost coroutine first, weighted like a thread sample. The tasks are
 * read by python/pyasync.h; this matches them with the sampled threads and
 * hands them back to the loop, which builds the stacks (sample/stacks.c). */
#ifndef HOMURA_SAMPLE_ASYNC_H
#define HOMURA_SAMPLE_ASYNC_H

#include <stdint.h>

#include "python/pyasync.h"
#include "python/python.h"

typedef struct hm_asyncsampler hm_asyncsampler;

hm_asyncsampler *hm_asyncsampler_new(void);
void hm_asyncsampler_free(hm_asyncsampler *as);
/* Read the tasks of py for this round (re-opening when py changed). Rounds
 * where the read fails have no tasks. */
void hm_asyncsampler_read(hm_asyncsampler *as, hm_python *py);
/* The task of this round that th is running, marked as taken, with *coro the
 * index in th->frames of the task's coroutine frame; NULL if none (th is
 * recorded as a thread). */
/* Tasks of the last read whose span changed while their await chain was
 * read (sampled without a span). */
int hm_asyncsampler_span_torn(const hm_asyncsampler *as);
const hm_pytask *hm_asyncsampler_running(hm_asyncsampler *as, const hm_pythread *th, int *coro);
/* The next task of this round that no thread took, from *iter (0 at the
 * first call); NULL at the end. It may be invalid (a torn read) or empty. */
const hm_pytask *hm_asyncsampler_waiting(hm_asyncsampler *as, int *iter);

#endif
