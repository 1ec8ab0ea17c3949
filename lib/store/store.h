/* store.h - the profile store behind `homura server`.
 *
 * A store keeps profiles as series: a profile type ("process_cpu", "wall")
 * plus a sorted label set (service_name="api", version="1.5", ...). Inside a
 * series, samples are aggregated per (time bucket, stack) with summed count
 * and nanoseconds; strings, frames and stacks are stored once and
 * referenced. Buckets are HM_STORE_BUCKET_S wide and become
 * HM_STORE_COARSE_S wide once older than opts.downsample_after_s.
 *
 * hm_store_open picks one of two engines from the location: a directory
 * path (or "sqlite:DIR") opens the embedded SQLite engine (store_sqlite.c),
 * a postgres:// or postgresql:// URL a PostgreSQL database, which several
 * servers may share (store_pg.c). The engine table and the write path they
 * share are private to lib/store/ (engine.h, write.c).
 *
 * Selections use Pyroscope's syntax:
 *   process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="api",version=~"1\\..*"}
 * The part before '{' names the profile type; a sample unit of "count"
 * selects sample counts, anything else nanoseconds. Matchers: = != =~ !~
 * (regexes: regex.h's bounded RE2-style subset, matching the whole value).
 * All functions are thread-safe (a parsed selector belongs to one thread). */
#ifndef HOMURA_STORE_H
#define HOMURA_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "base/profile.h"
#include "base/regex.h"

#define HM_STORE_BUCKET_S 10
#define HM_STORE_COARSE_S 60
#define HM_STORE_MAX_LABELS 32
#define HM_STORE_MAX_NAME 128      /* label names and profile type names */
#define HM_STORE_MAX_VALUE 1024    /* label values */
#define HM_STORE_MAX_MATCHERS 16

typedef struct hm_store hm_store;

typedef struct hm_store_opts {
	int64_t retention_s;         /* drop samples older than this; 0 = keep */
	int64_t downsample_after_s;  /* 10 s -> 1 min buckets past this age; 0 = never */
	int64_t max_bytes;           /* on-disk cap; oldest data dropped past it; 0 = none */
	uint32_t max_series;         /* new series refused past this; 0 = 100000 */
	/* Bound of each of the writer's id caches (strings, frames, stacks,
	 * series): bytes of keys and index; 0 = 32 MiB. */
	int64_t id_cache_bytes;
	/* Tests: called between the write transactions of a large put, with
	 * the write lock free (NULL in normal use). */
	void (*put_pause)(void *arg);
	void *put_pause_arg;
	/* Tests: asked before each insert into an id cache; nonzero makes the
	 * insert fail as running out of memory would (NULL in normal use). */
	int (*cache_fail)(void *arg);
	void *cache_fail_arg;
} hm_store_opts;

typedef struct hm_store_label {
	const char *name, *value;
} hm_store_label;

/* One series as the store lists it (strings owned by the store's list). */
typedef struct hm_series_info {
	int64_t id;
	const char *type;
	uint32_t nlabels;
	hm_store_label labels[HM_STORE_MAX_LABELS];  /* sorted by name */
	int64_t first_s, last_s;     /* time of its oldest / newest bucket */
} hm_series_info;

typedef struct hm_series_list {
	hm_series_info *v;
	size_t n;
	char *strbuf;                /* owns every string above */
} hm_series_list;

typedef struct hm_store_stats {
	int64_t bytes;               /* database (and WAL) size on disk */
	int64_t nsamples;            /* stored (series, bucket, stack) rows */
	int64_t nstacks, nframes, nstrings, nseries;
	int64_t cache_bytes;         /* held by the writer's id caches (all four; read
	                              * under the write lock: it waits for a put) */
} hm_store_stats;

enum hm_value_kind { HM_VALUE_NS = 0, HM_VALUE_COUNT = 1 };
enum hm_match_op { HM_MATCH_EQ, HM_MATCH_NE, HM_MATCH_RE, HM_MATCH_NRE };

typedef struct hm_matcher {
	char *name, *value;
	int op;                      /* enum hm_match_op */
	hm_regex *re;                /* =~ and !~ */
} hm_matcher;

typedef struct hm_selector {
	char *type;                  /* profile type name ("process_cpu"), NULL = any */
	int value_kind;              /* enum hm_value_kind */
	uint32_t n;
	hm_matcher m[HM_STORE_MAX_MATCHERS];
} hm_selector;

/* One profile of a request, for hm_store_put_many. */
typedef struct hm_store_put_req {
	const char *type;
	const hm_store_label *labels;
	uint32_t n;
	int64_t t_s;
	const hm_profile *p;
} hm_store_put_req;

int hm_store_open(const char *where, const hm_store_opts *o, hm_store **out);
void hm_store_close(hm_store *st);

/* Validate and add one profile. Labels are checked (name syntax
 * [A-Za-z_][A-Za-z0-9_.]*, lengths, count, values valid UTF-8) and sorted;
 * HM_EINVAL on bad ones. t_s <= 0 means the profile's own start time, else now. */
int hm_store_put(hm_store *st, const char *type, const hm_store_label *labels, uint32_t n,
		 int64_t t_s, const hm_profile *p);
/* Add the profiles of one request: all labels are checked first, then the
 * new series they need are created all or none (a request that would pass
 * the series limit stores nothing: "series limit" error), then each profile
 * is put. Engines write a large profile in several short transactions so
 * that other writers are not held up; only a database failure part way can
 * leave part of a request stored. */
int hm_store_put_many(hm_store *st, const hm_store_put_req *v, size_t n);

int hm_store_series(hm_store *st, hm_series_list *out);
void hm_series_list_free(hm_series_list *l);
/* Label value of a series, NULL if absent. */
const char *hm_series_label(const hm_series_info *s, const char *name);

/* Series ids matching sel that have data in [t0, t1) (malloc'd array). */
int hm_store_match(hm_store *st, const hm_selector *sel, int64_t t0, int64_t t1,
		   int64_t **ids, size_t *n);
/* The merged profile of a selection over [t0, t1). */
int hm_store_select(hm_store *st, const hm_selector *sel, int64_t t0, int64_t t1,
		    hm_profile **out);
int hm_store_timeseries(hm_store *st, const hm_selector *sel, int64_t t0, int64_t t1,
			int64_t step, int64_t *out, size_t nout);
/* hm_store_timeseries of a set of series ids (from hm_store_match), for
 * callers that group series themselves (the querier's SelectSeries). */
int hm_store_totals(hm_store *st, const int64_t *series, size_t n, int64_t t0, int64_t t1,
		    int64_t step, int value_kind, int64_t *out, size_t nout);
int hm_store_maintain(hm_store *st, int64_t now_s);
int hm_store_stats_get(hm_store *st, hm_store_stats *out);

/* Selections. hm_selector_parse accepts "type{matchers}", "{matchers}",
 * "type" or "" (everything). HM_EINVAL with a message on bad syntax. */
int hm_selector_parse(const char *text, hm_selector *sel);
int hm_selector_add(hm_selector *sel, const char *name, int op, const char *value);
/* 1 / 0, or HM_EINVAL (message set) once a regex matcher has used up its
 * work cap (regex.h); a selector is for one thread at a time. */
int hm_selector_match(const hm_selector *sel, const hm_series_info *s);
void hm_selector_free(hm_selector *sel);

/* Label name check used by ingest: nonzero when acceptable. */
int hm_store_label_name_ok(const char *name);

#endif
