/* readv_floor.c - the floor under the cost of one sample: how long one bare
 * process_vm_readv call takes on this machine right now, against a live
 * target, paced like the sampler (one call per period, sleeping between).
 *
 *   readv_floor PID [RATE_HZ] [SECONDS] [BYTES] [REGIONS]
 *
 * Reads BYTES (default 4096) from the start of the target's heap (or its
 * first writable mapping) once per period and prints "p50 p99" of the call
 * in microseconds.  With REGIONS > 1, the calls alternate between that one
 * region and REGIONS regions of BYTES each, one per page (a page apart),
 * and it prints "p50 p99" of each, the one region first: what each page
 * more in a call costs (reading an OpenTelemetry span's chain of objects
 * touches about one page an object: docs/benchmarks.md).  bench_sample_cost.py builds and runs it after each
 * recording, so a sample's cost can be read against what a single read costs
 * at the same moment: the syscall's latency varies several-fold with the
 * load of this virtual machine.  `make bench` builds build/bench/readv_floor
 * (it uses only libc: cc -O2 -o readv_floor readv_floor.c works too). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

static unsigned long long mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (unsigned long long)t.tv_sec * 1000000000ull + (unsigned long long)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
	return x < y ? -1 : x > y;
}

/* Start of [heap], else of the first writable private mapping; *end: its
 * end. */
static unsigned long pick_address(int pid, unsigned long *end)
{
	char path[64], line[512];
	unsigned long lo, hi, first = 0;
	char perms[8];
	snprintf(path, sizeof path, "/proc/%d/maps", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
			continue;
		if (strstr(line, "[heap]")) {
			first = lo;
			*end = hi;
			break;
		}
		if (!first && perms[1] == 'w' && perms[3] == 'p') {
			first = lo;
			*end = hi;
		}
	}
	fclose(f);
	return first;
}

static int p50_p99(unsigned long long *d, size_t n)
{
	qsort(d, n, sizeof *d, cmp);
	return printf("%.2f %.2f", d[n / 2] / 1e3, d[n * 99 / 100] / 1e3);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: readv_floor PID [RATE_HZ] [SECONDS] [BYTES] [REGIONS]\n");
		return 2;
	}
	int pid = atoi(argv[1]);
	double rate = argc > 2 ? atof(argv[2]) : 1000;
	double secs = argc > 3 ? atof(argv[3]) : 5;
	size_t bytes = argc > 4 ? (size_t)atol(argv[4]) : 4096;
	int regions = argc > 5 ? atoi(argv[5]) : 1;
	if (pid <= 0 || rate <= 0 || secs <= 0 || bytes == 0 || bytes > (1u << 20) || regions < 1 ||
	    regions > 64 || (regions > 1 && bytes > 4096)) {
		fprintf(stderr, "readv_floor: bad arguments\n");
		return 2;
	}
	unsigned long end = 0, addr = pick_address(pid, &end);
	if (!addr) {
		fprintf(stderr, "readv_floor: cannot read the maps of %d\n", pid);
		return 1;
	}
	if (regions > 1 && end - addr < (unsigned long)regions * 4096) {
		fprintf(stderr, "readv_floor: the mapping at %#lx has fewer than %d pages\n", addr, regions);
		return 1;
	}
	size_t n = (size_t)(rate * secs);
	if (n < 2)
		n = 2;
	unsigned long long *d = calloc(n, sizeof *d), *dk = calloc(n, sizeof *dk);
	char *buf = malloc(regions > 1 ? (size_t)regions * 4096 : bytes);
	struct iovec l[64], r[64];
	if (!d || !dk || !buf)
		return 1;
	for (int k = 0; k < regions; k++) {
		l[k] = (struct iovec){buf + (size_t)k * 4096, bytes};
		r[k] = (struct iovec){(void *)(addr + (unsigned long)k * 4096), bytes};
	}
	unsigned long long period = (unsigned long long)(1e9 / rate), next = mono_ns();
	size_t n1 = 0, nk = 0;
	for (size_t i = 0; i < n; i++) {
		next += period;
		struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		int many = regions > 1 && (i & 1);
		int cnt = many ? regions : 1;
		unsigned long long t0 = mono_ns();
		if (process_vm_readv(pid, l, (unsigned long)cnt, r, (unsigned long)cnt, 0) !=
		    (ssize_t)(bytes * (size_t)cnt)) {
			fprintf(stderr, "readv_floor: process_vm_readv: %s\n", strerror(errno));
			return 1;
		}
		if (many)
			dk[nk++] = mono_ns() - t0;
		else
			d[n1++] = mono_ns() - t0;
	}
	p50_p99(d, n1);
	if (regions > 1) {
		printf(" ");
		p50_p99(dk, nk);
	}
	printf("\n");
	return 0;
}
