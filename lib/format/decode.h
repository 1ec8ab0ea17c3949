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
