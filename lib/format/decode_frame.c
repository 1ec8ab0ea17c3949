/* decode_frame.c - what the readers (decode_*.c) share (decode_frame.h):
 * homura's frame display text "name (file:line)" parsed back into a frame,
 * and the frame kind guessed from a file name. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/profile.h"
#include "format/decode_frame.h"

int hm_decode_guess_kind(const char *file)
{
	size_t n = strlen(file);
	if ((n > 3 && !strcmp(file + n - 3, ".py")) || (n > 4 && !strcmp(file + n - 4, ".pyx")) ||
	    (n > 2 && file[0] == '<' && file[n - 1] == '>'))
		return HM_FRAME_PYTHON;
	return HM_FRAME_NATIVE;
}

uint32_t hm_decode_frame_text(hm_profile *p, const char *s, size_t len)
{
	hm_frame f = {0};
	size_t name_len = len;
	if (len > 3 && s[len - 1] == ')') {
		/* The last " (" opens the location. */
		for (size_t i = len - 1; i-- > 0;) {
			if (s[i] == '(' && i > 0 && s[i - 1] == ' ') {
				const char *in = s + i + 1;
				size_t in_len = len - 1 - (i + 1);
				size_t colon = in_len;
				for (size_t k = in_len; k-- > 0;)
					if (in[k] == ':') {
						colon = k;
						break;
					}
				size_t file_len = in_len;
				if (colon < in_len && colon + 1 < in_len && in_len - colon <= 10) {
					int digits = 1;
					for (size_t k = colon + 1; k < in_len; k++)
						digits &= isdigit((unsigned char)in[k]) != 0;
					if (digits) {
						file_len = colon;
						f.line = (int32_t)strtol(in + colon + 1, NULL, 10);
					}
				}
				f.file = hm_profile_intern(p, in, file_len);
				name_len = i - 1;
				break;
			}
		}
	}
	f.name = hm_profile_intern(p, s, name_len);
	const char *file = hm_profile_str(p, f.file);
	f.kind = f.file ? hm_decode_guess_kind(file) : HM_FRAME_NATIVE;
	if (!f.file && name_len > 7 && !memcmp(s, "thread ", 7))
		f.kind = HM_FRAME_THREAD;
	return hm_profile_frame_id(p, &f);
}
