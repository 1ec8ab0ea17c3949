/* spangroup.c - copying span references between profiles, and the
 * `--group-by span` view: every stack under a root frame naming the
 * OpenTelemetry span its samples ran in ("span: get_user_from_db"), or
 * "span: <none>" outside any span, so a flame graph shows one tower per span
 * name (collapsed, SVG and every other format). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "format/filter.h"

uint32_t hm_profile_import_span(hm_profile *dst, const hm_profile *src, uint32_t span)
{
	const hm_span_ref *s = span ? hm_profile_span(src, span) : NULL;
	if (!s)
		return 0;
	hm_span_ref r = *s;
	r.name = hm_profile_intern_cstr(dst, hm_profile_str(src, s->name));
	r.root = hm_profile_intern_cstr(dst, hm_profile_str(src, s->root));
	return hm_profile_span_id(dst, &r);
}

int hm_profile_group_by_span(const hm_profile *in, hm_profile **out)
{
	*out = NULL;
	hm_profile *p = hm_profile_new(0);
	uint32_t nframes = hm_profile_nframes(in), nthreads = hm_profile_nthreads(in);
	uint32_t nspans = hm_profile_nspans(in);
	uint32_t *fmap = malloc(((size_t)nframes + 1) * sizeof *fmap);
	uint32_t *tmap = malloc(((size_t)nthreads + 1) * sizeof *tmap);
	uint32_t *rootf = malloc(((size_t)nspans + 1) * sizeof *rootf);
	uint32_t *smap = malloc(((size_t)nspans + 1) * sizeof *smap);
	uint32_t *scratch = NULL;
	size_t scap = 0;
	int rc = HM_OK;
	if (!p || !fmap || !tmap || !rootf || !smap) {
		rc = hm_error(HM_ENOMEM, "out of memory grouping by span");
		goto out;
	}
	for (uint32_t f = 0; f < nframes; f++)
		fmap[f] = hm_profile_import_frame(p, in, f);
	for (uint32_t t = 0; t < nthreads; t++) {
		const hm_thread *th = hm_profile_thread(in, t);
		tmap[t] = hm_profile_thread_id(p, th->tid, th->pid,
					       th->name ? hm_profile_str(in, th->name) : NULL);
	}
	for (uint32_t s = 0; s < nspans; s++) {
		const hm_span_ref *sp = hm_profile_span(in, s);
		const char *name = s && sp && *hm_profile_str(in, sp->name) ? hm_profile_str(in, sp->name)
			: s ? "<unnamed>" : "<none>";
		char text[300];
		snprintf(text, sizeof text, "span: %s", name);
		hm_frame fr = {hm_profile_intern_cstr(p, text), 0, 0, 0, HM_FRAME_OTHER};
		rootf[s] = hm_profile_frame_id(p, &fr);
		smap[s] = hm_profile_import_span(p, in, s);
	}
	for (size_t i = 0; i < hm_profile_nsamples(in); i++) {
		const hm_sample *s = hm_profile_sample(in, i);
		uint32_t n;
		const uint32_t *st = hm_profile_stack(in, s->stack, &n);
		if (!st || s->thread >= nthreads || s->span >= nspans)
			continue;
		if (n + 1 > scap) {
			size_t nc = (n + 1) * 2;
			uint32_t *ns = realloc(scratch, nc * sizeof *ns);
			if (!ns) {
				rc = hm_error(HM_ENOMEM, "out of memory grouping by span");
				goto out;
			}
			scratch = ns;
			scap = nc;
		}
		scratch[0] = rootf[s->span];
		for (uint32_t k = 0; k < n; k++)
			scratch[k + 1] = st[k] < nframes ? fmap[st[k]] : 0;
		hm_profile_add_span(p, hm_profile_stack_id(p, scratch, n + 1), tmap[s->thread],
				    smap[s->span], s->count, s->weight_ns, 0);
	}
	*hm_profile_meta_get(p) = *hm_profile_meta_cget(in);
	hm_profile_meta *m = hm_profile_meta_get(p);
	for (uint32_t i = 0; i < m->nlabels; i++) {
		const hm_profile_meta *mi = hm_profile_meta_cget(in);
		m->labels[i].key = hm_profile_intern_cstr(p, hm_profile_str(in, mi->labels[i].key));
		m->labels[i].value = hm_profile_intern_cstr(p, hm_profile_str(in, mi->labels[i].value));
	}
	*out = p;
	p = NULL;
out:
	hm_profile_free(p);
	free(fmap);
	free(tmap);
	free(rootf);
	free(smap);
	free(scratch);
	return rc;
}
