/* enc_otlp.c - write a profile as an OTLP ExportProfilesServiceRequest
 * (opentelemetry.proto.*.profiles.v1development), binary or JSON.
 *
 * One shared dictionary: the profile's strings (reused as the string table,
 * index 0 = ""), one Function per distinct (name, file, start_line), one
 * Location per frame (index = frame id + 1, tagged profile.frame.type =
 * cpython / native / kernel), one Stack per profile stack (index = stack id
 * + 1, leaf first), attributes for thread.id / thread.name, and one Link per
 * OpenTelemetry span the samples ran in (trace and span ids; a sample's
 * link_index names its span, 0 outside spans; span_name and
 * local_root_span_name sample attributes name it). Every table
 * starts with its zero value. One ResourceProfiles carries the profile's
 * labels as resource attributes; its scope holds two Profiles, each with one
 * sample type: CPU (or wall) nanoseconds first, then sample counts, so
 * counts survive a round trip. When the timeline covers every sample the
 * time profile carries per-sample values and timestamps_unix_nano.
 * JSON goes through the descriptor-driven mapping in pbjson.c. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "base/intern.h"
#include "format/codec.h"
#include "opentelemetry/proto/collector/profiles/v1development/profiles_service.pb-c.h"
#include "format/pbjson.h"

typedef Opentelemetry__Proto__Profiles__V1development__Profile OProfile;
typedef Opentelemetry__Proto__Profiles__V1development__Sample OSample;
typedef Opentelemetry__Proto__Profiles__V1development__Location OLocation;
typedef Opentelemetry__Proto__Profiles__V1development__Line OLine;
typedef Opentelemetry__Proto__Profiles__V1development__Function OFunction;
typedef Opentelemetry__Proto__Profiles__V1development__Stack OStack;
typedef Opentelemetry__Proto__Profiles__V1development__Mapping OMapping;
typedef Opentelemetry__Proto__Profiles__V1development__Link OLink;
typedef Opentelemetry__Proto__Profiles__V1development__KeyValueAndUnit OKVU;
typedef Opentelemetry__Proto__Profiles__V1development__ValueType OValueType;
typedef Opentelemetry__Proto__Profiles__V1development__ProfilesDictionary ODict;
typedef Opentelemetry__Proto__Profiles__V1development__ResourceProfiles OResProf;
typedef Opentelemetry__Proto__Profiles__V1development__ScopeProfiles OScopeProf;
typedef Opentelemetry__Proto__Common__V1__AnyValue OAny;
typedef Opentelemetry__Proto__Common__V1__KeyValue OKV;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope OScope;
typedef Opentelemetry__Proto__Resource__V1__Resource OResource;
typedef Opentelemetry__Proto__Collector__Profiles__V1development__ExportProfilesServiceRequest OReq;

#define ANY_STR OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE
#define ANY_INT OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE

enum { X_SAMPLES, X_COUNT, X_TIME, X_NS, X_FRAMETYPE, X_TID, X_TNAME, X_CPYTHON, X_NATIVE,
       X_KERNEL, X_SPAN_NAME, X_ROOT_NAME, X_N };

/* All the memory behind one request; freed in one place. */
typedef struct otlp_build {
	OReq req;
	ODict dict;
	OResProf rp, *rpp[1];
	OScopeProf sp, *spp[1];
	OScope scope;
	OResource res;
	OProfile prof[2], *profp[2];
	OValueType vt[3];
	OMapping map0, *mapp[1];
	OLink *links, **linkp;    /* [0] zero, then one per span */
	uint8_t *link_ids;        /* 24 bytes per span: trace id, span id */
	uint32_t nlinks;
	int32_t *link_of;         /* span id -> link index (0: none) */
	char **strtab;
	OFunction *fns, **fnp;
	OLocation *locs, **locp;
	OLine *lines, **linep;
	int32_t *loc_attr;
	OStack *stacks, **stackp;
	int32_t *stack_locs;
	OKVU *attrs, **attrp;
	OAny *anys;
	int32_t *thread_attr;     /* 2 per thread */
	int32_t *span_attr;       /* 2 per span: name, local root name (0: none) */
	int32_t *sample_attr;     /* 4 per sample: its attribute indices */
	OKV *rkv, **rkvp;
	OAny *rany;
	OSample *smp[2], **smpp[2];
	int64_t *vals[2];
	uint64_t *ts;
	uint8_t pid[2][16];      /* profile ids, one per profile */
} otlp_build;

static void build_free(otlp_build *b)
{
	free(b->strtab);
	free(b->fns);
	free(b->fnp);
	free(b->locs);
	free(b->locp);
	free(b->lines);
	free(b->linep);
	free(b->loc_attr);
	free(b->stacks);
	free(b->stackp);
	free(b->stack_locs);
	free(b->attrs);
	free(b->attrp);
	free(b->anys);
	free(b->thread_attr);
	free(b->span_attr);
	free(b->sample_attr);
	free(b->rkv);
	free(b->rkvp);
	free(b->rany);
	for (int i = 0; i < 2; i++) {
		free(b->smp[i]);
		free(b->smpp[i]);
		free(b->vals[i]);
	}
	free(b->ts);
	free(b->links);
	free(b->linkp);
	free(b->link_ids);
	free(b->link_of);
}

static int all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* Does the timeline account for every sample? Then it can be sent as
 * per-sample timestamps without changing the totals. */
static int timeline_complete(const hm_profile *p)
{
	size_t ne = hm_profile_nevents(p);
	if (!ne || (int64_t)ne != hm_profile_total_count(p))
		return 0;
	int64_t w = 0;
	for (size_t i = 0; i < ne; i++)     /* saturating, as the total is */
		w = hm_sat_add(w, hm_profile_event(p, i)->weight_ns);
	return w == hm_profile_total_weight(p);
}

static int build(const hm_profile *p, otlp_build *b)
{
	const hm_profile_meta *meta = hm_profile_meta_cget(p);
	uint32_t nstr = hm_profile_nstrings(p), nframes = hm_profile_nframes(p);
	uint32_t nstacks = hm_profile_nstacks(p), nthreads = hm_profile_nthreads(p);
	size_t nsamples = hm_profile_nsamples(p);
	hm_intern funcs;
	int rc = HM_ENOMEM;
	hm_intern_init(&funcs);
	memset(b, 0, sizeof *b);

	size_t nstack_locs = 0;
	for (uint32_t s = 0; s < nstacks; s++) {
		uint32_t n;
		hm_profile_stack(p, s, &n);
		nstack_locs += n;
	}
	uint32_t nspans_all = hm_profile_nspans(p);
	size_t nattrs = 1 + 3 + 2 * (size_t)nthreads + 2 * (size_t)nspans_all;
	b->strtab = calloc((size_t)nstr + X_N, sizeof *b->strtab);
	b->fns = calloc(nframes + 1, sizeof *b->fns);
	b->fnp = calloc(nframes + 1, sizeof *b->fnp);
	b->locs = calloc(nframes + 1, sizeof *b->locs);
	b->locp = calloc(nframes + 1, sizeof *b->locp);
	b->lines = calloc(nframes + 1, sizeof *b->lines);
	b->linep = calloc(nframes + 1, sizeof *b->linep);
	b->loc_attr = calloc(nframes + 1, sizeof *b->loc_attr);
	b->stacks = calloc(nstacks + 1, sizeof *b->stacks);
	b->stackp = calloc(nstacks + 1, sizeof *b->stackp);
	b->stack_locs = calloc(nstack_locs + 1, sizeof *b->stack_locs);
	b->attrs = calloc(nattrs, sizeof *b->attrs);
	b->attrp = calloc(nattrs, sizeof *b->attrp);
	b->anys = calloc(nattrs, sizeof *b->anys);
	b->span_attr = calloc(2 * (size_t)nspans_all + 1, sizeof *b->span_attr);
	b->sample_attr = calloc(4 * nsamples + 1, sizeof *b->sample_attr);
	b->thread_attr = calloc(2 * (size_t)nthreads + 1, sizeof *b->thread_attr);
	b->rkv = calloc(meta->nlabels + 1, sizeof *b->rkv);
	b->rkvp = calloc(meta->nlabels + 1, sizeof *b->rkvp);
	b->rany = calloc(meta->nlabels + 1, sizeof *b->rany);
	for (int i = 0; i < 2; i++) {
		b->smp[i] = calloc(nsamples + 1, sizeof *b->smp[i]);
		b->smpp[i] = calloc(nsamples + 1, sizeof *b->smpp[i]);
	}
	if (!b->strtab || !b->fns || !b->fnp || !b->locs || !b->locp || !b->lines ||
	    !b->linep || !b->loc_attr || !b->stacks || !b->stackp || !b->stack_locs ||
	    !b->attrs || !b->attrp || !b->anys || !b->thread_attr || !b->rkv || !b->rkvp ||
	    !b->rany || !b->smp[0] || !b->smp[1] || !b->smpp[0] || !b->smpp[1] || !b->span_attr ||
	    !b->sample_attr)
		goto out;

	/* Strings. */
	for (uint32_t i = 0; i < nstr; i++)
		b->strtab[i] = (char *)hm_profile_str(p, i);
	static const char *fixed[X_N] = {"samples", "count", NULL, "nanoseconds",
		"profile.frame.type", "thread.id", "thread.name", "cpython", "native", "kernel",
		"span_name", "local_root_span_name"};
	for (int i = 0; i < X_N; i++)
		b->strtab[nstr + i] = (char *)(i == X_TIME ?
			(meta->time_kind == HM_TIME_WALL ? "wall" : "cpu") : fixed[i]);

	/* Attribute table: [0] zero, [1..3] frame types, then per thread. */
	size_t na = 0;
	for (size_t i = 0; i < nattrs; i++) {
		opentelemetry__proto__profiles__v1development__key_value_and_unit__init(&b->attrs[i]);
		opentelemetry__proto__common__v1__any_value__init(&b->anys[i]);
		b->attrp[i] = &b->attrs[i];
	}
	na = 1;
	for (int k = 0; k < 3; k++, na++) {
		b->attrs[na].key_strindex = nstr + X_FRAMETYPE;
		b->anys[na].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE_STRINDEX;
		b->anys[na].string_value_strindex = nstr + X_CPYTHON + k;
		b->attrs[na].value = &b->anys[na];
	}
	for (uint32_t t = 0; t < nthreads; t++) {
		const hm_thread *th = hm_profile_thread(p, t);
		b->attrs[na].key_strindex = nstr + X_TID;
		b->anys[na].value_case = ANY_INT;
		b->anys[na].int_value = (int64_t)th->tid;
		b->attrs[na].value = &b->anys[na];
		b->thread_attr[2 * t] = na++;
		b->attrs[na].key_strindex = nstr + X_TNAME;
		b->anys[na].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE_STRINDEX;
		b->anys[na].string_value_strindex = th->name;
		b->attrs[na].value = &b->anys[na];
		b->thread_attr[2 * t + 1] = th->name ? (int32_t)na : 0;
		na++;
	}
	/* Span names (the link carries the ids). */
	for (uint32_t i = 1; i < nspans_all; i++) {
		const hm_span_ref *sp = hm_profile_span(p, i);
		hm_str_id v[2] = {sp ? sp->name : 0, sp ? sp->root : 0};
		for (int k = 0; k < 2; k++) {
			if (!v[k])
				continue;
			b->attrs[na].key_strindex = nstr + (k ? X_ROOT_NAME : X_SPAN_NAME);
			b->anys[na].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE_STRINDEX;
			b->anys[na].string_value_strindex = v[k];
			b->attrs[na].value = &b->anys[na];
			b->span_attr[2 * i + k] = (int32_t)na++;
		}
	}

	/* Functions, lines, locations. Index 0 of each is the zero value. */
	opentelemetry__proto__profiles__v1development__function__init(&b->fns[0]);
	b->fnp[0] = &b->fns[0];
	opentelemetry__proto__profiles__v1development__location__init(&b->locs[0]);
	b->locp[0] = &b->locs[0];
	size_t nfns = 1;
	for (uint32_t f = 0; f < nframes; f++) {
		const hm_frame *fr = hm_profile_frame(p, f);
		uint32_t key[3] = {fr->name, fr->file, (uint32_t)fr->start_line};
		int added = 0;
		uint32_t fid = hm_intern_put(&funcs, key, sizeof key, &added);
		if (fid == UINT32_MAX)
			goto out;
		if (added) {
			OFunction *fn = &b->fns[nfns];
			opentelemetry__proto__profiles__v1development__function__init(fn);
			fn->name_strindex = fr->name;
			fn->system_name_strindex = fr->name;
			fn->filename_strindex = fr->file;
			fn->start_line = fr->start_line;
			b->fnp[nfns++] = fn;
		}
		OLine *ln = &b->lines[f];
		opentelemetry__proto__profiles__v1development__line__init(ln);
		ln->function_index = fid + 1;
		ln->line = fr->line;
		b->linep[f] = ln;
		OLocation *lo = &b->locs[f + 1];
		opentelemetry__proto__profiles__v1development__location__init(lo);
		lo->n_lines = 1;
		lo->lines = &b->linep[f];
		int ft = fr->kind == HM_FRAME_PYTHON ? 1 : fr->kind == HM_FRAME_NATIVE ? 2 :
			 fr->kind == HM_FRAME_KERNEL ? 3 : 0;
		if (ft) {
			b->loc_attr[f] = ft;
			lo->attribute_indices = &b->loc_attr[f];
			lo->n_attribute_indices = 1;
		}
		b->locp[f + 1] = lo;
	}

	/* Stacks, leaf first. */
	opentelemetry__proto__profiles__v1development__stack__init(&b->stacks[0]);
	b->stackp[0] = &b->stacks[0];
	int32_t *sl = b->stack_locs;
	for (uint32_t s = 0; s < nstacks; s++) {
		uint32_t n;
		const uint32_t *st = hm_profile_stack(p, s, &n);
		OStack *os = &b->stacks[s + 1];
		opentelemetry__proto__profiles__v1development__stack__init(os);
		for (uint32_t k = 0; k < n; k++)
			sl[k] = (int32_t)st[n - 1 - k] + 1;
		os->location_indices = sl;
		os->n_location_indices = n;
		sl += n;
		b->stackp[s + 1] = os;
	}

	/* Samples: profile 0 = time, profile 1 = counts. */
	int use_tl = timeline_complete(p);
	size_t ne = use_tl ? hm_profile_nevents(p) : 0;
	b->vals[0] = calloc((ne > nsamples ? ne : nsamples) + 1, sizeof(int64_t));
	b->vals[1] = calloc(nsamples + 1, sizeof(int64_t));
	b->ts = calloc(ne + 1, sizeof(uint64_t));
	if (!b->vals[0] || !b->vals[1] || !b->ts)
		goto out;
	size_t *off = NULL;     /* CSR: events of aggregate i at [off[i], off[i+1]) */
	if (use_tl) {
		hm_intern keys;
		hm_intern_init(&keys);
		uint32_t *idx = malloc((ne + 1) * sizeof *idx);
		size_t *cur = calloc(nsamples + 1, sizeof *cur);
		off = calloc(nsamples + 2, sizeof *off);
		int ok = idx && cur && off;
		for (size_t i = 0; ok && i < nsamples; i++) {
			const hm_sample *s = hm_profile_sample(p, i);
			uint32_t k[2] = {s->stack, s->thread};
			int added;
			ok = hm_intern_put(&keys, k, sizeof k, &added) == i;
		}
		for (size_t e = 0; ok && e < ne; e++) {
			const hm_event *ev = hm_profile_event(p, e);
			uint32_t k[2] = {ev->stack, ev->thread};
			idx[e] = hm_intern_find(&keys, k, sizeof k);
			if (idx[e] == UINT32_MAX)
				ok = 0;
			else
				off[idx[e] + 1]++;
		}
		for (size_t i = 0; ok && i < nsamples; i++)
			off[i + 1] += off[i];
		for (size_t e = 0; ok && e < ne; e++) {
			size_t at = off[idx[e]] + cur[idx[e]]++;
			const hm_event *ev = hm_profile_event(p, e);
			b->vals[0][at] = ev->weight_ns;
			b->ts[at] = ev->t_ns;
		}
		hm_intern_free(&keys);
		free(idx);
		free(cur);
		if (!ok) {
			free(off);
			off = NULL;
			use_tl = 0;
		}
	}
	for (size_t i = 0; i < nsamples; i++) {
		const hm_sample *s = hm_profile_sample(p, i);
		for (int k = 0; k < 2; k++) {
			OSample *o = &b->smp[k][i];
			opentelemetry__proto__profiles__v1development__sample__init(o);
			o->stack_index = (int32_t)s->stack + 1;
			int32_t *ai = &b->sample_attr[4 * i];
			size_t nai = 0;
			if (s->thread < nthreads) {
				ai[nai++] = b->thread_attr[2 * s->thread];
				if (b->thread_attr[2 * s->thread + 1])
					ai[nai++] = b->thread_attr[2 * s->thread + 1];
			}
			if (s->span && s->span < nspans_all) {
				for (int k = 0; k < 2; k++)
					if (b->span_attr[2 * s->span + k])
						ai[nai++] = b->span_attr[2 * s->span + k];
			}
			o->attribute_indices = nai ? ai : NULL;
			o->n_attribute_indices = nai;
			b->smpp[k][i] = o;
		}
		OSample *t = &b->smp[0][i];
		if (use_tl) {
			t->values = &b->vals[0][off[i]];
			t->n_values = off[i + 1] - off[i];
			t->timestamps_unix_nano = &b->ts[off[i]];
			t->n_timestamps_unix_nano = t->n_values;
		} else {
			b->vals[0][i] = s->weight_ns;
			t->values = &b->vals[0][i];
			t->n_values = 1;
		}
		b->vals[1][i] = s->count;
		b->smp[1][i].values = &b->vals[1][i];
		b->smp[1][i].n_values = 1;
	}
	free(off);

	for (int i = 0; i < 3; i++)
		opentelemetry__proto__profiles__v1development__value_type__init(&b->vt[i]);
	b->vt[0].type_strindex = nstr + X_TIME;
	b->vt[0].unit_strindex = nstr + X_NS;
	b->vt[1].type_strindex = nstr + X_SAMPLES;
	b->vt[1].unit_strindex = nstr + X_COUNT;
	b->vt[2] = b->vt[0];    /* period type */
	uint64_t h = meta->start_ns ^ ((uint64_t)time(NULL) << 20) ^ (uint64_t)nsamples * 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 32; i++) {
		h ^= h >> 29;
		h *= 0xbf58476d1ce4e5b9ull;
		b->pid[i / 16][i % 16] = (uint8_t)(h >> 56) | (i % 16 == 0);
	}
	for (int k = 0; k < 2; k++) {
		OProfile *pr = &b->prof[k];
		opentelemetry__proto__profiles__v1development__profile__init(pr);
		pr->sample_type = &b->vt[k];
		pr->n_samples = nsamples;
		pr->samples = b->smpp[k];
		pr->time_unix_nano = meta->start_ns;
		pr->duration_nano = meta->duration_ns;
		pr->period_type = &b->vt[2];
		pr->period = (int64_t)meta->period_ns;
		pr->profile_id.data = b->pid[k];
		pr->profile_id.len = 16;
		b->profp[k] = pr;
	}

	/* Resource attributes from the profile's labels. */
	for (uint32_t i = 0; i < meta->nlabels; i++) {
		OKV *kv = &b->rkv[i];
		OAny *av = &b->rany[i];
		opentelemetry__proto__common__v1__key_value__init(kv);
		opentelemetry__proto__common__v1__any_value__init(av);
		const char *key = hm_profile_str(p, meta->labels[i].key);
		const char *val = hm_profile_str(p, meta->labels[i].value);
		kv->key = (char *)key;
		if (!strcmp(key, "process.pid") && all_digits(val) && strlen(val) < 19) {
			av->value_case = ANY_INT;
			av->int_value = strtoll(val, NULL, 10);
		} else {
			av->value_case = ANY_STR;
			av->string_value = (char *)val;
		}
		kv->value = av;
		b->rkvp[i] = kv;
	}
	opentelemetry__proto__resource__v1__resource__init(&b->res);
	b->res.n_attributes = meta->nlabels;
	b->res.attributes = b->rkvp;
	opentelemetry__proto__common__v1__instrumentation_scope__init(&b->scope);
	b->scope.name = "homura";
	b->scope.version = "0.1.0";
	opentelemetry__proto__profiles__v1development__scope_profiles__init(&b->sp);
	b->sp.scope = &b->scope;
	b->sp.n_profiles = 2;
	b->sp.profiles = b->profp;
	b->spp[0] = &b->sp;
	opentelemetry__proto__profiles__v1development__resource_profiles__init(&b->rp);
	b->rp.resource = &b->res;
	b->rp.n_scope_profiles = 1;
	b->rp.scope_profiles = b->spp;
	b->rpp[0] = &b->rp;

	opentelemetry__proto__profiles__v1development__mapping__init(&b->map0);
	b->mapp[0] = &b->map0;
	/* Links: [0] none, then each span with ids (big-endian bytes, as
	 * OpenTelemetry writes them); samples point at theirs. */
	uint32_t nspans = hm_profile_nspans(p);
	b->links = calloc((size_t)nspans + 1, sizeof *b->links);
	b->linkp = calloc((size_t)nspans + 1, sizeof *b->linkp);
	b->link_ids = calloc((size_t)nspans + 1, 24);
	b->link_of = calloc((size_t)nspans + 1, sizeof *b->link_of);
	if (!b->links || !b->linkp || !b->link_ids || !b->link_of)
		goto out;
	opentelemetry__proto__profiles__v1development__link__init(&b->links[0]);
	b->linkp[0] = &b->links[0];
	b->nlinks = 1;
	for (uint32_t i = 1; i < nspans; i++) {
		const hm_span_ref *sp = hm_profile_span(p, i);
		if (!sp || (!sp->trace_hi && !sp->trace_lo) || !sp->span_id)
			continue;
		uint8_t *id = b->link_ids + 24 * (size_t)i;
		for (int k = 0; k < 8; k++) {
			id[k] = (uint8_t)(sp->trace_hi >> (56 - 8 * k));
			id[8 + k] = (uint8_t)(sp->trace_lo >> (56 - 8 * k));
			id[16 + k] = (uint8_t)(sp->span_id >> (56 - 8 * k));
		}
		OLink *l = &b->links[b->nlinks];
		opentelemetry__proto__profiles__v1development__link__init(l);
		l->trace_id.data = id;
		l->trace_id.len = 16;
		l->span_id.data = id + 16;
		l->span_id.len = 8;
		b->linkp[b->nlinks] = l;
		b->link_of[i] = (int32_t)b->nlinks++;
	}
	for (size_t i = 0; i < nsamples; i++) {
		const hm_sample *s = hm_profile_sample(p, i);
		if (s->span < nspans && b->link_of[s->span])
			b->smp[0][i].link_index = b->smp[1][i].link_index = b->link_of[s->span];
	}
	opentelemetry__proto__profiles__v1development__profiles_dictionary__init(&b->dict);
	b->dict.n_mapping_table = 1;
	b->dict.mapping_table = b->mapp;
	b->dict.n_location_table = nframes + 1;
	b->dict.location_table = b->locp;
	b->dict.n_function_table = nfns;
	b->dict.function_table = b->fnp;
	b->dict.n_link_table = b->nlinks;
	b->dict.link_table = b->linkp;
	b->dict.n_string_table = (size_t)nstr + X_N;
	b->dict.string_table = b->strtab;
	b->dict.n_attribute_table = na;
	b->dict.attribute_table = b->attrp;
	b->dict.n_stack_table = nstacks + 1;
	b->dict.stack_table = b->stackp;

	opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__init(&b->req);
	b->req.n_resource_profiles = 1;
	b->req.resource_profiles = b->rpp;
	b->req.dictionary = &b->dict;
	rc = HM_OK;
out:
	hm_intern_free(&funcs);
	if (rc < 0)
		hm_error(rc, "out of memory encoding OTLP");
	return rc;
}

int hm_encode_otlp(const hm_profile *p, unsigned char **buf, size_t *len)
{
	otlp_build *b = malloc(sizeof *b);
	if (!b)
		return hm_error(HM_ENOMEM, "out of memory encoding OTLP");
	int rc = build(p, b);
	if (rc == HM_OK) {
		size_t n = opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__get_packed_size(&b->req);
		*buf = malloc(n + 1);
		if (!*buf) {
			rc = hm_error(HM_ENOMEM, "out of memory encoding OTLP");
		} else {
			opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__pack(&b->req, *buf);
			*len = n;
		}
	}
	build_free(b);
	free(b);
	return rc;
}

int hm_write_otlp(const hm_profile *p, FILE *out, const hm_write_opts *o)
{
	unsigned char *buf;
	size_t len;
	int rc = hm_encode_otlp(p, &buf, &len);
	if (rc < 0)
		return rc;
	size_t w = fwrite(buf, 1, len, out);
	free(buf);
	return w == len ? HM_OK : hm_error(HM_ESYS, "writing OTLP output failed");
}

int hm_write_otlp_json(const hm_profile *p, FILE *out, const hm_write_opts *o)
{
	otlp_build *b = malloc(sizeof *b);
	if (!b)
		return hm_error(HM_ENOMEM, "out of memory encoding OTLP");
	int rc = build(p, b);
	if (rc == HM_OK) {
		json_t *j = hm_pb_to_json(&b->req.base);
		if (!j || json_dumpf(j, out, JSON_COMPACT) < 0 || fputc('\n', out) == EOF)
			rc = hm_error(HM_ESYS, "writing OTLP JSON output failed");
		json_decref(j);
	}
	build_free(b);
	free(b);
	return rc;
}
