/* export_otlp.c - the OTLP/HTTP exporter (--otlp URL, --server URL).
 *
 * Each profile becomes one ExportProfilesServiceRequest (hm_encode_otlp),
 * gzip-compressed, POSTed with Content-Type application/x-protobuf and
 * Content-Encoding gzip. A URL with no path gets the standard
 * /v1development/profiles appended; homura server listens there too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/export.h"
#include "base/error.h"
#include "format/codec.h"
#include "format/gzip.h"

typedef struct otlp_impl {
	char *url;
	const char **headers;    /* ours + the user's, NULL-ended */
	double timeout_s;
	void *curl;
} otlp_impl;

static int otlp_encode(void *impl, const hm_profile *p, unsigned char **data, size_t *len,
		       char **meta)
{
	(void)impl;
	unsigned char *raw = NULL;
	size_t rawlen = 0;
	*meta = NULL;
	int rc = hm_encode_otlp(p, &raw, &rawlen);
	if (rc != HM_OK)
		return rc;
	rc = hm_gzip(raw, rawlen, data, len);
	free(raw);
	return rc;
}

static int otlp_send(void *impl, const hm_qitem *it, const volatile int *cancel, char *why,
		     size_t whylen)
{
	otlp_impl *o = impl;
	return hm_http_post(&o->curl, o->url, o->headers, it->data, it->len, o->timeout_s, cancel,
			    why, whylen);
}

static void otlp_free(void *impl)
{
	otlp_impl *o = impl;
	if (!o)
		return;
	hm_http_free(o->curl);
	free(o->url);
	free(o->headers);
	free(o);
}

static const hm_exporter_ops otlp_ops = {
	.kind = "otlp",
	.encode = otlp_encode,
	.send = otlp_send,
	.free = otlp_free,
};

/* The array points into static strings and the caller's long-lived option
 * strings. */
const char **hm_export_headers(const char *const *base, const char *const *user)
{
	size_t n = 0, m = 0;
	while (base && base[n])
		n++;
	while (user && user[m])
		m++;
	const char **h = calloc(n + m + 1, sizeof *h);
	if (!h)
		return NULL;
	for (size_t i = 0; i < n; i++)
		h[i] = base[i];
	for (size_t i = 0; i < m; i++)
		h[n + i] = user[i];
	return h;
}

static int url_ok(const char *url)
{
	return !strncmp(url, "http://", 7) || !strncmp(url, "https://", 8);
}

int hm_exporter_otlp(const char *url, const hm_export_opts *opts, hm_exporter **out)
{
	*out = NULL;
	if (!url_ok(url))
		return hm_error(HM_EINVAL, "invalid OTLP URL '%s' (want http://host:port[/path])", url);
	otlp_impl *o = calloc(1, sizeof *o);
	if (!o)
		return hm_error(HM_ENOMEM, "out of memory");
	const char *rest = strstr(url, "://") + 3;
	const char *slash = strchr(rest, '/');
	int need_path = !slash || !slash[1];
	size_t ulen = strlen(url);
	o->url = malloc(ulen + 32);
	static const char *const base[] = {"Content-Type: application/x-protobuf",
					   "Content-Encoding: gzip", NULL};
	o->headers = hm_export_headers(base, opts->headers);
	if (!o->url || !o->headers) {
		otlp_free(o);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	memcpy(o->url, url, ulen + 1);
	if (need_path) {
		if (slash)
			o->url[slash - url] = 0;
		strcat(o->url, "/v1development/profiles");
	}
	o->timeout_s = opts->timeout_s;
	char name[4200];
	snprintf(name, sizeof name, "%s", o->url);
	return hm_exporter_new(&otlp_ops, o, name, opts, out);
}
