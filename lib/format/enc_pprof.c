/* enc_pprof.c - write a profile as pprof (perftools.profiles.Profile).
 *
 * The hm_profile is already aggregated per (stack, thread), so the message is
 * built straight from it with protobuf-c: the profile's own string table is
 * reused as pprof's (index 0 is ""), a few fixed strings are appended, every
 * frame becomes one Location (id = frame id + 1) and each distinct
 * (name, file, start_line) one Function (names with '<' made readable for
 * pprof's tools, readable_name). Samples carry [count, time ns] and
 * thread_id / thread_name labels, and samples taken inside an OpenTelemetry
 * span trace_id / span_id (hex, as OpenTelemetry writes them) / span_name /
 * local_root_span_name labels. Memory is proportional to distinct stacks
 * and frames, never to the number of raw samples. The packed bytes are
 * gzip-compressed with zlib for the on-disk form. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/intern.h"
#include "format/codec.h"
#include "format/gzip.h"
#include "perftools/profiles/profile.pb-c.h"

typedef Perftools__Profiles__Profile PbProfile;
typedef Perftools__Profiles__Sample PbSample;
typedef Perftools__Profiles__Location PbLocation;
typedef Perftools__Profiles__Line PbLine;
typedef Perftools__Profiles__Function PbFunction;
typedef Perftools__Profiles__Label PbLabel;
typedef Perftools__Profiles__ValueType PbValueType;

enum { S_SAMPLES, S_COUNT, S_TIME, S_NS, S_TID, S_TNAME, S_BINARY, S_TRACE, S_SPAN, S_SPAN_NAME,
       S_ROOT_NAME, S_NFIXED };
#define SPAN_LABELS 4   /* trace_id, span_id, span_name, local_root_span_name */

/* Name of the main binary for the single mapping pprof readers expect:
 * the executable's label, else "python" for a profile with Python frames,
 * else none (a profile from another runtime). */
static const char *binary_name(const hm_profile *p)
{
	const hm_profile_meta *m = hm_profile_meta_cget(p);
	for (uint32_t i = 0; i < m->nlabels; i++)
		if (!strcmp(hm_profile_str(p, m->labels[i].key), "process.executable.name"))
			return hm_profile_str(p, m->labels[i].value);
	for (uint32_t f = 0; f < hm_profile_nframes(p); f++)
		if (hm_profile_frame(p, f)->kind == HM_FRAME_PYTHON)
			return "python";
	return "";
}

/* pprof readers cut a function name at its first '<' (C++ template
 * arguments), so "<module>" or "<lambda>" would show as nothing: the name
 * is written with '<' '>' as U+2039 U+203A (the real name stays in
 * system_name, which homura's reader prefers then). NULL when unchanged. */
static char *readable_name(const char *s)
{
	if (!strchr(s, '<'))
		return NULL;
	size_t n = strlen(s);
	char *o = malloc(3 * n + 1), *w = o;
	if (!o)
		return NULL;
	for (; *s; s++) {
		if (*s == '<' || *s == '>') {
			memcpy(w, *s == '<' ? "\xe2\x80\xb9" : "\xe2\x80\xba", 3);
			w += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = 0;
	return o;
}

int hm_encode_pprof(const hm_profile *p, int gzip, unsigned char **buf, size_t *len)
{
	const hm_profile_meta *meta = hm_profile_meta_cget(p);
	uint32_t nstr = hm_profile_nstrings(p);
	uint32_t nframes = hm_profile_nframes(p);
	uint32_t nthreads = hm_profile_nthreads(p);
	size_t nsamples = hm_profile_nsamples(p);
	int rc = HM_ENOMEM;
	hm_intern funcs;
	hm_intern_init(&funcs);

	uint32_t nlabels = meta->nlabels;
	uint32_t nspans = hm_profile_nspans(p);
	uint32_t nrenamed = 0;     /* names with '<': one more string each */
	for (uint32_t f = 0; f < nframes; f++)
		nrenamed += strchr(hm_profile_str(p, hm_profile_frame(p, f)->name), '<') != NULL;
	size_t ntab = (size_t)nstr + S_NFIXED + nlabels + 2 * (size_t)nspans;
	size_t ntab_max = ntab + nrenamed;
	char **strtab = calloc(ntab_max + 1, sizeof *strtab);
	char **renamed = calloc(nrenamed + 1, sizeof *renamed);
	uint32_t nren = 0;
	char **label_text = calloc(nlabels + 1, sizeof *label_text);
	PbLocation *locs = calloc(nframes + 1, sizeof *locs);
	PbLocation **locp = calloc(nframes + 1, sizeof *locp);
	PbLine *lines = calloc(nframes + 1, sizeof *lines);
	PbLine **linep = calloc(nframes + 1, sizeof *linep);
	PbFunction *fns = calloc(nframes + 1, sizeof *fns);
	PbFunction **fnp = calloc(nframes + 1, sizeof *fnp);
	PbSample *smp = calloc(nsamples + 1, sizeof *smp);
	PbSample **smpp = calloc(nsamples + 1, sizeof *smpp);
	int64_t *values = calloc(2 * nsamples + 1, sizeof *values);
	PbLabel *tlabels = calloc(2 * (size_t)nthreads + 1, sizeof *tlabels);
	PbLabel **tlabelp = calloc(2 * (size_t)nthreads + 1, sizeof *tlabelp);
	int64_t *comments = calloc(nlabels + 1, sizeof *comments);
	char *hex = calloc((size_t)nspans + 1, 33 + 17);
	PbLabel *slabels = calloc((size_t)nspans * SPAN_LABELS + 1, sizeof *slabels);
	PbLabel **sampl = calloc(nsamples * (2 + SPAN_LABELS) + 1, sizeof *sampl);
	size_t nlocids = 0;
	for (size_t i = 0; i < nsamples; i++) {
		uint32_t n;
		hm_profile_stack(p, hm_profile_sample(p, i)->stack, &n);
		nlocids += n;
	}
	uint64_t *locids = calloc(nlocids + 1, sizeof *locids);
	unsigned char *packed = NULL;
	if (!strtab || !renamed || !label_text || !locs || !locp || !lines || !linep || !fns || !fnp ||
	    !smp || !smpp || !values || !tlabels || !tlabelp || !comments || !locids || !hex ||
	    !slabels || !sampl)
		goto out;

	for (uint32_t i = 0; i < nstr; i++)
		strtab[i] = (char *)hm_profile_str(p, i);
	int wall = meta->time_kind == HM_TIME_WALL;
	static const char *fixed[S_NFIXED] = {"samples", "count", NULL, "nanoseconds",
					      "thread_id", "thread_name", NULL, "trace_id", "span_id",
					      "span_name", "local_root_span_name"};
	/* Memory profiles (analyze/memory.c) name their value and its unit. */
	static const char *mem_type[3] = {"alloc_space", "alloc_objects", "inuse_space"};
	static const char *mem_unit[3] = {"bytes", "count", "bytes"};
	int mem = meta->time_kind >= HM_TIME_ALLOC_SPACE && meta->time_kind <= HM_TIME_INUSE_SPACE
		  ? meta->time_kind - HM_TIME_ALLOC_SPACE : -1;
	for (int i = 0; i < S_NFIXED; i++)
		strtab[nstr + i] = (char *)(i == S_TIME ? (mem >= 0 ? mem_type[mem] : wall ? "wall" : "cpu") :
					    i == S_NS && mem >= 0 ? mem_unit[mem] :
					    i == S_BINARY ? binary_name(p) : fixed[i]);
	/* Resource labels travel as "key=value" comments. */
	for (uint32_t i = 0; i < nlabels; i++) {
		const char *k = hm_profile_str(p, meta->labels[i].key);
		const char *v = hm_profile_str(p, meta->labels[i].value);
		if (asprintf(&label_text[i], "%s=%s", k, v) < 0) {
			label_text[i] = NULL;
			goto out;
		}
		strtab[nstr + S_NFIXED + i] = label_text[i];
		comments[i] = nstr + S_NFIXED + i;
	}

	/* Span labels: up to four per span, shared by its samples. */
	size_t sbase = (size_t)nstr + S_NFIXED + nlabels;
	for (uint32_t i = 1; i < nspans; i++) {
		const hm_span_ref *sp = hm_profile_span(p, i);
		char *th = hex + (size_t)i * 50, *sh = th + 33;
		PbLabel *l = &slabels[(size_t)i * SPAN_LABELS];
		for (int k = 0; k < SPAN_LABELS; k++)
			perftools__profiles__label__init(&l[k]);
		hm_span_trace_hex(sp, th);
		hm_span_id_hex(sp, sh);
		strtab[sbase + 2 * i] = th;
		strtab[sbase + 2 * i + 1] = sh;
		l[0].key = nstr + S_TRACE;
		l[0].str = sp->trace_hi || sp->trace_lo ? (int64_t)(sbase + 2 * i) : 0;
		l[1].key = nstr + S_SPAN;
		l[1].str = sp->span_id ? (int64_t)(sbase + 2 * i + 1) : 0;
		l[2].key = nstr + S_SPAN_NAME;
		l[2].str = sp->name;
		l[3].key = nstr + S_ROOT_NAME;
		l[3].str = sp->root;
	}
	for (size_t i = sbase; i < ntab; i++)
		if (!strtab[i])
			strtab[i] = "";

	/* Functions (deduplicated) and one location per frame. */
	size_t nfns = 0;
	for (uint32_t f = 0; f < nframes; f++) {
		const hm_frame *fr = hm_profile_frame(p, f);
		uint32_t key[3] = {fr->name, fr->file, (uint32_t)fr->start_line};
		int added = 0;
		uint32_t fid = hm_intern_put(&funcs, key, sizeof key, &added);
		if (fid == UINT32_MAX)
			goto out;
		if (added) {
			PbFunction *fn = &fns[nfns];
			perftools__profiles__function__init(fn);
			fn->id = fid + 1;
			fn->name = fr->name;
			fn->system_name = fr->name;
			char *rn = readable_name(hm_profile_str(p, fr->name));
			if (rn && nren < nrenamed) {
				renamed[nren++] = rn;
				strtab[ntab] = rn;
				fn->name = (int64_t)ntab++;
			} else {
				free(rn);
			}
			fn->filename = fr->file;
			fn->start_line = fr->start_line;
			fnp[nfns++] = fn;
		}
		perftools__profiles__line__init(&lines[f]);
		lines[f].function_id = fid + 1;
		lines[f].line = fr->line;
		linep[f] = &lines[f];
		perftools__profiles__location__init(&locs[f]);
		locs[f].id = (uint64_t)f + 1;
		locs[f].mapping_id = 1;
		locs[f].n_line = 1;
		locs[f].line = &linep[f];
		locp[f] = &locs[f];
	}

	/* Thread labels: two per thread, shared by that thread's samples. */
	for (uint32_t t = 0; t < nthreads; t++) {
		const hm_thread *th = hm_profile_thread(p, t);
		PbLabel *l = &tlabels[2 * t];
		perftools__profiles__label__init(&l[0]);
		perftools__profiles__label__init(&l[1]);
		l[0].key = nstr + S_TID;
		l[0].num = (int64_t)th->tid;
		l[1].key = nstr + S_TNAME;
		l[1].str = th->name;
		tlabelp[2 * t] = &l[0];
		tlabelp[2 * t + 1] = &l[1];
	}

	uint64_t *lp = locids;
	for (size_t i = 0; i < nsamples; i++) {
		const hm_sample *s = hm_profile_sample(p, i);
		uint32_t n;
		const uint32_t *st = hm_profile_stack(p, s->stack, &n);
		PbSample *ps = &smp[i];
		perftools__profiles__sample__init(ps);
		for (uint32_t k = 0; k < n; k++)
			lp[k] = (uint64_t)st[n - 1 - k] + 1;   /* leaf first */
		ps->location_id = lp;
		ps->n_location_id = n;
		lp += n;
		values[2 * i] = s->count;
		values[2 * i + 1] = s->weight_ns;
		ps->value = &values[2 * i];
		ps->n_value = 2;
		PbLabel **sl = &sampl[i * (2 + SPAN_LABELS)];
		size_t nl = 0;
		if (s->thread < nthreads) {
			const hm_thread *th = hm_profile_thread(p, s->thread);
			sl[nl++] = tlabelp[2 * s->thread];
			if (th->name)
				sl[nl++] = tlabelp[2 * s->thread + 1];
		}
		if (s->span && s->span < nspans) {
			/* labels with no value (ids over the cap, no root) are left out */
			PbLabel *l = &slabels[(size_t)s->span * SPAN_LABELS];
			for (int k = 0; k < SPAN_LABELS; k++)
				if (l[k].str)
					sl[nl++] = &l[k];
		}
		ps->label = nl ? sl : NULL;
		ps->n_label = nl;
		smpp[i] = ps;
	}

	PbValueType st_count = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
	PbValueType st_time = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
	PbValueType period_type = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
	st_count.type = nstr + S_SAMPLES;
	st_count.unit = nstr + S_COUNT;
	st_time.type = nstr + S_TIME;
	st_time.unit = nstr + S_NS;
	period_type = st_time;
	PbValueType *stypes[2] = {&st_count, &st_time};

	/* One symbolic mapping: frames come with names, files and lines. */
	Perftools__Profiles__Mapping map = PERFTOOLS__PROFILES__MAPPING__INIT;
	Perftools__Profiles__Mapping *mapp[1] = {&map};
	map.id = 1;
	map.filename = nstr + S_BINARY;
	map.has_functions = map.has_filenames = map.has_line_numbers = 1;

	PbProfile msg = PERFTOOLS__PROFILES__PROFILE__INIT;
	msg.n_mapping = 1;
	msg.mapping = mapp;
	msg.n_sample_type = 2;
	msg.sample_type = stypes;
	msg.n_sample = nsamples;
	msg.sample = smpp;
	msg.n_location = nframes;
	msg.location = locp;
	msg.n_function = nfns;
	msg.function = fnp;
	msg.n_string_table = ntab;
	msg.string_table = strtab;
	msg.time_nanos = (int64_t)meta->start_ns;
	msg.duration_nanos = (int64_t)meta->duration_ns;
	msg.period_type = &period_type;
	msg.period = (int64_t)meta->period_ns;
	msg.n_comment = nlabels;
	msg.comment = comments;
	/* Without times (e.g. from collapsed stacks) counts are what matters. */
	msg.default_sample_type = hm_profile_total_weight(p) ? nstr + S_TIME : nstr + S_SAMPLES;

	size_t plen = perftools__profiles__profile__get_packed_size(&msg);
	packed = malloc(plen + 1);
	if (!packed)
		goto out;
	perftools__profiles__profile__pack(&msg, packed);
	if (gzip) {
		rc = hm_gzip(packed, plen, buf, len);
	} else {
		*buf = packed;
		*len = plen;
		packed = NULL;
		rc = HM_OK;
	}
out:
	if (rc == HM_ENOMEM)
		hm_error(HM_ENOMEM, "out of memory encoding pprof");
	if (label_text)
		for (uint32_t i = 0; i < nlabels; i++)
			free(label_text[i]);
	free(label_text);
	for (uint32_t i = 0; renamed && i < nren; i++)
		free(renamed[i]);
	free(renamed);
	free(packed);
	free(strtab);
	free(locs);
	free(locp);
	free(lines);
	free(linep);
	free(fns);
	free(fnp);
	free(smp);
	free(smpp);
	free(values);
	free(tlabels);
	free(tlabelp);
	free(comments);
	free(locids);
	free(hex);
	free(slabels);
	free(sampl);
	hm_intern_free(&funcs);
	return rc;
}

int hm_write_pprof(const hm_profile *p, FILE *out, const hm_write_opts *o)
{
	unsigned char *buf;
	size_t len;
	int rc = hm_encode_pprof(p, 1, &buf, &len);
	if (rc < 0)
		return rc;
	size_t w = fwrite(buf, 1, len, out);
	free(buf);
	if (w != len)
		return hm_error(HM_ESYS, "writing pprof output failed");
	return HM_OK;
}
