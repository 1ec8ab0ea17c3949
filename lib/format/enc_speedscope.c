/* enc_speedscope.c - speedscope's JSON file format.
 *
 * Layout: "shared.frames" holds every profile frame at its own id (name,
 * file, line), and there is one "sampled" profile per thread that has
 * samples, named "Thread <tid> <name>". A sample is the thread's stack as
 * frame indices, root first.
 *
 * With a timeline (hm_profile_nevents > 0) each event becomes one sample in
 * time order, so speedscope's time-ordered view shows what each thread did
 * when; startValue is the thread's first event relative to the profile
 * start. Without one, each (stack, thread) aggregate becomes one sample.
 * Weights are milliseconds (from weight_ns, printed exactly) when the
 * profile carries weights, else plain counts with unit "none". */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/textesc.h"
#include "format/encode.h"

/* ns as decimal milliseconds, exact, without trailing zeros. */
static void put_ms(FILE *out, int64_t ns)
{
	if (ns < 0) {
		fputc('-', out);
		ns = ns == INT64_MIN ? INT64_MAX : -ns;
	}
	char frac[8];
	snprintf(frac, sizeof frac, "%06" PRId64, ns % 1000000);
	int n = 6;
	while (n > 0 && frac[n - 1] == '0')
		frac[--n] = 0;
	fprintf(out, "%" PRId64 "%s%s", ns / 1000000, n ? "." : "", frac);
}

static void put_value(FILE *out, int64_t v, int ms)
{
	if (ms)
		put_ms(out, v);
	else
		fprintf(out, "%" PRId64, v);
}

static void put_stack(FILE *out, const hm_profile *p, uint32_t stack)
{
	uint32_t n = 0;
	const uint32_t *fr = hm_profile_stack(p, stack, &n);
	fputc('[', out);
	for (uint32_t i = 0; fr && i < n; i++)
		fprintf(out, "%s%u", i ? "," : "", fr[i]);
	fputc(']', out);
}

static void put_frames(FILE *out, const hm_profile *p)
{
	uint32_t nf = hm_profile_nframes(p);
	fputs("\"shared\":{\"frames\":[", out);
	for (uint32_t i = 0; i < nf; i++) {
		const hm_frame *f = hm_profile_frame(p, i);
		fputs(i ? ",\n{\"name\":" : "\n{\"name\":", out);
		const char *name = f ? hm_profile_str(p, f->name) : NULL;
		hm_put_json_str(out, name && *name ? name : "<unknown>");
		const char *file = f && f->file ? hm_profile_str(p, f->file) : NULL;
		if (file && *file) {
			fputs(",\"file\":", out);
			hm_put_json_str(out, file);
		}
		if (f && f->line > 0)
			fprintf(out, ",\"line\":%d", f->line);
		fputc('}', out);
	}
	fputs("]},\n", out);
}

static void put_profile_head(FILE *out, const hm_profile *p, uint32_t th, int first,
			     int ms, int64_t start, int64_t end)
{
	const hm_thread *t = hm_profile_thread(p, th);
	const char *tname = t && t->name ? hm_profile_str(p, t->name) : NULL;
	char name[320];
	snprintf(name, sizeof name, "Thread %" PRIu64 "%s%.256s", t ? t->tid : (uint64_t)th,
		 tname && *tname ? " " : "", tname && *tname ? tname : "");
	fputs(first ? "\n{\"type\":\"sampled\",\"name\":" : ",\n{\"type\":\"sampled\",\"name\":",
	      out);
	hm_put_json_str(out, name);
	fprintf(out, ",\"unit\":\"%s\",\"startValue\":", ms ? "milliseconds" : "none");
	put_value(out, start, ms);
	fputs(",\"endValue\":", out);
	put_value(out, end, ms);
}

/* Indices of items (events or samples) grouped by thread: a counting sort.
 * order[start[t] .. start[t+1]) are thread t's items, in original order. */
static int group_by_thread(const hm_profile *p, size_t n, int events, size_t **order,
			   size_t **start)
{
	uint32_t nt = hm_profile_nthreads(p);
	*order = malloc((n ? n : 1) * sizeof **order);
	*start = calloc((size_t)nt + 2, sizeof **start);
	if (!*order || !*start)
		return hm_error(HM_ENOMEM, "out of memory writing speedscope");
	for (size_t i = 0; i < n; i++) {
		uint32_t th = events ? hm_profile_event(p, i)->thread : hm_profile_sample(p, i)->thread;
		(*start)[(th < nt ? th : nt) + 1]++;
	}
	for (uint32_t t = 0; t <= nt; t++)
		(*start)[t + 1] += (*start)[t];
	size_t *fill = calloc((size_t)nt + 1, sizeof *fill);
	if (!fill)
		return hm_error(HM_ENOMEM, "out of memory writing speedscope");
	for (size_t i = 0; i < n; i++) {
		uint32_t th = events ? hm_profile_event(p, i)->thread : hm_profile_sample(p, i)->thread;
		th = th < nt ? th : nt;
		(*order)[(*start)[th] + fill[th]++] = i;
	}
	free(fill);
	return HM_OK;
}

int hm_write_speedscope(const hm_profile *p, FILE *out, const hm_write_opts *o)
{
	const char *title = o && o->title && *o->title ? o->title : "homura profile";
	size_t nev = hm_profile_nevents(p);
	int timeline = nev > 0;
	size_t n = timeline ? nev : hm_profile_nsamples(p);
	/* Milliseconds when there are weights, counts otherwise. */
	int ms = hm_profile_total_weight(p) > 0;
	uint32_t nt = hm_profile_nthreads(p);
	size_t *order = NULL, *start = NULL;
	int rc = group_by_thread(p, n, timeline, &order, &start);
	if (rc != HM_OK)
		goto out;

	/* Timeline origin: the profile start, or the first event if earlier. */
	uint64_t t0 = hm_profile_meta_cget(p)->start_ns;
	for (size_t i = 0; timeline && i < nev; i++) {
		uint64_t t = hm_profile_event(p, i)->t_ns;
		if (!t0 || t < t0)
			t0 = t;
	}

	fputs("{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",\n"
	      "\"exporter\":\"homura\",\"name\":", out);
	hm_put_json_str(out, title);
	fputs(",\"activeProfileIndex\":0,\n", out);
	put_frames(out, p);
	fputs("\"profiles\":[", out);
	int first = 1;
	/* Items of threads past nthreads (corrupt ids) sit in bucket nt: skipped. */
	for (uint32_t th = 0; th < nt; th++) {
		size_t b = start[th], e = start[th + 1];
		if (b == e)
			continue;
		int64_t sum = 0, begin = 0, end;
		for (size_t k = b; k < e; k++) {
			if (timeline) {
				const hm_event *ev = hm_profile_event(p, order[k]);
				if (__builtin_add_overflow(sum, ms ? ev->weight_ns : 1, &sum))
					sum = INT64_MAX;   /* hostile weights: saturate */
			} else {
				const hm_sample *s = hm_profile_sample(p, order[k]);
				if (__builtin_add_overflow(sum, ms ? s->weight_ns : s->count, &sum))
					sum = INT64_MAX;
			}
		}
		end = sum;
		if (timeline) {
			const hm_event *fe = hm_profile_event(p, order[b]);
			const hm_event *le = hm_profile_event(p, order[e - 1]);
			begin = ms ? (int64_t)(fe->t_ns - t0) : 0;
			end = begin + sum;
			int64_t last = (int64_t)(le->t_ns - t0) + le->weight_ns;
			if (ms && last > end)
				end = last;
		}
		put_profile_head(out, p, th, first, ms, begin, end);
		first = 0;
		fputs(",\n\"samples\":[", out);
		for (size_t k = b; k < e; k++) {
			uint32_t stack = timeline ? hm_profile_event(p, order[k])->stack
						  : hm_profile_sample(p, order[k])->stack;
			if (k > b)
				fputc(',', out);
			put_stack(out, p, stack);
		}
		fputs("],\n\"weights\":[", out);
		for (size_t k = b; k < e; k++) {
			int64_t w;
			if (timeline)
				w = ms ? hm_profile_event(p, order[k])->weight_ns : 1;
			else
				w = ms ? hm_profile_sample(p, order[k])->weight_ns
				       : hm_profile_sample(p, order[k])->count;
			if (k > b)
				fputc(',', out);
			put_value(out, w, ms);
		}
		fputs("]}", out);
	}
	fputs("]}\n", out);
	if (ferror(out))
		rc = hm_error(HM_EIO, "writing speedscope JSON failed");
out:
	free(order);
	free(start);
	return rc;
}
