/* fuzz_querier.c - the Connect querier API (server/querier.c): any body as
 * any method's request, in JSON or protobuf, against a SQLite store holding
 * a few series of two-valued and five-part profile types.
 *
 * Input: one byte that picks the method (index into `methods`, one past
 * the end is an unknown method), one byte whose low bit picks JSON (1) or
 * protobuf (0), then the request body. Replies must be Connect-shaped:
 * 200 or a 4xx with a JSON error, never 500 for a body. */
#include <dirent.h>
#include <unistd.h>

#include "fuzz_server.h"
#include "server/querier.h"

static const char *const methods[] = {
	"ProfileTypes", "LabelNames", "LabelValues", "Series", "SelectMergeStacktraces",
	"SelectMergeSpanProfile", "SelectMergeProfile", "SelectSeries", "Diff",
	"GetProfileStats", "Nope",
};

#define NOW 1700000000

static hm_store *store;
static char dir[] = "/tmp/homura-fuzz-querier.XXXXXX";

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

/* spans: under a span series' two pseudo frames (server/spans.h). */
static void put_as(const char *type, const char *svc, const char *ep, int64_t t, int64_t n,
		   int spans)
{
	hm_profile *p = hm_profile_new(0);
	uint32_t th = hm_profile_thread_id(p, 1, 1, "main");
	hm_frame tr = {hm_profile_intern_cstr(p, "trace: 4bf92f3577b34da6a3ce929d0e0e4736"), 0, 0,
		       0, HM_FRAME_OTHER};
	hm_frame sp = {hm_profile_intern_cstr(p, "span: 00f067aa0ba902b7"), 0, 0, 0,
		       HM_FRAME_OTHER};
	hm_frame f = {hm_profile_intern_cstr(p, "main"), hm_profile_intern_cstr(p, "app.py"), 3,
		      1, HM_FRAME_PYTHON};
	hm_frame g = {hm_profile_intern_cstr(p, "work"), hm_profile_intern_cstr(p, "app.py"), 9,
		      8, HM_FRAME_PYTHON};
	uint32_t fr[4] = {hm_profile_frame_id(p, &tr), hm_profile_frame_id(p, &sp),
			  hm_profile_frame_id(p, &f), hm_profile_frame_id(p, &g)};
	const uint32_t *code = spans ? fr : fr + 2;
	hm_profile_add(p, hm_profile_stack_id(p, code, spans ? 4 : 2), th, n, n * 10000000, 0);
	hm_profile_add(p, hm_profile_stack_id(p, code, spans ? 3 : 1), th, 1, 10000000, 0);
	if (spans)
		hm_profile_add(p, hm_profile_stack_id(p, fr, 2), th, 1, 10000000, 0);
	hm_store_label l[2] = {{"endpoint", ep}, {"service_name", svc}};
	if (hm_store_put(store, type, l, 2, t, p) != 0) {
		fprintf(stderr, "fuzz_querier: put: %s\n", hm_errmsg());
		abort();
	}
	hm_profile_free(p);
}

static void put(const char *type, const char *svc, const char *ep, int64_t t, int64_t n)
{
	put_as(type, svc, ep, t, n, 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!mkdtemp(dir) || hm_store_open(dir, NULL, &store) != 0) {
		fprintf(stderr, "fuzz_querier: cannot open a store in %s: %s\n", dir,
			hm_errmsg());
		abort();
	}
	atexit(cleanup);
	put("process_cpu", "api", "/a", NOW - 100, 5);
	put("wall", "api", "/b", NOW - 4000, 7);
	put("memory.alloc_space.bytes.space.bytes", "worker", "/a", NOW - 30, 3);
	put_as("process_cpu_spans", "api", "/a", NOW - 100, 4, 1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size > 8192)
		return 0;
	char path[128];
	snprintf(path, sizeof path, "/querier.v1.QuerierService/%s",
		 methods[data[0] % (sizeof methods / sizeof methods[0])]);
	hm_http_req rq;
	memset(&rq, 0, sizeof rq);
	rq.method = "POST";
	rq.path = path;
	rq.content_type = data[1] & 1 ? "application/json" : "application/proto";
	rq.body = data + 2;
	rq.body_len = size - 2;
	rq.max_body = 1 << 20;
	rq.now_s = NOW;
	FUZZ_ASSERT(hm_querier_path(path));
	hm_http_resp rs;
	memset(&rs, 0, sizeof rs);
	hm_querier_handle(store, &rq, &rs);
	fuzz_check_reply(&rs);
	FUZZ_ASSERT(rs.status != 500);
	FUZZ_ASSERT(rs.status == 200 || (rs.content_type &&
					 !strcmp(rs.content_type, "application/json")));
	free(rs.body);
	return 0;
}
