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

#include "base/base.h"
#include "base/error.h"
#include "proc/target.h"
#include "python/layouts/async_layouts.h"
#include "python/layouts/layouts.h"
#include "python/otel.h"
#include "python/pylayout.h"
#include "python/pyobj.h"

#include "otel_world.h"

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

/* A HAMT (one entry, not the SDK's variable) whose root lacks the variable. */
static uint64_t hamt_without_var(struct world *w)
{
	uint64_t empty = alloc(64), h2 = alloc(64), htype;
	memcpy(&htype, (void *)(uintptr_t)(w->hamt + (uint64_t)L->ob_type), 8);
	put64(empty, L->ob_type, w->types[0]);
	put64(h2, L->ob_type, htype);
	put64(h2, w->A->hamt_root, empty);
	put64(h2, w->A->hamt_count, 1);
	return h2;
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
	uint64_t h2 = hamt_without_var(&w);
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

/* A span read torn (here its span id is, for one read, no int) gives no
 * span, and nothing is kept: the next read finds the span, although no
 * word of the context's chain changed. (An empty answer was kept, and the
 * check of the context's words gave it until the context changed.) */
static void torn_span_not_kept(int minor)
{
	struct world w;
	build(&w, minor);
	uint64_t itype;
	memcpy(&itype, (void *)(uintptr_t)(w.sid + (uint64_t)L->ob_type), 8);
	put64(w.sid, L->ob_type, itype + 8);
	expect_none(&w);
	put64(w.sid, L->ob_type, itype);
	expect_span(&w, SPAN_ID);
	expect_span(&w, SPAN_ID);
	done(&w);
}

static void test_torn_span_not_kept_311(void **state) { (void)state; torn_span_not_kept(11); }
static void test_torn_span_not_kept_312(void **state) { (void)state; torn_span_not_kept(12); }

static void test_chain_311(void **state) { (void)state; chain(11); }
static void test_chain_312(void **state) { (void)state; chain(12); }

/* One sample of a thread whose state (at tstate, its context pointer in ts)
 * is read with the words otel_spec_iov plans, as the walker does. */
static int planned_regions;           /* otel_spec_iov's answer in the last sample */
static hm_iov planned[OTEL_SPEC_IOV];  /* and its regions */

/* Did the last sample's regions start at addr? */
static int planned_at(uint64_t addr)
{
	for (int i = 0; i < planned_regions; i++)
		if (planned[i].addr == addr)
			return 1;
	return 0;
}

/* Run while the walker reads the stack, after the regions (a span set in
 * the same context then), once. */
static void (*during_stack)(struct world *w);

static int sample_thread_at(struct world *w, uint64_t tstate, const uint8_t *ts, size_t ts_len,
			    int last, hm_pythread *th, int stack_later)
{
	hm_iov iov[OTEL_SPEC_IOV];
	int n = otel_spec_iov(w->o, tstate, iov, OTEL_SPEC_IOV);
	planned_regions = n;
	if (n > 0)
		memcpy(planned, iov, (size_t)n * sizeof iov[0]);
	if (n > 0) {
		assert_int_equal(hm_target_readv(w->t, iov, n), HM_OK);
		if (during_stack) {
			during_stack(w);
			during_stack = NULL;
		}
		/* the words again, read last (after the stack) */
		hm_iov end[OTEL_SPEC_IOV];
		int ne = otel_spec_end_iov(w->o, end, OTEL_SPEC_IOV);
		if (ne)
			assert_int_equal(hm_target_readv(w->t, end, ne), HM_OK);
		otel_spec_loaded(w->o);
		if (stack_later)          /* the walker read the stack after all */
			otel_spec_drop(w->o);
		else if (ne)
			otel_spec_end_check(w->o);
	}
	memset(th, 0, sizeof *th);
	th->tstate = tstate;
	return otel_thread_at(w->o, th, ts, ts_len, last);
}

static int sample_thread(struct world *w, uint64_t tstate, const uint8_t *ts, size_t ts_len,
			 int last, hm_pythread *th)
{
	return sample_thread_at(w, tstate, ts, ts_len, last, th, 0);
}

/* A thread state whose context is w's: its bytes up to the context
 * pointer (the length otel_thread reads). */
static size_t ts_of(const struct world *w, uint8_t ts[512])
{
	size_t len = (size_t)w->A->ts_context + 8;
	assert_true(len <= 512);
	memset(ts, 0, 512);
	memcpy(ts + w->A->ts_context, &w->ctx, 8);
	return len;
}

/* A world and a thread in it whose span was proven, then given at once 12
 * times; returns its thread state's address. */
static uint64_t settled(struct world *w, int minor, uint8_t ts[512], size_t *ts_len)
{
	build(w, minor);
	*ts_len = ts_of(w, ts);
	hm_pythread th;
	assert_int_equal(sample_thread(w, 0x7000, ts, *ts_len, 0, &th), 1);
	for (int i = 0; i < 12; i++)
		assert_int_equal(sample_thread(w, 0x7000, ts, *ts_len, 0, &th), 0);
	assert_true(th.span.span_id == SPAN_ID);
	return 0x7000;
}

/* A span set in the thread's context while its stack was read: the words
 * read before the stack still prove the old span, but the context's
 * variables, read again after the stack, moved. No span is given from
 * them: the span is read anew and proven by a second read. (The context
 * version, read after the stack too, moves only when the thread enters
 * or leaves a context.) */
static void leave_span(struct world *w)
{
	put64(w->ctx, w->A->ctx_vars, hamt_without_var(w));
}

static void set_during_stack(int minor)
{
	struct world w;
	uint8_t ts[512];
	size_t ts_len;
	uint64_t tstate = settled(&w, minor, ts, &ts_len);
	hm_pythread th;
	during_stack = leave_span;
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
	assert_true(th.span.trace_hi == 0 && th.span.trace_lo == 0 && th.span.span_id == 0);
	done(&w);
}

/* The same, for a sibling span: the reset's HAMT freed the one the words
 * saw and the next set's took its block, so ctx_vars did not move, nor
 * did the HAMT's node; the entry's new Context dict took the old one's
 * block too, but has a new version tag (and a new span). Read again with
 * its stack: no span from the words before. */
static void next_sibling(struct world *w)
{
	put32(w->sid, L->long_digit, 9);
	put64(w->dict, L->dict_used + 8, 2000);
}

static void sibling_during_stack(int minor)
{
	struct world w;
	uint8_t ts[512];
	size_t ts_len;
	uint64_t tstate = settled(&w, minor, ts, &ts_len);
	hm_pythread th;
	during_stack = next_sibling;
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 1);
	assert_true(th.span.span_id == 0);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 1, &th), 0);
	assert_true(th.span.span_id == ((SPAN_ID & ~((1ull << 30) - 1)) | 9));
	done(&w);
}

/* The same in chain mode (the thread's span changed lately, so its read
 * carries the regions of its last chains and the new chain is replayed
 * from them): a sibling span set while the stack was read leaves the
 * context's variables, the HAMT's node and the Context dict's block where
 * they were; only the dict's version tag moved. The chain replayed from
 * the regions read before the stack is not given: the words that prove it,
 * read again after the stack, disagree. */
static void sibling_during_chain(int minor)
{
	struct world w;
	uint8_t ts[512];
	size_t ts_len;
	uint64_t tstate = settled(&w, minor, ts, &ts_len), base = SPAN_ID & ~((1ull << 30) - 1);
	hm_pythread th;
	/* A new span between samples: read live, then proven; from then on
	 * the thread is in chain mode. */
	put32(w.sid, L->long_digit, 5);
	put64(w.dict, L->dict_used + 8, 1500);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 1);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 1, &th), 0);
	assert_true(th.span.span_id == (base | 5));
	put32(w.sid, L->long_digit, 6);
	put64(w.dict, L->dict_used + 8, 1501);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
	assert_true(th.span.span_id == (base | 6));     /* from the regions */
	/* Now the sibling during the stack. */
	during_stack = next_sibling;
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 1);
	assert_true(th.span.trace_hi == 0 && th.span.trace_lo == 0 && th.span.span_id == 0);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 1, &th), 0);
	assert_true(th.span.span_id == (base | 9));
	/* Unchanged during the stack: given from the regions again. */
	put32(w.sid, L->long_digit, 10);
	put64(w.dict, L->dict_used + 8, 2010);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
	assert_true(th.span.span_id == (base | 10));
	done(&w);
}

/* A thread read with its regions but not walked (off CPU), then read
 * without them (otel_spec_iov with max 0): the regions of the first read
 * must not pass for the second, whose span changed in between. */
static void regions_forgotten(int minor)
{
	struct world w;
	uint8_t ts[512];
	size_t ts_len;
	uint64_t tstate = settled(&w, minor, ts, &ts_len);
	hm_pythread th;
	hm_iov iov[OTEL_SPEC_IOV];
	int n = otel_spec_iov(w.o, tstate, iov, OTEL_SPEC_IOV);
	assert_true(n > 0);
	assert_int_equal(hm_target_readv(w.t, iov, n), HM_OK);
	otel_spec_loaded(w.o);
	/* not walked; a new span since */
	put32(w.sid, L->long_digit, 9);
	put64(w.dict, L->dict_used + 8, 1003);
	assert_int_equal(otel_spec_iov(w.o, tstate, iov, 0), 0);
	memset(&th, 0, sizeof th);
	th.tstate = tstate;
	assert_int_equal(otel_thread_at(w.o, &th, ts, ts_len, 0), 1);
	assert_true(th.span.span_id == 0);
	done(&w);
}

static void test_set_during_stack_311(void **state) { (void)state; set_during_stack(11); }
static void test_set_during_stack_312(void **state) { (void)state; set_during_stack(12); }
static void test_sibling_during_stack_311(void **state) { (void)state; sibling_during_stack(11); }
static void test_sibling_during_stack_312(void **state) { (void)state; sibling_during_stack(12); }
static void test_sibling_during_chain_311(void **state) { (void)state; sibling_during_chain(11); }
static void test_sibling_during_chain_312(void **state) { (void)state; sibling_during_chain(12); }
static void test_regions_forgotten_311(void **state) { (void)state; regions_forgotten(11); }
static void test_regions_forgotten_312(void **state) { (void)state; regions_forgotten(12); }

/* A thread's span is given only when the words proving it were read with
 * its thread state; a span found later asks for a second read; one that
 * changed again by then is torn (no span). A task's span is re-checked. */
static void thread_proof(int minor)
{
	struct world w;
	build(&w, minor);
	uint8_t ts[512];
	size_t ts_len = ts_of(&w, ts);
	uint64_t tstate = 0x7000;
	hm_pythread th;
	/* First sight: found after the stack, so not given yet. */
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 1);
	assert_true(th.span.trace_hi == 0 && th.span.trace_lo == 0 && th.span.span_id == 0);
	/* Read again with its proof: given. */
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 1, &th), 0);
	assert_true(th.span.trace_hi == TRACE_HI && th.span.span_id == SPAN_ID);
	assert_int_equal(otel_context_same(w.o, w.ctx, &th.span), 0);
	/* The span stays current: given at once (the thread leaves the
	 * chain mode of a span that changed lately, see predicted_chain). */
	for (int i = 0; i < 12; i++) {
		assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
		assert_true(th.span.span_id == SPAN_ID);
	}
	/* A new span (new dict version) since: the proof fails. */
	put32(w.sid, L->long_digit, 9);
	put64(w.dict, L->dict_used + 8, 1003);
	assert_int_equal(otel_context_same(w.o, w.ctx, &th.span), -1);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 1);
	assert_true(th.span.span_id == 0);
	/* ... and changed again before the second read: torn. */
	put32(w.sid, L->long_digit, 11);
	put64(w.dict, L->dict_used + 8, 1004);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 1, &th), 2);
	assert_true(th.span.trace_hi == 0 && th.span.trace_lo == 0 && th.span.span_id == 0);
	/* Unchanged since: given at once. */
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
	assert_true(th.span.span_id == ((SPAN_ID & ~((1ull << 30) - 1)) | 11));
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
	/* No span needs no proof. */
	put64(w.node, 40, 0x10);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
	assert_true(th.span.trace_hi == 0 && th.span.span_id == 0);
	done(&w);
}

/* A thread whose context lacks the SDK's variable (a worker thread between
 * requests): its "no span" is re-checked from the context and HAMT words
 * read with the thread state (a region or two), not by a lookup after the
 * stack; a HAMT that changed (another one, or another count) is looked up
 * anew, and a span that appears needs its proof as any other. */
static void absent_planned(int minor)
{
	struct world w;
	build(&w, minor);
	uint64_t h2 = hamt_without_var(&w);
	put64(w.ctx, w.A->ctx_vars, h2);
	uint8_t ts[512];
	size_t ts_len = ts_of(&w, ts);
	uint64_t tstate = 0x7100;
	hm_pythread th;
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
	assert_true(th.span.trace_hi == 0 && th.span.span_id == 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
		assert_true(th.span.trace_hi == 0 && th.span.span_id == 0);
		/* The words after each object's refcount: the context's
		 * type .. vars, the HAMT's type .. count (one read when on
		 * one page), not the whole objects a lookup reads. */
		assert_true(planned_regions >= 1 && planned_regions <= 2);
		assert_true(planned_at((w.ctx < h2 ? w.ctx : h2) + 8));
	}
	/* The same HAMT object with another count: looked up again. */
	put64(h2, w.A->hamt_count, 2);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
	assert_true(th.span.trace_hi == 0 && th.span.span_id == 0);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
	assert_true(planned_regions >= 1 && planned_regions <= 2);
	/* The variable is set (another HAMT): the span, once proven. */
	put64(w.ctx, w.A->ctx_vars, w.hamt);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 1);
	assert_true(th.span.span_id == 0);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 1, &th), 0);
	assert_true(th.span.trace_hi == TRACE_HI && th.span.span_id == SPAN_ID);
	/* And back to the HAMT without it: no span at once. */
	put64(w.ctx, w.A->ctx_vars, h2);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
	assert_true(th.span.trace_hi == 0 && th.span.span_id == 0);
	done(&w);
}

static void test_absent_planned_311(void **state) { (void)state; absent_planned(11); }
static void test_absent_planned_312(void **state) { (void)state; absent_planned(12); }

/* A span kept the 3.11+ way (the type's shared keys, the instance's
 * values before or beside it): its fields are read by their indexes, and a
 * span that got a dict of its own is read through that dict. */
static void managed_span(int minor)
{
	struct world w;
	build(&w, minor);
	uint64_t d, k, span_type;
	memcpy(&d, (void *)(uintptr_t)(w.span + 16), 8);
	memcpy(&k, (void *)(uintptr_t)(d + (uint64_t)L->dict_keys), 8);
	memcpy(&span_type, (void *)(uintptr_t)(w.span + (uint64_t)L->ob_type), 8);
	/* the values in the keys' entry order: _name, _context, _parent */
	uint64_t values = alloc(32), v[3];
	for (int i = 0; i < 3; i++) {
		uint64_t e = k + (uint64_t)L->dk_indices + 8;
		int esize = L->dk_size >= 0 ? L->dk_entry_size : L->dk_unicode_entry_size;
		int koff = L->dk_size >= 0 ? 8 : 0;
		memcpy(&v[i], (void *)(uintptr_t)(e + (uint64_t)(esize * i + koff + 8)), 8);
		put64(values, 8 * i, v[i]);
	}
	int64_t idx = -1;
	uint64_t key = 0;
	assert_int_equal(hm_pyobj_keys_index(&R, k, "_context", &idx, &key), 0);
	assert_int_equal(idx, 1);
	assert_true(key != 0);
	assert_int_equal(hm_pyobj_keys_index(&R, k, "nope", &idx, &key), -1);
	put64(span_type, L->tp_flags, (uint64_t)L->tpflags_managed_dict);
	put64(span_type, L->tp_dictoffset, 0);
	put64(span_type, L->ht_cached_keys, k);
	put64(w.span, 16, 0);
	if (minor == 11) {
		put64(w.span, L->inst_dict_ptr, 0);
		put64(w.span, L->inst_values_ptr, values);
	} else {
		put64(w.span, L->inst_dict_ptr, values - 1);
	}
	expect_span(&w, SPAN_ID);
	/* Read by index, not by a key scan: a renamed key goes unnoticed
	 * (shared keys only grow; this shows which path read the span). */
	int esize = L->dk_size >= 0 ? L->dk_entry_size : L->dk_unicode_entry_size;
	uint64_t ctx_key = k + (uint64_t)L->dk_indices + 8 + (uint64_t)esize +
			   (uint64_t)(L->dk_size >= 0 ? 8 : 0), old_key;
	memcpy(&old_key, (void *)(uintptr_t)ctx_key, 8);
	put64(ctx_key, 0, make_str("_xontext"));
	put64(w.dict, L->dict_used + 8, 1009);
	expect_span(&w, SPAN_ID);
	put64(ctx_key, 0, old_key);
	/* A new span in a new Context dict: its fields read again. */
	put32(w.sid, L->long_digit, 5);
	put64(w.dict, L->dict_used + 8, 1010);
	expect_span(&w, (SPAN_ID & ~((1ull << 30) - 1)) | 5);
	/* The instance got a dict of its own (values no longer used). */
	put64(values, 8, 0x10);
	put64(w.span, L->inst_dict_ptr, d);
	if (minor == 11)
		put64(w.span, L->inst_values_ptr, 0);
	put64(w.dict, L->dict_used + 8, 1011);
	expect_span(&w, (SPAN_ID & ~((1ull << 30) - 1)) | 5);
	/* The type's keys replaced: never read by the old indexes. */
	put64(w.span, L->inst_dict_ptr, minor == 11 ? 0 : values - 1);
	if (minor == 11)
		put64(w.span, L->inst_values_ptr, values);
	put64(span_type, L->ht_cached_keys, alloc(64));
	put64(w.dict, L->dict_used + 8, 1012);
	expect_none(&w);
	done(&w);
}

/* A thread whose span keeps changing gets its last chains' regions read
 * with its thread state: a new chain at those addresses (pymalloc hands a
 * new span the blocks of the last ones) is taken from that one read, with
 * no second read; a chain where an object moved is read live and needs
 * the proof read; a changed object at a predicted address that is no
 * longer what it was gives no span, never a wrong one. */
static void predicted_chain(int minor)
{
	struct world w;
	build(&w, minor);
	uint8_t ts[512];
	size_t ts_len = ts_of(&w, ts);
	uint64_t tstate = 0x7000, base = SPAN_ID & ~((1ull << 30) - 1);
	hm_pythread th;
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 1);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 1, &th), 0);
	assert_true(th.span.span_id == SPAN_ID);
	/* New spans at the same addresses: each from the first read. */
	for (uint32_t d = 21; d < 31; d++) {
		put32(w.sid, L->long_digit, d);
		put64(w.dict, L->dict_used + 8, 2000 + d);
		assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
		assert_true(th.span.trace_hi == TRACE_HI && th.span.trace_lo == TRACE_LO);
		assert_true(th.span.span_id == (base | d));
		assert_string_equal(th.span.name, "get_user_from_db");
	}
	/* The stack came in a later read than the regions: they prove
	 * nothing about it, so the span is read again with it. */
	put32(w.sid, L->long_digit, 31);
	put64(w.dict, L->dict_used + 8, 2031);
	assert_int_equal(sample_thread_at(&w, tstate, ts, ts_len, 0, &th, 1), 1);
	assert_true(th.span.trace_hi == 0 && th.span.span_id == 0);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 1, &th), 0);
	assert_true(th.span.span_id == (base | 31));
	/* The Context dict moved (a copy on a page never read): read live
	 * after the stack, so read again to prove it, then given. */
	uint64_t keys, k2, moved;
	int esize = L->dk_size >= 0 ? L->dk_entry_size : L->dk_unicode_entry_size;
	memcpy(&keys, (void *)(uintptr_t)(w.dict + (uint64_t)L->dict_keys), 8);
	alloc(8192);
	k2 = alloc((size_t)L->dk_indices + 8 + (size_t)esize);
	memcpy((void *)(uintptr_t)k2, (void *)(uintptr_t)keys, (size_t)L->dk_indices + 8 + (size_t)esize);
	moved = alloc(64);
	memcpy((void *)(uintptr_t)moved, (void *)(uintptr_t)w.dict, 64);
	put64(moved, L->dict_keys, k2);
	put64(moved, L->dict_used + 8, 3000);
	put64(w.node, 40, moved);
	put32(w.sid, L->long_digit, 40);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 1);
	assert_true(th.span.trace_hi == 0 && th.span.span_id == 0);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 1, &th), 0);
	assert_true(th.span.span_id == (base | 40));
	/* ... and from then on its new address is read with the thread. */
	put32(w.sid, L->long_digit, 41);
	put64(moved, L->dict_used + 8, 3001);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
	assert_true(th.span.span_id == (base | 41));
	/* Back at the old address (still among the regions read). */
	put64(w.node, 40, w.dict);
	put32(w.sid, L->long_digit, 42);
	put64(w.dict, L->dict_used + 8, 3002);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
	assert_true(th.span.span_id == (base | 42));
	/* Objects at predicted addresses that are no longer a span, a
	 * SpanContext, a Context dict: no span, from the first read. */
	uint64_t span_type, sc_type, dict_type;
	memcpy(&span_type, (void *)(uintptr_t)(w.span + (uint64_t)L->ob_type), 8);
	put64(w.span, L->ob_type, R.types[HM_PT_STR]);
	put64(w.dict, L->dict_used + 8, 3003);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
	assert_true(th.span.trace_hi == 0 && th.span.trace_lo == 0 && th.span.span_id == 0);
	put64(w.span, L->ob_type, span_type);
	uint64_t d16, sctx;
	memcpy(&d16, (void *)(uintptr_t)(w.span + 16), 8);
	assert_int_equal(hm_pyobj_dict_get(&R, d16, "_context", &sctx), 0);
	memcpy(&sc_type, (void *)(uintptr_t)(sctx + (uint64_t)L->ob_type), 8);
	put64(sctx, L->ob_type, R.types[HM_PT_DICT]);
	put64(w.dict, L->dict_used + 8, 3004);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
	assert_true(th.span.trace_hi == 0 && th.span.trace_lo == 0 && th.span.span_id == 0);
	put64(sctx, L->ob_type, sc_type);
	memcpy(&dict_type, (void *)(uintptr_t)(w.dict + (uint64_t)L->ob_type), 8);
	put64(w.dict, L->ob_type, R.types[HM_PT_INT]);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
	assert_true(th.span.trace_hi == 0 && th.span.trace_lo == 0 && th.span.span_id == 0);
	/* Restored: the span again, at once. */
	put64(w.dict, L->ob_type, dict_type);
	put32(w.sid, L->long_digit, 43);
	put64(w.dict, L->dict_used + 8, 3005);
	assert_int_equal(sample_thread(&w, tstate, ts, ts_len, 0, &th), 0);
	assert_true(th.span.span_id == (base | 43));
	done(&w);
}

static void test_predicted_chain_311(void **state) { (void)state; predicted_chain(11); }
static void test_predicted_chain_312(void **state) { (void)state; predicted_chain(12); }

static void test_managed_span_311(void **state) { (void)state; managed_span(11); }
static void test_managed_span_312(void **state) { (void)state; managed_span(12); }

static void test_thread_proof_311(void **state) { (void)state; thread_proof(11); }
static void test_thread_proof_312(void **state) { (void)state; thread_proof(12); }

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

/* otel_root_find (hm_python_span_root_scan, --ebpf): a trace's local root
 * span found among a thread's frames' locals, by a full pass from the root
 * end, then straight in the frames of the function that held it before;
 * another trace's root is never given. */
static uint64_t code_with_locals(int n, const char *const *names)
{
	uint64_t code = alloc(512), t = obj(HM_PT_TUPLE, (size_t)L->tuple_item + 8 * (size_t)n);
	put64(t, L->var_size, (uint64_t)n);
	for (int i = 0; i < n; i++)
		put64(t, L->tuple_item + 8 * i, make_str(names[i]));
	put64(code, L->co_localsplusnames, t);
	uint64_t kb = obj(HM_PT_BYTES, (size_t)L->bytes_sval + (size_t)n + 1);
	put64(kb, L->var_size, (uint64_t)n);
	memset((void *)(uintptr_t)(kb + (uint64_t)L->bytes_sval), 0x20, (size_t)n);  /* plain locals */
	put64(code, L->co_localspluskinds, kb);
	return code;
}

static void root_find(int minor)
{
	struct world w;
	build(&w, minor);
	const char *outer_names[] = {"scope", "current_span", "n"};
	const char *leaf_names[] = {"i"};
	uint64_t outer = code_with_locals(3, outer_names), leaf = code_with_locals(1, leaf_names);
	uint64_t f_outer = alloc((size_t)L->if_size + 24), f_leaf = alloc((size_t)L->if_size + 8);
	put64(f_outer, L->if_size, make_str("http"));
	put64(f_outer, L->if_size + 8, w.span);
	put64(f_outer, L->if_size + 16, make_int(HM_PT_INT, 3, 0));
	put64(f_leaf, L->if_size, make_int(HM_PT_INT, 7, 0));
	hm_pycode co_outer = {.addr = outer, .name = "mw", .qualname = "mw", .filename = "a.py"};
	hm_pycode co_leaf = {.addr = leaf, .name = "f", .qualname = "f", .filename = "a.py"};
	hm_pyframe frames[2] = {{.code = &co_leaf, .line = 1, .addr = f_leaf},
				{.code = &co_outer, .line = 1, .addr = f_outer}};
	hm_pythread th = {.valid = 1, .nframes = 2, .frames = frames};
	uint64_t types[2] = {0, 0};
	memcpy(&types[0], (void *)(uintptr_t)(w.span + (uint64_t)L->ob_type), 8);
	/* The sampled span: a child of the span in the locals (no parent:
	 * a local root). */
	hm_pyspan sp = {.trace_hi = TRACE_HI, .trace_lo = TRACE_LO, .span_id = 0x99,
			.name = "child", .parent_id = SPAN_ID};
	/* No function known yet: the first pass alone finds nothing. */
	assert_int_equal(otel_root_find(w.o, &th, &sp, types, 0), -1);
	/* The full pass finds it (no parent: the local root)... */
	assert_int_equal(otel_root_find(w.o, &th, &sp, types, 1), 1);
	assert_string_equal(sp.root, "get_user_from_db");
	/* ... and then it is known. */
	sp.root[0] = 0;
	assert_int_equal(otel_root_find(w.o, &th, &sp, types, 0), 0);
	assert_string_equal(sp.root, "get_user_from_db");
	/* Another trace: its root is not this span. */
	sp.root[0] = 0;
	sp.trace_hi ^= 1;
	assert_int_equal(otel_root_find(w.o, &th, &sp, types, 1), -2);
	assert_string_equal(sp.root, "");
	sp.trace_hi ^= 1;
	/* The same trace, but a child of another span (another local root of
	 * the trace: a client called two endpoints in one trace): not this
	 * root, though it is in the function that held a root (first pass)
	 * and in the frames (full). */
	sp.root[0] = 0;
	sp.parent_id = SPAN_ID ^ 4;
	assert_int_equal(otel_root_find(w.o, &th, &sp, types, 0), -1);
	assert_int_equal(otel_root_find(w.o, &th, &sp, types, 1), -2);
	assert_string_equal(sp.root, "");
	/* A grandchild whose parent was seen as a child of that root: the
	 * root, through the parent. */
	hm_pyspan mid = {.trace_hi = TRACE_HI, .trace_lo = TRACE_LO, .span_id = 0x77,
			 .name = "mid", .parent_id = SPAN_ID};
	otel_span_note(w.o, &mid);
	assert_string_equal(mid.root, "get_user_from_db");
	hm_pyspan lf = {.trace_hi = TRACE_HI, .trace_lo = TRACE_LO, .span_id = 0x78,
			  .name = "leaf", .parent_id = 0x77};
	otel_span_note(w.o, &lf);
	assert_string_equal(lf.root, "get_user_from_db");
	/* Not a span class the reader was given: never looked at. */
	put64(f_outer, L->if_size + 8, make_str("not a span"));
	sp.root[0] = 0;
	sp.parent_id = SPAN_ID ^ 8;
	assert_int_equal(otel_root_find(w.o, &th, &sp, types, 1), -2);
	/* The function where the root was found is the one hint (for the
	 * kernel side), and a frame of it named alone (otel_root_at, no
	 * walk) gives the root of a span's child from its locals: here the
	 * same span object, now with another span id. */
	uint64_t codes[4];
	int idx[4];
	assert_int_equal(otel_root_hints(w.o, codes, idx, 4), 1);
	assert_true(codes[0] == outer && idx[0] == 1);     /* current_span */
	put64(f_outer, L->if_size + 8, w.span);
	put32(w.sid, L->long_digit, 7);
	uint64_t sid = (SPAN_ID & ~((1ull << 30) - 1)) | 7;
	hm_pyspan nt = {.trace_hi = TRACE_HI, .trace_lo = TRACE_LO, .span_id = 0x55,
			.name = "child", .parent_id = sid};
	assert_int_equal(otel_root_at(w.o, f_leaf, leaf, &nt, types), -1);    /* no root held there */
	assert_int_equal(otel_root_at(w.o, 0, outer, &nt, types), -1);
	assert_string_equal(nt.root, "");
	assert_int_equal(otel_root_at(w.o, f_outer, outer, &nt, types), 0);
	assert_string_equal(nt.root, "get_user_from_db");
	/* A child in another trace: that span is no root of it. */
	put32(w.sid, L->long_digit, 9);
	hm_pyspan ot = {.trace_hi = TRACE_HI ^ 2, .trace_lo = TRACE_LO, .span_id = 0x56,
			.name = "child", .parent_id = (SPAN_ID & ~((1ull << 30) - 1)) | 9};
	assert_int_equal(otel_root_at(w.o, f_outer, outer, &ot, types), -1);
	assert_string_equal(ot.root, "");
	/* A root found in another local of that function (a trace with two
	 * local roots bound in one frame): the kernel side is given both
	 * locals of it, the newest first. */
	put64(f_outer, L->if_size + 8, make_str("x"));
	put64(f_outer, L->if_size + 16, w.span);
	put32(w.sid, L->long_digit, 11);
	hm_pyspan tw = {.trace_hi = TRACE_HI, .trace_lo = TRACE_LO, .span_id = 0x57,
			.name = "child", .parent_id = (SPAN_ID & ~((1ull << 30) - 1)) | 11};
	assert_true(otel_root_find(w.o, &th, &tw, types, 1) >= 0);
	assert_string_equal(tw.root, "get_user_from_db");
	assert_int_equal(otel_root_hints(w.o, codes, idx, 4), 2);
	assert_true(codes[0] == outer && idx[0] == 2);     /* n */
	assert_true(codes[1] == outer && idx[1] == 1);     /* current_span */
	done(&w);
}

/* A thread whose stack holds no root (a sync route's worker thread) gets
 * its trace's root from an asyncio task whose current span is that root
 * (the event loop's task awaiting the worker); a task running another
 * trace gives none; a trace looked for in vain is not looked for again;
 * looks through the tasks are rate limited (a burst of 10, then one per
 * 1/30 s), and a look denied is made at the trace's next sample. */
struct task_src {
	uint64_t ctx;
	int calls;
};

static int task_contexts(void *ctx, uint64_t *out, int max)
{
	struct task_src *src = ctx;
	src->calls++;
	if (!src->ctx || max < 1)
		return 0;
	out[0] = src->ctx;
	return 1;
}

static hm_pythread *child_of(hm_pythread *th, uint64_t hi, uint64_t lo)
{
	memset(th, 0, sizeof *th);
	th->valid = 1;
	th->tstate = 0x1000;          /* no frames, no thread slot */
	th->span.trace_hi = hi;
	th->span.trace_lo = lo;
	th->span.span_id = 0x99;
	th->span.parent_id = SPAN_ID;
	snprintf(th->span.name, sizeof th->span.name, "child");
	return th;
}

static void root_from_task(int minor)
{
	struct world w;
	build(&w, minor);
	struct task_src src = {w.ctx, 0};
	otel_set_task_contexts(w.o, task_contexts, &src);
	hm_pythread th;
	/* The task's span is the root of another trace: none. */
	otel_thread_root(w.o, child_of(&th, TRACE_HI ^ 1, TRACE_LO));
	assert_int_equal(src.calls, 1);
	assert_string_equal(th.span.root, "");
	/* That trace was looked for: not again. */
	otel_thread_root(w.o, child_of(&th, TRACE_HI ^ 1, TRACE_LO));
	assert_int_equal(src.calls, 1);
	assert_string_equal(th.span.root, "");
	/* The task's trace, but the child of another span: not that root. */
	child_of(&th, TRACE_HI, TRACE_LO)->span.parent_id = SPAN_ID ^ 4;
	otel_thread_root(w.o, &th);
	assert_int_equal(src.calls, 2);
	assert_string_equal(th.span.root, "");
	/* The task's span's child: its root, learnt from the task's span. */
	otel_thread_root(w.o, child_of(&th, TRACE_HI, TRACE_LO));
	assert_int_equal(src.calls, 2);
	assert_string_equal(th.span.root, "get_user_from_db");
	/* Known now: a thread's span of that trace carries it as read. */
	hm_pyspan sp;
	assert_int_equal(otel_context_span(w.o, w.ctx, &sp), 0);
	assert_string_equal(sp.root, "get_user_from_db");
	assert_int_equal(src.calls, 2);
	/* Rate limit: 40 new traces in a row get at most the burst's looks
	 * plus one per 1/30 s elapsed. */
	src.ctx = 0;
	src.calls = 0;
	uint64_t t0 = hm_mono_ns();
	for (uint64_t k = 0; k < 40; k++)
		otel_thread_root(w.o, child_of(&th, TRACE_HI ^ (2 + k), TRACE_LO));
	uint64_t looks_max = 10 + (hm_mono_ns() - t0) / (1000000000ull / 30) + 1;
	assert_true(src.calls >= 1 && (uint64_t)src.calls <= looks_max);
	assert_true(src.calls < 40 || looks_max >= 40);
	done(&w);
}

/* A look through many tasks reads their contexts' chains in turns, a
 * batch of them at a time (contexts_spans): the root is learnt from the
 * last of 20 tasks' contexts, past contexts without the SDK's variable,
 * one unmapped and one that is no context, and the same look read the
 * others right (a later look at them alone finds them cached: no span). */
struct many_src {
	uint64_t ctxs[20];
	int n, calls;
};

static int many_contexts(void *ctx, uint64_t *out, int max)
{
	struct many_src *src = ctx;
	src->calls++;
	int n = src->n < max ? src->n : max;
	memcpy(out, src->ctxs, (size_t)n * 8);
	return n;
}

static void root_from_many_tasks(int minor)
{
	struct world w;
	build(&w, minor);
	struct many_src src = {.n = 20};
	uint64_t ctype;
	memcpy(&ctype, (void *)(uintptr_t)(w.ctx + (uint64_t)L->ob_type), 8);
	for (int i = 0; i < 19; i++) {
		uint64_t c = alloc(64);
		put64(c, L->ob_type, ctype);
		put64(c, w.A->ctx_vars, hamt_without_var(&w));
		src.ctxs[i] = c;
	}
	src.ctxs[7] = 0x10000;                /* unmapped */
	src.ctxs[11] = w.node;                /* not a context */
	src.ctxs[19] = w.ctx;
	otel_set_task_contexts(w.o, many_contexts, &src);
	hm_pythread th;
	otel_thread_root(w.o, child_of(&th, TRACE_HI, TRACE_LO));
	assert_int_equal(src.calls, 1);
	assert_string_equal(th.span.root, "get_user_from_db");
	/* Every context of the look gives what it holds when read alone. */
	hm_pyspan sp;
	for (int i = 0; i < 19; i++) {
		otel_context_span(w.o, src.ctxs[i], &sp);
		assert_true(!sp.trace_hi && !sp.trace_lo && !sp.span_id);
	}
	expect_span(&w, SPAN_ID);
	done(&w);
}

static void test_root_from_many_tasks_311(void **state) { (void)state; root_from_many_tasks(11); }
static void test_root_from_many_tasks_312(void **state) { (void)state; root_from_many_tasks(12); }

static void test_root_from_task_311(void **state) { (void)state; root_from_task(11); }
static void test_root_from_task_312(void **state) { (void)state; root_from_task(12); }

static void test_root_find_311(void **state) { (void)state; root_find(11); }
static void test_root_find_312(void **state) { (void)state; root_find(12); }

static int str_reads;

static int counting_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	str_reads++;
	return arena_read(ctx, addr, buf, len);
}

/* otel_str_snapshot (a span name the kernel named, read by user space):
 * the text and the head the kernel's check is computed from; a name that
 * fits in the first BLK bytes of its object costs two reads (the block,
 * then the head again), a longer one reads its tail live, and an object
 * whose block would run past readable memory is read without it. Not a
 * str, or unreadable: -1. */
static void str_snapshot(int minor)
{
	struct world w;
	build(&w, minor);
	hm_target *t;
	assert_int_equal(hm_target_open_mem(counting_read, NULL, &t), HM_OK);
	struct otel_setup s;
	memset(&s, 0, sizeof s);
	s.layout = L;
	s.t = t;
	memcpy(s.types, R.types, sizeof s.types);
	s.ctx_type = make_type("Context");
	s.var_type = make_type("ContextVar");
	s.var = w.var;
	s.var_hash = VAR_HASH;
	s.span_key = make_str("current-span-0f0e");
	hm_otel *o = otel_open_setup(&s);
	assert_non_null(o);
	char longname[400], buf[512];
	for (int i = 0; i < 399; i++)
		longname[i] = (char)('a' + i % 26);
	longname[399] = 0;
	const char *names[] = {"GET", "GET /api/users/{user_id} http send", longname};
	for (int i = 0; i < 3; i++) {
		uint64_t a = make_str(names[i]);
		uint8_t head[48], raw[HM_PYSTR_RAW], want[HM_PYSTR_RAW] = {0};
		str_reads = 0;
		assert_int_equal(otel_str_snapshot(o, a, head, raw, buf, sizeof buf), 0);
		assert_string_equal(buf, names[i]);
		assert_memory_equal(head, (void *)(uintptr_t)(a + 8), 48);
		/* the text's first HM_PYSTR_RAW bytes, zeros after a shorter one */
		memcpy(want, names[i], strlen(names[i]) < HM_PYSTR_RAW ? strlen(names[i]) : HM_PYSTR_RAW);
		assert_memory_equal(raw, want, HM_PYSTR_RAW);
		if (i < 2)
			assert_int_equal(str_reads, 2);
		else
			assert_true(str_reads >= 3);
	}
	/* a short str at the very end of the arena: its block is cut */
	used = sizeof arena - 64;      /* its head (56 bytes) readable, not 256 */
	uint64_t last = make_str("db.q");
	assert_true(last + 256 > (uint64_t)(uintptr_t)arena + sizeof arena);
	uint8_t head[48], raw[HM_PYSTR_RAW];
	assert_int_equal(otel_str_snapshot(o, last, head, raw, buf, sizeof buf), 0);
	assert_string_equal(buf, "db.q");
	/* not a str; unreadable */
	assert_int_equal(otel_str_snapshot(o, w.sid, head, raw, buf, sizeof buf), -1);
	assert_int_equal(otel_str_snapshot(o, 0x1000, head, raw, buf, sizeof buf), -1);
	otel_close(o);
	hm_target_close(t);
	done(&w);
}

static void test_str_snapshot_311(void **state) { (void)state; str_snapshot(11); }
static void test_str_snapshot_312(void **state) { (void)state; str_snapshot(12); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_str_snapshot_311),
		cmocka_unit_test(test_str_snapshot_312),
		cmocka_unit_test(test_chain_311),
		cmocka_unit_test(test_torn_span_not_kept_311),
		cmocka_unit_test(test_set_during_stack_311),
		cmocka_unit_test(test_set_during_stack_312),
		cmocka_unit_test(test_sibling_during_stack_311),
		cmocka_unit_test(test_sibling_during_stack_312),
		cmocka_unit_test(test_sibling_during_chain_311),
		cmocka_unit_test(test_sibling_during_chain_312),
		cmocka_unit_test(test_regions_forgotten_311),
		cmocka_unit_test(test_regions_forgotten_312),
		cmocka_unit_test(test_torn_span_not_kept_312),
		cmocka_unit_test(test_chain_312),
		cmocka_unit_test(test_managed_span_311),
		cmocka_unit_test(test_managed_span_312),
		cmocka_unit_test(test_thread_proof_311),
		cmocka_unit_test(test_absent_planned_311),
		cmocka_unit_test(test_absent_planned_312),
		cmocka_unit_test(test_thread_proof_312),
		cmocka_unit_test(test_predicted_chain_311),
		cmocka_unit_test(test_predicted_chain_312),
		cmocka_unit_test(test_hamt_nodes),
		cmocka_unit_test(test_root_from_many_tasks_311),
		cmocka_unit_test(test_root_from_many_tasks_312),
		cmocka_unit_test(test_root_find_311),
		cmocka_unit_test(test_root_find_312),
		cmocka_unit_test(test_root_from_task_311),
		cmocka_unit_test(test_root_from_task_312),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
