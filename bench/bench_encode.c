/* bench_encode.c - how fast the pprof and OTLP encoders are on a big profile.
 *
 * Builds a profile of 1,000,000 samples over 10,000 distinct stacks (depth
 * 8..40, 2,000 distinct frames, 4 threads), then times hm_encode_pprof (with
 * gzip) and hm_encode_otlp. The profile aggregates per (stack, thread), so
 * encoder work and memory follow distinct stacks, not samples.
 *
 * Build and run: make bench && build/bench/bench_encode */
#include <stdio.h>
#include <stdlib.h>

#include "base/base.h"
#include "base/error.h"
#include "base/profile.h"
#include "format/codec.h"

int main(void)
{
	enum { NSAMPLES = 1000000, NSTACKS = 10000, NFRAMES = 2000 };
	hm_profile *p = hm_profile_new(0);
	uint32_t frames[NFRAMES], stacks[NSTACKS], threads[4], buf[64];
	char name[64], file[64];
	srand(1);
	for (int i = 0; i < NFRAMES; i++) {
		snprintf(name, sizeof name, "func_%d", i);
		snprintf(file, sizeof file, "/app/module_%d.py", i % 97);
		hm_frame f = {0};
		f.name = hm_profile_intern_cstr(p, name);
		f.file = hm_profile_intern_cstr(p, file);
		f.line = 1 + i % 500;
		f.start_line = 1;
		frames[i] = hm_profile_frame_id(p, &f);
	}
	for (int s = 0; s < NSTACKS; s++) {
		uint32_t depth = 8 + rand() % 33;
		for (uint32_t k = 0; k < depth; k++)
			buf[k] = frames[k == depth - 1 ? s % NFRAMES : rand() % NFRAMES];
		stacks[s] = hm_profile_stack_id(p, buf, depth);
	}
	for (int t = 0; t < 4; t++)
		threads[t] = hm_profile_thread_id(p, 1000 + t, 1, "worker");
	double t0 = hm_mono_s();
	for (int i = 0; i < NSAMPLES; i++)
		hm_profile_add(p, stacks[i % NSTACKS], threads[(i / NSTACKS) % 4], 1, 10000000,
			       0);
	double t1 = hm_mono_s();
	unsigned char *out;
	size_t len;
	if (hm_encode_pprof(p, 1, &out, &len) < 0) {
		fprintf(stderr, "pprof: %s\n", hm_errmsg());
		return 1;
	}
	double t2 = hm_mono_s();
	free(out);
	size_t plen = len;
	if (hm_encode_otlp(p, &out, &len) < 0) {
		fprintf(stderr, "otlp: %s\n", hm_errmsg());
		return 1;
	}
	double t3 = hm_mono_s();
	free(out);
	printf("samples %d, distinct stacks %u, aggregates %zu\n", NSAMPLES,
	       hm_profile_nstacks(p), hm_profile_nsamples(p));
	printf("aggregate: %.3f s\npprof (gzip): %.3f s, %zu bytes\notlp: %.3f s, %zu bytes\n",
	       t1 - t0, t2 - t1, plen, t3 - t2, len);
	hm_profile_free(p);
	return (t2 - t1) < 1.0 && (t3 - t2) < 1.0 ? 0 : 1;
}
