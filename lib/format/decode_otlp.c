/* decode_otlp.c - read an OTLP ExportProfilesServiceRequest (binary or JSON).
 *
 * The JSON form is first mapped onto the same protobuf-c message (pbjson.c),
 * so one converter serves both. The wire bytes are checked against the
 * decoding limits (pbscan.c) before they are unpacked, and each stack_table
 * entry is resolved once however many samples share it. Every dictionary
 * index is range-checked.
 * Locations expand to frames (lines in caller-last order, kind from the
 * profile.frame.type attribute); stacks are leaf first on the wire and root
 * first in homura. Profiles whose unit is "count" give sample counts, those
 * in nanoseconds give the weight (type "wall" marks wall time). When the time
 * profile carries timestamps each one becomes a timeline event of one sample
 * and separate count profiles are not needed. Resource attributes become the
 * profile's labels; thread.id / thread.name sample attributes its threads;
 * a sample's link (trace and span ids) and span_name / local_root_span_name
 * attributes its OpenTelemetry span. hm_decode_otlp_split also groups the
 * samples by their other attributes (bounded like pprof's per-sample labels,
 * decode.h) into one profile each. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/intern.h"
#include "format/codec.h"
#include "format/decode.h"
#include "format/decode_frame.h"
#include "format/filter.h"
#include "opentelemetry/proto/collector/profiles/v1development/profiles_service.pb-c.h"
#include "format/pbjson.h"

typedef Opentelemetry__Proto__Collector__Profiles__V1development__ExportProfilesServiceRequest OReq;
typedef Opentelemetry__Proto__Profiles__V1development__ProfilesDictionary ODict;
typedef Opentelemetry__Proto__Profiles__V1development__Profile OProfile;
typedef Opentelemetry__Proto__Common__V1__AnyValue OAny;

#define ANY(x) OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_##x

#define MAX_GROUPS 64     /* sample attribute sets of one request, as for pprof */
typedef Opentelemetry__Proto__Profiles__V1development__Link OLinkD;

typedef struct ctx {
	const ODict *d;
	hm_profile *p;
	/* hm_decode_otlp_split: samples grouped by their other attributes */
	int split;
	int has_ts;
	uint32_t nkeys;
	char *keys[HM_PPROF_MAX_LABEL_KEYS];
	uint32_t nvals[HM_PPROF_MAX_LABEL_KEYS];
	char *vals[HM_PPROF_MAX_LABEL_KEYS][HM_PPROF_MAX_LABEL_VALUES];
	hm_intern sets;
	hm_profile *gp[2 * MAX_GROUPS];
	uint32_t *loc_first;   /* CSR of location -> frames */
	uint32_t *loc_frames;
	uint32_t *frames;      /* scratch stack */
	uint32_t *stack_ids;   /* stack_table index -> profile stack id, lazily */
	uint64_t expanded;     /* frames of all stacks resolved */
} ctx;

static const char *dstr(const ODict *d, int64_t i)
{
	return i >= 0 && (uint64_t)i < d->n_string_table && d->string_table[i] ?
	       d->string_table[i] : NULL;
}

/* Text of an AnyValue (string, strindex or int) into buf; NULL if other. */
static const char *any_text(const ODict *d, const OAny *v, char *buf, size_t cap)
{
	if (!v)
		return NULL;
	switch (v->value_case) {
	case ANY(STRING_VALUE): return v->string_value ? v->string_value : "";
	case ANY(STRING_VALUE_STRINDEX): return dstr(d, v->string_value_strindex);
	case ANY(INT_VALUE): snprintf(buf, cap, "%" PRId64, v->int_value); return buf;
	case ANY(BOOL_VALUE): return v->bool_value ? "true" : "false";
	default: return NULL;
	}
}

static int attr_of(const ctx *c, int32_t idx, const char **key, const OAny **val)
{
	if (idx < 0 || (size_t)idx >= c->d->n_attribute_table)
		return hm_error(HM_EINVAL, "OTLP: attribute index %d out of range", idx);
	const Opentelemetry__Proto__Profiles__V1development__KeyValueAndUnit *a =
		c->d->attribute_table[idx];
	*key = dstr(c->d, a->key_strindex);
	*val = a->value;
	if (!*key)
		return hm_error(HM_EINVAL, "OTLP: attribute %d has a bad key index", idx);
	return HM_OK;
}

static int build_locations(ctx *c)
{
	const ODict *d = c->d;
	size_t nlines = 0;
	for (size_t i = 0; i < d->n_location_table; i++)
		nlines += d->location_table[i]->n_lines;
	c->loc_first = malloc((d->n_location_table + 1) * sizeof *c->loc_first);
	c->loc_frames = malloc((nlines + 1) * sizeof *c->loc_frames);
	if (!c->loc_first || !c->loc_frames)
		return hm_error(HM_ENOMEM, "out of memory reading OTLP");
	size_t at = 0;
	for (size_t i = 0; i < d->n_location_table; i++) {
		const Opentelemetry__Proto__Profiles__V1development__Location *lo = d->location_table[i];
		int kind = -1;
		for (size_t k = 0; k < lo->n_attribute_indices; k++) {
			const char *key;
			const OAny *v;
			char buf[32];
			if (attr_of(c, lo->attribute_indices[k], &key, &v) < 0)
				return HM_EINVAL;
			const char *t = strcmp(key, "profile.frame.type") ? NULL :
					any_text(d, v, buf, sizeof buf);
			if (t)
				kind = !strcmp(t, "cpython") || !strcmp(t, "python") ? HM_FRAME_PYTHON :
				       !strcmp(t, "kernel") ? HM_FRAME_KERNEL : HM_FRAME_NATIVE;
		}
		c->loc_first[i] = (uint32_t)at;
		for (size_t k = lo->n_lines; k-- > 0;) {
			const Opentelemetry__Proto__Profiles__V1development__Line *ln = lo->lines[k];
			if (ln->function_index < 0 || (size_t)ln->function_index >= d->n_function_table)
				return hm_error(HM_EINVAL, "OTLP: function index %d out of range",
						ln->function_index);
			const Opentelemetry__Proto__Profiles__V1development__Function *fn =
				d->function_table[ln->function_index];
			const char *name = dstr(d, fn->name_strindex);
			const char *file = dstr(d, fn->filename_strindex);
			if (!name || !file)
				return hm_error(HM_EINVAL, "OTLP: function %d has a bad string index",
						ln->function_index);
			if (!*name && dstr(d, fn->system_name_strindex))
				name = dstr(d, fn->system_name_strindex);
			hm_frame f = {0};
			f.name = hm_profile_intern_cstr(c->p, name);
			f.file = hm_profile_intern_cstr(c->p, file);
			f.line = (int32_t)ln->line;
			f.start_line = (int32_t)fn->start_line;
			f.kind = kind >= 0 ? kind : hm_decode_guess_kind(file);
			c->loc_frames[at++] = hm_profile_frame_id(c->p, &f);
		}
	}
	c->loc_first[d->n_location_table] = (uint32_t)at;
	return HM_OK;
}

enum { V_COUNT, V_TIME, V_SKIP };

static int profile_role(const ODict *d, const OProfile *pr, int *wall)
{
	const char *ty = pr->sample_type ? dstr(d, pr->sample_type->type_strindex) : "";
	const char *un = pr->sample_type ? dstr(d, pr->sample_type->unit_strindex) : "";
	if (!ty || !un)
		return -1;
	if (!strcmp(un, "nanoseconds")) {
		*wall = !strcmp(ty, "wall") || !strcmp(ty, "off_cpu");
		return V_TIME;
	}
	if (!strcmp(un, "count") || !*un)
		return V_COUNT;
	return V_SKIP;
}

/* The attribute group of a sample (hm_decode_otlp_split), with the same
 * caps as pprof's per-sample labels; UINT32_MAX on failure. */
static uint32_t sample_group(ctx *c, const Opentelemetry__Proto__Profiles__V1development__Sample *s)
{
	int64_t enc[2 * HM_PPROF_MAX_LABEL_KEYS], slot[HM_PPROF_MAX_LABEL_KEYS] = {0};
	uint32_t n = 0;
	for (size_t k = 0; k < s->n_attribute_indices; k++) {
		const char *key;
		const OAny *v;
		char buf[32];
		if (attr_of(c, s->attribute_indices[k], &key, &v) < 0)
			continue;
		const char *val = any_text(c->d, v, buf, sizeof buf);
		if (!hm_decode_label_key_ok(key) || !val || !*val)
			continue;
		uint32_t ki = 0;
		while (ki < c->nkeys && strcmp(c->keys[ki], key))
			ki++;
		if (ki == c->nkeys) {
			if (c->nkeys >= HM_PPROF_MAX_LABEL_KEYS)
				continue;
			if (!(c->keys[c->nkeys] = strdup(key)))
				return UINT32_MAX;
			c->nkeys++;
		}
		uint32_t vi = 0;
		while (vi < c->nvals[ki] && strcmp(c->vals[ki][vi], val))
			vi++;
		if (vi == c->nvals[ki] && c->nvals[ki] < HM_PPROF_MAX_LABEL_VALUES) {
			if (!(c->vals[ki][vi] = strdup(val)))
				return UINT32_MAX;
			c->nvals[ki]++;
		}
		slot[ki] = vi < c->nvals[ki] ? (int64_t)vi + 1 : -1;
	}
	for (uint32_t k = 0; k < c->nkeys; k++)
		if (slot[k]) {
			enc[n++] = k;
			enc[n++] = slot[k];
		}
	int added;
	uint32_t id = hm_intern_put(&c->sets, enc, (uint32_t)(n * sizeof enc[0]), &added);
	if (id != UINT32_MAX && id >= MAX_GROUPS) {
		for (uint32_t i = 1; i < n; i += 2)
			enc[i] = -1;
		id = hm_intern_put(&c->sets, enc, (uint32_t)(n * sizeof enc[0]), &added);
	}
	return id < 2 * MAX_GROUPS ? id : UINT32_MAX;
}

/* The profile of a group, made on first use. */
static hm_profile *group_profile(ctx *c, uint32_t g)
{
	if (!c->gp[g])
		c->gp[g] = hm_profile_new(c->has_ts);
	return c->gp[g];
}

static int add_profile(ctx *c, const OProfile *pr, int role, int count_in_time)
{
	const ODict *d = c->d;
	for (size_t i = 0; i < pr->n_samples; i++) {
		const Opentelemetry__Proto__Profiles__V1development__Sample *s = pr->samples[i];
		if (s->stack_index < 0 || (size_t)s->stack_index >= d->n_stack_table)
			return hm_error(HM_EINVAL, "OTLP: stack index %d out of range", s->stack_index);
		/* each stack is resolved once: samples sharing a deep stack cost
		 * one lookup each, not the stack's depth */
		uint32_t st = c->stack_ids[s->stack_index];
		if (st == UINT32_MAX) {
			const Opentelemetry__Proto__Profiles__V1development__Stack *stk =
				d->stack_table[s->stack_index];
			uint32_t n = 0;
			for (size_t k = stk->n_location_indices; k-- > 0 && n < HM_READ_MAX_DEPTH;) {
				int32_t li = stk->location_indices[k];
				if (li < 0 || (size_t)li >= d->n_location_table)
					return hm_error(HM_EINVAL, "OTLP: location index %d out of range",
							li);
				for (uint32_t x = c->loc_first[li];
				     x < c->loc_first[li + 1] && n < HM_READ_MAX_DEPTH; x++)
					c->frames[n++] = c->loc_frames[x];
			}
			if ((c->expanded += n) > HM_PB_MAX_FRAMES)
				return hm_error(HM_EINVAL, "OTLP message over the decoding limit: more "
						"than %llu stack frames in all", HM_PB_MAX_FRAMES);
			st = c->stack_ids[s->stack_index] = hm_profile_stack_id(c->p, c->frames, n);
		}
		uint64_t tid = 0;
		const char *tname = NULL, *sname = NULL, *sroot = NULL;
		char buf[32], nbuf[256], rbuf[256];
		for (size_t k = 0; k < s->n_attribute_indices; k++) {
			const char *key;
			const OAny *v;
			if (attr_of(c, s->attribute_indices[k], &key, &v) < 0)
				return HM_EINVAL;
			if (!strcmp(key, "thread.id") && v && v->value_case == ANY(INT_VALUE))
				tid = (uint64_t)v->int_value;
			else if (!strcmp(key, "thread.id"))
				tid = strtoull(any_text(d, v, buf, sizeof buf) ?: "0", NULL, 10);
			else if (!strcmp(key, "thread.name"))
				tname = any_text(d, v, buf, sizeof buf);
			else if (!strcmp(key, "span_name"))
				sname = any_text(d, v, nbuf, sizeof nbuf);
			else if (!strcmp(key, "local_root_span_name"))
				sroot = any_text(d, v, rbuf, sizeof rbuf);
		}
		/* The sample's link: the OpenTelemetry trace and span it ran in
		 * (its names interned in each profile it goes to, below). */
		hm_span_ref sr;
		int has_span = 0;
		memset(&sr, 0, sizeof sr);
		if (s->link_index > 0 && (size_t)s->link_index < d->n_link_table &&
		    d->link_table[s->link_index]) {
			const OLinkD *l = d->link_table[s->link_index];
			if (l->trace_id.len == 16 && l->span_id.len == 8) {
				for (int b = 0; b < 8; b++) {
					sr.trace_hi = sr.trace_hi << 8 | l->trace_id.data[b];
					sr.trace_lo = sr.trace_lo << 8 | l->trace_id.data[8 + b];
					sr.span_id = sr.span_id << 8 | l->span_id.data[b];
				}
				has_span = (sr.trace_hi || sr.trace_lo) && sr.span_id;
			}
		}
		size_t nv = s->n_values, nt = s->n_timestamps_unix_nano;
		if (nt && nv && nv != nt)
			return hm_error(HM_EINVAL, "OTLP: sample %zu has %zu values but %zu "
					"timestamps", i, nv, nt);
		for (int pass = 0; pass < 1 + c->split; pass++) {
			hm_profile *tp = c->p;
			uint32_t tst = st;
			if (pass) {    /* the sample's attribute group too */
				uint32_t g = sample_group(c, s);
				if (g == UINT32_MAX || !(tp = group_profile(c, g)))
					return hm_error(HM_ENOMEM, "out of memory reading OTLP");
				uint32_t n;
				const uint32_t *fr = hm_profile_stack(c->p, st, &n);
				for (uint32_t x = 0; x < n; x++)
					c->frames[x] = hm_profile_import_frame(tp, c->p, fr[x]);
				tst = hm_profile_stack_id(tp, c->frames, n);
			}
			uint32_t th = hm_profile_thread_id(tp, tid, 0, tname && *tname ? tname : NULL);
			uint32_t sid = 0;
			if (has_span) {
				hm_span_ref r = sr;
				r.name = sname ? hm_profile_intern_cstr(tp, sname) : 0;
				r.root = sroot ? hm_profile_intern_cstr(tp, sroot) : 0;
				sid = hm_profile_span_id(tp, &r);
			}
			if (nt) {
				for (size_t k = 0; k < nt; k++) {
					int64_t v = nv ? s->values[k] : 1;
					if (role == V_TIME)
						hm_profile_add_span(tp, tst, th, sid, count_in_time, v,
							       s->timestamps_unix_nano[k]);
					else
						hm_profile_add_span(tp, tst, th, sid, v, 0, s->timestamps_unix_nano[k]);
				}
			} else {
				int64_t sum = 0;
				for (size_t k = 0; k < nv; k++)
					sum = hm_sat_add(sum, s->values[k]);
				if (role == V_TIME)
					hm_profile_add_span(tp, tst, th, sid, count_in_time ? (int64_t)nv : 0, sum, 0);
				else
					hm_profile_add_span(tp, tst, th, sid, sum, 0, 0);
			}
		}
	}
	return HM_OK;
}

/* The groups as parts (hm_decode_otlp_split): each with the whole
 * profile's metadata and its attribute values as labels; the groups'
 * profiles move to sp. */
static int split_out(ctx *c, hm_pprof_split *sp)
{
	uint32_t ng = c->sets.n;
	if (!ng)                  /* no samples: the (empty) whole profile */
		ng = 1;
	sp->v = calloc(ng, sizeof *sp->v);
	if (!sp->v)
		return hm_error(HM_ENOMEM, "out of memory reading OTLP");
	const hm_profile_meta *m = hm_profile_meta_cget(c->p);
	for (uint32_t g = 0; g < ng; g++) {
		hm_pprof_part *pt = &sp->v[sp->n++];
		pt->p = c->sets.n ? c->gp[g] : c->p;
		if (c->sets.n)
			c->gp[g] = NULL;
		else
			c->p = NULL;
		if (!pt->p && !(pt->p = hm_profile_new(0)))
			return hm_error(HM_ENOMEM, "out of memory reading OTLP");
		hm_profile_meta *pm = hm_profile_meta_get(pt->p);
		pm->start_ns = m->start_ns;
		pm->duration_ns = m->duration_ns;
		pm->period_ns = m->period_ns;
		pm->time_kind = m->time_kind;
		for (uint32_t i = 0; pt->p != c->p && i < m->nlabels; i++)
			hm_profile_set_label(pt->p, hm_profile_str(c->p, m->labels[i].key),
					     hm_profile_str(c->p, m->labels[i].value));
		uint32_t len = 0;
		const void *blob = c->sets.n ? hm_intern_get(&c->sets, g, &len) : NULL;
		int64_t enc[2 * HM_PPROF_MAX_LABEL_KEYS];
		if (len > sizeof enc)
			len = 0;
		if (len)
			memcpy(enc, blob, len);
		for (uint32_t e = 0; e + 1 < len / sizeof *enc; e += 2) {
			uint32_t k = (uint32_t)enc[e];
			const char *v = enc[e + 1] < 0 ? HM_PPROF_OTHER_VALUE : c->vals[k][enc[e + 1] - 1];
			pt->keys[pt->nlabels] = strdup(c->keys[k]);
			pt->values[pt->nlabels] = strdup(v);
			if (!pt->keys[pt->nlabels] || !pt->values[pt->nlabels++])
				return hm_error(HM_ENOMEM, "out of memory reading OTLP");
		}
	}
	return HM_OK;
}

static int convert(const OReq *r, hm_profile **out, hm_pprof_split *sp)
{
	const ODict *d = r->dictionary;
	if (!d || !d->n_string_table || !d->string_table[0] || d->string_table[0][0])
		return hm_error(HM_EINVAL, "OTLP: dictionary missing or string_table[0] != \"\"");
	/* Pick the profiles: the first time profile, and count profiles. */
	int has_ts = 0, has_time = 0, has_count = 0, wall = 0;
	for (size_t i = 0; i < r->n_resource_profiles; i++) {
		const Opentelemetry__Proto__Profiles__V1development__ResourceProfiles *rp =
			r->resource_profiles[i];
		for (size_t j = 0; j < rp->n_scope_profiles; j++)
			for (size_t k = 0; k < rp->scope_profiles[j]->n_profiles; k++) {
				const OProfile *pr = rp->scope_profiles[j]->profiles[k];
				int role = profile_role(d, pr, &wall);
				if (role < 0)
					return hm_error(HM_EINVAL, "OTLP: sample_type has a bad string index");
				has_time |= role == V_TIME;
				has_count |= role == V_COUNT;
				for (size_t s = 0; role == V_TIME && s < pr->n_samples; s++)
					has_ts |= pr->samples[s]->n_timestamps_unix_nano > 0;
			}
	}
	ctx c = {.d = d, .split = sp != NULL, .has_ts = has_ts};
	hm_intern_init(&c.sets);
	c.p = hm_profile_new(has_ts);
	c.frames = malloc(HM_READ_MAX_DEPTH * sizeof *c.frames);
	c.stack_ids = malloc((d->n_stack_table + 1) * sizeof *c.stack_ids);
	if (c.stack_ids)
		memset(c.stack_ids, 0xff, (d->n_stack_table + 1) * sizeof *c.stack_ids);
	int rc = HM_OK;
	if (!c.p || !c.frames || !c.stack_ids)
		rc = hm_error(HM_ENOMEM, "out of memory reading OTLP");
	else
		rc = build_locations(&c);
	hm_profile_meta *meta = c.p ? hm_profile_meta_get(c.p) : NULL;
	int first = 1;
	for (size_t i = 0; rc == HM_OK && i < r->n_resource_profiles; i++) {
		const Opentelemetry__Proto__Profiles__V1development__ResourceProfiles *rp =
			r->resource_profiles[i];
		if (rp->resource)
			for (size_t a = 0; a < rp->resource->n_attributes; a++) {
				const Opentelemetry__Proto__Common__V1__KeyValue *kv =
					rp->resource->attributes[a];
				char buf[32];
				const char *key = kv->key && *kv->key ? kv->key : dstr(d, kv->key_strindex);
				const char *val = any_text(d, kv->value, buf, sizeof buf);
				if (key && *key && val && meta->nlabels < 32)
					hm_profile_set_label(c.p, key, val);
			}
		for (size_t j = 0; rc == HM_OK && j < rp->n_scope_profiles; j++)
			for (size_t k = 0; rc == HM_OK && k < rp->scope_profiles[j]->n_profiles; k++) {
				const OProfile *pr = rp->scope_profiles[j]->profiles[k];
				int role = profile_role(d, pr, &wall);
				if (role == V_SKIP && (has_time || has_count))
					continue;
				if (role == V_COUNT && has_ts)
					continue;   /* counts come from the timestamps */
				rc = add_profile(&c, pr, role == V_SKIP ? V_COUNT : role,
						 role == V_TIME && (has_ts || !has_count));
				if (first) {
					meta->start_ns = pr->time_unix_nano;
					meta->duration_ns = pr->duration_nano;
					meta->period_ns = pr->period > 0 ? (uint64_t)pr->period : 0;
					first = 0;
				}
			}
	}
	if (rc == HM_OK && meta)
		meta->time_kind = wall ? HM_TIME_WALL : HM_TIME_CPU;
	if (rc == HM_OK && sp)
		rc = split_out(&c, sp);
	for (uint32_t k = 0; k < c.nkeys; k++) {
		free(c.keys[k]);
		for (uint32_t v = 0; v < c.nvals[k]; v++)
			free(c.vals[k][v]);
	}
	for (size_t g = 0; g < 2 * MAX_GROUPS; g++)
		hm_profile_free(c.gp[g]);
	hm_intern_free(&c.sets);
	free(c.frames);
	free(c.stack_ids);
	free(c.loc_first);
	free(c.loc_frames);
	if (rc < 0 || sp) {
		hm_profile_free(c.p);
		return rc;
	}
	*out = c.p;
	return HM_OK;
}

int hm_decode_otlp(const unsigned char *buf, size_t len, hm_profile **out)
{
	int rc = hm_pb_check(&opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__descriptor,
			     buf, len, "OTLP", 64);  /* pprof is mostly unknown to OTLP */
	if (rc)
		return rc;
	OReq *r = opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__unpack(NULL, len, buf);
	if (!r)
		return 1;
	rc = r->dictionary && r->n_resource_profiles ? convert(r, out, NULL) : 1;
	opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__free_unpacked(r, NULL);
	return rc;
}

int hm_decode_otlp_json(json_t *root, hm_profile **out)
{
	ProtobufCMessage *m = hm_pb_from_json(
		&opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__descriptor,
		root);
	if (!m)
		return HM_EINVAL;
	int rc = convert((const OReq *)m, out, NULL);
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

int hm_decode_otlp_split(const unsigned char *buf, size_t len, hm_pprof_split *out)
{
	memset(out, 0, sizeof *out);
	int rc = hm_pb_check(&opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__descriptor,
			     buf, len, "OTLP", 64);
	if (rc)
		return rc;
	OReq *r = opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__unpack(NULL, len, buf);
	if (!r)
		return 1;
	rc = r->dictionary && r->n_resource_profiles ? convert(r, NULL, out) : 1;
	opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__free_unpacked(r, NULL);
	if (rc)
		hm_pprof_split_free(out);
	return rc;
}
