/* topview.c - per-function and per-line own/total time for `homura top`
 * (see topview.h).
 *
 * Frames are interned in a private hm_profile used only for its string and
 * frame interners, so a frame id indexes two dense arrays of counters: one
 * for the function view (frames keyed by name, file and first line) and one
 * for the line view (keyed by name, file and line). Total time counts a frame
 * once per stack: each counter remembers the serial number of the last stack
 * that added to it. Rows are built on demand and sorted with qsort; the table
 * is small (distinct functions or lines), and this happens once a second.
 *
 * The text helpers at the end fit UTF-8 to a number of terminal columns
 * without any locale: a small decoder, wide East Asian ranges count two. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/profile.h"
#include "sample/topview.h"

struct cell {
	int64_t own_win, total_win;     /* current window, in samples */
	int64_t own_last, total_last;   /* last closed window */
	int64_t own_ns, total_ns;       /* since start */
	uint64_t stamp;                 /* serial of the last stack counted */
};

struct hm_topview {
	hm_profile *names;              /* interner only: strings and frames */
	struct cell *cells[2];          /* [mode][frame id] */
	uint32_t ncells;                /* allocated length of both arrays */
	uint32_t *ids[2];               /* frame ids used by each view */
	uint32_t nids[2], ids_cap[2];
	uint64_t serial;                /* stacks added since the start */
	uint64_t rounds_win, rounds_last;
	uint64_t stacks_win, stacks_last;
	uint32_t tag;                   /* for hm_pycode.user_gen */
	hm_mframe *mf;                  /* hm_topview_add_native's scratch */
	hm_topframe *tf;
	int mcap;
};

hm_topview *hm_topview_new(void)
{
	hm_topview *v = calloc(1, sizeof *v);
	if (!v)
		return NULL;
	v->names = hm_profile_new(0);
	if (!v->names) {
		free(v);
		return NULL;
	}
	/* Same scheme as the sampler: unique while the interner is alive. */
	v->tag = (uint32_t)(((uintptr_t)v->names >> 4) | 1);
	return v;
}

void hm_topview_free(hm_topview *v)
{
	if (!v)
		return;
	hm_profile_free(v->names);
	free(v->mf);
	free(v->tf);
	for (int m = 0; m < 2; m++) {
		free(v->cells[m]);
		free(v->ids[m]);
	}
	free(v);
}

void hm_topview_round(hm_topview *v)
{
	v->rounds_win++;
}

/* The counters of frame id in view mode, growing the arrays as needed;
 * NULL when out of memory. */
static struct cell *cell_of(hm_topview *v, int mode, uint32_t id)
{
	if (id == UINT32_MAX)
		return NULL;
	if (id >= v->ncells) {
		uint32_t nc = v->ncells ? v->ncells : 256;
		while (nc <= id)
			nc *= 2;
		for (int m = 0; m < 2; m++) {
			struct cell *c = realloc(v->cells[m], nc * sizeof *c);
			if (!c)
				return NULL;
			memset(c + v->ncells, 0, (nc - v->ncells) * sizeof *c);
			v->cells[m] = c;
		}
		/* Both arrays now hold nc cells. */
		v->ncells = nc;
	}
	struct cell *c = &v->cells[mode][id];
	if (!c->stamp && !c->total_ns && !c->total_win && !c->total_last) {
		/* First use in this view: remember the id for the rows. */
		if (v->nids[mode] == v->ids_cap[mode]) {
			uint32_t nc = v->ids_cap[mode] ? v->ids_cap[mode] * 2 : 256;
			uint32_t *ni = realloc(v->ids[mode], nc * sizeof *ni);
			if (!ni)
				return NULL;
			v->ids[mode] = ni;
			v->ids_cap[mode] = nc;
		}
		v->ids[mode][v->nids[mode]++] = id;
	}
	return c;
}

static void count(struct cell *c, uint64_t serial, int leaf, int64_t weight_ns)
{
	if (leaf) {
		c->own_win++;
		c->own_ns += weight_ns;
	}
	if (c->stamp != serial) {
		c->stamp = serial;
		c->total_win++;
		c->total_ns += weight_ns;
	}
}

/* Count one frame, given its function-view and line-view frame ids. */
static int add_frame(hm_topview *v, uint32_t fn_id, uint32_t line_id, int leaf, int64_t weight_ns)
{
	struct cell *c = cell_of(v, HM_TOP_FUNCTIONS, fn_id);
	if (!c)
		return hm_error(HM_ENOMEM, "out of memory");
	count(c, v->serial, leaf, weight_ns);
	c = cell_of(v, HM_TOP_LINES, line_id);
	if (!c)
		return hm_error(HM_ENOMEM, "out of memory");
	count(c, v->serial, leaf, weight_ns);
	return HM_OK;
}

static uint32_t frame_id(hm_topview *v, hm_str_id name, hm_str_id file, int32_t line,
			 int32_t start_line)
{
	hm_frame f;
	memset(&f, 0, sizeof f);
	f.name = name;
	f.file = file;
	f.line = line;
	f.start_line = start_line;
	f.kind = HM_FRAME_PYTHON;
	return hm_profile_frame_id(v->names, &f);
}

int hm_topview_add(hm_topview *v, const hm_topframe *frames, int n, int64_t weight_ns)
{
	if (n <= 0)
		return HM_OK;
	v->serial++;
	v->stacks_win++;
	for (int i = 0; i < n; i++) {
		hm_str_id name = hm_profile_intern_cstr(v->names, frames[i].name ? frames[i].name : "");
		hm_str_id file = hm_profile_intern_cstr(v->names, frames[i].file ? frames[i].file : "");
		uint32_t fn = frame_id(v, name, file, 0, frames[i].start_line);
		uint32_t ln = frame_id(v, name, file, frames[i].line, frames[i].start_line);
		int rc = add_frame(v, fn, ln, i == 0, weight_ns);
		if (rc != HM_OK)
			return rc;
	}
	return HM_OK;
}

int hm_topview_add_thread(hm_topview *v, const hm_pythread *th, int64_t weight_ns)
{
	if (!th->valid || th->nframes <= 0)
		return HM_OK;
	v->serial++;
	v->stacks_win++;
	for (int i = 0; i < th->nframes; i++) {
		hm_pycode *c = (hm_pycode *)th->frames[i].code;
		if (c->user_gen != v->tag) {
			/* Cache the function-view frame id in the code object. */
			hm_str_id name = hm_profile_intern_cstr(v->names, c->qualname);
			hm_str_id file = hm_profile_intern_cstr(v->names, c->filename);
			c->user = frame_id(v, name, file, 0, c->firstlineno);
			c->user_gen = v->tag;
		}
		const hm_frame *ff = hm_profile_frame(v->names, c->user);
		if (!ff)
			return hm_error(HM_ENOMEM, "out of memory");
		uint32_t ln = frame_id(v, ff->name, ff->file, th->frames[i].line, ff->start_line);
		int rc = add_frame(v, c->user, ln, i == 0, weight_ns);
		if (rc != HM_OK)
			return rc;
	}
	if (th->span.trace_hi || th->span.trace_lo) {
		/* The OpenTelemetry span it ran in, as a row of its own
		 * ("span: NAME", total only): which span burns the time. */
		char text[160];
		snprintf(text, sizeof text, "span: %s", th->span.name[0] ? th->span.name : "?");
		hm_str_id name = hm_profile_intern_cstr(v->names, text);
		uint32_t id = frame_id(v, name, 0, 0, 0);
		return add_frame(v, id, id, 0, weight_ns);
	}
	return HM_OK;
}

int hm_topview_add_native(hm_topview *v, const hm_pythread *th, const hm_natstack *ns,
			  const hm_pylayout *L, int64_t weight_ns)
{
	if (!ns || ns->state != HM_NATSTACK_OK)
		return hm_topview_add_thread(v, th, weight_ns);
	int cap = ns->nframes + th->nframes;
	if (cap > v->mcap) {
		hm_mframe *m = realloc(v->mf, (size_t)cap * sizeof *m);
		if (m)
			v->mf = m;
		hm_topframe *f = realloc(v->tf, (size_t)cap * sizeof *f);
		if (f)
			v->tf = f;
		if (!m || !f)
			return hm_topview_add_thread(v, th, weight_ns);
		v->mcap = cap;
	}
	int n = hm_native_merge(ns, th, L, v->mf, cap);
	if (n <= 0)   /* torn: the Python stack alone */
		return hm_topview_add_thread(v, th, weight_ns);
	for (int i = 0; i < n; i++) {
		hm_topframe *f = &v->tf[i];
		if (v->mf[i].py) {
			const hm_pyframe *pf = v->mf[i].py;
			f->name = pf->code->qualname;
			f->file = pf->code->filename;
			f->line = pf->line;
			f->start_line = pf->code->firstlineno;
		} else {
			const hm_natsym *s = v->mf[i].nat;
			f->name = s->name;
			f->file = s->file ? s->file : s->module;
			if (s->name[0] == '[' && f->file && !strcmp(f->file, s->module))
				f->file = NULL;   /* "[module]": no symbol there */
			f->line = s->line;
			f->start_line = 0;
		}
	}
	return hm_topview_add(v, v->tf, n, weight_ns);
}

void hm_topview_end_window(hm_topview *v)
{
	for (int m = 0; m < 2; m++)
		for (uint32_t i = 0; i < v->nids[m]; i++) {
			struct cell *c = &v->cells[m][v->ids[m][i]];
			c->own_last = c->own_win;
			c->total_last = c->total_win;
			c->own_win = c->total_win = 0;
		}
	v->rounds_last = v->rounds_win;
	v->stacks_last = v->stacks_win;
	v->rounds_win = v->stacks_win = 0;
}

uint64_t hm_topview_window_rounds(const hm_topview *v) { return v->rounds_last; }
uint64_t hm_topview_window_stacks(const hm_topview *v) { return v->stacks_last; }
uint64_t hm_topview_total_stacks(const hm_topview *v) { return v->serial; }

size_t hm_topview_nrows(const hm_topview *v, int mode)
{
	return mode == HM_TOP_LINES || mode == HM_TOP_FUNCTIONS ? v->nids[mode] : 0;
}

static int sort_key;   /* qsort has no context argument; set just before */

static int cmp_double(double a, double b)
{
	return a > b ? -1 : a < b ? 1 : 0;   /* descending */
}

static int cmp_rows(const void *pa, const void *pb)
{
	const hm_toprow *a = pa, *b = pb;
	/* The chosen column, then the others in column order. */
	double ka[4] = {a->own_pct, a->total_pct, a->own_s, a->total_s};
	double kb[4] = {b->own_pct, b->total_pct, b->own_s, b->total_s};
	int r = cmp_double(ka[sort_key], kb[sort_key]);
	for (int i = 0; i < 4 && !r; i++)
		r = cmp_double(ka[i], kb[i]);
	if (!r)
		r = strcmp(a->name, b->name);
	if (!r)
		r = strcmp(a->file, b->file);
	if (!r)
		r = (a->line > b->line) - (a->line < b->line);
	return r;
}

size_t hm_topview_rows(const hm_topview *v, int mode, int sort, hm_toprow *rows, size_t max)
{
	if ((mode != HM_TOP_FUNCTIONS && mode != HM_TOP_LINES) || !max)
		return 0;
	size_t n = v->nids[mode];
	hm_toprow *all = n <= max ? rows : malloc(n * sizeof *all);
	if (!all) {
		hm_error(HM_ENOMEM, "out of memory");
		return 0;
	}
	double rounds = (double)v->rounds_last;
	for (size_t i = 0; i < n; i++) {
		uint32_t id = v->ids[mode][i];
		const struct cell *c = &v->cells[mode][id];
		const hm_frame *f = hm_profile_frame(v->names, id);
		hm_toprow *r = &all[i];
		r->name = hm_profile_str(v->names, f->name);
		r->file = hm_profile_str(v->names, f->file);
		r->line = mode == HM_TOP_LINES ? f->line : f->start_line;
		r->own_n = c->own_last;
		r->total_n = c->total_last;
		r->own_pct = rounds > 0 ? 100.0 * (double)c->own_last / rounds : 0;
		r->total_pct = rounds > 0 ? 100.0 * (double)c->total_last / rounds : 0;
		r->own_s = (double)c->own_ns / 1e9;
		r->total_s = (double)c->total_ns / 1e9;
	}
	sort_key = sort >= 0 && sort < 4 ? sort : HM_TOP_SORT_OWN;
	qsort(all, n, sizeof *all, cmp_rows);
	if (all != rows) {
		memcpy(rows, all, max * sizeof *rows);
		free(all);
		n = max;
	}
	return n;
}

/* ---------------------------------------------------------------- text */

/* Decode one UTF-8 character at s; returns its length, or 0 at the end.
 * Invalid sequences decode as one byte, *cp = -1. */
static int utf8_next(const unsigned char *s, int32_t *cp)
{
	unsigned c = s[0];
	if (!c)
		return 0;
	if (c < 0x80) {
		*cp = (int32_t)c;
		return 1;
	}
	int len = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
	if (c >= 0xf5)
		len = 0;
	if (!len) {
		*cp = -1;
		return 1;
	}
	uint32_t v = c & (0x7fu >> len);
	for (int i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			*cp = -1;
			return 1;
		}
		v = (v << 6) | (s[i] & 0x3fu);
	}
	/* Overlong forms, surrogates, beyond Unicode. */
	if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10ffff)) ||
	    (v >= 0xd800 && v <= 0xdfff)) {
		*cp = -1;
		return 1;
	}
	*cp = (int32_t)v;
	return len;
}

/* Columns a code point takes on a terminal: 0, 1 or 2. */
static int cp_width(int32_t cp)
{
	if ((cp >= 0x300 && cp <= 0x36f) || (cp >= 0x200b && cp <= 0x200f))
		return 0;
	if ((cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0x303e) ||
	    (cp >= 0x3041 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3) ||
	    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) ||
	    (cp >= 0xff00 && cp <= 0xff60) || (cp >= 0xffe0 && cp <= 0xffe6) ||
	    (cp >= 0x1f300 && cp <= 0x1f64f) || (cp >= 0x1f900 && cp <= 0x1f9ff) ||
	    (cp >= 0x20000 && cp <= 0x3fffd))
		return 2;
	return 1;
}

/* Is cp shown as '?': invalid, control, or non-ASCII in ascii mode. */
static int shown_as_qmark(int32_t cp, int ascii)
{
	return cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || (ascii && cp >= 0x80);
}

int hm_text_fit(const char *s, int width, int ascii, char *buf, size_t cap)
{
	size_t o = 0;
	int w = 0;
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	if (!cap)
		return 0;
	for (;;) {
		int32_t cp;
		int len = utf8_next(p, &cp);
		if (!len)
			break;
		int q = shown_as_qmark(cp, ascii);
		int cw = q ? 1 : cp_width(cp);
		size_t bytes = q ? 1 : (size_t)len;
		if ((width >= 0 && w + cw > width) || o + bytes + 1 > cap)
			break;
		if (q)
			buf[o] = '?';
		else
			memcpy(buf + o, p, bytes);
		o += bytes;
		w += cw;
		p += len;
	}
	buf[o] = 0;
	return w;
}

int hm_text_width(const char *s, int ascii)
{
	int w = 0;
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	for (;;) {
		int32_t cp;
		int len = utf8_next(p, &cp);
		if (!len)
			return w;
		w += shown_as_qmark(cp, ascii) ? 1 : cp_width(cp);
		p += len;
	}
}

int hm_topview_format_columns(int sort, int width, char *buf, size_t cap)
{
	static const char *names[4] = {"%Own", "%Total", "OwnTime", "TotalTime"};
	static const int widths[4] = {6, 7, 9, 10};
	char line[128];
	size_t o = 0;
	for (int i = 0; i < 4; i++) {
		char name[16];
		snprintf(name, sizeof name, "%s%s", i == sort ? "*" : "", names[i]);
		o += (size_t)snprintf(line + o, sizeof line - o, "%s%*s", i ? " " : "", widths[i],
				      name);
	}
	snprintf(line + o, sizeof line - o, "  Function (file:line)");
	return hm_text_fit(line, width > 0 ? width : -1, 1, buf, cap);
}

static void fmt_pct(char *out, size_t cap, double pct, int w)
{
	if (pct < 999.95)
		snprintf(out, cap, "%*.1f%%", w - 1, pct);
	else
		snprintf(out, cap, "%*.0f%%", w - 1, pct);
}

static void fmt_secs(char *out, size_t cap, double s, int w)
{
	if (s < 99999.995)
		snprintf(out, cap, "%*.2fs", w - 1, s);
	else
		snprintf(out, cap, "%*.0fs", w - 1, s);
}

/* "name (file:line)" in at most avail columns (avail < 0: no limit): when
 * it is too long, the file loses leading directories (".../tail"), then
 * the name is cut. */
static void fmt_function(const hm_toprow *r, int avail, int ascii, char *buf, size_t cap)
{
	char where[32] = "";
	if (r->line > 0)
		snprintf(where, sizeof where, ":%d", (int)r->line);
	const char *file = r->file ? r->file : "";
	const char *name = r->name ? r->name : "";
	size_t need = strlen(name) + strlen(file) + sizeof where + 8;
	char *full = malloc(need);
	if (!full) {
		hm_text_fit(name, avail, ascii, buf, cap);
		return;
	}
	if (*file)
		snprintf(full, need, "%s (%s%s)", name, file, where);
	else
		snprintf(full, need, "%s", name);
	if (avail < 0 || hm_text_width(full, ascii) <= avail || !*file) {
		hm_text_fit(full, avail, ascii, buf, cap);
		free(full);
		return;
	}
	/* Try shorter tails of the path, longest first: ".../dir/file.py". */
	int name_w = hm_text_width(name, ascii);
	int fixed = name_w + 2 + (int)strlen(where) + 1;   /* "name (" ... ")" */
	const char *base = strrchr(file, '/');
	const char *tail = NULL;
	for (const char *p = strchr(file + 1, '/'); p; p = strchr(p + 1, '/'))
		if (fixed + 3 + hm_text_width(p, ascii) <= avail) {
			tail = p;
			break;
		}
	if (tail) {
		snprintf(full, need, "%s (...%s%s)", name, tail, where);
	} else {
		/* Cut the name to leave room for " (.../base:line)". */
		char suffix[512];
		snprintf(suffix, sizeof suffix, " (%s%s%s)", base && base != file ? "..." : "",
			 base && base != file ? base : file, where);
		int sw = hm_text_width(suffix, ascii);
		if (avail - sw >= 8) {
			char cut[1024];
			hm_text_fit(name, avail - sw - 1, ascii, cut, sizeof cut);
			snprintf(full, need, "%s~%s", cut, suffix);
		} else {
			snprintf(full, need, "%s%s", name, suffix);
		}
	}
	hm_text_fit(full, avail, ascii, buf, cap);
	free(full);
}

int hm_topview_format_row(const hm_toprow *r, int width, int ascii, char *buf, size_t cap)
{
	char op[16], tp[16], os[16], ts[16], prefix[80];
	fmt_pct(op, sizeof op, r->own_pct, 6);
	fmt_pct(tp, sizeof tp, r->total_pct, 7);
	fmt_secs(os, sizeof os, r->own_s, 9);
	fmt_secs(ts, sizeof ts, r->total_s, 10);
	snprintf(prefix, sizeof prefix, "%s %s %s %s  ", op, tp, os, ts);
	int w = hm_text_fit(prefix, width > 0 ? width : -1, 1, buf, cap);
	size_t used = strlen(buf);
	if ((width > 0 && w >= width) || used + 1 >= cap)
		return w;
	fmt_function(r, width > 0 ? width - w : -1, ascii, buf + used, cap - used);
	return w + hm_text_width(buf + used, ascii);
}
