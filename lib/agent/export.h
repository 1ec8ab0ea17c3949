/* export.h - shipping finished profiles somewhere: the exporter interface,
 * the bounded queue behind each network exporter, and the exporters.
 *
 * An exporter takes a finished hm_profile (hm_exporter_submit), encodes it
 * into its own wire format at once (so the profile can be freed) and either
 * writes it (--dir) or puts the bytes on a bounded queue that a sender thread
 * drains in order (OTLP, Pyroscope). A destination that is down is retried
 * with exponential back-off and jitter; nothing is dropped silently: what the
 * bound, a 4xx answer, too many 408/429/5xx answers or shutdown forces out
 * is counted and logged. */
#ifndef HOMURA_EXPORT_H
#define HOMURA_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "base/profile.h"

/* ---- the bounded queue ------------------------------------------------- */

typedef struct hm_qitem {
	uint64_t seq;            /* submission order */
	double made;             /* when it was queued (CLOCK_REALTIME seconds) */
	unsigned attempts;       /* refused for now (408, 429, 5xx) so far */
	double not_before;       /* deferred until (the caller's clock) */
	int on_disk;             /* its spool file exists */
	char *meta;              /* exporter-specific text (e.g. a query string) */
	unsigned char *data;
	size_t len;
	struct hm_qitem *next;
} hm_qitem;

typedef struct hm_queue_stats {
	uint64_t queued, queued_bytes;       /* now, memory + spool */
	uint64_t spooled, spooled_bytes;     /* now, in the spool */
	uint64_t pushed;                     /* accepted, ever */
	uint64_t dropped, dropped_bytes;     /* refused: over the bound */
} hm_queue_stats;

/* A FIFO bounded by bytes in memory and, optionally, by bytes in a disk
 * spool directory that takes the overflow. With a spool every queued item is
 * on disk (memory items too), so the queue survives restarts and kill -9.
 * Order is kept: once anything is spooled, newer items go to the spool too
 * until it drains. When both are full the incoming item is refused and
 * counted. Thread-safe. */
typedef struct hm_queue hm_queue;

/* spool_dir may be NULL (memory only). Spool files left by an earlier run
 * are picked up, oldest first. */
int hm_queue_new(size_t max_bytes, const char *spool_dir, size_t spool_max_bytes,
		 hm_queue **out);
void hm_queue_free(hm_queue *q);
/* Takes ownership of data and meta (freed on refusal too). HM_OK, or
 * HM_ENOMEM when the item was refused and counted as dropped. */
int hm_queue_push(hm_queue *q, unsigned char *data, size_t len, char *meta);
/* The next item to send, still queued: the deferred item whose not_before
 * is earliest and <= now, else the oldest queued item; NULL if none is
 * ready. *next_due (if not NULL) gets the earliest not_before of the
 * deferred items that are not ready (0 if none). Valid until the next
 * pop/defer. Only one consumer may use next/peek/pop/defer. */
hm_qitem *hm_queue_next(hm_queue *q, double now, double *next_due);
/* hm_queue_next with every deferred item ready. */
hm_qitem *hm_queue_peek(hm_queue *q);
/* Remove and free the item returned by the last next/peek. */
void hm_queue_pop(hm_queue *q);
/* Set the item returned by the last next/peek aside until not_before, so
 * that one item the destination will not take yet does not hold up the
 * others; it keeps its place in the spool on disk. */
void hm_queue_defer(hm_queue *q, double not_before);
/* Move what is still in memory to the spool (at shutdown); returns the
 * number of items that could not be kept (no spool, or it is full). */
size_t hm_queue_spill(hm_queue *q);
void hm_queue_stats_get(hm_queue *q, hm_queue_stats *st);

/* ---- exporters --------------------------------------------------------- */

typedef struct hm_exporter hm_exporter;

typedef struct hm_export_opts {
	size_t queue_max_bytes;  /* default 64 MiB */
	const char *spool_dir;   /* NULL: no disk spool */
	size_t spool_max_bytes;  /* default 256 MiB */
	double timeout_s;        /* whole request (default 10), connect: min(5, this) */
	double backoff_min_s;    /* first retry delay (default 0.5) */
	double backoff_max_s;    /* cap (default 30) */
	unsigned max_attempts;   /* 408/429/5xx answers before an item is dropped
				    (default 10; 0 = never) */
	double max_age_s;        /* drop items queued longer than this (0 = never) */
	double rate_hz;          /* sampling rate, for Pyroscope's sampleRate */
	const char *const *headers;  /* extra "Name: value" HTTP headers, NULL-ended */
	/* --dir */
	int dir_format;          /* enum hm_format (default pprof) */
	uint64_t dir_max_bytes;  /* retention: total size kept (0 = unbounded) */
} hm_export_opts;

void hm_export_opts_init(hm_export_opts *o);

/* OTLP/HTTP protobuf (gzip) POST. A URL without a path gets
 * /v1development/profiles appended. Used for --otlp and --server. */
int hm_exporter_otlp(const char *url, const hm_export_opts *o, hm_exporter **out);
/* Pyroscope /ingest with a pprof body. */
int hm_exporter_pyroscope(const char *url, const hm_export_opts *o, hm_exporter **out);
/* Timestamped files in a directory, with size-based retention. */
int hm_exporter_dir(const char *path, const hm_export_opts *o, hm_exporter **out);

/* Encode p and queue (or write) it. The profile is not kept. HM_OK, or an
 * error (encoding failed, queue full: counted and logged either way). */
int hm_exporter_submit(hm_exporter *e, const hm_profile *p);

typedef struct hm_export_stats {
	uint64_t submitted;      /* profiles handed to the exporter */
	uint64_t sent, sent_bytes;
	uint64_t failed_attempts;    /* sends that will be retried */
	uint64_t rejected;       /* refused by the destination (4xx): dropped */
	uint64_t expired;        /* refused max_attempts times, or too old: dropped */
	uint64_t dropped_full, dropped_full_bytes;   /* queue bound */
	uint64_t dropped_exit;   /* still queued at exit, not spooled */
	uint64_t encode_errors;
	uint64_t queued, queued_bytes;
	uint64_t files_deleted;  /* --dir retention */
} hm_export_stats;

void hm_exporter_stats(hm_exporter *e, hm_export_stats *st);
const char *hm_exporter_name(const hm_exporter *e);   /* "otlp http://..." */
/* Stop accepting and start draining without waiting: lets several
 * exporters drain at once before each is flushed. */
void hm_exporter_drain(hm_exporter *e);
/* Stop accepting, send what is queued for up to timeout_s, spill the rest to
 * the spool (or count it as dropped), stop the sender thread. */
void hm_exporter_flush(hm_exporter *e, double timeout_s);
void hm_exporter_free(hm_exporter *e);

/* ---- implementing an exporter (lib/agent/export_otlp.c and friends) ------------------------- */

/* RETRY: the destination could not be reached (or timed out): try the same
 * item again. DEFER: it answered "not now" (408, 429, 5xx): the item counts
 * an attempt and waits behind the others. REJECT: it will never take it. */
enum hm_send_result { HM_SEND_OK = 0, HM_SEND_RETRY = 1, HM_SEND_REJECT = 2, HM_SEND_DEFER = 3 };

typedef struct hm_exporter_ops {
	const char *kind;    /* "otlp", "pyroscope", "dir" */
	/* Encode p into data and len, plus an optional meta string. */
	int (*encode)(void *impl, const hm_profile *p, unsigned char **data, size_t *len,
		      char **meta);
	/* Deliver one item (sender thread). NULL send = synchronous exporter:
	 * write() is called from submit instead. */
	int (*send)(void *impl, const hm_qitem *it, const volatile int *cancel, char *why,
		    size_t whylen);
	int (*write)(void *impl, const hm_profile *p, hm_export_stats *st);
	void (*free)(void *impl);
} hm_exporter_ops;

/* Build an exporter around impl (owned from here on, freed by ops->free
 * even on failure). For queued exporters this starts the sender thread. */
int hm_exporter_new(const hm_exporter_ops *ops, void *impl, const char *name,
		    const hm_export_opts *o, hm_exporter **out);

/* HTTP POST with libcurl (one handle per sender thread, kept in *handle).
 * Classifies the outcome: OK (2xx), RETRY (connection failure, timeout),
 * DEFER (408, 429, 5xx), REJECT (other 4xx); why gets a short reason. A transfer is
 * abandoned (RETRY) as soon as *cancel becomes non-zero. */
int hm_http_post(void **handle, const char *url, const char *const *headers,
		 const void *body, size_t len, double timeout_s, const volatile int *cancel,
		 char *why, size_t whylen);
void hm_http_free(void *handle);
/* The value of a profile's resource label, or NULL. */
const char *hm_export_label(const hm_profile *p, const char *key);
/* base headers followed by the user's, NULL-ended, in one malloc'd array
 * (the strings are not copied). */
const char **hm_export_headers(const char *const *base, const char *const *user);

#endif
