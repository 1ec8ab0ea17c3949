/* test_pyobj.c - the remote object reader on objects built by hand.
 *
 * Objects are laid out in a local arena exactly as the generated CPython
 * tables say (3.10 and 3.12 layouts: ob_size-signed and lv_tag ints, old and
 * new dict keys), and the reader's memory callback serves only that arena,
 * so anything outside it reads as unmapped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "base/error.h"
#include "python/layouts/layouts.h"
#include "python/pylayout.h"
#include "python/pyobj.h"

#include "fake_objects.h"

static uint64_t make_list(int n, const uint64_t *items)
{
	uint64_t arr = alloc(8 * (size_t)(n ? n : 1));
	for (int i = 0; i < n; i++)
		put64(arr, 8 * i, items[i]);
	uint64_t o = obj(HM_PT_LIST, 64);
	put64(o, L->var_size, (uint64_t)n);
	put64(o, L->list_item, arr);
	return o;
}

/* A combined dict of n str keys (unicode keys on 3.11+). */
static uint64_t make_dict(int n, const char *const *keys, const uint64_t *values)
{
	uint64_t k = alloc((size_t)L->dk_indices + 8 + 24 * (size_t)n);
	int esize, koff;
	if (L->dk_size >= 0) {
		put64(k, L->dk_size, 8);      /* 8 one-byte indices */
		esize = L->dk_entry_size;
		koff = 8;
	} else {
		put8(k, L->dk_log2_size, 3);
		put8(k, L->dk_log2_index_bytes, 3);
		put8(k, L->dk_kind, 1);       /* unicode keys */
		esize = L->dk_unicode_entry_size;
		koff = 0;
	}
	put64(k, L->dk_nentries, (uint64_t)n);
	uint64_t entries = k + (uint64_t)L->dk_indices + 8;
	for (int i = 0; i < n; i++) {
		put64(entries, esize * i + koff, make_str(keys[i]));
		put64(entries, esize * i + koff + 8, values[i]);
	}
	uint64_t d = obj(HM_PT_DICT, 64);
	put64(d, L->dict_used, (uint64_t)n);
	put64(d, L->dict_keys, k);
	put64(d, L->dict_values, 0);
	return d;
}

static const char *repr(uint64_t o)
{
	static char buf[256];
	hm_pyobj_repr(&R, o, buf, sizeof buf);
	return buf;
}

static void scalars(int minor)
{
	setup_layout(minor);
	assert_string_equal(repr(make_str("abc")), "'abc'");
	assert_string_equal(repr(make_str("it's\n")), "'it\\'s\\n'");
	assert_string_equal(repr(make_int(HM_PT_INT, 42, 0)), "42");
	assert_string_equal(repr(make_int(HM_PT_INT, 0, 0)), "0");
	assert_string_equal(repr(make_int(HM_PT_INT, 12345678901ull, 1)), "-12345678901");
	assert_string_equal(repr(make_int(HM_PT_INT, 1ull << 62, 0)), "4611686018427387904");
	assert_string_equal(repr(make_int(HM_PT_BOOL, 1, 0)), "True");
	assert_string_equal(repr(make_int(HM_PT_BOOL, 0, 0)), "False");
	assert_string_equal(repr(R.types[HM_PT_NONE]), "None");

	uint64_t f = obj(HM_PT_FLOAT, 32);
	double v = 3.5;
	memcpy((void *)(uintptr_t)(f + (uint64_t)L->float_fval), &v, 8);
	assert_string_equal(repr(f), "3.5");
	v = 2.0;
	memcpy((void *)(uintptr_t)(f + (uint64_t)L->float_fval), &v, 8);
	assert_string_equal(repr(f), "2.0");
	static const struct { double v; const char *want; } floats[] = {
		{0.1, "0.1"}, {30.0, "30.0"}, {-1.25, "-1.25"}, {1e16, "1e+16"},
		{123456789.5, "123456789.5"}, {1e-5, "1e-05"}, {0.0001, "0.0001"},
		{1.0 / 3, "0.3333333333333333"},
	};
	for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
		memcpy((void *)(uintptr_t)(f + (uint64_t)L->float_fval), &floats[i].v, 8);
		assert_string_equal(repr(f), floats[i].want);
	}

	uint64_t b = obj(HM_PT_BYTES, (size_t)L->bytes_sval + 8);
	put64(b, L->var_size, 3);
	memcpy((void *)(uintptr_t)(b + (uint64_t)L->bytes_sval), "a\0\xff", 3);
	assert_string_equal(repr(b), "b'a\\x00\\xff'");

	uint64_t mag;
	int neg;
	assert_int_equal(hm_pyobj_int(&R, make_int(HM_PT_INT, 0xfedcba9876543210ull, 0), &mag, &neg), 0);
	assert_true(mag == 0xfedcba9876543210ull && !neg);
	assert_int_equal(hm_pyobj_int(&R, make_str("x"), &mag, &neg), -1);

	uint64_t foo = alloc(32);
	put64(foo, L->ob_type, make_type("Foo"));
	assert_string_equal(repr(foo), "<Foo object>");
}

static void test_scalars_310(void **state) { (void)state; scalars(10); }
static void test_scalars_312(void **state) { (void)state; scalars(12); }

static void containers(int minor)
{
	setup_layout(minor);
	uint64_t items[3] = {make_int(HM_PT_INT, 1, 0), make_int(HM_PT_INT, 2, 0),
			     make_str("three")};
	uint64_t list = make_list(3, items);
	assert_string_equal(repr(list), "<list of 3>");
	assert_int_equal(hm_pyobj_len(&R, list), 3);
	uint64_t it;
	assert_int_equal(hm_pyobj_item(&R, list, 2, &it), 0);
	assert_string_equal(repr(it), "'three'");
	assert_int_equal(hm_pyobj_item(&R, list, 3, &it), -1);

	const char *keys[] = {"mode", "level", "name"};
	uint64_t vals[] = {make_str("test"), make_int(HM_PT_INT, 3, 0), make_str("x")};
	uint64_t d = make_dict(3, keys, vals);
	assert_string_equal(repr(d), "<dict of 3>");
	uint64_t v;
	assert_int_equal(hm_pyobj_dict_get(&R, d, "level", &v), 0);
	assert_string_equal(repr(v), "3");
	assert_int_equal(hm_pyobj_dict_get(&R, d, "mode", &v), 0);
	assert_string_equal(repr(v), "'test'");
	assert_int_equal(hm_pyobj_dict_get(&R, d, "missing", &v), -1);
	assert_int_equal(hm_pyobj_dict_get(&R, list, "mode", &v), -1);
}

static void test_containers_310(void **state) { (void)state; containers(10); }
static void test_containers_312(void **state) { (void)state; containers(12); }
static void test_containers_313(void **state) { (void)state; containers(13); }

/* A str that is not compact: its text elsewhere, through data.any. */
static uint64_t make_legacy_str(const char *s)
{
	size_t n = strlen(s);
	uint64_t o = obj(HM_PT_STR, (size_t)L->uni_legacy_data + 8);
	uint64_t text = alloc(n + 1);
	memcpy((void *)(uintptr_t)text, s, n + 1);
	put64(o, L->uni_length, n);
	put32(o, L->uni_state, (1u << L->uni_kind_shift) | (1u << L->uni_ascii_bit));
	put64(o, L->uni_legacy_data, text);
	return o;
}

static hm_target *T;

/* A name among a big dict's keys (sys.modules): a reader of a target
 * matches a batch of keys at once, and finds what key-by-key finds. */
static void big_dict(int minor)
{
	setup_layout(minor);
	enum { N = 300 };
	static char names[N][40];
	const char *keys[N];
	uint64_t vals[N];
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof names[i], "pkg%d.module.%s", i,
			 i % 3 ? "sub" : "leaf_name");
		keys[i] = names[i];
		vals[i] = make_int(HM_PT_INT, (uint64_t)i + 1, 0);
	}
	uint64_t d = make_dict(N, keys, vals);
	/* Entry 250: a key of another name's length whose text is elsewhere
	 * (not compact); entry 251: not a str. */
	uint64_t k;
	memcpy(&k, (void *)(uintptr_t)(d + (uint64_t)L->dict_keys), 8);
	uint64_t entries = k + (uint64_t)L->dk_indices + 8;
	int esize = L->dk_size >= 0 ? L->dk_entry_size : L->dk_unicode_entry_size;
	int koff = L->dk_size >= 0 ? 8 : 0;
	put64(entries, esize * 250 + koff, make_legacy_str("legacy.text.key"));
	put64(entries, esize * 251 + koff, make_int(HM_PT_INT, 7, 0));
	/* Entry 299: a short key at the very end of the arena, so a read of
	 * a longer name's length there fails. */
	size_t end = sizeof arena - ((size_t)L->uni_ascii_size + 8);
	uint64_t tail = (uint64_t)(uintptr_t)(arena + end);
	put64(tail, 0, 1);
	put64(tail, L->ob_type, R.types[HM_PT_STR]);
	put64(tail, L->uni_length, 2);
	put32(tail, L->uni_state, (1u << L->uni_kind_shift) | (1u << L->uni_compact_bit) |
				  (1u << L->uni_ascii_bit));
	memcpy((void *)(uintptr_t)(tail + (uint64_t)L->uni_ascii_size), "zz", 3);
	put64(entries, esize * 299 + koff, tail);

	hm_pyobj_reader byone = R;          /* key by key (arena_read) */
	assert_int_equal(hm_target_open_mem(arena_read, NULL, &T), HM_OK);
	hm_pyobj_reader_target(&R, T);
	const char *look[] = {names[0], names[1], names[128], names[200], names[298],
			      "legacy.text.key", "zz", "pkg1.module.su", "pkg1.module.subb",
			      "pkg1.module.suX", "", "missing", "pkg36.module.leaf_name", "pkg36.module.sub"};
	for (size_t i = 0; i < sizeof look / sizeof look[0]; i++) {
		uint64_t v1 = 0, v2 = 0;
		int r1 = hm_pyobj_dict_get(&byone, d, look[i], &v1);
		int r2 = hm_pyobj_dict_get(&R, d, look[i], &v2);
		assert_int_equal(r1, r2);
		assert_true(v1 == v2);
	}
	uint64_t v;
	assert_int_equal(hm_pyobj_dict_get(&R, d, "legacy.text.key", &v), 0);
	assert_string_equal(repr(v), "251");
	assert_int_equal(hm_pyobj_dict_get(&R, d, "zz", &v), 0);
	assert_string_equal(repr(v), "300");
	assert_int_equal(hm_pyobj_dict_get(&R, d, names[298], &v), 0);
	assert_string_equal(repr(v), "299");
	assert_int_equal(hm_pyobj_dict_get(&R, d, "pkg1.module.su", &v), -1);
	hm_target_close(T);
}

static void test_big_dict_311(void **state) { (void)state; big_dict(11); }
static void test_big_dict_312(void **state) { (void)state; big_dict(12); }
static void test_big_dict_313(void **state) { (void)state; big_dict(13); }

/* Garbage never crashes and reads as "<?>". */
static void test_garbage(void **state)
{
	(void)state;
	setup_layout(12);
	assert_string_equal(repr(0), "<?>");
	assert_string_equal(repr(8), "<?>");
	assert_string_equal(repr(0x10), "<?>");
	assert_string_equal(repr((uint64_t)(uintptr_t)arena + 3), "<?>");

	/* A str whose length is absurd, and one with an invalid kind. */
	uint64_t s = make_str("abc");
	put64(s, L->uni_length, 1ull << 50);
	assert_string_equal(repr(s), "<?>");
	s = make_str("abc");
	put32(s, L->uni_state, 3u << L->uni_kind_shift);
	assert_string_equal(repr(s), "<?>");

	/* A dict whose keys pointer leaves the arena, and absurd sizes. */
	const char *keys[] = {"a"};
	uint64_t vals[] = {make_int(HM_PT_INT, 1, 0)};
	uint64_t d = make_dict(1, keys, vals);
	uint64_t v;
	put64(d, L->dict_keys, 0x1000);
	assert_int_equal(hm_pyobj_dict_get(&R, d, "a", &v), -1);
	d = make_dict(1, keys, vals);
	uint64_t k;
	memcpy(&k, (void *)(uintptr_t)(d + (uint64_t)L->dict_keys), 8);
	put8(k, L->dk_log2_index_bytes, 60);
	assert_int_equal(hm_pyobj_dict_get(&R, d, "a", &v), -1);

	/* An int with too many digits, a list pointing nowhere. */
	uint64_t i = make_int(HM_PT_INT, 5, 0);
	put64(i, L->long_tag, (uint64_t)1 << 40);
	assert_string_equal(repr(i), "<?>");
	uint64_t lst = make_list(0, NULL);
	put64(lst, L->var_size, 1u << 20);
	put64(lst, L->list_item, 0x1000);
	assert_int_equal(hm_pyobj_item(&R, lst, 5, &v), -1);
	put64(lst, L->var_size, (uint64_t)-4);
	assert_int_equal(hm_pyobj_item(&R, lst, 0, &v), -1);
	assert_string_equal(repr(lst), "<?>");

	/* A type whose name is not text. */
	uint64_t t = make_type("Bad\x01Name");
	uint64_t o = alloc(32);
	put64(o, L->ob_type, t);
	assert_string_equal(repr(o), "<?>");

	/* Random bytes everywhere. */
	uint64_t x = 0x9E3779B97F4A7C15ull;
	for (size_t n = used; n < sizeof arena; n++) {
		arena[n] = (uint8_t)hm_rng_next(&x);
	}
	for (size_t n = used; n + 64 < sizeof arena; n += 8) {
		char buf[128];
		hm_pyobj_repr(&R, (uint64_t)(uintptr_t)(arena + n), buf, sizeof buf);
		assert_true(strlen(buf) < sizeof buf);
	}
}

/* The 3.12 instance attribute path: values pointer - 1 in the slot before
 * the object, keys shared through the type's ht_cached_keys. */
static void test_getattr_312_values(void **state)
{
	(void)state;
	setup_layout(12);
	const char *keys[] = {"_target", "_name"};
	uint64_t vals[] = {R.types[HM_PT_NONE], make_str("worker-1")};
	uint64_t d = make_dict(2, keys, vals);
	uint64_t k;
	memcpy(&k, (void *)(uintptr_t)(d + (uint64_t)L->dict_keys), 8);
	uint64_t values = alloc(16);
	put64(values, 0, vals[0]);
	put64(values, 8, vals[1]);
	uint64_t type = make_type("Thread");
	put64(type, L->tp_flags, (uint64_t)L->tpflags_managed_dict);
	put64(type, L->ht_cached_keys, k);
	uint64_t o = alloc(64) + 32;              /* room for the pre-header */
	put64(o, L->ob_type, type);
	put64(o, L->inst_dict_ptr, values - 1);
	uint64_t v, at = 0, w;
	assert_int_equal(hm_pyobj_getattr(&R, o, "_name", &v), 0);
	assert_string_equal(repr(v), "'worker-1'");
	/* Where it was found: the word a new value of the attribute goes to
	 * (a renamed span's _name: otel.c watches that word). */
	assert_int_equal(hm_pyobj_getattr_at(&R, o, "_name", &v, &at), 0);
	assert_int_equal(at, values + (uint64_t)L->dv_values + 8);
	put64(values, 8, make_str("worker-2"));
	assert_int_equal(hm_pyobj_getattr_at(&R, o, "_name", &v, &at), 0);
	assert_string_equal(repr(v), "'worker-2'");
	put64(values, 8, vals[1]);
	/* Materialised dict in the slot instead. */
	put64(o, L->inst_dict_ptr, d);
	assert_int_equal(hm_pyobj_getattr(&R, o, "_name", &v), 0);
	assert_string_equal(repr(v), "'worker-1'");
	at = 0;
	assert_int_equal(hm_pyobj_getattr_at(&R, o, "_name", &v, &at), 0);
	assert_true(at != 0);
	memcpy(&w, (void *)(uintptr_t)at, 8);
	assert_int_equal(w, v);
	assert_int_equal(hm_pyobj_getattr(&R, o, "nope", &v), -1);
	assert_int_equal(hm_pyobj_getattr_at(&R, o, "nope", &v, &at), -1);
}

/* A tuple of str objects. */
static uint64_t make_str_tuple(int n, const char *const *strs)
{
	uint64_t o = obj(HM_PT_TUPLE, (size_t)L->tuple_item + 8 * (size_t)n);
	put64(o, L->var_size, (uint64_t)n);
	for (int i = 0; i < n; i++)
		put64(o, L->tuple_item + 8 * i, make_str(strs[i]));
	return o;
}

struct got_locals {
	char text[512];
};

static int collect_local(void *ctx, const char *name, uint64_t value, int is_cell)
{
	struct got_locals *g = ctx;
	char buf[64];
	hm_pyobj_repr(&R, value, buf, sizeof buf);
	size_t n = strlen(g->text);
	snprintf(g->text + n, sizeof g->text - n, "%s%s=%s%s", n ? " " : "", name, buf,
		 is_cell ? "(cell)" : "");
	return 0;
}

/* 3.14: fast-locals slots are _PyStackRefs, immortal and deferred objects
 * with the low tag bit set (the NULL ref is 1): the locals reader clears the
 * tag. The frame and code object follow the 3.13 layout (the one the 3.14
 * debug offsets are mapped onto) with the 3.14 tagging switched on. */
static void test_locals_314_tagged(void **state)
{
	(void)state;
	setup_layout(13);
	static hm_pylayout l314;
	l314 = *L;
	l314.executable_tagged = 1;
	L = &l314;
	R.layout = L;

	const char *names[] = {"n", "none", "flag", "s", "unbound", "c", "odd"};
	enum { N = 7 };
	uint8_t kinds[N] = {0x20, 0x20, 0x20, 0x20, 0x20, 0x40 | 0x20, 0x20};
	uint64_t code = alloc(512);
	put64(code, L->co_localsplusnames, make_str_tuple(N, names));
	uint64_t kb = obj(HM_PT_BYTES, (size_t)L->bytes_sval + N + 1);
	put64(kb, L->var_size, N);
	memcpy((void *)(uintptr_t)(kb + (uint64_t)L->bytes_sval), kinds, N);
	put64(code, L->co_localspluskinds, kb);

	uint64_t cell = obj(HM_PT_CELL, 32);
	put64(cell, L->cell_ref, make_int(HM_PT_INT, 7, 0));
	uint64_t frame = alloc((size_t)L->if_size + 8 * N);
	uint64_t slots[N] = {
		make_int(HM_PT_INT, 42, 0) | 1,   /* small int: immortal */
		R.types[HM_PT_NONE] | 1,          /* None */
		make_int(HM_PT_BOOL, 1, 0) | 1,   /* True */
		make_str("abc"),                  /* an owned reference: no tag */
		1,                                /* PyStackRef_NULL */
		cell | 1,                         /* a cell, deferred */
		(5ull << 2) | 3,                  /* an int tagged in place */
	};
	for (int i = 0; i < N; i++)
		put64(frame, L->if_size + 8 * i, slots[i]);

	hm_pycode co = {.addr = code, .name = "f", .qualname = "f", .filename = "x.py"};
	hm_pyframe f = {.code = &co, .line = 1, .addr = frame};
	struct got_locals g = {{0}};
	assert_int_equal(hm_pyobj_locals(&R, &f, collect_local, &g), 5);
	assert_string_equal(g.text, "n=42 none=None flag=True s='abc' c=7(cell)");
}

/* Found by tests/fuzz/fuzz_pyobj: an int whose ob_size reads INT64_MIN
 * (3.10: the sign lives in ob_size) was negated (UBSan abort). */
static void test_int_size_min(void **state)
{
	setup_layout(10);
	uint64_t o = obj(HM_PT_INT, 64);
	put64(o, L->var_size, (uint64_t)INT64_MIN);
	uint64_t mag;
	int neg;
	assert_int_equal(hm_pyobj_int(&R, o, &mag, &neg), -1);
	char buf[64];
	hm_pyobj_repr(&R, o, buf, sizeof buf);
}

/* The entry index of a name in a keys object (what the in-kernel span
 * reader gets for _context and _name), on 3.11 and 3.13's layouts. */
static void keys_index(int minor)
{
	setup_layout(minor);
	const char *keys[] = {"_name", "_context", "_parent"};
	uint64_t vals[] = {make_str("a"), make_str("b"), make_str("c")};
	uint64_t d = make_dict(3, keys, vals);
	uint64_t k, key;
	int64_t i = -1;
	memcpy(&k, (void *)(uintptr_t)(d + (uint64_t)L->dict_keys), 8);
	assert_int_equal(hm_pyobj_keys_index(&R, k, "_context", &i, &key), 0);
	assert_int_equal(i, 1);
	assert_string_equal(repr(key), "'_context'");
	assert_int_equal(hm_pyobj_keys_index(&R, k, "_parent", &i, &key), 0);
	assert_int_equal(i, 2);
	assert_int_equal(hm_pyobj_keys_index(&R, k, "_contex", &i, &key), -1);
	assert_int_equal(hm_pyobj_keys_index(&R, k + 8, "_name", &i, &key), -1);
	assert_int_equal(hm_pyobj_keys_index(&R, 0, "_name", &i, &key), -1);
}

static void test_keys_index_311(void **state) { (void)state; keys_index(11); }
static void test_keys_index_313(void **state) { (void)state; keys_index(13); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars_310),
		cmocka_unit_test(test_scalars_312),
		cmocka_unit_test(test_containers_310),
		cmocka_unit_test(test_containers_312),
		cmocka_unit_test(test_containers_313),
		cmocka_unit_test(test_big_dict_311),
		cmocka_unit_test(test_big_dict_312),
		cmocka_unit_test(test_big_dict_313),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_int_size_min),
		cmocka_unit_test(test_getattr_312_values),
		cmocka_unit_test(test_keys_index_311),
		cmocka_unit_test(test_keys_index_313),
		cmocka_unit_test(test_locals_314_tagged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
