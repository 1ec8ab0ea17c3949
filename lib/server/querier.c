/* querier.c - the query API of Grafana Pyroscope (querier.v1.QuerierService)
 * over the Connect protocol, for Grafana's Pyroscope data source.
 *
 * POST /querier.v1.QuerierService/<Method> with a body of the method's
 * request message, Content-Type application/proto (binary protobuf) or
 * application/json (the proto3 JSON mapping, pbjson.c); the answer has the
 * same encoding. Bodies may be gzip-compressed (Content-Encoding or
 * Connect-Content-Encoding). Errors are Connect unary errors: a JSON body
 * {"code": "...", "message": "..."} with the matching HTTP status
 * (invalid_argument 400, not_found 404, unimplemented 501, internal 500;
 * 415 for another content type, 405 for another HTTP method).
 *
 * Messages come from proto/pyroscope/{querier,types}/v1 (protoc-c). Time
 * ranges are unix milliseconds [start, end] (end 0: now; start 0: an hour
 * before end; listings without either cover all time) and select what
 * homura's own API selects for from=start/1000 until=end/1000. Profile
 * type ids map to store types through ptype.h.
 *
 *   ProfileTypes, LabelNames, LabelValues, Series   from the series list
 *   SelectMergeStacktraces, Diff   flame graphs as flamebearer levels (per
 *        node x offset from the previous node's end, total, self, name index;
 *        a diff has left and right triples), at most max_nodes nodes (the
 *        largest; default 16384)
 *   SelectSeries     totals per step, grouped by group_by labels, top `limit`
 *   SelectMergeProfile   the merged profile as pprof (a five-part type's
 *        one value in its unit)
 *   GetProfileStats  whether anything is stored, oldest and newest time
 *   SelectMergeSpanProfile   the flame graph of the samples taken in the
 *        given spans (span_selector: 16-hex span ids; none: every span),
 *        from the type's span series (server/spans.h), without their
 *        trace and span pseudo frames; FLAMEGRAPH format only */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/intern.h"
#include "format/codec.h"
#include "format/decode.h"
#include "format/flametree.h"
#include "format/gzip.h"
#include "format/pbjson.h"
#include "perftools/profiles/profile.pb-c.h"
#include "pyroscope/querier/v1/querier.pb-c.h"
#include "pyroscope/types/v1/types.pb-c.h"
#include "server/ptype.h"
#include "server/querier.h"
#include "server/spans.h"

#define PREFIX "/querier.v1.QuerierService/"
#define DEFAULT_MAX_NODES 16384
#define MAX_POINTS 20000
#define MAX_MATCHERS 64

typedef struct ctx {
	hm_store *st;
	const hm_http_req *rq;
	hm_http_resp *rs;
	int json;
} ctx;

int hm_querier_path(const char *path)
{
	return !strncmp(path, PREFIX, strlen(PREFIX));
}

/* ---- Connect framing ---- */

static void connect_err(hm_http_resp *rs, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void connect_err(hm_http_resp *rs, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_t *j = json_pack("{s:s, s:s}", "code", code, "message", msg);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	hm_http_reply(rs, status, "application/json", s ? s : "{}", s ? strlen(s) : 2);
	free(s);
}

/* A store / decoding error as a Connect error. */
static void fail(ctx *c, int rc)
{
	if (rc == HM_EINVAL)
		connect_err(c->rs, 400, "invalid_argument", "%s", hm_errmsg());
	else if (rc == HM_ENOMEM)
		connect_err(c->rs, 503, "unavailable", "%s", hm_errmsg());
	else
		connect_err(c->rs, 500, "internal", "%s", hm_errmsg());
}

static void reply_msg(ctx *c, const ProtobufCMessage *m)
{
	if (c->json) {
		json_t *j = hm_pb_to_json(m);
		char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (!s) {
			connect_err(c->rs, 503, "unavailable", "out of memory");
			return;
		}
		free(c->rs->body);
		c->rs->status = 200;
		c->rs->content_type = "application/json";
		c->rs->body = (unsigned char *)s;
		c->rs->len = strlen(s);
		return;
	}
	size_t n = protobuf_c_message_get_packed_size(m);
	unsigned char *b = malloc(n + 1);
	if (!b) {
		connect_err(c->rs, 503, "unavailable", "out of memory");
		return;
	}
	protobuf_c_message_pack(m, b);
	free(c->rs->body);
	c->rs->status = 200;
	c->rs->content_type = "application/proto";
	c->rs->body = b;
	c->rs->len = n;
}

/* ---- selections ---- */

static void range_of(const ctx *c, int64_t start_ms, int64_t end_ms, int64_t *t0, int64_t *t1)
{
	int64_t until = end_ms > 0 ? end_ms / 1000 : c->rq->now_s;
	int64_t from = start_ms > 0 ? start_ms / 1000 : until - 3600;
	if (from > until)
		from = until;
	*t0 = from;
	*t1 = until + 1;   /* the last second counts, as in homura's own API */
}

/* Listings without a range (older data sources send none) cover all time. */
static void list_range(const ctx *c, int64_t start_ms, int64_t end_ms, int64_t *t0, int64_t *t1)
{
	if (start_ms <= 0 && end_ms <= 0) {
		*t0 = INT64_MIN / 2;
		*t1 = INT64_MAX / 2;
		return;
	}
	range_of(c, start_ms, end_ms, t0, t1);
}

/* "type" + "{matchers}" -> a selector on the store's type. */
static int selector_of(const char *type_id, const char *labels, hm_selector *sel)
{
	size_t n = strlen(type_id ? type_id : "") + strlen(labels ? labels : "") + 1;
	char *text = malloc(n);
	if (!text)
		return hm_error(HM_ENOMEM, "out of memory");
	snprintf(text, n, "%s%s", type_id ? type_id : "", labels ? labels : "");
	if (!*text || strchr(text, '{') == text + strlen(text)) {
		free(text);
		return hm_error(HM_EINVAL, "missing selector");
	}
	int rc = hm_selector_parse(text, sel);
	if (rc == HM_OK && (rc = hm_ptype_fix_selector(text, sel)) < 0)
		hm_selector_free(sel);
	free(text);
	return rc;
}

/* Series of the store in [t0, t1) matching any of the matchers (all when
 * there are none or only empty ones): keep[i] set for each. */
static int matching(ctx *c, char **matchers, size_t n, int64_t t0, int64_t t1,
		    hm_series_list *l, unsigned char **keep)
{
	if (n > MAX_MATCHERS)
		return hm_error(HM_EINVAL, "too many matchers (at most %d)", MAX_MATCHERS);
	hm_selector sel[MAX_MATCHERS];
	size_t ns = 0;
	int rc = HM_OK;
	for (size_t i = 0; rc == HM_OK && i < n; i++) {
		const char *m = matchers[i] ? matchers[i] : "";
		while (*m == ' ')
			m++;
		if (!*m || !strcmp(m, "{}"))
			continue;
		if ((rc = hm_selector_parse(m, &sel[ns])) < 0)
			break;
		if ((rc = hm_ptype_fix_selector(m, &sel[ns])) < 0) {
			hm_selector_free(&sel[ns]);
			break;
		}
		ns++;
	}
	if (rc == HM_OK)
		rc = hm_store_series(c->st, l);
	if (rc < 0) {
		for (size_t i = 0; i < ns; i++)
			hm_selector_free(&sel[i]);
		return rc;
	}
	*keep = calloc(l->n + 1, 1);
	for (size_t i = 0; *keep && rc == HM_OK && i < l->n; i++) {
		const hm_series_info *s = &l->v[i];
		if (s->last_s + HM_STORE_COARSE_S <= t0 || s->first_s >= t1)
			continue;
		int hit = !ns;
		for (size_t k = 0; !hit && k < ns; k++) {
			hit = hm_selector_match(&sel[k], s);
			if (hit < 0)
				rc = hit;
		}
		(*keep)[i] = hit > 0;
	}
	for (size_t i = 0; i < ns; i++)
		hm_selector_free(&sel[i]);
	if (!*keep && rc == HM_OK)
		rc = hm_error(HM_ENOMEM, "out of memory");
	if (rc < 0) {
		free(*keep);
		*keep = NULL;
		hm_series_list_free(l);
	}
	return rc;
}

static int by_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sort v and drop repeats; returns the new count. */
static size_t uniq(const char **v, size_t n)
{
	qsort(v, n, sizeof *v, by_str);
	size_t o = 0;
	for (size_t i = 0; i < n; i++)
		if (!o || strcmp(v[i], v[o - 1]))
			v[o++] = v[i];
	return o;
}

/* ---- listings ---- */

static void do_profile_types(ctx *c, ProtobufCMessage *in)
{
	const Querier__V1__ProfileTypesRequest *r = (void *)in;
	int64_t t0, t1;
	list_range(c, r->start, r->end, &t0, &t1);
	hm_series_list l;
	unsigned char *keep;
	int rc = matching(c, NULL, 0, t0, t1, &l, &keep);
	if (rc < 0)
		return fail(c, rc);
	const char **types = malloc((l.n + 1) * sizeof *types);
	size_t nt = 0;
	for (size_t i = 0; types && i < l.n; i++)
		if (keep[i])
			types[nt++] = l.v[i].type;
	nt = types ? uniq(types, nt) : 0;
	hm_ptype *pt = calloc(2 * nt + 1, sizeof *pt);
	Types__V1__ProfileType *msgs = calloc(2 * nt + 1, sizeof *msgs);
	Types__V1__ProfileType **ptrs = calloc(2 * nt + 1, sizeof *ptrs);
	if (!types || !pt || !msgs || !ptrs) {
		connect_err(c->rs, 503, "unavailable", "out of memory");
	} else {
		size_t n = 0;
		for (size_t i = 0; i < nt; i++) {
			int k = hm_ptype_ids(types[i], &pt[n]);
			for (int j = 0; j < k; j++, n++) {
				types__v1__profile_type__init(&msgs[n]);
				msgs[n].id = pt[n].id;
				msgs[n].name = pt[n].name;
				msgs[n].sample_type = pt[n].sample_type;
				msgs[n].sample_unit = pt[n].sample_unit;
				msgs[n].period_type = pt[n].period_type;
				msgs[n].period_unit = pt[n].period_unit;
				ptrs[n] = &msgs[n];
			}
		}
		Querier__V1__ProfileTypesResponse out = QUERIER__V1__PROFILE_TYPES_RESPONSE__INIT;
		out.n_profile_types = n;
		out.profile_types = ptrs;
		reply_msg(c, &out.base);
	}
	free(types);
	free(pt);
	free(msgs);
	free(ptrs);
	free(keep);
	hm_series_list_free(&l);
}

/* LabelNames (name NULL) or LabelValues. */
static void do_labels(ctx *c, const char *name, char **matchers, size_t nm, int64_t start,
		      int64_t end)
{
	int64_t t0, t1;
	list_range(c, start, end, &t0, &t1);
	hm_series_list l;
	unsigned char *keep;
	int rc = matching(c, matchers, nm, t0, t1, &l, &keep);
	if (rc < 0)
		return fail(c, rc);
	hm_ptype *pt = NULL;
	int names_of_types = name && !strcmp(name, "__name__");
	if (names_of_types)
		pt = calloc(2 * l.n + 1, sizeof *pt);
	const char **v = malloc((l.n * (name ? 2 : HM_STORE_MAX_LABELS) + 1) * sizeof *v);
	size_t n = 0;
	for (size_t i = 0; v && i < l.n; i++) {
		if (!keep[i])
			continue;
		if (names_of_types) {
			if (pt && hm_ptype_ids(l.v[i].type, &pt[2 * i]))
				v[n++] = pt[2 * i].name;
		} else if (name) {
			const char *x = hm_series_label(&l.v[i], name);
			if (x)
				v[n++] = x;
		} else {
			for (uint32_t k = 0; k < l.v[i].nlabels; k++)
				v[n++] = l.v[i].labels[k].name;
		}
	}
	if (!v || (names_of_types && !pt)) {
		connect_err(c->rs, 503, "unavailable", "out of memory");
	} else {
		n = uniq(v, n);
		if (name) {
			Types__V1__LabelValuesResponse out = TYPES__V1__LABEL_VALUES_RESPONSE__INIT;
			out.n_names = n;
			out.names = (char **)v;
			reply_msg(c, &out.base);
		} else {
			Types__V1__LabelNamesResponse out = TYPES__V1__LABEL_NAMES_RESPONSE__INIT;
			out.n_names = n;
			out.names = (char **)v;
			reply_msg(c, &out.base);
		}
	}
	free(v);
	free(pt);
	free(keep);
	hm_series_list_free(&l);
}

static void do_label_names(ctx *c, ProtobufCMessage *in)
{
	const Types__V1__LabelNamesRequest *r = (void *)in;
	do_labels(c, NULL, r->matchers, r->n_matchers, r->start, r->end);
}

static void do_label_values(ctx *c, ProtobufCMessage *in)
{
	const Types__V1__LabelValuesRequest *r = (void *)in;
	if (!r->name || !*r->name)
		return connect_err(c->rs, 400, "invalid_argument", "LabelValues needs a name");
	do_labels(c, r->name, r->matchers, r->n_matchers, r->start, r->end);
}

static int wanted(const Querier__V1__SeriesRequest *r, const char *name)
{
	if (!r->n_label_names)
		return 1;
	for (size_t i = 0; i < r->n_label_names; i++)
		if (r->label_names[i] && !strcmp(r->label_names[i], name))
			return 1;
	return 0;
}

/* Series: one label set per (series, profile type id), with __name__ and
 * __profile_type__ beside the series labels; repeats dropped. */
static void do_series(ctx *c, ProtobufCMessage *in)
{
	const Querier__V1__SeriesRequest *r = (void *)in;
	int64_t t0, t1;
	list_range(c, r->start, r->end, &t0, &t1);
	hm_series_list l;
	unsigned char *keep;
	int rc = matching(c, r->matchers, r->n_matchers, t0, t1, &l, &keep);
	if (rc < 0)
		return fail(c, rc);
	size_t cap = 2 * l.n + 1, per = HM_STORE_MAX_LABELS + 2;
	hm_ptype *pt = calloc(cap, sizeof *pt);
	Types__V1__Labels *sets = calloc(cap, sizeof *sets);
	Types__V1__Labels **ptrs = calloc(cap, sizeof *ptrs);
	Types__V1__LabelPair *pairs = calloc(cap * per, sizeof *pairs);
	Types__V1__LabelPair **pp = calloc(cap * per, sizeof *pp);
	json_t *seen = json_object();
	if (!pt || !sets || !ptrs || !pairs || !pp || !seen) {
		connect_err(c->rs, 503, "unavailable", "out of memory");
		goto out;
	}
	size_t n = 0;
	for (size_t i = 0; i < l.n; i++) {
		if (!keep[i])
			continue;
		hm_ptype ids[2];
		int k = hm_ptype_ids(l.v[i].type, ids);
		for (int j = 0; j < k; j++) {
			pt[n] = ids[j];
			Types__V1__Labels *s = &sets[n];
			types__v1__labels__init(s);
			s->labels = &pp[n * per];
			const char *names[HM_STORE_MAX_LABELS + 2], *vals[HM_STORE_MAX_LABELS + 2];
			uint32_t m = 0;
			if (wanted(r, "__name__"))
				names[m] = "__name__", vals[m++] = pt[n].name;
			if (wanted(r, "__profile_type__"))
				names[m] = "__profile_type__", vals[m++] = pt[n].id;
			for (uint32_t x = 0; x < l.v[i].nlabels; x++)
				if (wanted(r, l.v[i].labels[x].name))
					names[m] = l.v[i].labels[x].name,
					vals[m++] = l.v[i].labels[x].value;
			json_t *key = json_array();
			for (uint32_t x = 0; x < m; x++) {
				Types__V1__LabelPair *lp = &pairs[n * per + x];
				types__v1__label_pair__init(lp);
				lp->name = (char *)names[x];
				lp->value = (char *)vals[x];
				s->labels[x] = lp;
				json_array_append_new(key, json_string(names[x]));
				json_array_append_new(key, json_string(vals[x]));
			}
			s->n_labels = m;
			char *ks = json_dumps(key, JSON_COMPACT);
			json_decref(key);
			if (!ks || json_object_get(seen, ks)) {
				free(ks);
				continue;        /* a repeat: slot n is reused */
			}
			json_object_set_new(seen, ks, json_true());
			free(ks);
			ptrs[n] = s;
			n++;
		}
	}
	Querier__V1__SeriesResponse outm = QUERIER__V1__SERIES_RESPONSE__INIT;
	outm.n_labels_set = n;
	outm.labels_set = ptrs;
	reply_msg(c, &outm.base);
out:
	json_decref(seen);
	free(pt);
	free(sets);
	free(ptrs);
	free(pairs);
	free(pp);
	free(keep);
	hm_series_list_free(&l);
}

/* ---- flame graphs ---- */

/* The merged profile of (type id, label selector, range), with the flame
 * tree flags that give the selected value. */
static int select_profile(ctx *c, const char *type_id, const char *labels, int64_t start,
			  int64_t end, hm_profile **p, int *flags)
{
	hm_selector sel;
	int64_t t0, t1;
	range_of(c, start, end, &t0, &t1);
	if (!type_id || !*type_id)
		return hm_error(HM_EINVAL, "missing profile_typeID");
	int rc = selector_of(type_id, labels, &sel);
	if (rc < 0)
		return rc;
	rc = hm_store_select(c->st, &sel, t0, t1, p);
	if (rc == HM_OK) {
		*flags = HM_FT_BY_FUNCTION;
		/* a nanosecond view of data that only has counts shows the counts */
		if (sel.value_kind == HM_VALUE_NS && hm_profile_total_weight(*p) != 0)
			*flags |= HM_FT_WEIGHT;
	}
	hm_selector_free(&sel);
	return rc;
}

/* Flamebearer levels of a tree (slots: 1 single, 2 diff). */
typedef struct fb {
	size_t depth;            /* levels allocated */
	char **names;
	size_t nnames;
	Querier__V1__Level *levels;
	Querier__V1__Level **lptrs;
	size_t nlevels;
	int64_t max_self;
} fb;

static void fb_free(fb *f)
{
	for (size_t i = 0; f->levels && i < f->depth; i++)
		free(f->levels[i].values);
	free(f->levels);
	free(f->lptrs);
	free(f->names);
}

static int fb_build(const hm_flametree *t, int slots, int64_t max_nodes, fb *f)
{
	memset(f, 0, sizeof *f);
	uint32_t n = hm_flametree_nnodes(t), depth = hm_flametree_max_depth(t) + 1;
	unsigned char *keep = hm_flametree_keep_largest(t, max_nodes > 0 ? (uint64_t)max_nodes : 1);
	uint32_t *stk = malloc((n + 1) * sizeof *stk);
	int64_t *end = calloc(2 * (size_t)depth, sizeof *end);
	size_t *cnt = calloc(depth, sizeof *cnt);
	uint32_t *name_ix = malloc((n + 1) * sizeof *name_ix);   /* flametree str id -> name index */
	json_t *ix = json_object();
	f->names = malloc((n + 1) * sizeof *f->names);
	f->levels = calloc(depth, sizeof *f->levels);
	f->lptrs = calloc(depth, sizeof *f->lptrs);
	int rc = HM_OK;
	if (!keep || !stk || !end || !cnt || !name_ix || !ix || !f->names || !f->levels ||
	    !f->lptrs) {
		rc = hm_error(HM_ENOMEM, "out of memory");
		goto out;
	}
	f->nlevels = f->depth = depth;
	size_t per = slots == 2 ? 7 : 4;
	for (uint32_t i = 0; i < n; i++)
		if (keep[i])
			cnt[hm_flametree_node(t, i)->depth]++;
	for (uint32_t d = 0; d < depth; d++) {
		querier__v1__level__init(&f->levels[d]);
		f->levels[d].values = malloc((cnt[d] * per + 1) * sizeof(int64_t));
		if (!f->levels[d].values) {
			rc = hm_error(HM_ENOMEM, "out of memory");
			goto out;
		}
		f->lptrs[d] = &f->levels[d];
	}
	/* pre-order, children in their sorted order: x grows along each level */
	int64_t *xs = calloc(2 * ((size_t)n + 1), sizeof *xs);
	if (!xs) {
		rc = hm_error(HM_ENOMEM, "out of memory");
		goto out;
	}
	size_t sp = 0;
	stk[sp++] = 0;
	while (sp) {
		uint32_t id = stk[--sp];
		const hm_flame_node *nd = hm_flametree_node(t, id);
		const char *name = id ? hm_flametree_str(t, nd->name) : "total";
		json_t *k = json_object_get(ix, name);
		size_t ni;
		if (k) {
			ni = (size_t)json_integer_value(k);
		} else {
			ni = f->nnames;
			f->names[f->nnames++] = (char *)name;
			json_object_set_new(ix, name, json_integer((json_int_t)ni));
		}
		Querier__V1__Level *lv = &f->levels[nd->depth];
		int64_t *v = lv->values + lv->n_values;
		for (int s = 0; s < slots; s++) {
			int64_t *e = &end[2 * nd->depth + s];
			v[3 * s] = xs[2 * id + s] - *e;
			v[3 * s + 1] = nd->total[s];
			v[3 * s + 2] = nd->self[s];
			*e = xs[2 * id + s] + nd->total[s];
			if (nd->self[s] > f->max_self)
				f->max_self = nd->self[s];
		}
		v[per - 1] = (int64_t)ni;
		lv->n_values += per;
		uint32_t nc;
		const uint32_t *ch = hm_flametree_children(t, id, &nc);
		int64_t x[2] = {xs[2 * id], xs[2 * id + 1]};
		size_t first = sp;
		for (uint32_t i = 0; i < nc; i++) {
			const hm_flame_node *cn = hm_flametree_node(t, ch[i]);
			if (keep[ch[i]]) {
				xs[2 * ch[i]] = x[0];
				xs[2 * ch[i] + 1] = x[1];
				stk[sp++] = ch[i];
			}
			x[0] += cn->total[0];
			x[1] += cn->total[1];
		}
		for (size_t a = first, b = sp ? sp - 1 : 0; sp > first && a < b; a++, b--) {
			uint32_t tmp = stk[a];
			stk[a] = stk[b];
			stk[b] = tmp;
		}
	}
	free(xs);
	while (f->nlevels > 1 && !f->levels[f->nlevels - 1].n_values)
		f->nlevels--;          /* levels below the kept nodes */
out:
	(void)name_ix;
	free(name_ix);
	json_decref(ix);
	free(keep);
	free(stk);
	free(end);
	free(cnt);
	if (rc < 0)
		fb_free(f);
	return rc;
}

/* Reply the flame graph of p (rc: how its selection went) as a
 * SelectMergeStacktraces or, with span, a SelectMergeSpanProfile answer. */
static void reply_flame(ctx *c, int rc, const hm_profile *p, int fl, int64_t max_nodes, int span)
{
	hm_flametree *t = rc == HM_OK ? hm_flametree_build(p, fl, NULL, NULL) : NULL;
	if (rc == HM_OK && !t)
		rc = hm_error(HM_ENOMEM, "out of memory");
	fb f;
	if (rc == HM_OK)
		rc = fb_build(t, 1, max_nodes > 0 ? max_nodes : DEFAULT_MAX_NODES, &f);
	if (rc < 0) {
		fail(c, rc);
	} else {
		Querier__V1__FlameGraph g = QUERIER__V1__FLAME_GRAPH__INIT;
		g.n_names = f.nnames;
		g.names = f.names;
		g.n_levels = f.nlevels;
		g.levels = f.lptrs;
		g.total = hm_flametree_node(t, 0)->total[0];
		g.max_self = f.max_self;
		Querier__V1__SelectMergeStacktracesResponse out =
			QUERIER__V1__SELECT_MERGE_STACKTRACES_RESPONSE__INIT;
		Querier__V1__SelectMergeSpanProfileResponse sout =
			QUERIER__V1__SELECT_MERGE_SPAN_PROFILE_RESPONSE__INIT;
		out.flamegraph = sout.flamegraph = &g;
		reply_msg(c, span ? &sout.base : &out.base);
		fb_free(&f);
	}
	hm_flametree_free(t);
}

static void do_merge_stacktraces(ctx *c, ProtobufCMessage *in)
{
	const Querier__V1__SelectMergeStacktracesRequest *r = (void *)in;
	hm_profile *p = NULL;
	int fl = 0;
	int rc = select_profile(c, r->profile_typeid, r->label_selector, r->start, r->end, &p, &fl);
	reply_flame(c, rc, p, fl, r->max_nodes, 0);
	hm_profile_free(p);
}

static void do_diff(ctx *c, ProtobufCMessage *in)
{
	const Querier__V1__DiffRequest *r = (void *)in;
	if (!r->left || !r->right)
		return connect_err(c->rs, 400, "invalid_argument", "Diff needs left and right");
	hm_profile *pl = NULL, *pr = NULL;
	int fl = 0, fr = 0;
	int rc = select_profile(c, r->left->profile_typeid, r->left->label_selector,
				r->left->start, r->left->end, &pl, &fl);
	if (rc == HM_OK)
		rc = select_profile(c, r->right->profile_typeid, r->right->label_selector,
				    r->right->start, r->right->end, &pr, &fr);
	hm_flametree *t = rc == HM_OK ? hm_flametree_new() : NULL;
	if (rc == HM_OK && !t)
		rc = hm_error(HM_ENOMEM, "out of memory");
	if (rc == HM_OK)
		rc = hm_flametree_add(t, pl, 0, fl, NULL, NULL);
	if (rc == HM_OK)
		rc = hm_flametree_add(t, pr, 1, (fr & ~HM_FT_WEIGHT) | (fl & HM_FT_WEIGHT), NULL,
				      NULL);
	int64_t mn = r->left->max_nodes > 0 ? r->left->max_nodes : DEFAULT_MAX_NODES;
	fb f;
	if (rc == HM_OK)
		rc = fb_build(t, 2, mn, &f);
	if (rc < 0) {
		fail(c, rc);
	} else {
		const hm_flame_node *root = hm_flametree_node(t, 0);
		Querier__V1__FlameGraphDiff g = QUERIER__V1__FLAME_GRAPH_DIFF__INIT;
		g.n_names = f.nnames;
		g.names = f.names;
		g.n_levels = f.nlevels;
		g.levels = f.lptrs;
		g.leftticks = root->total[0];
		g.rightticks = root->total[1];
		g.total = root->total[0] + root->total[1];
		g.max_self = f.max_self;
		Querier__V1__DiffResponse out = QUERIER__V1__DIFF_RESPONSE__INIT;
		out.flamegraph = &g;
		reply_msg(c, &out.base);
		fb_free(&f);
	}
	hm_flametree_free(t);
	hm_profile_free(pl);
	hm_profile_free(pr);
}

/* A string appended to an unpacked pprof's table; its index or -1. */
static int64_t add_str(Perftools__Profiles__Profile *m, const char *str)
{
	char **t = realloc(m->string_table, (m->n_string_table + 1) * sizeof *t);
	if (!t)
		return -1;
	m->string_table = t;
	if (!(t[m->n_string_table] = strdup(str)))
		return -1;
	return (int64_t)m->n_string_table++;
}

/* homura's pprof says samples:count + cpu (or wall):nanoseconds; a
 * five-part type (memory, ...) holds one value: say which, in its unit. */
static int retype(Perftools__Profiles__Profile *m, const char *type_id)
{
	char st[HM_STORE_MAX_NAME + 1];
	int vk;
	hm_ptype ids[2];
	if (hm_ptype_from_id(type_id, strlen(type_id), st, sizeof st, &vk) < 0 ||
	    hm_ptype_ids(st, ids) != 1 || m->n_sample_type != 2 || !m->period_type)
		return HM_OK;
	int64_t ty = add_str(m, ids[0].sample_type), un = add_str(m, ids[0].sample_unit);
	int64_t pt = add_str(m, ids[0].period_type), pu = add_str(m, ids[0].period_unit);
	if (ty < 0 || un < 0 || pt < 0 || pu < 0)
		return HM_ENOMEM;
	perftools__profiles__value_type__free_unpacked(m->sample_type[1], NULL);
	m->n_sample_type = 1;
	m->sample_type[0]->type = ty;
	m->sample_type[0]->unit = un;
	m->period_type->type = pt;
	m->period_type->unit = pu;
	for (size_t i = 0; i < m->n_sample; i++)
		if (m->sample[i]->n_value == 2) {
			m->sample[i]->value[0] = m->sample[i]->value[1];
			m->sample[i]->n_value = 1;
		}
	return HM_OK;
}

static void do_merge_profile(ctx *c, ProtobufCMessage *in)
{
	const Querier__V1__SelectMergeProfileRequest *r = (void *)in;
	hm_profile *p = NULL;
	int fl = 0;
	int rc = select_profile(c, r->profile_typeid, r->label_selector, r->start, r->end, &p, &fl);
	unsigned char *buf = NULL;
	size_t len = 0;
	if (rc == HM_OK)
		rc = hm_encode_pprof(p, 0, &buf, &len);
	hm_profile_free(p);
	if (rc < 0)
		return fail(c, rc);
	Perftools__Profiles__Profile *m = perftools__profiles__profile__unpack(NULL, len, buf);
	free(buf);
	if (!m)
		return connect_err(c->rs, 500, "internal", "pprof encoding failed");
	if (retype(m, r->profile_typeid) < 0)
		connect_err(c->rs, 503, "unavailable", "out of memory");
	else
		reply_msg(c, &m->base);
	perftools__profiles__profile__free_unpacked(m, NULL);
}

/* ---- time series ---- */

typedef struct group {
	const hm_series_info *first;   /* its labels give the group's values */
	int64_t *ids;
	size_t n;
	int64_t *vals;
	int64_t sum;
} group;

#define MAX_GROUP_POINTS (1u << 22)     /* SelectSeries values over all groups */

static __thread const hm_series_list *sort_list;
static int by_series_id(const void *a, const void *b)
{
	int64_t x = sort_list->v[*(const size_t *)a].id, y = sort_list->v[*(const size_t *)b].id;
	return x < y ? -1 : x > y;
}

static int group_cmp_total(const void *a, const void *b)
{
	const group *x = a, *y = b;
	return x->sum != y->sum ? (x->sum > y->sum ? -1 : 1) : 0;
}

static void do_select_series(ctx *c, ProtobufCMessage *in)
{
	const Querier__V1__SelectSeriesRequest *r = (void *)in;
	hm_selector sel;
	int64_t from, t1;
	range_of(c, r->start, r->end, &from, &t1);
	if (!r->profile_typeid || !*r->profile_typeid)
		return connect_err(c->rs, 400, "invalid_argument", "missing profile_typeID");
	if (r->n_group_by > HM_STORE_MAX_LABELS)
		return connect_err(c->rs, 400, "invalid_argument", "too many group_by labels");
	int rc = selector_of(r->profile_typeid, r->label_selector, &sel);
	if (rc < 0)
		return fail(c, rc);
	int64_t step = r->step >= 1 && r->step < 1e12 ? (int64_t)r->step : 0;
	if (step <= 0)
		step = (t1 - from) / 100 > HM_STORE_BUCKET_S ? (t1 - from) / 100 : HM_STORE_BUCKET_S;
	if ((t1 - from) / step >= MAX_POINTS)
		step = (t1 - from) / MAX_POINTS + 1;
	int64_t t0 = from - from % step;
	size_t nout = (size_t)((t1 - t0 + step - 1) / step);
	int64_t *ids = NULL;
	size_t nids = 0;
	hm_series_list l = {0};
	group *g = NULL;
	size_t ng = 0;
	rc = hm_store_match(c->st, &sel, t0, t1, &ids, &nids);
	if (rc == HM_OK)
		rc = hm_store_series(c->st, &l);
	if (rc == HM_OK && !(g = calloc(nids + 1, sizeof *g)))
		rc = hm_error(HM_ENOMEM, "out of memory");
	/* group the matched series by their group_by values: each id's series
	 * by binary search in the list (sorted by id), its group by interning
	 * the values; then one flat array of ids, group after group */
	size_t *byid = rc == HM_OK ? malloc((l.n + 1) * sizeof *byid) : NULL;
	uint32_t *gof = rc == HM_OK ? malloc((nids + 1) * sizeof *gof) : NULL;
	int64_t *flat = rc == HM_OK ? malloc((nids + 1) * sizeof *flat) : NULL;
	hm_intern keys;
	hm_intern_init(&keys);
	if (rc == HM_OK && (!byid || !gof || !flat))
		rc = hm_error(HM_ENOMEM, "out of memory");
	for (size_t i = 0; rc == HM_OK && i < l.n; i++)
		byid[i] = i;
	if (rc == HM_OK) {
		sort_list = &l;
		qsort(byid, l.n, sizeof *byid, by_series_id);
	}
	for (size_t i = 0; rc == HM_OK && i < nids; i++) {
		size_t lo = 0, hi = l.n;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (l.v[byid[mid]].id < ids[i])
				lo = mid + 1;
			else
				hi = mid;
		}
		gof[i] = UINT32_MAX;
		if (lo == l.n || l.v[byid[lo]].id != ids[i])
			continue;             /* gone since the match */
		const hm_series_info *s = &l.v[byid[lo]];
		char key[HM_STORE_MAX_LABELS * (HM_STORE_MAX_VALUE + 2)];
		size_t kl = 0;
		for (size_t k = 0; k < r->n_group_by; k++) {
			const char *v = hm_series_label(s, r->group_by[k]);
			size_t vl = v ? strlen(v) : 0;
			key[kl++] = v ? 1 : 0;        /* absent differs from "" */
			memcpy(key + kl, v ? v : "", vl + 1);
			kl += vl + 1;
		}
		int added;
		uint32_t gi = hm_intern_put(&keys, key, (uint32_t)kl, &added);
		if (gi == UINT32_MAX) {
			rc = hm_error(HM_ENOMEM, "out of memory");
			break;
		}
		if (added)
			g[ng++].first = s;
		gof[i] = gi;
		g[gi].n++;
	}
	/* group after group in one array */
	size_t at = 0;
	for (size_t i = 0; rc == HM_OK && i < ng; i++) {
		g[i].ids = flat + at;
		at += g[i].n;
		g[i].n = 0;
	}
	for (size_t i = 0; rc == HM_OK && i < nids; i++)
		if (gof[i] != UINT32_MAX)
			g[gof[i]].ids[g[gof[i]].n++] = ids[i];
	hm_intern_free(&keys);
	free(byid);
	free(gof);
	/* at most MAX_GROUP_POINTS values in all: a wider step past it */
	if (rc == HM_OK && ng && (uint64_t)ng * nout > MAX_GROUP_POINTS) {
		step = (int64_t)(((uint64_t)(t1 - from) * ng) / MAX_GROUP_POINTS) + 1;
		t0 = from - from % step;
		nout = (size_t)((t1 - t0 + step - 1) / step);
	}
	for (size_t i = 0; rc == HM_OK && i < ng; i++) {
		if (!(g[i].vals = calloc(nout + 1, sizeof *g[i].vals))) {
			rc = hm_error(HM_ENOMEM, "out of memory");
			break;
		}
		rc = hm_store_totals(c->st, g[i].ids, g[i].n, t0, t1, step, sel.value_kind,
				     g[i].vals, nout);
		for (size_t k = 0; k < nout; k++)
			g[i].sum += g[i].vals[k];
	}
	if (rc < 0) {
		fail(c, rc);
		goto out;
	}
	qsort(g, ng, sizeof *g, group_cmp_total);
	if (r->limit > 0 && (size_t)r->limit < ng)
		ng = (size_t)r->limit;
	size_t npts = 0;
	for (size_t i = 0; i < ng; i++)
		for (size_t k = 0; k < nout; k++)
			npts += g[i].vals[k] != 0;
	Types__V1__Series *ser = calloc(ng + 1, sizeof *ser);
	Types__V1__Series **sp = calloc(ng + 1, sizeof *sp);
	Types__V1__Point *pts = calloc(npts + 1, sizeof *pts);
	Types__V1__Point **pp = calloc(npts + 1, sizeof *pp);
	Types__V1__LabelPair *lp = calloc(ng * r->n_group_by + 1, sizeof *lp);
	Types__V1__LabelPair **lpp = calloc(ng * r->n_group_by + 1, sizeof *lpp);
	if (!ser || !sp || !pts || !pp || !lp || !lpp) {
		connect_err(c->rs, 503, "unavailable", "out of memory");
	} else {
		size_t at = 0, la = 0;
		for (size_t i = 0; i < ng; i++) {
			types__v1__series__init(&ser[i]);
			sp[i] = &ser[i];
			ser[i].labels = &lpp[la];
			for (size_t k = 0; k < r->n_group_by; k++) {
				const char *v = hm_series_label(g[i].first, r->group_by[k]);
				if (!v)
					continue;
				types__v1__label_pair__init(&lp[la]);
				lp[la].name = r->group_by[k];
				lp[la].value = (char *)v;
				lpp[la] = &lp[la];
				la++;
				ser[i].n_labels++;
			}
			ser[i].points = &pp[at];
			for (size_t k = 0; k < nout; k++) {
				if (!g[i].vals[k])
					continue;
				types__v1__point__init(&pts[at]);
				pts[at].value = (double)g[i].vals[k];
				pts[at].timestamp = (t0 + (int64_t)k * step) * 1000;
				pp[at] = &pts[at];
				at++;
				ser[i].n_points++;
			}
		}
		Querier__V1__SelectSeriesResponse out = QUERIER__V1__SELECT_SERIES_RESPONSE__INIT;
		out.n_series = ng;
		out.series = sp;
		reply_msg(c, &out.base);
	}
	free(ser);
	free(sp);
	free(pts);
	free(pp);
	free(lp);
	free(lpp);
out:
	for (size_t i = 0; g && i < nids; i++)
		free(g[i].vals);
	free(g);
	free(flat);
	free(ids);
	hm_series_list_free(&l);
	hm_selector_free(&sel);
}

static void do_profile_stats(ctx *c, ProtobufCMessage *in)
{
	hm_series_list l;
	int rc = hm_store_series(c->st, &l);
	if (rc < 0)
		return fail(c, rc);
	Types__V1__GetProfileStatsResponse out = TYPES__V1__GET_PROFILE_STATS_RESPONSE__INIT;
	for (size_t i = 0; i < l.n; i++) {
		if (!out.data_ingested || l.v[i].first_s * 1000 < out.oldest_profile_time)
			out.oldest_profile_time = l.v[i].first_s * 1000;
		if (!out.data_ingested || l.v[i].last_s * 1000 > out.newest_profile_time)
			out.newest_profile_time = l.v[i].last_s * 1000;
		out.data_ingested = 1;
	}
	hm_series_list_free(&l);
	reply_msg(c, &out.base);
}

static void do_span_profile(ctx *c, ProtobufCMessage *in)
{
	const Querier__V1__SelectMergeSpanProfileRequest *r = (void *)in;
	if (r->format == QUERIER__V1__PROFILE_FORMAT__PROFILE_FORMAT_TREE)
		return connect_err(c->rs, 400, "invalid_argument",
				   "SelectMergeSpanProfile: homura answers format FLAMEGRAPH only");
	if (!r->profile_typeid || !*r->profile_typeid)
		return fail(c, hm_error(HM_EINVAL, "missing profile_typeID"));
	/* The type's span series: the same selector on <type>_spans. */
	hm_selector sel;
	int64_t t0, t1;
	range_of(c, r->start, r->end, &t0, &t1);
	int rc = selector_of(r->profile_typeid, r->label_selector, &sel);
	if (rc < 0)
		return fail(c, rc);
	if (!sel.type) {
		hm_selector_free(&sel);
		return fail(c, hm_error(HM_EINVAL, "missing profile type"));
	}
	size_t tl = strlen(sel.type) + sizeof HM_SPAN_TYPE_SUFFIX;
	char *st = tl <= HM_STORE_MAX_NAME + 1 ? malloc(tl) : NULL;
	if (!st) {
		hm_selector_free(&sel);
		return fail(c, hm_error(tl > HM_STORE_MAX_NAME + 1 ? HM_EINVAL : HM_ENOMEM,
					"profile type name too long"));
	}
	snprintf(st, tl, "%s%s", sel.type, HM_SPAN_TYPE_SUFFIX);
	free(sel.type);
	sel.type = st;
	hm_profile *all = NULL, *p = NULL;
	rc = hm_store_select(c->st, &sel, t0, t1, &all);
	if (rc == HM_OK)
		rc = hm_span_select(all, r->span_selector, r->n_span_selector, &p);
	hm_profile_free(all);
	int fl = HM_FT_BY_FUNCTION;
	if (rc == HM_OK && sel.value_kind == HM_VALUE_NS && hm_profile_total_weight(p) != 0)
		fl |= HM_FT_WEIGHT;
	hm_selector_free(&sel);
	reply_flame(c, rc, p, fl, r->max_nodes, 1);
	hm_profile_free(p);
}

/* ---- dispatch ---- */

static const struct method {
	const char *name;
	const ProtobufCMessageDescriptor *req;
	void (*fn)(ctx *c, ProtobufCMessage *in);
} methods[] = {
	{"ProfileTypes", &querier__v1__profile_types_request__descriptor, do_profile_types},
	{"LabelNames", &types__v1__label_names_request__descriptor, do_label_names},
	{"LabelValues", &types__v1__label_values_request__descriptor, do_label_values},
	{"Series", &querier__v1__series_request__descriptor, do_series},
	{"SelectMergeStacktraces", &querier__v1__select_merge_stacktraces_request__descriptor,
	 do_merge_stacktraces},
	{"SelectMergeSpanProfile", &querier__v1__select_merge_span_profile_request__descriptor,
	 do_span_profile},
	{"SelectMergeProfile", &querier__v1__select_merge_profile_request__descriptor,
	 do_merge_profile},
	{"SelectSeries", &querier__v1__select_series_request__descriptor, do_select_series},
	{"Diff", &querier__v1__diff_request__descriptor, do_diff},
	{"GetProfileStats", &types__v1__get_profile_stats_request__descriptor, do_profile_stats},
};

void hm_querier_handle(hm_store *st, const hm_http_req *rq, hm_http_resp *rs)
{
	const char *name = rq->path + strlen(PREFIX);
	const struct method *m = NULL;
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (!strcmp(name, methods[i].name))
			m = &methods[i];
	if (!m)
		return connect_err(rs, 404, "not_found", "no such method: %.64s", name);
	if (strcmp(rq->method, "POST"))
		return connect_err(rs, 405, "unimplemented", "use POST for %s", m->name);
	const char *ct = rq->content_type ? rq->content_type : "";
	ctx c = {st, rq, rs, 0};
	if (!strncasecmp(ct, "application/json", 16))
		c.json = 1;
	else if (strncasecmp(ct, "application/proto", 17))
		return connect_err(rs, 415, "unknown", "Content-Type must be application/proto or "
				   "application/json, not '%.64s'", ct);
	const unsigned char *buf = rq->body;
	size_t len = rq->body_len;
	unsigned char *owned = NULL;
	const char *ce = rq->content_encoding;
	if (ce && *ce && strcasecmp(ce, "identity")) {
		if (strcasecmp(ce, "gzip"))
			return connect_err(rs, 501, "unimplemented", "unsupported encoding '%.32s'",
					   ce);
		if (hm_gunzip(buf, len, rq->max_body, &owned, &len) < 0)
			return connect_err(rs, 400, "invalid_argument", "%s", hm_errmsg());
		buf = owned;
	}
	ProtobufCMessage *in = NULL;
	int rc = HM_OK;
	if (c.json) {
		rc = len ? hm_json_check((const char *)buf, len, m->name) : HM_OK;
		json_error_t e;
		json_t *root = rc == HM_OK ? (len ? json_loadb((const char *)buf, len,
							      JSON_REJECT_DUPLICATES, &e)
						  : json_object()) : NULL;
		if (rc == HM_OK && !root)
			rc = hm_error(HM_EINVAL, "%s: bad JSON: %s", m->name, e.text);
		if (root) {
			in = hm_pb_from_json(m->req, root);
			json_decref(root);
			if (!in)
				rc = HM_EINVAL;
		}
	} else {
		rc = hm_pb_check(m->req, buf, len, m->name, 0);
		if (rc == HM_OK && !(in = protobuf_c_message_unpack(m->req, NULL, len, buf)))
			rc = hm_error(HM_EINVAL, "%s: not a valid %s message", m->name,
				      m->req->short_name);
	}
	free(owned);
	if (rc >= 0 && !in)
		rc = hm_error(HM_EINVAL, "%s: not a valid %s message", m->name, m->req->short_name);
	if (rc < 0) {
		if (in)
			protobuf_c_message_free_unpacked(in, NULL);
		return fail(&c, rc);
	}
	m->fn(&c, in);
	protobuf_c_message_free_unpacked(in, NULL);
}
