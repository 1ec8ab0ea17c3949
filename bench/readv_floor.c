/* readv_floor.c - the floor under the cost of one sample: how long one bare
 * process_vm_readv call takes on this machine right now, against a live
 * target, paced like the sampler (one call per period, sleeping between).
 *
 *   readv_floor PID [RATE_HZ] [SECONDS] [BYTES]
 *
 * Reads BYTES (default 4096) from the start of the target's heap (or its
 * first writable mapping) once per period and prints "p50 p99" of the call
 * in microseconds.  bench_sample_cost.py builds and runs it after each
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

/* Start of [heap], else of the first writable private mapping. */
static unsigned long pick_address(int pid)
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
			break;
		}
		if (!first && perms[1] == 'w' && perms[3] == 'p')
			first = lo;
	}
	fclose(f);
	return first;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: readv_floor PID [RATE_HZ] [SECONDS] [BYTES]\n");
		return 2;
	}
	int pid = atoi(argv[1]);
	double rate = argc > 2 ? atof(argv[2]) : 1000;
	double secs = argc > 3 ? atof(argv[3]) : 5;
	size_t bytes = argc > 4 ? (size_t)atol(argv[4]) : 4096;
	if (pid <= 0 || rate <= 0 || secs <= 0 || bytes == 0 || bytes > (1u << 20)) {
		fprintf(stderr, "readv_floor: bad arguments\n");
		return 2;
	}
	unsigned long addr = pick_address(pid);
	if (!addr) {
		fprintf(stderr, "readv_floor: cannot read the maps of %d\n", pid);
		return 1;
	}
	size_t n = (size_t)(rate * secs);
	unsigned long long *d = calloc(n, sizeof *d);
	char *buf = malloc(bytes);
	if (!d || !buf)
		return 1;
	unsigned long long period = (unsigned long long)(1e9 / rate), next = mono_ns();
	for (size_t i = 0; i < n; i++) {
		next += period;
		struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		struct iovec l = {buf, bytes}, r = {(void *)addr, bytes};
		unsigned long long t0 = mono_ns();
		if (process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)bytes) {
			fprintf(stderr, "readv_floor: process_vm_readv: %s\n", strerror(errno));
			return 1;
		}
		d[i] = mono_ns() - t0;
	}
	qsort(d, n, sizeof *d, cmp);
	printf("%.2f %.2f\n", d[n / 2] / 1e3, d[n * 99 / 100] / 1e3);
	return 0;
}
