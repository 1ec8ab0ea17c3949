/* bench_native_cost.c - per-sample cost of hm_native_sample against
 * hm_python_sample on the same live target, without the CLI around it (so
 * it can be linked statically and run on machines without libdw).
 *
 *   bench_native_cost PID [SAMPLES] [RATE_HZ]
 *
 * Alternates plain and native samples at RATE_HZ (default 200) and prints
 * the wall time of each kind (p50 / p99 / max, microseconds), how long the
 * sampled threads stood stopped, and the symbol cache hit rate.
 * Build: make bench (build/bench/bench_native_cost). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "base/error.h"
#include "native/native.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_u64);
	printf("%-8s n=%d p50=%.1f us p99=%.1f us max=%.1f us\n", what, n, v[n / 2] / 1e3,
	       v[(n * 99) / 100] / 1e3, v[n - 1] / 1e3);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PID [SAMPLES] [RATE_HZ]\n", argv[0]);
		return 2;
	}
	int n = argc > 2 ? atoi(argv[2]) : 1000;
	double rate = argc > 3 ? atof(argv[3]) : 200;
	hm_target *t;
	hm_python *py;
	hm_native *nat;
	if (hm_target_open(atoi(argv[1]), &t) || hm_python_attach(t, &py) ||
	    hm_native_open(t, &nat)) {
		fprintf(stderr, "%s\n", hm_errmsg());
		return 1;
	}
	uint64_t *plain = calloc((size_t)n, 8), *native = calloc((size_t)n, 8);
	hm_pysample s = {0};
	hm_natsample ns = {0};
	int np = 0, nn = 0, frames = 0;
	for (int i = 0; i < 2 * n; i++) {
		uint64_t a = hm_mono_ns();
		int r = (i & 1) ? hm_native_sample(nat, py, &s, &ns, HM_SAMPLE_ONCPU)
				: hm_python_sample(py, &s, HM_SAMPLE_ONCPU);
		uint64_t d = hm_mono_ns() - a;
		if (r == HM_OK && i >= 20) {   /* skip the warm-up (DWARF loading) */
			if (i & 1) {
				native[nn++] = d;
				for (int k = 0; k < ns.nstacks; k++)
					frames += ns.stacks[k].nframes;
			} else {
				plain[np++] = d;
			}
		}
		usleep((useconds_t)(1e6 / rate));
	}
	if (!np || !nn) {
		fprintf(stderr, "no samples\n");
		return 1;
	}
	report("plain", plain, np);
	report("native", native, nn);
	const hm_native_stats *st = hm_native_stats_get(nat);
	printf("native: %.1f frames per sample; threads stopped %.1f us on average, %.1f us max; "
	       "%llu unwinds, %llu failed; symbol cache %.2f%% hits\n",
	       (double)frames / nn, st->unwinds ? st->stop_ns / 1e3 / (double)st->unwinds : 0.0,
	       st->stop_max_ns / 1e3, (unsigned long long)st->unwinds,
	       (unsigned long long)st->failed,
	       100.0 * (double)st->sym_hits / (double)(st->sym_hits + st->sym_misses + 1));
	hm_natsample_free(&ns);
	hm_pysample_free(&s);
	hm_native_close(nat);
	hm_python_detach(py);
	hm_target_close(t);
	return 0;
}
