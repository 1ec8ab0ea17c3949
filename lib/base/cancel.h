/* cancel.h - cooperative cancellation of the current thread's work.
 *
 * The HTTP server installs a check (has this request's client gone?) for
 * the thread that runs a request; long loops in the library (the regex
 * matcher's uncached steps) call hm_cancelled() and give up with an error
 * when it says so. The check itself runs at most every HM_CANCEL_EVERY_MS,
 * so calling hm_cancelled() often is cheap; once it has said yes it keeps
 * saying yes until hm_cancel_set is called again. */
#ifndef HOMURA_CANCEL_H
#define HOMURA_CANCEL_H

#define HM_CANCEL_EVERY_MS 10

typedef int (*hm_cancel_fn)(void *ctx);

/* Install fn(ctx) for this thread (NULL removes it). */
void hm_cancel_set(hm_cancel_fn fn, void *ctx);
/* Nonzero when this thread's work should stop. */
int hm_cancelled(void);

#endif
