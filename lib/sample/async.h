/* async.h - `record --async`: asyncio tasks as stacks in the sampling loop.
 *
 * A thread that is running a task is recorded as that task (root frame
 * "Task <name>", then its frames from the task's coroutine to the leaf; the
 * event-loop frames above the coroutine are dropped), and every other task
 * is recorded once per round as "Task <name>" followed by its await chain,
 * outermost coroutine first, weighted like a thread sample. The tasks
 * themselves are read by python/pyasync.h. */
#ifndef HOMURA_SAMPLE_ASYNC_H
#define HOMURA_SAMPLE_ASYNC_H

#include <stdint.h>

#include "base/profile.h"
#include "python/pyasync.h"
#include "python/python.h"
#include "sample/sampler.h"

typedef struct hm_asyncsampler hm_asyncsampler;

hm_asyncsampler *hm_asyncsampler_new(void);
void hm_asyncsampler_free(hm_asyncsampler *as);
/* Read the tasks of py for this round (re-opening when py changed). Rounds
 * where the read fails record no tasks. */
void hm_asyncsampler_read(hm_asyncsampler *as, hm_python *py);
/* If th is running one of this round's tasks, record it as that task and
 * return 1; else 0 (the caller records th as usual). */
int hm_asyncsampler_add_thread(hm_asyncsampler *as, hm_profile *p, const hm_pythread *th,
			       const hm_sampler_opts *o, int64_t weight_ns, uint64_t t_ns);
/* Record every task of this round that no add_thread call took. Returns
 * the number recorded; *invalid (may be NULL) gets the tasks dropped. */
int hm_asyncsampler_add_tasks(hm_asyncsampler *as, hm_profile *p, const hm_sampler_opts *o,
			      int64_t weight_ns, uint64_t t_ns, int *invalid);

#endif
