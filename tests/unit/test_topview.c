/* test_topview.c - the arithmetic and text behind `homura top`: own vs total
 * time (recursion counted once per stack), windows vs totals since start,
 * function vs line view, sorting by each column, and fitting rows to a
 * terminal width (UTF-8, wide characters, shortened paths). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sample/topview.h"

#define MS 1000000ll   /* weights in ns */

static void add(hm_topview *v, int64_t w, int n, ...)
{
	hm_topframe f[16];
	va_list ap;
	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		f[i].name = va_arg(ap, const char *);
		f[i].file = "app.py";
		f[i].line = va_arg(ap, int);
		f[i].start_line = 0;
	}
	va_end(ap);
	assert_int_equal(hm_topview_add(v, f, n, w), 0);
}

static const hm_toprow *find(const hm_toprow *rows, size_t n, const char *name, int line)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(rows[i].name, name) && (line < 0 || rows[i].line == line))
			return &rows[i];
	fail_msg("no row %s:%d", name, line);
	return NULL;
}

/* Four rounds of one stack each (leaf first):
 *   c <- b <- main
 *   b <- main
 *   f <- f <- f <- main        (recursion)
 *   f <- main                  */
static hm_topview *sample_view(void)
{
	hm_topview *v = hm_topview_new();
	assert_non_null(v);
	add(v, 10 * MS, 3, "c", 30, "b", 20, "main", 10);
	hm_topview_round(v);
	add(v, 10 * MS, 2, "b", 21, "main", 10);
	hm_topview_round(v);
	add(v, 10 * MS, 4, "f", 40, "f", 41, "f", 41, "main", 11);
	hm_topview_round(v);
	add(v, 10 * MS, 2, "f", 40, "main", 11);
	hm_topview_round(v);
	hm_topview_end_window(v);
	return v;
}

static void test_own_and_total(void **state)
{
	hm_topview *v = sample_view();
	hm_toprow rows[16];
	size_t n = hm_topview_rows(v, HM_TOP_FUNCTIONS, HM_TOP_SORT_OWN, rows, 16);
	assert_int_equal(n, 4);
	assert_int_equal(hm_topview_nrows(v, HM_TOP_FUNCTIONS), 4);
	assert_int_equal(hm_topview_window_rounds(v), 4);
	assert_int_equal(hm_topview_window_stacks(v), 4);

	const hm_toprow *f = find(rows, n, "f", -1);
	/* f is the leaf twice; it is on two stacks, the recursive one counted once. */
	assert_int_equal(f->own_n, 2);
	assert_int_equal(f->total_n, 2);
	assert_true(f->own_pct == 50.0);
	assert_true(f->total_pct == 50.0);
	assert_true(f->own_s > 0.0199 && f->own_s < 0.0201);
	assert_true(f->total_s > 0.0199 && f->total_s < 0.0201);

	const hm_toprow *b = find(rows, n, "b", -1);
	assert_int_equal(b->own_n, 1);
	assert_int_equal(b->total_n, 2);
	const hm_toprow *m = find(rows, n, "main", -1);
	assert_int_equal(m->own_n, 0);
	assert_int_equal(m->total_n, 4);
	assert_true(m->total_pct == 100.0);
	assert_true(m->total_s > 0.0399 && m->total_s < 0.0401);
	const hm_toprow *c = find(rows, n, "c", -1);
	assert_int_equal(c->own_n, 1);
	assert_true(c->own_pct == 25.0);

	/* Sorted by %Own: f (2), then b and c (1 each: b has more total), main. */
	assert_string_equal(rows[0].name, "f");
	assert_string_equal(rows[1].name, "b");
	assert_string_equal(rows[2].name, "c");
	assert_string_equal(rows[3].name, "main");
	hm_topview_free(v);
}

static void test_line_view(void **state)
{
	hm_topview *v = sample_view();
	hm_toprow rows[16];
	size_t n = hm_topview_rows(v, HM_TOP_LINES, HM_TOP_SORT_OWN, rows, 16);
	/* c:30 b:20 b:21 main:10 main:11 f:40 f:41 */
	assert_int_equal(n, 7);
	const hm_toprow *f40 = find(rows, n, "f", 40);
	assert_int_equal(f40->own_n, 2);
	assert_int_equal(f40->total_n, 2);
	const hm_toprow *f41 = find(rows, n, "f", 41);
	/* Twice on one stack (the two middle f frames): once in total, never own. */
	assert_int_equal(f41->own_n, 0);
	assert_int_equal(f41->total_n, 1);
	assert_int_equal(find(rows, n, "main", 10)->total_n, 2);
	assert_int_equal(find(rows, n, "main", 11)->total_n, 2);
	assert_int_equal(find(rows, n, "b", 21)->own_n, 1);
	assert_string_equal(rows[0].name, "f");
	assert_int_equal(rows[0].line, 40);
	hm_topview_free(v);
}

static void test_sort_columns(void **state)
{
	hm_topview *v = hm_topview_new();
	/* Window 1: x busy for a long time (weights large). */
	for (int i = 0; i < 10; i++) {
		add(v, 100 * MS, 2, "x", 1, "main", 2);
		hm_topview_round(v);
	}
	hm_topview_end_window(v);
	/* Window 2: y is the leaf, under z. */
	for (int i = 0; i < 10; i++) {
		add(v, 1 * MS, 3, "y", 3, "z", 4, "main", 2);
		hm_topview_round(v);
	}
	hm_topview_end_window(v);
	hm_toprow rows[8];
	size_t n = hm_topview_rows(v, HM_TOP_FUNCTIONS, HM_TOP_SORT_OWN, rows, 8);
	assert_int_equal(n, 4);
	assert_string_equal(rows[0].name, "y");        /* 100% own in the window */
	assert_true(rows[0].own_pct == 100.0);
	/* Ties on %Own go by the other columns in order: %Total, OwnTime, TotalTime. */
	assert_string_equal(rows[1].name, "main");
	assert_string_equal(rows[2].name, "z");
	assert_string_equal(rows[3].name, "x");
	n = hm_topview_rows(v, HM_TOP_FUNCTIONS, HM_TOP_SORT_TOTAL, rows, 8);
	assert_string_equal(rows[0].name, "y");       /* 100% total; then 100% own */
	assert_string_equal(rows[1].name, "main");    /* then TotalTime over z */
	assert_string_equal(rows[2].name, "z");
	n = hm_topview_rows(v, HM_TOP_FUNCTIONS, HM_TOP_SORT_OWN_TIME, rows, 8);
	assert_string_equal(rows[0].name, "x");       /* 1 s own since start */
	assert_true(rows[0].own_pct == 0.0);           /* not in the last window */
	assert_true(rows[0].own_s > 0.999 && rows[0].own_s < 1.001);
	n = hm_topview_rows(v, HM_TOP_FUNCTIONS, HM_TOP_SORT_TOTAL_TIME, rows, 8);
	assert_string_equal(rows[0].name, "main");
	assert_true(rows[0].total_s > 1.009 && rows[0].total_s < 1.011);
	assert_string_equal(rows[1].name, "x");
	/* Only the best rows when max is smaller. */
	n = hm_topview_rows(v, HM_TOP_FUNCTIONS, HM_TOP_SORT_OWN_TIME, rows, 2);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].name, "x");
	assert_string_equal(rows[1].name, "y");
	hm_topview_free(v);
}

static void test_windows(void **state)
{
	hm_topview *v = hm_topview_new();
	hm_toprow rows[4];
	/* Nothing closed yet: rows exist but show 0 %. */
	add(v, 10 * MS, 1, "a", 1);
	hm_topview_round(v);
	hm_topview_round(v);   /* a round with nothing on CPU */
	size_t n = hm_topview_rows(v, HM_TOP_FUNCTIONS, HM_TOP_SORT_OWN, rows, 4);
	assert_int_equal(n, 1);
	assert_true(rows[0].own_pct == 0.0);
	hm_topview_end_window(v);
	n = hm_topview_rows(v, HM_TOP_FUNCTIONS, HM_TOP_SORT_OWN, rows, 4);
	assert_true(rows[0].own_pct == 50.0);         /* 1 of 2 rounds */
	/* Two threads in the same function in one round: 200 %. */
	add(v, 10 * MS, 1, "a", 1);
	add(v, 10 * MS, 1, "a", 1);
	hm_topview_round(v);
	hm_topview_end_window(v);
	n = hm_topview_rows(v, HM_TOP_FUNCTIONS, HM_TOP_SORT_OWN, rows, 4);
	assert_true(rows[0].own_pct == 200.0);
	assert_int_equal(hm_topview_total_stacks(v), 3);
	assert_true(rows[0].own_s > 0.0299 && rows[0].own_s < 0.0301);
	/* An empty window: 0 %, times kept. */
	hm_topview_end_window(v);
	n = hm_topview_rows(v, HM_TOP_FUNCTIONS, HM_TOP_SORT_OWN, rows, 4);
	assert_true(rows[0].own_pct == 0.0);
	assert_true(rows[0].own_s > 0.0299);
	/* Empty stacks are ignored. */
	assert_int_equal(hm_topview_add(v, NULL, 0, 5), 0);
	assert_int_equal(hm_topview_total_stacks(v), 3);
	hm_topview_free(v);
}

static void test_text_fit(void **state)
{
	char buf[64];
	assert_int_equal(hm_text_fit("hello", 3, 0, buf, sizeof buf), 3);
	assert_string_equal(buf, "hel");
	assert_int_equal(hm_text_fit("hello", -1, 0, buf, sizeof buf), 5);
	/* Wide characters take two columns and are never split. */
	assert_int_equal(hm_text_width("测试x", 0), 5);
	assert_int_equal(hm_text_fit("测试x", 3, 0, buf, sizeof buf), 2);
	assert_string_equal(buf, "测");
	assert_int_equal(hm_text_fit("ünï", 2, 0, buf, sizeof buf), 2);
	assert_string_equal(buf, "ün");
	/* ASCII-only terminals, control characters and bad UTF-8 show '?'. */
	hm_text_fit("ünï", 10, 1, buf, sizeof buf);
	assert_string_equal(buf, "?n?");
	hm_text_fit("a\tb\xff\xc3", 10, 0, buf, sizeof buf);
	assert_string_equal(buf, "a?b??");
	/* The buffer limit is honoured whole characters at a time. */
	hm_text_fit("测试", 10, 0, buf, 5);
	assert_string_equal(buf, "测");
}

static void test_format_rows(void **state)
{
	char buf[512];
	hm_toprow r = {"handle_request", "/srv/app/lib/python3.12/site-packages/web/handlers.py",
		       123, 5, 7, 50.0, 70.0, 12.5, 99.25};
	/* Wide enough: everything. */
	int w = hm_topview_format_row(&r, 0, 0, buf, sizeof buf);
	assert_string_equal(buf, " 50.0%   70.0%    12.50s     99.25s  handle_request "
				 "(/srv/app/lib/python3.12/site-packages/web/handlers.py:123)");
	assert_int_equal(w, (int)strlen(buf));
	/* 80 columns: the path loses directories, the name, file and line stay. */
	w = hm_topview_format_row(&r, 80, 0, buf, sizeof buf);
	assert_true(w <= 80);
	assert_int_equal(hm_text_width(buf, 0), w);
	assert_non_null(strstr(buf, "handle_request (.../"));
	assert_non_null(strstr(buf, "handlers.py:123)"));
	/* Narrow: never wider than asked. */
	for (int width = 1; width < 90; width++) {
		w = hm_topview_format_row(&r, width, 0, buf, sizeof buf);
		assert_true(w <= width);
		assert_int_equal(hm_text_width(buf, 0), w);
	}
	/* A very long name is cut, keeping the file and line. */
	hm_toprow l = {"a_really_long_function_name_that_goes_on_and_on_forever", "x/y.py", 7,
		       0, 0, 0, 0, 0, 0};
	w = hm_topview_format_row(&l, 80, 0, buf, sizeof buf);
	assert_true(w <= 80);
	assert_non_null(strstr(buf, "(.../y.py:7)"));
	/* Line 0 and no file. */
	hm_toprow g = {"<gc>", "", 0, 0, 0, 1234.4, 0, 123456.0, 0};
	hm_topview_format_row(&g, 0, 0, buf, sizeof buf);
	assert_string_equal(buf, " 1234%    0.0%   123456s      0.00s  <gc>");
}

static void test_format_columns(void **state)
{
	char buf[256];
	hm_topview_format_columns(HM_TOP_SORT_OWN, 0, buf, sizeof buf);
	assert_string_equal(buf, " *%Own  %Total   OwnTime  TotalTime  Function (file:line)");
	hm_topview_format_columns(HM_TOP_SORT_TOTAL_TIME, 0, buf, sizeof buf);
	assert_string_equal(buf, "  %Own  %Total   OwnTime *TotalTime  Function (file:line)");
	assert_int_equal(hm_topview_format_columns(HM_TOP_SORT_OWN, 20, buf, sizeof buf), 20);
	assert_int_equal(strlen(buf), 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_own_and_total),
		cmocka_unit_test(test_line_view),
		cmocka_unit_test(test_sort_columns),
		cmocka_unit_test(test_windows),
		cmocka_unit_test(test_text_fit),
		cmocka_unit_test(test_format_rows),
		cmocka_unit_test(test_format_columns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
