/* fuzz_otel.c - the OpenTelemetry span reader (lib/python/otel.c) fed
 * hostile "remote" memory: the HAMT walk, the Context dict, the span's
 * attributes, its SpanContext and ids, and the one-call re-check of a cached
 * answer.
 *
 * Input: a mode byte, then data. Mode bit 0 clear: the data is the memory,
 * served at BASE (zeros after it up to 1 MiB, the rest unmapped), type
 * objects at fixed addresses outside it (compared, never read); the context
 * at BASE + 16 is read twice and the HAMT there searched directly. Bit 0
 * set: a valid context is built (tests/unit/otel_world.h, the 3.11 or 3.12
 * layout by bit 1), its span read once (so the answer is cached), then the
 * data patches it - each 3 bytes an offset into the built objects and a byte
 * to store - and it is read again twice: torn and garbage objects next to a
 * real chain, where the deep paths are, with no seed files needed. Each
 * read also looks through nine "tasks" (the context and its neighbours)
 * for a trace's root, their chains read in turns from blocks. Whatever
 * the bytes, the reader must not crash, and a span it reports has ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "base/error.h"
#include "proc/target.h"
#include "python/layouts/async_layouts.h"
#include "python/layouts/layouts.h"
#include "python/otel.h"
#include "python/pylayout.h"
#include "python/pyobj.h"

#define assert_true(c) FUZZ_ASSERT(c)
#define assert_non_null(p) FUZZ_ASSERT((p) != NULL)
#define assert_int_equal(a, b) FUZZ_ASSERT((a) == (b))
#include "../unit/otel_world.h"

#define BASE 0x10000ull
#define VIRT (1u << 20)
#define TYPES 0x7000ull

static const hm_pylayout *const layouts[] = {
	&hm_pylayout_py38, &hm_pylayout_py39, &hm_pylayout_py310,
	&hm_pylayout_py311, &hm_pylayout_py312, &hm_pylayout_py313,
};
#define NLAYOUTS (sizeof layouts / sizeof layouts[0])

/* The contexts of a look through "tasks" (otel_root_in_tasks): more than
 * one batch of chains read in turns. */
static uint64_t task_ctxs[9];

static int tasks_of(void *unused, uint64_t *out, int max)
{
	(void)unused;
	int n = max < 9 ? max : 9;
	memcpy(out, task_ctxs, (size_t)n * 8);
	return n;
}

static void read_twice(hm_otel *o, hm_target *t, int minor, uint64_t ctx)
{
	for (int i = 0; i < 9; i++)
		task_ctxs[i] = i % 3 == 0 ? ctx : ctx + 64 * (uint64_t)i;
	otel_set_task_contexts(o, tasks_of, NULL);
	hm_pyspan child = {.trace_hi = TRACE_HI, .trace_lo = TRACE_LO, .span_id = 0x99,
			   .parent_id = SPAN_ID};
	otel_root_in_tasks(o, &child);
	FUZZ_ASSERT(memchr(child.root, 0, sizeof child.root) != NULL);
	for (int k = 0; k < 2; k++) {
		hm_pyspan sp;
		if (otel_context_span(o, ctx, &sp) == 0 && (sp.trace_hi || sp.trace_lo)) {
			FUZZ_ASSERT(sp.span_id != 0);
			otel_context_same(o, ctx, &sp);
		}
		FUZZ_ASSERT(memchr(sp.name, 0, sizeof sp.name) != NULL);
		FUZZ_ASSERT(memchr(sp.root, 0, sizeof sp.root) != NULL);
	}
	/* As a thread's context: the words that prove its span, read, then
	 * the thread's span (given only when they prove it). */
	static const hm_pyasync_layout *const alayouts[] = {
		&hm_pyasync_layout_py38, &hm_pyasync_layout_py39, &hm_pyasync_layout_py310,
		&hm_pyasync_layout_py311, &hm_pyasync_layout_py312, &hm_pyasync_layout_py313,
	};
	if (minor < 8 || minor > 13)
		return;
	const hm_pyasync_layout *A = alayouts[minor - 8];
	uint8_t ts[1024];
	size_t need = otel_ts_need(3, minor);
	if (need > sizeof ts || A->ts_context < 0 || (size_t)A->ts_context + 8 > need)
		return;
	memset(ts, 0, sizeof ts);
	memcpy(ts + A->ts_context, &ctx, 8);
	hm_pythread th;
	memset(&th, 0, sizeof th);
	th.tstate = BASE;
	for (int k = 0; k < 3; k++) {
		hm_iov iov[16];
		int n = otel_spec_iov(o, th.tstate, iov, 16);
		if (n > 0 && hm_target_readv(t, iov, n) == HM_OK)
			otel_spec_loaded(o);
		int rc = otel_thread_at(o, &th, ts, need, k == 2);
		FUZZ_ASSERT(rc >= 0 && rc <= 2);
		if (rc)
			FUZZ_ASSERT(!th.span.trace_hi && !th.span.trace_lo && !th.span.span_id);
	}
}

static void random_memory(const uint8_t *data, size_t size)
{
	struct fuzz_mem m = {data + 1, size - 1, BASE, VIRT};
	hm_target *t = NULL;
	if (hm_target_open_mem(fuzz_mem_read, &m, &t) != HM_OK)
		return;
	struct otel_setup s;
	memset(&s, 0, sizeof s);
	s.layout = layouts[(data[0] >> 2) % NLAYOUTS];
	s.t = t;
	for (int i = 0; i < HM_PT_COUNT; i++)
		s.types[i] = TYPES + 0x40 * (uint64_t)i;
	s.ctx_type = TYPES + 0x800;
	s.var_type = TYPES + 0x840;
	s.var = BASE + 0x100;
	s.var_hash = 0x123456789abcdefll;
	s.span_key = BASE + 0x200;
	hm_otel *o = otel_open_setup(&s);
	if (o) {
		read_twice(o, t, s.layout->minor, BASE + 16);
		/* a span name the kernel named (otel_str_snapshot): a str's
		 * text, or -1 */
		uint8_t head[48], raw[HM_PYSTR_RAW];
		char name[300];
		for (uint64_t a = BASE + 16; a < BASE + 16 + 4 * 0x38; a += 0x38)
			if (otel_str_snapshot(o, a, head, raw, name, sizeof name) == 0)
				FUZZ_ASSERT(memchr(name, 0, sizeof name) != NULL);
		otel_close(o);
	}
	uint64_t types[3] = {TYPES + 0x900, TYPES + 0x940, TYPES + 0x980}, v = 0;
	otel_hamt_find(fuzz_mem_read, &m, types, BASE + 16, BASE + 0x100, 42, &v);
	hm_target_close(t);
}

static void patched_world(const uint8_t *data, size_t size)
{
	struct world w;
	build(&w, data[0] & 2 ? 12 : 11);
	read_twice(w.o, w.t, data[0] & 2 ? 12 : 11, w.ctx);
	for (size_t i = 1; i + 3 <= size; i += 3) {
		size_t off = ((size_t)data[i] | (size_t)data[i + 1] << 8) % (used ? used : 1);
		arena[off] = data[i + 2];
	}
	read_twice(w.o, w.t, data[0] & 2 ? 12 : 11, w.ctx);
	uint64_t v = 0;
	otel_hamt_find(arena_read, NULL, w.types, w.node, w.var, VAR_HASH, &v);
	done(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		patched_world(data, size);
	else
		random_memory(data, size);
	return 0;
}
