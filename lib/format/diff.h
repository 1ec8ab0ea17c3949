/* diff.h - differential profiles ("before and after").
 *
 * Values are compared as shares of each profile's total, so profiles of
 * different length compare fairly: BEFORE is scaled by total(AFTER) /
 * total(BEFORE) (separately for counts and for nanoseconds) and subtracted
 * from AFTER. Threads are merged; frames are matched by their text. */
#ifndef HOMURA_DIFF_H
#define HOMURA_DIFF_H

#include <stdio.h>
#include "base/profile.h"
#include "format/encode.h"

/* A profile whose samples are the signed, share-normalised deltas per
 * stack (AFTER - scaled BEFORE); stacks are the union of both. */
int hm_diff_profile(const hm_profile *before, const hm_profile *after, hm_profile **out);

/* Collapsed lines "frames delta" with signed share-normalised counts,
 * zero deltas omitted, largest growth first. */
int hm_write_diff_collapsed(const hm_profile *before, const hm_profile *after, FILE *out);

/* Differential flame graph: widths follow AFTER, colour shows the change
 * of each frame's share (red = grew, green = shrank). */
int hm_write_diff_svg(const hm_profile *before, const hm_profile *after, FILE *out,
		      const hm_write_opts *o);

#endif
