/* http_server.c - the HTTP front of homura server (libmicrohttpd).
 *
 * MHD calls the access handler several times per request: first with the
 * headers (where tokens and the declared length are checked, so a refused
 * request is answered before its body is read), then with body chunks
 * (appended up to max_body; past it the rest is discarded and 413 given),
 * then once more to answer. The finished request becomes an hm_http_req
 * for hm_ingest_handle, hm_querier_handle (querier.h) or hm_api_handle. A thread pool serves connections,
 * each thread polling its share with epoll, so idle or slow connections cost
 * no thread; connections are capped in all and per client address and
 * closed after idle_timeout_s without traffic, so a few clients cannot hold
 * every slot (slowloris). While a request is handled, hm_cancelled()
 * (cancel.h) tells long work whether its client has closed the connection.
 * The store does its own locking. Buffered bodies are capped per request
 * (max_body) and in total (INFLIGHT_BODIES x max_body), so memory stays
 * bounded whatever clients send. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cancel.h"
#include "base/error.h"
#include "server/http.h"
#include "server/querier.h"
#include "server/server.h"
#include "server/ui.h"

struct hm_server {
	struct MHD_Daemon *d;
	hm_store *st;
	hm_server_opts o;
	char *ingest_token, *read_token;
	uint16_t port;
	size_t inflight;         /* body bytes buffered over all connections */
};

/* Buffered request bodies, summed over connections, stay under this many
 * body caps, so many slow uploads cannot grow memory without bound. */
#define INFLIGHT_BODIES 4

typedef struct conn {
	hm_server *srv;
	unsigned char *body;
	size_t len, cap;
	int too_big;
	int answered;
} conn;

static int token_ok(struct MHD_Connection *c, const char *want)
{
	if (!want || !*want)
		return 1;
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	if (!h || strncasecmp(h, "Bearer ", 7))
		return 0;
	h += 7;
	size_t a = strlen(h), b = strlen(want);
	unsigned diff = a != b;
	for (size_t i = 0; i < b; i++)   /* constant time over the secret */
		diff |= (unsigned char)(i < a ? h[i] : 0) ^ (unsigned char)want[i];
	return !diff;
}

static enum MHD_Result send_resp(struct MHD_Connection *c, hm_http_resp *rs)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(rs->len, rs->body,
								 MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(rs->body);
		return MHD_NO;
	}
	rs->body = NULL;
	if (rs->content_type)
		MHD_add_response_header(r, "Content-Type", rs->content_type);
	if (rs->disposition)
		MHD_add_response_header(r, "Content-Disposition", rs->disposition);
	if (rs->status == 401)
		MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
	enum MHD_Result ret = MHD_queue_response(c, (unsigned)rs->status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result quick(struct MHD_Connection *c, int status, const char *msg)
{
	hm_http_resp rs = {0};
	hm_http_error(&rs, status, "%s", msg);
	return send_resp(c, &rs);
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	hm_http_req *rq = cls;
	if (rq->nargs < HM_SERVER_MAX_ARGS) {
		rq->arg_k[rq->nargs] = key;
		rq->arg_v[rq->nargs++] = value ? value : "";
	}
	return MHD_YES;
}

/* Whether the client of a request being handled has closed its end (the
 * check behind hm_cancelled() while the handler runs). */
static int client_gone(void *ctx)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(ctx, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return 0;
	struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
			       const char *method, const char *version, const char *upload,
			       size_t *upload_size, void **con_cls)
{
	hm_server *s = cls;
	conn *k = *con_cls;
	int ingest = hm_ingest_path(url);
	if (!k) {
		k = calloc(1, sizeof *k);
		if (!k)
			return MHD_NO;
		*con_cls = k;
		k->srv = s;
		if (strcmp(url, "/ready") && !hm_ui_path(url) &&   /* the page holds no data */
		    !token_ok(c, ingest ? s->ingest_token : s->read_token)) {
			k->answered = 1;
			return quick(c, 401, "missing or wrong bearer token");
		}
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > s->o.max_body) {
			k->answered = 1;
			return quick(c, 413, "request body too large");
		}
		return MHD_YES;
	}
	if (*upload_size) {
		if (!k->answered && !k->too_big) {
			if (k->len + *upload_size > s->o.max_body) {
				k->too_big = 1;
				free(k->body);
				__atomic_sub_fetch(&s->inflight, k->cap, __ATOMIC_RELAXED);
				k->body = NULL;
				k->len = k->cap = 0;
			} else {
				if (k->len + *upload_size > k->cap) {
					size_t nc = k->cap ? k->cap : 65536;
					while (nc < k->len + *upload_size)
						nc *= 2;
					size_t grow = nc - k->cap;
					if (__atomic_add_fetch(&s->inflight, grow, __ATOMIC_RELAXED) >
					    INFLIGHT_BODIES * s->o.max_body) {
						__atomic_sub_fetch(&s->inflight, grow, __ATOMIC_RELAXED);
						return MHD_NO;   /* drop the connection */
					}
					unsigned char *nb = realloc(k->body, nc);
					if (!nb) {
						__atomic_sub_fetch(&s->inflight, grow, __ATOMIC_RELAXED);
						return MHD_NO;
					}
					k->body = nb;
					k->cap = nc;
				}
				memcpy(k->body + k->len, upload, *upload_size);
				k->len += *upload_size;
			}
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (k->answered)
		return MHD_YES;
	k->answered = 1;
	if (k->too_big)
		return quick(c, 413, "request body too large");
	hm_http_req rq = {0};
	rq.method = method;
	rq.path = url;
	rq.max_body = s->o.max_body;
	rq.now_s = (int64_t)time(NULL);
	rq.body = k->body ? k->body : (const unsigned char *)"";
	rq.body_len = k->len;
	rq.content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	rq.content_encoding = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
	const char *cce = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						      "Connect-Content-Encoding");
	if (!rq.content_encoding && cce)
		rq.content_encoding = cce;
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_arg, &rq);
	hm_http_resp rs = {0};
	hm_cancel_set(client_gone, c);
	if (ingest)
		hm_ingest_handle(s->st, &rq, &rs);
	else if (hm_querier_path(url))
		hm_querier_handle(s->st, &rq, &rs);
	else
		hm_api_handle(s->st, &rq, &rs);
	hm_cancel_set(NULL, NULL);
	if (!rs.status)
		hm_http_error(&rs, 500, "no answer");
	if (rs.status >= 400 && !s->o.quiet)
		fprintf(stderr, "homura server: %s %s -> %d %.*s\n", method, url, rs.status,
			(int)(rs.len > 300 ? 300 : rs.len), rs.body ? (char *)rs.body : "");
	return send_resp(c, &rs);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	conn *k = *con_cls;
	if (k) {
		__atomic_sub_fetch(&k->srv->inflight, k->cap, __ATOMIC_RELAXED);
		free(k->body);
		free(k);
		*con_cls = NULL;
	}
}

static int parse_listen(const char *l, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	const char *colon;
	memset(ss, 0, sizeof *ss);
	if (l[0] == '[') {
		const char *end = strchr(l, ']');
		if (!end || end[1] != ':' || (size_t)(end - l - 1) >= sizeof host)
			return hm_error(HM_EINVAL, "bad listen address '%s'", l);
		memcpy(host, l + 1, (size_t)(end - l - 1));
		host[end - l - 1] = 0;
		colon = end + 1;
	} else {
		colon = strrchr(l, ':');
		if (!colon || (size_t)(colon - l) >= sizeof host)
			return hm_error(HM_EINVAL, "bad listen address '%s' (HOST:PORT)", l);
		memcpy(host, l, (size_t)(colon - l));
		host[colon - l] = 0;
	}
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535 || end == colon + 1)
		return hm_error(HM_EINVAL, "bad port in '%s'", l);
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	if (!*host || !strcmp(host, "0.0.0.0")) {
		v4->sin_family = AF_INET;
		v4->sin_addr.s_addr = htonl(INADDR_ANY);
		v4->sin_port = htons((uint16_t)port);
		*len = sizeof *v4;
	} else if (!strcmp(host, "localhost") || inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		if (!strcmp(host, "localhost"))
			v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		*len = sizeof *v4;
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*len = sizeof *v6;
	} else {
		return hm_error(HM_EINVAL, "listen host must be an IP address: '%s'", host);
	}
	return HM_OK;
}

int hm_server_start(hm_store *st, const hm_server_opts *o, hm_server **out)
{
	hm_server *s = calloc(1, sizeof *s);
	if (!s)
		return hm_error(HM_ENOMEM, "out of memory");
	s->st = st;
	s->o = *o;
	if (!s->o.listen)
		s->o.listen = "127.0.0.1:4040";
	if (!s->o.max_body)
		s->o.max_body = HM_SERVER_MAX_BODY;
	if (!s->o.threads)
		s->o.threads = 4;
	if (!s->o.max_conns)
		s->o.max_conns = HM_SERVER_MAX_CONNS;
	if (!s->o.max_conns_per_ip)
		s->o.max_conns_per_ip = HM_SERVER_MAX_CONNS_PER_IP;
	if (!s->o.idle_timeout_s)
		s->o.idle_timeout_s = HM_SERVER_IDLE_TIMEOUT_S;
	if ((o->ingest_token && !*o->ingest_token) || (o->read_token && !*o->read_token)) {
		free(s);
		return hm_error(HM_EINVAL, "empty %s token (leave it unset for none)",
				o->ingest_token && !*o->ingest_token ? "ingest" : "read");
	}
	s->ingest_token = o->ingest_token ? strdup(o->ingest_token) : NULL;
	s->read_token = o->read_token ? strdup(o->read_token) : NULL;
	struct sockaddr_storage ss;
	socklen_t sl;
	int rc = parse_listen(s->o.listen, &ss, &sl);
	if (rc < 0) {
		hm_server_stop(s);
		return rc;
	}
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, handler, s,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				MHD_OPTION_THREAD_POOL_SIZE, s->o.threads,
				MHD_OPTION_CONNECTION_TIMEOUT, s->o.idle_timeout_s,
				MHD_OPTION_CONNECTION_LIMIT, s->o.max_conns,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->o.max_conns_per_ip,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
				MHD_OPTION_NOTIFY_COMPLETED, completed, s,
				MHD_OPTION_END);
	if (!s->d) {
		hm_server_stop(s);
		return hm_error(HM_ESYS, "cannot listen on %s (address in use?)", o->listen ?
				o->listen : "127.0.0.1:4040");
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di ? di->port : 0;
	*out = s;
	return HM_OK;
}

uint16_t hm_server_port(const hm_server *s)
{
	return s->port;
}

void hm_server_stop(hm_server *s)
{
	if (!s)
		return;
	if (s->d)
		MHD_stop_daemon(s->d);
	free(s->ingest_token);
	free(s->read_token);
	free(s);
}
