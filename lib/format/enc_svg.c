/* enc_svg.c - a self-contained interactive flame graph in SVG.
 *
 * The profile's stacks are merged into a flame tree (sample counts); the
 * root ("all") is drawn at the bottom and each frame sits on its caller,
 * its width proportional to its samples. Children are ordered by text.
 * Each frame is a <g class="f"> holding a <title> ("text — N samples
 * (P%)"), a <rect> and, when there is room, a <text> label clipped to the
 * width with "..". Colours come from a hash of the function name: warm hues
 * for Python frames, blue for native, green for kernel, violet for thread
 * and process pseudo frames, grey for the rest.
 *
 * Size stays bounded: frames narrower than 0.1 px are dropped, and when
 * more than HM_SVG_MAX_RECTS frames remain only the widest are kept (a
 * frame is never kept without its parent, which is at least as wide).
 *
 * The embedded script (no network needed) gives click-to-zoom with a reset
 * control, search by regular expression (matches highlighted, matched share
 * of samples shown bottom right) and a details line at the bottom on hover;
 * all names are XML-escaped. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/textesc.h"
#include "format/encode.h"
#include "format/flametree.h"

#define HM_SVG_MAX_RECTS 50000
#define FRAME_H 16          /* px per stack level */
#define PAD_X 10
#define PAD_TOP 48          /* title and controls */
#define PAD_BOTTOM 30       /* details line */
#define FONT_PX 12
#define CHAR_PX (FONT_PX * 0.59)

static const char script[] =
"<script type=\"text/ecmascript\"><![CDATA[\n"
"'use strict';\n"
"var svg = document.documentElement, NS = 'http://www.w3.org/2000/svg';\n"
"var frames = [], zoomed = null, details, matched, unzoom, searchbtn, term = null;\n"
"function attr(e, a) { return parseFloat(e.getAttribute(a)); }\n"
"function init() {\n"
"  details = document.getElementById('details');\n"
"  matched = document.getElementById('matched');\n"
"  unzoom = document.getElementById('unzoom');\n"
"  searchbtn = document.getElementById('search');\n"
"  var gs = document.getElementsByClassName('f');\n"
"  for (var i = 0; i < gs.length; i++) {\n"
"    var g = gs[i], r = g.getElementsByTagName('rect')[0];\n"
"    var t = g.getElementsByTagName('title')[0].textContent;\n"
"    var cut = t.lastIndexOf(' \\u2014 ');\n"
"    frames.push({g: g, r: r, x: attr(r, 'x'), w: attr(r, 'width'), y: attr(r, 'y'),\n"
"                 fill: r.getAttribute('fill'), label: cut < 0 ? t : t.substring(0, cut),\n"
"                 title: t});\n"
"    g.hmIndex = i;\n"
"  }\n"
"  svg.addEventListener('click', function (e) {\n"
"    var g = frameOf(e.target);\n"
"    if (g) zoom(frames[g.hmIndex]);\n"
"  });\n"
"  svg.addEventListener('mouseover', function (e) {\n"
"    var g = frameOf(e.target);\n"
"    details.textContent = g ? frames[g.hmIndex].title : '';\n"
"  });\n"
"  unzoom.addEventListener('click', function () { reset(); });\n"
"  searchbtn.addEventListener('click', function () { askSearch(); });\n"
"  window.addEventListener('keydown', function (e) {\n"
"    if ((e.ctrlKey && e.keyCode === 70) || e.key === '/') { e.preventDefault(); askSearch(); }\n"
"    else if (e.key === 'Escape') { reset(); search(null); }\n"
"  });\n"
"}\n"
"function frameOf(e) {\n"
"  while (e && e !== svg) {\n"
"    if (e.classList && e.classList.contains('f')) return e;\n"
"    e = e.parentNode;\n"
"  }\n"
"  return null;\n"
"}\n"
"function place(f, x, w) {\n"
"  f.r.setAttribute('x', x.toFixed(2));\n"
"  f.r.setAttribute('width', w.toFixed(2));\n"
"  var n = Math.floor((w - 6) / 7.08), s = '';\n"
"  if (n >= 3) s = f.label.length <= n ? f.label : f.label.substring(0, n - 2) + '..';\n"
"  var t = f.g.getElementsByTagName('text')[0];\n"
"  if (!t && s) {\n"
"    t = document.createElementNS(NS, 'text');\n"
"    t.setAttribute('y', (f.y + 11.5).toFixed(1));\n"
"    f.g.appendChild(t);\n"
"  }\n"
"  if (t) { t.textContent = s; t.setAttribute('x', (x + 3).toFixed(2)); }\n"
"}\n"
"function zoom(z) {\n"
"  var x0 = PAD, W = WIDTH - 2 * PAD, scale = W / z.w, eps = 1e-6 * W;\n"
"  zoomed = z;\n"
"  unzoom.style.display = 'inline';\n"
"  for (var i = 0; i < frames.length; i++) {\n"
"    var f = frames[i];\n"
"    if (f.y > z.y && f.x <= z.x + eps && f.x + f.w >= z.x + z.w - eps) {\n"
"      f.g.style.display = ''; f.g.setAttribute('opacity', '0.6'); place(f, x0, W);\n"
"    } else if (f.y <= z.y && f.x >= z.x - eps && f.x + f.w <= z.x + z.w + eps) {\n"
"      f.g.style.display = ''; f.g.removeAttribute('opacity');\n"
"      place(f, x0 + (f.x - z.x) * scale, f.w * scale);\n"
"    } else {\n"
"      f.g.style.display = 'none';\n"
"    }\n"
"  }\n"
"}\n"
"function reset() {\n"
"  zoomed = null;\n"
"  unzoom.style.display = 'none';\n"
"  for (var i = 0; i < frames.length; i++) {\n"
"    var f = frames[i];\n"
"    f.g.style.display = ''; f.g.removeAttribute('opacity'); place(f, f.x, f.w);\n"
"  }\n"
"}\n"
"function askSearch() {\n"
"  var s = prompt('Search frames (regular expression)', term || '');\n"
"  if (s !== null) search(s === '' ? null : s);\n"
"}\n"
"function search(s) {\n"
"  var re = null;\n"
"  if (s !== null) {\n"
"    try { re = new RegExp(s); } catch (e) { re = new RegExp(s.replace(/[.*+?^${}()|[\\]\\\\]/g, '\\\\$&')); }\n"
"  }\n"
"  term = s;\n"
"  var spans = [];\n"
"  for (var i = 0; i < frames.length; i++) {\n"
"    var f = frames[i], hit = re !== null && re.test(f.label);\n"
"    f.r.setAttribute('fill', hit ? 'rgb(230,0,230)' : f.fill);\n"
"    if (hit) spans.push([f.x, f.x + f.w]);\n"
"  }\n"
"  if (re === null) { matched.textContent = ''; searchbtn.textContent = 'Search'; return; }\n"
"  spans.sort(function (a, b) { return a[0] - b[0]; });\n"
"  var sum = 0, end = -1;\n"
"  for (var j = 0; j < spans.length; j++) {\n"
"    var a = Math.max(spans[j][0], end), b = spans[j][1];\n"
"    if (b > a) { sum += b - a; end = b; }\n"
"  }\n"
"  matched.textContent = 'Matched: ' + (100 * sum / (WIDTH - 2 * PAD)).toFixed(1) + '%';\n"
"  searchbtn.textContent = 'Search: ' + s;\n"
"}\n"
"init();\n"
"]]></script>\n";

static void put_color(FILE *out, const char *name, int kind)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *s = (const unsigned char *)name; *s; s++)
		h = (h ^ *s) * 16777619u;
	double a = (h & 0xff) / 255.0, b = ((h >> 8) & 0xff) / 255.0,
	       c = ((h >> 16) & 0xff) / 255.0;
	int r, g, bl;
	switch (kind) {
	case HM_FRAME_PYTHON:   /* red through orange to yellow */
		r = 215 + (int)(40 * a); g = 60 + (int)(160 * b); bl = 30 + (int)(40 * c);
		break;
	case HM_FRAME_NATIVE:
		r = 70 + (int)(60 * a); g = 130 + (int)(70 * b); bl = 200 + (int)(55 * c);
		break;
	case HM_FRAME_KERNEL:
		r = 80 + (int)(60 * a); g = 175 + (int)(60 * b); bl = 80 + (int)(50 * c);
		break;
	case HM_FRAME_THREAD:
	case HM_FRAME_PROCESS:
		r = 165 + (int)(40 * a); g = 140 + (int)(30 * b); bl = 205 + (int)(40 * c);
		break;
	default:
		r = g = bl = 175 + (int)(45 * a);
		break;
	}
	fprintf(out, "rgb(%d,%d,%d)", r, g, bl);
}

struct svg_geom {
	int width;              /* whole image */
	double inner;           /* drawable width */
	int64_t grand;          /* root total */
	double base_y;          /* y of the root row */
};

static void put_frame(FILE *out, const hm_flametree *t, const hm_flame_node *nd,
		      const struct svg_geom *gm, int64_t offset)
{
	const char *text = hm_flametree_str(t, nd->text);
	size_t tlen = strlen(text);
	double x = PAD_X + gm->inner * (double)offset / (double)gm->grand;
	double w = gm->inner * (double)nd->total[0] / (double)gm->grand;
	double y = gm->base_y - (double)nd->depth * FRAME_H;
	double pct = 100.0 * (double)nd->total[0] / (double)gm->grand;

	fputs("<g class=\"f\"><title>", out);
	hm_put_xml(out, text, tlen);
	fprintf(out, " \xe2\x80\x94 %" PRId64 " sample%s (%.2f%%)</title>", nd->total[0],
		nd->total[0] == 1 ? "" : "s", pct);
	fprintf(out, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%d\" fill=\"", x, y, w,
		FRAME_H - 1);
	put_color(out, hm_flametree_str(t, nd->name), nd->kind);
	fputs("\" rx=\"2\"/>", out);
	long fit = (long)((w - 6) / CHAR_PX);
	if (fit >= 3) {
		fprintf(out, "<text x=\"%.2f\" y=\"%.1f\">", x + 3, y + 11.5);
		size_t cps = hm_utf8_count(text, tlen);
		if (cps <= (size_t)fit) {
			hm_put_xml(out, text, tlen);
		} else {
			hm_put_xml(out, text, hm_utf8_prefix(text, tlen, (size_t)fit - 2));
			fputs("..", out);
		}
		fputs("</text>", out);
	}
	fputs("</g>\n", out);
}

static int cmp_desc(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* Smallest total a frame needs to be drawn: 0.1 px, then the rectangle cap. */
static int pick_threshold(const hm_flametree *t, double inner, int64_t grand, int64_t *min)
{
	uint32_t nn = hm_flametree_nnodes(t);
	double px = (double)grand * 0.1 / inner;
	int64_t thr = (int64_t)px;
	if ((double)thr < px)
		thr++;
	if (thr < 1)
		thr = 1;
	uint32_t kept = 0;
	for (uint32_t i = 0; i < nn; i++)
		kept += hm_flametree_node(t, i)->total[0] >= thr;
	if (kept > HM_SVG_MAX_RECTS) {
		int64_t *v = malloc((size_t)kept * sizeof *v);
		if (!v)
			return hm_error(HM_ENOMEM, "out of memory writing SVG");
		uint32_t k = 0;
		for (uint32_t i = 0; i < nn; i++)
			if (hm_flametree_node(t, i)->total[0] >= thr)
				v[k++] = hm_flametree_node(t, i)->total[0];
		qsort(v, k, sizeof *v, cmp_desc);
		/* Keep totals strictly above the first one past the cap: at most
		 * the cap, and closed under "parent of" (parents are wider). */
		thr = v[HM_SVG_MAX_RECTS] + 1;
		free(v);
	}
	*min = thr;
	return HM_OK;
}

int hm_write_svg(const hm_profile *p, FILE *out, const hm_write_opts *o)
{
	int width = o && o->width > 0 ? o->width : 1200;
	if (width < 200)
		width = 200;
	if (width > 100000)
		width = 100000;
	const char *title = o && o->title && *o->title ? o->title : "Flame Graph";
	hm_flametree *t = hm_flametree_build(p, HM_FT_COUNT, NULL, NULL);
	if (!t)
		return hm_errcode();

	struct svg_geom gm = { .width = width, .inner = width - 2 * PAD_X,
			       .grand = hm_flametree_node(t, 0)->total[0] };
	int64_t thr = 1;
	int rc = HM_OK;
	struct level { const uint32_t *kids; uint32_t n, next; int64_t x; } *st = NULL;
	if (gm.grand > 0 && (rc = pick_threshold(t, gm.inner, gm.grand, &thr)) != HM_OK)
		goto out;
	uint32_t depth = 0, nn = hm_flametree_nnodes(t);
	for (uint32_t i = 0; i < nn; i++) {
		const hm_flame_node *nd = hm_flametree_node(t, i);
		if (nd->total[0] >= thr && nd->depth > depth)
			depth = nd->depth;
	}
	int height = PAD_TOP + (int)(depth + 1) * FRAME_H + PAD_BOTTOM;
	gm.base_y = height - PAD_BOTTOM - FRAME_H;

	fprintf(out,
		"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
		"<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
		"height=\"%d\" viewBox=\"0 0 %d %d\">\n"
		"<!-- Flame graph written by homura. Click a frame to zoom, Ctrl-F or / to "
		"search, Escape to reset. -->\n"
		"<defs><linearGradient id=\"bg\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"1\">"
		"<stop offset=\"5%%\" stop-color=\"#f4f4f4\"/><stop offset=\"95%%\" "
		"stop-color=\"#e8e8f0\"/></linearGradient></defs>\n"
		"<style type=\"text/css\">\n"
		"text { font-family: Verdana, 'DejaVu Sans', sans-serif; font-size: %dpx; "
		"fill: #000; }\n"
		".f text { pointer-events: none; }\n"
		".f:hover rect { stroke: #000; stroke-width: 0.5; cursor: pointer; }\n"
		"#title { font-size: 17px; }\n"
		".ctl { cursor: pointer; fill: #224; }\n"
		".ctl:hover { text-decoration: underline; }\n"
		"</style>\n"
		"<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"url(#bg)\"/>\n"
		"<text id=\"title\" x=\"%d\" y=\"24\" text-anchor=\"middle\">",
		width, height, width, height, FONT_PX, width, height, width / 2);
	hm_put_xml(out, title, strlen(title));
	fprintf(out,
		"</text>\n"
		"<text id=\"unzoom\" class=\"ctl\" x=\"%d\" y=\"24\" style=\"display:none\">"
		"Reset Zoom</text>\n"
		"<text id=\"search\" class=\"ctl\" x=\"%d\" y=\"24\" text-anchor=\"end\">"
		"Search</text>\n"
		"<text id=\"details\" x=\"%d\" y=\"%d\"> </text>\n"
		"<text id=\"matched\" x=\"%d\" y=\"%d\" text-anchor=\"end\"> </text>\n",
		PAD_X, width - PAD_X, PAD_X, height - 10, width - PAD_X, height - 10);

	if (gm.grand <= 0) {
		fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">No samples</text>\n",
			width / 2, (int)gm.base_y + 12);
	} else {
		/* Depth-first walk; st[d].x is the offset (in samples) of the next
		 * child at depth d + 1. Narrow subtrees are skipped whole. */
		st = calloc((size_t)hm_flametree_max_depth(t) + 2, sizeof *st);
		if (!st) {
			rc = hm_error(HM_ENOMEM, "out of memory writing SVG");
			goto out;
		}
		put_frame(out, t, hm_flametree_node(t, 0), &gm, 0);
		uint32_t d = 0;
		st[0].kids = hm_flametree_children(t, 0, &st[0].n);
		while (1) {
			struct level *lv = &st[d];
			if (lv->next == lv->n) {
				if (d == 0)
					break;
				d--;
				continue;
			}
			uint32_t id = lv->kids[lv->next++];
			const hm_flame_node *nd = hm_flametree_node(t, id);
			int64_t x = lv->x;
			if (__builtin_add_overflow(lv->x, nd->total[0], &lv->x))
				lv->x = INT64_MAX;      /* saturated totals (hostile counts) */
			if (nd->total[0] < thr)
				continue;
			put_frame(out, t, nd, &gm, x);
			d++;
			st[d].kids = hm_flametree_children(t, id, &st[d].n);
			st[d].next = 0;
			st[d].x = x;
		}
	}
	fprintf(out, "<script type=\"text/ecmascript\">var WIDTH = %d, PAD = %d;</script>\n",
		width, PAD_X);
	fputs(script, out);
	fputs("</svg>\n", out);
	if (ferror(out))
		rc = hm_error(HM_EIO, "writing SVG failed");
out:
	free(st);
	hm_flametree_free(t);
	return rc;
}
