/* decode_speedscope.c - read speedscope's JSON file format.
 *
 * shared.frames become homura frames (name, file, line). Each profile is a
 * thread: "Thread <tid> <name>" (homura's own naming) restores the thread id
 * and name, other names become the thread name. "sampled" profiles give one
 * sample per entry (root-first frame indices, weight in the profile's unit);
 * time units become nanosecond weights and a timeline in sample order,
 * "none" weights become counts. "evented" profiles are replayed: the time
 * between consecutive open/close events is charged to the open stack.
 * Every index and type is checked; bad input is an error, not a crash.
 * Weights must be finite and not negative; times and weights outside
 * int64 nanoseconds are clamped (the JSON numbers are doubles). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "format/codec.h"
#include "format/decode.h"
#include "format/decode_frame.h"

static double unit_ns(const char *u)
{
	if (!u || !strcmp(u, "none") || !strcmp(u, "bytes"))
		return 0;
	if (!strcmp(u, "nanoseconds"))
		return 1;
	if (!strcmp(u, "microseconds"))
		return 1e3;
	if (!strcmp(u, "milliseconds"))
		return 1e6;
	if (!strcmp(u, "seconds"))
		return 1e9;
	return 0;
}

/* A double as int64, clamped to [0, INT64_MAX] (NaN -> 0): converting an
 * out-of-range double to an integer type is undefined. */
static int64_t clamp_i64(double v)
{
	if (!(v > 0))
		return 0;
	if (v >= 9.2e18)
		return INT64_MAX;
	return (int64_t)v;
}

static uint32_t thread_of(hm_profile *p, const char *name)
{
	unsigned long long tid = 0;
	int off = 0;
	if (name && sscanf(name, "Thread %llu%n", &tid, &off) == 1) {
		const char *rest = name + off;
		while (*rest == ' ')
			rest++;
		return hm_profile_thread_id(p, tid, 0, *rest ? rest : NULL);
	}
	return hm_profile_thread_id(p, 0, 0, name && *name ? name : NULL);
}

int hm_decode_speedscope(json_t *root, hm_profile **out)
{
	json_t *frames = json_object_get(json_object_get(root, "shared"), "frames");
	json_t *profiles = json_object_get(root, "profiles");
	if (!json_is_array(frames) || !json_is_array(profiles))
		return hm_error(HM_EINVAL, "speedscope: missing shared.frames or profiles");
	size_t nf = json_array_size(frames);
	hm_profile *p = hm_profile_new(1);
	uint32_t *fmap = malloc((nf + 1) * sizeof *fmap);
	uint32_t *stack = malloc(HM_READ_MAX_DEPTH * sizeof *stack);
	int rc = HM_OK;
	if (!p || !fmap || !stack) {
		rc = hm_error(HM_ENOMEM, "out of memory reading speedscope");
		goto out;
	}
	for (size_t i = 0; i < nf; i++) {
		json_t *f = json_array_get(frames, i);
		json_t *name = json_object_get(f, "name");
		if (!json_is_string(name)) {
			rc = hm_error(HM_EINVAL, "speedscope: frame %zu has no name", i);
			goto out;
		}
		json_t *file = json_object_get(f, "file");
		json_t *line = json_object_get(f, "line");
		hm_frame fr = {0};
		fr.name = hm_profile_intern(p, json_string_value(name), json_string_length(name));
		if (json_is_string(file))
			fr.file = hm_profile_intern(p, json_string_value(file), json_string_length(file));
		if (json_is_integer(line))
			fr.line = (int32_t)json_integer_value(line);
		fr.kind = fr.file ? hm_decode_guess_kind(hm_profile_str(p, fr.file)) : HM_FRAME_NATIVE;
		fmap[i] = hm_profile_frame_id(p, &fr);
	}
	int any_time = 0;
	size_t np = json_array_size(profiles);
	for (size_t pi = 0; pi < np; pi++) {
		json_t *pr = json_array_get(profiles, pi);
		const char *type = json_string_value(json_object_get(pr, "type"));
		double mul = unit_ns(json_string_value(json_object_get(pr, "unit")));
		any_time |= mul > 0;
		uint32_t th = thread_of(p, json_string_value(json_object_get(pr, "name")));
		double t = json_number_value(json_object_get(pr, "startValue"));
		if (type && !strcmp(type, "sampled")) {
			json_t *samples = json_object_get(pr, "samples");
			json_t *weights = json_object_get(pr, "weights");
			if (!json_is_array(samples) || (weights && !json_is_array(weights))) {
				rc = hm_error(HM_EINVAL, "speedscope: profile %zu: bad samples", pi);
				goto out;
			}
			size_t ns = json_array_size(samples);
			if (weights && json_array_size(weights) != ns) {
				rc = hm_error(HM_EINVAL, "speedscope: profile %zu: %zu weights for "
					      "%zu samples", pi, json_array_size(weights), ns);
				goto out;
			}
			for (size_t s = 0; s < ns; s++) {
				json_t *st = json_array_get(samples, s);
				if (!json_is_array(st)) {
					rc = hm_error(HM_EINVAL, "speedscope: sample %zu is not an array", s);
					goto out;
				}
				uint32_t n = 0;
				for (size_t k = 0; k < json_array_size(st); k++) {
					json_t *ix = json_array_get(st, k);
					json_int_t v = json_is_integer(ix) ? json_integer_value(ix) : -1;
					if (v < 0 || (size_t)v >= nf) {
						rc = hm_error(HM_EINVAL, "speedscope: bad frame index in "
							      "sample %zu", s);
						goto out;
					}
					if (n < HM_READ_MAX_DEPTH)
						stack[n++] = fmap[v];
				}
				double w = weights ? json_number_value(json_array_get(weights, s)) : 1;
				if (!isfinite(w) || w < 0) {
					rc = hm_error(HM_EINVAL, "speedscope: bad weight of sample %zu", s);
					goto out;
				}
				uint32_t sid = hm_profile_stack_id(p, stack, n);
				if (mul > 0)
					hm_profile_add(p, sid, th, 1, clamp_i64(w * mul + 0.5),
						       (uint64_t)clamp_i64(t * mul));
				else
					hm_profile_add(p, sid, th, clamp_i64(w), 0,
						       (uint64_t)clamp_i64(t));
				t += w;
			}
		} else if (type && !strcmp(type, "evented")) {
			json_t *events = json_object_get(pr, "events");
			if (!json_is_array(events)) {
				rc = hm_error(HM_EINVAL, "speedscope: profile %zu: bad events", pi);
				goto out;
			}
			uint32_t n = 0;
			for (size_t e = 0; e < json_array_size(events); e++) {
				json_t *ev = json_array_get(events, e);
				const char *et = json_string_value(json_object_get(ev, "type"));
				json_t *fr = json_object_get(ev, "frame");
				double at = json_number_value(json_object_get(ev, "at"));
				json_int_t fi = json_is_integer(fr) ? json_integer_value(fr) : -1;
				if (!et || fi < 0 || (size_t)fi >= nf) {
					rc = hm_error(HM_EINVAL, "speedscope: bad event %zu", e);
					goto out;
				}
				if (n && at > t) {
					double w = at - t;
					uint32_t sid = hm_profile_stack_id(p, stack, n);
					if (mul > 0)
						hm_profile_add(p, sid, th, 1, clamp_i64(w * mul + 0.5),
							       (uint64_t)clamp_i64(t * mul));
					else
						hm_profile_add(p, sid, th, clamp_i64(w), 0,
							       (uint64_t)clamp_i64(t));
				}
				if (at > t)
					t = at;
				if (!strcmp(et, "O")) {
					if (n < HM_READ_MAX_DEPTH)
						stack[n++] = fmap[fi];
				} else if (n) {
					n--;
				}
			}
		} else {
			rc = hm_error(HM_EINVAL, "speedscope: profile %zu has unknown type", pi);
			goto out;
		}
	}
	(void)any_time;
out:
	free(fmap);
	free(stack);
	if (rc < 0) {
		hm_profile_free(p);
		return rc;
	}
	*out = p;
	return HM_OK;
}
