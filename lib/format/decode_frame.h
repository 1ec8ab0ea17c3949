/* decode_frame.h - private: what the profile readers (decode_*.c) share. */
#ifndef HOMURA_DECODE_FRAME_H
#define HOMURA_DECODE_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include "base/profile.h"

/* Frame from display text "name (file:line)" / "name (file)" / "name". */
uint32_t hm_decode_frame_text(hm_profile *p, const char *s, size_t len);
/* Frame kind guessed from a file name (".py" -> Python, else native). */
int hm_decode_guess_kind(const char *file);

#endif
