/* engine.h - private to lib/store/: the engine table and what the engines
 * share. Nothing outside lib/store/ includes it (scripts/check_layers.py);
 * store.h is the public API.
 *
 * The engine-independent write path (write.c) turns a profile into rows:
 * it interns strings, frames and stacks through bounded id caches (a miss
 * asks the engine's dict_id, which finds or creates the row), encodes each
 * stack as a varint blob of frame ids (root first, at most
 * HM_STORE_MAX_DEPTH frames), folds the samples of a chunk per stack when
 * the engine asks (fold_rows), and hands each chunk of at most
 * HM_STORE_PUT_CHUNK samples to the engine's rows() between begin() and
 * end(), the write lock (st->wmu) held for one chunk at a time. Series are found and created there too (series limit,
 * all or none for a request). Errors, out of memory included, are reported
 * the same way whatever the engine.
 *
 * An engine (store_sqlite.c, store_pg.c) does the SQL: the dictionary and
 * series lookups, the sample upserts, reading, maintenance and statistics.
 * The read side shares the id map, the varint decoder, the series key
 * parser and the hour split below. */
#ifndef HOMURA_STORE_ENGINE_H
#define HOMURA_STORE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "base/fairlock.h"
#include "base/intern.h"
#include "store/store.h"

#define HM_STORE_HOUR 3600
#define HM_STORE_MAX_DEPTH 4096        /* frames kept of a stack (deeper ones: the root end) */
#define HM_STORE_PUT_CHUNK 4096        /* samples per write transaction */
#define HM_STORE_CACHE_BYTES (32 << 20) /* default bound of each id cache */

/* Bounded map of blobs (a text, a frame key, a stack blob, a series key) to
 * database ids, so that a put mostly skips the lookups. Emptied when it
 * would grow past max bytes (keys and index together); a key too large to
 * fit is not cached. */
typedef struct hm_idcache {
	hm_intern keys;
	int64_t *ids;
	uint32_t cap;
	size_t max;
} hm_idcache;

void hm_idcache_init(hm_idcache *c, size_t max);
void hm_idcache_clear(hm_idcache *c);
void hm_idcache_free(hm_idcache *c);
int64_t hm_idcache_get(const hm_idcache *c, const void *k, size_t len);
/* HM_OK, or HM_ENOMEM with the message set. */
int hm_idcache_put(hm_idcache *c, const void *k, size_t len, int64_t id);
size_t hm_idcache_bytes(const hm_idcache *c);

enum hm_store_dict { HM_DICT_STRING, HM_DICT_FRAME, HM_DICT_STACK };

/* A frame's dictionary key: {name string id, file string id, line,
 * start_line, kind}. */
typedef struct hm_store_frame_key {
	int64_t v[5];
} hm_store_frame_key;

/* One row of a chunk: a sample's (or, folded, a stack's) values. */
typedef struct hm_store_row {
	int64_t stack, count, ns;
} hm_store_row;

typedef struct hm_store_engine {
	const char *name;
	/* rows() wants a chunk's rows folded per stack and in stack order
	 * (PostgreSQL: no row twice in one upsert, and the same lock order in
	 * every writer); else they come in sample order. */
	int fold_rows;
	int (*open)(hm_store *st, const char *where);
	void (*close)(hm_store *st);

	/* Writing, called by write.c with st->wmu held. Each returns HM_OK (or
	 * an id >= 0) or a negative error with the message set. */
	int (*begin)(hm_store *st);              /* a write unit starts */
	int (*end)(hm_store *st, int rc);        /* commit (rc == HM_OK) or undo; the result */
	/* Id of a dictionary row (enum hm_store_dict), created when new. The
	 * key: the string's bytes, a hm_store_frame_key, a stack blob. */
	int64_t (*dict_id)(hm_store *st, int kind, const void *key, size_t len);
	/* Id of the series with this key (type\0name\0value\0...), -1 if none. */
	int64_t (*series_find)(hm_store *st, const uint8_t *key, size_t len);
	int64_t (*series_count)(hm_store *st);
	/* Create the series (labels sorted) with first = last = t; its id. */
	int64_t (*series_add)(hm_store *st, const uint8_t *key, size_t len, const char *type,
			      const hm_store_label *labels, uint32_t n, int64_t t);
	/* Add rows (and their sums to the bucket's totals) to series at bucket
	 * start t; nrows may be 0 (an empty profile). */
	int (*rows)(hm_store *st, int64_t series, int64_t t, const hm_store_row *rows,
		    size_t nrows, int64_t sum_count, int64_t sum_ns);

	/* Reading and upkeep (store.h says what they do); maintain takes the
	 * write lock itself. */
	int (*list_series)(hm_store *st, hm_series_list *out);
	/* Merge samples of the series in [t0, t1) into out (thread 0). */
	int (*merge)(hm_store *st, const int64_t *series, size_t n, int64_t t0, int64_t t1,
		     hm_profile *out);
	/* Sum values (value_kind) per step-wide slot from t0 into out[nout]. */
	int (*totals)(hm_store *st, const int64_t *series, size_t n, int64_t t0, int64_t t1,
		      int64_t step, int value_kind, int64_t *out, size_t nout);
	int (*maintain)(hm_store *st, int64_t now_s);
	int (*stats)(hm_store *st, hm_store_stats *out);

	/* Test doubles (tests/fuzz): when set, sees each profile put, its
	 * labels checked and sorted, before it is written. */
	void (*inspect)(hm_store *st, const char *type, const hm_store_label *labels,
			uint32_t n, const hm_profile *p);
} hm_store_engine;

extern const hm_store_engine hm_store_sqlite_engine;
/* PostgreSQL (libpq), picked for "postgres://..." / "postgresql://..." locations;
 * several servers may share one database. */
extern const hm_store_engine hm_store_pg_engine;

struct hm_store {
	const hm_store_engine *eng;
	hm_store_opts opts;
	void *impl;                  /* the engine's */
	hm_fairlock wmu;             /* writers, first come first served */
	/* the writer's id caches, under wmu */
	hm_idcache c_str, c_frame, c_stack, c_series;
	uint64_t gen;                /* bumped when cached dictionary ids may be gone */
};

/* hm_store_open with a given engine (hm_store_open picks one by where). */
int hm_store_open_engine(const hm_store_engine *eng, const char *where,
			 const hm_store_opts *o, hm_store **out);

/* Engines call these with wmu held: dictionary ids may have gone (a
 * rollback, garbage collection), or series (a rollback, retention, a
 * reconnection). */
void hm_store_forget_ids(hm_store *st);
void hm_store_forget_series(hm_store *st);

/* The write path's halves of hm_store_put / hm_store_put_many (write.c). */
int hm_store_write(hm_store *st, const char *type, const hm_store_label *labels, uint32_t n,
		   int64_t t_s, const hm_profile *p);
int hm_store_write_series(hm_store *st, const hm_store_put_req *v, size_t n);

/* ---- shared by the read sides ---- */

/* Database id -> profile id, for one query. */
typedef struct hm_idmap {
	hm_intern keys;
	uint32_t *vals;
	uint32_t cap;
} hm_idmap;

void hm_idmap_init(hm_idmap *m);
void hm_idmap_free(hm_idmap *m);
int hm_idmap_get(const hm_idmap *m, int64_t id, uint32_t *val);
int hm_idmap_set(hm_idmap *m, int64_t id, uint32_t val);   /* HM_OK or HM_ENOMEM (message set) */

/* Frame ids of a stack blob into out[max]; their number. */
size_t hm_store_stack_decode(const uint8_t *b, size_t len, int64_t *out, size_t max);

/* A series list for n series whose keys take keybytes in all; then
 * hm_store_list_add for each, b starting at out->strbuf (it returns the
 * next b). */
int hm_store_list_alloc(hm_series_list *out, size_t n, size_t keybytes);
char *hm_store_list_add(hm_series_list *out, char *b, int64_t id, const void *key,
			size_t keylen, int64_t first, int64_t last);

/* [t0, h0) and [h1, t1) are read from raw buckets, [h0, h1) from hourly rows. */
void hm_store_hours(int64_t t0, int64_t t1, int64_t *h0, int64_t *h1);

/* ---- shared by maintenance ---- */

/* Downsampling folds [*from, *cutoff) into 1 min buckets, an hour at a time
 * (hm_store_fold_step gives the end of the next piece): cutoff is
 * now - after, from where the last run stopped (done_until, < 0 for never)
 * or the oldest data (lo, < 0 for none: then nothing to fold). */
void hm_store_fold_range(int64_t now, int64_t after, int64_t done_until, int64_t lo,
			 int64_t *from, int64_t *cutoff);
int64_t hm_store_fold_step(int64_t from, int64_t cutoff);
/* Over the size cap: drop data before this (the oldest tenth of [lo, hi],
 * at least a minute). */
int64_t hm_store_cap_cut(int64_t lo, int64_t hi);

#endif
