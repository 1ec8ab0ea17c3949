/* store_pg.c - the PostgreSQL profile store engine (libpq), so that several
 * `homura server` instances can share one database.
 *
 * The tables mirror the SQLite engine's (prefixed hm_): strings, frames and
 * stacks are dictionaries (found by md5 of their bytes, created with INSERT
 * .. ON CONFLICT DO NOTHING so concurrent servers agree on one id), series
 * carry their canonical key (type\0name\0value\0...), and samples, hourly
 * rollups and per-bucket totals are keyed like SQLite's. The write path is
 * write.c's (engine.h): dictionary and series rows are created one by one,
 * outside any transaction (dictionaries are never collected in this engine,
 * so cached ids stay valid across servers); each chunk of a put sends its
 * three upserts in one round trip, one transaction, rows in stack order so
 * concurrent writers cannot deadlock. Reads aggregate in SQL
 * (GROUP BY stack, hourly rows for whole hours) and fetch the stacks,
 * frames and strings they need with "= ANY(array)" queries. Maintenance
 * (retention, downsampling, size cap) runs in whichever server holds an
 * advisory lock. The series list is read from the database on each query,
 * so series created through another server are seen at once. */
#include <endian.h>
#include <postgresql/libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fairlock.h"
#include "base/intern.h"
#include "store/engine.h"

#define HOUR HM_STORE_HOUR
#define LOCK_SCHEMA 0x686d7301
#define LOCK_MAINT 0x686d7302

typedef struct pg {
	PGconn *w, *r;
	pthread_mutex_t rmu;
} pg;

static const char SCHEMA[] =
	"CREATE TABLE IF NOT EXISTS hm_meta(k text PRIMARY KEY, v bigint);"
	"CREATE TABLE IF NOT EXISTS hm_strings(id bigserial PRIMARY KEY, s bytea NOT NULL);"
	"CREATE UNIQUE INDEX IF NOT EXISTS hm_strings_key ON hm_strings(md5(s));"
	"CREATE TABLE IF NOT EXISTS hm_frames(id bigserial PRIMARY KEY, name bigint NOT NULL,"
	" file bigint NOT NULL, line int NOT NULL, start_line int NOT NULL, kind int NOT NULL,"
	" UNIQUE(name, file, line, start_line, kind));"
	"CREATE TABLE IF NOT EXISTS hm_stacks(id bigserial PRIMARY KEY, frames bytea NOT NULL);"
	"CREATE UNIQUE INDEX IF NOT EXISTS hm_stacks_key ON hm_stacks(md5(frames));"
	"CREATE TABLE IF NOT EXISTS hm_series(id bigserial PRIMARY KEY, key bytea NOT NULL,"
	" type text NOT NULL, first bigint NOT NULL, last bigint NOT NULL);"
	"CREATE UNIQUE INDEX IF NOT EXISTS hm_series_key ON hm_series(md5(key));"
	"CREATE TABLE IF NOT EXISTS hm_samples(series bigint, t bigint, stack bigint,"
	" count bigint NOT NULL, ns bigint NOT NULL, PRIMARY KEY(series, t, stack));"
	"CREATE TABLE IF NOT EXISTS hm_hourly(series bigint, h bigint, stack bigint,"
	" count bigint NOT NULL, ns bigint NOT NULL, PRIMARY KEY(series, h, stack));"
	"CREATE TABLE IF NOT EXISTS hm_totals(series bigint, t bigint,"
	" count bigint NOT NULL, ns bigint NOT NULL, PRIMARY KEY(series, t));";

static int pg_err(PGconn *c, const char *what)
{
	char msg[256];
	snprintf(msg, sizeof msg, "%s", c ? PQerrorMessage(c) : "no connection");
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = 0;
	char *nl = strchr(msg, '\n');
	if (nl)
		*nl = 0;
	return hm_error(HM_EIO, "store: postgres: %s: %s", what, msg);
}

/* Run SQL (one or more statements, no parameters); HM_OK or an error. */
static int run(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType s = PQresultStatus(r);
	int rc = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? HM_OK : pg_err(c, "query");
	PQclear(r);
	if (rc < 0 && PQtransactionStatus(c) == PQTRANS_INERROR)
		PQclear(PQexec(c, "ROLLBACK"));
	return rc;
}

/* Parameterised query with text parameters (or binary where len[i] > 0)
 * and binary results. NULL with hm_error set on failure. */
static PGresult *query(PGconn *c, const char *sql, int n, const char *const *vals,
		       const int *lens)
{
	int fmts[8] = {0};
	for (int i = 0; i < n && i < 8; i++)
		fmts[i] = lens && lens[i] > 0;
	PGresult *r = PQexecParams(c, sql, n, NULL, vals, lens, fmts, 1);
	ExecStatusType s = PQresultStatus(r);
	if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
		pg_err(c, "query");
		PQclear(r);
		return NULL;
	}
	return r;
}

static int64_t col_i64(const PGresult *r, int row, int col)
{
	const char *v = PQgetvalue(r, row, col);
	int len = PQgetlength(r, row, col);
	if (PQgetisnull(r, row, col))
		return 0;
	if (len == 8) {
		uint64_t x;
		memcpy(&x, v, 8);
		return (int64_t)be64toh(x);
	}
	if (len == 4) {
		uint32_t x;
		memcpy(&x, v, 4);
		return (int32_t)be32toh(x);
	}
	return 0;
}

static void pg_close(hm_store *st)
{
	pg *g = st->impl;
	if (!g)
		return;
	if (g->w)
		PQfinish(g->w);
	if (g->r)
		PQfinish(g->r);
	pthread_mutex_destroy(&g->rmu);
	free(g);
	st->impl = NULL;
}

static void no_notices(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static int connect_one(const char *url, PGconn **out)
{
	*out = PQconnectdb(url);
	if (!*out || PQstatus(*out) != CONNECTION_OK)
		return pg_err(*out, "cannot connect");
	PQsetNoticeProcessor(*out, no_notices, NULL);
	/* profiling data: a database crash may lose the last moments of
	 * commits, never consistency; a put then costs no WAL flush */
	return run(*out, "SET client_min_messages = warning; SET synchronous_commit = off");
}

static int pg_open(hm_store *st, const char *url)
{
	pg *g = calloc(1, sizeof *g);
	if (!g)
		return hm_error(HM_ENOMEM, "out of memory");
	st->impl = g;
	pthread_mutex_init(&g->rmu, NULL);
	int rc = connect_one(url, &g->w);
	if (rc == HM_OK)
		rc = connect_one(url, &g->r);
	/* servers starting together: one creates the tables, the others wait */
	char sql[sizeof SCHEMA + 128];
	snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%d); %s SELECT pg_advisory_unlock(%d);",
		 LOCK_SCHEMA, SCHEMA, LOCK_SCHEMA);
	if (rc == HM_OK)
		rc = run(g->w, sql);
	if (rc < 0)
		pg_close(st);
	return rc;
}

/* ---- writing (engine.h; st->wmu held) ---- */

/* Id of a dictionary row: INSERT .. ON CONFLICT DO NOTHING RETURNING id,
 * else SELECT it (another server may have inserted it just now). */
static int64_t getput(pg *g, const char *ins, const char *sel, int n, const char *const *vals,
		      const int *lens)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		PGresult *r = query(g->w, ins, n, vals, lens);
		if (!r)
			return HM_EIO;
		int64_t id = PQntuples(r) ? col_i64(r, 0, 0) : -1;
		PQclear(r);
		if (id >= 0)
			return id;
		r = query(g->w, sel, n, vals, lens);
		if (!r)
			return HM_EIO;
		id = PQntuples(r) ? col_i64(r, 0, 0) : -1;
		PQclear(r);
		if (id >= 0)
			return id;
	}
	return hm_error(HM_EIO, "store: postgres: dictionary row keeps vanishing");
}

/* Nothing to open: dictionary rows go in on their own (ON CONFLICT DO
 * NOTHING, so concurrent servers agree), the samples of a chunk in one
 * transaction of their own (pg_rows). */
static int pg_begin(hm_store *st)
{
	(void)st;
	return HM_OK;
}

static int pg_end(hm_store *st, int rc)
{
	pg *g = st->impl;
	if (rc < 0 && PQstatus(g->w) != CONNECTION_OK) {
		PQreset(g->w);     /* try to come back for the next request */
		hm_store_forget_series(st);
	}
	return rc;
}

static int64_t pg_dict_id(hm_store *st, int kind, const void *key, size_t len)
{
	pg *g = st->impl;
	if (kind == HM_DICT_FRAME) {
		const int64_t *k = ((const hm_store_frame_key *)key)->v;
		char b[5][24];
		const char *v[5];
		for (int i = 0; i < 5; i++) {
			snprintf(b[i], sizeof b[i], "%lld", (long long)k[i]);
			v[i] = b[i];
		}
		return getput(g, "INSERT INTO hm_frames(name, file, line, start_line, kind) VALUES"
			      " ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id",
			      "SELECT id FROM hm_frames WHERE name = $1 AND file = $2 AND line = $3"
			      " AND start_line = $4 AND kind = $5", 5, v, NULL);
	}
	/* an empty string or stack goes as text '' (a zero-length parameter is
	 * sent as text, and the key is not NUL-terminated) */
	const char *v[1] = {len ? (const char *)key : ""};
	int l[1] = {(int)len};
	if (kind == HM_DICT_STACK)
		return getput(g, "INSERT INTO hm_stacks(frames) VALUES ($1::bytea) ON CONFLICT"
			      " (md5(frames)) DO NOTHING RETURNING id",
			      "SELECT id FROM hm_stacks WHERE md5(frames) = md5($1::bytea)"
			      " AND frames = $1::bytea", 1, v, l);
	return getput(g, "INSERT INTO hm_strings(s) VALUES ($1::bytea) ON CONFLICT (md5(s))"
		      " DO NOTHING RETURNING id",
		      "SELECT id FROM hm_strings WHERE md5(s) = md5($1::bytea) AND s = $1::bytea",
		      1, v, l);
}

static int64_t pg_series_find(hm_store *st, const uint8_t *key, size_t len)
{
	pg *g = st->impl;
	const char *v[1] = {(const char *)key};
	int lens[1] = {(int)len};
	PGresult *r = query(g->w, "SELECT id FROM hm_series WHERE md5(key) = md5($1::bytea)",
			    1, v, lens);
	if (!r)
		return HM_EIO;
	int64_t id = PQntuples(r) ? col_i64(r, 0, 0) : -1;
	PQclear(r);
	return id;
}

static int64_t pg_series_count(hm_store *st)
{
	pg *g = st->impl;
	PGresult *r = query(g->w, "SELECT count(*) FROM hm_series", 0, NULL, NULL);
	if (!r)
		return HM_EIO;
	int64_t have = PQntuples(r) ? col_i64(r, 0, 0) : 0;
	PQclear(r);
	return have;
}

static int64_t pg_series_add(hm_store *st, const uint8_t *key, size_t len, const char *type,
			     const hm_store_label *l, uint32_t n, int64_t t)
{
	pg *g = st->impl;
	(void)l;
	(void)n;
	char ts[24];
	snprintf(ts, sizeof ts, "%lld", (long long)t);
	const char *v[3] = {(const char *)key, type, ts};
	int lens[3] = {(int)len, 0, 0};
	return getput(g, "INSERT INTO hm_series(key, type, first, last) VALUES"
		      " ($1::bytea, $2, $3, $3) ON CONFLICT (md5(key)) DO NOTHING RETURNING id",
		      "SELECT id FROM hm_series WHERE md5(key) = md5($1::bytea)"
		      " AND $2::text IS NOT NULL AND $3::bigint IS NOT NULL", 3, v, lens);
}

/* Growable text buffer for the batched statements. */
typedef struct sbuf {
	char *b;
	size_t n, cap;
	int oom;
} sbuf;

static void sb_printf(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *s, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		size_t room = s->cap - s->n;
		int w = vsnprintf(s->b ? s->b + s->n : NULL, s->b ? room : 0, fmt, ap);
		va_end(ap);
		if (w < 0) {
			s->oom = 1;
			return;
		}
		if (s->b && (size_t)w < room) {
			s->n += (size_t)w;
			return;
		}
		size_t nc = (s->cap + (size_t)w + 1) * 2;
		char *nb = realloc(s->b, nc);
		if (!nb) {
			s->oom = 1;
			return;
		}
		s->b = nb;
		s->cap = nc;
	}
}

/* The three upserts and the series' time span in one round trip and one
 * transaction, rows in stack order (the same lock order in every writer). */
static int pg_rows(hm_store *st, int64_t sid, int64_t bucket, const hm_store_row *rows,
		   size_t nrows, int64_t sum_c, int64_t sum_ns)
{
	pg *g = st->impl;
	if (!nrows)
		return HM_OK;
	sbuf sb = {0};
	static const char *const tbl[2] = {"hm_samples(series, t", "hm_hourly(series, h"};
	int64_t tv[2] = {bucket, bucket - bucket % HOUR};
	sb_printf(&sb, "BEGIN;");
	for (int k = 0; k < 2; k++) {
		sb_printf(&sb, "INSERT INTO %s, stack, count, ns) VALUES ", tbl[k]);
		for (size_t r = 0; r < nrows; r++)
			sb_printf(&sb, "%s(%lld,%lld,%lld,%lld,%lld)", r ? "," : "",
				  (long long)sid, (long long)tv[k], (long long)rows[r].stack,
				  (long long)rows[r].count, (long long)rows[r].ns);
		sb_printf(&sb, " ON CONFLICT (series, %s, stack) DO UPDATE SET"
			  " count = %s.count + excluded.count, ns = %s.ns + excluded.ns;",
			  k ? "h" : "t", k ? "hm_hourly" : "hm_samples",
			  k ? "hm_hourly" : "hm_samples");
	}
	sb_printf(&sb, "INSERT INTO hm_totals(series, t, count, ns) VALUES"
		  " (%lld,%lld,%lld,%lld) ON CONFLICT (series, t) DO UPDATE SET"
		  " count = hm_totals.count + excluded.count,"
		  " ns = hm_totals.ns + excluded.ns;", (long long)sid, (long long)bucket,
		  (long long)sum_c, (long long)sum_ns);
	sb_printf(&sb, "UPDATE hm_series SET first = LEAST(first, %lld),"
		  " last = GREATEST(last, %lld) WHERE id = %lld AND"
		  " (first > %lld OR last < %lld);COMMIT;", (long long)bucket,
		  (long long)bucket, (long long)sid, (long long)bucket, (long long)bucket);
	int rc = sb.oom ? hm_error(HM_ENOMEM, "out of memory") : run(g->w, sb.b);
	free(sb.b);
	return rc;
}

/* ---- reading ---- */

static int pg_list_series(hm_store *st, hm_series_list *out)
{
	pg *g = st->impl;
	pthread_mutex_lock(&g->rmu);
	PGresult *r = query(g->r, "SELECT id, key, first, last FROM hm_series ORDER BY id", 0,
			    NULL, NULL);
	if (!r && PQstatus(g->r) != CONNECTION_OK)
		PQreset(g->r);
	pthread_mutex_unlock(&g->rmu);
	if (!r)
		return HM_EIO;
	int nt = PQntuples(r);
	size_t bytes = 0;
	for (int i = 0; i < nt; i++)
		bytes += (size_t)PQgetlength(r, i, 1);
	int rc = hm_store_list_alloc(out, (size_t)nt, bytes);
	char *b = out->strbuf;
	for (int i = 0; rc == HM_OK && i < nt; i++)
		b = hm_store_list_add(out, b, col_i64(r, i, 0), PQgetvalue(r, i, 1),
				      (size_t)PQgetlength(r, i, 1), col_i64(r, i, 2),
				      col_i64(r, i, 3));
	PQclear(r);
	return rc;
}

/* "{1,2,3}" for = ANY($n) */
static char *id_array(const int64_t *v, size_t n)
{
	sbuf sb = {0};
	sb_printf(&sb, "{");
	for (size_t i = 0; i < n; i++)
		sb_printf(&sb, "%s%lld", i ? "," : "", (long long)v[i]);
	sb_printf(&sb, "}");
	if (sb.oom) {
		free(sb.b);
		return NULL;
	}
	return sb.b;
}

/* Load rows "SELECT id, ... WHERE id = ANY($1)" for ids. */
static PGresult *fetch_ids(PGconn *c, const char *sql, const int64_t *ids, size_t n)
{
	char *arr = id_array(ids, n);
	if (!arr) {
		hm_error(HM_ENOMEM, "out of memory");
		return NULL;
	}
	const char *v[1] = {arr};
	PGresult *r = query(c, sql, 1, v, NULL);
	free(arr);
	return r;
}

static int pg_merge(hm_store *st, const int64_t *series, size_t n, int64_t t0, int64_t t1,
		    hm_profile *out)
{
	pg *g = st->impl;
	int64_t h0, h1;
	hm_store_hours(t0, t1, &h0, &h1);
	char *arr = id_array(series, n);
	if (!arr)
		return hm_error(HM_ENOMEM, "out of memory");
	char b[4][24];
	int64_t tv[4] = {t0, h0, h1, t1};
	const char *v[5] = {arr};
	for (int i = 0; i < 4; i++) {
		snprintf(b[i], sizeof b[i], "%lld", (long long)tv[i]);
		v[i + 1] = b[i];
	}
	hm_idmap stacks, frames, strs;
	hm_idmap_init(&stacks);
	hm_idmap_init(&frames);
	hm_idmap_init(&strs);
	int64_t *ids = NULL, *fids = NULL;
	uint32_t *scratch = malloc(HM_STORE_MAX_DEPTH * sizeof *scratch);
	int64_t *fbuf = malloc(HM_STORE_MAX_DEPTH * sizeof *fbuf);
	PGresult *rows = NULL, *rs = NULL, *rf = NULL, *rt = NULL;
	int rc = scratch && fbuf ? HM_OK : hm_error(HM_ENOMEM, "out of memory");
	pthread_mutex_lock(&g->rmu);
	/* one snapshot for the whole query */
	if (rc == HM_OK)
		rc = run(g->r, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (rc == HM_OK) {
		rows = query(g->r,
			"SELECT stack, sum(c)::bigint, sum(n)::bigint FROM ("
			"SELECT stack, count AS c, ns AS n FROM hm_samples"
			" WHERE series = ANY($1::bigint[]) AND t >= $2 AND t < $3"
			" UNION ALL SELECT stack, count, ns FROM hm_hourly"
			" WHERE series = ANY($1::bigint[]) AND h >= $3 AND h < $4"
			" UNION ALL SELECT stack, count, ns FROM hm_samples"
			" WHERE series = ANY($1::bigint[]) AND t >= $4 AND t < $5) x"
			" GROUP BY stack", 5, v, NULL);
		if (!rows)
			rc = HM_EIO;
	}
	int nrows = rows ? PQntuples(rows) : 0;
	if (rc == HM_OK && nrows) {
		ids = malloc((size_t)nrows * sizeof *ids);
		if (!ids)
			rc = hm_error(HM_ENOMEM, "out of memory");
		for (int i = 0; rc == HM_OK && i < nrows; i++)
			ids[i] = col_i64(rows, i, 0);
		if (rc == HM_OK && !(rs = fetch_ids(g->r, "SELECT id, frames FROM hm_stacks"
						   " WHERE id = ANY($1::bigint[])", ids, (size_t)nrows)))
			rc = HM_EIO;
	}
	/* every frame the stacks name */
	size_t nf = 0, fcap = 0;
	for (int i = 0; rc == HM_OK && rs && i < PQntuples(rs); i++) {
		size_t k = hm_store_stack_decode((const uint8_t *)PQgetvalue(rs, i, 1),
						 (size_t)PQgetlength(rs, i, 1), fbuf,
						 HM_STORE_MAX_DEPTH);
		if (nf + k > fcap) {
			size_t nc = (nf + k) * 2 + 256;
			int64_t *nv = realloc(fids, nc * sizeof *nv);
			if (!nv) {
				rc = hm_error(HM_ENOMEM, "out of memory");
				break;
			}
			fids = nv;
			fcap = nc;
		}
		if (k)     /* an empty stack has no frames (and fids may be NULL) */
			memcpy(fids + nf, fbuf, k * sizeof *fbuf);
		nf += k;
	}
	if (rc == HM_OK && nf && !(rf = fetch_ids(g->r, "SELECT id, name, file, line, start_line,"
						 " kind FROM hm_frames WHERE id = ANY($1::bigint[])",
						 fids, nf)))
		rc = HM_EIO;
	size_t ns = 0;
	for (int i = 0; rc == HM_OK && rf && i < PQntuples(rf); i++) {
		fids[ns++] = col_i64(rf, i, 1);
		fids[ns++] = col_i64(rf, i, 2);
	}
	if (rc == HM_OK && ns && !(rt = fetch_ids(g->r, "SELECT id, s FROM hm_strings"
						 " WHERE id = ANY($1::bigint[])", fids, ns)))
		rc = HM_EIO;
	run(g->r, "COMMIT");
	pthread_mutex_unlock(&g->rmu);
	/* build the profile: strings, frames, stacks, then the samples */
	for (int i = 0; rc == HM_OK && rt && i < PQntuples(rt); i++) {
		hm_str_id sid = hm_profile_intern(out, PQgetvalue(rt, i, 1),
						  (size_t)PQgetlength(rt, i, 1));
		rc = hm_idmap_set(&strs, col_i64(rt, i, 0), sid);
	}
	for (int i = 0; rc == HM_OK && rf && i < PQntuples(rf); i++) {
		hm_frame f = {0};
		uint32_t a = 0, c = 0;
		if (!hm_idmap_get(&strs, col_i64(rf, i, 1), &a) ||
		    !hm_idmap_get(&strs, col_i64(rf, i, 2), &c)) {
			rc = hm_error(HM_EIO, "store: postgres: string of a frame missing");
			break;
		}
		f.name = a;
		f.file = c;
		f.line = (int32_t)col_i64(rf, i, 3);
		f.start_line = (int32_t)col_i64(rf, i, 4);
		f.kind = (uint8_t)col_i64(rf, i, 5);
		rc = hm_idmap_set(&frames, col_i64(rf, i, 0), hm_profile_frame_id(out, &f));
	}
	for (int i = 0; rc == HM_OK && rs && i < PQntuples(rs); i++) {
		size_t k = hm_store_stack_decode((const uint8_t *)PQgetvalue(rs, i, 1),
						 (size_t)PQgetlength(rs, i, 1), fbuf,
						 HM_STORE_MAX_DEPTH);
		for (size_t d = 0; d < k && rc == HM_OK; d++)
			if (!hm_idmap_get(&frames, fbuf[d], &scratch[d]))
				rc = hm_error(HM_EIO, "store: postgres: frame %lld missing",
					      (long long)fbuf[d]);
		if (rc == HM_OK)
			rc = hm_idmap_set(&stacks, col_i64(rs, i, 0),
					  hm_profile_stack_id(out, scratch, (uint32_t)k));
	}
	uint32_t th = hm_profile_thread_id(out, 0, 0, NULL);
	for (int i = 0; rc == HM_OK && i < nrows; i++) {
		uint32_t ps;
		if (!hm_idmap_get(&stacks, col_i64(rows, i, 0), &ps)) {
			rc = hm_error(HM_EIO, "store: postgres: stack missing");
			break;
		}
		hm_profile_add(out, ps, th, col_i64(rows, i, 1), col_i64(rows, i, 2), 0);
	}
	PQclear(rows);
	PQclear(rs);
	PQclear(rf);
	PQclear(rt);
	hm_idmap_free(&stacks);
	hm_idmap_free(&frames);
	hm_idmap_free(&strs);
	free(ids);
	free(fids);
	free(fbuf);
	free(scratch);
	free(arr);
	return rc;
}

static int pg_totals(hm_store *st, const int64_t *series, size_t n, int64_t t0, int64_t t1,
		     int64_t step, int value_kind, int64_t *out, size_t nout)
{
	pg *g = st->impl;
	char *arr = id_array(series, n);
	if (!arr)
		return hm_error(HM_ENOMEM, "out of memory");
	char b[3][24];
	snprintf(b[0], sizeof b[0], "%lld", (long long)t0);
	snprintf(b[1], sizeof b[1], "%lld", (long long)step);
	snprintf(b[2], sizeof b[2], "%lld", (long long)t1);
	const char *v[4] = {b[0], b[1], arr, b[2]};
	pthread_mutex_lock(&g->rmu);
	PGresult *r = query(g->r, "SELECT (t - $1::bigint) / $2::bigint, sum(count)::bigint,"
			    " sum(ns)::bigint FROM hm_totals WHERE series = ANY($3::bigint[])"
			    " AND t >= $1::bigint AND t < $4::bigint GROUP BY 1", 4, v, NULL);
	pthread_mutex_unlock(&g->rmu);
	free(arr);
	if (!r)
		return HM_EIO;
	for (int i = 0; i < PQntuples(r); i++) {
		int64_t slot = col_i64(r, i, 0);
		if (slot >= 0 && (uint64_t)slot < nout)
			out[slot] += col_i64(r, i, value_kind == HM_VALUE_COUNT ? 1 : 2);
	}
	PQclear(r);
	return HM_OK;
}

/* ---- maintenance ---- */

static int exec_fmt(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int exec_fmt(PGconn *c, const char *fmt, ...)
{
	char sql[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	return run(c, sql);
}

static int64_t scalar(PGconn *c, const char *sql)
{
	PGresult *r = query(c, sql, 0, NULL, NULL);
	int64_t v = r && PQntuples(r) && !PQgetisnull(r, 0, 0) ? col_i64(r, 0, 0) : -1;
	PQclear(r);
	return v;
}

static int drop_before(PGconn *c, int64_t cut)
{
	long long hc = cut - cut % HOUR, k = cut;
	return exec_fmt(c,
		"BEGIN;"
		"DELETE FROM hm_samples WHERE t < %lld;"
		"DELETE FROM hm_totals WHERE t < %lld;"
		"DELETE FROM hm_hourly WHERE h <= %lld;"
		"INSERT INTO hm_hourly SELECT series, %lld, stack, sum(count), sum(ns) FROM hm_samples"
		" WHERE t >= %lld AND t < %lld GROUP BY series, stack;"
		"DELETE FROM hm_series s WHERE NOT EXISTS (SELECT 1 FROM hm_samples WHERE series = s.id);"
		"UPDATE hm_series s SET first = (SELECT min(t) FROM hm_samples WHERE series = s.id)"
		" WHERE first < %lld;"
		"COMMIT;", k, k, hc, hc, hc, hc + HOUR, k);
}

static int64_t total_bytes(PGconn *c)
{
	return scalar(c, "SELECT (coalesce(sum(pg_total_relation_size(c.oid)), 0))::bigint"
			 " FROM pg_class c WHERE c.relkind = 'r' AND c.relname LIKE 'hm\\_%'");
}

static int pg_maintain(hm_store *st, int64_t now)
{
	pg *g = st->impl;
	const hm_store_opts *o = &st->opts;
	hm_fairlock_lock(&st->wmu);
	/* one maintainer at a time across all servers on this database */
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT pg_try_advisory_lock(%d)::int", LOCK_MAINT);
	int64_t got = scalar(g->w, sql);
	int rc = HM_OK;
	if (got != 1)
		goto out;
	if (o->retention_s > 0)
		rc = drop_before(g->w, now - o->retention_s);
	if (rc == HM_OK && o->downsample_after_s > 0) {
		int chunks = 0;
		int64_t from, cutoff;
		int64_t done = scalar(g->w, "SELECT v FROM hm_meta WHERE k = 'downsampled_until'");
		hm_store_fold_range(now, o->downsample_after_s, done,
				    scalar(g->w, "SELECT min(first) FROM hm_series"), &from, &cutoff);
		while (rc == HM_OK && from < cutoff) {
			int64_t to = hm_store_fold_step(from, cutoff);
			rc = exec_fmt(g->w,
				"BEGIN;"
				"WITH d AS (DELETE FROM hm_samples WHERE t >= %lld AND t < %lld AND"
				" t %% 60 <> 0 RETURNING series, t - t %% 60 AS t, stack, count, ns)"
				" INSERT INTO hm_samples SELECT series, t, stack, sum(count), sum(ns)"
				" FROM d GROUP BY 1, 2, 3 ON CONFLICT (series, t, stack) DO UPDATE SET"
				" count = hm_samples.count + excluded.count,"
				" ns = hm_samples.ns + excluded.ns;"
				"WITH d AS (DELETE FROM hm_totals WHERE t >= %lld AND t < %lld AND"
				" t %% 60 <> 0 RETURNING series, t - t %% 60 AS t, count, ns)"
				" INSERT INTO hm_totals SELECT series, t, sum(count), sum(ns)"
				" FROM d GROUP BY 1, 2 ON CONFLICT (series, t) DO UPDATE SET"
				" count = hm_totals.count + excluded.count,"
				" ns = hm_totals.ns + excluded.ns;"
				"INSERT INTO hm_meta VALUES ('downsampled_until', %lld) ON CONFLICT (k)"
				" DO UPDATE SET v = excluded.v;"
				"COMMIT;", (long long)from, (long long)to, (long long)from,
				(long long)to, (long long)to);
			from = to;
			chunks++;
		}
		/* a backlog was folded: make the deleted rows' space reusable now
		 * rather than whenever autovacuum comes by */
		if (rc == HM_OK && chunks > 1)
			rc = run(g->w, "VACUUM hm_samples, hm_totals");
	}
	/* size cap: drop the oldest tenth of the time span while over it. A
	 * DELETE (and VACUUM) frees space for reuse but hands none back, so the
	 * tables' size only says how much data there is once they are compacted:
	 * without that, every round (and every maintenance after) dropped more
	 * data while the size stayed over the cap, until nearly nothing was left.
	 * VACUUM FULL rewrites the tables (locking them meanwhile); it runs only
	 * while over the cap. */
	for (int round = 0; rc == HM_OK && o->max_bytes > 0 && round < 16; round++) {
		run(g->w, "VACUUM hm_samples, hm_hourly, hm_totals");
		if (total_bytes(g->w) <= o->max_bytes)
			break;
		rc = run(g->w, "VACUUM FULL hm_samples, hm_hourly, hm_totals");
		if (rc < 0 || total_bytes(g->w) <= o->max_bytes)
			break;
		int64_t lo = scalar(g->w, "SELECT min(first) FROM hm_series");
		int64_t hi = scalar(g->w, "SELECT max(last) FROM hm_series");
		if (lo < 0 || hi < lo)
			break;
		rc = drop_before(g->w, hm_store_cap_cut(lo, hi));
	}
	snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%d)::int", LOCK_MAINT);
	scalar(g->w, sql);
out:
	hm_store_forget_series(st);  /* retention may have dropped series */
	if (PQstatus(g->w) != CONNECTION_OK)
		PQreset(g->w);
	hm_fairlock_unlock(&st->wmu);
	return rc;
}

static int pg_stats(hm_store *st, hm_store_stats *out)
{
	pg *g = st->impl;
	pthread_mutex_lock(&g->rmu);
	out->bytes = total_bytes(g->r);
	out->nsamples = scalar(g->r, "SELECT count(*) FROM hm_samples");
	out->nstacks = scalar(g->r, "SELECT count(*) FROM hm_stacks");
	out->nframes = scalar(g->r, "SELECT count(*) FROM hm_frames");
	out->nstrings = scalar(g->r, "SELECT count(*) FROM hm_strings");
	out->nseries = scalar(g->r, "SELECT count(*) FROM hm_series");
	pthread_mutex_unlock(&g->rmu);
	return out->nseries < 0 ? HM_EIO : HM_OK;
}

const hm_store_engine hm_store_pg_engine = {
	.name = "postgres",
	.fold_rows = 1,
	.open = pg_open,
	.close = pg_close,
	.begin = pg_begin,
	.end = pg_end,
	.dict_id = pg_dict_id,
	.series_find = pg_series_find,
	.series_count = pg_series_count,
	.series_add = pg_series_add,
	.rows = pg_rows,
	.list_series = pg_list_series,
	.merge = pg_merge,
	.totals = pg_totals,
	.maintain = pg_maintain,
	.stats = pg_stats,
};
