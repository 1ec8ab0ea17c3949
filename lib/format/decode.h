/* decode.h - private: the per-format readers behind hm_profile_read. */
#ifndef HOMURA_DECODE_H
#define HOMURA_DECODE_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>
#include "base/profile.h"

int hm_decode_collapsed(const char *buf, size_t len, hm_profile **out);
int hm_decode_speedscope(json_t *root, hm_profile **out);
int hm_decode_otlp_json(json_t *root, hm_profile **out);
/* Binary protobuf; return 1 (no message set) when the bytes are not this
 * message type, so the caller may try the next. */
int hm_decode_pprof(const unsigned char *buf, size_t len, hm_profile **out);
int hm_decode_otlp(const unsigned char *buf, size_t len, hm_profile **out);

/* pprof read into several profiles (decode_pprof.c). A plan sees the sample
 * types (at most HM_PPROF_MAX_PARTS) and the period type and picks up to max
 * (count index, weight index) pairs of sample values (-1: value 0); each
 * pair gives one profile per distinct set of per-sample string labels when
 * group_labels is set (thread and span/trace/profile id labels excluded; at
 * most HM_PPROF_MAX_LABEL_KEYS keys, HM_PPROF_MAX_LABEL_VALUES values per
 * key, then HM_PPROF_OTHER_VALUE). Returns the number of pairs or < 0. */
#define HM_PPROF_MAX_PARTS 8
#define HM_PPROF_MAX_LABEL_KEYS 4
#define HM_PPROF_MAX_LABEL_VALUES 16
#define HM_PPROF_OTHER_VALUE "_other"
typedef struct hm_pprof_vt {
	const char *type, *unit;
} hm_pprof_vt;
typedef int (*hm_pprof_plan_fn)(void *arg, const hm_pprof_vt *st, size_t n, hm_pprof_vt period,
				int (*pairs)[2], int max);
typedef struct hm_pprof_part {
	int pair;                  /* index into the plan's pairs */
	uint32_t nlabels;          /* the per-sample labels of this part */
	char *keys[HM_PPROF_MAX_LABEL_KEYS], *values[HM_PPROF_MAX_LABEL_KEYS];
	hm_profile *p;
} hm_pprof_part;
typedef struct hm_pprof_split {
	int group_labels;          /* in: split by per-sample labels */
	hm_pprof_part *v;
	size_t n;
} hm_pprof_split;
/* buf is an inflated pprof; HM_EINVAL + message on bad input. */
int hm_decode_pprof_split(const unsigned char *buf, size_t len, hm_pprof_plan_fn plan,
			  void *plan_arg, hm_pprof_split *out);
void hm_pprof_split_free(hm_pprof_split *s);
/* OTLP (binary request) read into one part per set of sample attributes
 * (thread and span/trace/profile ids excluded), pair 0, with the same caps;
 * 1 when the bytes are not an OTLP request. */
int hm_decode_otlp_split(const unsigned char *buf, size_t len, hm_pprof_split *out);
/* Nonzero for a per-sample label key that may become a series label. */
int hm_decode_label_key_ok(const char *key);

/* Limits on what decoding one message may cost (pbscan.c): entries of one
 * repeated field, elements in the whole message tree, nesting, and the
 * memory protobuf-c would allocate; values in a JSON text; frames of all
 * the stacks a pprof/OTLP profile expands to (many samples of a location
 * with many inlined lines). A message past
 * them is refused before it is decoded ("over the decoding limit"). */
#define HM_PB_MAX_REPEATED (1ull << 20)
#define HM_PB_MAX_ELEMENTS (1ull << 23)
#define HM_PB_MAX_DEPTH 64ull
#define HM_PB_MAX_MEMORY (512ull << 20)
#define HM_JSON_MAX_VALUES (1ull << 22)
#define HM_PB_MAX_FRAMES (1ull << 27)    /* frames of all stacks of a profile */
int hm_pb_check(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
		const char *what, uint64_t max_unknown);
/* max_unknown: 0, or past that many unknown fields in the outermost message
 * return 1 (the bytes are not this message type) */
int hm_json_check(const char *buf, size_t len, const char *what);

#endif
