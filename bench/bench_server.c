/* bench_server.c - throughput, query latency and disk cost of the server store.
 *
 * Synthetic but agent-shaped data: each service has a pool of functions and
 * of call stacks (depth 8..31); a 10 s window at 100 Hz is 1000 samples
 * spread over ~60 of the service's stacks (skewed, as real profiles are).
 *
 *  1. ingest: 100 agents x W windows, each an OTLP request (gzip protobuf,
 *     encoded up front) through hm_ingest_handle - decoding, validation and
 *     the SQLite write, no sockets. Reports profiles/s and samples/s.
 *  2. disk: bytes on disk per stored row (series, bucket, stack) and per
 *     sample after phase 1.
 *  3. query: 24 h of 10 s windows from 20 services (stored with
 *     hm_store_put), then /api/v1/flamegraph over the 24 h for one service
 *     and for all (and 1 h, top, timeseries), before and after downsampling to
 *     1 min buckets, then a 12 h retention pass (file size after each).
 *
 * Build and run (from the repository root): make bench, then
 *   build/bench/bench_server [--windows W] [--hours H] [--services S] [--dir DIR]
 *                     [--pg postgresql:///db?host=/tmp/sock] [--keep 1]
 * --pg runs phase 3 against that (empty) PostgreSQL database instead of a
 * SQLite directory. --keep 1 stops after phase 3's first queries and leaves
 * its store in place (its path is printed): bench/bench_dashboard.sh serves
 * it to time the dashboard's first load.  */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "format/codec.h"
#include "format/gzip.h"
#include "server/server.h"
#include "store/store.h"

#define STACKS_PER_SERVICE 300
#define FUNCS_PER_SERVICE 200
#define SAMPLES_PER_WINDOW 1000

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
	return (uint32_t)(hm_rng_next(&rng) % n);
}

/* CPU time of this process (the store's work, without a PostgreSQL server's):
 * steadier than wall time on a loaded machine. */
static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct service {
	uint32_t depth[STACKS_PER_SERVICE];
	uint16_t fn[STACKS_PER_SERVICE][32];
} service;

static void make_service(service *s)
{
	for (int k = 0; k < STACKS_PER_SERVICE; k++) {
		s->depth[k] = 8 + rnd(24);
		/* shared prefixes: stacks of a service start alike */
		for (uint32_t d = 0; d < s->depth[k]; d++)
			s->fn[k][d] = d < 4 ? (uint16_t)d : (uint16_t)(4 + rnd(FUNCS_PER_SERVICE - 4));
	}
}

static hm_profile *make_window(const service *s, int svc, uint64_t t_ns)
{
	hm_profile *p = hm_profile_new(0);
	uint32_t th = hm_profile_thread_id(p, 1, 1, "MainThread");
	uint32_t frames[32];
	char name[64], file[64];
	for (int i = 0; i < 60; i++) {
		/* skew: low stack indices are hot */
		uint32_t k = rnd(1 + rnd(STACKS_PER_SERVICE));
		for (uint32_t d = 0; d < s->depth[k]; d++) {
			hm_frame f = {0};
			snprintf(name, sizeof name, "svc%d.module%u.function_%u", svc,
				 s->fn[k][d] % 17, s->fn[k][d]);
			snprintf(file, sizeof file, "/srv/app%d/module%u.py", svc, s->fn[k][d] % 17);
			f.name = hm_profile_intern_cstr(p, name);
			f.file = hm_profile_intern_cstr(p, file);
			f.line = 10 + s->fn[k][d];
			frames[d] = hm_profile_frame_id(p, &f);
		}
		int64_t n = i < 59 ? 1 + rnd(SAMPLES_PER_WINDOW / 40) : 0;
		hm_profile_add(p, hm_profile_stack_id(p, frames, s->depth[k]), th, n, n * 10000000,
			       0);
	}
	int64_t rest = SAMPLES_PER_WINDOW - hm_profile_total_count(p);
	if (rest > 0) {
		uint32_t n;
		const uint32_t *fr = hm_profile_stack(p, 0, &n);
		hm_profile_add(p, hm_profile_stack_id(p, fr, n), th, rest, rest * 10000000, 0);
	}
	hm_profile_meta *m = hm_profile_meta_get(p);
	m->start_ns = t_ns;
	m->duration_ns = 10000000000ull;
	m->period_ns = 10000000;
	char v[64];
	snprintf(v, sizeof v, "service-%d", svc);
	hm_profile_set_label(p, "service.name", v);
	hm_profile_set_label(p, "service.version", svc % 2 ? "1.4" : "1.5");
	hm_profile_set_label(p, "host.name", "bench-host");
	return p;
}

static char *mkdir_tmp(const char *base, const char *tag)
{
	char *d = malloc(512);
	snprintf(d, 512, "%s/bench-%s-XXXXXX", base, tag);
	if (!mkdtemp(d)) {
		perror("mkdtemp");
		exit(1);
	}
	return d;
}

static void query_path(hm_store *st, const char *path, const char *what, const char *service,
		       int64_t from, int64_t until)
{
	char f[32], u[32];
	snprintf(f, sizeof f, "%lld", (long long)from);
	snprintf(u, sizeof u, "%lld", (long long)until);
	hm_http_req rq = {.method = "GET", .path = path, .now_s = until};
	rq.arg_k[rq.nargs] = "from";
	rq.arg_v[rq.nargs++] = f;
	rq.arg_k[rq.nargs] = "until";
	rq.arg_v[rq.nargs++] = u;
	if (service) {
		rq.arg_k[rq.nargs] = "service";
		rq.arg_v[rq.nargs++] = service;
	}
	double best = 1e9;
	size_t len = 0;
	for (int rep = 0; rep < 3; rep++) {
		hm_http_resp rs = {0};
		double t0 = hm_mono_s();
		hm_api_handle(st, &rq, &rs);
		double dt = hm_mono_s() - t0;
		if (rs.status != 200) {
			fprintf(stderr, "query failed: %d %s\n", rs.status, rs.body);
			exit(1);
		}
		len = rs.len;
		free(rs.body);
		best = dt < best ? dt : best;
	}
	printf("  %-10s %-28s %8.1f ms  (%zu bytes of JSON)\n", path + 8, what, best * 1000, len);
	fflush(stdout);
}

static void query(hm_store *st, const char *what, const char *service, int64_t from,
		  int64_t until)
{
	query_path(st, "/api/v1/flamegraph", what, service, from, until);
}

int main(int argc, char **argv)
{
	int windows = 30, hours = 24, nsvc = 20, keep = 0;
	const char *base = "/tmp", *pg = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--windows"))
			windows = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--hours"))
			hours = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--services"))
			nsvc = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--dir"))
			base = argv[i + 1];
		else if (!strcmp(argv[i], "--pg"))
			pg = argv[i + 1];
		else if (!strcmp(argv[i], "--keep"))
			keep = atoi(argv[i + 1]);
	}
	int64_t t_end = (int64_t)time(NULL);
	t_end -= t_end % 60;

	/* ---- 1. ingest ---- */
	const int agents = 100;
	service *svcs = calloc((size_t)(agents > nsvc ? agents : nsvc), sizeof *svcs);
	for (int a = 0; a < agents; a++)
		make_service(&svcs[a]);
	size_t nreq = (size_t)agents * (size_t)windows;
	unsigned char **bodies = calloc(nreq, sizeof *bodies);
	size_t *lens = calloc(nreq, sizeof *lens), wire = 0;
	for (int w = 0; w < windows; w++)
		for (int a = 0; a < agents; a++) {
			uint64_t t = (uint64_t)(t_end - (windows - w) * 10) * 1000000000ull;
			hm_profile *p = make_window(&svcs[a], a, t);
			unsigned char *raw;
			size_t rl;
			size_t i = (size_t)w * agents + (size_t)a;
			if (hm_encode_otlp(p, &raw, &rl) < 0 || hm_gzip(raw, rl, &bodies[i], &lens[i]) < 0)
				return fprintf(stderr, "encode failed\n"), 1;
			wire += lens[i];
			free(raw);
			hm_profile_free(p);
		}
	char *dir1 = mkdir_tmp(base, "ingest");
	hm_store *st;
	if (hm_store_open(dir1, NULL, &st) < 0)
		return fprintf(stderr, "open failed\n"), 1;
	double t0 = hm_mono_s(), c0 = cpu_s();
	for (size_t i = 0; i < nreq; i++) {
		hm_http_req rq = {.method = "POST", .path = "/v1development/profiles",
				  .content_type = "application/x-protobuf",
				  .content_encoding = "gzip", .body = bodies[i],
				  .body_len = lens[i], .max_body = HM_SERVER_MAX_BODY,
				  .now_s = t_end};
		hm_http_resp rs = {0};
		hm_ingest_handle(st, &rq, &rs);
		if (rs.status != 200)
			return fprintf(stderr, "ingest failed: %d %s\n", rs.status, rs.body), 1;
		free(rs.body);
	}
	double dt = hm_mono_s() - t0, dc = cpu_s() - c0;
	hm_store_stats s;
	hm_store_stats_get(st, &s);
	printf("ingest: %zu OTLP profiles (100 agents x %d windows of 10 s, %d samples each, "
	       "%.1f KiB gzip each)\n", nreq, windows, SAMPLES_PER_WINDOW,
	       wire / 1024.0 / (double)nreq);
	printf("  %.0f profiles/s, %.0f samples/s  (%.2f s); 100 agents need 10 profiles/s\n",
	       nreq / dt, nreq * (double)SAMPLES_PER_WINDOW / dt, dt);
	printf("  CPU: %.2f s, %.0f profiles per CPU second\n", dc, nreq / dc);
	printf("disk: %.2f MiB for %lld rows (%lld stacks, %lld frames): %.1f bytes/row, "
	       "%.2f bytes/sample\n", s.bytes / 1048576.0, (long long)s.nsamples,
	       (long long)s.nstacks, (long long)s.nframes, (double)s.bytes / (double)s.nsamples,
	       (double)s.bytes / ((double)nreq * SAMPLES_PER_WINDOW));
	hm_store_close(st);
	for (size_t i = 0; i < nreq; i++)
		free(bodies[i]);
	free(bodies);
	free(lens);

	/* ---- 3. query over 24 h ---- */
	char *dir2 = pg ? strdup(pg) : mkdir_tmp(base, "query");
	hm_store_opts o = {.downsample_after_s = 3600};
	if (hm_store_open(dir2, &o, &st) < 0)
		return fprintf(stderr, "open failed\n"), 1;
	int per_svc = hours * 360;
	t0 = hm_mono_s();
	c0 = cpu_s();
	for (int w = 0; w < per_svc; w++)
		for (int v = 0; v < nsvc; v++) {
			int64_t t = t_end - (int64_t)(per_svc - w) * 10;
			hm_profile *p = make_window(&svcs[v], v, (uint64_t)t * 1000000000ull);
			char name[32];
			snprintf(name, sizeof name, "service-%d", v);
			hm_store_label l[] = {{"service_name", name}, {"version", v % 2 ? "1.4" : "1.5"}};
			if (hm_store_put(st, "process_cpu", l, 2, t, p) < 0)
				return fprintf(stderr, "put failed\n"), 1;
			hm_profile_free(p);
		}
	dt = hm_mono_s() - t0;
	dc = cpu_s() - c0;
	hm_store_stats_get(st, &s);
	printf("query data: %d services x %d h of 10 s windows = %d profiles, stored in %.1f s "
	       "(%.0f profiles/s; %.1f s CPU, %.0f per CPU second); %.1f MiB, %.1f bytes/row, "
	       "%.2f bytes/sample\n", nsvc, hours, per_svc * nsvc, dt, per_svc * nsvc / dt, dc,
	       per_svc * nsvc / dc, s.bytes / 1048576.0,
	       (double)s.bytes / (double)s.nsamples,
	       (double)s.bytes / ((double)per_svc * nsvc * SAMPLES_PER_WINDOW));
	fflush(stdout);
	int64_t from = t_end - (int64_t)hours * 3600;
	query(st, "24 h, one service", "service-3", from, t_end);
	query(st, "24 h, all 20 services", NULL, from, t_end);
	query(st, "1 h, one service", "service-3", t_end - 3600, t_end);
	query(st, "1 h, all 20 services", NULL, t_end - 3600, t_end);
	query_path(st, "/api/v1/top", "24 h, all 20 services", NULL, from, t_end);
	query_path(st, "/api/v1/timeseries", "24 h, all 20 services", NULL, from, t_end);
	if (keep) {
		hm_store_close(st);
		char rm[1200];
		snprintf(rm, sizeof rm, "rm -rf %s", dir1);
		if (system(rm) != 0)
			fprintf(stderr, "could not remove %s\n", dir1);
		printf("kept: %s\n", dir2);
		return 0;
	}
	t0 = hm_mono_s();
	hm_store_maintain(st, t_end);
	dt = hm_mono_s() - t0;
	hm_store_stats_get(st, &s);
	printf("downsampled all but the last hour to 1 min buckets in %.1f s: %.1f MiB, "
	       "%lld rows\n", dt, s.bytes / 1048576.0, (long long)s.nsamples);
	fflush(stdout);
	query(st, "24 h, one service", "service-3", from, t_end);
	query(st, "24 h, all 20 services", NULL, from, t_end);
	query(st, "1 h, all 20 services", NULL, t_end - 3600, t_end);
	/* 23 h 30 min: hourly rollups for whole hours, raw buckets at both edges */
	query(st, "23.5 h (ragged), all services", NULL, from + 1800, t_end - 1);
	o.retention_s = 12 * 3600;
	hm_store_close(st);
	if (hm_store_open(dir2, &o, &st) < 0)
		return fprintf(stderr, "reopen failed\n"), 1;
	t0 = hm_mono_s();
	hm_store_maintain(st, t_end);
	dt = hm_mono_s() - t0;
	hm_store_stats_get(st, &s);
	printf("retention 12 h in %.1f s: %.1f MiB, %lld rows\n", dt, s.bytes / 1048576.0,
	       (long long)s.nsamples);
	hm_store_close(st);
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir1, pg ? "" : dir2);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", cmd);
	free(dir1);
	free(dir2);
	free(svcs);
	return 0;
}
