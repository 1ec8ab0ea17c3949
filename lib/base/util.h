/* util.h - small helpers shared inside libhomura: the base helpers
 * (clocks, the jitter generator: base/base.h), unaligned loads from
 * bytes copied out of a target and a token bucket. Private to the library. */
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

/* A token bucket of `burst` tokens, one more every `per` ns, kept as the
 * time *t_ns (0 initially) its tokens were spent up to: 1 and one taken,
 * or 0 (none left). */
static inline int hm_token_take(uint64_t *t_ns, uint64_t now, uint64_t per, unsigned burst)
{
	if (*t_ns + per > now)
		return 0;
	*t_ns = now - *t_ns > burst * per ? now - (burst - 1) * per : *t_ns + per;
	return 1;
}

#endif
