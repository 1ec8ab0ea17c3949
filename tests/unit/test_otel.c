/* test_otel.c - the OpenTelemetry span reader (lib/python/otel.c) on a
 * context built by hand: a PyContext whose HAMT maps the SDK's ContextVar
 * to a Context dict (a dict subclass) holding a span under the span key;
 * the span's __dict__ holds _name, _context (a SpanContext: a tuple
 * subclass of trace id, span id, is_remote) and _parent. Objects are laid
 * out as the generated tables say (3.11 and 3.12), in a local arena served
 * as the target's memory (hm_target_open_mem); anything else is unmapped.
 * Also the HAMT's array and collision nodes, and broken chains (no span,
 * never a wrong one). The object helpers are test_pyobj.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "proc/target.h"
#include "python/layouts/async_layouts.h"
#include "python/layouts/layouts.h"
#include "python/otel.h"
#include "python/pylayout.h"
#include "python/pyobj.h"

static _Alignas(16) uint8_t arena[1 << 16];
static size_t used;

static int arena_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	uint64_t lo = (uint64_t)(uintptr_t)arena;
	if (addr < lo || addr + len > lo + sizeof arena || addr + len < addr)
		return -1;
	memcpy(buf, (void *)(uintptr_t)addr, len);
	return 0;
}

static uint64_t alloc(size_t n)
{
	used = (used + 15) & ~(size_t)15;
	uint64_t a = (uint64_t)(uintptr_t)(arena + used);
	used += n;
	assert_true(used <= sizeof arena);
	return a;
}

static void put64(uint64_t addr, int off, uint64_t v)
{
	memcpy((void *)(uintptr_t)(addr + (uint64_t)off), &v, 8);
}

static void put32(uint64_t addr, int off, uint32_t v)
{
	memcpy((void *)(uintptr_t)(addr + (uint64_t)off), &v, 4);
}

static void put8(uint64_t addr, int off, uint8_t v)
{
	*(uint8_t *)(uintptr_t)(addr + (uint64_t)off) = v;
}

static hm_pyobj_reader R;
static const hm_pylayout *L;

/* A type object named `name` (tp_name points at a copy in the arena). */
static uint64_t make_type(const char *name)
{
	uint64_t t = alloc(1024);
	uint64_t s = alloc(strlen(name) + 1);
	memcpy((void *)(uintptr_t)s, name, strlen(name) + 1);
	put64(t, L->tp_name, s);
	return t;
}

static void setup_layout(int minor)
{
	memset(arena, 0, sizeof arena);
	used = 0;
	L = minor == 13 ? &hm_pylayout_py313 : hm_pylayout_builtin(3, minor);
	assert_non_null(L);
	memset(&R, 0, sizeof R);
	R.layout = L;
	R.read = arena_read;
	static const char *const names[HM_PT_COUNT] = {
		"str", "bytes", "int", "float", "bool", "NoneType", "tuple", "list",
		"dict", "cell", "module",
	};
	for (int i = 0; i < HM_PT_COUNT; i++)
		R.types[i] = make_type(names[i]);
	R.types[HM_PT_NONE] = alloc(16);     /* the None object itself */
	put64(R.types[HM_PT_NONE], L->ob_type, make_type("NoneType"));
}

static uint64_t obj(int kind, size_t size)
{
	uint64_t o = alloc(size);
	put64(o, 0, 1);                     /* refcount */
	put64(o, L->ob_type, R.types[kind]);
	return o;
}

/* A compact ASCII str. */
static uint64_t make_str(const char *s)
{
	size_t n = strlen(s);
	uint64_t o = obj(HM_PT_STR, (size_t)L->uni_ascii_size + n + 1);
	put64(o, L->uni_length, n);
	uint32_t state = (1u << L->uni_kind_shift) | (1u << L->uni_compact_bit) |
			 (1u << L->uni_ascii_bit);
	put32(o, L->uni_state, state);
	memcpy((void *)(uintptr_t)(o + (uint64_t)L->uni_ascii_size), s, n + 1);
	return o;
}

/* An int from a magnitude (30-bit digits) and sign, in this layout. */
static uint64_t make_int(int kind, uint64_t mag, int neg)
{
	uint32_t d[4];
	int nd = 0;
	while (mag) {
		d[nd++] = (uint32_t)(mag & ((1u << 30) - 1));
		mag >>= 30;
	}
	uint64_t o = obj(kind, (size_t)L->long_digit + 16);
	if (L->long_tag >= 0)
		put64(o, L->long_tag, ((uint64_t)nd << 3) | (nd == 0 ? 1u : neg ? 2u : 0u));
	else
		put64(o, L->var_size, (uint64_t)(neg ? -nd : nd));
	for (int i = 0; i < nd; i++)
		put32(o, L->long_digit + 4 * i, d[i]);
	return o;
}

/* A non-negative int of up to 128 bits (30-bit digits). */
static uint64_t make_int128(uint64_t hi, uint64_t lo)
{
	uint32_t d[6];
	int nd = 0;
	unsigned __int128 v = ((unsigned __int128)hi << 64) | lo;
	while (v) {
		d[nd++] = (uint32_t)(v & ((1u << 30) - 1));
		v >>= 30;
	}
	uint64_t o = obj(HM_PT_INT, (size_t)L->long_digit + 32);
	if (L->long_tag >= 0)
		put64(o, L->long_tag, ((uint64_t)nd << 3) | (nd == 0 ? 1u : 0u));
	else
		put64(o, L->var_size, (uint64_t)nd);
	for (int i = 0; i < nd; i++)
		put32(o, L->long_digit + 4 * i, d[i]);
	return o;
}

/* A combined dict of n str keys (as test_pyobj.c's make_dict); *entries
 * gets the address of its entries, *esize and *koff their size and key
 * offset. */
static uint64_t make_dict(int n, const char *const *keys, const uint64_t *values,
			  uint64_t *entries, int *esize, int *koff)
{
	uint64_t k = alloc((size_t)L->dk_indices + 8 + 24 * (size_t)n);
	if (L->dk_size >= 0) {
		put64(k, L->dk_size, 8);
		*esize = L->dk_entry_size;
		*koff = 8;
	} else {
		put8(k, L->dk_log2_size, 3);
		put8(k, L->dk_log2_index_bytes, 3);
		put8(k, L->dk_kind, 1);
		*esize = L->dk_unicode_entry_size;
		*koff = 0;
	}
	put64(k, L->dk_nentries, (uint64_t)n);
	*entries = k + (uint64_t)L->dk_indices + 8;
	for (int i = 0; i < n; i++) {
		put64(*entries, *esize * i + *koff, make_str(keys[i]));
		put64(*entries, *esize * i + *koff + 8, values[i]);
	}
	uint64_t d = obj(HM_PT_DICT, 64);
	put64(d, L->dict_used, (uint64_t)n);
	put64(d, L->dict_keys, k);
	put64(d, L->dict_values, 0);
	return d;
}

#define TRACE_HI 0x0123456789abcdefull
#define TRACE_LO 0xfedcba9876543210ull
#define SPAN_ID 0x1122334455667788ull
#define VAR_HASH 0x5a5a5a5a12345678ll

struct world {
	const hm_pyasync_layout *A;
	hm_target *t;
	hm_otel *o;
	uint64_t ctx, hamt, node, dict, span, sid, var;
	uint64_t types[3];
};

static uint32_t h32(int64_t h)
{
	int32_t x = (int32_t)(uint32_t)((uint64_t)h & 0xffffffffu) ^ (int32_t)(uint32_t)((uint64_t)h >> 32);
	return (uint32_t)(x == -1 ? -2 : x);
}

static void build(struct world *w, int minor)
{
	setup_layout(minor);
	w->A = minor == 11 ? &hm_pyasync_layout_py311 : &hm_pyasync_layout_py312;
	uint64_t ctx_type = make_type("Context"), var_type = make_type("ContextVar");
	uint64_t hamt_type = make_type("hamt");
	w->types[0] = make_type("hamt_bitmap_node");
	w->types[1] = make_type("hamt_array_node");
	w->types[2] = make_type("hamt_collision_node");
	w->var = alloc(64);
	put64(w->var, L->ob_type, var_type);
	uint64_t key = make_str("current-span-0f0e");
	/* SpanContext(trace_id, span_id, is_remote=False) */
	uint64_t sc_type = make_type("SpanContext");
	put64(sc_type, L->tp_flags, 1ull << 26);
	uint64_t sc = alloc(64);
	put64(sc, L->ob_type, sc_type);
	put64(sc, L->var_size, 3);
	w->sid = make_int128(0, SPAN_ID);
	put64(sc, L->tuple_item, make_int128(TRACE_HI, TRACE_LO));
	put64(sc, L->tuple_item + 8, w->sid);
	put64(sc, L->tuple_item + 16, make_int(HM_PT_BOOL, 0, 0));
	/* the span: attributes in a __dict__ at tp_dictoffset */
	uint64_t span_type = make_type("_Span"), e;
	int esize, koff;
	put64(span_type, L->tp_dictoffset, 16);
	const char *names[] = {"_name", "_context", "_parent"};
	uint64_t vals[] = {make_str("get_user_from_db"), sc, R.types[HM_PT_NONE]};
	w->span = alloc(64);
	put64(w->span, L->ob_type, span_type);
	put64(w->span, 16, make_dict(3, names, vals, &e, &esize, &koff));
	/* the Context dict (a dict subclass) */
	uint64_t cd_type = make_type("Context");
	put64(cd_type, L->tp_flags, 1ull << 29);
	const char *cnames[] = {"current-span-0f0e"};
	uint64_t cvals[] = {w->span};
	w->dict = make_dict(1, cnames, cvals, &e, &esize, &koff);
	put64(e, koff, key);                  /* the same key object */
	put64(w->dict, L->ob_type, cd_type);
	put64(w->dict, L->dict_used + 8, 1000);  /* version tag */
	/* one bitmap node mapping the variable to the dict */
	w->node = alloc(64);
	put64(w->node, L->ob_type, w->types[0]);
	put64(w->node, 16, 2);
	put32(w->node, 24, 1u << (h32(VAR_HASH) & 31));
	put64(w->node, 32, w->var);
	put64(w->node, 40, w->dict);
	w->hamt = alloc(64);
	put64(w->hamt, L->ob_type, hamt_type);
	put64(w->hamt, w->A->hamt_root, w->node);
	put64(w->hamt, w->A->hamt_count, 1);
	w->ctx = alloc(64);
	put64(w->ctx, L->ob_type, ctx_type);
	put64(w->ctx, w->A->ctx_vars, w->hamt);
	assert_int_equal(hm_target_open_mem(arena_read, NULL, &w->t), HM_OK);
	struct otel_setup s;
	memset(&s, 0, sizeof s);
	s.layout = L;
	s.t = w->t;
	memcpy(s.types, R.types, sizeof s.types);
	s.ctx_type = ctx_type;
	s.var_type = var_type;
	s.var = w->var;
	s.var_hash = VAR_HASH;
	s.span_key = key;
	w->o = otel_open_setup(&s);
	assert_non_null(w->o);
}

static void done(struct world *w)
{
	otel_close(w->o);
	hm_target_close(w->t);
}

static void expect_span(struct world *w, uint64_t span_id)
{
	hm_pyspan sp;
	assert_int_equal(otel_context_span(w->o, w->ctx, &sp), 0);
	assert_true(sp.trace_hi == TRACE_HI && sp.trace_lo == TRACE_LO);
	assert_true(sp.span_id == span_id);
	assert_string_equal(sp.name, "get_user_from_db");
	assert_string_equal(sp.root, "get_user_from_db");   /* no parent: local root */
}

static void expect_none(struct world *w)
{
	hm_pyspan sp;
	otel_context_span(w->o, w->ctx, &sp);
	assert_true(sp.trace_hi == 0 && sp.trace_lo == 0 && sp.span_id == 0);
}

static void chain(int minor)
{
	struct world w;
	build(&w, minor);
	expect_span(&w, SPAN_ID);
	expect_span(&w, SPAN_ID);             /* again, through the cached answer */
	/* A new Context dict (new version tag) with another span: read anew. */
	put32(w.sid, L->long_digit, 7);
	put64(w.dict, L->dict_used + 8, 1001);
	expect_span(&w, (SPAN_ID & ~((1ull << 30) - 1)) | 7);
	/* The variable leaves the context (a new HAMT whose root lacks it;
	 * HAMTs and their nodes never change): no span. */
	uint64_t empty = alloc(64), h2 = alloc(64), htype;
	memcpy(&htype, (void *)(uintptr_t)(w.hamt + (uint64_t)L->ob_type), 8);
	put64(empty, L->ob_type, w.types[0]);
	put64(h2, L->ob_type, htype);
	put64(h2, w.A->hamt_root, empty);
	put64(h2, w.A->hamt_count, 1);
	put64(w.ctx, w.A->ctx_vars, h2);
	expect_none(&w);
	put64(w.ctx, w.A->ctx_vars, w.hamt);
	expect_span(&w, (SPAN_ID & ~((1ull << 30) - 1)) | 7);
	/* Broken links give no span, never a wrong one. */
	uint64_t ctype;
	memcpy(&ctype, (void *)(uintptr_t)(w.ctx + (uint64_t)L->ob_type), 8);
	put64(w.ctx, L->ob_type, ctype + 8);
	expect_none(&w);
	put64(w.ctx, L->ob_type, ctype);
	put64(w.node, 40, 0x10);              /* unmapped dict */
	expect_none(&w);
	put64(w.node, 40, w.dict);
	put64(w.span, L->ob_type, R.types[HM_PT_STR]);   /* not a span any more */
	put64(w.dict, L->dict_used + 8, 1002);
	expect_none(&w);
	done(&w);
}

static void test_chain_311(void **state) { (void)state; chain(11); }
static void test_chain_312(void **state) { (void)state; chain(12); }

static int read_arena(void *ctx, uint64_t addr, void *buf, size_t len)
{
	return arena_read(ctx, addr, buf, len);
}

static void test_hamt_nodes(void **state)
{
	(void)state;
	struct world w;
	build(&w, 11);
	uint64_t v = 0, key = w.var;
	uint32_t h = h32(VAR_HASH);
	/* array node -> bitmap node (level 1) */
	uint64_t leaf = alloc(64);
	put64(leaf, L->ob_type, w.types[0]);
	put64(leaf, 16, 2);
	put32(leaf, 24, 1u << ((h >> 5) & 31));
	put64(leaf, 32, key);
	put64(leaf, 40, 0x4242420);
	uint64_t arr = alloc(16 + 8 * 32 + 8);
	put64(arr, L->ob_type, w.types[1]);
	put64(arr, 16 + 8 * (h & 31), leaf);
	assert_int_equal(otel_hamt_find(read_arena, NULL, w.types, arr, key, VAR_HASH, &v), 0);
	assert_true(v == 0x4242420);
	/* another slot of the array node: absent */
	assert_int_equal(otel_hamt_find(read_arena, NULL, w.types, arr, key, VAR_HASH ^ 1, &v), 1);
	/* collision node with two keys of the same hash */
	uint64_t col = alloc(64);
	put64(col, L->ob_type, w.types[2]);
	put64(col, 16, 4);
	put32(col, 24, h);
	put64(col, 32, key + 8);
	put64(col, 40, 0x1110);
	put64(col, 48, key);
	put64(col, 56, 0x2220);
	assert_int_equal(otel_hamt_find(read_arena, NULL, w.types, col, key, VAR_HASH, &v), 0);
	assert_true(v == 0x2220);
	/* an unknown node type, a size that disagrees with the bitmap */
	uint64_t bad = alloc(64);
	put64(bad, L->ob_type, w.types[0] + 8);
	assert_int_equal(otel_hamt_find(read_arena, NULL, w.types, bad, key, VAR_HASH, &v), -1);
	put64(bad, L->ob_type, w.types[0]);
	put64(bad, 16, 6);
	put32(bad, 24, 1u << (h & 31));
	assert_int_equal(otel_hamt_find(read_arena, NULL, w.types, bad, key, VAR_HASH, &v), -1);
	/* a cycle of sub-nodes ends at the depth limit */
	put64(bad, 16, 2);
	put64(bad, 32, 0);
	put64(bad, 40, bad);
	put32(bad, 24, 0xffffffffu);
	put64(bad, 16, 64);
	assert_int_equal(otel_hamt_find(read_arena, NULL, w.types, bad, key, VAR_HASH, &v), -1);
	done(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chain_311),
		cmocka_unit_test(test_chain_312),
		cmocka_unit_test(test_hamt_nodes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
