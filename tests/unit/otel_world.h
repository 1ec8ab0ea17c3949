/* otel_world.h - a hand-built OpenTelemetry context for the span reader
 * (lib/python/otel.c), shared by tests/unit/test_otel.c and
 * tests/fuzz/fuzz_otel.c: objects laid out in a local arena as the generated
 * tables say, served as a target's memory (hm_target_open_mem). The
 * includer defines assert_true, assert_non_null and assert_int_equal (cmocka's
 * or its own) and includes the homura headers this uses. */
#ifndef HOMURA_OTEL_WORLD_H
#define HOMURA_OTEL_WORLD_H

#include "fake_objects.h"

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
	w->span = alloc(96) + 32;             /* room for a 3.11+ pre-header */
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

#endif
