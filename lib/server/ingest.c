/* ingest.c - the write side of homura server: OTLP, Pyroscope /ingest, Push.
 *
 * Every handler first decodes and validates the whole request into profiles
 * with their series (type + labels) and only then stores them, so a request
 * that is bad anywhere is refused (4xx) without touching the store, and one
 * that would pass the series limit stores nothing (hm_store_put_many). Bodies
 * are inflated with hm_gunzip under the request's cap; protobuf and JSON
 * messages are checked against the decoding limits (pbscan.c: entries,
 * elements, nesting, memory; 413) before they are unpacked; at most
 * MAX_DECODES requests decode at once (others wait, then 503); negative or
 * overflowing sample values are refused (400). The profile readers
 * (hm_profile_read_fmt) do the rest of the checking.
 *
 *  OTLP  POST /v1development/profiles  protobuf or JSON, one series per
 *        ResourceProfiles (resource attributes become labels, '.' -> '_')
 *        and per set of sample attributes (bounded, decode.h).
 *  Pyroscope  POST /ingest?name=app.cpu{k=v}&from=&format=folded|lines|pprof
 *        body raw or in the multipart field "profile"; values may be quoted.
 *  Push  POST /push.v1.PusherService/Push  (Connect, proto or JSON) with
 *        series of labels (__name__ = profile type) and raw pprof samples.
 * A pprof becomes one series per sample type (its profile type and unit
 * from sample_type / period_type, ptype.h; the name suffix or __name__ only
 * where the pprof names none) and per set of per-sample labels (bounded). */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "base/parse.h"
#include "format/codec.h"
#include "format/gzip.h"
#include "format/decode.h"
#include "format/filter.h"
#include "server/http.h"
#include "server/ptype.h"
#include "server/server.h"
#include "server/spans.h"
#include "opentelemetry/proto/collector/profiles/v1development/profiles_service.pb-c.h"
#include "format/pbjson.h"
#include "pyroscope/push/v1/push.pb-c.h"

typedef Opentelemetry__Proto__Collector__Profiles__V1development__ExportProfilesServiceRequest OReq;
typedef Opentelemetry__Proto__Profiles__V1development__ResourceProfiles ORes;
#define OREQ(x) opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__##x

#define MAX_ITEMS 256           /* profiles per request */
/* Resource profiles of one OTLP request are decoded one by one, each with
 * the request's whole dictionary: bound resources x dictionary bytes. */
#define MAX_SHARED_WORK (128ull << 20)

/* One decoded profile and the series it goes to. */
typedef struct item {
	hm_profile *p;
	char type[HM_STORE_MAX_NAME + 1];
	uint32_t n;
	char *names[HM_STORE_MAX_LABELS], *values[HM_STORE_MAX_LABELS];
	int64_t t_s;
} item;

typedef struct batch {
	item v[MAX_ITEMS];
	size_t n;
} batch;

static void batch_free(batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		hm_profile_free(b->v[i].p);
		for (uint32_t k = 0; k < b->v[i].n; k++) {
			free(b->v[i].names[k]);
			free(b->v[i].values[k]);
		}
	}
	b->n = 0;
}

static item *batch_new(batch *b, const char *type)
{
	if (b->n >= MAX_ITEMS) {
		hm_error(HM_EINVAL, "too many profiles in one request (at most %d)", MAX_ITEMS);
		return NULL;
	}
	item *it = &b->v[b->n++];
	memset(it, 0, sizeof *it);
	snprintf(it->type, sizeof it->type, "%s", type);
	return it;
}

static int item_label(item *it, const char *name, size_t nlen, const char *value, size_t vlen)
{
	if (!nlen || nlen > HM_STORE_MAX_NAME)
		return hm_error(HM_EINVAL, "bad label name '%.*s'", (int)(nlen > 64 ? 64 : nlen),
				name);
	if (vlen > HM_STORE_MAX_VALUE)
		return hm_error(HM_EINVAL, "label '%.*s' value longer than %d bytes", (int)nlen,
				name, HM_STORE_MAX_VALUE);
	char key[HM_STORE_MAX_NAME + 1];
	for (size_t i = 0; i < nlen; i++)
		key[i] = name[i] == '.' || name[i] == '-' ? '_' : name[i];
	key[nlen] = 0;
	if (!hm_store_label_name_ok(key))
		return hm_error(HM_EINVAL, "bad label name '%s'", key);
	for (uint32_t i = 0; i < it->n; i++)
		if (!strcmp(it->names[i], key))
			return HM_OK;        /* first one wins */
	if (it->n >= HM_STORE_MAX_LABELS)
		return hm_error(HM_EINVAL, "too many labels (at most %d)", HM_STORE_MAX_LABELS);
	it->names[it->n] = strdup(key);
	it->values[it->n] = strndup(value, vlen);
	if (!it->names[it->n] || !it->values[it->n]) {
		free(it->names[it->n]);
		free(it->values[it->n]);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	it->n++;
	return HM_OK;
}

static const char *item_get(const item *it, const char *name)
{
	for (uint32_t i = 0; i < it->n; i++)
		if (!strcmp(it->names[i], name))
			return it->values[i];
	return NULL;
}

/* Sample values a request may carry: no negative counts or weights, and no
 * sums past 2^53 (104 days of CPU time in nanoseconds per request), so
 * stored sums stay far from the int64 limit. */
#define MAX_VALUE (1LL << 53)

static int batch_check(const batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		const hm_profile *p = b->v[i].p;
		size_t ns = hm_profile_nsamples(p);
		for (size_t k = 0; k < ns; k++) {
			const hm_sample *s = hm_profile_sample(p, k);
			if (s->count < 0 || s->weight_ns < 0)
				return hm_error(HM_EINVAL, "ingest: negative sample value (%lld, %lld)",
						(long long)s->count, (long long)s->weight_ns);
		}
		if (hm_profile_total_count(p) > MAX_VALUE || hm_profile_total_weight(p) > MAX_VALUE)
			return hm_error(HM_EINVAL, "ingest: sample values out of range (sums past "
					"2^53 in one profile)");
	}
	return HM_OK;
}

/* All of the request or, when it would pass the series limit, none of it. */
static int batch_store(hm_store *st, batch *b, int64_t now)
{
	hm_store_put_req *v = calloc(b->n + 1, sizeof *v);
	hm_store_label *l = malloc((b->n + 1) * HM_STORE_MAX_LABELS * sizeof *l);
	if (!v || !l) {
		free(v);
		free(l);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < b->n; i++) {
		item *it = &b->v[i];
		hm_store_label *li = l + i * HM_STORE_MAX_LABELS;
		for (uint32_t k = 0; k < it->n; k++)
			li[k] = (hm_store_label){it->names[k], it->values[k]};
		int64_t t = it->t_s;
		if (t <= 0 || t > now + 3600)
			t = now;
		v[i] = (hm_store_put_req){it->type, li, it->n, t, it->p};
	}
	/* Samples inside OpenTelemetry spans also go to span-name series
	 * (server/spans.h), in the same all-or-none request. */
	hm_store_put_req *sv = NULL, *all = NULL;
	size_t ns = 0;
	if (hm_span_reqs(v, b->n, &sv, &ns) == HM_OK && ns &&
	    (all = malloc((b->n + ns) * sizeof *all))) {
		memcpy(all, v, b->n * sizeof *all);
		memcpy(all + b->n, sv, ns * sizeof *all);
	}
	int rc = all ? hm_store_put_many(st, all, b->n + ns) : hm_store_put_many(st, v, b->n);
	free(all);
	hm_span_reqs_free(sv, ns);
	free(v);
	free(l);
	return rc;
}

/* Inflate when gzip-encoded (by header or magic). *buf may be the input. */
static int inflate_body(const hm_http_req *rq, const unsigned char *in, size_t len,
			int by_header, unsigned char **out, size_t *outlen, unsigned char **owned)
{
	*owned = NULL;
	int gz = len >= 2 && in[0] == 0x1f && in[1] == 0x8b;
	if (by_header && rq->content_encoding && !strcasecmp(rq->content_encoding, "gzip") && !gz)
		return hm_error(HM_EINVAL, "Content-Encoding gzip but the body is not gzip");
	if (by_header && rq->content_encoding && *rq->content_encoding &&
	    strcasecmp(rq->content_encoding, "gzip") && strcasecmp(rq->content_encoding, "identity"))
		return hm_error(HM_EINVAL, "unsupported Content-Encoding '%.32s'",
				rq->content_encoding);
	if (!gz) {
		*out = (unsigned char *)in;
		*outlen = len;
		return HM_OK;
	}
	int rc = hm_gunzip(in, len, rq->max_body, owned, outlen);
	*out = *owned;
	return rc;
}

static int is_json(const char *ct)
{
	return ct && !strncasecmp(ct, "application/json", 16);
}

/* ---- OTLP ---- */

static const char *const otlp_dropped[] = {   /* unbounded, not useful as labels */
	"process.command_line", "process.command_args", "process.command",
	"process.executable.path", NULL,
};

/* One resource's profiles (a binary request): one item per set of sample
 * attributes (decode.h), each with the resource attributes as labels. */
static int otlp_item(batch *b, const unsigned char *buf, size_t len)
{
	hm_pprof_split sp;
	int rc = hm_decode_otlp_split(buf, len, &sp);
	if (rc > 0)
		return hm_error(HM_EINVAL, "body is not an OTLP profiles request");
	if (rc < 0)
		return rc;
	for (size_t pi = 0; rc == HM_OK && pi < sp.n; pi++) {
		hm_pprof_part *pt = &sp.v[pi];
		const hm_profile_meta *m = hm_profile_meta_cget(pt->p);
		item *it = batch_new(b, m->time_kind == HM_TIME_WALL ? "wall" : "process_cpu");
		if (!it) {
			rc = HM_EINVAL;
			break;
		}
		hm_profile *p = it->p = pt->p;
		pt->p = NULL;
		it->t_s = (int64_t)(m->start_ns / 1000000000u);
		for (uint32_t i = 0; rc == HM_OK && i < m->nlabels; i++) {
			const char *k = hm_profile_str(p, m->labels[i].key);
			const char *v = hm_profile_str(p, m->labels[i].value);
			int skip = 0;
			for (int d = 0; otlp_dropped[d]; d++)
				skip |= !strcmp(k, otlp_dropped[d]);
			if (!skip)
				rc = item_label(it, k, strlen(k), v, strlen(v));
		}
		for (uint32_t k = 0; rc == HM_OK && k < pt->nlabels; k++)
			if (strcmp(pt->keys[k], "service.name") && strcmp(pt->keys[k], "service_name"))
				rc = item_label(it, pt->keys[k], strlen(pt->keys[k]), pt->values[k],
						strlen(pt->values[k]));
		if (rc == HM_OK && !item_get(it, "service_name"))
			rc = item_label(it, "service_name", 12, "unknown_service", 15);
		const char *ver = item_get(it, "service_version");
		if (rc == HM_OK && ver && !item_get(it, "version"))
			rc = item_label(it, "version", 7, ver, strlen(ver));
	}
	hm_pprof_split_free(&sp);
	return rc;
}

static int otlp_decode(const unsigned char *buf, size_t len, int json, batch *b)
{
	OReq *r = NULL;
	ProtobufCMessage *jm = NULL;
	json_t *root = NULL;
	int rc = json ? hm_json_check((const char *)buf, len, "OTLP") :
		 hm_pb_check(&OREQ(descriptor), buf, len, "OTLP", 0);
	if (rc < 0)
		return rc;
	if (json) {
		json_error_t e;
		root = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &e);
		if (!root)
			return hm_error(HM_EINVAL, "OTLP JSON: %s (line %d)", e.text, e.line);
		jm = hm_pb_from_json(&OREQ(descriptor), root);
		json_decref(root);
		if (!jm)
			return HM_EINVAL;
		r = (OReq *)jm;
	} else {
		r = OREQ(unpack)(NULL, len, buf);
		if (!r)
			return hm_error(HM_EINVAL, "OTLP: not a valid ExportProfilesServiceRequest");
	}
	size_t dict = r->dictionary ? opentelemetry__proto__profiles__v1development__profiles_dictionary__get_packed_size(r->dictionary) : 0;
	if (!r->n_resource_profiles) {
		rc = HM_OK;    /* nothing to store */
	} else if (r->n_resource_profiles > MAX_ITEMS) {
		rc = hm_error(HM_EINVAL, "too many profiles in one request (at most %d)", MAX_ITEMS);
	} else if (r->n_resource_profiles > 1 &&
		   (uint64_t)dict * r->n_resource_profiles > MAX_SHARED_WORK) {
		/* each resource is decoded with the whole dictionary */
		rc = hm_error(HM_EINVAL, "OTLP request over the decoding limit: %zu resource "
			      "profiles share a %zu KiB dictionary (send them in separate "
			      "requests)", r->n_resource_profiles, dict >> 10);
	} else if (r->n_resource_profiles == 1 && !json) {
		rc = otlp_item(b, buf, len);
	} else {
		/* one series per resource: re-pack each with the shared dictionary */
		for (size_t i = 0; rc == HM_OK && i < r->n_resource_profiles; i++) {
			OReq one = *r;
			ORes *rp = r->resource_profiles[i];
			one.n_resource_profiles = 1;
			one.resource_profiles = &rp;
			size_t sz = OREQ(get_packed_size)(&one);
			unsigned char *pk = malloc(sz + 1);
			if (!pk) {
				rc = hm_error(HM_ENOMEM, "out of memory");
				break;
			}
			OREQ(pack)(&one, pk);
			rc = otlp_item(b, pk, sz);
			free(pk);
		}
	}
	if (jm)
		protobuf_c_message_free_unpacked(jm, NULL);
	else
		OREQ(free_unpacked)(r, NULL);
	return rc;
}

/* ---- Pyroscope /ingest ---- */

/* "app.cpu" -> service "app", profile type "process_cpu"; memory, goroutine,
 * mutex and block suffixes name five-part types with their real units
 * (ptype.h). */
static void split_app_name(const char *name, size_t len, char *svc, size_t svcap,
			   const char **type)
{
	static const struct { const char *suffix, *type; } map[] = {
		{"cpu", "process_cpu"}, {"itimer", "process_cpu"}, {"wall", "wall"},
		{"alloc_objects", "memory.alloc_objects.count.space.bytes"},
		{"alloc_space", "memory.alloc_space.bytes.space.bytes"},
		{"inuse_objects", "memory.inuse_objects.count.space.bytes"},
		{"inuse_space", "memory.inuse_space.bytes.space.bytes"},
		{"goroutines", "goroutine.goroutine.count.goroutine.count"},
		{"mutex_count", "mutex.contentions.count.contentions.count"},
		{"mutex_duration", "mutex.delay.nanoseconds.contentions.count"},
		{"block_count", "block.contentions.count.contentions.count"},
		{"block_duration", "block.delay.nanoseconds.contentions.count"},
	};
	*type = "process_cpu";
	size_t cut = len;
	for (size_t i = len; i-- > 0;)
		if (name[i] == '.') {
			for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
				if (strlen(map[k].suffix) == len - i - 1 &&
				    !memcmp(name + i + 1, map[k].suffix, len - i - 1)) {
					*type = map[k].type;
					cut = i;
				}
			break;
		}
	if (cut >= svcap)
		cut = svcap - 1;
	memcpy(svc, name, cut);
	svc[cut] = 0;
}

/* Labels of name=app.cpu{k=v,k2=v2} into it (service_name first). */
static int parse_app_name(const char *s, item *it)
{
	const char *brace = strchr(s, '{');
	size_t nlen = brace ? (size_t)(brace - s) : strlen(s);
	if (!nlen || nlen > HM_STORE_MAX_VALUE)
		return hm_error(HM_EINVAL, "name: missing or too long application name");
	char svc[HM_STORE_MAX_VALUE + 1];
	const char *type;
	split_app_name(s, nlen, svc, sizeof svc, &type);
	snprintf(it->type, sizeof it->type, "%s", type);
	int rc = HM_OK;
	if (brace) {
		const char *p = brace + 1, *end = strchr(p, '}');
		if (!end || end[1])
			return hm_error(HM_EINVAL, "name: labels must end with '}'");
		while (rc == HM_OK && p < end) {
			const char *comma = memchr(p, ',', (size_t)(end - p));
			const char *stop = comma ? comma : end;
			const char *eq = memchr(p, '=', (size_t)(stop - p));
			if (!eq)
				return hm_error(HM_EINVAL, "name: label '%.*s' has no '='",
						(int)(stop - p > 64 ? 64 : stop - p), p);
			while (p < eq && isspace((unsigned char)*p))
				p++;
			size_t kl = (size_t)(eq - p);
			while (kl && isspace((unsigned char)p[kl - 1]))
				kl--;
			const char *v = eq + 1;
			size_t vl = (size_t)(stop - v);
			while (vl && isspace((unsigned char)*v))
				v++, vl--;
			while (vl && isspace((unsigned char)v[vl - 1]))
				vl--;
			if (vl >= 2 && (*v == '"' || *v == '\'') && v[vl - 1] == *v)
				v++, vl -= 2;       /* app.cpu{env="dev"}: quotes are not the value */
			if (kl == 12 && !memcmp(p, "service_name", 12))
				snprintf(svc, sizeof svc, "%.*s", (int)vl, v);
			else if (kl == 8 && !memcmp(p, "__name__", 8))
				;
			else
				rc = item_label(it, p, kl, v, vl);
			p = stop + 1;
		}
	}
	if (rc == HM_OK)
		rc = item_label(it, "service_name", 12, svc, strlen(svc));
	return rc;
}

/* The "profile" part of a multipart/form-data body. */
static int multipart_part(const char *ct, const unsigned char *body, size_t len,
			  const char *field, const unsigned char **out, size_t *outlen)
{
	const char *bp = strstr(ct, "boundary=");
	if (!bp)
		return hm_error(HM_EINVAL, "multipart body without a boundary");
	bp += 9;
	char delim[204] = "--";
	size_t bl = 0;
	int quoted = *bp == '"';
	bp += quoted;
	while (bp[bl] && bp[bl] != ';' && bp[bl] != (quoted ? '"' : ' ') && bl < 200)
		bl++;
	memcpy(delim + 2, bp, bl);
	delim[2 + bl] = 0;
	size_t dl = bl + 2;
	char want[128];
	snprintf(want, sizeof want, "name=\"%s\"", field);
	const unsigned char *p = memmem(body, len, delim, dl);
	while (p) {
		p += dl;
		const unsigned char *hend = memmem(p, len - (size_t)(p - body), "\r\n\r\n", 4);
		if (!hend)
			break;
		const unsigned char *data = hend + 4;
		const unsigned char *next = memmem(data, len - (size_t)(data - body), delim, dl);
		if (!next)
			break;
		if (memmem(p, (size_t)(hend - p), want, strlen(want))) {
			size_t n = (size_t)(next - data);
			if (n >= 2 && next[-2] == '\r' && next[-1] == '\n')
				n -= 2;
			*out = data;
			*outlen = n;
			return HM_OK;
		}
		p = next;
	}
	return hm_error(HM_EINVAL, "multipart body has no '%s' part", field);
}

/* A copy of p whose weights are count * period (folded input has counts);
 * a count whose weight would not fit in 64 bits is refused. */
static int with_weights(const hm_profile *in, int64_t period_ns, hm_profile **out)
{
	hm_profile *p = hm_profile_new(0);
	uint32_t nf = hm_profile_nframes(in);
	uint32_t *fmap = malloc((nf + 1) * sizeof *fmap);
	uint32_t *scratch = malloc(HM_READ_MAX_DEPTH * sizeof *scratch);
	if (!p || !fmap || !scratch) {
		hm_profile_free(p);
		free(fmap);
		free(scratch);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < nf; i++)
		fmap[i] = hm_profile_import_frame(p, in, i);
	uint32_t th = hm_profile_thread_id(p, 0, 0, NULL);
	for (size_t i = 0; i < hm_profile_nsamples(in); i++) {
		const hm_sample *s = hm_profile_sample(in, i);
		uint32_t n;
		const uint32_t *fr = hm_profile_stack(in, s->stack, &n);
		if (n > HM_READ_MAX_DEPTH)
			n = HM_READ_MAX_DEPTH;
		for (uint32_t k = 0; k < n; k++)
			scratch[k] = fmap[fr[k]];
		int64_t w;
		if (s->count < 0 || __builtin_mul_overflow(s->count, period_ns, &w)) {
			free(fmap);
			free(scratch);
			hm_profile_free(p);
			return hm_error(HM_EINVAL, "ingest: sample count %lld out of range "
					"(0 .. %lld at this sample rate)", (long long)s->count,
					(long long)(INT64_MAX / period_ns));
		}
		hm_profile_add(p, hm_profile_stack_id(p, scratch, n), th, s->count, w, 0);
	}
	free(fmap);
	free(scratch);
	*out = p;
	return HM_OK;
}

/* "lines" format: one stack per line, each one sample. */
static int lines_to_folded(const unsigned char *in, size_t len, unsigned char **out,
			   size_t *outlen)
{
	size_t lines = 1;
	for (size_t i = 0; i < len; i++)
		lines += in[i] == '\n';
	unsigned char *o = malloc(len + lines * 3 + 1), *w = o;
	if (!o)
		return hm_error(HM_ENOMEM, "out of memory");
	for (size_t at = 0; at < len;) {
		const unsigned char *nl = memchr(in + at, '\n', len - at);
		size_t l = nl ? (size_t)(nl - (in + at)) : len - at;
		if (l && in[at + l - 1] == '\r')
			l--;
		if (l) {
			memcpy(w, in + at, l);
			w += l;
			memcpy(w, " 1\n", 3);
			w += 3;
		}
		at += (nl ? (size_t)(nl - (in + at)) + 1 : len - at);
	}
	*out = o;
	*outlen = (size_t)(w - o);
	return HM_OK;
}

/* ---- pprof: one item per profile type and per-sample label set ---- */

/* Items of an inflated pprof: each sample type of the pprof becomes its own
 * profile type (ptype.h; `fallback`, the type the application name gave,
 * only where the pprof names none), split by per-sample labels, each item
 * with the labels of tmpl plus those of its samples. */
static int pprof_items(batch *b, const item *tmpl, const char *fallback, const unsigned char *buf,
		       size_t len, int64_t t_s)
{
	hm_ptype_plan plan = {.fallback = fallback};
	hm_pprof_split sp = {.group_labels = 1};
	int rc = hm_decode_pprof_split(buf, len, hm_ptype_plan_fn, &plan, &sp);
	if (rc < 0)
		return rc;
	rc = HM_OK;
	for (size_t i = 0; rc == HM_OK && i < sp.n; i++) {
		hm_pprof_part *pt = &sp.v[i];
		item *it = batch_new(b, plan.types[pt->pair]);
		if (!it) {
			rc = HM_EINVAL;
			break;
		}
		it->p = pt->p;
		pt->p = NULL;
		it->t_s = t_s ? t_s : (int64_t)(hm_profile_meta_cget(it->p)->start_ns / 1000000000u);
		for (uint32_t k = 0; rc == HM_OK && k < tmpl->n; k++)
			rc = item_label(it, tmpl->names[k], strlen(tmpl->names[k]), tmpl->values[k],
					strlen(tmpl->values[k]));
		for (uint32_t k = 0; rc == HM_OK && k < pt->nlabels; k++)
			if (strcmp(pt->keys[k], "service_name"))
				rc = item_label(it, pt->keys[k], strlen(pt->keys[k]), pt->values[k],
						strlen(pt->values[k]));
	}
	hm_pprof_split_free(&sp);
	return rc;
}

static void item_clear(item *it)
{
	for (uint32_t k = 0; k < it->n; k++) {
		free(it->names[k]);
		free(it->values[k]);
	}
	it->n = 0;
}

static int pyroscope_decode(const hm_http_req *rq, batch *b)
{
	const char *name = hm_http_arg(rq, "name");
	if (!name)
		return hm_error(HM_EINVAL, "ingest: the 'name' argument is required");
	const char *format = hm_http_arg(rq, "format");
	if (!format)
		format = "folded";
	int folded = !strcmp(format, "folded"), lines = !strcmp(format, "lines");
	int pprof = !strcmp(format, "pprof");
	if (!folded && !lines && !pprof)
		return hm_error(HM_EINVAL, "ingest: unsupported format '%.32s' (folded, lines, pprof)",
				format);
	int64_t rate = 100;
	const char *sr = hm_http_arg(rq, "sampleRate");
	if (sr) {
		char *end;
		rate = strtoll(sr, &end, 10);
		if (*end || rate <= 0 || rate > 1000000)
			return hm_error(HM_EINVAL, "ingest: bad sampleRate '%.32s'", sr);
	}
	int64_t t = 0;
	const char *from = hm_http_arg(rq, "from");
	if (from && hm_parse_time(from, rq->now_s, &t) < 0)
		return HM_EINVAL;
	item tmpl = {0};
	int rc = parse_app_name(name, &tmpl);
	if (rc < 0) {
		item_clear(&tmpl);
		return rc;
	}
	const unsigned char *body = rq->body;
	size_t len = rq->body_len;
	if (rq->content_type && !strncasecmp(rq->content_type, "multipart/form-data", 19))
		rc = multipart_part(rq->content_type, rq->body, rq->body_len, "profile", &body, &len);
	unsigned char *raw = NULL, *owned = NULL, *conv = NULL;
	size_t rawlen = 0;
	if (rc == HM_OK)
		rc = inflate_body(rq, body, len, body == rq->body, &raw, &rawlen, &owned);
	if (rc == HM_OK && lines) {
		rc = lines_to_folded(raw, rawlen, &conv, &rawlen);
		raw = conv;
	}
	if (rc == HM_OK && rawlen == 0)
		rc = hm_error(HM_EINVAL, "ingest: empty profile");
	if (rc == HM_OK && pprof) {
		rc = pprof_items(b, &tmpl, tmpl.type, raw, rawlen, t);
		free(owned);
		free(conv);
		item_clear(&tmpl);
		return rc;
	}
	hm_profile *p = NULL;
	int fmt = 0;
	if (rc == HM_OK)
		rc = hm_profile_read_fmt(raw, rawlen, &p, &fmt);
	free(owned);
	free(conv);
	if (rc == HM_OK && fmt != HM_FMT_COLLAPSED) {
		hm_profile_free(p);
		p = NULL;
		rc = hm_error(HM_EINVAL, "ingest: body is not %s data", format);
	}
	if (rc == HM_OK) {
		/* counts; the two-valued types weigh them by the sample period,
		 * the others (memory, goroutine, ...) keep the value itself */
		hm_profile *w = NULL;
		rc = with_weights(p, strchr(tmpl.type, '.') ? 1 : 1000000000 / rate, &w);
		hm_profile_free(p);
		p = w;
	}
	item *it = rc == HM_OK ? batch_new(b, tmpl.type) : NULL;
	if (rc == HM_OK && !it)
		rc = HM_EINVAL;
	if (rc < 0) {
		hm_profile_free(p);
		item_clear(&tmpl);
		return rc;
	}
	it->p = p;
	it->t_s = t ? t : (int64_t)(hm_profile_meta_cget(p)->start_ns / 1000000000u);
	for (uint32_t k = 0; k < tmpl.n; k++) {   /* labels move over */
		it->names[k] = tmpl.names[k];
		it->values[k] = tmpl.values[k];
	}
	it->n = tmpl.n;
	return HM_OK;
}

/* ---- Push (Connect) ---- */

static int push_decode(const hm_http_req *rq, const unsigned char *buf, size_t len, batch *b)
{
	Push__V1__PushRequest *r;
	ProtobufCMessage *jm = NULL;
	int rc = is_json(rq->content_type) ? hm_json_check((const char *)buf, len, "Push") :
		 hm_pb_check(&push__v1__push_request__descriptor, buf, len, "Push", 0);
	if (rc < 0)
		return rc;
	if (is_json(rq->content_type)) {
		json_error_t e;
		json_t *root = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &e);
		if (!root)
			return hm_error(HM_EINVAL, "Push JSON: %s (line %d)", e.text, e.line);
		jm = hm_pb_from_json(&push__v1__push_request__descriptor, root);
		json_decref(root);
		if (!jm)
			return HM_EINVAL;
		r = (Push__V1__PushRequest *)jm;
	} else {
		r = push__v1__push_request__unpack(NULL, len, buf);
		if (!r)
			return hm_error(HM_EINVAL, "Push: not a valid PushRequest");
	}
	for (size_t i = 0; rc == HM_OK && i < r->n_series; i++) {
		const Push__V1__RawProfileSeries *s = r->series[i];
		const char *type = "process_cpu";
		for (size_t k = 0; k < s->n_labels; k++)
			if (s->labels[k]->name && !strcmp(s->labels[k]->name, "__name__") &&
			    s->labels[k]->value && *s->labels[k]->value)
				type = s->labels[k]->value;
		if (!hm_store_label_name_ok(type)) {
			rc = hm_error(HM_EINVAL, "Push: bad __name__ '%.64s'", type);
			break;
		}
		for (size_t j = 0; rc == HM_OK && j < s->n_samples; j++) {
			const ProtobufCBinaryData *raw = &s->samples[j]->raw_profile;
			if (!raw->len) {
				rc = hm_error(HM_EINVAL, "Push: empty raw_profile");
				break;
			}
			item tmpl = {0};
			for (size_t k = 0; rc == HM_OK && k < s->n_labels; k++) {
				const char *n = s->labels[k]->name ?: "", *v = s->labels[k]->value ?: "";
				if (!strncmp(n, "__", 2))
					continue;    /* __name__, __delta__, __session_id__ ... */
				rc = item_label(&tmpl, n, strlen(n), v, strlen(v));
			}
			if (rc == HM_OK && !item_get(&tmpl, "service_name"))
				rc = item_label(&tmpl, "service_name", 12, "unknown_service", 15);
			unsigned char *pb = NULL, *owned = NULL;
			size_t pblen = 0;
			if (rc == HM_OK)
				rc = inflate_body(rq, raw->data, raw->len, 0, &pb, &pblen, &owned);
			if (rc == HM_OK)
				rc = pprof_items(b, &tmpl, type, pb, pblen, 0);
			free(owned);
			item_clear(&tmpl);
		}
	}
	if (jm)
		protobuf_c_message_free_unpacked(jm, NULL);
	else
		push__v1__push_request__free_unpacked(r, NULL);
	return rc;
}

/* ---- dispatch ---- */

int hm_ingest_path(const char *path)
{
	return !strcmp(path, "/v1development/profiles") ||
	       !strcmp(path, "/v1experimental/profiles") || !strcmp(path, "/ingest") ||
	       !strcmp(path, "/push.v1.PusherService/Push");
}

static void connect_error(hm_http_resp *rs, int status, const char *code, const char *msg)
{
	json_t *j = json_pack("{s:s, s:s}", "code", code, "message", msg);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	hm_http_reply(rs, status, "application/json", s ? s : "{}", s ? strlen(s) : 2);
	free(s);
}

/* Decoding is where a request's memory and CPU go: at most MAX_DECODES
 * requests decode at once; others wait up to DECODE_WAIT_S for a turn and
 * are then answered 503, so a burst of large bodies cannot take the whole
 * machine (or every HTTP thread) at once. */
#define MAX_DECODES 2
#define DECODE_WAIT_S 5

static pthread_mutex_t decode_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t decode_cv = PTHREAD_COND_INITIALIZER;
static int decoding;

static int decode_enter(void)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += DECODE_WAIT_S;
	int rc = HM_OK;
	pthread_mutex_lock(&decode_mu);
	while (decoding >= MAX_DECODES && rc == HM_OK)
		if (pthread_cond_timedwait(&decode_cv, &decode_mu, &until) == ETIMEDOUT &&
		    decoding >= MAX_DECODES)
			rc = hm_error(HM_ENOMEM, "server busy: %d requests are being decoded,"
				      " retry later", MAX_DECODES);
	if (rc == HM_OK)
		decoding++;
	pthread_mutex_unlock(&decode_mu);
	return rc;
}

static void decode_leave(void)
{
	pthread_mutex_lock(&decode_mu);
	decoding--;
	pthread_cond_signal(&decode_cv);
	pthread_mutex_unlock(&decode_mu);
}

void hm_ingest_handle(hm_store *st, const hm_http_req *rq, hm_http_resp *rs)
{
	int push = !strcmp(rq->path, "/push.v1.PusherService/Push");
	int otlp = !push && strcmp(rq->path, "/ingest");
	if (strcmp(rq->method, "POST")) {
		hm_http_error(rs, 405, "%s needs POST", rq->path);
		return;
	}
	batch *b = calloc(1, sizeof *b);
	if (!b) {
		hm_http_error(rs, 503, "out of memory");
		return;
	}
	int rc = decode_enter();
	if (rc == HM_OK) {
		if (otlp || push) {
			unsigned char *buf, *owned;
			size_t len;
			rc = inflate_body(rq, rq->body, rq->body_len, 1, &buf, &len, &owned);
			if (rc == HM_OK)
				rc = otlp ? otlp_decode(buf, len, is_json(rq->content_type), b)
					  : push_decode(rq, buf, len, b);
			free(owned);
		} else {
			rc = pyroscope_decode(rq, b);
		}
		decode_leave();
	}
	if (rc == HM_OK)
		rc = batch_check(b);
	if (rc == HM_OK)
		rc = batch_store(st, b, rq->now_s);
	int status = rc == HM_OK ? 200 : rc == HM_EINVAL ? 400 : rc == HM_ENOMEM ? 503 : 500;
	/* hm_gunzip's cap and the series limit read as "too large" */
	if (rc < 0 && strstr(hm_errmsg(), "limit"))
		status = strstr(hm_errmsg(), "series") ? 429 : 413;
	if (rc < 0 && strstr(hm_errmsg(), "larger than"))
		status = 413;
	batch_free(b);
	free(b);
	if (rc < 0) {
		if (push)
			connect_error(rs, status, status == 400 ? "invalid_argument" :
					  status == 413 || status == 429 ? "resource_exhausted" :
					  "internal", hm_errmsg());
		else
			hm_http_error(rs, status, "%s", hm_errmsg());
		return;
	}
	if (push)
		hm_http_reply(rs, 200, is_json(rq->content_type) ? "application/json" :
			      "application/proto", is_json(rq->content_type) ? "{}" : "",
			      is_json(rq->content_type) ? 2 : 0);
	else if (otlp && is_json(rq->content_type))
		hm_http_reply(rs, 200, "application/json", "{}", 2);
	else if (otlp)   /* an empty ExportProfilesServiceResponse */
		hm_http_reply(rs, 200, "application/x-protobuf", "", 0);
	else
		hm_http_reply(rs, 200, "text/plain", "", 0);
}
