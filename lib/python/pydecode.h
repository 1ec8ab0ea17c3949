/* pydecode.h - pure decoders for CPython data copied out of a target:
 * line tables of every format and string objects. No process access here,
 * so they are unit-tested on bytes alone. */
#ifndef HOMURA_PYDECODE_H
#define HOMURA_PYDECODE_H

#include <stddef.h>
#include <stdint.h>

/* Line for the instruction at byte offset `offset` of a code object whose
 * table is `tab` (kind: enum hm_linetable_kind). Returns the line, or
 * `firstlineno` when the offset has no line; never reads past len. */
int hm_line_for_offset(int kind, const uint8_t *tab, size_t len, int firstlineno,
		       uint32_t offset);

/* Append the UTF-8 encoding of n code points of `kind` (1, 2 or 4 bytes
 * each) from data into out (cap bytes, NUL-terminated, truncated cleanly on a
 * character boundary). Invalid code points (surrogates, > 0x10FFFF) become
 * U+FFFD. Returns the number of bytes written (without the NUL). */
size_t hm_ucs_to_utf8(int kind, const void *data, size_t n, char *out, size_t cap);

#endif
