/* fuzz_server.h - driving the server's handlers without sockets.
 *
 * fuzz_null_store is a store whose put only checks what it is given (label
 * count and syntax, the profile's ids) and keeps nothing, so ingest fuzzing
 * needs no disk and every run is alike. fuzz_ingest runs one request through
 * hm_ingest_handle and checks the reply is a sane HTTP status (printed, with
 * the body, when FUZZ_VERBOSE is set). */
#ifndef HOMURA_FUZZ_SERVER_H
#define HOMURA_FUZZ_SERVER_H

#include "fuzz.h"
#include "server/server.h"
#include "store/store.h"

static int null_put(hm_store *st, const char *type, const hm_store_label *labels, uint32_t n,
		    int64_t t_s, const hm_profile *p)
{
	(void)st;
	(void)t_s;
	FUZZ_ASSERT(hm_store_label_name_ok(type));
	FUZZ_ASSERT(n <= HM_STORE_MAX_LABELS);
	for (uint32_t i = 0; i < n; i++)
		FUZZ_ASSERT(hm_store_label_name_ok(labels[i].name) &&
			    strlen(labels[i].value) <= HM_STORE_MAX_VALUE);
	fuzz_check_profile(p);
	return 0;
}

/* Every series is new and accepted: what is checked is in null_put. */
static int null_add_series(hm_store *st, const struct hm_store_put_req *v, size_t n)
{
	(void)st;
	(void)v;
	(void)n;
	return 0;
}

static const hm_store_ops null_ops = {.name = "null", .put = null_put,
				      .add_series = null_add_series};
static hm_store fuzz_null_store = {.ops = &null_ops, .opts = {.max_series = 100000}};

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
	hm_ingest_handle(&fuzz_null_store, &rq, &rs);
	fuzz_check_reply(&rs);
	free(rs.body);
	return rs.status;
}

#endif
