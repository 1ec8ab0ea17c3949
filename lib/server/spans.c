/* spans.c - the span series of ingested profiles (server/spans.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "format/filter.h"
#include "server/spans.h"

struct owned {                       /* what one extra request owns */
	char type[HM_STORE_MAX_NAME + 16];
	hm_store_label labels[HM_STORE_MAX_LABELS];
	char *name;                  /* the span_name value */
};

/* One derived profile per span name of p: samples inside spans, under
 * "trace: ..." and "span: ..." frames. names[i] is the name of out[i]. */
static int split(const hm_profile *p, hm_profile **out, char **names, size_t *nout)
{
	uint32_t nspans = hm_profile_nspans(p), nframes = hm_profile_nframes(p);
	uint32_t nthreads = hm_profile_nthreads(p);
	*nout = 0;
	uint32_t *which = calloc((size_t)nspans + 1, sizeof *which);   /* span -> out + 1 */
	uint32_t *scratch = NULL;
	size_t scap = 0;
	if (!which)
		return HM_ENOMEM;
	int rc = HM_OK;
	for (uint32_t s = 1; s < nspans && rc == HM_OK; s++) {
		const hm_span_ref *sp = hm_profile_span(p, s);
		const char *name = sp && *hm_profile_str(p, sp->name) ? hm_profile_str(p, sp->name)
			: "<unnamed>";
		size_t k = 0;
		while (k < *nout && strcmp(names[k], name))
			k++;
		if (k == *nout && *nout == HM_SPAN_MAX_NAMES) {
			name = "<other>";
			k = 0;
			while (k < *nout && strcmp(names[k], name))
				k++;
			if (k == *nout)
				k = *nout - 1;      /* full: the last one takes the rest */
		}
		if (k == *nout) {
			names[k] = strdup(name);
			out[k] = hm_profile_new(0);
			if (!names[k] || !out[k]) {
				free(names[k]);
				hm_profile_free(out[k]);
				rc = HM_ENOMEM;
				break;
			}
			*hm_profile_meta_get(out[k]) = *hm_profile_meta_cget(p);
			hm_profile_meta_get(out[k])->nlabels = 0;
			(*nout)++;
		}
		which[s] = (uint32_t)k + 1;
	}
	for (size_t i = 0; rc == HM_OK && i < hm_profile_nsamples(p); i++) {
		const hm_sample *s = hm_profile_sample(p, i);
		if (!s->span || s->span >= nspans || !which[s->span] || s->thread >= nthreads)
			continue;
		hm_profile *q = out[which[s->span] - 1];
		const hm_span_ref *sp = hm_profile_span(p, s->span);
		uint32_t n;
		const uint32_t *st = hm_profile_stack(p, s->stack, &n);
		if (!st)
			continue;
		if (n + 2 > scap) {
			size_t nc = (n + 2) * 2;
			uint32_t *ns = realloc(scratch, nc * sizeof *ns);
			if (!ns) {
				rc = HM_ENOMEM;
				break;
			}
			scratch = ns;
			scap = nc;
		}
		char text[64];
		char hex[33];
		hm_span_trace_hex(sp, hex);
		snprintf(text, sizeof text, "trace: %s", sp->trace_hi || sp->trace_lo ? hex : "?");
		hm_frame f = {hm_profile_intern_cstr(q, text), 0, 0, 0, HM_FRAME_OTHER};
		scratch[0] = hm_profile_frame_id(q, &f);
		hm_span_id_hex(sp, hex);
		snprintf(text, sizeof text, "span: %s", sp->span_id ? hex : "?");
		f.name = hm_profile_intern_cstr(q, text);
		scratch[1] = hm_profile_frame_id(q, &f);
		for (uint32_t k = 0; k < n; k++)
			scratch[k + 2] = st[k] < nframes ? hm_profile_import_frame(q, p, st[k]) : 0;
		const hm_thread *th = hm_profile_thread(p, s->thread);
		uint32_t tq = hm_profile_thread_id(q, th->tid, th->pid,
						   th->name ? hm_profile_str(p, th->name) : NULL);
		hm_profile_add(q, hm_profile_stack_id(q, scratch, n + 2), tq, s->count, s->weight_ns, 0);
	}
	free(which);
	free(scratch);
	return rc;
}

int hm_span_reqs(const hm_store_put_req *v, size_t n, hm_store_put_req **out, size_t *nout)
{
	*out = NULL;
	*nout = 0;
	size_t cap = 0;
	hm_store_put_req *r = NULL;
	for (size_t i = 0; i < n; i++) {
		const hm_profile *p = v[i].p;
		if (!p || hm_profile_nspans(p) < 2 || v[i].n >= HM_STORE_MAX_LABELS ||
		    strlen(v[i].type) + sizeof HM_SPAN_TYPE_SUFFIX > HM_STORE_MAX_NAME)
			continue;
		hm_profile *parts[HM_SPAN_MAX_NAMES];
		char *names[HM_SPAN_MAX_NAMES];
		size_t np = 0;
		if (split(p, parts, names, &np) != HM_OK) {
			for (size_t k = 0; k < np; k++) {
				hm_profile_free(parts[k]);
				free(names[k]);
			}
			hm_span_reqs_free(r, *nout);
			return hm_error(HM_ENOMEM, "out of memory storing spans");
		}
		for (size_t k = 0; k < np; k++) {
			struct owned *o = calloc(1, sizeof *o);
			if (*nout == cap) {
				size_t nc = cap ? cap * 2 : 8;
				hm_store_put_req *nr = realloc(r, nc * sizeof *nr);
				if (nr) {
					r = nr;
					cap = nc;
				}
			}
			if (!o || *nout == cap) {
				free(o);
				for (size_t j = k; j < np; j++) {
					hm_profile_free(parts[j]);
					free(names[j]);
				}
				hm_span_reqs_free(r, *nout);
				return hm_error(HM_ENOMEM, "out of memory storing spans");
			}
			snprintf(o->type, sizeof o->type, "%s%s", v[i].type, HM_SPAN_TYPE_SUFFIX);
			memcpy(o->labels, v[i].labels, v[i].n * sizeof *o->labels);
			o->name = names[k];
			o->labels[v[i].n] = (hm_store_label){"span_name", o->name};
			/* The request's type points into the owned block: that is
			 * how hm_span_reqs_free finds it. */
			r[(*nout)++] = (hm_store_put_req){o->type, o->labels, v[i].n + 1, v[i].t_s,
							  parts[k]};
		}
	}
	*out = r;
	return HM_OK;
}

void hm_span_reqs_free(hm_store_put_req *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct owned *o = (struct owned *)(void *)((char *)v[i].type - offsetof(struct owned, type));
		hm_profile_free((hm_profile *)v[i].p);
		free(o->name);
		free(o);
	}
	free(v);
}

/* Is t exactly `digits` lowercase or uppercase hex digits? */
static int hex_ok(const char *t, size_t digits)
{
	if (!t || strlen(t) != digits)
		return 0;
	for (size_t i = 0; i < digits; i++)
		if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f') ||
		      (t[i] >= 'A' && t[i] <= 'F')))
			return 0;
	return 1;
}

/* The pseudo frame text at depth d of stack st of p, "" if none. */
static const char *root_text(const hm_profile *p, const uint32_t *st, uint32_t n, uint32_t d)
{
	if (d >= n)
		return "";
	const hm_frame *f = hm_profile_frame(p, st[d]);
	return f && f->kind == HM_FRAME_OTHER ? hm_profile_str(p, f->name) : "";
}

/* Add sample s of p (its stack st, n frames) to q without its first
 * `skip` frames; *scratch (of *scap entries) grows as needed. */
static int copy_sample(hm_profile *q, const hm_profile *p, const hm_sample *s, const uint32_t *st,
		       uint32_t n, uint32_t skip, uint32_t **scratch, size_t *scap)
{
	uint32_t nframes = hm_profile_nframes(p);
	if (n > *scap) {
		uint32_t *ns = realloc(*scratch, (size_t)n * 2 * sizeof *ns);
		if (!ns)
			return hm_error(HM_ENOMEM, "out of memory");
		*scratch = ns;
		*scap = (size_t)n * 2;
	}
	for (uint32_t k = skip; k < n; k++)
		(*scratch)[k - skip] = st[k] < nframes ? hm_profile_import_frame(q, p, st[k]) : 0;
	const hm_thread *th = hm_profile_thread(p, s->thread);
	hm_profile_add(q, hm_profile_stack_id(q, *scratch, n - skip),
		       hm_profile_thread_id(q, th->tid, th->pid,
					    th->name ? hm_profile_str(p, th->name) : NULL),
		       s->count, s->weight_ns, 0);
	return HM_OK;
}

static hm_profile *empty_like(const hm_profile *p)
{
	hm_profile *q = hm_profile_new(0);
	if (q) {
		*hm_profile_meta_get(q) = *hm_profile_meta_cget(p);
		hm_profile_meta_get(q)->nlabels = 0;
	}
	return q;
}

int hm_span_filter(const hm_profile *p, const char *trace_id, const char *span_id,
		   hm_profile **out)
{
	*out = NULL;
	if ((trace_id && !hex_ok(trace_id, 32)) || (span_id && !hex_ok(span_id, 16)))
		return hm_error(HM_EINVAL, "trace_id is 32 hex digits, span_id 16");
	char want_t[48] = "", want_s[32] = "";
	if (trace_id) {
		snprintf(want_t, sizeof want_t, "trace: %s", trace_id);
		for (char *c = want_t; *c; c++)
			*c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
	}
	if (span_id) {
		snprintf(want_s, sizeof want_s, "span: %s", span_id);
		for (char *c = want_s; *c; c++)
			*c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
	}
	hm_profile *q = empty_like(p);
	uint32_t nthreads = hm_profile_nthreads(p);
	uint32_t *scratch = NULL;
	size_t scap = 0;
	if (!q)
		return hm_error(HM_ENOMEM, "out of memory");
	int rc = HM_OK;
	for (size_t i = 0; rc == HM_OK && i < hm_profile_nsamples(p); i++) {
		const hm_sample *s = hm_profile_sample(p, i);
		uint32_t n;
		const uint32_t *st = hm_profile_stack(p, s->stack, &n);
		if (!st || s->thread >= nthreads || (trace_id && strcmp(root_text(p, st, n, 0), want_t)) ||
		    (span_id && strcmp(root_text(p, st, n, 1), want_s)))
			continue;
		rc = copy_sample(q, p, s, st, n, 0, &scratch, &scap);
	}
	free(scratch);
	if (rc < 0) {
		hm_profile_free(q);
		return rc;
	}
	*out = q;
	return HM_OK;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int hm_span_select(const hm_profile *p, char *const *ids, size_t n, hm_profile **out)
{
	*out = NULL;
	if (n > HM_SPAN_SELECT_MAX)
		return hm_error(HM_EINVAL, "at most %d span ids", HM_SPAN_SELECT_MAX);
	uint64_t *want = malloc((n + 1) * sizeof *want);
	if (!want)
		return hm_error(HM_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if (!hex_ok(ids[i], 16)) {
			free(want);
			return hm_error(HM_EINVAL, "a span id is 16 hex digits: '%.40s'",
					ids[i] ? ids[i] : "");
		}
		want[i] = strtoull(ids[i], NULL, 16);
	}
	qsort(want, n, sizeof *want, cmp_u64);
	hm_profile *q = empty_like(p);
	uint32_t nthreads = hm_profile_nthreads(p);
	uint32_t *scratch = NULL;
	size_t scap = 0;
	int rc = q ? HM_OK : hm_error(HM_ENOMEM, "out of memory");
	for (size_t i = 0; rc == HM_OK && i < hm_profile_nsamples(p); i++) {
		const hm_sample *s = hm_profile_sample(p, i);
		uint32_t ns;
		const uint32_t *st = hm_profile_stack(p, s->stack, &ns);
		if (!st || ns <= 2 || s->thread >= nthreads ||
		    strncmp(root_text(p, st, ns, 0), "trace: ", 7))
			continue;
		const char *sp = root_text(p, st, ns, 1);
		if (strncmp(sp, "span: ", 6) || !hex_ok(sp + 6, 16))
			continue;
		uint64_t id = strtoull(sp + 6, NULL, 16);
		if (n && !bsearch(&id, want, n, sizeof *want, cmp_u64))
			continue;
		rc = copy_sample(q, p, s, st, ns, 2, &scratch, &scap);
	}
	free(scratch);
	free(want);
	if (rc < 0) {
		hm_profile_free(q);
		return rc;
	}
	*out = q;
	return HM_OK;
}

int hm_span_top_traces(const hm_profile *p, const char *function, hm_span_trace_total *out,
		       size_t max, size_t *nout)
{
	*nout = 0;
	if (!function || !*function)
		return hm_error(HM_EINVAL, "function= names the function");
	size_t cap = 64, n = 0;
	hm_span_trace_total *all = malloc(cap * sizeof *all);
	if (!all)
		return hm_error(HM_ENOMEM, "out of memory");
	for (size_t i = 0; i < hm_profile_nsamples(p); i++) {
		const hm_sample *s = hm_profile_sample(p, i);
		uint32_t ns;
		const uint32_t *st = hm_profile_stack(p, s->stack, &ns);
		const char *tr = st ? root_text(p, st, ns, 0) : "";
		if (strncmp(tr, "trace: ", 7) || strlen(tr + 7) != 32)
			continue;
		int in = 0;
		for (uint32_t k = 2; k < ns && !in; k++) {
			const hm_frame *f = hm_profile_frame(p, st[k]);
			in = f && !strcmp(hm_profile_str(p, f->name), function);
		}
		if (!in)
			continue;
		size_t j = 0;
		while (j < n && strcmp(all[j].trace_id, tr + 7))
			j++;
		if (j == n) {
			if (n == cap) {
				hm_span_trace_total *na = realloc(all, cap * 2 * sizeof *na);
				if (!na) {
					free(all);
					return hm_error(HM_ENOMEM, "out of memory");
				}
				all = na;
				cap *= 2;
			}
			memcpy(all[n].trace_id, tr + 7, 33);
			all[n].count = all[n].weight_ns = 0;
			n++;
		}
		all[j].count = hm_sat_add(all[j].count, s->count);
		all[j].weight_ns = hm_sat_add(all[j].weight_ns, s->weight_ns);
	}
	/* The max largest by weight, then count (a simple selection: max is small). */
	for (size_t k = 0; k < max && k < n; k++) {
		size_t best = k;
		for (size_t j = k + 1; j < n; j++)
			if (all[j].weight_ns > all[best].weight_ns ||
			    (all[j].weight_ns == all[best].weight_ns && all[j].count > all[best].count))
				best = j;
		hm_span_trace_total t = all[k];
		all[k] = all[best];
		all[best] = t;
		out[(*nout)++] = all[k];
	}
	free(all);
	return HM_OK;
}
