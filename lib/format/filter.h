/* filter.h - narrowing a finished profile: focus, hide, thread, files.
 *
 * Patterns are POSIX extended regular expressions matched (unanchored)
 * against a frame's text as hm_frame_format writes it, "name (file:line)",
 * so they can name functions or files. The result is a new profile; the
 * input is not changed.
 *
 *   focus      keep only samples whose stack has a matching frame
 *   hide       remove matching frames from every stack
 *   drop_file  remove frames whose file name matches (e.g. "site-packages")
 *   thread     keep one thread: a decimal thread id, or else a thread name
 */
#ifndef HOMURA_FILTER_H
#define HOMURA_FILTER_H

#include "base/profile.h"

typedef struct hm_filter {
	const char *focus;
	const char *hide;
	const char *drop_file;
	const char *thread;
} hm_filter;

/* Nonzero when any criterion is set. */
int hm_filter_active(const hm_filter *f);
/* *out = the filtered copy of in. HM_OK, or HM_EINVAL for a bad pattern. */
int hm_filter_apply(const hm_profile *in, const hm_filter *f, hm_profile **out);

/* Copy a frame of src into dst (strings re-interned); its id in dst. */
uint32_t hm_profile_import_frame(hm_profile *dst, const hm_profile *src, uint32_t frame);
/* Copy a span reference of src into dst; its id in dst (0 for 0). */
uint32_t hm_profile_import_span(hm_profile *dst, const hm_profile *src, uint32_t span);
/* *out = in with every stack under a "span: NAME" root frame (the span its
 * samples ran in, "span: <none>" outside spans; format/spangroup.c). HM_OK or
 * HM_ENOMEM. */
int hm_profile_group_by_span(const hm_profile *in, hm_profile **out);

#endif
