/* store_sqlite.c - the embedded profile store engine (SQLite, WAL).
 *
 * Tables (one database file, DIR/homura.db):
 *   strings(id, s)                      every text once
 *   frames(id, name, file, line, start_line, kind)   -> strings
 *   stacks(id, hash, frames)            root-first frame ids as a varint blob,
 *                                       found by hash (blob compared on hit)
 *   series(id, key, type, first, last)  key = type\0name\0value\0... (sorted)
 *   series_labels(name, value, series)  label index
 *   samples(series, t, stack, count, ns)  WITHOUT ROWID, keyed by
 *                                       (series, bucket start, stack); a put
 *                                       adds into an existing row (upsert)
 *   hourly(series, h, stack, count, ns) the same summed per hour, kept by
 *                                       every put: a query reads whole hours
 *                                       here and only its ragged edges from
 *                                       samples (GROUP BY stack in SQL)
 *   totals(series, t, count, ns)        per-bucket sums for time series
 * Writes go through one connection, reads through a second one (WAL lets
 * them run side by side), each behind its own mutex. A put writes PUT_CHUNK
 * samples per transaction and lets the write mutex go between them, so a
 * profile with a million stacks does not hold up every other writer; the
 * new series of a request are created first, in one transaction, all or
 * none under the series limit (sq_add_series). The series table is
 * mirrored in memory (series are few; samples are many) for matching.
 * Maintenance drops rows past the retention age (rebuilding the hourly row
 * the cut falls in), folds 10 s buckets older than downsample_after into
 * 1 min buckets an hour at a time (aggregate into a temp table, delete the
 * range, insert; one transaction per hour so the WAL stays small), past the
 * size cap drops the oldest tenth of the span at a time, collects
 * unreferenced stacks/frames/strings, and gives the freed pages back to the
 * file system (wal_checkpoint(TRUNCATE) + incremental_vacuum; the database is
 * created with auto_vacuum=INCREMENTAL). */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/error.h"
#include "base/fairlock.h"
#include "base/intern.h"
#include "store/store.h"

typedef struct series_rec {
	int64_t id;
	uint8_t *key;            /* type\0name\0value\0... */
	uint32_t keylen;
	int64_t first, last;
} series_rec;

/* Bounded map of blobs (text, frame key, stack blob) to database ids, so a
 * put mostly skips the SELECTs; emptied when full or after a rollback. */
typedef struct wcache {
	hm_intern keys;
	int64_t *ids;
	uint32_t cap;
} wcache;

#define WCACHE_MAX_BYTES (32u << 20)
#define HOUR 3600

static void wcache_clear(wcache *c)
{
	hm_intern_free(&c->keys);
	hm_intern_init(&c->keys);
}

static int64_t wcache_get(const wcache *c, const void *k, uint32_t len)
{
	uint32_t i = hm_intern_find(&c->keys, k, len);
	return i == UINT32_MAX ? -1 : c->ids[i];
}

static void wcache_put(wcache *c, const void *k, uint32_t len, int64_t id)
{
	if (c->keys.bytes > WCACHE_MAX_BYTES)
		wcache_clear(c);
	int added;
	uint32_t i = hm_intern_put(&c->keys, k, len, &added);
	if (i == UINT32_MAX)
		return;
	if (i >= c->cap) {
		uint32_t nc = c->cap ? c->cap * 2 : 1024;
		int64_t *n = realloc(c->ids, nc * sizeof *n);
		if (!n) {
			wcache_clear(c);
			return;
		}
		c->ids = n;
		c->cap = nc;
	}
	c->ids[i] = id;
}

static void wcache_free(wcache *c)
{
	hm_intern_free(&c->keys);
	free(c->ids);
}

typedef struct sq {
	sqlite3 *w, *r;
	pthread_mutex_t rmu, smu;
	hm_fairlock wmu;         /* writers, first come first served */
	char *path;
	sqlite3_stmt *str_get, *str_ins, *frame_get, *frame_ins, *stack_get, *stack_ins,
		     *sample_up, *series_ins, *series_time, *label_ins, *hour_up, *tot_up;
	sqlite3_stmt *r_stack, *r_frame, *r_str, *r_merge, *r_totals;
	series_rec *series;
	size_t nseries, cap;
	hm_intern series_keys;   /* key -> index into series[] */
	wcache c_str, c_frame, c_stack;   /* writer's id caches (under wmu) */
	int64_t downsampled_until;
	int64_t last_gc;         /* time of the last garbage collection */
	uint64_t gen;            /* bumped when cached ids may have gone */
} sq;

static int db_err(sqlite3 *db, const char *what)
{
	return hm_error(HM_EIO, "store: %s: %s", what, sqlite3_errmsg(db));
}

static int exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int rc = hm_error(HM_EIO, "store: %s", msg ? msg : "sqlite error");
		sqlite3_free(msg);
		return rc;
	}
	return HM_OK;
}

static int prep(sqlite3 *db, sqlite3_stmt **st, const char *sql)
{
	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
		return db_err(db, "prepare");
	return HM_OK;
}

static const char SCHEMA[] =
	"PRAGMA auto_vacuum=INCREMENTAL;"
	"PRAGMA journal_mode=WAL;"
	"CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER);"
	"CREATE TABLE IF NOT EXISTS strings(id INTEGER PRIMARY KEY, s BLOB NOT NULL UNIQUE);"
	"CREATE TABLE IF NOT EXISTS frames(id INTEGER PRIMARY KEY, name INT, file INT,"
	" line INT, start_line INT, kind INT);"
	"CREATE UNIQUE INDEX IF NOT EXISTS frames_key ON frames(name, file, line, start_line, kind);"
	"CREATE TABLE IF NOT EXISTS stacks(id INTEGER PRIMARY KEY, hash INT NOT NULL,"
	" frames BLOB NOT NULL);"
	"CREATE INDEX IF NOT EXISTS stacks_hash ON stacks(hash);"
	"CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE,"
	" type TEXT, first INT, last INT);"
	"CREATE TABLE IF NOT EXISTS series_labels(name TEXT, value TEXT, series INT,"
	" PRIMARY KEY(name, value, series)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS samples(series INT, t INT, stack INT, count INT, ns INT,"
	" PRIMARY KEY(series, t, stack)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS hourly(series INT, h INT, stack INT, count INT, ns INT,"
	" PRIMARY KEY(series, h, stack)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS totals(series INT, t INT, count INT, ns INT,"
	" PRIMARY KEY(series, t)) WITHOUT ROWID;";

/* Rollups for databases written before they existed (meta 'rollups' unset). */
static const char BACKFILL[] =
	"BEGIN IMMEDIATE;"
	"DELETE FROM hourly; DELETE FROM totals;"
	"INSERT INTO hourly SELECT series, t - t % 3600, stack, sum(count), sum(ns) FROM samples"
	" GROUP BY 1, 2, 3;"
	"INSERT INTO totals SELECT series, t, sum(count), sum(ns) FROM samples GROUP BY 1, 2;"
	"INSERT OR REPLACE INTO meta(k, v) VALUES ('rollups', 1);"
	"COMMIT;";

static int64_t scalar(sqlite3 *db, const char *sql);

static int tune(sqlite3 *db)
{
	sqlite3_busy_timeout(db, 10000);
	return exec(db, "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-32768;"
			"PRAGMA temp_store=MEMORY; PRAGMA mmap_size=268435456;");
}

static int series_cache_add(sq *q, int64_t id, const void *key, uint32_t len, int64_t first,
			    int64_t last)
{
	if (q->nseries == q->cap) {
		size_t nc = q->cap ? q->cap * 2 : 64;
		series_rec *n = realloc(q->series, nc * sizeof *n);
		if (!n)
			return hm_error(HM_ENOMEM, "out of memory");
		q->series = n;
		q->cap = nc;
	}
	int added = 0;
	uint32_t idx = hm_intern_put(&q->series_keys, key, len, &added);
	if (idx == UINT32_MAX)
		return hm_error(HM_ENOMEM, "out of memory");
	if (!added)
		return HM_OK;
	series_rec *s = &q->series[q->nseries++];
	s->id = id;
	s->key = (uint8_t *)hm_intern_get(&q->series_keys, idx, &s->keylen);
	s->first = first;
	s->last = last;
	return HM_OK;
}

static int series_cache_load(sq *q)
{
	hm_intern_free(&q->series_keys);
	hm_intern_init(&q->series_keys);
	q->nseries = 0;
	sqlite3_stmt *st;
	int rc = prep(q->w, &st, "SELECT id, key, first, last FROM series ORDER BY id");
	if (rc < 0)
		return rc;
	while (rc == HM_OK && sqlite3_step(st) == SQLITE_ROW)
		rc = series_cache_add(q, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
				      (uint32_t)sqlite3_column_bytes(st, 1),
				      sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3));
	sqlite3_finalize(st);
	return rc;
}

static void sq_close(hm_store *st)
{
	sq *q = st->impl;
	if (!q)
		return;
	sqlite3_stmt *all[] = {q->str_get, q->str_ins, q->frame_get, q->frame_ins, q->stack_get,
			       q->stack_ins, q->sample_up, q->series_ins, q->series_time,
			       q->label_ins, q->r_stack, q->r_frame, q->r_str, q->r_merge,
			       q->r_totals, q->hour_up, q->tot_up};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		sqlite3_finalize(all[i]);
	if (q->w)
		sqlite3_close(q->w);
	if (q->r)
		sqlite3_close(q->r);
	hm_intern_free(&q->series_keys);
	wcache_free(&q->c_str);
	wcache_free(&q->c_frame);
	wcache_free(&q->c_stack);
	free(q->series);
	free(q->path);
	hm_fairlock_destroy(&q->wmu);
	pthread_mutex_destroy(&q->rmu);
	pthread_mutex_destroy(&q->smu);
	free(q);
	st->impl = NULL;
}

static int sq_open(hm_store *st, const char *dir)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return hm_error(HM_ESYS, "store: cannot create %s: %s", dir, strerror(errno));
	sq *q = calloc(1, sizeof *q);
	if (!q)
		return hm_error(HM_ENOMEM, "out of memory");
	st->impl = q;
	hm_fairlock_init(&q->wmu);
	pthread_mutex_init(&q->rmu, NULL);
	pthread_mutex_init(&q->smu, NULL);
	hm_intern_init(&q->series_keys);
	hm_intern_init(&q->c_str.keys);
	hm_intern_init(&q->c_frame.keys);
	hm_intern_init(&q->c_stack.keys);
	size_t pl = strlen(dir) + 16;
	q->path = malloc(pl);
	if (!q->path) {
		sq_close(st);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	snprintf(q->path, pl, "%s/homura.db", dir);
	int rc = HM_OK;
	/* never through a symbolic link planted at DIR/homura.db */
	int fl = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
		 SQLITE_OPEN_NOFOLLOW;
	if (sqlite3_open_v2(q->path, &q->w, fl, NULL) != SQLITE_OK)
		rc = hm_error(HM_EIO, "store: cannot open %s: %s", q->path,
			      q->w ? sqlite3_errmsg(q->w) : "out of memory");
	if (rc == HM_OK)
		rc = tune(q->w);
	if (rc == HM_OK)
		rc = exec(q->w, SCHEMA);
	if (rc == HM_OK && sqlite3_open_v2(q->path, &q->r, SQLITE_OPEN_READONLY |
					   SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK)
		rc = hm_error(HM_EIO, "store: cannot open %s for reading", q->path);
	if (rc == HM_OK)
		rc = tune(q->r);
	struct { sqlite3 *db; sqlite3_stmt **st; const char *sql; } stmts[] = {
		{q->w, &q->str_get, "SELECT id FROM strings WHERE s = ?"},
		{q->w, &q->str_ins, "INSERT INTO strings(s) VALUES (?)"},
		{q->w, &q->frame_get, "SELECT id FROM frames WHERE name=? AND file=? AND line=?"
				      " AND start_line=? AND kind=?"},
		{q->w, &q->frame_ins, "INSERT INTO frames(name, file, line, start_line, kind)"
				      " VALUES (?, ?, ?, ?, ?)"},
		{q->w, &q->stack_get, "SELECT id, frames FROM stacks WHERE hash = ?"},
		{q->w, &q->stack_ins, "INSERT INTO stacks(hash, frames) VALUES (?, ?)"},
		{q->w, &q->sample_up, "INSERT INTO samples(series, t, stack, count, ns)"
				      " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
				      " count = count + excluded.count, ns = ns + excluded.ns"},
		{q->w, &q->hour_up, "INSERT INTO hourly(series, h, stack, count, ns)"
				    " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
				    " count = count + excluded.count, ns = ns + excluded.ns"},
		{q->w, &q->tot_up, "INSERT INTO totals(series, t, count, ns)"
				   " VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
				   " count = count + excluded.count, ns = ns + excluded.ns"},
		{q->w, &q->series_ins, "INSERT INTO series(key, type, first, last) VALUES (?,?,?,?)"},
		{q->w, &q->series_time, "UPDATE series SET first = ?, last = ? WHERE id = ?"},
		{q->w, &q->label_ins, "INSERT OR IGNORE INTO series_labels(name, value, series)"
				      " VALUES (?, ?, ?)"},
		{q->r, &q->r_stack, "SELECT frames FROM stacks WHERE id = ?"},
		{q->r, &q->r_frame, "SELECT name, file, line, start_line, kind FROM frames"
				    " WHERE id = ?"},
		{q->r, &q->r_str, "SELECT s FROM strings WHERE id = ?"},
		/* raw buckets at the edges, hourly rollups for the whole hours; rows
		 * are summed per stack in C (a hash on the stack id, no sort) and
		 * each distinct stack is materialised once */
		{q->r, &q->r_merge, "SELECT stack, count, ns FROM samples"
				    " WHERE series = ?1 AND t >= ?2 AND t < ?3"
				    " UNION ALL SELECT stack, count, ns FROM hourly"
				    " WHERE series = ?1 AND h >= ?3 AND h < ?4"
				    " UNION ALL SELECT stack, count, ns FROM samples"
				    " WHERE series = ?1 AND t >= ?4 AND t < ?5"},
		{q->r, &q->r_totals, "SELECT (t - ?1) / ?2, sum(count), sum(ns) FROM totals"
				     " WHERE series = ?3 AND t >= ?1 AND t < ?4 GROUP BY 1"},
	};
	for (size_t i = 0; rc == HM_OK && i < sizeof stmts / sizeof stmts[0]; i++)
		rc = prep(stmts[i].db, stmts[i].st, stmts[i].sql);
	if (rc == HM_OK)
		rc = series_cache_load(q);
	if (rc == HM_OK && scalar(q->w, "SELECT v FROM meta WHERE k = 'rollups'") != 1) {
		rc = exec(q->w, BACKFILL);
		if (rc < 0)
			sqlite3_exec(q->w, "ROLLBACK", NULL, NULL, NULL);
	}
	if (rc == HM_OK) {
		sqlite3_stmt *m;
		rc = prep(q->w, &m, "SELECT v FROM meta WHERE k = 'downsampled_until'");
		if (rc == HM_OK && sqlite3_step(m) == SQLITE_ROW)
			q->downsampled_until = sqlite3_column_int64(m, 0);
		sqlite3_finalize(m);
	}
	if (rc < 0)
		sq_close(st);
	return rc;
}

/* ---- writing ---- */

static int64_t str_id(sq *q, const char *s)
{
	size_t n = strlen(s);
	int64_t id = wcache_get(&q->c_str, s, (uint32_t)n);
	if (id >= 0)
		return id;
	sqlite3_stmt *g = q->str_get;
	sqlite3_bind_blob(g, 1, s, (int)n, SQLITE_STATIC);
	if (sqlite3_step(g) == SQLITE_ROW)
		id = sqlite3_column_int64(g, 0);
	sqlite3_reset(g);
	if (id < 0) {
		sqlite3_bind_blob(q->str_ins, 1, s, (int)n, SQLITE_STATIC);
		if (sqlite3_step(q->str_ins) == SQLITE_DONE)
			id = sqlite3_last_insert_rowid(q->w);
		sqlite3_reset(q->str_ins);
	}
	if (id >= 0)
		wcache_put(&q->c_str, s, (uint32_t)n, id);
	return id;
}

static int64_t frame_id(sq *q, const hm_profile *p, const hm_frame *f)
{
	int64_t name = str_id(q, hm_profile_str(p, f->name));
	int64_t file = str_id(q, hm_profile_str(p, f->file));
	if (name < 0 || file < 0)
		return -1;
	int64_t v[5] = {name, file, f->line, f->start_line, f->kind};
	int64_t id = wcache_get(&q->c_frame, v, sizeof v);
	if (id >= 0)
		return id;
	for (int i = 0; i < 5; i++) {
		sqlite3_bind_int64(q->frame_get, i + 1, v[i]);
		sqlite3_bind_int64(q->frame_ins, i + 1, v[i]);
	}
	if (sqlite3_step(q->frame_get) == SQLITE_ROW)
		id = sqlite3_column_int64(q->frame_get, 0);
	sqlite3_reset(q->frame_get);
	if (id < 0) {
		if (sqlite3_step(q->frame_ins) == SQLITE_DONE)
			id = sqlite3_last_insert_rowid(q->w);
		sqlite3_reset(q->frame_ins);
	}
	if (id >= 0)
		wcache_put(&q->c_frame, v, sizeof v, id);
	return id;
}

static size_t put_varint(uint8_t *b, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		b[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b[n++] = (uint8_t)v;
	return n;
}

static int64_t stack_id(sq *q, const uint8_t *blob, size_t len)
{
	int64_t id = wcache_get(&q->c_stack, blob, (uint32_t)len);
	if (id >= 0)
		return id;
	int64_t hash = (int64_t)hm_hash_bytes(blob, len);
	sqlite3_bind_int64(q->stack_get, 1, hash);
	while (sqlite3_step(q->stack_get) == SQLITE_ROW)
		if ((size_t)sqlite3_column_bytes(q->stack_get, 1) == len &&
		    (!len || !memcmp(sqlite3_column_blob(q->stack_get, 1), blob, len))) {
			id = sqlite3_column_int64(q->stack_get, 0);
			break;
		}
	sqlite3_reset(q->stack_get);
	if (id < 0) {
		sqlite3_bind_int64(q->stack_ins, 1, hash);
		sqlite3_bind_blob(q->stack_ins, 2, blob, (int)len, SQLITE_STATIC);
		if (sqlite3_step(q->stack_ins) == SQLITE_DONE)
			id = sqlite3_last_insert_rowid(q->w);
		sqlite3_reset(q->stack_ins);
	}
	if (id >= 0)
		wcache_put(&q->c_stack, blob, (uint32_t)len, id);
	return id;
}

/* type\0name\0value\0... of a series (malloc'd), NULL when out of memory. */
static uint8_t *series_key(const char *type, const hm_store_label *l, uint32_t n, size_t *len)
{
	*len = strlen(type) + 1;
	for (uint32_t i = 0; i < n; i++)
		*len += strlen(l[i].name) + strlen(l[i].value) + 2;
	uint8_t *key = malloc(*len), *k = key;
	if (!key)
		return NULL;
	k = (uint8_t *)stpcpy((char *)k, type) + 1;
	for (uint32_t i = 0; i < n; i++) {
		k = (uint8_t *)stpcpy((char *)k, l[i].name) + 1;
		k = (uint8_t *)stpcpy((char *)k, l[i].value) + 1;
	}
	return key;
}

/* Series index for (type, labels), creating it; -1 with hm_error set. */
static int64_t series_get(hm_store *st, sq *q, const char *type, const hm_store_label *l,
			  uint32_t n, int64_t t, series_rec **rec)
{
	size_t len;
	uint8_t *key = series_key(type, l, n, &len);
	if (!key)
		return hm_error(HM_ENOMEM, "out of memory");
	pthread_mutex_lock(&q->smu);
	uint32_t idx = hm_intern_find(&q->series_keys, key, (uint32_t)len);
	pthread_mutex_unlock(&q->smu);
	int64_t rc = HM_OK;
	if (idx == UINT32_MAX) {
		if (q->nseries >= st->opts.max_series) {
			free(key);
			return hm_error(HM_EINVAL, "store: series limit (%u) reached",
					st->opts.max_series);
		}
		sqlite3_bind_blob(q->series_ins, 1, key, (int)len, SQLITE_STATIC);
		sqlite3_bind_text(q->series_ins, 2, type, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q->series_ins, 3, t);
		sqlite3_bind_int64(q->series_ins, 4, t);
		int ok = sqlite3_step(q->series_ins) == SQLITE_DONE;
		sqlite3_reset(q->series_ins);
		int64_t id = sqlite3_last_insert_rowid(q->w);
		for (uint32_t i = 0; ok && i < n; i++) {
			sqlite3_bind_text(q->label_ins, 1, l[i].name, -1, SQLITE_STATIC);
			sqlite3_bind_text(q->label_ins, 2, l[i].value, -1, SQLITE_STATIC);
			sqlite3_bind_int64(q->label_ins, 3, id);
			ok = sqlite3_step(q->label_ins) == SQLITE_DONE;
			sqlite3_reset(q->label_ins);
		}
		if (!ok) {
			free(key);
			return db_err(q->w, "new series");
		}
		pthread_mutex_lock(&q->smu);
		rc = series_cache_add(q, id, key, (uint32_t)len, t, t);
		idx = hm_intern_find(&q->series_keys, key, (uint32_t)len);
		pthread_mutex_unlock(&q->smu);
	}
	free(key);
	if (rc < 0)
		return rc;
	/* series[] only grows under wmu, which the caller holds */
	for (size_t i = 0; i < q->nseries; i++)
		if (q->series[i].key == hm_intern_get(&q->series_keys, idx, NULL)) {
			*rec = &q->series[i];
			return q->series[i].id;
		}
	return hm_error(HM_EIO, "store: series cache out of step");
}

/* Undo a failed write transaction (caller holds wmu, hm_error is set). */
static void rollback(sq *q, int rc)
{
	char msg[256];
	snprintf(msg, sizeof msg, "%s", hm_errmsg());
	sqlite3_exec(q->w, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_lock(&q->smu);
	series_cache_load(q);    /* a rolled-back new series must go */
	pthread_mutex_unlock(&q->smu);
	wcache_clear(&q->c_str);   /* and so must ids handed out in it */
	wcache_clear(&q->c_frame);
	wcache_clear(&q->c_stack);
	q->gen++;
	hm_error(rc, "%s", msg);
}

static int sq_add_series(hm_store *st, const hm_store_put_req *v, size_t n)
{
	sq *q = st->impl;
	hm_intern fresh;          /* distinct new series keys of the request */
	hm_intern_init(&fresh);
	int rc = HM_OK;
	hm_fairlock_lock(&q->wmu);
	for (size_t i = 0; rc == HM_OK && i < n; i++) {
		size_t len;
		uint8_t *key = series_key(v[i].type, v[i].labels, v[i].n, &len);
		if (!key) {
			rc = hm_error(HM_ENOMEM, "out of memory");
			break;
		}
		pthread_mutex_lock(&q->smu);
		uint32_t idx = hm_intern_find(&q->series_keys, key, (uint32_t)len);
		pthread_mutex_unlock(&q->smu);
		if (idx == UINT32_MAX && hm_intern_put(&fresh, key, (uint32_t)len, NULL) == UINT32_MAX)
			rc = hm_error(HM_ENOMEM, "out of memory");
		free(key);
	}
	if (rc == HM_OK && fresh.n) {
		if (q->nseries + fresh.n > st->opts.max_series) {
			rc = hm_error(HM_EINVAL, "store: series limit (%u) reached: the request "
				      "needs %u new series and %zu are in use", st->opts.max_series,
				      fresh.n, q->nseries);
		} else {
			rc = exec(q->w, "BEGIN IMMEDIATE");
			for (size_t i = 0; rc == HM_OK && i < n; i++) {
				series_rec *rec;
				int64_t b = v[i].t_s - v[i].t_s % HM_STORE_BUCKET_S;
				int64_t sid = series_get(st, q, v[i].type, v[i].labels, v[i].n, b, &rec);
				if (sid < 0)
					rc = (int)sid;
			}
			if (rc == HM_OK)
				rc = exec(q->w, "COMMIT");
			if (rc < 0)
				rollback(q, rc);
		}
	}
	hm_fairlock_unlock(&q->wmu);
	hm_intern_free(&fresh);
	return rc;
}

/* Samples written per transaction: the write lock is let go between them,
 * so one large profile does not hold up other writers for long. */
#define PUT_CHUNK 4096

static int sq_put(hm_store *st, const char *type, const hm_store_label *labels, uint32_t n,
		  int64_t t_s, const hm_profile *p)
{
	sq *q = st->impl;
	int64_t bucket = t_s - t_s % HM_STORE_BUCKET_S;
	uint32_t nframes = hm_profile_nframes(p);
	int64_t *fmap = malloc((nframes + 1) * sizeof *fmap);
	uint8_t *blob = malloc((size_t)10 * 4096 + 16);
	if (!fmap || !blob) {
		free(fmap);
		free(blob);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	size_t ns = hm_profile_nsamples(p), i = 0;
	uint64_t gen = 0;
	int rc = HM_OK, first = 1;
	while (rc == HM_OK && (first || i < ns)) {
		hm_fairlock_lock(&q->wmu);
		if (first || gen != q->gen)   /* ids cached before may be gone */
			for (uint32_t f = 0; f < nframes; f++)
				fmap[f] = -1;
		gen = q->gen;
		rc = exec(q->w, "BEGIN IMMEDIATE");
		series_rec *rec = NULL;
		int64_t sid = rc < 0 ? rc : series_get(st, q, type, labels, n, bucket, &rec);
		if (sid < 0)
			rc = (int)sid;
		int64_t sum_count = 0, sum_ns = 0;
		for (size_t end = i + PUT_CHUNK; rc == HM_OK && i < ns && i < end; i++) {
			const hm_sample *s = hm_profile_sample(p, i);
			if (!s->count && !s->weight_ns)
				continue;
			uint32_t depth;
			const uint32_t *fr = hm_profile_stack(p, s->stack, &depth);
			if (depth > 4096)
				depth = 4096;
			size_t bl = 0;
			for (uint32_t d = 0; d < depth; d++) {
				uint32_t f = fr[d];
				if (f >= nframes) {
					rc = hm_error(HM_EINVAL, "store: frame id out of range");
					break;
				}
				if (fmap[f] < 0)
					fmap[f] = frame_id(q, p, hm_profile_frame(p, f));
				if (fmap[f] < 0) {
					rc = db_err(q->w, "frame");
					break;
				}
				bl += put_varint(blob + bl, (uint64_t)fmap[f]);
			}
			if (rc < 0)
				break;
			int64_t stk = stack_id(q, blob, bl);
			if (stk < 0) {
				rc = db_err(q->w, "stack");
				break;
			}
			sqlite3_stmt *u = q->sample_up;
			sqlite3_bind_int64(u, 1, sid);
			sqlite3_bind_int64(u, 2, bucket);
			sqlite3_bind_int64(u, 3, stk);
			sqlite3_bind_int64(u, 4, s->count);
			sqlite3_bind_int64(u, 5, s->weight_ns);
			if (sqlite3_step(u) != SQLITE_DONE)
				rc = db_err(q->w, "sample");
			sqlite3_reset(u);
			u = q->hour_up;
			sqlite3_bind_int64(u, 1, sid);
			sqlite3_bind_int64(u, 2, bucket - bucket % HOUR);
			sqlite3_bind_int64(u, 3, stk);
			sqlite3_bind_int64(u, 4, s->count);
			sqlite3_bind_int64(u, 5, s->weight_ns);
			if (rc == HM_OK && sqlite3_step(u) != SQLITE_DONE)
				rc = db_err(q->w, "hourly rollup");
			sqlite3_reset(u);
			sum_count = hm_sat_add(sum_count, s->count);
			sum_ns = hm_sat_add(sum_ns, s->weight_ns);
		}
		if (rc == HM_OK && (sum_count || sum_ns)) {
			sqlite3_stmt *u = q->tot_up;
			sqlite3_bind_int64(u, 1, sid);
			sqlite3_bind_int64(u, 2, bucket);
			sqlite3_bind_int64(u, 3, sum_count);
			sqlite3_bind_int64(u, 4, sum_ns);
			if (sqlite3_step(u) != SQLITE_DONE)
				rc = db_err(q->w, "totals");
			sqlite3_reset(u);
		}
		if (rc == HM_OK && (bucket < rec->first || bucket > rec->last)) {
			int64_t lo = bucket < rec->first ? bucket : rec->first;
			int64_t hi = bucket > rec->last ? bucket : rec->last;
			sqlite3_bind_int64(q->series_time, 1, lo);
			sqlite3_bind_int64(q->series_time, 2, hi);
			sqlite3_bind_int64(q->series_time, 3, sid);
			if (sqlite3_step(q->series_time) != SQLITE_DONE)
				rc = db_err(q->w, "series time");
			sqlite3_reset(q->series_time);
			if (rc == HM_OK) {
				pthread_mutex_lock(&q->smu);
				rec->first = lo;
				rec->last = hi;
				pthread_mutex_unlock(&q->smu);
			}
		}
		if (rc == HM_OK)
			rc = exec(q->w, "COMMIT");
		if (rc < 0)
			rollback(q, rc);
		hm_fairlock_unlock(&q->wmu);
		first = 0;
		if (rc == HM_OK && i < ns && st->opts.put_pause)
			st->opts.put_pause(st->opts.put_pause_arg);
	}
	free(fmap);
	free(blob);
	return rc;
}

/* ---- reading ---- */

static int sq_list_series(hm_store *st, hm_series_list *out)
{
	sq *q = st->impl;
	pthread_mutex_lock(&q->smu);
	size_t bytes = 0;
	for (size_t i = 0; i < q->nseries; i++)
		bytes += q->series[i].keylen;
	out->v = calloc(q->nseries + 1, sizeof *out->v);
	out->strbuf = malloc(bytes + 1);
	if (!out->v || !out->strbuf) {
		pthread_mutex_unlock(&q->smu);
		hm_series_list_free(out);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	char *b = out->strbuf;
	for (size_t i = 0; i < q->nseries; i++) {
		const series_rec *r = &q->series[i];
		hm_series_info *s = &out->v[out->n++];
		memcpy(b, r->key, r->keylen);
		s->id = r->id;
		s->first_s = r->first;
		s->last_s = r->last;
		char *end = b + r->keylen;
		s->type = b;
		b += strlen(b) + 1;
		while (b < end && s->nlabels < HM_STORE_MAX_LABELS) {
			s->labels[s->nlabels].name = b;
			b += strlen(b) + 1;
			s->labels[s->nlabels++].value = b;
			b += strlen(b) + 1;
		}
		b = end;
	}
	pthread_mutex_unlock(&q->smu);
	return HM_OK;
}

typedef struct idmap {       /* db id -> profile id */
	hm_intern keys;
	uint32_t *vals;
	uint32_t cap;
} idmap;

static int idmap_get(idmap *m, int64_t id, uint32_t *val)
{
	uint32_t i = hm_intern_find(&m->keys, &id, sizeof id);
	if (i == UINT32_MAX)
		return 0;
	*val = m->vals[i];
	return 1;
}

static int idmap_set(idmap *m, int64_t id, uint32_t val)
{
	int added;
	uint32_t i = hm_intern_put(&m->keys, &id, sizeof id, &added);
	if (i == UINT32_MAX)
		return HM_ENOMEM;
	if (i >= m->cap) {
		uint32_t nc = m->cap ? m->cap * 2 : 256;
		uint32_t *n = realloc(m->vals, nc * sizeof *n);
		if (!n)
			return HM_ENOMEM;
		m->vals = n;
		m->cap = nc;
	}
	m->vals[i] = val;
	return HM_OK;
}

typedef struct reader {
	sq *q;
	hm_profile *p;
	idmap stacks, frames, strings;
	uint32_t *scratch;
} reader;

static int read_str(reader *rd, int64_t id, hm_str_id *out)
{
	uint32_t v;
	if (idmap_get(&rd->strings, id, &v)) {
		*out = v;
		return HM_OK;
	}
	sqlite3_stmt *s = rd->q->r_str;
	sqlite3_bind_int64(s, 1, id);
	int rc = HM_OK;
	if (sqlite3_step(s) == SQLITE_ROW)
		*out = hm_profile_intern(rd->p, sqlite3_column_blob(s, 0),
					 (size_t)sqlite3_column_bytes(s, 0));
	else
		rc = hm_error(HM_EIO, "store: string %lld missing", (long long)id);
	sqlite3_reset(s);
	return rc < 0 ? rc : idmap_set(&rd->strings, id, *out);
}

static int read_frame(reader *rd, int64_t id, uint32_t *out)
{
	if (idmap_get(&rd->frames, id, out))
		return HM_OK;
	sqlite3_stmt *s = rd->q->r_frame;
	sqlite3_bind_int64(s, 1, id);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return hm_error(HM_EIO, "store: frame %lld missing", (long long)id);
	}
	int64_t name = sqlite3_column_int64(s, 0), file = sqlite3_column_int64(s, 1);
	hm_frame f = {0};
	f.line = sqlite3_column_int(s, 2);
	f.start_line = sqlite3_column_int(s, 3);
	f.kind = (uint8_t)sqlite3_column_int(s, 4);
	sqlite3_reset(s);
	int rc = read_str(rd, name, &f.name);
	if (rc == HM_OK)
		rc = read_str(rd, file, &f.file);
	if (rc < 0)
		return rc;
	*out = hm_profile_frame_id(rd->p, &f);
	return idmap_set(&rd->frames, id, *out);
}

static int read_stack(reader *rd, int64_t id, uint32_t *out)
{
	if (idmap_get(&rd->stacks, id, out))
		return HM_OK;
	sqlite3_stmt *s = rd->q->r_stack;
	sqlite3_bind_int64(s, 1, id);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return hm_error(HM_EIO, "store: stack %lld missing", (long long)id);
	}
	/* copy: reading frames may step other statements */
	size_t len = (size_t)sqlite3_column_bytes(s, 0);
	uint8_t *blob = malloc(len + 1);
	if (!blob) {
		sqlite3_reset(s);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	const void *src = sqlite3_column_blob(s, 0);
	if (len && src)      /* an empty stack reads back as NULL */
		memcpy(blob, src, len);
	else
		len = 0;
	sqlite3_reset(s);
	uint32_t n = 0;
	int rc = HM_OK;
	for (size_t at = 0; at < len && n < 4096 && rc == HM_OK;) {
		uint64_t v = 0;
		int sh = 0;
		while (at < len && sh < 63) {
			uint8_t c = blob[at++];
			v |= (uint64_t)(c & 0x7f) << sh;
			sh += 7;
			if (!(c & 0x80))
				break;
		}
		rc = read_frame(rd, (int64_t)v, &rd->scratch[n++]);
	}
	free(blob);
	if (rc < 0)
		return rc;
	*out = hm_profile_stack_id(rd->p, rd->scratch, n);
	return idmap_set(&rd->stacks, id, *out);
}

static int sq_merge(hm_store *st, const int64_t *series, size_t n, int64_t t0, int64_t t1,
		    hm_profile *out)
{
	sq *q = st->impl;
	reader rd = {.q = q, .p = out};
	hm_intern_init(&rd.stacks.keys);
	hm_intern_init(&rd.frames.keys);
	hm_intern_init(&rd.strings.keys);
	rd.scratch = malloc(4096 * sizeof *rd.scratch);
	int rc = rd.scratch ? HM_OK : hm_error(HM_ENOMEM, "out of memory");
	uint32_t th = hm_profile_thread_id(out, 0, 0, NULL);
	/* [t0, h0) and [h1, t1) from raw buckets, [h0, h1) from hourly rows */
	int64_t h0 = t0 <= 0 ? 0 : (t0 + HOUR - 1) / HOUR * HOUR, h1 = t1 - t1 % HOUR;
	if (h0 >= h1)
		h0 = h1 = t1;
	pthread_mutex_lock(&q->rmu);
	if (rc == HM_OK)
		rc = exec(q->r, "BEGIN");   /* one snapshot for the whole query */
	for (size_t i = 0; rc == HM_OK && i < n; i++) {
		sqlite3_stmt *m = q->r_merge;
		sqlite3_bind_int64(m, 1, series[i]);
		sqlite3_bind_int64(m, 2, t0);
		sqlite3_bind_int64(m, 3, h0);
		sqlite3_bind_int64(m, 4, h1);
		sqlite3_bind_int64(m, 5, t1);
		int step;
		while (rc == HM_OK && (step = sqlite3_step(m)) == SQLITE_ROW) {
			uint32_t ps = 0;
			rc = read_stack(&rd, sqlite3_column_int64(m, 0), &ps);
			if (rc == HM_OK)
				hm_profile_add(out, ps, th, sqlite3_column_int64(m, 1),
					       sqlite3_column_int64(m, 2), 0);
		}
		if (rc == HM_OK && step != SQLITE_DONE)
			rc = db_err(q->r, "query");
		sqlite3_reset(m);
	}
	sqlite3_exec(q->r, "COMMIT", NULL, NULL, NULL);
	pthread_mutex_unlock(&q->rmu);
	idmap *maps[] = {&rd.stacks, &rd.frames, &rd.strings};
	for (int i = 0; i < 3; i++) {
		hm_intern_free(&maps[i]->keys);
		free(maps[i]->vals);
	}
	free(rd.scratch);
	return rc < 0 ? rc == HM_ENOMEM ? hm_error(HM_ENOMEM, "out of memory") : rc : HM_OK;
}

static int sq_totals(hm_store *st, const int64_t *series, size_t n, int64_t t0, int64_t t1,
		     int64_t step, int value_kind, int64_t *out, size_t nout)
{
	sq *q = st->impl;
	int rc = HM_OK;
	pthread_mutex_lock(&q->rmu);
	exec(q->r, "BEGIN");
	for (size_t i = 0; rc == HM_OK && i < n; i++) {
		sqlite3_stmt *m = q->r_totals;
		sqlite3_bind_int64(m, 1, t0);
		sqlite3_bind_int64(m, 2, step);
		sqlite3_bind_int64(m, 3, series[i]);
		sqlite3_bind_int64(m, 4, t1);
		int r;
		while ((r = sqlite3_step(m)) == SQLITE_ROW) {
			int64_t slot = sqlite3_column_int64(m, 0);
			if (slot >= 0 && (uint64_t)slot < nout)
				out[slot] += sqlite3_column_int64(m, value_kind == HM_VALUE_COUNT ?
								  1 : 2);
		}
		if (r != SQLITE_DONE)
			rc = db_err(q->r, "query");
		sqlite3_reset(m);
	}
	sqlite3_exec(q->r, "COMMIT", NULL, NULL, NULL);
	pthread_mutex_unlock(&q->rmu);
	return rc;
}

/* ---- maintenance ---- */

static int64_t db_bytes(sq *q)
{
	struct stat sb;
	int64_t total = 0;
	if (stat(q->path, &sb) == 0)
		total += sb.st_size;
	char wal[4096];
	snprintf(wal, sizeof wal, "%s-wal", q->path);
	if (stat(wal, &sb) == 0)
		total += sb.st_size;
	return total;
}

static int64_t scalar(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* (scalar: -1 for no row or NULL) */
/* Run sql with ?1 = series id and ?2, ?3 = the given values for each series. */
static int per_series(sq *q, const char *sql, int64_t a, int64_t b)
{
	sqlite3_stmt *s;
	int rc = prep(q->w, &s, sql);
	for (size_t i = 0; rc == HM_OK && i < q->nseries; i++) {
		sqlite3_bind_int64(s, 1, q->series[i].id);
		sqlite3_bind_int64(s, 2, a);
		sqlite3_bind_int64(s, 3, b);
		if (sqlite3_step(s) != SQLITE_DONE)
			rc = db_err(q->w, "maintenance");
		sqlite3_reset(s);
	}
	sqlite3_finalize(s);
	return rc;
}

static int drop_before(sq *q, int64_t cutoff)
{
	int64_t hc = cutoff - cutoff % HOUR;
	int rc = per_series(q, "DELETE FROM samples WHERE series = ?1 AND t < ?2 AND ?3 = ?3",
			    cutoff, 0);
	if (rc == HM_OK)
		rc = per_series(q, "DELETE FROM totals WHERE series = ?1 AND t < ?2 AND ?3 = ?3",
				cutoff, 0);
	if (rc == HM_OK)
		rc = per_series(q, "DELETE FROM hourly WHERE series = ?1 AND h < ?2 AND ?3 = ?3",
				hc, 0);
	if (rc == HM_OK && cutoff > hc)   /* the hour the cut falls in: rebuilt from the rest */
		rc = per_series(q, "DELETE FROM hourly WHERE series = ?1 AND h = ?2 AND ?3 = ?3",
				hc, 0);
	if (rc == HM_OK && cutoff > hc)
		rc = per_series(q, "INSERT INTO hourly SELECT ?1, ?2, stack, sum(count), sum(ns)"
				" FROM samples WHERE series = ?1 AND t >= ?2 AND t < ?3 GROUP BY stack",
				hc, hc + HOUR);
	if (rc == HM_OK)
		rc = exec(q->w,
			  "DELETE FROM series_labels WHERE series IN (SELECT id FROM series s"
			  " WHERE NOT EXISTS (SELECT 1 FROM samples WHERE series = s.id));"
			  "DELETE FROM series WHERE NOT EXISTS"
			  " (SELECT 1 FROM samples WHERE series = series.id);"
			  "UPDATE series SET first = (SELECT min(t) FROM samples WHERE series = series.id);");
	return rc;
}

/* Fold the 10 s buckets of [a, b) (minute aligned) of every series into 1 min
 * buckets: aggregate into a temp table, delete the range, insert the result.
 * Totals get the same treatment; hourly rollups do not change. */
static int downsample_range(sq *q, int64_t a, int64_t b)
{
	static const char *const sql[] = {
		"INSERT INTO temp.ds SELECT t - t % 60, stack, sum(count), sum(ns) FROM samples"
		" WHERE series = ?1 AND t >= ?2 AND t < ?3 GROUP BY 1, 2",
		"DELETE FROM samples WHERE series = ?1 AND t >= ?2 AND t < ?3",
		"INSERT INTO samples SELECT ?1, t, stack, c, n FROM temp.ds WHERE ?2 = ?2 AND ?3 = ?3",
		"DELETE FROM temp.ds WHERE ?1 = ?1 AND ?2 = ?2 AND ?3 = ?3",
		"INSERT INTO temp.dst SELECT t - t % 60, sum(count), sum(ns) FROM totals"
		" WHERE series = ?1 AND t >= ?2 AND t < ?3 GROUP BY 1",
		"DELETE FROM totals WHERE series = ?1 AND t >= ?2 AND t < ?3",
		"INSERT INTO totals SELECT ?1, t, c, n FROM temp.dst WHERE ?2 = ?2 AND ?3 = ?3",
		"DELETE FROM temp.dst WHERE ?1 = ?1 AND ?2 = ?2 AND ?3 = ?3",
	};
	enum { NSQL = sizeof sql / sizeof sql[0] };
	sqlite3_stmt *st[NSQL] = {0};
	int rc = exec(q->w, "CREATE TEMP TABLE IF NOT EXISTS ds(t INT, stack INT, c INT, n INT);"
			    "CREATE TEMP TABLE IF NOT EXISTS dst(t INT, c INT, n INT);");
	for (size_t i = 0; rc == HM_OK && i < NSQL; i++)
		rc = prep(q->w, &st[i], sql[i]);
	/* series by series: the temp tables hold one series' range at a time */
	for (size_t k = 0; rc == HM_OK && k < q->nseries; k++) {
		if (q->series[k].last < a || q->series[k].first >= b)
			continue;
		for (size_t i = 0; rc == HM_OK && i < NSQL; i++) {
			sqlite3_bind_int64(st[i], 1, q->series[k].id);
			sqlite3_bind_int64(st[i], 2, a);
			sqlite3_bind_int64(st[i], 3, b);
			if (sqlite3_step(st[i]) != SQLITE_DONE)
				rc = db_err(q->w, "downsampling");
			sqlite3_reset(st[i]);
		}
	}
	for (size_t i = 0; i < NSQL; i++)
		sqlite3_finalize(st[i]);
	return rc;
}

static int set_meta(sq *q, const char *k, int64_t v)
{
	sqlite3_stmt *m;
	int rc = prep(q->w, &m, "INSERT OR REPLACE INTO meta(k, v) VALUES (?, ?)");
	if (rc < 0)
		return rc;
	sqlite3_bind_text(m, 1, k, -1, SQLITE_STATIC);
	sqlite3_bind_int64(m, 2, v);
	if (sqlite3_step(m) != SQLITE_DONE)
		rc = db_err(q->w, "meta");
	sqlite3_finalize(m);
	return rc;
}

/* Give freed pages back to the file system: fold the WAL into the database,
 * move free pages to the end and truncate (auto_vacuum=INCREMENTAL), and
 * truncate the WAL again. */
static void reclaim(sq *q)
{
	sqlite3_exec(q->w, "PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL);
	if (scalar(q->w, "PRAGMA freelist_count") > 0) {
		sqlite3_exec(q->w, "PRAGMA incremental_vacuum;", NULL, NULL, NULL);
		sqlite3_exec(q->w, "PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL);
	}
}

/* After dropping samples: remove stacks no sample uses, frames no stack
 * uses (frame ids live inside the stack blobs, so they are decoded here)
 * and strings no frame uses. */
static int collect_garbage(sq *q)
{
	int rc = exec(q->w, "DELETE FROM stacks WHERE id NOT IN (SELECT stack FROM samples);"
			    "CREATE TEMP TABLE IF NOT EXISTS live_frames(id INTEGER PRIMARY KEY);"
			    "DELETE FROM live_frames;");
	sqlite3_stmt *s = NULL, *ins = NULL;
	if (rc == HM_OK)
		rc = prep(q->w, &s, "SELECT frames FROM stacks");
	if (rc == HM_OK)
		rc = prep(q->w, &ins, "INSERT OR IGNORE INTO live_frames(id) VALUES (?)");
	while (rc == HM_OK && sqlite3_step(s) == SQLITE_ROW) {
		const uint8_t *b = sqlite3_column_blob(s, 0);
		size_t len = (size_t)sqlite3_column_bytes(s, 0);
		for (size_t at = 0; at < len && rc == HM_OK;) {
			uint64_t v = 0;
			for (int sh = 0; at < len && sh < 63; sh += 7) {
				uint8_t c = b[at++];
				v |= (uint64_t)(c & 0x7f) << sh;
				if (!(c & 0x80))
					break;
			}
			sqlite3_bind_int64(ins, 1, (int64_t)v);
			if (sqlite3_step(ins) != SQLITE_DONE)
				rc = db_err(q->w, "garbage collection");
			sqlite3_reset(ins);
		}
	}
	sqlite3_finalize(s);
	sqlite3_finalize(ins);
	if (rc == HM_OK)
		rc = exec(q->w, "DELETE FROM frames WHERE id NOT IN (SELECT id FROM live_frames);"
			  "DELETE FROM live_frames;"
			  "DELETE FROM strings WHERE id NOT IN (SELECT name FROM frames)"
			  " AND id NOT IN (SELECT file FROM frames);");
	return rc;
}

static int sq_maintain(hm_store *st, int64_t now)
{
	sq *q = st->impl;
	const hm_store_opts *o = &st->opts;
	hm_fairlock_lock(&q->wmu);
	int rc = HM_OK, dropped = 0;
	if (o->retention_s > 0) {
		int before = sqlite3_total_changes(q->w);
		rc = exec(q->w, "BEGIN IMMEDIATE");
		if (rc == HM_OK)
			rc = drop_before(q, now - o->retention_s);
		if (rc == HM_OK)
			rc = exec(q->w, "COMMIT");
		else
			sqlite3_exec(q->w, "ROLLBACK", NULL, NULL, NULL);
		dropped = sqlite3_total_changes(q->w) != before;
	}
	if (rc == HM_OK && o->downsample_after_s > 0) {
		int64_t cutoff = now - o->downsample_after_s;
		cutoff -= cutoff % HM_STORE_COARSE_S;
		int64_t from = q->downsampled_until - q->downsampled_until % HM_STORE_COARSE_S;
		int64_t lo = scalar(q->w, "SELECT min(first) FROM series");
		if (lo >= 0 && lo - lo % HM_STORE_COARSE_S > from)
			from = lo - lo % HM_STORE_COARSE_S;
		if (lo < 0)          /* no data: nothing to fold */
			from = cutoff;
		/* an hour at a time, each in its own transaction, so the WAL stays small
		 * and readers are never held off for long */
		while (rc == HM_OK && from < cutoff) {
			int64_t to = from - from % HOUR + HOUR;
			if (to > cutoff)
				to = cutoff;
			rc = exec(q->w, "BEGIN IMMEDIATE");
			if (rc == HM_OK)
				rc = downsample_range(q, from, to);
			if (rc == HM_OK)
				rc = set_meta(q, "downsampled_until", to);
			if (rc == HM_OK)
				rc = exec(q->w, "COMMIT");
			else
				sqlite3_exec(q->w, "ROLLBACK", NULL, NULL, NULL);
			if (rc == HM_OK)
				q->downsampled_until = from = to;
			dropped = 1;
			/* let puts waiting for the writer in between hours */
			hm_fairlock_unlock(&q->wmu);
			hm_fairlock_lock(&q->wmu);
		}
		if (rc == HM_OK)    /* a series may now start a little earlier */
			rc = exec(q->w, "UPDATE series SET first = (SELECT min(t) FROM"
				  " samples WHERE series = series.id) WHERE EXISTS"
				  " (SELECT 1 FROM samples WHERE series = series.id);");
	}
	/* unreferenced stacks/frames/strings: after retention, at most hourly */
	if (rc == HM_OK && dropped && o->retention_s > 0 && now - q->last_gc >= HOUR) {
		rc = exec(q->w, "BEGIN IMMEDIATE");
		if (rc == HM_OK)
			rc = collect_garbage(q);
		if (rc == HM_OK)
			rc = exec(q->w, "COMMIT");
		else
			sqlite3_exec(q->w, "ROLLBACK", NULL, NULL, NULL);
		q->last_gc = now;
	}
	if (rc == HM_OK && dropped)
		reclaim(q);
	/* size cap: drop the oldest tenth of the time span until under it */
	for (int round = 0; rc == HM_OK && o->max_bytes > 0 && round < 16; round++) {
		reclaim(q);
		int64_t bytes = db_bytes(q);
		if (bytes <= o->max_bytes)
			break;
		int64_t lo = scalar(q->w, "SELECT min(first) FROM series");
		int64_t hi = scalar(q->w, "SELECT max(last) FROM series");
		if (lo < 0 || hi < lo)
			break;
		int64_t span = (hi - lo) / 10;
		rc = exec(q->w, "BEGIN IMMEDIATE");
		if (rc == HM_OK)
			rc = drop_before(q, lo + (span > HM_STORE_COARSE_S ? span : HM_STORE_COARSE_S));
		if (rc == HM_OK)
			rc = collect_garbage(q);
		if (rc == HM_OK)
			rc = exec(q->w, "COMMIT");
		else
			sqlite3_exec(q->w, "ROLLBACK", NULL, NULL, NULL);
		if (rc == HM_OK)
			reclaim(q);
	}
	wcache_clear(&q->c_str);     /* garbage collection may have removed ids */
	wcache_clear(&q->c_frame);
	wcache_clear(&q->c_stack);
	q->gen++;
	pthread_mutex_lock(&q->smu);
	int lrc = series_cache_load(q);
	pthread_mutex_unlock(&q->smu);
	hm_fairlock_unlock(&q->wmu);
	return rc < 0 ? rc : lrc;
}

static int sq_stats(hm_store *st, hm_store_stats *out)
{
	sq *q = st->impl;
	pthread_mutex_lock(&q->rmu);
	out->bytes = db_bytes(q);
	out->nsamples = scalar(q->r, "SELECT count(*) FROM samples");
	out->nstacks = scalar(q->r, "SELECT count(*) FROM stacks");
	out->nframes = scalar(q->r, "SELECT count(*) FROM frames");
	out->nstrings = scalar(q->r, "SELECT count(*) FROM strings");
	out->nseries = scalar(q->r, "SELECT count(*) FROM series");
	pthread_mutex_unlock(&q->rmu);
	return HM_OK;
}

const hm_store_ops hm_store_sqlite_ops = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.put = sq_put,
	.add_series = sq_add_series,
	.list_series = sq_list_series,
	.merge = sq_merge,
	.totals = sq_totals,
	.maintain = sq_maintain,
	.stats = sq_stats,
};
