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
 * The write path is write.c's (engine.h): this engine's part of a write
 * unit (one chunk of a put, or the new series of a request) is one
 * BEGIN IMMEDIATE transaction, dictionary rows included; a failed one is
 * rolled back and the cached ids and series forgotten. Writes go through
 * one connection, reads through a second one (WAL lets them run side by
 * side). The series table is mirrored in memory (series are few; samples
 * are many) for matching.
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
#include "store/engine.h"

typedef struct series_rec {
	int64_t id;
	uint8_t *key;            /* type\0name\0value\0... */
	uint32_t keylen;
	int64_t first, last;
} series_rec;

#define HOUR HM_STORE_HOUR

typedef struct sq {
	sqlite3 *w, *r;
	pthread_mutex_t rmu, smu;
	char *path;
	sqlite3_stmt *str_get, *str_ins, *frame_get, *frame_ins, *stack_get, *stack_ins,
		     *sample_up, *series_ins, *series_time, *label_ins, *hour_up, *tot_up;
	sqlite3_stmt *r_stack, *r_frame, *r_str, *r_merge, *r_totals;
	series_rec *series;
	size_t nseries, cap;
	hm_intern series_keys;   /* key -> index into series[] (the same order) */
	int64_t downsampled_until;
	int64_t last_gc;         /* time of the last garbage collection */
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
	free(q->series);
	free(q->path);
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
	pthread_mutex_init(&q->rmu, NULL);
	pthread_mutex_init(&q->smu, NULL);
	hm_intern_init(&q->series_keys);
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

/* ---- writing (engine.h; st->wmu held) ---- */

static int sq_begin(hm_store *st)
{
	sq *q = st->impl;
	return exec(q->w, "BEGIN IMMEDIATE");
}

/* Undo a failed write transaction (hm_error is set). */
static void rollback(hm_store *st, int rc)
{
	sq *q = st->impl;
	char msg[256];
	snprintf(msg, sizeof msg, "%s", hm_errmsg());
	sqlite3_exec(q->w, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_lock(&q->smu);
	series_cache_load(q);    /* a rolled-back new series must go */
	pthread_mutex_unlock(&q->smu);
	hm_store_forget_series(st);
	hm_store_forget_ids(st); /* and so must ids handed out in it */
	hm_error(rc, "%s", msg);
}

static int sq_end(hm_store *st, int rc)
{
	sq *q = st->impl;
	if (rc == HM_OK)
		rc = exec(q->w, "COMMIT");
	if (rc < 0)
		rollback(st, rc);
	return rc;
}

static int64_t sq_dict_id(hm_store *st, int kind, const void *key, size_t len)
{
	sq *q = st->impl;
	sqlite3_stmt *get, *ins;
	int64_t id = -1, hash = 0;
	if (kind == HM_DICT_FRAME) {
		const int64_t *v = ((const hm_store_frame_key *)key)->v;
		get = q->frame_get;
		ins = q->frame_ins;
		for (int i = 0; i < 5; i++) {
			sqlite3_bind_int64(get, i + 1, v[i]);
			sqlite3_bind_int64(ins, i + 1, v[i]);
		}
		if (sqlite3_step(get) == SQLITE_ROW)
			id = sqlite3_column_int64(get, 0);
	} else if (kind == HM_DICT_STACK) {
		/* found by hash, the blob compared on a hit */
		get = q->stack_get;
		ins = q->stack_ins;
		hash = (int64_t)hm_hash_bytes(key, len);
		sqlite3_bind_int64(get, 1, hash);
		while (sqlite3_step(get) == SQLITE_ROW)
			if ((size_t)sqlite3_column_bytes(get, 1) == len &&
			    (!len || !memcmp(sqlite3_column_blob(get, 1), key, len))) {
				id = sqlite3_column_int64(get, 0);
				break;
			}
		sqlite3_bind_int64(ins, 1, hash);
		sqlite3_bind_blob(ins, 2, key, (int)len, SQLITE_STATIC);
	} else {
		get = q->str_get;
		ins = q->str_ins;
		sqlite3_bind_blob(get, 1, key, (int)len, SQLITE_STATIC);
		sqlite3_bind_blob(ins, 1, key, (int)len, SQLITE_STATIC);
		if (sqlite3_step(get) == SQLITE_ROW)
			id = sqlite3_column_int64(get, 0);
	}
	sqlite3_reset(get);
	if (id < 0) {
		if (sqlite3_step(ins) == SQLITE_DONE)
			id = sqlite3_last_insert_rowid(q->w);
		else
			id = db_err(q->w, kind == HM_DICT_FRAME ? "frame" :
					  kind == HM_DICT_STACK ? "stack" : "string");
		sqlite3_reset(ins);
	}
	return id;
}

static int64_t sq_series_find(hm_store *st, const uint8_t *key, size_t len)
{
	sq *q = st->impl;
	pthread_mutex_lock(&q->smu);
	uint32_t idx = hm_intern_find(&q->series_keys, key, (uint32_t)len);
	int64_t id = idx < q->nseries ? q->series[idx].id : -1;
	pthread_mutex_unlock(&q->smu);
	return id;
}

static int64_t sq_series_count(hm_store *st)
{
	sq *q = st->impl;
	return (int64_t)q->nseries;   /* grows only under wmu, which the caller holds */
}

static int64_t sq_series_add(hm_store *st, const uint8_t *key, size_t len, const char *type,
			     const hm_store_label *l, uint32_t n, int64_t t)
{
	sq *q = st->impl;
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
	if (!ok)
		return db_err(q->w, "new series");
	pthread_mutex_lock(&q->smu);
	int rc = series_cache_add(q, id, key, (uint32_t)len, t, t);
	pthread_mutex_unlock(&q->smu);
	return rc < 0 ? rc : id;
}

/* The in-memory record of a series (series[] is in id order). */
static series_rec *series_rec_of(sq *q, int64_t id)
{
	size_t lo = 0, hi = q->nseries;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (q->series[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < q->nseries && q->series[lo].id == id)
		return &q->series[lo];
	for (size_t i = 0; i < q->nseries; i++)
		if (q->series[i].id == id)
			return &q->series[i];
	return NULL;
}

static int sq_rows(hm_store *st, int64_t sid, int64_t bucket, const hm_store_row *rows,
		   size_t nrows, int64_t sum_count, int64_t sum_ns)
{
	sq *q = st->impl;
	int rc = HM_OK;
	for (size_t k = 0; rc == HM_OK && k < nrows; k++) {
		sqlite3_stmt *u = q->sample_up;
		sqlite3_bind_int64(u, 1, sid);
		sqlite3_bind_int64(u, 2, bucket);
		sqlite3_bind_int64(u, 3, rows[k].stack);
		sqlite3_bind_int64(u, 4, rows[k].count);
		sqlite3_bind_int64(u, 5, rows[k].ns);
		if (sqlite3_step(u) != SQLITE_DONE)
			rc = db_err(q->w, "sample");
		sqlite3_reset(u);
		u = q->hour_up;
		sqlite3_bind_int64(u, 1, sid);
		sqlite3_bind_int64(u, 2, bucket - bucket % HOUR);
		sqlite3_bind_int64(u, 3, rows[k].stack);
		sqlite3_bind_int64(u, 4, rows[k].count);
		sqlite3_bind_int64(u, 5, rows[k].ns);
		if (rc == HM_OK && sqlite3_step(u) != SQLITE_DONE)
			rc = db_err(q->w, "hourly rollup");
		sqlite3_reset(u);
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
	series_rec *rec = rc == HM_OK ? series_rec_of(q, sid) : NULL;
	if (rc == HM_OK && !rec)
		rc = hm_error(HM_EIO, "store: series cache out of step");
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
	int rc = hm_store_list_alloc(out, q->nseries, bytes);
	char *b = out->strbuf;
	for (size_t i = 0; rc == HM_OK && i < q->nseries; i++) {
		const series_rec *r = &q->series[i];
		b = hm_store_list_add(out, b, r->id, r->key, r->keylen, r->first, r->last);
	}
	pthread_mutex_unlock(&q->smu);
	return rc;
}

typedef struct reader {
	sq *q;
	hm_profile *p;
	hm_idmap stacks, frames, strings;
	uint32_t *scratch;
	int64_t *fids;
} reader;

static int read_str(reader *rd, int64_t id, hm_str_id *out)
{
	uint32_t v;
	if (hm_idmap_get(&rd->strings, id, &v)) {
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
	return rc < 0 ? rc : hm_idmap_set(&rd->strings, id, *out);
}

static int read_frame(reader *rd, int64_t id, uint32_t *out)
{
	if (hm_idmap_get(&rd->frames, id, out))
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
	return hm_idmap_set(&rd->frames, id, *out);
}

static int read_stack(reader *rd, int64_t id, uint32_t *out)
{
	if (hm_idmap_get(&rd->stacks, id, out))
		return HM_OK;
	sqlite3_stmt *s = rd->q->r_stack;
	sqlite3_bind_int64(s, 1, id);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return hm_error(HM_EIO, "store: stack %lld missing", (long long)id);
	}
	/* decoded before reading frames, which steps other statements */
	const uint8_t *blob = sqlite3_column_blob(s, 0);
	size_t len = (size_t)sqlite3_column_bytes(s, 0);
	uint32_t n = (uint32_t)hm_store_stack_decode(blob, len, rd->fids, HM_STORE_MAX_DEPTH);
	sqlite3_reset(s);
	int rc = HM_OK;
	for (uint32_t k = 0; k < n && rc == HM_OK; k++)
		rc = read_frame(rd, rd->fids[k], &rd->scratch[k]);
	if (rc < 0)
		return rc;
	*out = hm_profile_stack_id(rd->p, rd->scratch, n);
	return hm_idmap_set(&rd->stacks, id, *out);
}

static int sq_merge(hm_store *st, const int64_t *series, size_t n, int64_t t0, int64_t t1,
		    hm_profile *out)
{
	sq *q = st->impl;
	reader rd = {.q = q, .p = out};
	hm_idmap_init(&rd.stacks);
	hm_idmap_init(&rd.frames);
	hm_idmap_init(&rd.strings);
	rd.scratch = malloc(HM_STORE_MAX_DEPTH * sizeof *rd.scratch);
	rd.fids = malloc(HM_STORE_MAX_DEPTH * sizeof *rd.fids);
	int rc = rd.scratch && rd.fids ? HM_OK : hm_error(HM_ENOMEM, "out of memory");
	uint32_t th = hm_profile_thread_id(out, 0, 0, NULL);
	int64_t h0, h1;
	hm_store_hours(t0, t1, &h0, &h1);
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
	hm_idmap_free(&rd.stacks);
	hm_idmap_free(&rd.frames);
	hm_idmap_free(&rd.strings);
	free(rd.scratch);
	free(rd.fids);
	return rc;
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
	int64_t *fids = malloc(HM_STORE_MAX_DEPTH * sizeof *fids);
	if (rc == HM_OK && !fids)
		rc = hm_error(HM_ENOMEM, "out of memory");
	if (rc == HM_OK)
		rc = prep(q->w, &s, "SELECT frames FROM stacks");
	if (rc == HM_OK)
		rc = prep(q->w, &ins, "INSERT OR IGNORE INTO live_frames(id) VALUES (?)");
	while (rc == HM_OK && sqlite3_step(s) == SQLITE_ROW) {
		const uint8_t *b = sqlite3_column_blob(s, 0);
		size_t len = (size_t)sqlite3_column_bytes(s, 0);
		size_t nf = hm_store_stack_decode(b, len, fids, HM_STORE_MAX_DEPTH);
		for (size_t k = 0; k < nf && rc == HM_OK; k++) {
			sqlite3_bind_int64(ins, 1, fids[k]);
			if (sqlite3_step(ins) != SQLITE_DONE)
				rc = db_err(q->w, "garbage collection");
			sqlite3_reset(ins);
		}
	}
	sqlite3_finalize(s);
	sqlite3_finalize(ins);
	free(fids);
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
	hm_fairlock_lock(&st->wmu);
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
		int64_t from, cutoff;
		hm_store_fold_range(now, o->downsample_after_s, q->downsampled_until,
				    scalar(q->w, "SELECT min(first) FROM series"), &from, &cutoff);
		/* an hour at a time, each in its own transaction, so the WAL stays small
		 * and readers are never held off for long */
		while (rc == HM_OK && from < cutoff) {
			int64_t to = hm_store_fold_step(from, cutoff);
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
			hm_fairlock_unlock(&st->wmu);
			hm_fairlock_lock(&st->wmu);
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
		rc = exec(q->w, "BEGIN IMMEDIATE");
		if (rc == HM_OK)
			rc = drop_before(q, hm_store_cap_cut(lo, hi));
		if (rc == HM_OK)
			rc = collect_garbage(q);
		if (rc == HM_OK)
			rc = exec(q->w, "COMMIT");
		else
			sqlite3_exec(q->w, "ROLLBACK", NULL, NULL, NULL);
		if (rc == HM_OK)
			reclaim(q);
	}
	hm_store_forget_ids(st);     /* garbage collection may have removed ids */
	hm_store_forget_series(st);  /* and retention series */
	pthread_mutex_lock(&q->smu);
	int lrc = series_cache_load(q);
	pthread_mutex_unlock(&q->smu);
	hm_fairlock_unlock(&st->wmu);
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

const hm_store_engine hm_store_sqlite_engine = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.begin = sq_begin,
	.end = sq_end,
	.dict_id = sq_dict_id,
	.series_find = sq_series_find,
	.series_count = sq_series_count,
	.series_add = sq_series_add,
	.rows = sq_rows,
	.list_series = sq_list_series,
	.merge = sq_merge,
	.totals = sq_totals,
	.maintain = sq_maintain,
	.stats = sq_stats,
};
