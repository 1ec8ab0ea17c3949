/* http.h - one HTTP request and its answer as homura server's handlers see
 * them (http_server.c fills the request from libmicrohttpd and sends the
 * answer), and the helpers to read arguments and to answer. */
#ifndef HOMURA_HTTP_H
#define HOMURA_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define HM_SERVER_MAX_ARGS 64

typedef struct hm_http_req {
	const char *method, *path;
	size_t nargs;               /* query string, URL-decoded, in order */
	const char *arg_k[HM_SERVER_MAX_ARGS], *arg_v[HM_SERVER_MAX_ARGS];
	const char *content_type, *content_encoding;
	const unsigned char *body;
	size_t body_len;
	size_t max_body;            /* cap on decompressed bodies */
	int64_t now_s;              /* request time */
} hm_http_req;

typedef struct hm_http_resp {
	int status;
	const char *content_type;   /* static string */
	unsigned char *body;        /* malloc'd */
	size_t len;
	const char *disposition;    /* Content-Disposition, static or NULL */
} hm_http_resp;

/* First value of a query argument, or NULL. */
const char *hm_http_arg(const hm_http_req *rq, const char *name);

/* Answer rs with status and a malloc'd copy of body. */
void hm_http_reply(hm_http_resp *rs, int status, const char *content_type, const void *body,
		   size_t len);
/* A JSON error body {"error": "..."} with status. Returns status. */
int hm_http_error(hm_http_resp *rs, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
