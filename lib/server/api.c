/* api.c - the read side of homura server: the JSON query API (docs/api.md).
 *
 * Each endpoint turns the request's selection (query=type{matchers} plus
 * optional service=, type=, label=k=v), range (from, until) and options into
 * store calls: series listings come from the store's in-memory series list;
 * flame graphs, top functions, diffs and downloads from a merged profile
 * (hm_store_select) run through the flame tree or the encoders. Flame trees
 * leave as flat pre-order node arrays (parent index per node), trimmed to
 * max_nodes by keeping the largest nodes and folding the rest of each
 * parent's children into one "other" child so no total is lost. The
 * Pyroscope-compatible /pyroscope/render answers in the flamebearer shape.
 * Query arguments that are not valid UTF-8 are refused (400): every answer
 * is JSON. */
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/parse.h"
#include "base/intern.h"
#include "base/textesc.h"
#include "format/codec.h"
#include "format/flametree.h"
#include "server/http.h"
#include "server/ptype.h"
#include "server/server.h"
#include "server/ui.h"
#include "server/spans.h"

#define DEFAULT_MAX_NODES 2048
#define MAX_POINTS 20000

static void reply_json(hm_http_resp *rs, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s) {
		hm_http_error(rs, 500, "out of memory");
		return;
	}
	free(rs->body);
	rs->status = 200;
	rs->content_type = "application/json";
	rs->body = (unsigned char *)s;
	rs->len = strlen(s);
}

/* Store errors: bad input is the client's (400), the rest ours. */
static void reply_err(hm_http_resp *rs, int rc)
{
	hm_http_error(rs, rc == HM_EINVAL ? 400 : 500, "%s", hm_errmsg());
}

/* ---- request parsing ---- */

typedef struct query {
	hm_selector sel;
	int64_t from, until;
} query;

static int pick_default_type(hm_store *st, hm_selector *sel)
{
	hm_series_list l;
	int rc = hm_store_series(st, &l);
	if (rc < 0)
		return rc;
	const char *best = NULL;
	for (size_t i = 0; i < l.n; i++) {
		int hit = hm_selector_match(sel, &l.v[i]);
		if (hit < 0) {
			hm_series_list_free(&l);
			return hit;
		}
		if (!hit)
			continue;
		if (!best || !strcmp(l.v[i].type, "process_cpu") ||
		    (strcmp(best, "process_cpu") && strcmp(l.v[i].type, best) < 0))
			best = l.v[i].type;
	}
	sel->type = strdup(best ? best : "process_cpu");
	hm_series_list_free(&l);
	return sel->type ? HM_OK : hm_error(HM_ENOMEM, "out of memory");
}

/* Selection from the argument named qname (plus service/type/label). */
static int parse_selection(hm_store *st, const hm_http_req *rq, const char *qname,
			   hm_selector *sel)
{
	const char *q = hm_http_arg(rq, qname);
	int rc = hm_selector_parse(q ? q : "", sel);
	if (rc < 0)
		return rc;
	if ((rc = hm_ptype_fix_selector(q, sel)) < 0)
		goto fail;
	const char *type = hm_http_arg(rq, "type");
	if (!type)
		type = hm_http_arg(rq, "profile_type");
	if (type && !sel->type) {
		hm_selector t;
		if ((rc = hm_selector_parse(type, &t)) < 0)
			goto fail;
		if ((rc = hm_ptype_fix_selector(type, &t)) < 0) {
			hm_selector_free(&t);
			goto fail;
		}
		sel->type = t.type;
		sel->value_kind = t.value_kind;
		t.type = NULL;
		hm_selector_free(&t);
	}
	const char *svc = hm_http_arg(rq, "service");
	if (svc && (rc = hm_selector_add(sel, "service_name", HM_MATCH_EQ, svc)) < 0)
		goto fail;
	for (size_t i = 0; i < rq->nargs; i++) {
		if (strcmp(rq->arg_k[i], "label"))
			continue;
		const char *v = rq->arg_v[i], *op = strpbrk(v, "=!");
		if (!op || op == v) {
			rc = hm_error(HM_EINVAL, "label filter '%.64s' is not name=value", v);
			goto fail;
		}
		char name[HM_STORE_MAX_NAME + 1];
		size_t nl = (size_t)(op - v);
		if (nl > HM_STORE_MAX_NAME) {
			rc = hm_error(HM_EINVAL, "label name too long");
			goto fail;
		}
		memcpy(name, v, nl);
		name[nl] = 0;
		int mop = HM_MATCH_EQ;
		if (!strncmp(op, "!=", 2))
			mop = HM_MATCH_NE, op += 2;
		else if (!strncmp(op, "=~", 2))
			mop = HM_MATCH_RE, op += 2;
		else if (!strncmp(op, "!~", 2))
			mop = HM_MATCH_NRE, op += 2;
		else if (*op == '=')
			op += 1;
		else {
			rc = hm_error(HM_EINVAL, "label filter '%.64s' is not name=value", v);
			goto fail;
		}
		if ((rc = hm_selector_add(sel, name, mop, op)) < 0)
			goto fail;
	}
	if (!sel->type && (rc = pick_default_type(st, sel)) < 0)
		goto fail;
	return HM_OK;
fail:
	hm_selector_free(sel);
	return rc;
}

static int parse_range(const hm_http_req *rq, int64_t *from, int64_t *until)
{
	const char *f = hm_http_arg(rq, "from"), *u = hm_http_arg(rq, "until");
	if (!u)
		u = hm_http_arg(rq, "to");
	*from = rq->now_s - 3600;
	*until = rq->now_s;
	if (f && hm_parse_time(f, rq->now_s, from) < 0)
		return HM_EINVAL;
	if (u && hm_parse_time(u, rq->now_s, until) < 0)
		return HM_EINVAL;
	if (*until <= *from)
		return hm_error(HM_EINVAL, "'until' must be after 'from'");
	/* Times have one-second resolution and the store's ranges exclude
	 * their end: count the `until` second itself, so that what was
	 * ingested this second is in a query "until now". */
	*until += 1;
	return HM_OK;
}

static int parse_query(hm_store *st, const hm_http_req *rq, const char *qname, query *q)
{
	memset(q, 0, sizeof *q);
	int rc = parse_range(rq, &q->from, &q->until);
	if (rc == HM_OK)
		rc = parse_selection(st, rq, qname, &q->sel);
	return rc;
}

static int arg_uint(const hm_http_req *rq, const char *name, long long def, long long max,
		    long long *out)
{
	const char *v = hm_http_arg(rq, name);
	*out = def;
	if (!v)
		return HM_OK;
	char *end;
	long long x = strtoll(v, &end, 10);
	if (end == v || *end || x < 0 || x > max)
		return hm_error(HM_EINVAL, "bad '%s' value '%.32s'", name, v);
	*out = x;
	return HM_OK;
}

static json_t *labels_json(const hm_series_info *s)
{
	json_t *o = json_object();
	for (uint32_t i = 0; i < s->nlabels; i++)
		json_object_set_new(o, s->labels[i].name, json_string(s->labels[i].value));
	return o;
}

/* ---- listings ---- */

static int by_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted unique strings into a JSON array. */
static json_t *unique_sorted(const char **v, size_t n)
{
	qsort(v, n, sizeof *v, by_str);
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		if (!i || strcmp(v[i], v[i - 1]))
			json_array_append_new(a, json_string(v[i]));
	return a;
}

/* Series matching the optional selection/range (all when none given). */
static int matching_series(hm_store *st, const hm_http_req *rq, hm_series_list *l,
			   unsigned char **keep)
{
	int filtered = hm_http_arg(rq, "query") || hm_http_arg(rq, "service") ||
		       hm_http_arg(rq, "from") || hm_http_arg(rq, "label");
	query q;
	memset(&q, 0, sizeof q);
	int rc = HM_OK;
	if (filtered) {
		if ((rc = parse_range(rq, &q.from, &q.until)) < 0)
			return rc;
		const char *qs = hm_http_arg(rq, "query");
		if ((rc = hm_selector_parse(qs ? qs : "", &q.sel)) < 0)
			return rc;
		if ((rc = hm_ptype_fix_selector(qs, &q.sel)) < 0) {
			hm_selector_free(&q.sel);
			return rc;
		}
		const char *svc = hm_http_arg(rq, "service");
		if (svc && (rc = hm_selector_add(&q.sel, "service_name", HM_MATCH_EQ, svc)) < 0) {
			hm_selector_free(&q.sel);
			return rc;
		}
	}
	if ((rc = hm_store_series(st, l)) < 0) {
		hm_selector_free(&q.sel);
		return rc;
	}
	*keep = calloc(l->n + 1, 1);
	for (size_t i = 0; *keep && i < l->n; i++) {
		int hit = !filtered ? 1 : hm_selector_match(&q.sel, &l->v[i]);
		if (hit < 0) {
			hm_selector_free(&q.sel);
			free(*keep);
			*keep = NULL;
			hm_series_list_free(l);
			return hit;
		}
		(*keep)[i] = hit && (!filtered ||
				     (l->v[i].last_s + HM_STORE_COARSE_S > q.from &&
				      l->v[i].first_s < q.until));
	}
	hm_selector_free(&q.sel);
	if (!*keep) {
		hm_series_list_free(l);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	return HM_OK;
}

static void api_services(hm_store *st, const hm_http_req *rq, hm_http_resp *rs)
{
	hm_series_list l;
	unsigned char *keep;
	int rc = matching_series(st, rq, &l, &keep);
	if (rc < 0) {
		reply_err(rs, rc);
		return;
	}
	json_t *svcs = json_object();
	for (size_t i = 0; i < l.n; i++) {
		if (!keep[i])
			continue;
		const hm_series_info *s = &l.v[i];
		const char *name = hm_series_label(s, "service_name");
		if (!name)
			name = "";
		json_t *o = json_object_get(svcs, name);
		if (!o) {
			o = json_pack("{s:s, s:o, s:I, s:I, s:I}", "name", name, "profile_types",
				      json_array(), "series", (json_int_t)0, "first",
				      (json_int_t)s->first_s, "last", (json_int_t)s->last_s);
			json_object_set_new(svcs, name, o);
		}
		json_t *types = json_object_get(o, "profile_types");
		size_t k;
		json_t *t;
		int have = 0;
		json_array_foreach(types, k, t)
			have |= !strcmp(json_string_value(t), s->type);
		if (!have)
			json_array_append_new(types, json_string(s->type));
		json_object_set_new(o, "series",
				    json_integer(json_integer_value(json_object_get(o, "series")) + 1));
		if (s->first_s < json_integer_value(json_object_get(o, "first")))
			json_object_set_new(o, "first", json_integer(s->first_s));
		if (s->last_s > json_integer_value(json_object_get(o, "last")))
			json_object_set_new(o, "last", json_integer(s->last_s));
	}
	json_t *arr = json_array();
	const char *key;
	json_t *val;
	json_object_foreach(svcs, key, val)
		json_array_append(arr, val);
	json_decref(svcs);
	free(keep);
	hm_series_list_free(&l);
	reply_json(rs, json_pack("{s:o}", "services", arr));
}

static json_t *type_ids(const char *type)
{
	hm_ptype v[2];
	int n = hm_ptype_ids(type, v);
	json_t *a = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", v[i].id,
						   "name", v[i].name, "sample_type", v[i].sample_type,
						   "sample_unit", v[i].sample_unit, "period_type",
						   v[i].period_type, "period_unit", v[i].period_unit));
	return a;
}

static void api_profile_types(hm_store *st, const hm_http_req *rq, hm_http_resp *rs)
{
	hm_series_list l;
	unsigned char *keep;
	int rc = matching_series(st, rq, &l, &keep);
	if (rc < 0) {
		reply_err(rs, rc);
		return;
	}
	const char **v = malloc((l.n + 1) * sizeof *v);
	size_t n = 0;
	for (size_t i = 0; v && i < l.n; i++)
		if (keep[i])
			v[n++] = l.v[i].type;
	json_t *types = v ? unique_sorted(v, n) : json_array();
	json_t *out = json_array();
	size_t k;
	json_t *t;
	json_array_foreach(types, k, t) {
		json_t *ids = type_ids(json_string_value(t));
		json_array_extend(out, ids);
		json_decref(ids);
	}
	json_decref(types);
	free(v);
	free(keep);
	hm_series_list_free(&l);
	reply_json(rs, json_pack("{s:o}", "profile_types", out));
}

static void api_labels(hm_store *st, const hm_http_req *rq, hm_http_resp *rs, int values)
{
	const char *name = values ? hm_http_arg(rq, "name") : NULL;
	if (values && !name)
		name = hm_http_arg(rq, "label");
	if (values && !name) {
		hm_http_error(rs, 400, "label_values needs name=");
		return;
	}
	hm_series_list l;
	unsigned char *keep;
	int rc = matching_series(st, rq, &l, &keep);
	if (rc < 0) {
		reply_err(rs, rc);
		return;
	}
	size_t cap = l.n * (values ? 1 : HM_STORE_MAX_LABELS) + 1;
	const char **v = malloc(cap * sizeof *v);
	size_t n = 0;
	for (size_t i = 0; v && i < l.n; i++) {
		if (!keep[i])
			continue;
		if (values) {
			const char *x = hm_series_label(&l.v[i], name);
			if (x)
				v[n++] = x;
		} else {
			for (uint32_t k = 0; k < l.v[i].nlabels; k++)
				v[n++] = l.v[i].labels[k].name;
		}
	}
	json_t *arr = v ? unique_sorted(v, n) : json_array();
	free(v);
	free(keep);
	hm_series_list_free(&l);
	if (values)
		reply_json(rs, json_pack("{s:s, s:o}", "name", name, "values", arr));
	else
		reply_json(rs, json_pack("{s:o}", "labels", arr));
}

static void api_series(hm_store *st, const hm_http_req *rq, hm_http_resp *rs)
{
	hm_series_list l;
	unsigned char *keep;
	int rc = matching_series(st, rq, &l, &keep);
	if (rc < 0) {
		reply_err(rs, rc);
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < l.n; i++)
		if (keep[i])
			json_array_append_new(arr, json_pack("{s:I, s:s, s:o, s:I, s:I}", "id",
				(json_int_t)l.v[i].id, "type", l.v[i].type, "labels",
				labels_json(&l.v[i]), "first", (json_int_t)l.v[i].first_s, "last",
				(json_int_t)l.v[i].last_s));
	free(keep);
	hm_series_list_free(&l);
	reply_json(rs, json_pack("{s:o}", "series", arr));
}

/* ---- time series ---- */

static int64_t pick_step(const hm_http_req *rq, int64_t from, int64_t until, int *err)
{
	long long step;
	*err = arg_uint(rq, "step", 0, 1LL << 40, &step);
	if (*err < 0)
		return 0;
	if (!step) {
		step = (until - from) / 300;
		step = step < HM_STORE_BUCKET_S ? HM_STORE_BUCKET_S :
		       (step + HM_STORE_BUCKET_S - 1) / HM_STORE_BUCKET_S * HM_STORE_BUCKET_S;
	}
	if ((until - from) / step >= MAX_POINTS) {
		*err = hm_error(HM_EINVAL, "too many points: raise 'step'");
		return 0;
	}
	return step;
}

/* The unit of a selection's values: a five-part type's own (bytes, ...),
 * else nanoseconds for weights and samples for counts. */
static const char *unit_name(const hm_selector *sel, int weight)
{
	static __thread hm_ptype ids[2];
	if (sel->type && hm_ptype_ids(sel->type, ids) == 1)
		return ids[0].sample_unit;
	return weight ? "nanoseconds" : "samples";
}

/* Pyroscope's flamebearer units: "bytes", "objects" or "samples". */
static const char *render_units(const hm_selector *sel)
{
	const char *u = unit_name(sel, 0);
	return !strcmp(u, "bytes") ? "bytes" :
	       !strcmp(u, "count") && !strncmp(sel->type, "memory.", 7) ? "objects" : "samples";
}

static const char *unit_of(const hm_selector *sel)
{
	return unit_name(sel, sel->value_kind != HM_VALUE_COUNT);
}

static void api_timeseries(hm_store *st, const hm_http_req *rq, hm_http_resp *rs)
{
	query q;
	int rc = parse_query(st, rq, "query", &q);
	int64_t step = rc < 0 ? 0 : pick_step(rq, q.from, q.until, &rc);
	if (rc < 0) {
		hm_selector_free(&q.sel);
		reply_err(rs, rc);
		return;
	}
	q.from -= q.from % step;     /* slots aligned to the step */
	size_t n = (size_t)((q.until - q.from + step - 1) / step);
	int64_t *v = calloc(n + 1, sizeof *v);
	rc = v ? hm_store_timeseries(st, &q.sel, q.from, q.until, step, v, n) :
		 hm_error(HM_ENOMEM, "out of memory");
	if (rc < 0) {
		free(v);
		hm_selector_free(&q.sel);
		reply_err(rs, rc);
		return;
	}
	json_t *ts = json_array(), *vals = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(ts, json_integer(q.from + (int64_t)i * step));
		json_array_append_new(vals, json_integer(v[i]));
	}
	reply_json(rs, json_pack("{s:s, s:I, s:I, s:I, s:s, s:o, s:o}", "type", q.sel.type,
				 "from", (json_int_t)q.from, "until", (json_int_t)q.until, "step",
				 (json_int_t)step, "unit", unit_of(&q.sel), "timestamps", ts,
				 "values", vals));
	free(v);
	hm_selector_free(&q.sel);
}

/* ---- flame trees ---- */

static int ft_flags(const hm_http_req *rq, const hm_selector *sel, const hm_profile *p)
{
	const char *by = hm_http_arg(rq, "by");
	int fl = by && !strcmp(by, "line") ? 0 : HM_FT_BY_FUNCTION;
	/* a nanosecond view of data that only has counts shows the counts */
	if (sel->value_kind == HM_VALUE_NS && (!p || hm_profile_total_weight(p) != 0))
		fl |= HM_FT_WEIGHT;
	return fl;
}

typedef struct trim {
	const hm_flametree *t;
	unsigned char *keep;
} trim;

typedef struct walk_ent {
	uint32_t node;           /* UINT32_MAX: an "other" node */
	uint32_t parent_out;
	uint32_t depth;
	int64_t x;
	int64_t total[2];
} walk_ent;

typedef void (*emit_fn)(void *ud, uint32_t out_id, const walk_ent *e, const char *name,
			const char *text, const int64_t total[2], const int64_t self[2]);

/* Pre-order walk of the kept tree with "other" folds; returns node count. */
static int walk_tree(const hm_flametree *t, const unsigned char *keep, int nslots, emit_fn emit,
		     void *ud)
{
	uint32_t n = hm_flametree_nnodes(t);
	walk_ent *stk = malloc((n + 2) * 2 * sizeof *stk);
	if (!stk)
		return hm_error(HM_ENOMEM, "out of memory");
	size_t sp = 0;
	uint32_t out = 0;
	stk[sp++] = (walk_ent){0, UINT32_MAX, 0, 0, {0, 0}};
	while (sp) {
		walk_ent e = stk[--sp];
		uint32_t me = out++;
		if (e.node == UINT32_MAX) {
			int64_t zero[2] = {e.total[0], e.total[1]};
			emit(ud, me, &e, "other", "other", e.total, zero);
			continue;
		}
		const hm_flame_node *nd = hm_flametree_node(t, e.node);
		int64_t tot[2] = {nd->total[0], nslots > 1 ? nd->total[1] : 0};
		int64_t self[2] = {nd->self[0], nslots > 1 ? nd->self[1] : 0};
		emit(ud, me, &e, e.node ? hm_flametree_str(t, nd->name) : "all",
		     e.node ? hm_flametree_str(t, nd->text) : "all", tot, self);
		uint32_t nc;
		const uint32_t *ch = hm_flametree_children(t, e.node, &nc);
		/* x of each kept child, then the "other" fold at the end */
		int64_t x = e.x, other[2] = {0, 0};
		size_t first = sp;
		for (uint32_t i = 0; i < nc; i++) {
			const hm_flame_node *c = hm_flametree_node(t, ch[i]);
			if (keep[ch[i]]) {
				stk[sp++] = (walk_ent){ch[i], me, e.depth + 1, x,
						       {c->total[0], c->total[1]}};
				x += c->total[0] + (nslots > 1 ? c->total[1] : 0);
			} else {
				other[0] += c->total[0];
				other[1] += nslots > 1 ? c->total[1] : 0;
			}
		}
		if (other[0] || other[1])
			stk[sp++] = (walk_ent){UINT32_MAX, me, e.depth + 1, x, {other[0], other[1]}};
		/* reverse so the first child is popped first */
		for (size_t a = first, b = sp - 1; sp > first && a < b; a++, b--) {
			walk_ent tmp = stk[a];
			stk[a] = stk[b];
			stk[b] = tmp;
		}
	}
	free(stk);
	return (int)out;
}

typedef struct nodes_out {
	json_t *arr;
	int diff;
} nodes_out;

static void emit_node(void *ud, uint32_t id, const walk_ent *e, const char *name,
		      const char *text, const int64_t total[2], const int64_t self[2])
{
	nodes_out *o = ud;
	json_t *n = json_pack("{s:I, s:I, s:I, s:s, s:s}", "id", (json_int_t)id, "parent",
			      (json_int_t)(e->parent_out == UINT32_MAX ? -1 : (int64_t)e->parent_out),
			      "depth", (json_int_t)e->depth, "name", name, "text", text);
	if (o->diff) {
		json_object_set_new(n, "base_total", json_integer(total[0]));
		json_object_set_new(n, "base_self", json_integer(self[0]));
		json_object_set_new(n, "total", json_integer(total[1]));
		json_object_set_new(n, "self", json_integer(self[1]));
	} else {
		json_object_set_new(n, "total", json_integer(total[0]));
		json_object_set_new(n, "self", json_integer(self[0]));
	}
	json_array_append_new(o->arr, n);
}

static int max_nodes_arg(const hm_http_req *rq, long long *mn)
{
	int rc = arg_uint(rq, "max_nodes", DEFAULT_MAX_NODES, 1000000, mn);
	if (rc == HM_OK && hm_http_arg(rq, "maxNodes"))
		rc = arg_uint(rq, "maxNodes", DEFAULT_MAX_NODES, 1000000, mn);
	if (*mn < 1)
		*mn = 1;
	return rc;
}

static void api_flamegraph(hm_store *st, const hm_http_req *rq, hm_http_resp *rs)
{
	query q;
	long long mn = 0;
	int rc = parse_query(st, rq, "query", &q);
	if (rc == HM_OK)
		rc = max_nodes_arg(rq, &mn);
	hm_profile *p = NULL;
	if (rc == HM_OK)
		rc = hm_store_select(st, &q.sel, q.from, q.until, &p);
	/* One trace or span of a span series (server/spans.h). */
	const char *tid = hm_http_arg(rq, "trace_id"), *sid = hm_http_arg(rq, "span_id");
	if (rc == HM_OK && (tid || sid)) {
		hm_profile *f = NULL;
		rc = hm_span_filter(p, tid, sid, &f);
		hm_profile_free(p);
		p = f;
	}
	if (rc < 0) {
		hm_profile_free(p);
		hm_selector_free(&q.sel);
		reply_err(rs, rc);
		return;
	}
	int fl = ft_flags(rq, &q.sel, p);
	hm_flametree *t = hm_flametree_build(p, fl, NULL, NULL);
	unsigned char *keep = t ? hm_flametree_keep_largest(t, (uint64_t)mn) : NULL;
	nodes_out o = {json_array(), 0};
	rc = keep ? walk_tree(t, keep, 1, emit_node, &o) : hm_error(HM_ENOMEM, "out of memory");
	if (rc >= 0)
		reply_json(rs, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:o}", "type", q.sel.type,
					 "unit", unit_name(&q.sel, fl & HM_FT_WEIGHT),
					 "from", (json_int_t)q.from, "until", (json_int_t)q.until,
					 "total", (json_int_t)hm_flametree_node(t, 0)->total[0],
					 "nodes_total", (json_int_t)hm_flametree_nnodes(t),
					 "nodes", o.arr));
	else {
		json_decref(o.arr);
		reply_err(rs, rc);
	}
	free(keep);
	hm_flametree_free(t);
	hm_profile_free(p);
	hm_selector_free(&q.sel);
}

/* /api/v1/traces?query=<span series>&function=NAME&limit=10: the traces
 * that spent the most time in a function (server/spans.h). */
static void api_traces(hm_store *st, const hm_http_req *rq, hm_http_resp *rs)
{
	query q;
	int rc = parse_query(st, rq, "query", &q);
	const char *fn = hm_http_arg(rq, "function"), *lim = hm_http_arg(rq, "limit");
	long long limit = 10;
	if (rc == HM_OK && lim) {
		char *end;
		limit = strtoll(lim, &end, 10);
		if (*end || limit < 1 || limit > 1000)
			rc = hm_error(HM_EINVAL, "limit is 1 to 1000");
	}
	hm_profile *p = NULL;
	if (rc == HM_OK)
		rc = hm_store_select(st, &q.sel, q.from, q.until, &p);
	hm_span_trace_total *top = rc == HM_OK ? calloc((size_t)limit, sizeof *top) : NULL;
	size_t n = 0;
	if (rc == HM_OK)
		rc = top ? hm_span_top_traces(p, fn, top, (size_t)limit, &n)
			 : hm_error(HM_ENOMEM, "out of memory");
	if (rc >= 0) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, json_pack("{s:s, s:I, s:I}", "trace_id", top[i].trace_id,
							     "samples", (json_int_t)top[i].count,
							     "nanoseconds", (json_int_t)top[i].weight_ns));
		reply_json(rs, json_pack("{s:s, s:s, s:o}", "type", q.sel.type ? q.sel.type : "",
					 "function", fn ? fn : "", "traces", arr));
	} else {
		reply_err(rs, rc);
	}
	free(top);
	hm_profile_free(p);
	hm_selector_free(&q.sel);
}

static void api_diff(hm_store *st, const hm_http_req *rq, hm_http_resp *rs)
{
	query a, b;
	long long mn = 0;
	memset(&b, 0, sizeof b);
	int rc = parse_query(st, rq, "baseline", &a);
	if (rc == HM_OK)
		rc = parse_query(st, rq, "comparison", &b);
	if (rc == HM_OK && (!hm_http_arg(rq, "baseline") || !hm_http_arg(rq, "comparison")))
		rc = hm_error(HM_EINVAL, "diff needs baseline= and comparison= selections");
	if (rc == HM_OK)
		rc = max_nodes_arg(rq, &mn);
	hm_profile *pa = NULL, *pb = NULL;
	if (rc == HM_OK)
		rc = hm_store_select(st, &a.sel, a.from, a.until, &pa);
	if (rc == HM_OK)
		rc = hm_store_select(st, &b.sel, b.from, b.until, &pb);
	hm_flametree *t = NULL;
	int fl = 0;
	if (rc == HM_OK) {
		fl = ft_flags(rq, &b.sel, pb) & ft_flags(rq, &a.sel, pa);
		t = hm_flametree_new();
		rc = t ? hm_flametree_add(t, pa, 0, fl, NULL, NULL) : hm_error(HM_ENOMEM, "oom");
		if (rc == HM_OK)
			rc = hm_flametree_add(t, pb, 1, fl, NULL, NULL);
	}
	unsigned char *keep = rc == HM_OK ? hm_flametree_keep_largest(t, (uint64_t)mn) : NULL;
	nodes_out o = {json_array(), 1};
	if (rc == HM_OK)
		rc = keep ? walk_tree(t, keep, 2, emit_node, &o) : hm_error(HM_ENOMEM, "oom");
	if (rc >= 0)
		reply_json(rs, json_pack("{s:s, s:I, s:I, s:o}", "unit",
					 unit_name(&b.sel, fl & HM_FT_WEIGHT),
					 "base_total", (json_int_t)hm_flametree_node(t, 0)->total[0],
					 "total", (json_int_t)hm_flametree_node(t, 0)->total[1],
					 "nodes", o.arr));
	else {
		json_decref(o.arr);
		reply_err(rs, rc);
	}
	free(keep);
	hm_flametree_free(t);
	hm_profile_free(pa);
	hm_profile_free(pb);
	hm_selector_free(&a.sel);
	hm_selector_free(&b.sel);
}

/* ---- top functions ---- */

typedef struct fn_stat {
	uint32_t name, file;     /* profile string ids */
	int64_t self, total;
	size_t seen;             /* last sample that counted its total */
} fn_stat;

static int by_self(const void *a, const void *b)
{
	const fn_stat *x = a, *y = b;
	return x->self != y->self ? (x->self > y->self ? -1 : 1) :
	       x->total != y->total ? (x->total > y->total ? -1 : 1) : 0;
}

static int by_total(const void *a, const void *b)
{
	const fn_stat *x = a, *y = b;
	return x->total != y->total ? (x->total > y->total ? -1 : 1) : by_self(a, b);
}

static void api_top(hm_store *st, const hm_http_req *rq, hm_http_resp *rs)
{
	query q;
	long long limit = 0;
	int rc = parse_query(st, rq, "query", &q);
	if (rc == HM_OK)
		rc = arg_uint(rq, "limit", 100, 100000, &limit);
	hm_profile *p = NULL;
	if (rc == HM_OK)
		rc = hm_store_select(st, &q.sel, q.from, q.until, &p);
	if (rc < 0) {
		hm_selector_free(&q.sel);
		reply_err(rs, rc);
		return;
	}
	int weight = ft_flags(rq, &q.sel, p) & HM_FT_WEIGHT;
	hm_intern keys;
	hm_intern_init(&keys);
	fn_stat *fs = NULL;
	size_t cap = 0;
	int64_t grand = 0;
	for (size_t i = 0; rc == HM_OK && i < hm_profile_nsamples(p); i++) {
		const hm_sample *s = hm_profile_sample(p, i);
		int64_t v = weight ? s->weight_ns : s->count;
		grand += v;
		uint32_t n;
		const uint32_t *fr = hm_profile_stack(p, s->stack, &n);
		for (uint32_t k = 0; k < n; k++) {
			const hm_frame *f = hm_profile_frame(p, fr[k]);
			uint32_t key[2] = {f->name, f->file};
			int added;
			uint32_t id = hm_intern_put(&keys, key, sizeof key, &added);
			if (id == UINT32_MAX || (id >= cap && !(fs = realloc(fs, (cap = cap * 2 + 64) *
									       sizeof *fs)))) {
				rc = hm_error(HM_ENOMEM, "out of memory");
				break;
			}
			if (added)
				fs[id] = (fn_stat){f->name, f->file, 0, 0, SIZE_MAX};
			if (fs[id].seen != i) {
				fs[id].total += v;
				fs[id].seen = i;
			}
			if (k + 1 == n)
				fs[id].self += v;
		}
	}
	if (rc < 0) {
		reply_err(rs, rc);
	} else {
		size_t nf = keys.n;
		const char *sort = hm_http_arg(rq, "sort");
		if (nf)
			qsort(fs, nf, sizeof *fs, sort && !strcmp(sort, "total") ? by_total : by_self);
		json_t *arr = json_array();
		for (size_t i = 0; i < nf && i < (size_t)limit; i++)
			json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:I}", "name",
				hm_profile_str(p, fs[i].name), "file", hm_profile_str(p, fs[i].file),
				"self", (json_int_t)fs[i].self, "total", (json_int_t)fs[i].total));
		reply_json(rs, json_pack("{s:s, s:s, s:I, s:o}", "type", q.sel.type, "unit",
					 unit_name(&q.sel, weight), "total",
					 (json_int_t)grand, "functions", arr));
	}
	free(fs);
	hm_intern_free(&keys);
	hm_profile_free(p);
	hm_selector_free(&q.sel);
}

/* ---- download ---- */

static void api_download(hm_store *st, const hm_http_req *rq, hm_http_resp *rs)
{
	const char *fname = hm_http_arg(rq, "format");
	int fmt = hm_format_parse(fname ? fname : "pprof");
	if (fmt != HM_FMT_PPROF && fmt != HM_FMT_SPEEDSCOPE && fmt != HM_FMT_COLLAPSED &&
	    fmt != HM_FMT_OTLP && fmt != HM_FMT_OTLP_JSON) {
		hm_http_error(rs, 400, "format must be pprof, speedscope or collapsed");
		return;
	}
	query q;
	int rc = parse_query(st, rq, "query", &q);
	hm_profile *p = NULL;
	if (rc == HM_OK)
		rc = hm_store_select(st, &q.sel, q.from, q.until, &p);
	char *buf = NULL;
	size_t len = 0;
	if (rc == HM_OK) {
		FILE *f = open_memstream(&buf, &len);
		hm_write_opts wo = {.title = "homura"};
		rc = f ? hm_profile_write(p, fmt, f, &wo) : hm_error(HM_ENOMEM, "out of memory");
		if (f)
			fclose(f);
	}
	if (rc < 0) {
		reply_err(rs, rc);
	} else {
		free(rs->body);
		rs->status = 200;
		rs->body = (unsigned char *)buf;
		rs->len = len;
		buf = NULL;
		rs->content_type = fmt == HM_FMT_PPROF || fmt == HM_FMT_OTLP ?
				   "application/octet-stream" : fmt == HM_FMT_COLLAPSED ?
				   "text/plain" : "application/json";
		rs->disposition = fmt == HM_FMT_PPROF ? "attachment; filename=\"profile.pb.gz\"" :
				  fmt == HM_FMT_SPEEDSCOPE ?
				  "attachment; filename=\"profile.speedscope.json\"" :
				  fmt == HM_FMT_COLLAPSED ? "attachment; filename=\"profile.txt\"" :
				  "attachment; filename=\"profile.otlp\"";
	}
	free(buf);
	hm_profile_free(p);
	hm_selector_free(&q.sel);
}

/* ---- Pyroscope compatibility ---- */

typedef struct fb_out {
	json_t *names, *levels;
	json_t *name_ids;        /* name -> index */
	int64_t *level_end;      /* per depth: end x of the last node */
	uint32_t nlevels;
	int64_t max_self;
} fb_out;

static void emit_flamebearer(void *ud, uint32_t id, const walk_ent *e, const char *name,
			     const char *text, const int64_t total[2], const int64_t self[2])
{
	fb_out *o = ud;
	json_t *ix = json_object_get(o->name_ids, text);
	json_int_t ni;
	if (ix) {
		ni = json_integer_value(ix);
	} else {
		ni = (json_int_t)json_array_size(o->names);
		json_array_append_new(o->names, json_string(text));
		json_object_set_new(o->name_ids, text, json_integer(ni));
	}
	while (json_array_size(o->levels) <= e->depth)
		json_array_append_new(o->levels, json_array());
	json_t *lv = json_array_get(o->levels, e->depth);
	json_array_append_new(lv, json_integer(e->x - o->level_end[e->depth]));
	json_array_append_new(lv, json_integer(total[0]));
	json_array_append_new(lv, json_integer(self[0]));
	json_array_append_new(lv, json_integer(ni));
	o->level_end[e->depth] = e->x + total[0];
	if (self[0] > o->max_self)
		o->max_self = self[0];
}

/* Old Pyroscope selections "app.cpu{k=v}" (or k="v") become
 * "process_cpu{service_name="app",k="v"}"; memory suffixes their types. */
static char *og_query(const char *q)
{
	const char *brace = strchr(q, '{');
	size_t nl = brace ? (size_t)(brace - q) : strlen(q);
	if (!nl || memchr(q, '"', nl) || nl > HM_STORE_MAX_VALUE)
		return NULL;
	static const struct { const char *suffix, *type; } map[] = {
		{".cpu", "process_cpu"}, {".itimer", "process_cpu"}, {".wall", "wall"},
		{".alloc_objects", "memory:alloc_objects:count:space:bytes"},
		{".alloc_space", "memory:alloc_space:bytes:space:bytes"},
		{".inuse_objects", "memory:inuse_objects:count:space:bytes"},
		{".inuse_space", "memory:inuse_space:bytes:space:bytes"},
	};
	const char *dot = memrchr(q, '.', nl);
	const char *type = "process_cpu";
	size_t svl = nl;
	for (size_t i = 0; dot && i < sizeof map / sizeof map[0]; i++)
		if (strlen(map[i].suffix) == (size_t)(q + nl - dot) &&
		    !memcmp(dot, map[i].suffix, strlen(map[i].suffix))) {
			type = map[i].type;
			svl = (size_t)(dot - q);
		}
	size_t cap = strlen(q) * 3 + 64;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	int w = snprintf(out, cap, "%s{service_name=\"%.*s\"", type, (int)svl, q);
	if (brace) {
		const char *p = brace + 1, *end = strchr(p, '}');
		while (end && p < end && w > 0 && (size_t)w < cap) {
			const char *comma = memchr(p, ',', (size_t)(end - p));
			const char *stop = comma ? comma : end;
			const char *eq = memchr(p, '=', (size_t)(stop - p));
			const char *v = eq ? eq + 1 : NULL;
			size_t vl = eq ? (size_t)(stop - v) : 0;
			if (vl >= 2 && (*v == '"' || *v == '\'') && v[vl - 1] == *v)
				v++, vl -= 2;    /* app.cpu{env="dev"}: already quoted */
			if (eq && !memchr(v, '"', vl))
				w += snprintf(out + w, cap - (size_t)w, ",%.*s=\"%.*s\"",
					      (int)(eq - p), p, (int)vl, v);
			p = stop + 1;
		}
	}
	if (w > 0 && (size_t)w + 2 < cap)
		strcpy(out + w, "}");
	return out;
}

static void api_render(hm_store *st, const hm_http_req *rq, hm_http_resp *rs)
{
	const char *qs = hm_http_arg(rq, "query");
	hm_http_req rq2 = *rq;
	char *conv = NULL;
	/* "app.cpu{...}" parses as a type name with a dot: an old selection too */
	size_t tl0 = qs ? strcspn(qs, "{") : 0;
	int og = qs && memchr(qs, '.', tl0) && !memchr(qs, ':', tl0);
	if (qs && !og) {
		hm_selector probe;
		if (hm_selector_parse(qs, &probe) < 0)
			og = 1;
		else
			hm_selector_free(&probe);
	}
	if (og && (conv = og_query(qs)))
		for (size_t i = 0; i < rq2.nargs; i++)
			if (!strcmp(rq2.arg_k[i], "query"))
				rq2.arg_v[i] = conv;
	query q;
	long long mn = 0;
	int rc = parse_query(st, &rq2, "query", &q);
	if (rc == HM_OK)
		rc = max_nodes_arg(rq, &mn);
	hm_profile *p = NULL;
	if (rc == HM_OK)
		rc = hm_store_select(st, &q.sel, q.from, q.until, &p);
	int64_t step = rc < 0 ? 0 : pick_step(rq, q.from, q.until, &rc);
	if (rc < 0) {
		free(conv);
		hm_selector_free(&q.sel);
		hm_profile_free(p);
		reply_err(rs, rc);
		return;
	}
	int fl = ft_flags(rq, &q.sel, p);
	hm_flametree *t = hm_flametree_build(p, fl, NULL, NULL);
	unsigned char *keep = t ? hm_flametree_keep_largest(t, (uint64_t)mn) : NULL;
	fb_out o = {json_array(), json_array(), json_object(), NULL, 0, 0};
	o.level_end = t ? calloc(hm_flametree_max_depth(t) + 2, sizeof *o.level_end) : NULL;
	rc = keep && o.level_end ? walk_tree(t, keep, 1, emit_flamebearer, &o) :
				   hm_error(HM_ENOMEM, "out of memory");
	int64_t t0 = q.from - q.from % step;
	size_t n = (size_t)((q.until - t0 + step - 1) / step);
	int64_t *tl = rc >= 0 ? calloc(n + 1, sizeof *tl) : NULL;
	if (rc >= 0 && tl)
		rc = hm_store_timeseries(st, &q.sel, t0, q.until, step, tl, n);
	if (rc >= 0 && tl) {
		json_t *samples = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(samples, json_integer(tl[i]));
		int64_t total = hm_flametree_node(t, 0)->total[0];
		json_t *fb = json_pack("{s:o, s:o, s:I, s:I}", "names", o.names, "levels", o.levels,
				       "numTicks", (json_int_t)total, "maxSelf",
				       (json_int_t)o.max_self);
		json_t *meta = json_pack("{s:s, s:s, s:I, s:s, s:s}", "format", "single", "spyName",
					 "homura", "sampleRate",
					 (json_int_t)((fl & HM_FT_WEIGHT) ? 1000000000 : 100),
					 "units", render_units(&q.sel), "name", qs ? qs : "");
		json_t *timeline = json_pack("{s:I, s:o, s:I}", "startTime", (json_int_t)t0,
					     "samples", samples, "durationDelta", (json_int_t)step);
		reply_json(rs, json_pack("{s:i, s:o, s:o, s:o}", "version", 1, "flamebearer", fb,
					 "metadata", meta, "timeline", timeline));
	} else {
		json_decref(o.names);
		json_decref(o.levels);
		reply_err(rs, rc < 0 ? rc : hm_error(HM_ENOMEM, "out of memory"));
	}
	json_decref(o.name_ids);
	free(o.level_end);
	free(tl);
	free(keep);
	free(conv);
	hm_flametree_free(t);
	hm_profile_free(p);
	hm_selector_free(&q.sel);
}

/* Old Pyroscope /labels and /label-values answer bare arrays. */
static void api_pyro_labels(hm_store *st, const hm_http_req *rq, hm_http_resp *rs, int values)
{
	hm_http_req r2 = *rq;
	r2.nargs = 0;        /* their query syntax differs; list everything */
	const char *label = hm_http_arg(rq, "label");
	if (values && label && r2.nargs < HM_SERVER_MAX_ARGS) {
		r2.arg_k[r2.nargs] = "name";
		r2.arg_v[r2.nargs++] = !strcmp(label, "__name__") ? "service_name" : label;
	}
	api_labels(st, &r2, rs, values);
	if (rs->status != 200)
		return;
	json_t *j = json_loadb((const char *)rs->body, rs->len, 0, NULL);
	json_t *arr = json_incref(json_object_get(j, values ? "values" : "labels"));
	json_decref(j);
	reply_json(rs, arr ? arr : json_array());
}

/* Nonzero when s is valid UTF-8 (answers are JSON, which must be). */
static int utf8_ok(const char *s)
{
	for (size_t len = strlen(s), i = 0, adv; i < len; i += adv)
		if (hm_utf8_decode(s + i, len - i, &adv) == 0xFFFD && adv == 1)
			return 0;
	return 1;
}

void hm_api_handle(hm_store *st, const hm_http_req *rq, hm_http_resp *rs)
{
	const char *p = rq->path;
	if (strcmp(rq->method, "GET") && strcmp(rq->method, "HEAD")) {
		hm_http_error(rs, 405, "%s needs GET", p);
		return;
	}
	for (size_t i = 0; i < rq->nargs; i++)
		if (!utf8_ok(rq->arg_k[i]) || !utf8_ok(rq->arg_v[i])) {
			hm_http_error(rs, 400, "query argument %zu is not valid UTF-8", i + 1);
			return;
		}
	if (!strcmp(p, "/ready"))
		hm_http_reply(rs, 200, "text/plain", "ready\n", 6);
	else if (!strcmp(p, "/api/v1/services"))
		api_services(st, rq, rs);
	else if (!strcmp(p, "/api/v1/profile_types"))
		api_profile_types(st, rq, rs);
	else if (!strcmp(p, "/api/v1/labels"))
		api_labels(st, rq, rs, 0);
	else if (!strcmp(p, "/api/v1/label_values"))
		api_labels(st, rq, rs, 1);
	else if (!strcmp(p, "/api/v1/series"))
		api_series(st, rq, rs);
	else if (!strcmp(p, "/api/v1/timeseries"))
		api_timeseries(st, rq, rs);
	else if (!strcmp(p, "/api/v1/traces"))
		api_traces(st, rq, rs);
	else if (!strcmp(p, "/api/v1/flamegraph"))
		api_flamegraph(st, rq, rs);
	else if (!strcmp(p, "/api/v1/top"))
		api_top(st, rq, rs);
	else if (!strcmp(p, "/api/v1/diff"))
		api_diff(st, rq, rs);
	else if (!strcmp(p, "/api/v1/download"))
		api_download(st, rq, rs);
	else if (!strcmp(p, "/pyroscope/render") || !strcmp(p, "/render"))
		api_render(st, rq, rs);
	else if (!strcmp(p, "/pyroscope/labels") || !strcmp(p, "/labels"))
		api_pyro_labels(st, rq, rs, 0);
	else if (!strcmp(p, "/pyroscope/label-values") || !strcmp(p, "/label-values"))
		api_pyro_labels(st, rq, rs, 1);
	else if (!strcmp(p, "/api/v1/source"))
		hm_ui_source(st, rq, rs);    /* server/ui.c */
	else if (hm_ui_path(p))
		hm_ui_handle(rq, rs);    /* the dashboard (server/ui.c) */
	else
		hm_http_error(rs, 404, "no such endpoint: %.200s", p);
}
