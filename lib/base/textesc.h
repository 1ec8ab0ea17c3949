/* textesc.h - (internal) UTF-8 decoding and JSON / XML escaping for encoders. */
#ifndef HOMURA_LIB_TEXTESC_H
#define HOMURA_LIB_TEXTESC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Decode one code point from s (len > 0 bytes). Invalid, overlong,
 * surrogate or truncated sequences decode as U+FFFD consuming one byte.
 * *adv receives the number of bytes consumed. */
uint32_t hm_utf8_decode(const char *s, size_t len, size_t *adv);
/* Number of code points in s (invalid bytes count one each). */
size_t hm_utf8_count(const char *s, size_t len);
/* Byte length of the first n code points of s. */
size_t hm_utf8_prefix(const char *s, size_t len, size_t n);

/* s as a quoted JSON string: control chars escaped, valid UTF-8 passed
 * through, invalid bytes replaced by U+FFFD. */
void hm_put_json_str(FILE *out, const char *s);
/* s escaped as XML character data / attribute value (&<>"' escaped,
 * characters XML 1.0 forbids and invalid UTF-8 replaced by U+FFFD). */
void hm_put_xml(FILE *out, const char *s, size_t len);

#endif
