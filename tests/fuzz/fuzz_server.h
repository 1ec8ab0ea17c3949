/* fuzz_server.h - driving the server's handlers without sockets.
 *
 * fuzz_null_store() is a store on a null engine (store/engine.h): the real
 * write path runs, the engine checks what it is given (label count and
 * syntax, the profile's ids) and keeps nothing, so ingest fuzzing needs no
 * disk and every run is alike. fuzz_ingest runs one request through
 * hm_ingest_handle and checks the reply is a sane HTTP status (printed, with
 * the body, when FUZZ_VERBOSE is set). */
#ifndef HOMURA_FUZZ_SERVER_H
#define HOMURA_FUZZ_SERVER_H

#include "fuzz.h"
#include "server/server.h"
#include "store/engine.h"
#include "store/store.h"

/* A put's profile and labels, as the write path is given them. */
static void null_inspect(hm_store *st, const char *type, const hm_store_label *labels,
			 uint32_t n, const hm_profile *p)
{
	(void)st;
	FUZZ_ASSERT(hm_store_label_name_ok(type));
	FUZZ_ASSERT(n <= HM_STORE_MAX_LABELS);
	for (uint32_t i = 0; i < n; i++)
		FUZZ_ASSERT(hm_store_label_name_ok(labels[i].name) &&
			    strlen(labels[i].value) <= HM_STORE_MAX_VALUE);
	fuzz_check_profile(p);
}

static int null_open(hm_store *st, const char *where)
{
	(void)st;
	(void)where;
	return 0;
}

static void null_close(hm_store *st)
{
	(void)st;
}

static int null_begin(hm_store *st)
{
	(void)st;
	return 0;
}

static int null_end(hm_store *st, int rc)
{
	(void)st;
	return rc;
}

/* Every dictionary row and series exists already (id 1): the write path
 * runs in full and nothing is kept. */
static int64_t null_dict_id(hm_store *st, int kind, const void *key, size_t len)
{
	(void)st;
	(void)kind;
	FUZZ_ASSERT(len == 0 || key);
	return 1;
}

static int64_t null_series_find(hm_store *st, const uint8_t *key, size_t len)
{
	(void)st;
	FUZZ_ASSERT(len > 0 && key[len - 1] == 0);
	return 1;
}

static int64_t null_series_count(hm_store *st)
{
	(void)st;
	return 1;
}

static int64_t null_series_add(hm_store *st, const uint8_t *key, size_t len, const char *type,
			       const hm_store_label *labels, uint32_t n, int64_t t)
{
	(void)st;
	(void)key;
	(void)len;
	(void)type;
	(void)labels;
	(void)n;
	(void)t;
	return 1;
}

static int null_rows(hm_store *st, int64_t series, int64_t t, const hm_store_row *rows,
		     size_t nrows, int64_t sum_count, int64_t sum_ns)
{
	(void)st;
	(void)series;
	(void)t;
	(void)sum_count;
	(void)sum_ns;
	FUZZ_ASSERT(nrows <= 1);     /* every stack is id 1: folded into one row */
	FUZZ_ASSERT(!nrows || rows[0].stack == 1);
	return 0;
}

static const hm_store_engine null_engine = {
	.name = "null",
	.fold_rows = 1,
	.open = null_open,
	.close = null_close,
	.begin = null_begin,
	.end = null_end,
	.dict_id = null_dict_id,
	.series_find = null_series_find,
	.series_count = null_series_count,
	.series_add = null_series_add,
	.rows = null_rows,
	.inspect = null_inspect,
};

/* The null store, opened on first use (id caches of one byte: nothing is
 * cached, so every run is alike). */
static hm_store *fuzz_null_store(void)
{
	static hm_store *st;
	hm_store_opts o = {.id_cache_bytes = 1};
	if (!st)
		FUZZ_ASSERT(hm_store_open_engine(&null_engine, "null", &o, &st) == 0);
	return st;
}

/* Split "k=v&k2=v2" (no URL decoding: the HTTP layer does that) into rq's
 * arguments; buf is modified and must outlive rq. */
static inline void fuzz_args(hm_http_req *rq, char *buf)
{
	for (char *tok = buf, *amp; tok && rq->nargs < HM_SERVER_MAX_ARGS; tok = amp) {
		amp = strchr(tok, '&');
		if (amp)
			*amp++ = 0;
		char *eq = strchr(tok, '=');
		if (eq)
			*eq++ = 0;
		rq->arg_k[rq->nargs] = tok;
		rq->arg_v[rq->nargs++] = eq ? eq : "";
	}
}

static inline void fuzz_check_reply(const hm_http_resp *rs)
{
	if (getenv("FUZZ_VERBOSE"))     /* see what a reproducer gets back */
		fprintf(stderr, "status %d: %.300s\n", rs->status,
			rs->body ? (const char *)rs->body : "");
	FUZZ_ASSERT(rs->status >= 200 && rs->status < 600);
	FUZZ_ASSERT(rs->status < 500 || rs->status == 503 || rs->status == 500);
	FUZZ_ASSERT(!rs->len || rs->body);
}

static inline int fuzz_ingest(const char *path, const char *ctype, const char *cenc,
			      const uint8_t *body, size_t len, char *args)
{
	hm_http_req rq;
	memset(&rq, 0, sizeof rq);
	rq.method = "POST";
	rq.path = path;
	rq.content_type = ctype;
	rq.content_encoding = cenc;
	rq.body = body;
	rq.body_len = len;
	rq.max_body = 1 << 20;
	rq.now_s = 1700000000;
	if (args)
		fuzz_args(&rq, args);
	hm_http_resp rs;
	memset(&rs, 0, sizeof rs);
	hm_ingest_handle(fuzz_null_store(), &rq, &rs);
	fuzz_check_reply(&rs);
	free(rs.body);
	return rs.status;
}

#endif
