/* decode_collapsed.c - the collapsed-stacks reader: "frame;frame;frame count"
 * lines, frames in homura's display text (decode_frame.c), one thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "format/codec.h"
#include "format/decode.h"
#include "format/decode_frame.h"

int hm_decode_collapsed(const char *buf, size_t len, hm_profile **out)
{
	hm_profile *p = hm_profile_new(0);
	uint32_t *frames = malloc(HM_READ_MAX_DEPTH * sizeof *frames);
	if (!p || !frames) {
		hm_profile_free(p);
		free(frames);
		return hm_error(HM_ENOMEM, "out of memory reading collapsed stacks");
	}
	uint32_t thread = hm_profile_thread_id(p, 0, 0, NULL);
	size_t lineno = 0, pos = 0, nonempty = 0;
	while (pos < len) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - line) : len - pos;
		pos += ll + 1;
		lineno++;
		while (ll && (line[ll - 1] == '\r' || line[ll - 1] == ' ' || line[ll - 1] == '\t'))
			ll--;
		if (!ll || line[0] == '#')
			continue;
		size_t sp = ll;
		while (sp && line[sp - 1] != ' ')
			sp--;
		if (!sp) {
			hm_profile_free(p);
			free(frames);
			return hm_error(HM_EINVAL, "collapsed stacks: line %zu has no count", lineno);
		}
		char num[32];
		size_t nl_ = ll - sp;
		if (nl_ >= sizeof num) {
			hm_profile_free(p);
			free(frames);
			return hm_error(HM_EINVAL, "collapsed stacks: line %zu: count too long", lineno);
		}
		memcpy(num, line + sp, nl_);
		num[nl_] = 0;
		char *end;
		errno = 0;
		long long count = strtoll(num, &end, 10);
		if (*end || errno || end == num || count < 0) {
			hm_profile_free(p);
			free(frames);
			return hm_error(HM_EINVAL, "collapsed stacks: line %zu: bad count \"%s\"%s",
					lineno, num, count < 0 && !*end && !errno ?
					" (counts cannot be negative)" : "");
		}
		size_t sl = sp - 1, start = 0;
		uint32_t n = 0;
		for (size_t i = 0; i <= sl; i++) {
			if (i == sl || line[i] == ';') {
				if (i > start && n < HM_READ_MAX_DEPTH)
					frames[n++] = hm_decode_frame_text(p, line + start, i - start);
				start = i + 1;
			}
		}
		if (!n) {
			hm_profile_free(p);
			free(frames);
			return hm_error(HM_EINVAL, "collapsed stacks: line %zu has a count but no "
					"frames", lineno);
		}
		if (nonempty >= HM_PB_MAX_REPEATED) {
			hm_profile_free(p);
			free(frames);
			return hm_error(HM_EINVAL, "collapsed stacks over the decoding limit: more "
					"than %llu stacks", HM_PB_MAX_REPEATED);
		}
		uint32_t st = hm_profile_stack_id(p, frames, n);
		hm_profile_add(p, st, thread, count, 0, 0);
		nonempty++;
	}
	free(frames);
	if (!nonempty) {
		hm_profile_free(p);
		return hm_error(HM_EINVAL, "collapsed stacks: no samples found");
	}
	*out = p;
	return HM_OK;
}
