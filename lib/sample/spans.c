/* spans.c - a sampled thread's or task's OpenTelemetry span (hm_pyspan,
 * read by python/otel.c) as a profile span id, for the stack builders
 * (hm_sampler_add_thread, hm_sampler_add_native, the asyncio stacks). */
#include <string.h>

#include "base/profile.h"
#include "sample/sampler.h"

uint32_t hm_sampler_span(hm_profile *p, const hm_pyspan *s)
{
	if (!s || (!s->trace_hi && !s->trace_lo))
		return 0;
	hm_span_ref r;
	memset(&r, 0, sizeof r);
	r.trace_hi = s->trace_hi;
	r.trace_lo = s->trace_lo;
	r.span_id = s->span_id;
	r.name = hm_profile_intern_cstr(p, s->name);
	r.root = hm_profile_intern_cstr(p, s->root);
	return hm_profile_span_id(p, &r);
}
