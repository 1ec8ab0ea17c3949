/* test_store.c - the profile store (store.h) and the server's request
 * handlers (server.h): round trip, reopen, selectors, label validation,
 * retention and downsampling, the size cap, ingest and query through
 * hm_ingest_handle / hm_api_handle without sockets.
 *
 * Every store test runs against both engines, so that their behaviour cannot
 * drift apart: SQLite on a temporary directory, and PostgreSQL on a fresh
 * database of a cluster this program starts itself (initdb into a temporary
 * directory, trust auth, a Unix socket only, run as the postgres user when
 * we are root) and stops at the end, even if it dies: a watchdog process
 * stops the cluster once our end of a pipe closes. Without PostgreSQL's
 * server binaries the [postgres] cases are skipped, saying why. */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <pwd.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <postgresql/libpq-fe.h>

#include "base/error.h"
#include "base/parse.h"
#include "base/profile.h"
#include "format/codec.h"
#include "server/server.h"
#include "store/store.h"

/* ---- engines ---- */

enum { SQLITE, POSTGRES };

static char tmpdir[64];          /* SQLite: the store's directory */
static char where_buf[512];      /* the current test's store location */

static char pg_base[64];         /* the cluster's directory (socket, data, log) */
static char pg_as_user[64];      /* "runuser -u postgres -- " when root */
static char pg_bindir[256];
static const char *pg_unavailable;   /* why the [postgres] cases are skipped */
static int pg_dbs;               /* databases created so far */
static int pg_watch_fd = -1;     /* closing it stops the cluster */
static pid_t pg_watchdog;
#define PG_PORT 5432             /* the socket lives in pg_base: no clash */

static void pg_stop_cluster(void)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "%s%s/pg_ctl -D %s/data -m immediate -w stop >/dev/null 2>&1;"
		 " rm -rf %s", pg_as_user, pg_bindir, pg_base, pg_base);
	if (system(cmd) != 0)
		fprintf(stderr, "test_store: could not stop the cluster in %s\n", pg_base);
}

static int pg_start_cluster(void)
{
	glob_t g;
	char cmd[2048];
	if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) != 0 || !g.gl_pathc) {
		pg_unavailable = "PostgreSQL server binaries not installed "
				 "(apt-get install postgresql)";
		return 0;
	}
	snprintf(pg_bindir, sizeof pg_bindir, "%s", g.gl_pathv[g.gl_pathc - 1]);
	globfree(&g);
	*strrchr(pg_bindir, '/') = 0;
	strcpy(pg_base, "/tmp/homura-pgstore-XXXXXX");
	if (!mkdtemp(pg_base)) {
		pg_unavailable = "cannot create a directory for the cluster";
		return 0;
	}
	chmod(pg_base, 0755);
	if (geteuid() == 0) {   /* initdb refuses root */
		struct passwd *pw = getpwnam("postgres");
		if (!pw || chown(pg_base, pw->pw_uid, pw->pw_gid) != 0) {
			pg_unavailable = "running as root without a 'postgres' user";
			rmdir(pg_base);
			return 0;
		}
		strcpy(pg_as_user, "runuser -u postgres -- ");
	}
	snprintf(cmd, sizeof cmd,
		 "%s%s/initdb -D %s/data --auth=trust -U postgres -E UTF8 --no-sync"
		 " >%s/initdb.log 2>&1 && %s%s/pg_ctl -D %s/data -l %s/log -w -t 120 -o"
		 " \"-k %s -p %d -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
		 " -c full_page_writes=off\" start >/dev/null 2>&1",
		 pg_as_user, pg_bindir, pg_base, pg_base, pg_as_user, pg_bindir, pg_base, pg_base,
		 pg_base, PG_PORT);
	if (system(cmd) != 0) {
		fprintf(stderr, "test_store: cannot start PostgreSQL (logs in %s)\n", pg_base);
		pg_unavailable = "the PostgreSQL cluster did not start";
		pg_stop_cluster();
		return -1;
	}
	/* The watchdog stops the cluster when our write end closes: at the end,
	 * or when this process dies however it dies. */
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0 || (pg_watchdog = fork()) < 0) {
		pg_stop_cluster();
		return -1;
	}
	if (pg_watchdog == 0) {
		char c;
		close(fds[1]);
		setsid();
		signal(SIGINT, SIG_IGN);
		while (read(fds[0], &c, 1) < 0 && errno == EINTR)
			;
		pg_stop_cluster();
		_exit(0);
	}
	close(fds[0]);
	pg_watch_fd = fds[1];
	return 0;
}

static int group_setup(void **state)
{
	return pg_start_cluster();
}

static int group_teardown(void **state)
{
	if (pg_watch_fd >= 0) {
		close(pg_watch_fd);
		waitpid(pg_watchdog, NULL, 0);
	}
	return 0;
}

/* The engine of this test (its initial state); 0 SQLite, 1 PostgreSQL. */
static int engine_of(void **state)
{
	return *state ? *(const int *)*state : SQLITE;
}

/* A fresh, empty store location for this test. */
static int setup(void **state)
{
	if (engine_of(state) == SQLITE) {
		strcpy(tmpdir, "/tmp/homura-store-XXXXXX");
		assert_non_null(mkdtemp(tmpdir));
		snprintf(where_buf, sizeof where_buf, "%s", tmpdir);
		return 0;
	}
	where_buf[0] = 0;
	if (pg_unavailable)
		return 0;            /* the test skips */
	char conn[256], sql[128];
	snprintf(conn, sizeof conn, "host=%s port=%d user=postgres dbname=postgres", pg_base,
		 PG_PORT);
	PGconn *c = PQconnectdb(conn);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	snprintf(sql, sizeof sql, "CREATE DATABASE hm_test_%d", ++pg_dbs);
	PGresult *r = PQexec(c, sql);
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	PQfinish(c);
	snprintf(where_buf, sizeof where_buf, "postgresql:///hm_test_%d?host=%s&port=%d&user=postgres",
		 pg_dbs, pg_base, PG_PORT);
	return 0;
}

static int teardown(void **state)
{
	if (engine_of(state) == SQLITE) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
		assert_int_equal(system(cmd), 0);
	}
	return 0;
}

/* The store location of this test; skips it when its engine is missing. */
static const char *store_where(void **state)
{
	if (engine_of(state) == POSTGRES && pg_unavailable) {
		print_message("      skipped: %s\n", pg_unavailable);
		skip();
	}
	return where_buf;
}

static uint32_t frame(hm_profile *p, const char *name, const char *file, int line)
{
	hm_frame f = {0};
	f.name = hm_profile_intern_cstr(p, name);
	f.file = hm_profile_intern_cstr(p, file);
	f.line = line;
	return hm_profile_frame_id(p, &f);
}

/* main -> work (x count) and main -> idle (y count), 10 ms a sample */
static hm_profile *make_profile(int64_t work, int64_t idle)
{
	hm_profile *p = hm_profile_new(0);
	uint32_t th = hm_profile_thread_id(p, 1, 1, NULL);
	uint32_t a[2] = {frame(p, "main", "app.py", 3), frame(p, "work", "app.py", 10)};
	uint32_t b[2] = {a[0], frame(p, "idle", "lib.py", 7)};
	hm_profile_add(p, hm_profile_stack_id(p, a, 2), th, work, work * 10000000, 0);
	hm_profile_add(p, hm_profile_stack_id(p, b, 2), th, idle, idle * 10000000, 0);
	return p;
}

static int64_t count_of(const hm_profile *p, const char *leaf)
{
	int64_t n = 0;
	for (size_t i = 0; i < hm_profile_nsamples(p); i++) {
		const hm_sample *s = hm_profile_sample(p, i);
		uint32_t d;
		const uint32_t *fr = hm_profile_stack(p, s->stack, &d);
		if (d && !strcmp(hm_profile_str(p, hm_profile_frame(p, fr[d - 1])->name), leaf))
			n += s->count;
	}
	return n;
}

static hm_profile *select_text(hm_store *st, const char *q, int64_t t0, int64_t t1)
{
	hm_selector sel;
	assert_int_equal(hm_selector_parse(q, &sel), 0);
	hm_profile *p = NULL;
	assert_int_equal(hm_store_select(st, &sel, t0, t1, &p), 0);
	hm_selector_free(&sel);
	return p;
}

static void test_round_trip_and_reopen(void **state)
{
	const char *where = store_where(state);
	hm_store *st;
	assert_int_equal(hm_store_open(where, NULL, &st), 0);
	hm_store_label l14[] = {{"service_name", "api"}, {"version", "1.4"}};
	hm_store_label l15[] = {{"version", "1.5"}, {"service_name", "api"}};   /* unsorted */
	hm_profile *p = make_profile(30, 10);
	assert_int_equal(hm_store_put(st, "process_cpu", l14, 2, 1000, p), 0);
	assert_int_equal(hm_store_put(st, "process_cpu", l14, 2, 1005, p), 0);  /* same bucket */
	assert_int_equal(hm_store_put(st, "process_cpu", l15, 2, 1020, p), 0);
	hm_profile_free(p);
	p = make_profile(5, 0);
	assert_int_equal(hm_store_put(st, "wall", l15, 2, 1020, p), 0);
	hm_profile_free(p);

	for (int pass = 0; pass < 2; pass++) {
		hm_profile *a = select_text(st, "process_cpu{version=\"1.4\"}", 0, 2000);
		assert_int_equal(count_of(a, "work"), 60);
		assert_int_equal(count_of(a, "idle"), 20);
		assert_int_equal(hm_profile_total_weight(a), 80 * 10000000LL);
		hm_profile_free(a);
		a = select_text(st, "process_cpu{service_name=\"api\"}", 0, 2000);
		assert_int_equal(count_of(a, "work"), 90);
		hm_profile_free(a);
		a = select_text(st, "process_cpu{version=~\"1\\\\.[45]\",version!=\"1.4\"}", 0, 2000);
		assert_int_equal(count_of(a, "work"), 30);
		hm_profile_free(a);
		a = select_text(st, "wall{}", 0, 2000);
		assert_int_equal(count_of(a, "work"), 5);
		hm_profile_free(a);
		a = select_text(st, "process_cpu", 1010, 2000);   /* time range */
		assert_int_equal(count_of(a, "work"), 30);
		hm_profile_free(a);

		hm_series_list sl;
		assert_int_equal(hm_store_series(st, &sl), 0);
		assert_int_equal(sl.n, 3);
		assert_string_equal(sl.v[1].labels[0].name, "service_name");
		assert_string_equal(hm_series_label(&sl.v[1], "version"), "1.5");
		hm_series_list_free(&sl);

		hm_selector sel;
		assert_int_equal(hm_selector_parse("process_cpu:samples:count:cpu:nanoseconds", &sel), 0);
		assert_int_equal(sel.value_kind, HM_VALUE_COUNT);
		int64_t v[4];
		assert_int_equal(hm_store_timeseries(st, &sel, 1000, 1040, 10, v, 4), 0);
		assert_int_equal(v[0], 80);
		assert_int_equal(v[1], 0);
		assert_int_equal(v[2], 40);
		hm_selector_free(&sel);

		/* second pass: the same answers from a reopened store */
		hm_store_close(st);
		assert_int_equal(hm_store_open(where, NULL, &st), 0);
	}
	hm_store_stats s;
	assert_int_equal(hm_store_stats_get(st, &s), 0);
	assert_int_equal(s.nstacks, 2);     /* stacks stored once */
	assert_int_equal(s.nframes, 3);
	assert_int_equal(s.nsamples, 5);    /* (series, bucket, stack) rows; zero rows skipped */
	hm_store_close(st);
}

static void test_bad_labels_leave_store_intact(void **state)
{
	const char *where = store_where(state);
	hm_store *st;
	assert_int_equal(hm_store_open(where, NULL, &st), 0);
	hm_profile *p = make_profile(1, 1);
	char longv[HM_STORE_MAX_VALUE + 2];
	memset(longv, 'x', sizeof longv - 1);
	longv[sizeof longv - 1] = 0;
	hm_store_label bad1[] = {{"bad name", "x"}};
	hm_store_label bad2[] = {{"k", longv}};
	hm_store_label bad3[] = {{"k", "a"}, {"k", "b"}};
	assert_int_equal(hm_store_put(st, "process_cpu", bad1, 1, 100, p), -6);
	assert_int_equal(hm_store_put(st, "process_cpu", bad2, 1, 100, p), -6);
	assert_int_equal(hm_store_put(st, "process_cpu", bad3, 2, 100, p), -6);
	assert_int_equal(hm_store_put(st, "bad type!", NULL, 0, 100, p), -6);
	hm_series_list sl;
	assert_int_equal(hm_store_series(st, &sl), 0);
	assert_int_equal(sl.n, 0);
	hm_series_list_free(&sl);
	hm_profile_free(p);
	hm_store_close(st);
}

static void test_retention_and_downsampling(void **state)
{
	const char *where = store_where(state);
	hm_store *st;
	hm_store_opts o = {.retention_s = 3600, .downsample_after_s = 600};
	assert_int_equal(hm_store_open(where, &o, &st), 0);
	hm_store_label l[] = {{"service_name", "api"}};
	hm_profile *p = make_profile(2, 1);
	int64_t now = 100020;   /* now - 1200 starts a minute */
	/* six 10 s windows of one minute, 20 minutes ago, and one 2 h ago */
	for (int i = 0; i < 6; i++)
		assert_int_equal(hm_store_put(st, "process_cpu", l, 1, now - 1200 + i * 10, p), 0);
	assert_int_equal(hm_store_put(st, "process_cpu", l, 1, now - 7200, p), 0);
	assert_int_equal(hm_store_put(st, "process_cpu", l, 1, now - 10, p), 0);
	hm_profile_free(p);
	assert_int_equal(hm_store_maintain(st, now), 0);
	hm_profile *a = select_text(st, "process_cpu", 0, now + 10);
	assert_int_equal(count_of(a, "work"), 7 * 2);     /* the 2 h old one is gone */
	hm_profile_free(a);
	hm_store_stats s;
	assert_int_equal(hm_store_stats_get(st, &s), 0);
	/* 6 x 2 stacks folded into one 1-minute bucket (2 rows) + the recent 2 */
	assert_int_equal(s.nsamples, 4);
	hm_store_close(st);
}

static void test_selector_syntax(void **state)
{
	hm_selector s;
	assert_int_equal(hm_selector_parse("", &s), 0);
	assert_null(s.type);
	hm_selector_free(&s);
	assert_int_equal(hm_selector_parse("{a=\"1\", b!~\"x.*\"}", &s), 0);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.m[1].op, HM_MATCH_NRE);
	hm_selector_free(&s);
	assert_true(hm_selector_parse("cpu{a=1}", &s) < 0);
	assert_true(hm_selector_parse("cpu{a=\"1\"", &s) < 0);
	assert_true(hm_selector_parse("cpu{a=~\"(\"}", &s) < 0);
	assert_true(hm_selector_parse("cpu{=\"1\"}", &s) < 0);
	assert_true(hm_selector_parse("cpu{a=\"1\"} junk", &s) < 0);
	int64_t t;
	assert_int_equal(hm_parse_time("now-1h", 10000, &t), 0);
	assert_int_equal(t, 10000 - 3600);
	assert_int_equal(hm_parse_time("1700000000000", 0, &t), 0);
	assert_int_equal(t, 1700000000);
	assert_true(hm_parse_time("yesterday", 0, &t) < 0);
	assert_int_equal(hm_parse_duration("7d", &t), 0);
	assert_int_equal(t, 7 * 86400);
	assert_int_equal(hm_parse_size("2G", &t), 0);
	assert_int_equal(t, 2LL << 30);
}

/* One size parser for the server (--max-size, --max-body) and the agent
 * (--dir-max-size, --queue-max-bytes, --spool-max-bytes): the forms either
 * accepted before are accepted, anything else refused. */
static void test_parse_size(void **state)
{
	(void)state;
	static const struct { const char *in; int64_t want; } ok[] = {
		{"0", 0}, {"600", 600}, {"1048576", 1048576}, {"100B", 100},
		{"512K", 512LL << 10}, {"512k", 512LL << 10}, {"64M", 64LL << 20},
		{"64m", 64LL << 20}, {"64MB", 64LL << 20}, {"64MiB", 64LL << 20},
		{"64Mi", 64LL << 20}, {"1G", 1LL << 30}, {"2g", 2LL << 30}, {"1T", 1LL << 40},
		{"1.5G", 3LL << 29}, {"0.5K", 512}, {"1024T", 1LL << 50}, {"1125899906842624", 1LL << 50},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		int64_t v = -1;
		if (hm_parse_size(ok[i].in, &v) != 0 || v != ok[i].want)
			fail_msg("'%s': rc/value %lld, want %lld", ok[i].in, (long long)v,
				 (long long)ok[i].want);
	}
	static const char *bad[] = {
		"", "M", "-1", "-1M", "1.5.5", "12X", "12 M", "64MBB", "64iB", "64BM", "1e3",
		"0x10", "inf", "nan", "1025T", "1125899906842625", "99999999999999999999999",
		"1P", "64M ",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t v = 7;
		if (hm_parse_size(bad[i], &v) != HM_EINVAL || v != 7)
			fail_msg("'%s' was accepted (%lld)", bad[i], (long long)v);
	}
}

/* a profile with nstk distinct stacks (main -> fN), each with count n */
static hm_profile *make_wide(int nstk, int64_t n, int salt)
{
	hm_profile *p = hm_profile_new(0);
	uint32_t th = hm_profile_thread_id(p, 1, 1, NULL);
	char name[64];
	for (int i = 0; i < nstk; i++) {
		snprintf(name, sizeof name, "function_%d_with_a_long_enough_name", (i * 7 + salt) % 97);
		uint32_t fr[3] = {frame(p, "main", "app.py", 1), frame(p, "handler", "app.py", 5),
				  frame(p, name, "mod.py", 10 + i)};
		hm_profile_add(p, hm_profile_stack_id(p, fr, 3), th, n, n * 10000000, 0);
	}
	return p;
}

static int64_t total_of(hm_store *st, int64_t t0, int64_t t1)
{
	hm_profile *a = select_text(st, "process_cpu", t0, t1);
	int64_t n = hm_profile_total_count(a);
	hm_profile_free(a);
	return n;
}

/* Queries over whole hours read the hourly rollups and the edges raw
 * buckets; every range must give exactly what the raw data holds, before and
 * after downsampling and after a retention cut inside an hour. */
static void test_rollup_ranges(void **state)
{
	const char *where = store_where(state);
	hm_store *st;
	assert_int_equal(hm_store_open(where, NULL, &st), 0);
	hm_store_label l[] = {{"service_name", "api"}};
	const int64_t base = 36000 * 10;     /* on an hour */
	/* 5 h of 10 s windows; window k holds k % 7 + 1 samples per stack, 3 stacks */
	for (int k = 0; k < 5 * 360; k++) {
		hm_profile *p = make_wide(3, k % 7 + 1, k % 5);
		assert_int_equal(hm_store_put(st, "process_cpu", l, 1, base + k * 10, p), 0);
		hm_profile_free(p);
	}
#define EXPECT(t0, t1) ({ int64_t e_ = 0; \
	for (int k = 0; k < 5 * 360; k++) if (base + k * 10 >= (t0) && base + k * 10 < (t1)) \
		e_ += 3 * (k % 7 + 1); e_; })
	int64_t ranges[][2] = {{base, base + 5 * 3600}, {base + 1234, base + 4 * 3600 + 77},
			       {base + 3600, base + 7200}, {base + 50, base + 3000},
			       {base + 3590, base + 7210}, {0, base + 99999}};
	for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
		assert_int_equal(total_of(st, ranges[i][0], ranges[i][1]),
				 EXPECT(ranges[i][0], ranges[i][1]));
	hm_store_close(st);
	/* downsample everything older than 1 h before the end: minute-aligned
	 * ranges must still agree */
	hm_store_opts o = {.downsample_after_s = 3600, .retention_s = 4 * 3600 + 1800};
	assert_int_equal(hm_store_open(where, &o, &st), 0);
	int64_t now = base + 5 * 3600;
	assert_int_equal(hm_store_maintain(st, now), 0);
	/* retention cut at base + 1800: gone before it, the hour it cuts rebuilt */
	int64_t cut = now - o.retention_s;
	assert_int_equal(total_of(st, 0, cut), 0);
	int64_t r2[][2] = {{0, base + 99999}, {base + 3600, base + 7200}, {base + 1800, base + 3600 * 3 + 60},
			   {base + 3600 * 3, base + 3600 * 4 + 120}};
	for (size_t i = 0; i < sizeof r2 / sizeof r2[0]; i++) {
		int64_t t0 = r2[i][0] < cut ? cut : r2[i][0];
		assert_int_equal(total_of(st, r2[i][0], r2[i][1]), EXPECT(t0, r2[i][1]));
	}
	/* timeseries (totals table) agrees with the flame graph sums */
	hm_selector sel;
	assert_int_equal(hm_selector_parse("process_cpu:samples:count:cpu:nanoseconds", &sel), 0);
	int64_t v[5];
	assert_int_equal(hm_store_timeseries(st, &sel, base, base + 5 * 3600, 3600, v, 5), 0);
	for (int h = 0; h < 5; h++)
		assert_int_equal(v[h], EXPECT(base + h * 3600 < cut ? cut : base + h * 3600,
					      base + (h + 1) * 3600));
	hm_selector_free(&sel);
#undef EXPECT
	hm_store_close(st);
}

/* Downsampling, retention and the size cap must make the file smaller
 * (SQLite), or at least free rows for reuse (PostgreSQL, whose tables keep
 * their size until compacted); the size cap must get under the cap by
 * dropping the oldest data, and only as much as needed, on both. */
static void pg_compact(const char *url)
{
	PGconn *c = PQconnectdb(url);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	PGresult *r = PQexec(c, "VACUUM FULL");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	PQfinish(c);
}

static void test_maintenance_shrinks_file(void **state)
{
	const char *where = store_where(state);
	hm_store *st;
	assert_int_equal(hm_store_open(where, NULL, &st), 0);
	hm_store_label l[] = {{"service_name", "api"}}, l2[] = {{"service_name", "db"}};
	const int64_t base = 36000 * 20;
	const int hours = 4;
	for (int k = 0; k < hours * 360; k++) {
		/* 40 stacks a window, a different 40 of 80 each time: folding 6
		 * windows into a minute merges rows */
		hm_profile *p = make_wide(40, 1 + k % 3, k % 2);
		assert_int_equal(hm_store_put(st, "process_cpu", l, 1, base + k * 10, p), 0);
		hm_profile_free(p);
		if (k % 60 == 0) {     /* a second, sparse series: one sample a 10 min */
			p = make_wide(1, 1, 0);
			assert_int_equal(hm_store_put(st, "process_cpu", l2, 1, base + k * 10, p), 0);
			hm_profile_free(p);
		}
	}
	const int64_t db = hours * 6;
	int64_t all = total_of(st, 0, base + 99999) - db;
	hm_store_stats s0, s1, s2, s3;
	hm_store_close(st);
	/* a size cap far above: only folds the WAL in, for a fair "before" */
	hm_store_opts big = {.max_bytes = 1LL << 40};
	assert_int_equal(hm_store_open(where, &big, &st), 0);
	assert_int_equal(hm_store_maintain(st, base), 0);
	assert_int_equal(hm_store_stats_get(st, &s0), 0);
	hm_store_close(st);

	hm_store_opts o = {.downsample_after_s = 600};
	int64_t now = base + hours * 3600;
	assert_int_equal(hm_store_open(where, &o, &st), 0);
	assert_int_equal(hm_store_maintain(st, now), 0);
	assert_int_equal(hm_store_stats_get(st, &s1), 0);
	assert_int_equal(total_of(st, 0, base + 99999), all + db);   /* nothing lost */
	hm_profile *dbp = select_text(st, "process_cpu{service_name=\"db\"}", 0, base + 99999);
	assert_int_equal(hm_profile_total_count(dbp), db);           /* nor mixed up */
	hm_profile_free(dbp);
	print_message("      10 s buckets: %lld rows, %lld bytes; 1 min: %lld rows, %lld bytes\n",
		      (long long)s0.nsamples, (long long)s0.bytes, (long long)s1.nsamples,
		      (long long)s1.bytes);
	assert_true(s1.nsamples * 2 < s0.nsamples);
	if (engine_of(state) == SQLITE)
		assert_true(s1.bytes * 10 < s0.bytes * 7);     /* at least 30% smaller */
	hm_store_close(st);

	o.retention_s = 2 * 3600;
	assert_int_equal(hm_store_open(where, &o, &st), 0);
	assert_int_equal(hm_store_maintain(st, now), 0);
	if (engine_of(state) == POSTGRES)
		pg_compact(where);   /* the size of the data left, for the cap below */
	assert_int_equal(hm_store_stats_get(st, &s2), 0);
	print_message("      retention 2 h of 4: %lld bytes\n", (long long)s2.bytes);
	if (engine_of(state) == SQLITE)
		assert_true(s2.bytes < s1.bytes);
	assert_int_equal(total_of(st, 0, base + 99999), all / 2 + db / 2);
	hm_store_close(st);

	o.retention_s = 0;
	o.max_bytes = s2.bytes / 2;
	assert_int_equal(hm_store_open(where, &o, &st), 0);
	assert_int_equal(hm_store_maintain(st, now), 0);
	assert_int_equal(hm_store_stats_get(st, &s3), 0);
	int64_t left = total_of(st, 0, base + 99999);
	print_message("      size cap %lld: %lld bytes, %lld of %lld samples left\n",
		      (long long)o.max_bytes, (long long)s3.bytes, (long long)left,
		      (long long)(all + db) / 2);
	assert_true(s3.bytes <= o.max_bytes);
	/* the oldest data goes, not nearly all of it */
	assert_true(left >= (all + db) / 2 / 8 && left < (all + db) / 2);
	assert_int_equal(total_of(st, now - 600, now), total_of(st, now - 600, now + 10));
	assert_true(total_of(st, now - 600, now) > 0);      /* the newest data stays */
	/* under the cap now: the next maintenance drops nothing more */
	assert_int_equal(hm_store_maintain(st, now + 60), 0);
	assert_int_equal(total_of(st, 0, base + 99999), left);
	hm_store_close(st);
}

/* An empty stack (no frames) stored by an older build reads back without
 * touching a NULL blob (ASan/UBSan: memcpy from NULL), also after reopening. */
static void test_empty_stack_stored(void **state)
{
	hm_store *st;
	assert_int_equal(hm_store_open(store_where(state), NULL, &st), 0);
	hm_profile *p = make_profile(3, 0);
	uint32_t th = hm_profile_thread_id(p, 1, 1, NULL);
	hm_profile_add(p, hm_profile_stack_id(p, NULL, 0), th, 5, 50000000, 0);
	hm_store_label l[] = {{"service_name", "empty"}};
	assert_int_equal(hm_store_put(st, "process_cpu", l, 1, 1000, p), 0);
	assert_int_equal(hm_store_put(st, "process_cpu", l, 1, 1000, p), 0);  /* found again */
	hm_profile_free(p);
	for (int pass = 0; pass < 2; pass++) {
		hm_profile *a = select_text(st, "process_cpu{service_name=\"empty\"}", 0, 2000);
		assert_int_equal(hm_profile_total_count(a), 16);
		assert_int_equal(count_of(a, "work"), 6);
		hm_profile_free(a);
		hm_store_close(st);
		assert_int_equal(hm_store_open(store_where(state), NULL, &st), 0);
	}
	hm_store_stats s;
	assert_int_equal(hm_store_stats_get(st, &s), 0);
	assert_int_equal(s.nstacks, 2);
	hm_store_close(st);
}

static size_t nseries(hm_store *st)
{
	hm_series_list sl;
	assert_int_equal(hm_store_series(st, &sl), 0);
	size_t n = sl.n;
	hm_series_list_free(&sl);
	return n;
}

/* A request whose new series would pass the limit stores none of them. */
static void test_series_limit_all_or_none(void **state)
{
	hm_store_opts o = {.max_series = 2};
	hm_store *st;
	assert_int_equal(hm_store_open(store_where(state), &o, &st), 0);
	hm_profile *p = make_profile(2, 1);
	hm_store_label la[] = {{"service_name", "a"}}, lb[] = {{"service_name", "b"}},
		       lc[] = {{"service_name", "c"}};
	hm_store_put_req three[] = {
		{"process_cpu", la, 1, 1000, p}, {"process_cpu", lb, 1, 1000, p},
		{"process_cpu", lc, 1, 1000, p},
	};
	assert_int_equal(hm_store_put_many(st, three, 3), HM_EINVAL);
	assert_non_null(strstr(hm_errmsg(), "series limit"));
	assert_int_equal(nseries(st), 0);
	hm_profile *a = select_text(st, "process_cpu", 0, 2000);
	assert_int_equal(hm_profile_total_count(a), 0);
	hm_profile_free(a);
	/* the same series twice in a request counts once */
	hm_store_put_req two[] = {three[0], three[1], three[0]};
	assert_int_equal(hm_store_put_many(st, two, 3), 0);
	assert_int_equal(nseries(st), 2);
	/* existing ones plus one more: refused whole, nothing added twice */
	assert_int_equal(hm_store_put_many(st, three, 3), HM_EINVAL);
	assert_int_equal(nseries(st), 2);
	a = select_text(st, "process_cpu", 0, 2000);
	assert_int_equal(hm_profile_total_count(a), 9);
	hm_profile_free(a);
	hm_profile_free(p);
	hm_store_close(st);
	for (int i = 0; i < 2; i++) {   /* same on reopening (the limit counts stored series) */
		assert_int_equal(hm_store_open(store_where(state), &o, &st), 0);
		assert_int_equal(nseries(st), 2);
		hm_store_close(st);
	}
}

typedef struct pause_state {
	hm_store *st;
	int pauses, other_ok;
} pause_state;

static void *other_writer(void *arg)
{
	pause_state *ps = arg;
	hm_profile *p = make_profile(1, 0);
	hm_store_label l[] = {{"service_name", "other"}};
	if (hm_store_put(ps->st, "process_cpu", l, 1, 1000, p) == HM_OK)
		ps->other_ok++;
	hm_profile_free(p);
	return NULL;
}

/* Between two write transactions of a large put another thread's put goes
 * through (the lock is not held for the whole profile). */
static void put_pause(void *arg)
{
	pause_state *ps = arg;
	ps->pauses++;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, other_writer, ps), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
}

static void test_large_put_lets_others_write(void **state)
{
	pause_state ps = {0};
	hm_store_opts o = {.put_pause = put_pause, .put_pause_arg = &ps};
	assert_int_equal(hm_store_open(store_where(state), &o, &ps.st), 0);
	hm_profile *p = hm_profile_new(0);
	uint32_t th = hm_profile_thread_id(p, 1, 1, NULL);
	uint32_t root = frame(p, "main", "app.py", 1);
	enum { N = 10000 };
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof name, "f%d", i);
		uint32_t s[2] = {root, frame(p, name, "app.py", i + 2)};
		hm_profile_add(p, hm_profile_stack_id(p, s, 2), th, 1, 1000, 0);
	}
	hm_store_label l[] = {{"service_name", "big"}};
	assert_int_equal(hm_store_put(ps.st, "process_cpu", l, 1, 1000, p), 0);
	hm_profile_free(p);
	assert_true(ps.pauses >= 2);
	assert_int_equal(ps.other_ok, ps.pauses);
	hm_profile *a = select_text(ps.st, "process_cpu{service_name=\"big\"}", 0, 2000);
	assert_int_equal(hm_profile_total_count(a), N);
	assert_int_equal(hm_profile_nsamples(a), N);
	hm_profile_free(a);
	a = select_text(ps.st, "process_cpu{service_name=\"other\"}", 0, 2000);
	assert_int_equal(hm_profile_total_count(a), ps.pauses);
	hm_profile_free(a);
	hm_store_close(ps.st);
}

/* A profile of n stacks main -> fN (each once, 1 ms), one with a frame
 * whose name is big bytes long (0: none). */
static hm_profile *make_many_frames(int n, size_t big)
{
	hm_profile *p = hm_profile_new(0);
	uint32_t th = hm_profile_thread_id(p, 1, 1, NULL);
	uint32_t root = frame(p, "main", "app.py", 1);
	for (int i = 0; i < n; i++) {
		char name[96];
		snprintf(name, sizeof name, "handler_number_%d_of_a_rather_wide_service", i);
		uint32_t s[2] = {root, frame(p, name, "app.py", i + 2)};
		hm_profile_add(p, hm_profile_stack_id(p, s, 2), th, 1, 1000000, 0);
	}
	if (big) {
		char *name = malloc(big + 1);
		assert_non_null(name);
		memset(name, 'x', big);
		name[big] = 0;
		uint32_t s[2] = {root, frame(p, name, "app.py", 1)};
		hm_profile_add(p, hm_profile_stack_id(p, s, 2), th, 1, 1000000, 0);
		free(name);
	}
	return p;
}

static size_t longest_leaf(const hm_profile *p)
{
	size_t best = 0;
	for (size_t i = 0; i < hm_profile_nsamples(p); i++) {
		uint32_t d;
		const uint32_t *fr = hm_profile_stack(p, hm_profile_sample(p, i)->stack, &d);
		size_t len = d ? strlen(hm_profile_str(p, hm_profile_frame(p, fr[d - 1])->name)) : 0;
		if (len > best)
			best = len;
	}
	return best;
}

/* The writer's id caches (one write path for both engines) stay within
 * their bound however many strings, frames and stacks a store meets; what
 * they evict is found again in the database (stored once, right counts),
 * and a key too large for a cache is stored but not cached. */
static void test_id_caches_bounded(void **state)
{
	enum { N = 3000, BOUND = 64 << 10, BIG = 40 << 10 };
	hm_store_opts o = {.id_cache_bytes = BOUND};
	hm_store *st;
	assert_int_equal(hm_store_open(store_where(state), &o, &st), 0);
	hm_profile *p = make_many_frames(N, BIG);
	hm_store_label l[] = {{"service_name", "wide"}};
	hm_store_stats s;
	for (int round = 0; round < 2; round++) {
		assert_int_equal(hm_store_put(st, "process_cpu", l, 1, 1000 + 10 * round, p), 0);
		assert_int_equal(hm_store_stats_get(st, &s), 0);
		assert_true(s.cache_bytes > 0);
		assert_true(s.cache_bytes <= 4 * BOUND);   /* four caches, each bounded */
	}
	hm_profile_free(p);
	assert_int_equal(s.nstacks, N + 1);          /* the second put found them all */
	assert_int_equal(s.nframes, N + 2);
	assert_int_equal(s.nstrings, N + 3);         /* main, app.py, N names, the big one */
	hm_profile *a = select_text(st, "process_cpu{service_name=\"wide\"}", 0, 2000);
	assert_int_equal(hm_profile_total_count(a), 2 * (N + 1));
	assert_int_equal(hm_profile_nsamples(a), N + 1);
	assert_int_equal(longest_leaf(a), BIG);
	hm_profile_free(a);
	hm_store_close(st);

	/* the default bound holds all of it */
	assert_int_equal(hm_store_open(store_where(state), NULL, &st), 0);
	p = make_many_frames(N, 0);
	assert_int_equal(hm_store_put(st, "process_cpu", l, 1, 1000, p), 0);
	hm_profile_free(p);
	assert_int_equal(hm_store_stats_get(st, &s), 0);
	assert_true(s.cache_bytes > 4 * BOUND);
	hm_store_close(st);
}

typedef struct fail_state {
	int calls, fail_from;
} fail_state;

static int cache_fail(void *arg)
{
	fail_state *fs = arg;
	return ++fs->calls >= fs->fail_from;
}

/* Running out of memory in the id caches fails the put with HM_ENOMEM and
 * the same message on both engines, stores none of the chunk's samples,
 * and leaves the store usable. */
static void test_out_of_memory_reported(void **state)
{
	fail_state fs = {0};
	hm_store_opts o = {.cache_fail = cache_fail, .cache_fail_arg = &fs};
	hm_store *st;
	assert_int_equal(hm_store_open(store_where(state), &o, &st), 0);
	hm_profile *p = make_profile(3, 2);
	hm_store_label l[] = {{"service_name", "oom"}};
	/* the 1st, 3rd and 6th cache insert: a series, a string, a frame */
	int at[] = {1, 3, 6};
	for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
		fs.calls = 0;
		fs.fail_from = at[k];
		assert_int_equal(hm_store_put(st, "process_cpu", l, 1, 1000, p), HM_ENOMEM);
		assert_string_equal(hm_errmsg(), "store: out of memory (id cache)");
		hm_profile *a = select_text(st, "process_cpu", 0, 2000);
		assert_int_equal(hm_profile_total_count(a), 0);
		hm_profile_free(a);
	}
	/* a request's series: nothing stored either */
	fs.calls = 0;
	fs.fail_from = 1;
	hm_store_put_req req[] = {{"process_cpu", l, 1, 1000, p}};
	assert_int_equal(hm_store_put_many(st, req, 1), HM_ENOMEM);
	assert_string_equal(hm_errmsg(), "store: out of memory (id cache)");
	fs.fail_from = 1 << 30;
	assert_int_equal(hm_store_put(st, "process_cpu", l, 1, 1000, p), 0);
	hm_profile *a = select_text(st, "process_cpu", 0, 2000);
	assert_int_equal(count_of(a, "work"), 3);
	assert_int_equal(count_of(a, "idle"), 2);
	hm_profile_free(a);
	hm_profile_free(p);
	hm_store_close(st);
}

static hm_http_req request(const char *method, const char *path, const char *body)
{
	hm_http_req rq = {0};
	rq.method = method;
	rq.path = path;
	rq.body = (const unsigned char *)(body ? body : "");
	rq.body_len = body ? strlen(body) : 0;
	rq.max_body = 1 << 20;
	rq.now_s = 50000;
	return rq;
}

static void test_handlers(void **state)
{
	const char *where = store_where(state);
	hm_store *st;
	assert_int_equal(hm_store_open(where, NULL, &st), 0);
	hm_http_req rq = request("POST", "/ingest", "main;slow_query 7\nmain;render 3\n");
	rq.nargs = 2;
	rq.arg_k[0] = "name";
	rq.arg_v[0] = "shop.cpu{version=2.0}";
	rq.arg_k[1] = "from";
	rq.arg_v[1] = "49990";
	hm_http_resp rs = {0};
	hm_ingest_handle(st, &rq, &rs);
	assert_int_equal(rs.status, 200);
	free(rs.body);

	rq.arg_v[0] = "shop.cpu{bad label=x}";
	memset(&rs, 0, sizeof rs);
	hm_ingest_handle(st, &rq, &rs);
	assert_int_equal(rs.status, 400);
	free(rs.body);

	rq = request("GET", "/api/v1/top", NULL);
	rq.nargs = 1;
	rq.arg_k[0] = "service";
	rq.arg_v[0] = "shop";
	memset(&rs, 0, sizeof rs);
	hm_api_handle(st, &rq, &rs);
	assert_int_equal(rs.status, 200);
	assert_non_null(strstr((char *)rs.body, "\"name\":\"slow_query\""));
	assert_non_null(strstr((char *)rs.body, "\"total\":100000000"));  /* 10 x 10 ms */
	free(rs.body);

	rq = request("GET", "/api/v1/flamegraph", NULL);
	rq.nargs = 2;
	rq.arg_k[0] = "query";
	rq.arg_v[0] = "process_cpu:samples:count:cpu:nanoseconds{service_name=\"shop\"}";
	rq.arg_k[1] = "max_nodes";
	rq.arg_v[1] = "2";
	memset(&rs, 0, sizeof rs);
	hm_api_handle(st, &rq, &rs);
	assert_int_equal(rs.status, 200);
	/* all -> main kept, slow_query and render folded into other (10) */
	assert_non_null(strstr((char *)rs.body, "\"name\":\"other\""));
	assert_non_null(strstr((char *)rs.body, "\"total\":10,\"self\":10"));
	assert_null(strstr((char *)rs.body, "slow_query"));
	free(rs.body);
	hm_store_close(st);
}

static int ingest_folded(hm_store *st, const char *body)
{
	hm_http_req rq = request("POST", "/ingest", body);
	rq.nargs = 1;
	rq.arg_k[0] = "name";
	rq.arg_v[0] = "bad.cpu";
	hm_http_resp rs = {0};
	hm_ingest_handle(st, &rq, &rs);
	free(rs.body);
	return rs.status;
}

/* Empty stacks, negative counts and counts whose weight (count x period)
 * overflows are refused with 400 and store nothing; pprof values that sum
 * past int64 saturate in the decoder and are refused, not wrapped. */
static void test_ingest_refuses_bad_values(void **state)
{
	hm_store *st;
	assert_int_equal(hm_store_open(store_where(state), NULL, &st), 0);
	assert_int_equal(ingest_folded(st, " 5\n"), 400);
	assert_int_equal(ingest_folded(st, "main;work 3\n;; 5\n"), 400);
	assert_int_equal(ingest_folded(st, "main;work -3\n"), 400);
	assert_int_equal(ingest_folded(st, "main;work -9223372036854775808\n"), 400);
	assert_int_equal(ingest_folded(st, "main;work 1000000000000\n"), 400);
	assert_int_equal(ingest_folded(st, "main;work 9223372036854775807\n"
				       "main;idle 9223372036854775807\n"), 400);
	assert_int_equal(nseries(st), 0);

	hm_profile *p = hm_profile_new(0);
	uint32_t th = hm_profile_thread_id(p, 0, 0, NULL);
	uint32_t a[1] = {frame(p, "a", "a.py", 1)}, b[1] = {frame(p, "b", "b.py", 1)};
	hm_profile_add(p, hm_profile_stack_id(p, a, 1), th, INT64_MAX, INT64_MAX, 0);
	hm_profile_add(p, hm_profile_stack_id(p, b, 1), th, INT64_MAX, INT64_MAX, 0);
	assert_int_equal(hm_profile_total_count(p), INT64_MAX);   /* saturated */
	unsigned char *pb;
	size_t pblen;
	assert_int_equal(hm_encode_pprof(p, 0, &pb, &pblen), HM_OK);
	hm_profile_free(p);
	hm_http_req rq = request("POST", "/ingest", NULL);
	rq.body = pb;
	rq.body_len = pblen;
	rq.nargs = 2;
	rq.arg_k[0] = "name";
	rq.arg_v[0] = "big.cpu";
	rq.arg_k[1] = "format";
	rq.arg_v[1] = "pprof";
	hm_http_resp rs = {0};
	hm_ingest_handle(st, &rq, &rs);
	assert_int_equal(rs.status, 400);
	assert_non_null(strstr((char *)rs.body, "out of range"));
	free(rs.body);
	free(pb);
	assert_int_equal(nseries(st), 0);

	p = hm_profile_new(0);      /* a negative pprof value */
	th = hm_profile_thread_id(p, 0, 0, NULL);
	a[0] = frame(p, "a", "a.py", 1);
	hm_profile_add(p, hm_profile_stack_id(p, a, 1), th, -5, 1000, 0);
	assert_int_equal(hm_encode_pprof(p, 0, &pb, &pblen), HM_OK);
	hm_profile_free(p);
	rq.body = pb;
	rq.body_len = pblen;
	memset(&rs, 0, sizeof rs);
	hm_ingest_handle(st, &rq, &rs);
	assert_int_equal(rs.status, 400);
	assert_non_null(strstr((char *)rs.body, "negative"));
	free(rs.body);
	free(pb);
	assert_int_equal(nseries(st), 0);

	assert_int_equal(ingest_folded(st, "main;work 3\n"), 200);   /* still fine */
	assert_int_equal(nseries(st), 1);
	hm_store_close(st);
}

/* Found by tests/fuzz/fuzz_selector (then against glibc's regcomp, which
 * copied a group once per repetition and took gigabytes for nested bounds):
 * patterns whose program would be too large, backreferences and unbalanced
 * parentheses are refused by the bounded matcher (regex.h); ordinary ones,
 * and empty loops that cost a backtracking engine minutes, still work. */
static void test_selector_regex_cost(void **state)
{
	const char *bad[] = {
		"{k=~\"((a{1,100}){1,100}){1,100}b\"}", "{k=~\"(.{1,200}x){1,200}\"}",
		"{k!~\"(a)\\\\1\"}", "{k=~\"((((((((((((((a+)+)+)+)+)+)+)+)+)+)+)+)+)+)+\"}",
		"{k=~\"a{99999999999999999999}\"}", "{k=~\"()+++++\"}", "{k=~\"a)|(.*\"}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		hm_selector sel;
		assert_int_equal(hm_selector_parse(bad[i], &sel), HM_EINVAL);
		assert_non_null(strstr(hm_errmsg(), "regex"));
	}
	const char *good[] = {
		"{k=~\"1\\\\..*\"}", "{k=~\"(a|b)+c?\"}", "{k=~\"[[:alpha:]]{2,3}-[0-9]{4}\"}",
		"{k=~\"x{3}|y{2,}|z{0,2}\"}", "{k=~\"[](]{10}\"}",
		"{k=~\"(((()+)+)+)+\"}",      /* empty loops: linear in a Thompson NFA */
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		hm_selector sel;
		assert_int_equal(hm_selector_parse(good[i], &sel), HM_OK);
		hm_selector_free(&sel);
	}
}

/* Found by tests/fuzz/fuzz_api: a query argument that is not UTF-8 (the
 * HTTP layer URL-decodes %ff) made the JSON answer fail: 500 "out of
 * memory". Label values that are not UTF-8 are refused when ingested, as
 * the listings could not show them. */
static void test_handlers_bad_utf8(void **state)
{
	hm_store *st;
	assert_int_equal(hm_store_open(store_where(state), NULL, &st), 0);
	hm_http_req rq = request("POST", "/ingest", "main;work 1\n");
	rq.nargs = 1;
	rq.arg_k[0] = "name";
	rq.arg_v[0] = "shop.cpu{env=\xff\xfe}";
	hm_http_resp rs = {0};
	hm_ingest_handle(st, &rq, &rs);
	assert_int_equal(rs.status, 400);
	assert_non_null(strstr((char *)rs.body, "UTF-8"));
	free(rs.body);
	const char *paths[] = {"/api/v1/label_values", "/pyroscope/render", "/api/v1/labels"};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		rq = request("GET", paths[i], NULL);
		rq.nargs = 2;
		rq.arg_k[0] = "name";
		rq.arg_v[0] = "ser\x9d\xe1";
		rq.arg_k[1] = "query";
		rq.arg_v[1] = "app\xc3.cpu";
		memset(&rs, 0, sizeof rs);
		hm_api_handle(st, &rq, &rs);
		assert_int_equal(rs.status, 400);
		assert_non_null(strstr((char *)rs.body, "UTF-8"));
		free(rs.body);
	}
	hm_store_close(st);
}

static const int on_sqlite = SQLITE, on_postgres = POSTGRES;
#define BOTH(f) {#f "[sqlite]", f, setup, teardown, (void *)&on_sqlite}, \
		{#f "[postgres]", f, setup, teardown, (void *)&on_postgres}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_round_trip_and_reopen),
		BOTH(test_bad_labels_leave_store_intact),
		BOTH(test_retention_and_downsampling),
		cmocka_unit_test(test_selector_syntax),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_selector_regex_cost),
		BOTH(test_rollup_ranges),
		BOTH(test_maintenance_shrinks_file),
		BOTH(test_handlers),
		BOTH(test_empty_stack_stored),
		BOTH(test_series_limit_all_or_none),
		BOTH(test_large_put_lets_others_write),
		BOTH(test_ingest_refuses_bad_values),
		BOTH(test_handlers_bad_utf8),
		BOTH(test_id_caches_bounded),
		BOTH(test_out_of_memory_reported),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
