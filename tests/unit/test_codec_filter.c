/* test_codec_filter.c - profile filters (focus, hide, thread, drop-file) and
 * differential profiles (share normalisation, signed deltas, SVG colours). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/error.h"
#include "base/profile.h"
#include "format/codec.h"
#include "format/diff.h"
#include "format/filter.h"

static hm_profile *from_collapsed(const char *text)
{
	hm_profile *p = NULL;
	assert_int_equal(hm_profile_read(text, strlen(text), &p), HM_OK);
	return p;
}

static char *to_collapsed(const hm_profile *p)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_int_equal(hm_write_collapsed(p, f, NULL), HM_OK);
	fclose(f);
	return buf;
}

static const char *SRC =
	"main (app.py:3);work (app.py:10);compute (calc.py:5) 30\n"
	"main (app.py:3);work (app.py:10);sleep 12\n"
	"main (app.py:3);lib (/venv/site-packages/x.py:7);compute (calc.py:5) 8\n";

static hm_profile *filtered(const hm_filter *f)
{
	hm_profile *p = from_collapsed(SRC), *q = NULL;
	assert_int_equal(hm_filter_apply(p, f, &q), HM_OK);
	hm_profile_free(p);
	return q;
}

static void test_focus(void **state)
{
	hm_filter f = {.focus = "^sleep"};
	hm_profile *q = filtered(&f);
	char *c = to_collapsed(q);
	assert_string_equal(c, "main (app.py:3);work (app.py:10);sleep 12\n");
	assert_int_equal(hm_profile_total_count(q), 12);
	free(c);
	hm_profile_free(q);
}

static void test_hide_and_drop_file(void **state)
{
	hm_filter f = {.hide = "^work ", .drop_file = "site-packages"};
	hm_profile *q = filtered(&f);
	char *c = to_collapsed(q);
	/* both compute stacks merge once the middle frames are gone */
	assert_non_null(strstr(c, "main (app.py:3);compute (calc.py:5) 38\n"));
	assert_non_null(strstr(c, "main (app.py:3);sleep 12\n"));
	assert_null(strstr(c, "work"));
	free(c);
	hm_profile_free(q);
}

static void test_thread_and_bad_pattern(void **state)
{
	hm_profile *p = hm_profile_new(0), *q = NULL;
	hm_frame fr = {.name = hm_profile_intern_cstr(p, "f")};
	uint32_t fid = hm_profile_frame_id(p, &fr);
	uint32_t st = hm_profile_stack_id(p, &fid, 1);
	hm_profile_add(p, st, hm_profile_thread_id(p, 11, 1, "main"), 5, 50, 0);
	hm_profile_add(p, st, hm_profile_thread_id(p, 22, 1, "bg"), 7, 70, 0);
	hm_filter f = {.thread = "22"};
	assert_int_equal(hm_filter_apply(p, &f, &q), HM_OK);
	assert_int_equal(hm_profile_total_count(q), 7);
	hm_profile_free(q);
	f.thread = "main";
	assert_int_equal(hm_filter_apply(p, &f, &q), HM_OK);
	assert_int_equal(hm_profile_total_weight(q), 50);
	hm_profile_free(q);
	f.thread = "999";
	assert_int_equal(hm_filter_apply(p, &f, &q), HM_EINVAL);
	hm_filter bad = {.focus = "(("};
	assert_int_equal(hm_filter_apply(p, &bad, &q), HM_EINVAL);
	assert_non_null(strstr(hm_errmsg(), "focus"));
	hm_profile_free(p);
}

static void test_diff(void **state)
{
	hm_profile *a = from_collapsed("a;b 10\na;c 10\n");
	hm_profile *b = from_collapsed("a;b 60\na;c 20\nd 20\n");  /* 5x longer */
	hm_profile *d = NULL;
	assert_int_equal(hm_diff_profile(a, b, &d), HM_OK);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_int_equal(hm_write_diff_collapsed(a, b, f), HM_OK);
	fclose(f);
	/* shares: b 50% -> 60%, c 50% -> 20%, d new 20% */
	assert_string_equal(buf, "d +20\na;b +10\na;c -30\n");
	free(buf);
	buf = NULL;
	f = open_memstream(&buf, &len);
	assert_int_equal(hm_write_diff_svg(a, b, f, NULL), HM_OK);
	fclose(f);
	assert_non_null(strstr(buf, "<svg"));
	assert_non_null(strstr(buf, "rgb(60,175,60)"));    /* the largest shrink */
	assert_non_null(strstr(buf, "rgb(235,"));          /* growth is red */
	assert_non_null(strstr(buf, "+20.00 pp"));
	free(buf);
	/* identical shares -> empty diff */
	hm_profile *a2 = from_collapsed("a;b 20\na;c 20\n");
	buf = NULL;
	f = open_memstream(&buf, &len);
	assert_int_equal(hm_write_diff_collapsed(a, a2, f), HM_OK);
	fclose(f);
	assert_string_equal(buf, "");
	free(buf);
	hm_profile_free(a2);
	hm_profile_free(a);
	hm_profile_free(b);
	hm_profile_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_focus),
		cmocka_unit_test(test_hide_and_drop_file),
		cmocka_unit_test(test_thread_and_bad_pattern),
		cmocka_unit_test(test_diff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
