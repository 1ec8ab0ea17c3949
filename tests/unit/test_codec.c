/* test_codec.c - pprof / OTLP / collapsed / speedscope encoders and the
 * content-detecting reader: round trips keep stacks and values, and hostile
 * input gives errors rather than crashes. */
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
#include "format/gzip.h"
#include "format/decode.h"
#include "format/encode.h"

static uint32_t frame(hm_profile *p, const char *name, const char *file, int line, int kind)
{
	hm_frame f = {0};
	f.name = hm_profile_intern_cstr(p, name);
	f.file = hm_profile_intern_cstr(p, file);
	f.line = line;
	f.start_line = line ? line - 1 : 0;
	f.kind = (uint8_t)kind;
	return hm_profile_frame_id(p, &f);
}

/* main -> work -> {compute, sleep_native}, on two threads. */
static hm_profile *sample_profile(int timeline)
{
	hm_profile *p = hm_profile_new(timeline);
	uint32_t a = frame(p, "main", "app.py", 10, HM_FRAME_PYTHON);
	uint32_t b = frame(p, "work", "app.py", 20, HM_FRAME_PYTHON);
	uint32_t c = frame(p, "compute", "lib/calc.py", 5, HM_FRAME_PYTHON);
	uint32_t d = frame(p, "nanosleep", "", 0, HM_FRAME_NATIVE);
	uint32_t s1[] = {a, b, c}, s2[] = {a, b, d}, s3[] = {a};
	uint32_t st1 = hm_profile_stack_id(p, s1, 3);
	uint32_t st2 = hm_profile_stack_id(p, s2, 3);
	uint32_t st3 = hm_profile_stack_id(p, s3, 1);
	uint32_t t1 = hm_profile_thread_id(p, 101, 7, "MainThread");
	uint32_t t2 = hm_profile_thread_id(p, 102, 7, "worker");
	uint64_t t = 1700000000000000000ull;
	for (int i = 0; i < 30; i++)
		hm_profile_add(p, st1, t1, 1, 10000000, t += 10000000);
	for (int i = 0; i < 12; i++)
		hm_profile_add(p, st2, t2, 1, 10000000, t += 10000000);
	for (int i = 0; i < 3; i++)
		hm_profile_add(p, st3, t1, 1, 10000000, t += 10000000);
	hm_profile_meta *m = hm_profile_meta_get(p);
	m->start_ns = 1700000000000000000ull;
	m->duration_ns = 450000000;
	m->period_ns = 10000000;
	hm_profile_set_label(p, "service.name", "demo");
	hm_profile_set_label(p, "process.pid", "4242");
	return p;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Canonical text of a profile: one sorted line per (stack, thread). */
static char *canon(const hm_profile *p)
{
	size_t n = hm_profile_nsamples(p);
	char **lines = calloc(n, sizeof *lines);
	size_t total = 1;
	for (size_t i = 0; i < n; i++) {
		const hm_sample *s = hm_profile_sample(p, i);
		uint32_t k;
		const uint32_t *st = hm_profile_stack(p, s->stack, &k);
		char buf[4096];
		size_t o = 0;
		for (uint32_t j = 0; j < k; j++)
			o += hm_frame_format(p, hm_profile_frame(p, st[j]), buf + o, sizeof buf - o),
			o += snprintf(buf + o, sizeof buf - o, ";");
		const hm_thread *th = hm_profile_thread(p, s->thread);
		o += snprintf(buf + o, sizeof buf - o, " tid=%llu %s c=%lld w=%lld",
			      (unsigned long long)th->tid, hm_profile_str(p, th->name),
			      (long long)s->count, (long long)s->weight_ns);
		lines[i] = strdup(buf);
		total += o + 1;
	}
	qsort(lines, n, sizeof *lines, cmp_str);
	char *out = calloc(1, total);
	for (size_t i = 0; i < n; i++) {
		strcat(out, lines[i]);
		strcat(out, "\n");
		free(lines[i]);
	}
	free(lines);
	return out;
}


static hm_profile *roundtrip(const hm_profile *p, int fmt)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_int_equal(hm_profile_write(p, fmt, f, NULL), HM_OK);
	fclose(f);
	hm_profile *q = NULL;
	int got = 0;
	int rc = hm_profile_read_fmt(buf, len, &q, &got);
	if (rc)
		fprintf(stderr, "read failed: %s\n", hm_errmsg());
	assert_int_equal(rc, HM_OK);
	assert_int_equal(got, fmt);
	free(buf);
	return q;
}

static void test_pprof_roundtrip(void **state)
{
	hm_profile *p = sample_profile(0);
	hm_profile *q = roundtrip(p, HM_FMT_PPROF);
	char *a = canon(p), *b = canon(q);
	assert_string_equal(a, b);
	assert_int_equal(hm_profile_meta_cget(q)->period_ns, 10000000);
	assert_int_equal(hm_profile_meta_cget(q)->start_ns, 1700000000000000000ull);
	assert_int_equal(hm_profile_meta_cget(q)->nlabels, 2);
	free(a);
	free(b);
	hm_profile_free(p);
	hm_profile_free(q);
}

static void test_otlp_roundtrip(void **state)
{
	for (int tl = 0; tl < 2; tl++)
		for (int fmt = HM_FMT_OTLP; fmt <= HM_FMT_OTLP_JSON; fmt++) {
			hm_profile *p = sample_profile(tl);
			hm_profile *q = roundtrip(p, fmt);
			char *a = canon(p), *b = canon(q);
			assert_string_equal(a, b);
			if (tl) {
				assert_int_equal(hm_profile_nevents(q), 45);
				assert_int_equal(hm_profile_event(q, 0)->t_ns,
						 1700000000010000000ull);
			}
			/* frame kinds survive via profile.frame.type */
			for (uint32_t i = 0; i < hm_profile_nframes(q); i++) {
				const hm_frame *f = hm_profile_frame(q, i);
				const char *n = hm_profile_str(q, f->name);
				assert_int_equal(f->kind, strcmp(n, "nanosleep") ? HM_FRAME_PYTHON
										 : HM_FRAME_NATIVE);
			}
			free(a);
			free(b);
			hm_profile_free(p);
			hm_profile_free(q);
		}
}

static void test_pprof_otlp_pprof(void **state)
{
	hm_profile *p = sample_profile(0);
	hm_profile *q = roundtrip(p, HM_FMT_PPROF);
	hm_profile *r = roundtrip(q, HM_FMT_OTLP);
	hm_profile *s = roundtrip(r, HM_FMT_PPROF);
	char *a = canon(q), *b = canon(s);
	assert_string_equal(a, b);
	free(a);
	free(b);
	hm_profile_free(p);
	hm_profile_free(q);
	hm_profile_free(r);
	hm_profile_free(s);
}

static void test_collapsed_roundtrip(void **state)
{
	hm_profile *p = sample_profile(0);
	hm_profile *q = roundtrip(p, HM_FMT_COLLAPSED);
	assert_int_equal(hm_profile_total_count(q), 45);
	assert_int_equal(hm_profile_nstacks(q), 3);
	/* frame text parses back into name / file / line */
	int found = 0;
	for (uint32_t i = 0; i < hm_profile_nframes(q); i++) {
		const hm_frame *f = hm_profile_frame(q, i);
		if (!strcmp(hm_profile_str(q, f->name), "compute")) {
			assert_string_equal(hm_profile_str(q, f->file), "lib/calc.py");
			assert_int_equal(f->line, 5);
			found = 1;
		}
	}
	assert_true(found);
	hm_profile_free(p);
	hm_profile_free(q);
}

static void test_speedscope_roundtrip(void **state)
{
	hm_profile *p = sample_profile(1);
	hm_profile *q = roundtrip(p, HM_FMT_SPEEDSCOPE);
	assert_int_equal(hm_profile_total_count(q), 45);
	assert_int_equal(hm_profile_total_weight(q), 450000000);
	assert_int_equal(hm_profile_nthreads(q) >= 2, 1);
	char *a = canon(p), *b = canon(q);
	assert_string_equal(a, b);
	free(a);
	free(b);
	hm_profile_free(p);
	hm_profile_free(q);
}

static void expect_error(const void *buf, size_t len)
{
	hm_profile *q = NULL;
	int rc = hm_profile_read(buf, len, &q);
	assert_true(rc < 0);
	assert_null(q);
	assert_true(strlen(hm_errmsg()) > 0);
	assert_null(strchr(hm_errmsg(), '\n'));
}

static void test_hostile(void **state)
{
	hm_profile *p = sample_profile(0);
	unsigned char *buf;
	size_t len;
	/* truncated pprof / OTLP at every length */
	assert_int_equal(hm_encode_pprof(p, 0, &buf, &len), HM_OK);
	for (size_t n = 1; n < len; n += 1) {
		hm_profile *q = NULL;
		if (hm_profile_read(buf, n, &q) == HM_OK)
			hm_profile_free(q);  /* a prefix may be a valid message */
	}
	/* invalid location index: corrupt each byte in turn */
	for (size_t i = 0; i < len; i++) {
		unsigned char *c = malloc(len);
		memcpy(c, buf, len);
		c[i] ^= 0x5a;
		hm_profile *q = NULL;
		if (hm_profile_read(c, len, &q) == HM_OK)
			hm_profile_free(q);
		free(c);
	}
	free(buf);
	assert_int_equal(hm_encode_otlp(p, &buf, &len), HM_OK);
	for (size_t n = 1; n < len; n++) {
		hm_profile *q = NULL;
		if (hm_profile_read(buf, n, &q) == HM_OK)
			hm_profile_free(q);
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char *c = malloc(len);
		memcpy(c, buf, len);
		c[i] ^= 0xa5;
		hm_profile *q = NULL;
		if (hm_profile_read(c, len, &q) == HM_OK)
			hm_profile_free(q);
		free(c);
	}
	free(buf);
	hm_profile_free(p);

	expect_error("", 0);
	expect_error("\x1f\x8b\x08\x00garbage", 12);
	expect_error("\x08\x96\x01\xff\xff", 5);
	expect_error("{\"shared\":{\"frames\":[{\"name\":\"a\"}]},\"profiles\":"
		     "[{\"type\":\"sampled\",\"unit\":\"none\",\"samples\":[[0,7]],\"weights\":[1]}]}", 97);
	expect_error("{\"resourceProfiles\":[{}],\"dictionary\":{\"stringTable\":[\"\"],"
		     "\"stackTable\":[{}]}, \"x\":1}", 83);
	const char *otlp_bad = "{\"resourceProfiles\":[{\"scopeProfiles\":[{\"profiles\":[{\"samples\":"
		"[{\"stackIndex\":99,\"values\":[\"1\"]}]}]}]}],\"dictionary\":{\"stringTable\":[\"\"]}}";
	expect_error(otlp_bad, strlen(otlp_bad));
	expect_error("main;work notanumber\n", 21);

	/* deep nesting in JSON */
	size_t deep = 100000;
	char *d = malloc(2 * deep + 1);
	memset(d, '[', deep);
	memset(d + deep, ']', deep);
	d[0] = '{';
	d[2 * deep] = 0;
	expect_error(d, 2 * deep);
	free(d);

	/* gzip bomb: 300 MiB of zeros compresses to ~300 KiB */
	size_t big = 300u << 20;
	unsigned char *zeros = calloc(1, big);
	unsigned char *gz;
	size_t gzlen;
	assert_int_equal(hm_gzip(zeros, big, &gz, &gzlen), HM_OK);
	free(zeros);
	expect_error(gz, gzlen);
	assert_non_null(strstr(hm_errmsg(), "limit"));
	free(gz);
}

/* Protobuf field bytes: tag, length, payload. */
static size_t pb_field(unsigned char *out, unsigned field, const void *data, size_t len)
{
	size_t n = 0;
	uint64_t vals[2] = {(uint64_t)field << 3 | 2, len};
	for (int k = 0; k < 2; k++) {
		uint64_t v = vals[k];
		while (v >= 0x80) {
			out[n++] = (unsigned char)(v | 0x80);
			v >>= 7;
		}
		out[n++] = (unsigned char)v;
	}
	memcpy(out + n, data, len);
	return n + len;
}

/* Protobuf varint field bytes. */
static size_t pb_vfield(unsigned char *out, unsigned field, uint64_t v)
{
	size_t n = 0;
	uint64_t vals[2] = {(uint64_t)field << 3, v};
	for (int k = 0; k < 2; k++) {
		uint64_t x = vals[k];
		while (x >= 0x80) {
			out[n++] = (unsigned char)(x | 0x80);
			x >>= 7;
		}
		out[n++] = (unsigned char)x;
	}
	return n;
}

static void expect_limit(const void *buf, size_t len, const char *what)
{
	expect_error(buf, len);
	if (!strstr(hm_errmsg(), "over the decoding limit") || !strstr(hm_errmsg(), what))
		fail_msg("unexpected error: %s", hm_errmsg());
}

/* A pprof of nsamples samples of one location with 4096 inlined lines. */
static size_t inlined_pprof(unsigned char *pp, int nsamples)
{
	unsigned char tmp[64], *loc = malloc(64 * 1024);
	size_t pl = 0, ll = pb_vfield(loc, 1, 1), tl;
	for (int i = 0; i < 4096; i++) {
		tl = pb_vfield(tmp, 1, 1);
		tl += pb_vfield(tmp + tl, 2, (uint64_t)i + 1);
		ll += pb_field(loc + ll, 4, tmp, tl);                 /* Location.line */
	}
	tl = pb_vfield(tmp, 1, 3);
	tl += pb_vfield(tmp + tl, 2, 4);
	pl += pb_field(pp + pl, 1, tmp, tl);                          /* sample_type */
	for (int i = 0; i < nsamples; i++)                            /* sample */
		pl += pb_field(pp + pl, 2, "\x0a\x01\x01\x12\x01\x01", 6);
	pl += pb_field(pp + pl, 4, loc, ll);                          /* location */
	tl = pb_vfield(tmp, 1, 1);
	tl += pb_vfield(tmp + tl, 2, 1);
	tl += pb_vfield(tmp + tl, 4, 2);
	pl += pb_field(pp + pl, 5, tmp, tl);                          /* function */
	const char *strs[] = {"", "f", "a.py", "samples", "count"};
	for (int i = 0; i < 5; i++)
		pl += pb_field(pp + pl, 6, strs[i], strlen(strs[i]));     /* string_table */
	free(loc);
	return pl;
}

/* Small bodies that would unpack into far more memory or nest without end
 * are refused before they are decoded. */
static void test_decode_limits(void **state)
{
	size_t n = HM_PB_MAX_REPEATED + 1000;
	/* OTLP: a dictionary of empty strings, one empty resource profile */
	unsigned char *dict = malloc(2 * n + 16), *req = malloc(2 * n + 64);
	for (size_t i = 0; i < n; i++)
		dict[2 * i] = 0x2a, dict[2 * i + 1] = 0;     /* string_table = 5 */
	size_t len = pb_field(req, 1, "", 0);
	len += pb_field(req + len, 2, dict, 2 * n);
	expect_limit(req, len, "string_table");
	/* pprof: string_table = 6 */
	for (size_t i = 0; i < n; i++)
		req[2 * i] = 0x32, req[2 * i + 1] = 0;
	expect_limit(req, 2 * n, "string_table");
	/* gzip makes no difference */
	unsigned char *gz;
	size_t gzlen;
	assert_int_equal(hm_gzip(req, 2 * n, &gz, &gzlen), HM_OK);
	assert_true(gzlen < 64 * 1024);
	expect_limit(gz, gzlen, "string_table");
	free(gz);
	/* values nested 1000 deep in a resource attribute (AnyValue.array_value) */
	size_t cap = 64 * 1024;
	unsigned char *a = calloc(1, cap), *b = calloc(1, cap);
	size_t al = 0;
	for (int i = 0; i < 1000; i++) {
		size_t bl = pb_field(b, 5, a, al);        /* AnyValue.array_value */
		al = pb_field(a, 1, b, bl);               /* ArrayValue.values */
	}
	size_t bl = pb_field(b, 5, a, al);                /* an AnyValue */
	al = pb_field(a, 2, b, bl);                       /* KeyValue.value */
	bl = pb_field(b, 1, a, al);                       /* Resource.attributes */
	al = bl;
	memcpy(a, b, bl);
	bl = pb_field(b, 1, a, al);                       /* ResourceProfiles.resource */
	len = pb_field(req, 1, b, bl);
	len += pb_field(req + len, 2, "\x2a\x00", 2);
	expect_limit(req, len, "nested");
	free(a);
	free(b);
	free(dict);
	free(req);
	/* pprof: 40,000 samples of one location with 4096 inlined lines expand
	 * to 164M frames (from a 600 KB message); 400 samples read fine */
	unsigned char *pp = malloc(1 << 20);
	size_t pl = inlined_pprof(pp, 40000);
	assert_true(pl < (1 << 20));
	expect_limit(pp, pl, "stack frames");
	pl = inlined_pprof(pp, 400);
	hm_profile *q = NULL;
	assert_int_equal(hm_profile_read(pp, pl, &q), HM_OK);
	assert_int_equal(hm_profile_total_count(q), 400);
	uint32_t depth;
	hm_profile_stack(q, hm_profile_sample(q, 0)->stack, &depth);
	assert_int_equal(depth, 4096);
	hm_profile_free(q);
	free(pp);
	/* JSON: more values than the limit */
	size_t nj = HM_JSON_MAX_VALUES + 10;
	char *j = malloc(3 * nj + 128);
	size_t jl = (size_t)sprintf(j, "{\"resourceProfiles\":[],\"dictionary\":{\"stringTable\":[");
	for (size_t i = 0; i < nj; i++)
		memcpy(j + jl, i ? ",\"\"" : "\"\"", i ? 3 : 2), jl += i ? 3 : 2;
	jl += (size_t)sprintf(j + jl, "]}}");
	expect_limit(j, jl, "JSON");
	free(j);
	/* collapsed: more stacks than the limit */
	char *c = malloc(8 * n);
	size_t cl = 0;
	for (size_t i = 0; i < n; i++)
		cl += (size_t)sprintf(c + cl, "f%zu 1\n", i % 1000);
	expect_limit(c, cl, "stacks");
	free(c);
}

/* Inputs the fuzzers (tests/fuzz) found: each was a sanitizer report. */
static void test_fuzz_regressions(void **state)
{
	/* speedscope weights are doubles: negative, huge or fractional ones
	 * used to be cast to integers out of range (UBSan) */
	const char *neg = "{\"shared\":{\"frames\":[{\"name\":\"a\"}]},\"profiles\":"
		"[{\"type\":\"sampled\",\"unit\":\"none\",\"samples\":[[0]],\"weights\":[-2]}]}";
	expect_error(neg, strlen(neg));
	const char *huge = "{\"shared\":{\"frames\":[{\"name\":\"a\"}]},\"profiles\":"
		"[{\"type\":\"sampled\",\"unit\":\"seconds\",\"startValue\":-1e300,"
		"\"samples\":[[0]],\"weights\":[1e300]}]}";
	hm_profile *p = NULL;
	assert_int_equal(hm_profile_read(huge, strlen(huge), &p), HM_OK);
	assert_int_equal(hm_profile_total_count(p), 1);
	assert_int_equal(hm_profile_total_weight(p), INT64_MAX);
	hm_profile_free(p);
	const char *ev = "{\"shared\":{\"frames\":[{\"name\":\"a\"}]},\"profiles\":"
		"[{\"type\":\"evented\",\"unit\":\"none\",\"startValue\":0,\"events\":"
		"[{\"type\":\"O\",\"frame\":0,\"at\":0},{\"type\":\"C\",\"frame\":0,\"at\":1e30}]}]}";
	assert_int_equal(hm_profile_read(ev, strlen(ev), &p), HM_OK);
	assert_int_equal(hm_profile_total_count(p), INT64_MAX);
	hm_profile_free(p);
	/* a negative count in collapsed stacks */
	expect_error("a;b 1\na -2\n", 11);

	/* counts near INT64_MAX: sums saturate instead of overflowing (UBSan)
	 * in the profile, the flame tree and the encoders */
	const char *big = "a;b 9223372036854775807\na;c 9223372036854775807\n"
			  "d 9223372036854775807\nd;e 5\na;b 9223372036854775807\n";
	assert_int_equal(hm_profile_read(big, strlen(big), &p), HM_OK);
	assert_int_equal(hm_profile_total_count(p), INT64_MAX);
	static const int fmts[] = {HM_FMT_COLLAPSED, HM_FMT_SPEEDSCOPE, HM_FMT_SVG,
				   HM_FMT_PPROF, HM_FMT_OTLP, HM_FMT_OTLP_JSON};
	for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
		FILE *f = fopen("/dev/null", "w");
		assert_non_null(f);
		assert_int_equal(hm_profile_write(p, fmts[i], f, NULL), HM_OK);
		fclose(f);
	}
	hm_profile_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pprof_roundtrip),
		cmocka_unit_test(test_otlp_roundtrip),
		cmocka_unit_test(test_pprof_otlp_pprof),
		cmocka_unit_test(test_collapsed_roundtrip),
		cmocka_unit_test(test_speedscope_roundtrip),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_decode_limits),
		cmocka_unit_test(test_fuzz_regressions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
