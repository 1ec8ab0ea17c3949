/* test_pydecode.c - line-table and string decoders against CPython itself.
 *
 * tests/unit/data/linetables.txt holds, for every installed interpreter, the
 * line tables of a sample module with the line CPython reports for each
 * instruction offset (tools/gen_linetable_fixtures.sh writes it). Every
 * offset must decode to the same line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "python/pydecode.h"
#include "python/pylayout.h"

#ifndef FIXTURE
#define FIXTURE "tests/unit/data/linetables.txt"
#endif

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;
	if (!strcmp(s, "-"))
		return 0;
	while (s[0] && s[1] && n < cap) {
		unsigned v;
		sscanf(s, "%2x", &v);
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return n;
}

static void test_linetables_match_cpython(void **state)
{
	(void)state;
	FILE *f = fopen(FIXTURE, "r");
	assert_non_null(f);
	static char line[1 << 20];
	static uint8_t tab[1 << 18];
	char version[16] = "?";
	int checked = 0, tables = 0, versions = 0, failures = 0;
	while (fgets(line, sizeof line, f)) {
		if (line[0] == '#') {
			sscanf(line, "# %15s", version);
			versions++;
			continue;
		}
		int kind, first;
		char *hex = malloc(strlen(line) + 1), *pairs = malloc(strlen(line) + 1);
		assert_int_equal(sscanf(line, "%d %d %s %s", &kind, &first, hex, pairs), 4);
		size_t len = unhex(hex, tab, sizeof tab);
		tables++;
		for (char *p = strtok(pairs, ","); p; p = strtok(NULL, ",")) {
			unsigned off;
			int want;
			sscanf(p, "%u:%d", &off, &want);
			int got = hm_line_for_offset(kind, tab, len, first, off);
			if (got != want && failures++ < 10)
				fprintf(stderr, "Python %s: offset %u: line %d, CPython says %d\n", version, off,
					got, want);
			checked++;
		}
		free(hex);
		free(pairs);
	}
	fclose(f);
	fprintf(stderr, "%d offsets in %d tables of %d versions\n", checked, tables, versions);
	assert_int_equal(failures, 0);
	assert_true(versions >= 1);
	assert_true(checked > 1000);
}

static void test_linetables_hostile(void **state)
{
	(void)state;
	uint8_t junk[256];
	srand(7);
	for (int round = 0; round < 2000; round++) {
		size_t len = (size_t)(rand() % (int)sizeof junk);
		for (size_t i = 0; i < len; i++)
			junk[i] = (uint8_t)rand();
		for (int kind = HM_LNOTAB_27; kind <= HM_LOCATIONS; kind++) {
			int line = hm_line_for_offset(kind, junk, len, 10, (uint32_t)(rand() % 4096));
			(void)line;   /* any answer; it must just return */
		}
	}
	/* An offset past the table gives the first line, not garbage. */
	assert_int_equal(hm_line_for_offset(HM_LOCATIONS, NULL, 0, 42, 100), 42);
	assert_int_equal(hm_line_for_offset(99, junk, 10, 7, 0), 7);
}

static void test_ucs_to_utf8(void **state)
{
	(void)state;
	char out[64];
	const uint8_t latin[] = {'c', 0xe9, 'a'};
	assert_int_equal(hm_ucs_to_utf8(1, latin, 3, out, sizeof out), 4);
	assert_string_equal(out, "c\xc3\xa9" "a");
	const uint16_t ucs2[] = {0x8a08, 0x7b97, 0xd800};   /* 計算 + lone surrogate */
	hm_ucs_to_utf8(2, ucs2, 3, out, sizeof out);
	assert_string_equal(out, "\xe8\xa8\x88\xe7\xae\x97\xef\xbf\xbd");
	const uint32_t ucs4[] = {0x1f600, 0x110000, 'x'};
	hm_ucs_to_utf8(4, ucs4, 3, out, sizeof out);
	assert_string_equal(out, "\xf0\x9f\x98\x80\xef\xbf\xbdx");
	/* Truncation stops on a character boundary and stays terminated. */
	assert_int_equal(hm_ucs_to_utf8(2, ucs2, 2, out, 5), 3);
	assert_string_equal(out, "\xe8\xa8\x88");
	assert_int_equal(hm_ucs_to_utf8(1, latin, 3, out, 1), 0);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_linetables_match_cpython),
		cmocka_unit_test(test_linetables_hostile),
		cmocka_unit_test(test_ucs_to_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
