/* export_pyroscope.c - the Pyroscope exporter (--pyroscope URL).
 *
 * Each profile is POSTed as gzip-compressed pprof to
 * URL/ingest?name=<service>.cpu{k=v,...}&from=S&until=S&format=pprof
 * &sampleRate=HZ&spyName=homura. Pyroscope label names must look like
 * Prometheus names, so other characters ('.' in process.pid) become '_';
 * characters that would break the {k=v,...} syntax in values become '_' too.
 * The query string is built at submit time and travels as the item's meta. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/export.h"
#include "base/error.h"
#include "format/codec.h"

typedef struct pyro_impl {
	char *url;               /* .../ingest */
	const char **headers;
	double timeout_s;
	double rate_hz;
	void *curl;
	char *reqbuf;
	size_t reqcap;
} pyro_impl;

/* Append s percent-encoded (RFC 3986 unreserved kept). */
static void put_escaped(char **buf, size_t *len, size_t *cap, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		if (*len + 4 > *cap) {
			size_t nc = *cap * 2 + 64;
			char *nb = realloc(*buf, nc);
			if (!nb)
				return;
			*buf = nb;
			*cap = nc;
		}
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			(*buf)[(*len)++] = (char)c;
		} else {
			(*buf)[(*len)++] = '%';
			(*buf)[(*len)++] = hex[c >> 4];
			(*buf)[(*len)++] = hex[c & 15];
		}
	}
	(*buf)[*len] = 0;
}

static void sanitize(char *s, int is_name)
{
	for (char *c = s; *c; c++) {
		int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' ||
			 (*c >= '0' && *c <= '9' && (c != s || !is_name));
		if (!is_name)
			ok = *c != ',' && *c != '{' && *c != '}' && *c != '=' && (unsigned char)*c >= 32;
		if (!ok)
			*c = '_';
	}
}

static int pyro_encode(void *impl, const hm_profile *p, unsigned char **data, size_t *len,
		       char **meta)
{
	pyro_impl *o = impl;
	*meta = NULL;
	int rc = hm_encode_pprof(p, 1, data, len);
	if (rc != HM_OK)
		return rc;
	/* name = service.cpu{labels} */
	const hm_profile_meta *m = hm_profile_meta_cget(p);
	size_t cap = 256, n = 0;
	char *name = malloc(cap);
	if (!name)
		return hm_error(HM_ENOMEM, "out of memory");
	const char *svc = hm_export_label(p, "service.name");
	char tmp[512];
	snprintf(tmp, sizeof tmp, "%s", svc && *svc ? svc : "python");
	sanitize(tmp, 0);
	n = (size_t)snprintf(name, cap, "%s.cpu{", tmp);
	int first = 1;
	for (uint32_t i = 0; i < m->nlabels; i++) {
		const char *k = hm_profile_str(p, m->labels[i].key);
		if (!strcmp(k, "service.name"))
			continue;
		char kb[128], vb[512];
		snprintf(kb, sizeof kb, "%s", k);
		snprintf(vb, sizeof vb, "%s", hm_profile_str(p, m->labels[i].value));
		sanitize(kb, 1);
		sanitize(vb, 0);
		size_t need = strlen(kb) + strlen(vb) + 4;
		if (n + need + 2 > cap) {
			size_t nc = (n + need + 2) * 2;
			char *nn = realloc(name, nc);
			if (!nn)
				break;
			name = nn;
			cap = nc;
		}
		n += (size_t)snprintf(name + n, cap - n, "%s%s=%s", first ? "" : ",", kb, vb);
		first = 0;
	}
	if (n + 2 <= cap) {
		name[n++] = '}';
		name[n] = 0;
	}
	size_t qcap = strlen(name) * 3 + 200, qlen = 0;
	char *q = malloc(qcap);
	if (!q) {
		free(name);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	qlen = (size_t)snprintf(q, qcap, "name=");
	put_escaped(&q, &qlen, &qcap, name);
	free(name);
	uint64_t from = m->start_ns / 1000000000ull;
	uint64_t until = (m->start_ns + m->duration_ns + 999999999ull) / 1000000000ull;
	if (until <= from)
		until = from + 1;
	char tail[200];
	snprintf(tail, sizeof tail,
		 "&from=%" PRIu64 "&until=%" PRIu64 "&format=pprof&sampleRate=%d&spyName=homura",
		 from, until, (int)(o->rate_hz + 0.5));
	size_t tl = strlen(tail);
	if (qlen + tl + 1 > qcap) {
		char *nq = realloc(q, qlen + tl + 1);
		if (!nq) {
			free(q);
			return hm_error(HM_ENOMEM, "out of memory");
		}
		q = nq;
	}
	memcpy(q + qlen, tail, tl + 1);
	*meta = q;
	return HM_OK;
}

static int pyro_send(void *impl, const hm_qitem *it, const volatile int *cancel, char *why,
		     size_t whylen)
{
	pyro_impl *o = impl;
	size_t need = strlen(o->url) + (it->meta ? strlen(it->meta) : 0) + 2;
	if (need > o->reqcap) {
		char *nb = realloc(o->reqbuf, need);
		if (!nb) {
			snprintf(why, whylen, "out of memory");
			return HM_SEND_RETRY;
		}
		o->reqbuf = nb;
		o->reqcap = need;
	}
	snprintf(o->reqbuf, o->reqcap, "%s?%s", o->url, it->meta ? it->meta : "");
	return hm_http_post(&o->curl, o->reqbuf, o->headers, it->data, it->len, o->timeout_s,
			    cancel, why, whylen);
}

static void pyro_free(void *impl)
{
	pyro_impl *o = impl;
	if (!o)
		return;
	hm_http_free(o->curl);
	free(o->url);
	free(o->headers);
	free(o->reqbuf);
	free(o);
}

static const hm_exporter_ops pyro_ops = {
	.kind = "pyroscope",
	.encode = pyro_encode,
	.send = pyro_send,
	.free = pyro_free,
};

int hm_exporter_pyroscope(const char *url, const hm_export_opts *opts, hm_exporter **out)
{
	*out = NULL;
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
		return hm_error(HM_EINVAL, "invalid Pyroscope URL '%s' (want http://host:port)", url);
	pyro_impl *o = calloc(1, sizeof *o);
	if (!o)
		return hm_error(HM_ENOMEM, "out of memory");
	size_t ulen = strlen(url);
	while (ulen > 8 && url[ulen - 1] == '/')
		ulen--;
	o->url = malloc(ulen + 16);
	static const char *const base[] = {"Content-Type: application/octet-stream", NULL};
	o->headers = hm_export_headers(base, opts->headers);
	if (!o->url || !o->headers) {
		pyro_free(o);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	memcpy(o->url, url, ulen);
	o->url[ulen] = 0;
	if (ulen < 7 || strcmp(o->url + ulen - 7, "/ingest"))
		strcat(o->url, "/ingest");
	o->timeout_s = opts->timeout_s;
	o->rate_hz = opts->rate_hz > 0 ? opts->rate_hz : 100;
	return hm_exporter_new(&pyro_ops, o, o->url, opts, out);
}
