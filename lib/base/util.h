/* util.h - small helpers shared inside libhomura: the base helpers
 * (clocks, the jitter generator: base/base.h) and unaligned loads from
 * bytes copied out of a target. Private to the library. */
#ifndef HOMURA_UTIL_H
#define HOMURA_UTIL_H

#include <stdint.h>
#include <string.h>

#include "base/base.h"

/* Loads at a byte offset of a buffer read from the target. */
static inline uint64_t hm_ld_u64(const uint8_t *b, int off)
{
	uint64_t v;
	memcpy(&v, b + off, 8);
	return v;
}

static inline int64_t hm_ld_i64(const uint8_t *b, int off)
{
	int64_t v;
	memcpy(&v, b + off, 8);
	return v;
}

static inline int32_t hm_ld_i32(const uint8_t *b, int off)
{
	int32_t v;
	memcpy(&v, b + off, 4);
	return v;
}

#endif
