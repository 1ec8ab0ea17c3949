/* test_regex.c - the bounded regex matcher (regex.h): full-match semantics
 * on a table of cases (each checked with Python's re.fullmatch(p, s,
 * re.DOTALL) where the two syntaxes agree), refused patterns, hostile
 * patterns answered at once, the DFA cache flushing under a pattern with
 * many states, the cap on a regex's total work, cancellation, and UTF-8.
 *
 * `test_regex --check` reads lines "HEXPATTERN HEXTEXT" from stdin and
 * prints 1 (match), 0 (no match) or E (refused) per line, for the
 * randomised comparison against Python's re in
 * tests/integration/test_server_hostile.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "base/cancel.h"
#include "base/error.h"
#include "base/regex.h"

static int m(const char *pat, const char *text)
{
	hm_regex *re;
	if (hm_regex_compile(pat, &re) < 0)
		return -1;
	int r = hm_regex_match(re, text, strlen(text));
	/* a second run goes through the cached DFA states */
	int r2 = hm_regex_match(re, text, strlen(text));
	hm_regex_free(re);
	return r == r2 ? r : -2;
}

static const struct {
	const char *pat, *text;
	int want;
} cases[] = {
	{"", "", 1}, {"", "a", 0}, {"a", "a", 1}, {"a", "ab", 0}, {"a", "", 0},
	{"abc", "abc", 1}, {"abc", "abd", 0}, {".", "x", 1}, {".", "\n", 1}, {".", "", 0},
	{"a.c", "abc", 1}, {"a*", "", 1}, {"a*", "aaaa", 1}, {"a*", "aab", 0},
	{"a+", "", 0}, {"a+", "aaa", 1}, {"a?", "", 1}, {"a?", "a", 1}, {"a?", "aa", 0},
	{"a|b", "a", 1}, {"a|b", "b", 1}, {"a|b", "ab", 0}, {"ab|cd", "cd", 1},
	{"a|", "", 1}, {"|a", "a", 1}, {"(a|b)*c", "ababc", 1}, {"(a|b)*c", "abab", 0},
	{"(?:ab)+", "ababab", 1}, {"(?:ab)+", "aba", 0}, {"a{3}", "aaa", 1},
	{"a{3}", "aa", 0}, {"a{2,}", "aaaaa", 1}, {"a{2,}", "a", 0}, {"a{2,3}", "aaa", 1},
	{"a{2,3}", "aaaa", 0}, {"a{0}", "", 1}, {"a{0,0}b", "b", 1}, {"(ab){1,2}", "abab", 1},
	{"(ab){1,2}", "ababab", 0}, {"a{", "a{", 1}, {"a{x}", "a{x}", 1}, {"a{1", "a{1", 1},
	{"[abc]+", "cab", 1}, {"[abc]+", "cabd", 0}, {"[a-z]+", "hello", 1},
	{"[a-z]+", "Hello", 0}, {"[^a-z]+", "HELLO1", 1}, {"[^a-z]", "\n", 1},
	{"[]a]+", "]a]", 1}, {"[a-]+", "a-a", 1}, {"[-a]", "-", 1}, {"[\\]]", "]", 1},
	{"[\\d]+", "123", 1}, {"\\d+", "0129", 1}, {"\\d", "a", 0}, {"\\D+", "ab", 1},
	{"\\w+", "a_Z9", 1}, {"\\w", "-", 0}, {"\\W", "-", 1}, {"\\s+", " \t\n", 1},
	{"\\S+", "ab", 1}, {"[[:alpha:]]+", "abZ", 1}, {"[[:digit:]]+", "12", 1},
	{"[[:alpha:]]", "1", 0}, {"[^[:alpha:]]", "1", 1}, {"[[:^digit:]]", "a", 1},
	{"\\.", ".", 1}, {"\\.", "a", 0}, {"1\\.5.*", "1.5.3", 1}, {"1\\.5.*", "125", 0},
	{"\\(\\)", "()", 1}, {"\\t", "\t", 1}, {"\\x41", "A", 1}, {"\\*", "*", 1},
	{"^abc$", "abc", 1}, {"^abc", "abc", 1}, {"a^b", "ab", 0}, {"a$b", "ab", 0},
	{"(a|^)b", "b", 1}, {"(a|^)b", "ab", 1}, {"a($|b)", "a", 1}, {"a($|b)", "ab", 1},
	{"$", "", 1}, {"^", "", 1}, {"^$", "", 1}, {"$^", "", 1}, {"a$", "a", 1},
	{"(?i)abc", "AbC", 1}, {"(?i)[a-c]+", "ABC", 1}, {"(?i)[^a]", "A", 0},
	{"(?i:a)b", "Ab", 1}, {"(?i:a)b", "AB", 0}, {"a(?i)b", "aB", 1}, {"a(?i)b", "AB", 0},
	{"a*?", "aa", 1}, {"a+?b", "aab", 1}, {"(a*)*", "aaa", 1}, {"(a*)+b", "aab", 1},
	{"(a|b|c|d)+", "abcdx", 0}, {"api|web", "web", 1}, {"prod-.*", "prod-eu-1", 1},
	{"((a{1,10}){1,10})b", "aaaaaaaaaaaaaaaaaaaab", 1},
	{"é+", "éé", 1}, {".", "é", 1}, {"..", "é", 0}, {"[é-ê]", "ê", 1},
	{"[^a]", "é", 1}, {".", "\xff", 1}, {"a.b", "a\xff" "b", 1}, {"\xff", "\xff", 1},
	{"\xff", "\xfe", 0},
};

static void test_cases(void **state)
{
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		int got = m(cases[i].pat, cases[i].text);
		if (got != cases[i].want)
			fail_msg("/%s/ on \"%s\": got %d, want %d (%s)", cases[i].pat,
				 cases[i].text, got, cases[i].want, hm_errmsg());
	}
}

static void test_refused(void **state)
{
	static const char *bad[] = {
		"(", ")", "a)", "(a", "[a", "[z-a]", "*", "a**", "a+*", "|*", "(?P<x>a)",
		"\\1", "(a)\\1", "\\b", "\\", "[[:nope:]]", "a{1001}", "a{3,2}", "\\xZ1",
		"(?=a)", "(?m)a",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		hm_regex *re = (hm_regex *)1;
		int rc = hm_regex_compile(bad[i], &re);
		if (rc != HM_EINVAL)
			fail_msg("/%s/ was not refused (rc %d)", bad[i], rc);
		assert_null(re);
		assert_non_null(strstr(hm_errmsg(), "regex"));
	}
}

/* The patterns that made glibc's regexec run for hours are refused or
 * answered at once: no time is asserted, but a backtracking matcher would
 * not finish these loops. */
static void test_hostile(void **state)
{
	hm_regex *re;
	assert_int_equal(hm_regex_compile("((a{1,100}){1,100}){1,100}b", &re), HM_EINVAL);
	assert_non_null(strstr(hm_errmsg(), "too complex"));
	assert_int_equal(hm_regex_compile("(a{1,1000}){1,1000}", &re), HM_EINVAL);
	char text[1025];
	memset(text, 'a', 1024);
	text[1024] = 0;
	/* classic exponential cases for backtracking, each on 1 KiB of 'a' */
	static const char *pats[] = {"(a*)*b", "(a|a)*b", "(a|aa)*c", "(a+)+b",
				     "((a*)*)*b", "(.*a){20}b", "(a?){500}a{500}b"};
	for (size_t i = 0; i < sizeof pats / sizeof *pats; i++) {
		assert_int_equal(hm_regex_compile(pats[i], &re), HM_OK);
		int k, r = 0;
		for (k = 0; k < 100 && r == 0; k++)
			r = hm_regex_match(re, text, 1024);
		/* no match, or the work cap reached (then for good) */
		assert_true(r == 0 || r == HM_EINVAL);
		if (r < 0)
			assert_int_equal(hm_regex_match(re, "b", 1), HM_EINVAL);
		hm_regex_free(re);
	}
	assert_int_equal(hm_regex_compile("(a?){500}a{500}", &re), HM_OK);
	assert_int_equal(hm_regex_match(re, text, 500), 1);
	assert_int_equal(hm_regex_match(re, text, 1000), 1);
	assert_int_equal(hm_regex_match(re, text, 1001), 0);
	assert_int_equal(hm_regex_match(re, text, 499), 0);
	hm_regex_free(re);
}

/* (a|b)*a(a|b){12} has 2^13 DFA states: the cache (1024) is flushed over and
 * over and the answers stay right. */
static void test_flush(void **state)
{
	hm_regex *re;
	assert_int_equal(hm_regex_compile("(a|b)*a(a|b){12}", &re), HM_OK);
	char text[1001];
	unsigned x = 12345;
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 1000; i++) {
			x = x * 1103515245u + 12345u;
			text[i] = (x >> 16) & 1 ? 'a' : 'b';
		}
		text[1000] = 0;
		int want = text[1000 - 13] == 'a';
		assert_int_equal(hm_regex_match(re, text, 1000), want);
	}
	hm_regex_free(re);
}

/* A pattern whose DFA states are huge sets, on values that defeat the
 * cache: each value costs about a program's worth of work per character,
 * and the work cap ends it after a bounded number of values. */
static void test_work_cap(void **state)
{
	hm_regex *re;
	assert_int_equal(hm_regex_compile("(a|b)*a(a|b){1000}", &re), HM_OK);
	char text[1024];
	unsigned x = 7;
	int k, r = 0;
	for (k = 0; k < 100000 && r >= 0; k++) {
		for (int i = 0; i < 1024; i++) {
			x = x * 1103515245u + 12345u;
			text[i] = (x >> 16) & 1 ? 'a' : 'b';
		}
		r = hm_regex_match(re, text, 1024);
		if (r >= 0)
			assert_int_equal(r, text[1024 - 1001] == 'a');
	}
	assert_int_equal(r, HM_EINVAL);
	assert_non_null(strstr(hm_errmsg(), "too expensive"));
	assert_true(k < 1000);
	hm_regex_free(re);
	/* an ordinary pattern over many values never gets near it */
	assert_int_equal(hm_regex_compile("api-[a-z]+-[0-9]{1,3}|web.*", &re), HM_OK);
	for (k = 0; k < 100000; k++) {
		int n = snprintf(text, sizeof text, k % 2 ? "api-eu-%d" : "webx%d", k % 2000);
		assert_int_equal(hm_regex_match(re, text, (size_t)n), k % 2 ? (k % 2000) < 1000 : 1);
	}
	hm_regex_free(re);
}

static int calls;
static int gone_after_two(void *ctx)
{
	return ++calls > 2;
}

/* With a cancellation check installed (cancel.h), expensive matching stops
 * with an error once the check says so, and stays stopped. */
static void test_cancel(void **state)
{
	hm_regex *re;
	char text[1024];
	memset(text, 'a', sizeof text);
	assert_int_equal(hm_regex_compile("(a|b)*a(a|b){1000}", &re), HM_OK);
	calls = 0;
	hm_cancel_set(gone_after_two, NULL);
	int r = 0, k;
	for (k = 0; k < 1000 && r >= 0; k++) {
		text[k % 1024] = k & 1 ? 'a' : 'b';
		r = hm_regex_match(re, text, sizeof text);
	}
	assert_int_equal(r, HM_EINVAL);
	assert_non_null(strstr(hm_errmsg(), "client went away"));
	assert_int_equal(calls, 3);
	assert_true(hm_cancelled());
	hm_cancel_set(NULL, NULL);
	assert_false(hm_cancelled());
	hm_regex_free(re);
}

static int unhex(const char *h, size_t n, char *out)
{
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(h + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (char)v;
	}
	out[n / 2] = 0;
	return (int)(n / 2);
}

static int check_mode(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, stdin)) > 0) {
		char *sp = strchr(line, ' ');
		if (!sp)
			return 2;
		char *pat = malloc(len), *text = malloc(len);
		size_t pl = (size_t)(sp - line), tl = strcspn(sp + 1, "\n");
		int n = unhex(sp + 1, tl, text);
		unhex(line, pl, pat);
		hm_regex *re;
		if (hm_regex_compile(pat, &re) < 0) {
			puts("E");
		} else {
			printf("%d\n", hm_regex_match(re, text, (size_t)n));
			hm_regex_free(re);
		}
		free(pat);
		free(text);
	}
	free(line);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--check"))
		return check_mode();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_flush),
		cmocka_unit_test(test_work_cap),
		cmocka_unit_test(test_cancel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
