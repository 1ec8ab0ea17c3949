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
 * comments become profile labels. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/intern.h"
#include "format/codec.h"
#include "format/decode.h"
#include "perftools/profiles/profile.pb-c.h"

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

static int convert(const PbProfile *m, hm_profile *p)
{
	int rc = HM_OK;
	hm_intern locs, fns;
	hm_intern_init(&locs);
	hm_intern_init(&fns);
	uint32_t *frames = malloc(HM_READ_MAX_DEPTH * sizeof *frames);
	uint32_t *loc_first = NULL, *loc_frames = NULL;
	if (!frames)
		goto oom;
	if (m->n_string_table == 0 || !m->string_table[0] || m->string_table[0][0])
		return free(frames), hm_error(HM_EINVAL, "pprof: string_table[0] must be \"\"");
	if ((rc = id_map_build(&locs, m->n_location, loc_id, m->location, "location")) < 0 ||
	    (rc = id_map_build(&fns, m->n_function, fn_id, m->function, "function")) < 0)
		goto out;

	/* Sample value indices. */
	int ci = -1, wi = -1;
	for (size_t i = 0; i < m->n_sample_type; i++) {
		const char *ty = pstr(m, m->sample_type[i]->type);
		const char *un = pstr(m, m->sample_type[i]->unit);
		if (!ty || !un) {
			rc = hm_error(HM_EINVAL, "pprof: sample_type has a bad string index");
			goto out;
		}
		if (ci < 0 && !strcmp(un, "count"))
			ci = (int)i;
		else if (wi < 0 && !strcmp(un, "nanoseconds"))
			wi = (int)i;
		if (!strcmp(ty, "wall"))
			hm_profile_meta_get(p)->time_kind = HM_TIME_WALL;
	}
	if (ci < 0 && wi < 0 && m->n_sample_type)
		ci = 0;

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
			if (!*name)
				name = pstr(m, fn->system_name) ? pstr(m, fn->system_name) : "";
			hm_frame f = {0};
			f.name = hm_profile_intern_cstr(p, name);
			f.file = hm_profile_intern_cstr(p, file);
			f.line = (int32_t)ln->line;
			f.start_line = (int32_t)fn->start_line;
			f.kind = hm_decode_guess_kind(file);
			loc_frames[at++] = hm_profile_frame_id(p, &f);
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
		if ((expanded += n) > HM_PB_MAX_FRAMES) {
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
		uint32_t sid = 0;
		if ((have_trace && have_span) || (sname && *sname)) {
			if (!have_trace || !have_span)
				span.trace_hi = span.trace_lo = span.span_id = 0;
			span.name = sname ? hm_profile_intern_cstr(p, sname) : 0;
			span.root = sroot ? hm_profile_intern_cstr(p, sroot) : 0;
			sid = hm_profile_span_id(p, &span);
		}
		uint32_t th = hm_profile_thread_id(p, tid, 0, tname && *tname ? tname : NULL);
		uint32_t st = hm_profile_stack_id(p, frames, n);
		hm_profile_add_span(p, st, th, sid, ci >= 0 ? s->value[ci] : 0,
				    wi >= 0 ? s->value[wi] : 0, 0);
	}
	hm_profile_meta *meta = hm_profile_meta_get(p);
	meta->start_ns = m->time_nanos > 0 ? (uint64_t)m->time_nanos : 0;
	meta->duration_ns = m->duration_nanos > 0 ? (uint64_t)m->duration_nanos : 0;
	meta->period_ns = m->period > 0 ? (uint64_t)m->period : 0;
	for (size_t i = 0; i < m->n_comment; i++) {
		const char *c = pstr(m, m->comment[i]);
		const char *eq = c ? strchr(c, '=') : NULL;
		if (eq && eq != c && meta->nlabels < 32) {
			char key[256];
			snprintf(key, sizeof key, "%.*s", (int)(eq - c), c);
			hm_profile_set_label(p, key, eq + 1);
		}
	}
	goto out;
oom:
	rc = hm_error(HM_ENOMEM, "out of memory reading pprof");
out:
	free(frames);
	free(loc_first);
	free(loc_frames);
	hm_intern_free(&locs);
	hm_intern_free(&fns);
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
	hm_profile *p = NULL;
	if (!m->n_string_table) {
		rc = 1;
	} else if (!(p = hm_profile_new(0))) {
		rc = hm_error(HM_ENOMEM, "out of memory reading pprof");
	} else {
		rc = convert(m, p);
	}
	perftools__profiles__profile__free_unpacked(m, NULL);
	if (rc) {
		hm_profile_free(p);
		return rc;
	}
	*out = p;
	return HM_OK;
}
