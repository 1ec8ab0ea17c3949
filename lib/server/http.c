/* http.c - the request and response of homura server's HTTP layer
 * (http.h): query arguments, plain and JSON error answers. Used by the
 * HTTP server, the query API and ingest. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http.h"

const char *hm_http_arg(const hm_http_req *rq, const char *name)
{
	for (size_t i = 0; i < rq->nargs; i++)
		if (!strcmp(rq->arg_k[i], name))
			return rq->arg_v[i];
	return NULL;
}

void hm_http_reply(hm_http_resp *rs, int status, const char *content_type, const void *body,
		   size_t len)
{
	free(rs->body);
	rs->status = status;
	rs->content_type = content_type;
	rs->body = malloc(len + 1);
	rs->len = rs->body ? len : 0;
	if (rs->body) {
		memcpy(rs->body, body, len);
		rs->body[len] = 0;
	}
}

int hm_http_error(hm_http_resp *rs, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_t *j = json_pack("{s:s}", "error", msg);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	hm_http_reply(rs, status, "application/json", s ? s : "{}", s ? strlen(s) : 2);
	free(s);
	return status;
}
