/* diff.c - differential profiles and the differential flame graph.
 *
 * hm_diff_profile imports both profiles' stacks into one new profile (frames
 * matched by content), sums each side per stack, scales BEFORE by the ratio
 * of totals and stores AFTER - scaled BEFORE as each stack's sample: a
 * signed, share-normalised delta that the collapsed and pprof writers can
 * emit. The SVG loads BEFORE and AFTER into the two slots of one flame tree;
 * a frame's width is its AFTER total, its colour the change of its share of
 * the whole (AFTER share - BEFORE share), red for growth and green for
 * shrinkage, saturating at the largest change in the graph. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/textesc.h"
#include "format/diff.h"
#include "format/filter.h"
#include "format/flametree.h"

typedef struct side {
	int64_t *count, *weight;
	size_t cap;
} side;

static int side_add(side *s, uint32_t id, int64_t c, int64_t w)
{
	if (id >= s->cap) {
		size_t nc = s->cap ? s->cap : 1024;
		while (nc <= id)
			nc *= 2;
		int64_t *a = realloc(s->count, nc * sizeof *a);
		if (!a)
			return HM_ENOMEM;
		s->count = a;
		int64_t *b = realloc(s->weight, nc * sizeof *b);
		if (!b)
			return HM_ENOMEM;
		s->weight = b;
		memset(s->count + s->cap, 0, (nc - s->cap) * sizeof *a);
		memset(s->weight + s->cap, 0, (nc - s->cap) * sizeof *b);
		s->cap = nc;
	}
	s->count[id] += c;
	s->weight[id] += w;
	return HM_OK;
}

/* Add every aggregate of src to side s, keyed by stacks imported into q. */
static int import(hm_profile *q, const hm_profile *src, side *s)
{
	uint32_t nf = hm_profile_nframes(src), ns = hm_profile_nstacks(src);
	uint32_t *fmap = malloc((nf + 1) * sizeof *fmap);
	uint32_t *smap = malloc((ns + 1) * sizeof *smap);
	uint32_t *scratch = NULL, maxd = 1;
	int rc = HM_ENOMEM;
	if (!fmap || !smap)
		goto out;
	for (uint32_t i = 0; i < nf; i++)
		fmap[i] = UINT32_MAX;
	for (uint32_t i = 0; i < ns; i++) {
		uint32_t n;
		hm_profile_stack(src, i, &n);
		if (n > maxd)
			maxd = n;
		smap[i] = UINT32_MAX;
	}
	if (!(scratch = malloc(maxd * sizeof *scratch)))
		goto out;
	for (size_t i = 0; i < hm_profile_nsamples(src); i++) {
		const hm_sample *sm = hm_profile_sample(src, i);
		if (smap[sm->stack] == UINT32_MAX) {
			uint32_t n;
			const uint32_t *st = hm_profile_stack(src, sm->stack, &n);
			for (uint32_t k = 0; k < n; k++) {
				if (fmap[st[k]] == UINT32_MAX)
					fmap[st[k]] = hm_profile_import_frame(q, src, st[k]);
				scratch[k] = fmap[st[k]];
			}
			smap[sm->stack] = hm_profile_stack_id(q, scratch, n);
		}
		if (side_add(s, smap[sm->stack], sm->count, sm->weight_ns) < 0)
			goto out;
	}
	rc = HM_OK;
out:
	free(fmap);
	free(smap);
	free(scratch);
	return rc;
}

static double ratio(int64_t a, int64_t b)
{
	return b ? (double)a / (double)b : 0.0;
}

int hm_diff_profile(const hm_profile *before, const hm_profile *after, hm_profile **out)
{
	hm_profile *q = hm_profile_new(0);
	side a = {0}, b = {0};
	int rc = HM_ENOMEM;
	if (!q || import(q, after, &a) < 0 || import(q, before, &b) < 0)
		goto out;
	uint32_t th = hm_profile_thread_id(q, 0, 0, NULL);
	double rc_ = ratio(hm_profile_total_count(after), hm_profile_total_count(before));
	double rw = ratio(hm_profile_total_weight(after), hm_profile_total_weight(before));
	uint32_t ns = hm_profile_nstacks(q);
	for (uint32_t i = 0; i < ns; i++) {
		int64_t ac = i < a.cap ? a.count[i] : 0, aw = i < a.cap ? a.weight[i] : 0;
		int64_t bc = i < b.cap ? b.count[i] : 0, bw = i < b.cap ? b.weight[i] : 0;
		int64_t dc = ac - llround((double)bc * rc_);
		int64_t dw = aw - llround((double)bw * rw);
		if (dc || dw)
			hm_profile_add(q, i, th, dc, dw, 0);
	}
	hm_profile_meta *m = hm_profile_meta_get(q);
	*m = *hm_profile_meta_cget(after);
	m->nlabels = 0;
	rc = HM_OK;
out:
	free(a.count);
	free(a.weight);
	free(b.count);
	free(b.weight);
	if (rc < 0) {
		hm_profile_free(q);
		return hm_error(rc, "out of memory computing the diff");
	}
	*out = q;
	return HM_OK;
}

typedef struct line {
	char *text;
	int64_t delta;
} line;

static int cmp_line(const void *x, const void *y)
{
	const line *a = x, *b = y;
	if (a->delta != b->delta)
		return a->delta < b->delta ? 1 : -1;
	return strcmp(a->text, b->text);
}

int hm_write_diff_collapsed(const hm_profile *before, const hm_profile *after, FILE *out)
{
	hm_profile *d;
	int rc = hm_diff_profile(before, after, &d);
	if (rc < 0)
		return rc;
	size_t n = hm_profile_nsamples(d), nl = 0;
	line *lines = calloc(n + 1, sizeof *lines);
	if (!lines) {
		hm_profile_free(d);
		return hm_error(HM_ENOMEM, "out of memory writing the diff");
	}
	char frame[4096];
	for (size_t i = 0; i < n; i++) {
		const hm_sample *s = hm_profile_sample(d, i);
		if (!s->count)
			continue;
		uint32_t k;
		const uint32_t *st = hm_profile_stack(d, s->stack, &k);
		char *buf = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&buf, &len);
		if (!m)
			break;
		for (uint32_t j = 0; j < k; j++) {
			hm_frame_format(d, hm_profile_frame(d, st[j]), frame, sizeof frame);
			for (char *c = frame; *c; c++)
				if (*c == ';')
					*c = ':';
				else if (*c == '\n' || *c == '\r')
					*c = ' ';
			fprintf(m, "%s%s", j ? ";" : "", frame);
		}
		fclose(m);
		lines[nl].text = buf;
		lines[nl++].delta = s->count;
	}
	qsort(lines, nl, sizeof *lines, cmp_line);
	for (size_t i = 0; i < nl; i++) {
		if (*lines[i].text)
			fprintf(out, "%s %+" PRId64 "\n", lines[i].text, lines[i].delta);
		free(lines[i].text);
	}
	free(lines);
	hm_profile_free(d);
	return ferror(out) ? hm_error(HM_ESYS, "writing the diff failed") : HM_OK;
}

/* ---- SVG ---- */

enum { ROW = 16, PAD_TOP = 50, PAD_BOTTOM = 30, PAD_X = 10 };

typedef struct svgctx {
	const hm_flametree *t;
	FILE *out;
	double tot[2];          /* root totals: before, after */
	double maxchg;          /* largest |share change| */
	double scale;           /* px per AFTER unit */
	int height;
} svgctx;

static double change(const svgctx *c, const hm_flame_node *n)
{
	double b = c->tot[0] > 0 ? n->total[0] / c->tot[0] : 0;
	double a = c->tot[1] > 0 ? n->total[1] / c->tot[1] : 0;
	return a - b;
}

static void put_node(svgctx *c, uint32_t id, double x)
{
	const hm_flame_node *n = hm_flametree_node(c->t, id);
	double w = n->total[1] * c->scale;
	if (w < 0.1)
		return;
	double y = c->height - PAD_BOTTOM - (n->depth + 1) * ROW;
	double ch = change(c, n);
	double k = c->maxchg > 0 ? fabs(ch) / c->maxchg : 0;
	if (k > 1)
		k = 1;
	int lo = (int)(235 - 175 * k);     /* intensity: white -> saturated */
	int r = ch > 0 ? 235 : lo, g = ch < 0 ? 235 : lo, bl = lo;
	if (ch < 0)
		r = lo, g = (int)(235 - 60 * k), bl = lo;
	const char *text = id ? hm_flametree_str(c->t, n->text) : "all";
	double pa = c->tot[1] > 0 ? 100.0 * n->total[1] / c->tot[1] : 0;
	double pb = c->tot[0] > 0 ? 100.0 * n->total[0] / c->tot[0] : 0;
	fputs("<g><title>", c->out);
	hm_put_xml(c->out, text, strlen(text));
	fprintf(c->out, " (after %" PRId64 ", %.2f%%; before %" PRId64 ", %.2f%%; %+.2f pp)"
		"</title><rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"%d\" "
		"fill=\"rgb(%d,%d,%d)\" rx=\"2\"/>",
		n->total[1], pa, n->total[0], pb, pa - pb, x, y, w, ROW - 1, r, g, bl);
	size_t fit = w > 20 ? (size_t)((w - 6) / 7) : 0;
	if (fit) {
		size_t len = strlen(text), cut = hm_utf8_prefix(text, len, fit);
		fprintf(c->out, "<text x=\"%.1f\" y=\"%.0f\">", x + 3, y + ROW - 4);
		hm_put_xml(c->out, text, cut);
		if (cut < len)
			fputs("..", c->out);
		fputs("</text>", c->out);
	}
	fputs("</g>\n", c->out);
	uint32_t nc;
	const uint32_t *ch_ids = hm_flametree_children(c->t, id, &nc);
	for (uint32_t i = 0; i < nc; i++) {
		put_node(c, ch_ids[i], x);
		x += hm_flametree_node(c->t, ch_ids[i])->total[1] * c->scale;
	}
}

int hm_write_diff_svg(const hm_profile *before, const hm_profile *after, FILE *out,
		      const hm_write_opts *o)
{
	hm_flametree *t = hm_flametree_new();
	if (!t)
		return hm_error(HM_ENOMEM, "out of memory building the diff");
	int rc;
	if ((rc = hm_flametree_add(t, before, 0, HM_FT_COUNT, NULL, NULL)) < 0 ||
	    (rc = hm_flametree_add(t, after, 1, HM_FT_COUNT, NULL, NULL)) < 0) {
		hm_flametree_free(t);
		return rc;
	}
	int width = o && o->width > 0 ? o->width : 1200;
	svgctx c = {.t = t, .out = out};
	const hm_flame_node *root = hm_flametree_node(t, 0);
	c.tot[0] = (double)root->total[0];
	c.tot[1] = (double)root->total[1];
	c.scale = c.tot[1] > 0 ? (width - 2.0 * PAD_X) / c.tot[1] : 0;
	for (uint32_t i = 1; i < hm_flametree_nnodes(t); i++) {
		double ch = fabs(change(&c, hm_flametree_node(t, i)));
		if (ch > c.maxchg)
			c.maxchg = ch;
	}
	c.height = PAD_TOP + PAD_BOTTOM + ((int)hm_flametree_max_depth(t) + 1) * ROW;
	const char *title = o && o->title ? o->title : "Differential flame graph";
	/* Recursion depth follows the tree depth, which reading caps. */
	fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\" font-family=\"monospace\" font-size=\"12\">\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"#f8f8f8\"/>\n"
		"<text x=\"%d\" y=\"24\" font-size=\"17\" text-anchor=\"middle\">",
		width, c.height, width, c.height, width / 2);
	hm_put_xml(out, title, strlen(title));
	fprintf(out, "</text>\n<text x=\"%d\" y=\"42\" text-anchor=\"middle\" fill=\"#555\">"
		"width = after (%.0f samples); colour = change of share: red grew, green shrank "
		"(before: %.0f samples)</text>\n", width / 2, c.tot[1], c.tot[0]);
	put_node(&c, 0, PAD_X);
	fputs("</svg>\n", out);
	hm_flametree_free(t);
	return ferror(out) ? hm_error(HM_ESYS, "writing the diff SVG failed") : HM_OK;
}
