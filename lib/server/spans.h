/* spans.h - OpenTelemetry spans in the server's store (server/spans.c).
 *
 * Trace and span ids are high-cardinality, so they never become series
 * labels. A profile that carries spans is stored as sent and, besides, its
 * samples taken inside spans go to one series per span name: the profile
 * type with "_spans" appended ("process_cpu_spans") and the same labels plus
 * span_name="NAME" (span names are few: endpoints, functions). In those
 * series each stack starts with two pseudo frames, "trace: <32 hex>" and
 * "span: <16 hex>", so that a trace or a span stays searchable in the flame
 * graph (/api/v1/flamegraph's trace_id=, span_id= and focus= arguments)
 * while the store keeps its frames and stacks once each. Queries of the
 * plain type never see these series. */
#ifndef HOMURA_SERVER_SPANS_H
#define HOMURA_SERVER_SPANS_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define HM_SPAN_TYPE_SUFFIX "_spans"
#define HM_SPAN_MAX_NAMES 64        /* span-name series per profile; more: "<other>" */

/* The span series of v[0..n): *out (malloc'd, with everything it points
 * to; free with hm_span_reqs_free) gets *nout extra put requests. HM_OK
 * (maybe none) or HM_ENOMEM. */
int hm_span_reqs(const hm_store_put_req *v, size_t n, hm_store_put_req **out, size_t *nout);
void hm_span_reqs_free(hm_store_put_req *v, size_t n);

/* Of a span series' merged profile: the samples of one trace and/or one
 * span (32 / 16 hex digits; NULL: any). HM_EINVAL for a malformed id. */
int hm_span_filter(const hm_profile *p, const char *trace_id, const char *span_id,
		   hm_profile **out);

/* Of a span series' merged profile: the samples taken in any of the spans
 * ids[0..n) (16 hex digits each; n 0: in any span), with their stacks
 * without the two pseudo frames (the span profile of Pyroscope's
 * SelectMergeSpanProfile). HM_EINVAL for a malformed id or more than
 * HM_SPAN_SELECT_MAX of them. */
#define HM_SPAN_SELECT_MAX 4096
int hm_span_select(const hm_profile *p, char *const *ids, size_t n, hm_profile **out);

/* The traces that spent the most time in a function (exact name, anywhere
 * on the stack): at most max, largest first. */
typedef struct hm_span_trace_total {
	char trace_id[33];
	int64_t count, weight_ns;
} hm_span_trace_total;
int hm_span_top_traces(const hm_profile *p, const char *function, hm_span_trace_total *out,
		       size_t max, size_t *nout);

#endif
