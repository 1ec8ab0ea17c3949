/* decode_pprof.c - read an (already inflated) pprof Profile.
 *
 * The wire bytes are checked against the decoding limits first (pbscan.c),
 * then protobuf-c unpacks the message (it rejects truncated or mistyped data);
 * then every reference is checked before use: string indices against the
 * string table, location and function ids through hash maps built from the
 * message (ids are arbitrary nonzero integers). Each location expands to its
 * lines (inlined frames, caller last), and a sample's leaf-first location
 * list becomes a root-first homura stack. The "samples/count" value becomes
 * the count and a value in nanoseconds the weight; thread_id / thread_name
 * labels become threads; trace_id / span_id (hex) / span_name /
 * local_root_span_name labels the sample's OpenTelemetry span; "key=value"
 * comments become profile labels.
 *
 * hm_decode_pprof_split (decode.h) reads the same message into several
 * profiles: one per (count, weight) pair of sample-value indices that a
 * caller's plan picks from the sample types, times one per distinct set of
 * per-sample string labels (bounded: HM_PPROF_MAX_LABEL_KEYS keys and
 * HM_PPROF_MAX_LABEL_VALUES values per key; further values become
 * HM_PPROF_OTHER_VALUE, further keys are dropped). */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/intern.h"
#include "format/codec.h"
#include "format/decode.h"
#include "format/decode_frame.h"
#include "format/filter.h"
#include "perftools/profiles/profile.pb-c.h"

#define MAX_GROUPS 64     /* label sets of one profile (past it: "other" values) */

typedef Perftools__Profiles__Profile PbProfile;

static const char *pstr(const PbProfile *m, int64_t i)
{
	return i >= 0 && (uint64_t)i < m->n_string_table && m->string_table[i] ?
	       m->string_table[i] : NULL;
}

/* Exactly `digits` (16 or 32) hex digits into hi (32 only) and lo; 1 ok. */
static int hex_id(const char *t, int digits, uint64_t *hi, uint64_t *lo)
{
	if (!t || strlen(t) != (size_t)digits)
		return 0;
	uint64_t v[2] = {0, 0};
	for (int i = 0; i < digits; i++) {
		int c = t[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return 0;
		uint64_t *w = &v[digits == 32 && i < 16 ? 0 : 1];
		*w = (*w << 4) | (uint64_t)d;
	}
	if (hi)
		*hi = v[0];
	*lo = v[1];
	return 1;
}

/* Map of 64-bit ids to dense indices. */
static int id_map_build(hm_intern *t, size_t n, uint64_t (*get)(const void *, size_t),
			const void *arr, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t id = get(arr, i);
		int added = 0;
		if (hm_intern_put(t, &id, sizeof id, &added) != i || !added)
			return hm_error(HM_EINVAL, "pprof: duplicate or invalid %s id %llu", what,
					(unsigned long long)id);
	}
	return HM_OK;
}

static uint64_t loc_id(const void *a, size_t i)
{
	return ((Perftools__Profiles__Location *const *)a)[i]->id;
}

static uint64_t fn_id(const void *a, size_t i)
{
	return ((Perftools__Profiles__Function *const *)a)[i]->id;
}

/* Labels of one sample that become series labels: string labels other
 * than the thread ones and the span/profile ids (unbounded). */
int hm_decode_label_key_ok(const char *key)
{
	static const char *const skip[] = {"thread_id", "thread.id", "thread_name",
		"thread.name", "span_id", "span_name", "local_root_span_name", "trace_id", "profile_id", "pprof::base_id",
		NULL};
	if (!key || !*key)
		return 0;
	for (int i = 0; skip[i]; i++)
		if (!strcmp(key, skip[i]))
			return 0;
	return 1;
}

/* Per-sample label grouping state of one decode. */
typedef struct grouping {
	int on;
	uint32_t nkeys;
	int64_t keys[HM_PPROF_MAX_LABEL_KEYS];            /* string indices */
	uint32_t nvals[HM_PPROF_MAX_LABEL_KEYS];
	int64_t vals[HM_PPROF_MAX_LABEL_KEYS][HM_PPROF_MAX_LABEL_VALUES];
	hm_intern sets;                                   /* encoded label sets -> group */
} grouping;

/* The group of a sample: its (key, value) index pairs in key order, with
 * the caps applied; -1 stands for HM_PPROF_OTHER_VALUE. */
static uint32_t sample_group(grouping *g, const PbProfile *m, const Perftools__Profiles__Sample *s)
{
	int64_t enc[2 * HM_PPROF_MAX_LABEL_KEYS];
	uint32_t n = 0;
	if (!g->on)
		return 0;
	int64_t slot[HM_PPROF_MAX_LABEL_KEYS];
	for (uint32_t k = 0; k < HM_PPROF_MAX_LABEL_KEYS; k++)
		slot[k] = 0;
	for (size_t i = 0; i < s->n_label; i++) {
		const Perftools__Profiles__Label *l = s->label[i];
		const char *key = pstr(m, l->key), *val = pstr(m, l->str);
		if (!hm_decode_label_key_ok(key) || !val || !*val)
			continue;
		uint32_t k = 0;
		while (k < g->nkeys && strcmp(pstr(m, g->keys[k]), key))
			k++;
		if (k == g->nkeys) {
			if (g->nkeys >= HM_PPROF_MAX_LABEL_KEYS)
				continue;          /* key dropped */
			g->keys[g->nkeys++] = l->key;
		}
		uint32_t v = 0;
		while (v < g->nvals[k] && strcmp(pstr(m, g->vals[k][v]), val))
			v++;
		if (v == g->nvals[k] && g->nvals[k] < HM_PPROF_MAX_LABEL_VALUES)
			g->vals[k][g->nvals[k]++] = l->str;
		slot[k] = v < g->nvals[k] ? g->vals[k][v] : -1;
	}
	for (uint32_t k = 0; k < g->nkeys; k++)
		if (slot[k]) {
			enc[n++] = k;
			enc[n++] = slot[k];
		}
	int added;
	uint32_t id = hm_intern_put(&g->sets, enc, (uint32_t)(n * sizeof enc[0]), &added);
	if (id != UINT32_MAX && id >= MAX_GROUPS) {
		/* too many combinations: every key's value becomes "other" */
		for (uint32_t i = 1; i < n; i += 2)
			enc[i] = -1;
		id = hm_intern_put(&g->sets, enc, (uint32_t)(n * sizeof enc[0]), &added);
	}
	return id;
}

static int convert(const PbProfile *m, hm_pprof_plan_fn plan, void *plan_arg,
		   hm_pprof_split *out)
{
	int rc = HM_OK;
	hm_intern locs, fns;
	hm_intern_init(&locs);
	hm_intern_init(&fns);
	grouping *g = calloc(1, sizeof *g);
	uint32_t *frames = malloc(HM_READ_MAX_DEPTH * sizeof *frames);
	uint32_t *loc_first = NULL, *loc_frames = NULL;
	int pairs[HM_PPROF_MAX_PARTS][2];
	hm_profile *proto = NULL;       /* frames are interned here, then imported */
	if (g)
		hm_intern_init(&g->sets);
	if (!frames || !g)
		goto oom;
	if (m->n_string_table == 0 || !m->string_table[0] || m->string_table[0][0]) {
		rc = hm_error(HM_EINVAL, "pprof: string_table[0] must be \"\"");
		goto out;
	}
	if ((rc = id_map_build(&locs, m->n_location, loc_id, m->location, "location")) < 0 ||
	    (rc = id_map_build(&fns, m->n_function, fn_id, m->function, "function")) < 0)
		goto out;

	/* Sample types, then the plan of (count, weight) value pairs. */
	hm_pprof_vt st[HM_PPROF_MAX_PARTS], period = {"", ""};
	size_t nst = 0;
	int wall = 0;
	for (size_t i = 0; i < m->n_sample_type; i++) {
		const char *ty = pstr(m, m->sample_type[i]->type);
		const char *un = pstr(m, m->sample_type[i]->unit);
		if (!ty || !un) {
			rc = hm_error(HM_EINVAL, "pprof: sample_type has a bad string index");
			goto out;
		}
		if (nst < HM_PPROF_MAX_PARTS)
			st[nst++] = (hm_pprof_vt){ty, un};
		wall |= !strcmp(ty, "wall");
	}
	if (m->period_type) {
		const char *ty = pstr(m, m->period_type->type), *un = pstr(m, m->period_type->unit);
		if (ty && un)
			period = (hm_pprof_vt){ty, un};
	}
	int npairs = plan(plan_arg, st, nst, period, pairs, HM_PPROF_MAX_PARTS);
	if (npairs < 0) {
		rc = npairs;
		goto out;
	}
	for (int i = 0; i < npairs; i++)
		if (pairs[i][0] >= (int)nst || pairs[i][1] >= (int)nst) {
			rc = hm_error(HM_EINVAL, "pprof: bad sample value plan");
			goto out;
		}
	g->on = !!out->group_labels;
	if (!(proto = hm_profile_new(0)))
		goto oom;
	if (wall)
		hm_profile_meta_get(proto)->time_kind = HM_TIME_WALL;

	/* Every location's lines as frames, caller first. */
	size_t nlines = 0;
	for (size_t i = 0; i < m->n_location; i++)
		nlines += m->location[i]->n_line;
	loc_first = malloc((m->n_location + 1) * sizeof *loc_first);
	loc_frames = malloc((nlines + 1) * sizeof *loc_frames);
	if (!loc_first || !loc_frames)
		goto oom;
	size_t at = 0;
	for (size_t i = 0; i < m->n_location; i++) {
		const Perftools__Profiles__Location *lo = m->location[i];
		loc_first[i] = (uint32_t)at;
		for (size_t k = lo->n_line; k-- > 0;) {
			const Perftools__Profiles__Line *ln = lo->line[k];
			uint64_t fid = ln->function_id;
			uint32_t fi = hm_intern_find(&fns, &fid, sizeof fid);
			if (fi == UINT32_MAX) {
				rc = hm_error(HM_EINVAL, "pprof: location %llu refers to missing "
					      "function %llu", (unsigned long long)lo->id,
					      (unsigned long long)fid);
				goto out;
			}
			const Perftools__Profiles__Function *fn = m->function[fi];
			const char *name = pstr(m, fn->name), *file = pstr(m, fn->filename);
			if (!name || !file) {
				rc = hm_error(HM_EINVAL, "pprof: function %llu has a bad string "
					      "index", (unsigned long long)fn->id);
				goto out;
			}
			const char *sys = pstr(m, fn->system_name);
			if (!*name || (sys && *sys && strstr(name, "\xe2\x80\xb9")))
				name = sys ? sys : "";   /* homura's "‹module›" is "<module>" */
			hm_frame f = {0};
			f.name = hm_profile_intern_cstr(proto, name);
			f.file = hm_profile_intern_cstr(proto, file);
			f.line = (int32_t)ln->line;
			f.start_line = (int32_t)fn->start_line;
			f.kind = hm_decode_guess_kind(file);
			loc_frames[at++] = hm_profile_frame_id(proto, &f);
		}
	}
	loc_first[m->n_location] = (uint32_t)at;

	uint64_t expanded = 0;     /* frames of all samples' stacks */
	for (size_t i = 0; i < m->n_sample; i++) {
		const Perftools__Profiles__Sample *s = m->sample[i];
		if (s->n_value != m->n_sample_type) {
			rc = hm_error(HM_EINVAL, "pprof: sample %zu has %zu values, expected %zu", i,
				      s->n_value, m->n_sample_type);
			goto out;
		}
		uint32_t n = 0;
		for (size_t k = s->n_location_id; k-- > 0;) {   /* root first */
			uint64_t id = s->location_id[k];
			uint32_t li = hm_intern_find(&locs, &id, sizeof id);
			if (li == UINT32_MAX) {
				rc = hm_error(HM_EINVAL, "pprof: sample %zu refers to missing "
					      "location %llu", i, (unsigned long long)id);
				goto out;
			}
			for (uint32_t x = loc_first[li]; x < loc_first[li + 1] && n < HM_READ_MAX_DEPTH;
			     x++)
				frames[n++] = loc_frames[x];
		}
		/* every planned profile imports the stack: the work is bounded */
		if ((expanded += (uint64_t)n * (uint64_t)(npairs > 1 ? npairs : 1)) >
		    HM_PB_MAX_FRAMES) {
			rc = hm_error(HM_EINVAL, "pprof message over the decoding limit: more than "
				      "%llu stack frames in all", HM_PB_MAX_FRAMES);
			goto out;
		}
		uint64_t tid = 0;
		const char *tname = NULL, *sname = NULL, *sroot = NULL;
		hm_span_ref span;
		memset(&span, 0, sizeof span);
		int have_trace = 0, have_span = 0;
		for (size_t k = 0; k < s->n_label; k++) {
			const char *key = pstr(m, s->label[k]->key);
			if (!key)
				continue;
			if (!strcmp(key, "thread_id") || !strcmp(key, "thread.id"))
				tid = (uint64_t)s->label[k]->num;
			else if (!strcmp(key, "thread_name") || !strcmp(key, "thread.name"))
				tname = pstr(m, s->label[k]->str);
			else if (!strcmp(key, "trace_id"))
				have_trace = hex_id(pstr(m, s->label[k]->str), 32, &span.trace_hi, &span.trace_lo);
			else if (!strcmp(key, "span_id"))
				have_span = hex_id(pstr(m, s->label[k]->str), 16, NULL, &span.span_id);
			else if (!strcmp(key, "span_name"))
				sname = pstr(m, s->label[k]->str);
			else if (!strcmp(key, "local_root_span_name"))
				sroot = pstr(m, s->label[k]->str);
		}
		int with_span = (have_trace && have_span) || (sname && *sname);
		if (with_span && (!have_trace || !have_span))
			span.trace_hi = span.trace_lo = span.span_id = 0;
		uint32_t grp = sample_group(g, m, s);
		if (grp == UINT32_MAX)
			goto oom;
		for (int pi = 0; pi < npairs; pi++) {
			size_t slot = (size_t)grp * (size_t)npairs + (size_t)pi;
			while (out->n <= slot) {
				if (out->n >= (size_t)MAX_GROUPS * 2 * HM_PPROF_MAX_PARTS)
					goto oom;
				hm_pprof_part *nv = realloc(out->v, (out->n + 1) * sizeof *nv);
				if (!nv)
					goto oom;
				out->v = nv;
				memset(&out->v[out->n], 0, sizeof *nv);
				out->v[out->n].pair = (int)(out->n % (size_t)npairs);
				out->n++;
			}
			hm_pprof_part *pt = &out->v[slot];
			if (!pt->p) {
				if (!(pt->p = hm_profile_new(0)))
					goto oom;
				hm_profile_meta_get(pt->p)->time_kind =
					hm_profile_meta_cget(proto)->time_kind;
				/* the group's labels */
				uint32_t len = 0;
				const void *blob = g->on ? hm_intern_get(&g->sets, grp, &len) : NULL;
				int64_t enc[2 * HM_PPROF_MAX_LABEL_KEYS];
				if (len > sizeof enc)
					len = 0;
				if (len)
					memcpy(enc, blob, len);
				for (uint32_t e = 0; e + 1 < len / sizeof *enc &&
				     pt->nlabels < HM_PPROF_MAX_LABEL_KEYS; e += 2) {
					pt->keys[pt->nlabels] = strdup(pstr(m, g->keys[enc[e]]));
					pt->values[pt->nlabels] = strdup(enc[e + 1] < 0 ? HM_PPROF_OTHER_VALUE :
									  pstr(m, enc[e + 1]));
					if (!pt->keys[pt->nlabels] || !pt->values[pt->nlabels++])
						goto oom;
				}
			}
			uint32_t fr[HM_READ_MAX_DEPTH];
			for (uint32_t k = 0; k < n; k++)
				fr[k] = hm_profile_import_frame(pt->p, proto, frames[k]);
			uint32_t th = hm_profile_thread_id(pt->p, tid, 0, tname && *tname ? tname : NULL);
			uint32_t st = hm_profile_stack_id(pt->p, fr, n);
			uint32_t spid = 0;
			if (with_span) {
				hm_span_ref r = span;
				r.name = sname ? hm_profile_intern_cstr(pt->p, sname) : 0;
				r.root = sroot ? hm_profile_intern_cstr(pt->p, sroot) : 0;
				spid = hm_profile_span_id(pt->p, &r);
			}
			int ci = pairs[pi][0], wi = pairs[pi][1];
			hm_profile_add_span(pt->p, st, th, spid, ci >= 0 ? s->value[ci] : 0,
					    wi >= 0 ? s->value[wi] : 0, 0);
		}
	}
	if (!out->n && npairs > 0) {    /* no samples: still one empty profile per pair */
		out->v = calloc((size_t)npairs, sizeof *out->v);
		if (!out->v)
			goto oom;
		for (int pi = 0; pi < npairs; pi++) {
			out->v[pi].pair = pi;
			if (!(out->v[pi].p = hm_profile_new(0)))
				goto oom;
			out->n++;
		}
	}
	for (size_t k = 0; k < out->n; k++) {
		if (!out->v[k].p)
			continue;
		hm_profile_meta *meta = hm_profile_meta_get(out->v[k].p);
		meta->time_kind = hm_profile_meta_cget(proto)->time_kind;
		meta->start_ns = m->time_nanos > 0 ? (uint64_t)m->time_nanos : 0;
		meta->duration_ns = m->duration_nanos > 0 ? (uint64_t)m->duration_nanos : 0;
		meta->period_ns = m->period > 0 ? (uint64_t)m->period : 0;
		for (size_t i = 0; i < m->n_comment; i++) {
			const char *c = pstr(m, m->comment[i]);
			const char *eq = c ? strchr(c, '=') : NULL;
			if (eq && eq != c && meta->nlabels < 32) {
				char key[256];
				snprintf(key, sizeof key, "%.*s", (int)(eq - c), c);
				hm_profile_set_label(out->v[k].p, key, eq + 1);
			}
		}
	}
	goto out;
oom:
	rc = hm_error(HM_ENOMEM, "out of memory reading pprof");
out:
	hm_profile_free(proto);
	free(frames);
	free(loc_first);
	free(loc_frames);
	hm_intern_free(&locs);
	hm_intern_free(&fns);
	if (g)
		hm_intern_free(&g->sets);
	free(g);
	return rc;
}

/* The plan of hm_decode_pprof: the first "count" value is the count, the
 * first value in nanoseconds the weight (else value 0 is the count). */
static int legacy_plan(void *arg, const hm_pprof_vt *st, size_t n, hm_pprof_vt period,
		       int (*pairs)[2], int max)
{
	int ci = -1, wi = -1;
	for (size_t i = 0; i < n; i++) {
		if (ci < 0 && !strcmp(st[i].unit, "count"))
			ci = (int)i;
		else if (wi < 0 && !strcmp(st[i].unit, "nanoseconds"))
			wi = (int)i;
	}
	if (ci < 0 && wi < 0 && n)
		ci = 0;
	pairs[0][0] = ci;
	pairs[0][1] = wi;
	return 1;
}

void hm_pprof_split_free(hm_pprof_split *s)
{
	for (size_t i = 0; i < s->n; i++) {
		hm_profile_free(s->v[i].p);
		for (uint32_t k = 0; k < s->v[i].nlabels; k++) {
			free(s->v[i].keys[k]);
			free(s->v[i].values[k]);
		}
	}
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

int hm_decode_pprof_split(const unsigned char *buf, size_t len, hm_pprof_plan_fn plan,
			  void *plan_arg, hm_pprof_split *out)
{
	int group = out->group_labels;
	memset(out, 0, sizeof *out);
	out->group_labels = group;
	int rc = hm_pb_check(&perftools__profiles__profile__descriptor, buf, len, "pprof", 0);
	if (rc < 0)
		return rc;
	PbProfile *m = perftools__profiles__profile__unpack(NULL, len, buf);
	if (!m)
		return hm_error(HM_EINVAL, "not a valid pprof Profile");
	if (!m->n_string_table)
		rc = hm_error(HM_EINVAL, "pprof: no string table");
	else
		rc = convert(m, plan, plan_arg, out);
	perftools__profiles__profile__free_unpacked(m, NULL);
	if (rc < 0)
		hm_pprof_split_free(out);
	else   /* every slot gets a profile, even one no sample reached */
		for (size_t i = 0; i < out->n; i++)
			if (!out->v[i].p && !(out->v[i].p = hm_profile_new(0))) {
				hm_pprof_split_free(out);
				return hm_error(HM_ENOMEM, "out of memory reading pprof");
			}
	return rc;
}

int hm_decode_pprof(const unsigned char *buf, size_t len, hm_profile **out)
{
	int rc = hm_pb_check(&perftools__profiles__profile__descriptor, buf, len, "pprof", 0);
	if (rc < 0)
		return rc;
	PbProfile *m = perftools__profiles__profile__unpack(NULL, len, buf);
	if (!m)
		return 1;
	hm_pprof_split sp = {0};
	if (!m->n_string_table) {
		rc = 1;
	} else {
		rc = convert(m, legacy_plan, NULL, &sp);
	}
	perftools__profiles__profile__free_unpacked(m, NULL);
	if (rc) {
		hm_pprof_split_free(&sp);
		return rc;
	}
	*out = sp.v[0].p;
	sp.v[0].p = NULL;
	hm_pprof_split_free(&sp);
	return HM_OK;
}
