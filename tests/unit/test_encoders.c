/* test_encoders.c - collapsed, speedscope, SVG and Chrome trace encoders,
 * the flame tree and format names.
 *
 * A small hand-built profile holds awkward names (';', spaces, non-ASCII,
 * quotes, <&>, a newline, invalid UTF-8) on two threads; each format is
 * written to a memstream and checked: exact collapsed lines, speedscope
 * parsed back with jansson, SVG checked for escaping, proportional widths,
 * the rectangle cap, and well-formedness with Python's XML parser. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "base/error.h"
#include "base/profile.h"
#include "format/codec.h"
#include "format/encode.h"
#include "format/flametree.h"

#define MS 1000000LL
#define UNI "\xc3\xbc" "n" "\xc3\xaf" "code_\xe5\x87\xbd\xe6\x95\xb0" /* ünïcode_函数 */

struct fx {
	hm_profile *p;
	uint32_t main, work, uni, quote, nl, t1, t2;
};

static uint32_t frame(hm_profile *p, const char *name, const char *file, int line, int kind)
{
	hm_frame f = { .name = hm_profile_intern_cstr(p, name),
		       .file = file ? hm_profile_intern_cstr(p, file) : 0,
		       .line = line, .kind = (uint8_t)kind };
	return hm_profile_frame_id(p, &f);
}

static uint32_t stack(hm_profile *p, int n, ...)
{
	uint32_t fr[16];
	va_list ap;
	va_start(ap, n);
	for (int i = 0; i < n; i++)
		fr[i] = va_arg(ap, uint32_t);
	va_end(ap);
	return hm_profile_stack_id(p, fr, (uint32_t)n);
}

/* The shared fixture. With timeline, events are interleaved across threads. */
static void build(struct fx *x, int timeline)
{
	hm_profile *p = x->p = hm_profile_new(timeline);
	assert_non_null(p);
	hm_profile_meta_get(p)->start_ns = 1000 * MS;
	x->main = frame(p, "main", "app.py", 10, HM_FRAME_PYTHON);
	x->work = frame(p, "do;work", "a b.py", 20, HM_FRAME_PYTHON);
	x->uni = frame(p, UNI, "m.py", 3, HM_FRAME_PYTHON);
	x->quote = frame(p, "quote\"<&>'", NULL, 0, HM_FRAME_NATIVE);
	x->nl = frame(p, "line\nbreak", "x.py", 0, HM_FRAME_PYTHON);
	x->t1 = hm_profile_thread_id(p, 101, 7, "MainThread");
	x->t2 = hm_profile_thread_id(p, 202, 7, "worker");
	uint32_t s_work = stack(p, 2, x->main, x->work);
	uint32_t s_main = stack(p, 1, x->main);
	uint32_t s_uni = stack(p, 2, x->main, x->uni);
	uint32_t s_quote = stack(p, 2, x->main, x->quote);
	uint32_t s_nl = stack(p, 1, x->nl);
	uint64_t t = 1000 * MS;
	hm_profile_add(p, s_work, x->t1, 3, 30 * MS, t + 10 * MS);
	hm_profile_add(p, s_work, x->t2, 2, 20 * MS, t + 15 * MS);
	hm_profile_add(p, s_main, x->t1, 1, 10 * MS, t + 40 * MS);
	hm_profile_add(p, s_uni, x->t2, 4, 40 * MS + 500, t + 35 * MS);
	hm_profile_add(p, s_quote, x->t1, 2, 20 * MS, t + 50 * MS);
	hm_profile_add(p, s_nl, x->t2, 1, 10 * MS, t + 75 * MS);
}

/* Whatever a writer produced, as a NUL-terminated malloc'd string. */
static char *render(const hm_profile *p, int fmt, const hm_write_opts *o, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	assert_non_null(f);
	int rc = hm_profile_write(p, fmt, f, o);
	if (rc != HM_OK)
		fail_msg("write %s: %s", hm_format_name(fmt), hm_errmsg());
	fclose(f);
	if (len)
		*len = n;
	return buf;
}

static void test_collapsed(void **state)
{
	struct fx x;
	build(&x, 0);
	char *out = render(x.p, HM_FMT_COLLAPSED, NULL, NULL);
	assert_string_equal(out,
			    "line break (x.py) 1\n"
			    "main (app.py:10) 1\n"
			    "main (app.py:10);do:work (a b.py:20) 5\n"
			    "main (app.py:10);quote\"<&>' 2\n"
			    "main (app.py:10);" UNI " (m.py:3) 4\n");
	free(out);
	hm_profile_free(x.p);
}

static void test_collapsed_threads_and_empty(void **state)
{
	/* Thread pseudo frames are just frames; empty stacks are left out. */
	hm_profile *p = hm_profile_new(0);
	uint32_t th = frame(p, "thread 5", NULL, 0, HM_FRAME_THREAD);
	uint32_t f = frame(p, "f", "f.py", 1, HM_FRAME_PYTHON);
	uint32_t t = hm_profile_thread_id(p, 5, 1, NULL);
	hm_profile_add(p, stack(p, 2, th, f), t, 7, 0, 0);
	hm_profile_add(p, hm_profile_stack_id(p, NULL, 0), t, 2, 0, 0);
	char *out = render(p, HM_FMT_COLLAPSED, NULL, NULL);
	assert_string_equal(out, "thread 5;f (f.py:1) 7\n");
	free(out);
	hm_profile_free(p);

	p = hm_profile_new(0);
	out = render(p, HM_FMT_COLLAPSED, NULL, NULL);
	assert_string_equal(out, "");
	free(out);
	hm_profile_free(p);
}

/* Frame names of a speedscope sample joined by '|'. */
static void sample_names(json_t *frames, json_t *sample, char *buf, size_t cap)
{
	size_t i;
	json_t *v;
	buf[0] = 0;
	json_array_foreach(sample, i, v) {
		json_t *fr = json_array_get(frames, (size_t)json_integer_value(v));
		assert_non_null(fr);
		if (i)
			strncat(buf, "|", cap - strlen(buf) - 1);
		strncat(buf, json_string_value(json_object_get(fr, "name")), cap - strlen(buf) - 1);
	}
}

static json_t *parse_json(const char *s)
{
	json_error_t err;
	json_t *j = json_loads(s, 0, &err);
	if (!j)
		fail_msg("invalid JSON: %s at line %d col %d", err.text, err.line, err.column);
	return j;
}

static void check_profile(json_t *frames, json_t *prof, const char *name, const char *unit,
			  const char **stacks, const double *weights, size_t n)
{
	assert_string_equal(json_string_value(json_object_get(prof, "type")), "sampled");
	assert_string_equal(json_string_value(json_object_get(prof, "name")), name);
	assert_string_equal(json_string_value(json_object_get(prof, "unit")), unit);
	json_t *samples = json_object_get(prof, "samples");
	json_t *w = json_object_get(prof, "weights");
	assert_int_equal(json_array_size(samples), n);
	assert_int_equal(json_array_size(w), n);
	for (size_t i = 0; i < n; i++) {
		char buf[256];
		sample_names(frames, json_array_get(samples, i), buf, sizeof buf);
		assert_string_equal(buf, stacks[i]);
		double got = json_number_value(json_array_get(w, i));
		if (got < weights[i] - 1e-9 || got > weights[i] + 1e-9)
			fail_msg("sample %zu of %s: weight %.9f, want %.9f", i, name, got,
				 weights[i]);
	}
}

static void test_speedscope_aggregate(void **state)
{
	struct fx x;
	build(&x, 0);
	hm_write_opts o = { .title = "my \"app\"\n" };
	char *out = render(x.p, HM_FMT_SPEEDSCOPE, &o, NULL);
	json_t *j = parse_json(out);
	assert_string_equal(json_string_value(json_object_get(j, "$schema")),
			    "https://www.speedscope.app/file-format-schema.json");
	assert_string_equal(json_string_value(json_object_get(j, "exporter")), "homura");
	assert_string_equal(json_string_value(json_object_get(j, "name")), "my \"app\"\n");
	json_t *frames = json_object_get(json_object_get(j, "shared"), "frames");
	assert_int_equal(json_array_size(frames), 5);
	json_t *fq = json_array_get(frames, x.quote);
	assert_string_equal(json_string_value(json_object_get(fq, "name")), "quote\"<&>'");
	assert_null(json_object_get(fq, "file"));
	json_t *fu = json_array_get(frames, x.uni);
	assert_string_equal(json_string_value(json_object_get(fu, "name")), UNI);
	assert_string_equal(json_string_value(json_object_get(fu, "file")), "m.py");
	assert_int_equal(json_integer_value(json_object_get(fu, "line")), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(frames, x.nl),
							       "name")), "line\nbreak");

	json_t *profs = json_object_get(j, "profiles");
	assert_int_equal(json_array_size(profs), 2);
	const char *s1[] = { "main|do;work", "main", "main|quote\"<&>'" };
	const double w1[] = { 30, 10, 20 };
	check_profile(frames, json_array_get(profs, 0), "Thread 101 MainThread", "milliseconds",
		      s1, w1, 3);
	const char *s2[] = { "main|do;work", "main|" UNI, "line\nbreak" };
	const double w2[] = { 20, 40.0005, 10 };
	check_profile(frames, json_array_get(profs, 1), "Thread 202 worker", "milliseconds",
		      s2, w2, 3);
	json_t *p2 = json_array_get(profs, 1);
	assert_true(json_number_value(json_object_get(p2, "startValue")) == 0);
	assert_true(json_number_value(json_object_get(p2, "endValue")) == 70.0005);
	json_decref(j);
	free(out);
	hm_profile_free(x.p);
}

static void test_speedscope_timeline(void **state)
{
	struct fx x;
	build(&x, 1);
	char *out = render(x.p, HM_FMT_SPEEDSCOPE, NULL, NULL);
	json_t *j = parse_json(out);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "homura profile");
	json_t *frames = json_object_get(json_object_get(j, "shared"), "frames");
	json_t *profs = json_object_get(j, "profiles");
	assert_int_equal(json_array_size(profs), 2);
	/* Events in the order they were recorded, per thread. */
	const char *s1[] = { "main|do;work", "main", "main|quote\"<&>'" };
	const double w1[] = { 30, 10, 20 };
	check_profile(frames, json_array_get(profs, 0), "Thread 101 MainThread", "milliseconds",
		      s1, w1, 3);
	const char *s2[] = { "main|do;work", "main|" UNI, "line\nbreak" };
	const double w2[] = { 20, 40.0005, 10 };
	check_profile(frames, json_array_get(profs, 1), "Thread 202 worker", "milliseconds",
		      s2, w2, 3);
	/* Thread 1 starts 10 ms after the profile start; its samples sum to 60 ms
	 * but the last one (at 50 ms) ends at 70 ms. */
	json_t *p1 = json_array_get(profs, 0);
	assert_true(json_number_value(json_object_get(p1, "startValue")) == 10);
	assert_true(json_number_value(json_object_get(p1, "endValue")) == 70);
	json_t *p2 = json_array_get(profs, 1);
	assert_true(json_number_value(json_object_get(p2, "startValue")) == 15);
	assert_true(json_number_value(json_object_get(p2, "endValue")) == 85.0005);
	json_decref(j);
	free(out);
	hm_profile_free(x.p);
}

static void test_speedscope_counts_and_bad_utf8(void **state)
{
	/* No weights: unit "none" with counts. Control chars and invalid UTF-8
	 * must still give valid JSON (jansson rejects invalid UTF-8). */
	hm_profile *p = hm_profile_new(0);
	uint32_t f = frame(p, "\x01" "bad\xff\xc3(\xed\xa0\x80 \\ \x7f", "f\tile", 0, HM_FRAME_NATIVE);
	uint32_t t = hm_profile_thread_id(p, 9, 1, NULL);
	hm_profile_add(p, stack(p, 1, f), t, 6, 0, 0);
	char *out = render(p, HM_FMT_SPEEDSCOPE, NULL, NULL);
	json_t *j = parse_json(out);
	json_t *fr = json_array_get(json_object_get(json_object_get(j, "shared"), "frames"), 0);
	assert_string_equal(json_string_value(json_object_get(fr, "name")),
			    "\x01" "bad\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd"
			    "\xef\xbf\xbd \\ \x7f");
	assert_string_equal(json_string_value(json_object_get(fr, "file")), "f\tile");
	const char *s[] = { json_string_value(json_object_get(fr, "name")) };
	const double w[] = { 6 };
	check_profile(json_object_get(json_object_get(j, "shared"), "frames"),
		      json_array_get(json_object_get(j, "profiles"), 0), "Thread 9", "none", s, w,
		      1);
	json_decref(j);
	free(out);
	hm_profile_free(p);

	p = hm_profile_new(1);
	out = render(p, HM_FMT_SPEEDSCOPE, NULL, NULL);
	j = parse_json(out);
	assert_int_equal(json_array_size(json_object_get(j, "profiles")), 0);
	json_decref(j);
	free(out);
	hm_profile_free(p);
}

/* Run Python's XML parser over the document when python3 is around. */
static void check_xml(const char *doc, size_t len)
{
	if (access("/usr/bin/python3", X_OK) != 0)
		return;
	char path[] = "/tmp/homura-test-svg-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, doc, len), (ssize_t)len);
	close(fd);
	char cmd[256];
	snprintf(cmd, sizeof cmd,
		 "/usr/bin/python3 -c 'import xml.dom.minidom,sys; "
		 "xml.dom.minidom.parse(sys.argv[1])' %s", path);
	int rc = system(cmd);
	unlink(path);
	assert_int_equal(rc, 0);
}

/* Width of the rect following the first <title> starting with prefix. */
static double rect_width(const char *svg, const char *prefix)
{
	char key[256];
	snprintf(key, sizeof key, "<title>%s", prefix);
	const char *t = strstr(svg, key);
	if (!t)
		fail_msg("no frame titled %s", prefix);
	const char *w = strstr(t, " width=\"");
	assert_non_null(w);
	return strtod(w + 8, NULL);
}

static size_t count(const char *s, const char *needle)
{
	size_t n = 0;
	for (const char *q = s; (q = strstr(q, needle)); q++)
		n++;
	return n;
}

static void test_svg(void **state)
{
	struct fx x;
	build(&x, 0);
	hm_write_opts o = { .title = "CPU <&> \"profile\"", .width = 1000 };
	size_t len;
	char *svg = render(x.p, HM_FMT_SVG, &o, &len);
	check_xml(svg, len);
	assert_non_null(strstr(svg, "<svg "));
	assert_non_null(strstr(svg, "width=\"1000\""));
	assert_non_null(strstr(svg, ">CPU &lt;&amp;&gt; &quot;profile&quot;</text>"));
	assert_non_null(strstr(svg, "<title>quote&quot;&lt;&amp;&gt;&#39; \xe2\x80\x94 2 samples "
				    "(15.38%)</title>"));
	assert_non_null(strstr(svg, "<title>main (app.py:10) \xe2\x80\x94 12 samples"));
	assert_non_null(strstr(svg, "<title>" UNI " (m.py:3) \xe2\x80\x94 4 samples"));
	assert_non_null(strstr(svg, "<title>do;work (a b.py:20) \xe2\x80\x94 5 samples"));
	assert_non_null(strstr(svg, "<title>line break (x.py) \xe2\x80\x94 1 sample (7.69%)"));
	assert_non_null(strstr(svg, "<title>all \xe2\x80\x94 13 samples (100.00%)"));
	assert_null(strstr(svg, "href")); /* self-contained: nothing to fetch */
	assert_non_null(strstr(svg, "<script"));
	assert_int_equal(count(svg, "<g class=\"f\">"), 6);

	double all = rect_width(svg, "all "), inner = 1000 - 20;
	assert_true(all > inner - 0.01 && all < inner + 0.01);
	const struct { const char *t; int n; } want[] = {
		{ "main ", 12 }, { "do;work", 5 }, { UNI, 4 }, { "quote", 2 }, { "line ", 1 },
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		double w = rect_width(svg, want[i].t), exp = inner * want[i].n / 13.0;
		if (w < exp - 0.01 || w > exp + 0.01)
			fail_msg("%s: width %.3f, want %.3f", want[i].t, w, exp);
	}
	free(svg);
	hm_profile_free(x.p);
}

static void test_svg_bad_text_and_empty(void **state)
{
	hm_profile *p = hm_profile_new(0);
	uint32_t f = frame(p, "\x01<x>\xff]]>", "\xe2\x82", 0, HM_FRAME_OTHER);
	hm_profile_add(p, stack(p, 1, f), hm_profile_thread_id(p, 1, 1, NULL), 3, 0, 0);
	size_t len;
	char *svg = render(p, HM_FMT_SVG, NULL, &len);
	check_xml(svg, len);
	assert_non_null(strstr(svg, "\xef\xbf\xbd&lt;x&gt;\xef\xbf\xbd]]&gt; (\xef\xbf\xbd"
				    "\xef\xbf\xbd)"));
	assert_non_null(strstr(svg, ">Flame Graph</text>"));
	free(svg);
	hm_profile_free(p);

	p = hm_profile_new(0);
	svg = render(p, HM_FMT_SVG, NULL, &len);
	check_xml(svg, len);
	assert_non_null(strstr(svg, "No samples"));
	assert_int_equal(count(svg, "<g class=\"f\">"), 0);
	free(svg);
	hm_profile_free(p);
}

static void test_svg_drops_narrow_and_caps(void **state)
{
	/* One heavy stack and 5000 one-sample siblings: at 1200 px each of
	 * those is 0.0002 px wide and must not be drawn. */
	hm_profile *p = hm_profile_new(0);
	uint32_t t = hm_profile_thread_id(p, 1, 1, NULL);
	uint32_t root = frame(p, "root", "r.py", 1, HM_FRAME_PYTHON);
	hm_profile_add(p, stack(p, 2, root, frame(p, "heavy", "h.py", 1, HM_FRAME_PYTHON)), t,
		       50000000, 0, 0);
	char name[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof name, "tiny%d", i);
		hm_profile_add(p, stack(p, 2, root, frame(p, name, NULL, 0, HM_FRAME_NATIVE)), t, 1,
			       0, 0);
	}
	size_t len;
	char *svg = render(p, HM_FMT_SVG, NULL, &len);
	assert_int_equal(count(svg, "<g class=\"f\">"), 3);
	assert_null(strstr(svg, "tiny"));
	free(svg);
	hm_profile_free(p);

	/* 60000 distinct frames wide enough to draw at 100000 px: capped. */
	p = hm_profile_new(0);
	t = hm_profile_thread_id(p, 1, 1, NULL);
	for (int i = 0; i < 60000; i++) {
		snprintf(name, sizeof name, "f%d", i);
		hm_profile_add(p, stack(p, 1, frame(p, name, NULL, 0, HM_FRAME_PYTHON)), t,
			       i < 100 ? 10 : 1, 0, 0);
	}
	hm_write_opts o = { .width = 100000 };
	svg = render(p, HM_FMT_SVG, &o, &len);
	size_t n = count(svg, "<g class=\"f\">");
	assert_true(n <= 50000);
	assert_true(n >= 101);
	assert_non_null(strstr(svg, "<title>f99 ")); /* the wide ones survive */
	assert_non_null(strstr(svg, "<title>all "));
	free(svg);
	hm_profile_free(p);
}

static int only_thread(const hm_profile *p, const hm_sample *s, void *ud)
{
	return s->thread == *(uint32_t *)ud;
}

static void test_flametree(void **state)
{
	struct fx x;
	build(&x, 0);
	hm_flametree *t = hm_flametree_new();
	assert_int_equal(hm_flametree_add(t, x.p, 0, HM_FT_COUNT, NULL, NULL), HM_OK);
	assert_int_equal(hm_flametree_add(t, x.p, 1, HM_FT_WEIGHT, only_thread, &x.t2), HM_OK);
	assert_int_equal(hm_flametree_nnodes(t), 6);
	assert_int_equal(hm_flametree_max_depth(t), 2);
	const hm_flame_node *root = hm_flametree_node(t, 0);
	assert_string_equal(hm_flametree_str(t, root->text), "all");
	assert_int_equal(root->total[0], 13);
	assert_int_equal(root->total[1], 70 * MS + 500);
	uint32_t n;
	const uint32_t *kids = hm_flametree_children(t, 0, &n);
	assert_int_equal(n, 2);
	assert_string_equal(hm_flametree_str(t, hm_flametree_node(t, kids[0])->text),
			    "line\nbreak (x.py)");
	const hm_flame_node *m = hm_flametree_node(t, kids[1]);
	assert_string_equal(hm_flametree_str(t, m->text), "main (app.py:10)");
	assert_string_equal(hm_flametree_str(t, m->name), "main");
	assert_int_equal(m->kind, HM_FRAME_PYTHON);
	assert_int_equal(m->total[0], 12);
	assert_int_equal(m->self[0], 1);
	assert_int_equal(m->total[1], 60 * MS + 500);
	assert_int_equal(m->self[1], 0);
	assert_int_equal(m->depth, 1);
	assert_int_equal(m->parent, 0);
	kids = hm_flametree_children(t, kids[1], &n);
	assert_int_equal(n, 3);
	assert_string_equal(hm_flametree_str(t, hm_flametree_node(t, kids[0])->text),
			    "do;work (a b.py:20)");
	assert_int_equal(hm_flametree_node(t, kids[0])->self[0], 5);
	assert_int_equal(hm_flametree_node(t, kids[2])->self[1], 40 * MS + 500);
	assert_int_equal(hm_flametree_node(t, kids[1])->kind, HM_FRAME_NATIVE);
	assert_int_equal(hm_flametree_add(t, x.p, 2, 0, NULL, NULL), HM_EINVAL);
	hm_flametree_free(t);

	/* By function: two lines of one function merge. */
	hm_profile *p = hm_profile_new(0);
	uint32_t th = hm_profile_thread_id(p, 1, 1, NULL);
	hm_profile_add(p, stack(p, 1, frame(p, "f", "f.py", 1, 0)), th, 2, 0, 0);
	hm_profile_add(p, stack(p, 1, frame(p, "f", "f.py", 2, 0)), th, 3, 0, 0);
	t = hm_flametree_build(p, HM_FT_BY_FUNCTION, NULL, NULL);
	assert_int_equal(hm_flametree_nnodes(t), 2);
	assert_string_equal(hm_flametree_str(t, hm_flametree_node(t, 1)->text), "f (f.py)");
	assert_int_equal(hm_flametree_node(t, 1)->self[0], 5);
	hm_flametree_free(t);
	t = hm_flametree_build(p, 0, NULL, NULL);
	assert_int_equal(hm_flametree_nnodes(t), 3);
	hm_flametree_free(t);
	hm_profile_free(p);
	hm_profile_free(x.p);
}

/* The X events of a Chrome trace, in file order, as "tid name ts dur". */
static char *trace_events(json_t *j, int *nmeta)
{
	json_t *ev = json_object_get(j, "traceEvents");
	assert_true(json_is_array(ev));
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	*nmeta = 0;
	double last = -1;
	for (size_t i = 0; i < json_array_size(ev); i++) {
		json_t *e = json_array_get(ev, i);
		const char *ph = json_string_value(json_object_get(e, "ph"));
		assert_non_null(ph);
		if (!strcmp(ph, "M")) {
			(*nmeta)++;
			continue;
		}
		assert_string_equal(ph, "X");
		double ts = json_number_value(json_object_get(e, "ts"));
		assert_true(ts >= last);        /* written in time order */
		last = ts;
		fprintf(f, "%lld %s %.3f %.3f\n", (long long)json_integer_value(json_object_get(e, "tid")),
			json_string_value(json_object_get(e, "name")), ts,
			json_number_value(json_object_get(e, "dur")));
	}
	fclose(f);
	return buf;
}

static void test_chrometrace_timeline(void **state)
{
	struct fx x;
	build(&x, 1);
	hm_write_opts wo = {"my \"trace\"", 0};
	char *out = render(x.p, HM_FMT_CHROMETRACE, &wo, NULL);
	json_t *j = parse_json(out);
	int nmeta;
	char *got = trace_events(j, &nmeta);
	/* Slices continue while the leading frames stay; a frame closes when
	 * the next sample leaves it, the last ones when their sample ends. */
	assert_string_equal(got,
		"101 main 10000.000 60000.000\n"
		"101 do;work 10000.000 30000.000\n"
		"202 main 15000.000 60000.000\n"
		"202 do;work 15000.000 20000.000\n"
		"202 " UNI " 35000.000 40000.000\n"
		"101 quote\"<&>' 50000.000 20000.000\n"
		"202 line\nbreak 75000.000 10000.000\n");
	/* One process name and two thread names, under the threads' pid. */
	assert_int_equal(nmeta, 3);
	json_t *ev = json_object_get(j, "traceEvents");
	int named = 0;
	for (size_t i = 0; i < json_array_size(ev); i++) {
		json_t *e = json_array_get(ev, i);
		assert_int_equal(json_integer_value(json_object_get(e, "pid")), 7);
		const char *n = json_string_value(json_object_get(e, "name"));
		if (!strcmp(n, "thread_name")) {
			const char *tn = json_string_value(json_object_get(json_object_get(e, "args"), "name"));
			json_int_t tid = json_integer_value(json_object_get(e, "tid"));
			assert_true((tid == 101 && !strcmp(tn, "MainThread")) ||
				    (tid == 202 && !strcmp(tn, "worker")));
			named++;
		}
		if (!strcmp(n, "do;work")) {
			json_t *args = json_object_get(e, "args");
			assert_string_equal(json_string_value(json_object_get(args, "file")), "a b.py");
			assert_int_equal(json_integer_value(json_object_get(args, "line")), 20);
			assert_string_equal(json_string_value(json_object_get(e, "cat")), "python");
		}
		if (!strcmp(n, "quote\"<&>'"))
			assert_string_equal(json_string_value(json_object_get(e, "cat")), "native");
	}
	assert_int_equal(named, 2);
	json_t *other = json_object_get(j, "otherData");
	assert_string_equal(json_string_value(json_object_get(other, "title")), "my \"trace\"");
	free(got);
	json_decref(j);
	free(out);
	hm_profile_free(x.p);
}

/* A thread that is not sampled for a while (idle) has its slices closed
 * at the end of its last sample; lines do not split a function's slice. */
static void test_chrometrace_gap_and_lines(void **state)
{
	hm_profile *p = hm_profile_new(1);
	hm_profile_meta_get(p)->start_ns = 5 * MS;
	hm_profile_meta_get(p)->period_ns = 10 * MS;
	uint32_t f10 = frame(p, "f", "f.py", 10, HM_FRAME_PYTHON);
	uint32_t f11 = frame(p, "f", "f.py", 11, HM_FRAME_PYTHON);
	uint32_t g = frame(p, "g", "f.py", 20, HM_FRAME_PYTHON);
	uint32_t th = hm_profile_thread_id(p, 9, 0, NULL);
	hm_profile_set_label(p, "process.pid", "4242");
	hm_profile_add(p, stack(p, 1, f10), th, 1, 0, 5 * MS);        /* weight 0: the period */
	hm_profile_add(p, stack(p, 2, f11, g), th, 1, 10 * MS, 15 * MS);
	hm_profile_add(p, stack(p, 1, f11), th, 1, 10 * MS, 25 * MS);
	hm_profile_add(p, stack(p, 1, f10), th, 1, 10 * MS, 100 * MS); /* after a gap */
	char *out = render(p, HM_FMT_CHROMETRACE, NULL, NULL);
	json_t *j = parse_json(out);
	int nmeta;
	char *got = trace_events(j, &nmeta);
	assert_string_equal(got,
		"9 f 0.000 30000.000\n"
		"9 g 10000.000 10000.000\n"
		"9 f 95000.000 10000.000\n");
	/* No pid of its own: the profile's process.pid. */
	json_t *e = json_array_get(json_object_get(j, "traceEvents"), 0);
	assert_int_equal(json_integer_value(json_object_get(e, "pid")), 4242);
	free(got);
	json_decref(j);
	free(out);
	hm_profile_free(p);
}

/* Without a timeline, aggregates are laid end to end on their thread. */
static void test_chrometrace_aggregates(void **state)
{
	struct fx x;
	build(&x, 0);
	char *out = render(x.p, HM_FMT_CHROMETRACE, NULL, NULL);
	json_t *j = parse_json(out);
	int nmeta;
	char *got = trace_events(j, &nmeta);
	assert_string_equal(got,
		"101 main 0.000 60000.000\n"
		"101 do;work 0.000 30000.000\n"
		"202 main 0.000 60000.500\n"
		"202 do;work 0.000 20000.000\n"
		"202 " UNI " 20000.000 40000.500\n"
		"101 quote\"<&>' 40000.000 20000.000\n"
		"202 line\nbreak 60000.500 10000.000\n");
	free(got);
	json_decref(j);
	free(out);
	hm_profile_free(x.p);
}

static void test_format_names(void **state)
{
	assert_int_equal(hm_format_parse("svg"), HM_FMT_SVG);
	assert_int_equal(hm_format_parse("flamegraph"), HM_FMT_SVG);
	assert_int_equal(hm_format_parse("Collapsed"), HM_FMT_COLLAPSED);
	assert_int_equal(hm_format_parse("folded"), HM_FMT_COLLAPSED);
	assert_int_equal(hm_format_parse("speedscope"), HM_FMT_SPEEDSCOPE);
	assert_int_equal(hm_format_parse("pprof"), HM_FMT_PPROF);
	assert_int_equal(hm_format_parse("otlp"), HM_FMT_OTLP);
	assert_int_equal(hm_format_parse("otlp-json"), HM_FMT_OTLP_JSON);
	assert_int_equal(hm_format_parse("raw"), HM_FMT_COLLAPSED);
	assert_int_equal(hm_format_parse("chrometrace"), HM_FMT_CHROMETRACE);
	assert_int_equal(hm_format_parse("png"), HM_FMT_UNKNOWN);
	assert_int_equal(hm_format_parse(NULL), HM_FMT_UNKNOWN);

	assert_int_equal(hm_format_from_path("out.svg"), HM_FMT_SVG);
	assert_int_equal(hm_format_from_path("/a/b.SVG"), HM_FMT_SVG);
	assert_int_equal(hm_format_from_path("p.txt"), HM_FMT_COLLAPSED);
	assert_int_equal(hm_format_from_path("p.folded"), HM_FMT_COLLAPSED);
	assert_int_equal(hm_format_from_path("p.collapsed"), HM_FMT_COLLAPSED);
	assert_int_equal(hm_format_from_path("p.json"), HM_FMT_SPEEDSCOPE);
	assert_int_equal(hm_format_from_path("p.speedscope.json"), HM_FMT_SPEEDSCOPE);
	assert_int_equal(hm_format_from_path("p.otlp.json"), HM_FMT_OTLP_JSON);
	assert_int_equal(hm_format_from_path("p.trace.json"), HM_FMT_CHROMETRACE);
	assert_int_equal(hm_format_from_path("p.chrometrace.json"), HM_FMT_CHROMETRACE);
	assert_int_equal(hm_format_from_path("p.otlp"), HM_FMT_OTLP);
	assert_int_equal(hm_format_from_path("p.pb.gz"), HM_FMT_PPROF);
	assert_int_equal(hm_format_from_path("p.pprof"), HM_FMT_PPROF);
	assert_int_equal(hm_format_from_path("svg"), HM_FMT_UNKNOWN);
	assert_int_equal(hm_format_from_path("p.png"), HM_FMT_UNKNOWN);

	for (int f = HM_FMT_COLLAPSED; f <= HM_FMT_CHROMETRACE; f++)
		assert_int_equal(hm_format_parse(hm_format_name(f)), f);
	assert_string_equal(hm_format_name(0), "unknown");
}

static void test_dispatch(void **state)
{
	struct fx x;
	build(&x, 0);
	FILE *f = fopen("/dev/null", "w");
	assert_int_equal(hm_profile_write(x.p, 99, f, NULL), HM_EINVAL);
	assert_non_null(strstr(hm_errmsg(), "format"));
	assert_int_equal(hm_profile_write(NULL, HM_FMT_SVG, f, NULL), HM_EINVAL);
	/* The binary encoders are reachable through the dispatch. */
	for (int fmt = HM_FMT_PPROF; fmt <= HM_FMT_CHROMETRACE; fmt++)
		if (hm_profile_write(x.p, fmt, f, NULL) != HM_OK)
			fail_msg("%s: %s", hm_format_name(fmt), hm_errmsg());
	fclose(f);
	hm_profile_free(x.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_collapsed),
		cmocka_unit_test(test_collapsed_threads_and_empty),
		cmocka_unit_test(test_speedscope_aggregate),
		cmocka_unit_test(test_speedscope_timeline),
		cmocka_unit_test(test_speedscope_counts_and_bad_utf8),
		cmocka_unit_test(test_svg),
		cmocka_unit_test(test_svg_bad_text_and_empty),
		cmocka_unit_test(test_svg_drops_narrow_and_caps),
		cmocka_unit_test(test_flametree),
		cmocka_unit_test(test_chrometrace_timeline),
		cmocka_unit_test(test_chrometrace_gap_and_lines),
		cmocka_unit_test(test_chrometrace_aggregates),
		cmocka_unit_test(test_format_names),
		cmocka_unit_test(test_dispatch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
