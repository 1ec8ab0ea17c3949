/* decode.h - private: the per-format readers behind hm_profile_read. */
#ifndef HOMURA_DECODE_H
#define HOMURA_DECODE_H

#include <jansson.h>
#include <stddef.h>
#include "homura/profile.h"

int hm_decode_collapsed(const char *buf, size_t len, hm_profile **out);
int hm_decode_speedscope(json_t *root, hm_profile **out);
int hm_decode_otlp_json(json_t *root, hm_profile **out);
/* Binary protobuf; return 1 (no message set) when the bytes are not this
 * message type, so the caller may try the next. */
int hm_decode_pprof(const unsigned char *buf, size_t len, hm_profile **out);
int hm_decode_otlp(const unsigned char *buf, size_t len, hm_profile **out);

/* Frame from display text "name (file:line)" / "name (file)" / "name". */
uint32_t hm_decode_frame_text(hm_profile *p, const char *s, size_t len);
/* Frame kind guessed from a file name (".py" -> Python, else native). */
int hm_decode_guess_kind(const char *file);

#endif
