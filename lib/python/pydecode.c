/* pydecode.c - line tables and string decoding for CPython objects.
 *
 * Line tables, by version (formats from CPython's Objects/lnotab_notes.txt and
 * Objects/locations.md, re-implemented here):
 *  - 2.7-3.5 co_lnotab: pairs (address increment, unsigned line increment);
 *  - 3.6-3.9 co_lnotab: same, line increment is a signed byte;
 *  - 3.10 co_linetable: pairs (byte-range length, signed line delta), delta
 *    -128 meaning "no line" for that range;
 *  - 3.11+ location table: entries whose first byte has bit 7 set, code in
 *    bits 3-6, length-1 (in code units) in bits 0-2, then code-specific
 *    varints giving the line delta. */
#include <string.h>

#include "python/pydecode.h"
#include "python/pylayout.h"

static int lnotab_line(const uint8_t *tab, size_t len, int line, uint32_t offset, int signed_incr)
{
	uint32_t addr = 0;
	for (size_t i = 0; i + 1 < len; i += 2) {
		addr += tab[i];
		if (addr > offset)
			break;
		line += signed_incr ? (int8_t)tab[i + 1] : tab[i + 1];
	}
	return line;
}

static int linetable310_line(const uint8_t *tab, size_t len, int line, uint32_t offset)
{
	uint32_t start = 0;
	for (size_t i = 0; i + 1 < len; i += 2) {
		uint32_t end = start + tab[i];
		int8_t delta = (int8_t)tab[i + 1];
		if (delta != -128)
			line += delta;
		if (offset >= start && offset < end)
			return delta == -128 ? -1 : line;
		start = end;
	}
	return -1;
}

/* Unsigned varint of the location table: 6-bit groups, bit 6 = continue. */
static int read_varint(const uint8_t *tab, size_t len, size_t *i, uint32_t *out)
{
	uint32_t v = 0;
	unsigned shift = 0;
	for (;;) {
		if (*i >= len || shift > 30)
			return -1;
		uint8_t b = tab[(*i)++];
		v |= (uint32_t)(b & 63) << shift;
		shift += 6;
		if (!(b & 64))
			break;
	}
	*out = v;
	return 0;
}

static int read_svarint(const uint8_t *tab, size_t len, size_t *i, int *out)
{
	uint32_t u;
	if (read_varint(tab, len, i, &u))
		return -1;
	*out = (u & 1) ? -(int)(u >> 1) : (int)(u >> 1);
	return 0;
}

static int locations_line(const uint8_t *tab, size_t len, int line, uint32_t offset)
{
	uint32_t unit = offset / 2;   /* offsets are in bytes, entries in code units */
	uint32_t addr = 0;
	size_t i = 0;
	while (i < len) {
		uint8_t first = tab[i++];
		if (!(first & 0x80))
			return -1;   /* lost sync: corrupt table */
		int code = (first >> 3) & 15;
		uint32_t n = (first & 7) + 1;
		int delta = 0, has_line = 1;
		uint32_t skip;
		switch (code) {
		case 15:        /* no location */
			has_line = 0;
			break;
		case 14:        /* long form: line delta, end line delta, col, end col */
			if (read_svarint(tab, len, &i, &delta) || read_varint(tab, len, &i, &skip) ||
			    read_varint(tab, len, &i, &skip) || read_varint(tab, len, &i, &skip))
				return -1;
			break;
		case 13:        /* no column: line delta only */
			if (read_svarint(tab, len, &i, &delta))
				return -1;
			break;
		case 10: case 11: case 12:   /* one-line form: delta = code - 10, 2 bytes */
			delta = code - 10;
			i += 2;
			break;
		default:        /* short form 0-9: same line, one byte of columns */
			i += 1;
			break;
		}
		if (has_line)
			line += delta;
		if (unit >= addr && unit < addr + n)
			return has_line ? line : -1;
		addr += n;
	}
	return -1;
}

int hm_line_for_offset(int kind, const uint8_t *tab, size_t len, int firstlineno, uint32_t offset)
{
	int line;
	switch (kind) {
	case HM_LNOTAB_27:
		return lnotab_line(tab, len, firstlineno, offset, 0);
	case HM_LNOTAB:
		return lnotab_line(tab, len, firstlineno, offset, 1);
	case HM_LINETABLE_310:
		line = linetable310_line(tab, len, firstlineno, offset);
		return line > 0 ? line : firstlineno;
	case HM_LOCATIONS:
		line = locations_line(tab, len, firstlineno, offset);
		return line > 0 ? line : firstlineno;
	default:
		return firstlineno;
	}
}

static size_t put_utf8(uint32_t c, char *out)
{
	if (c >= 0xD800 && c <= 0xDFFF)
		c = 0xFFFD;
	if (c > 0x10FFFF)
		c = 0xFFFD;
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xC0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 63));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xE0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 63));
		out[2] = (char)(0x80 | (c & 63));
		return 3;
	}
	out[0] = (char)(0xF0 | (c >> 18));
	out[1] = (char)(0x80 | ((c >> 12) & 63));
	out[2] = (char)(0x80 | ((c >> 6) & 63));
	out[3] = (char)(0x80 | (c & 63));
	return 4;
}

size_t hm_ucs_to_utf8(int kind, const void *data, size_t n, char *out, size_t cap)
{
	size_t w = 0;
	if (!cap)
		return 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t c;
		if (kind == 1)
			c = ((const uint8_t *)data)[i];
		else if (kind == 2) {
			uint16_t v;
			memcpy(&v, (const uint8_t *)data + 2 * i, 2);
			c = v;
		} else {
			memcpy(&c, (const uint8_t *)data + 4 * i, 4);
		}
		char tmp[4];
		size_t k = put_utf8(c, tmp);
		if (w + k + 1 > cap)
			break;
		memcpy(out + w, tmp, k);
		w += k;
	}
	out[w] = 0;
	return w;
}
