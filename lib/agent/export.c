/* export.c - the generic exporter (export.h): submit, sender thread,
 * back-off, flush, statistics, and the libcurl POST the network exporters
 * share.
 *
 * submit() encodes at once (the caller frees the profile right after) and
 * either writes synchronously (ops->write, the --dir exporter) or pushes the
 * bytes on the exporter's hm_queue. One sender thread per queued exporter
 * peeks the oldest item, sends it, and pops it only once it is delivered (or
 * refused with a 4xx, which is counted): delivery is in order, except that an
 * item the destination refuses for now (408, 429, 5xx) is set aside with its
 * own back-off while the others go on, and is dropped after max_attempts
 * such answers. Failures in a row make every attempt wait a back-off drawn
 * uniformly from [d/2, d], d doubling from backoff_min to backoff_max and
 * reset only by a success, so many agents do not retry in lock-step. Drops are logged at once, then at
 * most every 10 s per reason with the counts since the last line, and a
 * summary at flush. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/export.h"
#include "base/base.h"
#include "base/error.h"
#include "base/log.h"

/* ---- exporter ---- */

enum { DROP_FULL, DROP_REJECTED, DROP_EXPIRED, DROP_OLD, NOTE_DEFERRED, NDROPLOG };

/* One rate-limited log line per reason: at once, then at most every 10 s
 * with the counts since the previous line. */
typedef struct droplog {
	uint64_t n, bytes;
	char why[96];
	double last;
} droplog;

struct hm_exporter {
	const hm_exporter_ops *ops;
	void *impl;
	char *name;
	hm_export_opts o;
	hm_queue *q;
	pthread_t thread;
	int has_thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int draining;            /* flush: exit once the queue is empty */
	unsigned wake_gen;       /* bumped by drain: cuts a back-off wait short */
	volatile int cancel;     /* stop now (abandons an in-flight request) */
	int closed;              /* no more submits */
	hm_export_stats st;
	droplog dl[NDROPLOG];
	int down;                /* last attempt failed to connect (for "back up" logs) */
	uint64_t rng;
};

void hm_export_opts_init(hm_export_opts *o)
{
	memset(o, 0, sizeof *o);
	o->queue_max_bytes = 64u << 20;
	o->spool_max_bytes = 256u << 20;
	o->timeout_s = 10;
	o->backoff_min_s = 0.5;
	o->backoff_max_s = 30;
	o->max_attempts = 10;
	o->rate_hz = 100;
}

static double rng_unit(uint64_t *s)
{
	return (double)(hm_rng_next(s) >> 11) / 9007199254740992.0;
}

/* Wait up to secs, or until a signal on cv; mu held. */
static void wait_locked(hm_exporter *e, double secs)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + secs;
	ts.tv_sec = (time_t)t;
	ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
	pthread_cond_timedwait(&e->cv, &e->mu, &ts);
}

/* Log what was counted for reason k since its last line; mu held. */
static void droplog_flush_locked(hm_exporter *e, int k, int force)
{
	droplog *d = &e->dl[k];
	if (!d->n)
		return;
	double t = hm_mono_s();
	if (!force && d->last && t - d->last < 10)
		return;
	unsigned long long n = d->n, b = d->bytes;
	switch (k) {
	case DROP_FULL:
		hm_log(HM_LOG_WARN, "dropped %llu profiles (%llu bytes) for %s: queue full", n, b,
		       e->name);
		break;
	case DROP_REJECTED:
		hm_log(HM_LOG_WARN, "dropped %llu profiles (%llu bytes) for %s: refused (%s)", n, b,
		       e->name, d->why);
		break;
	case DROP_EXPIRED:
		hm_log(HM_LOG_WARN,
		       "dropped %llu profiles (%llu bytes) for %s: still refused (%s) after %u "
		       "attempts each",
		       n, b, e->name, d->why, e->o.max_attempts);
		break;
	case DROP_OLD:
		hm_log(HM_LOG_WARN, "dropped %llu profiles (%llu bytes) for %s: older than %g s", n, b,
		       e->name, e->o.max_age_s);
		break;
	default:
		hm_log(HM_LOG_WARN,
		       "%s refused %llu attempts for now (%s); those profiles wait behind the others "
		       "and are retried with back-off",
		       e->name, n, d->why);
		break;
	}
	d->n = d->bytes = 0;
	d->last = t;
}

static void droplog_note_locked(hm_exporter *e, int k, size_t bytes, const char *why)
{
	droplog *d = &e->dl[k];
	d->n++;
	d->bytes += bytes;
	if (why)
		snprintf(d->why, sizeof d->why, "%s", why);
	droplog_flush_locked(e, k, 0);
}

static void droplog_flush_all_locked(hm_exporter *e, int force)
{
	for (int k = 0; k < NDROPLOG; k++)
		droplog_flush_locked(e, k, force);
}

static double backoff_of(const hm_exporter *e, unsigned k)
{
	double d = e->o.backoff_min_s;
	for (unsigned i = 1; i < k && d < e->o.backoff_max_s; i++)
		d *= 2;
	return d < e->o.backoff_max_s ? d : e->o.backoff_max_s;
}

/* The sender. Failures in a row (no success in between: `streak`) set a
 * global back-off: the next attempt of anything waits a delay drawn from
 * [d/2, d], d doubling with the streak from backoff_min to backoff_max; it
 * is reset only by a success, and new submissions do not cut it short (only
 * drain/cancel do). A connection failure or timeout keeps the item at the
 * head: the destination is down, not the item at fault. An answer of
 * 408/429/5xx counts an attempt against the item and sets it aside with its
 * own doubling back-off, so one profile the destination will not take (a
 * series limit) does not hold up the rest; the global back-off then applies
 * only from the second failure in a row, when the destination may be
 * refusing everything. After max_attempts such answers the item is dropped.
 * Other 4xx: dropped at once. Every drop is counted and logged
 * (rate-limited). */
static void *sender_main(void *arg)
{
	hm_exporter *e = arg;
	unsigned streak = 0;     /* failed attempts since the last success */
	double next_try = 0;     /* CLOCK_MONOTONIC: no attempt before this */
	char why[256];
	for (;;) {
		double next_due = 0;
		hm_qitem *it = hm_queue_next(e->q, hm_mono_s(), &next_due);
		pthread_mutex_lock(&e->mu);
		droplog_flush_all_locked(e, 0);
		if (e->cancel || (!it && !next_due && e->draining)) {
			pthread_mutex_unlock(&e->mu);
			break;
		}
		if (!it) {   /* empty, or only items set aside: a submit wakes us */
			double w = next_due ? next_due - hm_mono_s() : 1.0;
			wait_locked(e, w < 0.001 ? 0.001 : w > 1.0 ? 1.0 : w);
			pthread_mutex_unlock(&e->mu);
			continue;
		}
		if (hm_mono_s() < next_try) {
			unsigned gen = e->wake_gen;
			double t;
			while (!e->cancel && e->wake_gen == gen && (t = hm_mono_s()) < next_try)
				wait_locked(e, next_try - t);
			if (e->wake_gen != gen)
				next_try = 0;    /* draining: one attempt at once */
			pthread_mutex_unlock(&e->mu);
			continue;
		}
		if (e->o.max_age_s > 0 && hm_real_s() - it->made > e->o.max_age_s) {
			e->st.expired++;
			droplog_note_locked(e, DROP_OLD, it->len, NULL);
			pthread_mutex_unlock(&e->mu);
			hm_queue_pop(e->q);
			continue;
		}
		pthread_mutex_unlock(&e->mu);

		why[0] = 0;
		int r = e->ops->send(e->impl, it, &e->cancel, why, sizeof why);
		size_t len = it->len;
		pthread_mutex_lock(&e->mu);
		if (r == HM_SEND_OK) {
			e->st.sent++;
			e->st.sent_bytes += len;
			if (e->down)
				hm_log(HM_LOG_INFO, "%s is reachable again", e->name);
			e->down = 0;
			streak = 0;
			next_try = 0;
			pthread_mutex_unlock(&e->mu);
			hm_queue_pop(e->q);
			continue;
		}
		if (r == HM_SEND_REJECT) {
			e->st.rejected++;
			droplog_note_locked(e, DROP_REJECTED, len, why);
			pthread_mutex_unlock(&e->mu);
			hm_queue_pop(e->q);
			continue;
		}
		e->st.failed_attempts++;
		streak++;
		double jitter = 0.5 + 0.5 * rng_unit(&e->rng);
		if (r == HM_SEND_DEFER) {
			if (!e->cancel && streak >= 2)
				next_try = hm_mono_s() + backoff_of(e, streak - 1) * jitter;
			it->attempts++;
			if (e->o.max_attempts && it->attempts >= e->o.max_attempts) {
				e->st.expired++;
				droplog_note_locked(e, DROP_EXPIRED, len, why);
				pthread_mutex_unlock(&e->mu);
				hm_queue_pop(e->q);
				continue;
			}
			if (!e->cancel)
				droplog_note_locked(e, NOTE_DEFERRED, len, why);
			double own = backoff_of(e, it->attempts) * (0.5 + 0.5 * rng_unit(&e->rng));
			pthread_mutex_unlock(&e->mu);
			hm_queue_defer(e->q, hm_mono_s() + own);
			continue;
		}
		if (!e->cancel)
			next_try = hm_mono_s() + backoff_of(e, streak) * jitter;
		if (!e->down && !e->cancel)
			hm_log(HM_LOG_WARN, "cannot send to %s (%s); queueing and retrying", e->name,
			       why);
		e->down = 1;
		pthread_mutex_unlock(&e->mu);
	}
	return NULL;
}

int hm_exporter_new(const hm_exporter_ops *ops, void *impl, const char *name,
		    const hm_export_opts *o, hm_exporter **out)
{
	*out = NULL;
	hm_exporter *e = calloc(1, sizeof *e);
	if (!e || !(e->name = strdup(name))) {
		free(e);
		ops->free(impl);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	e->ops = ops;
	e->impl = impl;
	e->o = *o;
	if (e->o.backoff_min_s <= 0)
		e->o.backoff_min_s = 0.5;
	if (e->o.backoff_max_s < e->o.backoff_min_s)
		e->o.backoff_max_s = e->o.backoff_min_s;
	e->rng = hm_mono_ns() ^ (uintptr_t)e ^ 0x9E3779B97F4A7C15ull;
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	if (ops->send) {
		int rc = hm_queue_new(o->queue_max_bytes, o->spool_dir, o->spool_max_bytes, &e->q);
		if (rc == HM_OK && pthread_create(&e->thread, NULL, sender_main, e) != 0)
			rc = hm_error(HM_ESYS, "cannot start the sender thread for %s", name);
		if (rc != HM_OK) {
			hm_exporter_free(e);
			return rc;
		}
		e->has_thread = 1;
	}
	*out = e;
	return HM_OK;
}

const char *hm_exporter_name(const hm_exporter *e)
{
	return e->name;
}

int hm_exporter_submit(hm_exporter *e, const hm_profile *p)
{
	pthread_mutex_lock(&e->mu);
	int closed = e->closed;
	e->st.submitted++;
	pthread_mutex_unlock(&e->mu);
	if (closed)
		return hm_error(HM_EINVAL, "%s is closed", e->name);
	if (!e->ops->send) {
		hm_export_stats delta;
		memset(&delta, 0, sizeof delta);
		int rc = e->ops->write(e->impl, p, &delta);
		pthread_mutex_lock(&e->mu);
		if (rc == HM_OK) {
			e->st.sent++;
			e->st.sent_bytes += delta.sent_bytes;
		} else {
			e->st.encode_errors++;
		}
		e->st.files_deleted += delta.files_deleted;
		pthread_mutex_unlock(&e->mu);
		if (rc != HM_OK)
			hm_log(HM_LOG_WARN, "%s: %s", e->name, hm_errmsg());
		return rc;
	}
	unsigned char *data = NULL;
	size_t len = 0;
	char *meta = NULL;
	int rc = e->ops->encode(e->impl, p, &data, &len, &meta);
	if (rc != HM_OK) {
		pthread_mutex_lock(&e->mu);
		e->st.encode_errors++;
		pthread_mutex_unlock(&e->mu);
		hm_log(HM_LOG_WARN, "%s: cannot encode a profile: %s", e->name, hm_errmsg());
		free(data);
		free(meta);
		return rc;
	}
	size_t bytes = len + (meta ? strlen(meta) : 0);
	rc = hm_queue_push(e->q, data, len, meta);
	pthread_mutex_lock(&e->mu);
	if (rc != HM_OK) {
		e->st.dropped_full++;
		e->st.dropped_full_bytes += bytes;
		droplog_note_locked(e, DROP_FULL, bytes, NULL);
	}
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
	return rc;
}

void hm_exporter_stats(hm_exporter *e, hm_export_stats *st)
{
	pthread_mutex_lock(&e->mu);
	*st = e->st;
	pthread_mutex_unlock(&e->mu);
	if (e->q) {
		hm_queue_stats qs;
		hm_queue_stats_get(e->q, &qs);
		st->queued = qs.queued;
		st->queued_bytes = qs.queued_bytes;
	}
}

void hm_exporter_drain(hm_exporter *e)
{
	pthread_mutex_lock(&e->mu);
	e->closed = 1;
	e->draining = 1;
	e->wake_gen++;
	pthread_cond_broadcast(&e->cv);   /* cuts a back-off wait short */
	droplog_flush_all_locked(e, 1);
	pthread_mutex_unlock(&e->mu);
}

void hm_exporter_flush(hm_exporter *e, double timeout_s)
{
	hm_exporter_drain(e);
	if (!e->has_thread)
		return;
	double deadline = hm_mono_s() + (timeout_s > 0 ? timeout_s : 0);
	for (;;) {
		hm_queue_stats qs;
		hm_queue_stats_get(e->q, &qs);
		if (!qs.queued || hm_mono_s() >= deadline)
			break;
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&e->mu);
	e->cancel = 1;
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
	pthread_join(e->thread, NULL);
	e->has_thread = 0;
	pthread_mutex_lock(&e->mu);
	droplog_flush_all_locked(e, 1);
	pthread_mutex_unlock(&e->mu);

	hm_queue_stats before;
	hm_queue_stats_get(e->q, &before);
	if (before.queued) {
		size_t lost = hm_queue_spill(e->q);
		hm_queue_stats after;
		hm_queue_stats_get(e->q, &after);
		pthread_mutex_lock(&e->mu);
		e->st.dropped_exit += lost;
		pthread_mutex_unlock(&e->mu);
		if (after.spooled)
			hm_log(HM_LOG_INFO, "%s: %llu profiles kept in the spool for the next run",
			       e->name, (unsigned long long)after.spooled);
		if (lost)
			hm_log(HM_LOG_WARN,
			       "dropped %zu profiles for %s: still queued at exit (destination down)",
			       lost, e->name);
	}
}

void hm_exporter_free(hm_exporter *e)
{
	if (!e)
		return;
	if (e->has_thread)
		hm_exporter_flush(e, 0);
	if (e->q)
		hm_queue_free(e->q);
	e->ops->free(e->impl);
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->cv);
	free(e->name);
	free(e);
}

const char *hm_export_label(const hm_profile *p, const char *key)
{
	const hm_profile_meta *m = hm_profile_meta_cget(p);
	for (uint32_t i = 0; i < m->nlabels; i++)
		if (!strcmp(hm_profile_str(p, m->labels[i].key), key))
			return hm_profile_str(p, m->labels[i].value);
	return NULL;
}

/* ---- HTTP ---- */

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	(void)ptr;
	(void)ud;
	return size * nmemb;
}

static int progress_cancel(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a, (void)b, (void)c, (void)d;
	const volatile int *cancel = ud;
	return cancel && *cancel;   /* non-zero aborts the transfer */
}

int hm_http_post(void **handle, const char *url, const char *const *headers, const void *body,
		 size_t len, double timeout_s, const volatile int *cancel, char *why, size_t whylen)
{
	CURL *c = *handle;
	if (!c) {
		c = curl_easy_init();
		if (!c) {
			snprintf(why, whylen, "cannot initialise libcurl");
			return HM_SEND_RETRY;
		}
		*handle = c;
	}
	curl_easy_reset(c);
	struct curl_slist *hl = NULL;
	for (const char *const *h = headers; h && *h; h++)
		hl = curl_slist_append(hl, *h);
	hl = curl_slist_append(hl, "Expect:");   /* no 100-continue round trip */
	long tmo_ms = (long)((timeout_s > 0 ? timeout_s : 10) * 1000);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, tmo_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, tmo_ms < 5000 ? tmo_ms : 5000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "homura-agent/0.1");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cancel);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)cancel);
	CURLcode cc = curl_easy_perform(c);
	curl_slist_free_all(hl);
	if (cc != CURLE_OK) {
		snprintf(why, whylen, "%s", curl_easy_strerror(cc));
		return HM_SEND_RETRY;
	}
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (code >= 200 && code < 300)
		return HM_SEND_OK;
	snprintf(why, whylen, "HTTP %ld", code);
	if (code == 408 || code == 429 || code >= 500)
		return HM_SEND_DEFER;
	return HM_SEND_REJECT;
}

void hm_http_free(void *handle)
{
	if (handle)
		curl_easy_cleanup(handle);
}
