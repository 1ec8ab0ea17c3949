/* textesc.c - UTF-8 decoding and JSON / XML escaping shared by the encoders.
 *
 * Frame names come from target processes and may hold any bytes, so both
 * escapers validate UTF-8 strictly (no overlongs, surrogates or values past
 * U+10FFFF) and replace what is invalid with U+FFFD: the output is always
 * valid JSON / well-formed XML. */
#include <string.h>

#include "base/textesc.h"

uint32_t hm_utf8_decode(const char *str, size_t len, size_t *adv)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned c = s[0];
	*adv = 1;
	if (c < 0x80)
		return c;
	size_t n;
	uint32_t cp, min;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2; cp = c & 0x1f; min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3; cp = c & 0x0f; min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4; cp = c & 0x07; min = 0x10000;
	} else {
		return 0xfffd;
	}
	if (len < n)
		return 0xfffd;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0xfffd;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0xfffd;
	*adv = n;
	return cp;
}

size_t hm_utf8_count(const char *s, size_t len)
{
	size_t n = 0, adv;
	for (size_t i = 0; i < len; i += adv, n++)
		hm_utf8_decode(s + i, len - i, &adv);
	return n;
}

size_t hm_utf8_prefix(const char *s, size_t len, size_t n)
{
	size_t i = 0, adv;
	while (n-- && i < len) {
		hm_utf8_decode(s + i, len - i, &adv);
		i += adv;
	}
	return i;
}

static const char replacement[] = "\xef\xbf\xbd";

void hm_put_json_str(FILE *out, const char *s)
{
	size_t len = s ? strlen(s) : 0, adv;
	fputc('"', out);
	for (size_t i = 0; i < len; i += adv) {
		uint32_t cp = hm_utf8_decode(s + i, len - i, &adv);
		unsigned char c = (unsigned char)s[i];
		if (cp == 0xfffd && adv == 1 && c >= 0x80) {
			fputs(replacement, out);
		} else if (cp == '"' || cp == '\\') {
			fputc('\\', out);
			fputc(c, out);
		} else if (cp < 0x20 || cp == 0x7f) {
			switch (cp) {
			case '\n': fputs("\\n", out); break;
			case '\t': fputs("\\t", out); break;
			case '\r': fputs("\\r", out); break;
			case '\b': fputs("\\b", out); break;
			case '\f': fputs("\\f", out); break;
			default: fprintf(out, "\\u%04x", cp); break;
			}
		} else {
			fwrite(s + i, 1, adv, out);
		}
	}
	fputc('"', out);
}

void hm_put_xml(FILE *out, const char *s, size_t len)
{
	size_t adv;
	for (size_t i = 0; i < len; i += adv) {
		uint32_t cp = hm_utf8_decode(s + i, len - i, &adv);
		switch (cp) {
		case '&': fputs("&amp;", out); break;
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '"': fputs("&quot;", out); break;
		case '\'': fputs("&#39;", out); break;
		case '\t': case '\n': case '\r': fputc(' ', out); break;
		default:
			if (cp < 0x20 || cp == 0xfffe || cp == 0xffff ||
			    (cp == 0xfffd && adv == 1))
				fputs(replacement, out);
			else
				fwrite(s + i, 1, adv, out);
		}
	}
}
