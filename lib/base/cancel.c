/* cancel.c - the per-thread cancellation check (see cancel.h). */
#include <stdint.h>
#include <time.h>

#include "base/cancel.h"

static __thread hm_cancel_fn cancel_fn;
static __thread void *cancel_ctx;
static __thread int cancel_seen;
static __thread int64_t cancel_next_ms;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void hm_cancel_set(hm_cancel_fn fn, void *ctx)
{
	cancel_fn = fn;
	cancel_ctx = ctx;
	cancel_seen = 0;
	cancel_next_ms = 0;
}

int hm_cancelled(void)
{
	if (!cancel_fn)
		return 0;
	if (cancel_seen)
		return 1;
	int64_t t = now_ms();
	if (t < cancel_next_ms)
		return 0;
	cancel_next_ms = t + HM_CANCEL_EVERY_MS;
	cancel_seen = cancel_fn(cancel_ctx) != 0;
	return cancel_seen;
}
