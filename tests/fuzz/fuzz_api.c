/* fuzz_api.c - the query API's parameters: times, durations, sizes and every
 * GET endpoint's arguments (from/until/step/max_nodes/limit/label/query/...),
 * the dashboard's files and /api/v1/source (its file= checks), against a
 * SQLite store holding a few series.
 *
 * Input: one byte that picks the endpoint, then the query string
 * ("k=v&k=v", already URL-decoded). Every argument value also goes through
 * hm_parse_time, hm_parse_duration and hm_parse_size. The store lives in a
 * temporary directory removed at exit. */
#include <dirent.h>
#include <unistd.h>

#include "base/parse.h"
#include "fuzz_server.h"

static const char *const paths[] = {
	"/ready", "/api/v1/services", "/api/v1/profile_types", "/api/v1/labels",
	"/api/v1/label_values", "/api/v1/series", "/api/v1/timeseries", "/api/v1/flamegraph",
	"/api/v1/top", "/api/v1/diff", "/api/v1/download", "/pyroscope/render",
	"/pyroscope/labels", "/pyroscope/label-values", "/nope", "/api/v1/source", "/",
	"/ui/app.js",
};

#define NOW 1700000000

static hm_store *store;
static char dir[] = "/tmp/homura-fuzz-api.XXXXXX";

static void cleanup(void)
{
	hm_store_close(store);
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(dirfd(d), e->d_name, 0);
	if (d)
		closedir(d);
	rmdir(dir);
}

static void put(const char *type, const char *svc, const char *ver, int64_t t, int64_t n)
{
	hm_profile *p = hm_profile_new(0);
	uint32_t th = hm_profile_thread_id(p, 1, 1, "main");
	hm_frame f = {hm_profile_intern_cstr(p, "main"), hm_profile_intern_cstr(p, "app.py"), 3,
		      1, HM_FRAME_PYTHON};
	hm_frame g = {hm_profile_intern_cstr(p, "work"), hm_profile_intern_cstr(p, "app.py"), 9,
		      8, HM_FRAME_PYTHON};
	uint32_t fr[2] = {hm_profile_frame_id(p, &f), hm_profile_frame_id(p, &g)};
	hm_profile_add(p, hm_profile_stack_id(p, fr, 2), th, n, n * 10000000, 0);
	hm_profile_add(p, hm_profile_stack_id(p, fr, 1), th, 1, 10000000, 0);
	hm_store_label l[2] = {{"service_name", svc}, {"version", ver}};
	if (hm_store_put(store, type, l, 2, t, p) != 0) {
		fprintf(stderr, "fuzz_api: put: %s\n", hm_errmsg());
		abort();
	}
	hm_profile_free(p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!mkdtemp(dir) || hm_store_open(dir, NULL, &store) != 0) {
		fprintf(stderr, "fuzz_api: cannot open a store in %s: %s\n", dir, hm_errmsg());
		abort();
	}
	atexit(cleanup);
	put("process_cpu", "api", "1.0", NOW - 100, 5);
	put("process_cpu", "api", "1.1", NOW - 4000, 7);
	put("wall", "worker", "2", NOW - 30, 3);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	char *args = strndup((const char *)data + 1, size - 1);
	if (!args)
		return 0;
	hm_http_req rq;
	memset(&rq, 0, sizeof rq);
	rq.method = "GET";
	rq.path = paths[data[0] % (sizeof paths / sizeof paths[0])];
	rq.now_s = NOW;
	fuzz_args(&rq, args);
	for (size_t i = 0; i < rq.nargs; i++) {
		int64_t v;
		if (hm_parse_time(rq.arg_v[i], NOW, &v) == 0 && strncmp(rq.arg_v[i], "now", 3))
			FUZZ_ASSERT(v >= 0);
		if (hm_parse_duration(rq.arg_v[i], &v) == 0)
			FUZZ_ASSERT(v >= 0);
		if (hm_parse_size(rq.arg_v[i], &v) == 0)
			FUZZ_ASSERT(v >= 0);
	}
	hm_http_resp rs;
	memset(&rs, 0, sizeof rs);
	hm_api_handle(store, &rq, &rs);
	fuzz_check_reply(&rs);
	FUZZ_ASSERT(rs.status != 500);
	free(rs.body);
	free(args);
	return 0;
}
