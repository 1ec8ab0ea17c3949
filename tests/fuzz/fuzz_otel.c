/* fuzz_otel.c - the OpenTelemetry span reader (lib/python/otel.c) fed random
 * "remote" memory: the HAMT walk, the Context dict, the span's attributes,
 * its SpanContext and ids, and the one-call re-check of a cached answer.
 *
 * Input: a layout byte (3.8 .. 3.13 tables), then the memory, served at BASE
 * (zeros after it up to 1 MiB, the rest unmapped). Type objects sit at fixed
 * addresses outside it (compared, never read); the context is read at BASE +
 * 16, twice (the second time through the cache), and the HAMT rooted at
 * BASE + 16 is searched directly. Whatever the bytes, the reader must not
 * crash, and a span it reports has ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proc/target.h"
#include "python/layouts/layouts.h"
#include "python/otel.h"
#include "python/pyobj.h"

#define BASE 0x10000ull
#define VIRT (1u << 20)
#define TYPES 0x7000ull

static const hm_pylayout *const layouts[] = {
	&hm_pylayout_py38, &hm_pylayout_py39, &hm_pylayout_py310,
	&hm_pylayout_py311, &hm_pylayout_py312, &hm_pylayout_py313,
};
#define NLAYOUTS (sizeof layouts / sizeof layouts[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct fuzz_mem m = {data + 1, size - 1, BASE, VIRT};
	hm_target *t = NULL;
	if (hm_target_open_mem(fuzz_mem_read, &m, &t) != HM_OK)
		return 0;
	struct otel_setup s;
	memset(&s, 0, sizeof s);
	s.layout = layouts[data[0] % NLAYOUTS];
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
		for (int k = 0; k < 2; k++) {
			hm_pyspan sp;
			if (otel_context_span(o, BASE + 16, &sp) == 0 && (sp.trace_hi || sp.trace_lo))
				FUZZ_ASSERT(sp.span_id != 0);
			FUZZ_ASSERT(memchr(sp.name, 0, sizeof sp.name) != NULL);
			FUZZ_ASSERT(memchr(sp.root, 0, sizeof sp.root) != NULL);
		}
		otel_close(o);
	}
	uint64_t types[3] = {TYPES + 0x900, TYPES + 0x940, TYPES + 0x980}, v = 0;
	otel_hamt_find(fuzz_mem_read, &m, types, BASE + 16, BASE + 0x100, 42, &v);
	hm_target_close(t);
	return 0;
}
