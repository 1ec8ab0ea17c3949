/* filter.c - focus / hide / thread / file filters over a finished profile.
 *
 * Each frame is matched once against the compiled patterns (its text from
 * hm_frame_format), each stack is then rewritten once (hidden frames
 * removed; stacks failing the focus test dropped) and memoised, and the
 * aggregates are re-added to a fresh profile through those maps. When the
 * input's timeline covers every sample it is replayed instead, so the
 * output keeps per-sample timestamps. Cost: O(frames + stack entries +
 * samples). */
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "format/filter.h"

int hm_filter_active(const hm_filter *f)
{
	return f && ((f->focus && *f->focus) || (f->hide && *f->hide) ||
		     (f->drop_file && *f->drop_file) || (f->thread && *f->thread));
}

uint32_t hm_profile_import_frame(hm_profile *dst, const hm_profile *src, uint32_t frame)
{
	hm_frame f = *hm_profile_frame(src, frame);
	f.name = hm_profile_intern_cstr(dst, hm_profile_str(src, f.name));
	f.file = hm_profile_intern_cstr(dst, hm_profile_str(src, f.file));
	return hm_profile_frame_id(dst, &f);
}

static int compile(regex_t *re, const char *pat, const char *what, int *have)
{
	*have = 0;
	if (!pat || !*pat)
		return HM_OK;
	int e = regcomp(re, pat, REG_EXTENDED | REG_NOSUB);
	if (e) {
		char msg[128];
		regerror(e, re, msg, sizeof msg);
		return hm_error(HM_EINVAL, "bad %s pattern '%s': %s", what, pat, msg);
	}
	*have = 1;
	return HM_OK;
}

enum { F_FOCUS = 1, F_HIDE = 2 };

int hm_filter_apply(const hm_profile *in, const hm_filter *flt, hm_profile **out)
{
	regex_t focus, hide, dropf;
	int hf = 0, hh = 0, hd = 0, rc;
	if ((rc = compile(&focus, flt->focus, "focus", &hf)) < 0)
		return rc;
	if ((rc = compile(&hide, flt->hide, "hide", &hh)) < 0 ||
	    (rc = compile(&dropf, flt->drop_file, "drop-file", &hd)) < 0) {
		if (hf)
			regfree(&focus);
		if (hh)
			regfree(&hide);
		return rc;
	}
	uint32_t nframes = hm_profile_nframes(in), nstacks = hm_profile_nstacks(in);
	uint32_t nthreads = hm_profile_nthreads(in);
	size_t nevents = hm_profile_nevents(in);
	int use_tl = nevents && (int64_t)nevents == hm_profile_total_count(in);
	hm_profile *p = hm_profile_new(use_tl);
	uint8_t *fflag = calloc(nframes + 1, 1);
	uint32_t *fmap = malloc((nframes + 1) * sizeof *fmap);
	uint32_t *smap = malloc((nstacks + 1) * sizeof *smap);
	uint32_t *tmap = malloc((nthreads + 1) * sizeof *tmap);
	uint32_t *scratch = NULL;
	char text[4096];
	if (!p || !fflag || !fmap || !smap || !tmap) {
		rc = hm_error(HM_ENOMEM, "out of memory filtering profile");
		goto out;
	}
	for (uint32_t i = 0; i < nframes; i++) {
		const hm_frame *f = hm_profile_frame(in, i);
		hm_frame_format(in, f, text, sizeof text);
		if (hf && !regexec(&focus, text, 0, NULL, 0))
			fflag[i] |= F_FOCUS;
		if ((hh && !regexec(&hide, text, 0, NULL, 0)) ||
		    (hd && f->file && !regexec(&dropf, hm_profile_str(in, f->file), 0, NULL, 0)))
			fflag[i] |= F_HIDE;
		fmap[i] = UINT32_MAX;
	}
	for (uint32_t i = 0; i < nstacks; i++)
		smap[i] = UINT32_MAX - 1;     /* not computed yet */
	/* Threads: keep all, or the one named by id / name. */
	char *end = NULL;
	unsigned long long want_tid = flt->thread && *flt->thread ?
		strtoull(flt->thread, &end, 10) : 0;
	int by_tid = end && !*end, any_thread = 0;
	for (uint32_t t = 0; t < nthreads; t++) {
		const hm_thread *th = hm_profile_thread(in, t);
		int keep = !(flt->thread && *flt->thread) ||
			   (by_tid ? th->tid == want_tid :
				     !strcmp(hm_profile_str(in, th->name), flt->thread));
		tmap[t] = keep ? hm_profile_thread_id(p, th->tid, th->pid,
						      th->name ? hm_profile_str(in, th->name) : NULL)
			       : UINT32_MAX;
		any_thread |= keep;
	}
	if (flt->thread && *flt->thread && !any_thread) {
		rc = hm_error(HM_EINVAL, "no thread '%s' in the profile", flt->thread);
		goto out;
	}
	uint32_t maxd = 1;
	for (uint32_t s = 0; s < nstacks; s++) {
		uint32_t n;
		hm_profile_stack(in, s, &n);
		if (n > maxd)
			maxd = n;
	}
	scratch = malloc(maxd * sizeof *scratch);
	if (!scratch) {
		rc = hm_error(HM_ENOMEM, "out of memory filtering profile");
		goto out;
	}
	size_t n_items = use_tl ? nevents : hm_profile_nsamples(in);
	for (size_t i = 0; i < n_items; i++) {
		uint32_t stack, thread, span = 0;
		int64_t count, weight;
		uint64_t t_ns = 0;
		if (use_tl) {
			const hm_event *e = hm_profile_event(in, i);
			stack = e->stack, thread = e->thread, count = 1, weight = e->weight_ns;
			t_ns = e->t_ns;
		} else {
			const hm_sample *s = hm_profile_sample(in, i);
			stack = s->stack, thread = s->thread, count = s->count, weight = s->weight_ns;
			span = s->span;
		}
		if (thread >= nthreads || tmap[thread] == UINT32_MAX || stack >= nstacks)
			continue;
		if (smap[stack] == UINT32_MAX - 1) {
			uint32_t n, k = 0;
			const uint32_t *st = hm_profile_stack(in, stack, &n);
			int focused = !hf;
			for (uint32_t j = 0; j < n; j++) {
				uint32_t f = st[j];
				focused |= (fflag[f] & F_FOCUS) != 0;
				if (fflag[f] & F_HIDE)
					continue;
				if (fmap[f] == UINT32_MAX)
					fmap[f] = hm_profile_import_frame(p, in, f);
				scratch[k++] = fmap[f];
			}
			smap[stack] = focused ? hm_profile_stack_id(p, scratch, k) : UINT32_MAX;
		}
		if (smap[stack] == UINT32_MAX)
			continue;
		hm_profile_add_span(p, smap[stack], tmap[thread], hm_profile_import_span(p, in, span),
				    count, weight, t_ns);
	}
	const hm_profile_meta *mi = hm_profile_meta_cget(in);
	hm_profile_meta *mo = hm_profile_meta_get(p);
	mo->start_ns = mi->start_ns;
	mo->duration_ns = mi->duration_ns;
	mo->period_ns = mi->period_ns;
	mo->time_kind = mi->time_kind;
	for (uint32_t i = 0; i < mi->nlabels; i++)
		hm_profile_set_label(p, hm_profile_str(in, mi->labels[i].key),
				     hm_profile_str(in, mi->labels[i].value));
	rc = HM_OK;
out:
	if (hf)
		regfree(&focus);
	if (hh)
		regfree(&hide);
	if (hd)
		regfree(&dropf);
	free(fflag);
	free(fmap);
	free(smap);
	free(tmap);
	free(scratch);
	if (rc < 0) {
		hm_profile_free(p);
		return rc;
	}
	*out = p;
	return HM_OK;
}
