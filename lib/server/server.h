/* server.h - `homura server`: HTTP ingest and query API over a profile store.
 *
 * The HTTP layer (hm_server_start, libmicrohttpd) caps connections (in all
 * and per client address, with an idle timeout), checks bearer tokens and
 * body sizes and hands each finished request, as an hm_http_req (http.h), to the
 * ingest handlers (OTLP, Pyroscope /ingest and Push) or the query API. Both
 * handlers are plain functions of (store, request) -> response, so tests and
 * benchmarks can drive them without sockets. */
#ifndef HOMURA_SERVER_H
#define HOMURA_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include "server/http.h"
#include "store/store.h"

#define HM_SERVER_MAX_BODY (64u << 20)   /* default body cap, after gunzip */

typedef struct hm_server_opts {
	const char *listen;         /* "127.0.0.1:4040", "[::1]:4040", ":4040" (all) */
	const char *ingest_token;   /* required as "Authorization: Bearer T" to ingest;
				     * NULL = none, "" is refused (HM_EINVAL) */
	const char *read_token;     /* required to query (GET /ready is open) */
	size_t max_body;            /* 0 = HM_SERVER_MAX_BODY */
	unsigned threads;           /* 0 = 4 */
	unsigned max_conns;         /* open connections in all; 0 = HM_SERVER_MAX_CONNS */
	unsigned max_conns_per_ip;  /* per client address; 0 = HM_SERVER_MAX_CONNS_PER_IP */
	unsigned idle_timeout_s;    /* close a connection idle this long; 0 = default */
	int quiet;                  /* no per-request error lines on stderr */
} hm_server_opts;

/* Defaults: a few slow or idle clients cannot hold every connection slot
 * (slowloris); past the per-address cap new connections from that address
 * are closed at once, others are still served. */
#define HM_SERVER_MAX_CONNS 1000
#define HM_SERVER_MAX_CONNS_PER_IP 64
#define HM_SERVER_IDLE_TIMEOUT_S 30

/* Nonzero when the path is an ingest endpoint (it needs the ingest token). */
int hm_ingest_path(const char *path);
/* Handle an ingest request (POST). Fills rs; never fails otherwise. */
void hm_ingest_handle(hm_store *st, const hm_http_req *rq, hm_http_resp *rs);
/* Handle a query request (GET); 404 for unknown paths. */
void hm_api_handle(hm_store *st, const hm_http_req *rq, hm_http_resp *rs);

typedef struct hm_server hm_server;
int hm_server_start(hm_store *st, const hm_server_opts *o, hm_server **out);
/* The port actually bound (useful with port 0). */
uint16_t hm_server_port(const hm_server *s);
void hm_server_stop(hm_server *s);

#endif
