/* test_export_queue.c - the exporter's bounded queue: order, the byte bound,
 * drop counting, the disk spool (overflow, order, survival across a restart
 * and a crash, planted symbolic links), spilling memory to the spool at
 * shutdown, and setting a refused item aside until its time. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/export.h"
#include "base/error.h"

static unsigned char *blob(int tag, size_t len)
{
	unsigned char *b = malloc(len);
	memset(b, tag, len);
	return b;
}

static char *meta_of(int tag)
{
	char *m = malloc(16);
	snprintf(m, 16, "m%d", tag);
	return m;
}

/* Pop n items, checking their tags are expected[0..n). */
static void expect_order_prefix(hm_queue *q, const int *expected, int n, size_t len)
{
	for (int i = 0; i < n; i++) {
		hm_qitem *it = hm_queue_peek(q);
		assert_non_null(it);
		assert_int_equal(it->len, len);
		assert_int_equal(it->data[0], expected[i]);
		assert_int_equal(it->data[len - 1], expected[i]);
		char m[16];
		snprintf(m, sizeof m, "m%d", expected[i]);
		assert_string_equal(it->meta, m);
		hm_queue_pop(q);
	}
}

/* The same, and then the queue must be empty. */
static void expect_order(hm_queue *q, const int *expected, int n, size_t len)
{
	expect_order_prefix(q, expected, n, len);
	assert_null(hm_queue_peek(q));
}

static void test_order(void **state)
{
	(void)state;
	hm_queue *q;
	assert_int_equal(hm_queue_new(1 << 20, NULL, 0, &q), HM_OK);
	int tags[20];
	for (int i = 0; i < 20; i++) {
		tags[i] = i + 1;
		assert_int_equal(hm_queue_push(q, blob(i + 1, 100), 100, meta_of(i + 1)), HM_OK);
	}
	hm_queue_stats st;
	hm_queue_stats_get(q, &st);
	assert_int_equal(st.queued, 20);
	assert_int_equal(st.pushed, 20);
	assert_int_equal(st.dropped, 0);
	/* peek without pop returns the same head */
	assert_ptr_equal(hm_queue_peek(q), hm_queue_peek(q));
	expect_order(q, tags, 20, 100);
	hm_queue_free(q);
}

static void test_byte_bound_and_drops(void **state)
{
	(void)state;
	hm_queue *q;
	/* meta "mN" is 2-3 bytes: 1000-byte items, bound 3500 -> 3 fit. */
	assert_int_equal(hm_queue_new(3500, NULL, 0, &q), HM_OK);
	int accepted = 0, refused = 0;
	for (int i = 1; i <= 10; i++) {
		int rc = hm_queue_push(q, blob(i, 1000), 1000, meta_of(i));
		if (rc == HM_OK)
			accepted++;
		else
			refused++;
	}
	assert_int_equal(accepted, 3);
	assert_int_equal(refused, 7);
	hm_queue_stats st;
	hm_queue_stats_get(q, &st);
	assert_int_equal(st.queued, 3);
	assert_true(st.queued_bytes <= 3500);
	assert_int_equal(st.dropped, 7);
	assert_int_equal(st.dropped_bytes, 7 * 1002 + 1);   /* "m10" is 3 bytes */
	/* The oldest keep their place; room frees up as items are sent. */
	hm_queue_pop(q);
	assert_int_equal(hm_queue_push(q, blob(11, 1000), 1000, meta_of(11)), HM_OK);
	int want[] = {2, 3, 11};
	expect_order(q, want, 3, 1000);
	hm_queue_free(q);
}

static void test_one_item_always_fits(void **state)
{
	(void)state;
	hm_queue *q;
	assert_int_equal(hm_queue_new(10, NULL, 0, &q), HM_OK);
	assert_int_equal(hm_queue_push(q, blob(1, 500), 500, meta_of(1)), HM_OK);
	assert_int_not_equal(hm_queue_push(q, blob(2, 500), 500, meta_of(2)), HM_OK);
	hm_queue_stats st;
	hm_queue_stats_get(q, &st);
	assert_int_equal(st.queued, 1);
	assert_int_equal(st.dropped, 1);
	hm_queue_free(q);
}

static char *make_spool(void)
{
	char *dir = strdup("/tmp/homura-test-spool-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return dir;
}

static void rm_spool(char *dir)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(dir);
}

static void test_spool_overflow_keeps_order(void **state)
{
	(void)state;
	char *dir = make_spool();
	hm_queue *q;
	/* memory: 2 items; spool: 3 items (each spooled item is 8+2+1000). */
	assert_int_equal(hm_queue_new(2100, dir, 3 * 1010 + 5, &q), HM_OK);
	int ok = 0;
	for (int i = 1; i <= 7; i++)
		ok += hm_queue_push(q, blob(i, 1000), 1000, meta_of(i)) == HM_OK;
	assert_int_equal(ok, 5);
	hm_queue_stats st;
	hm_queue_stats_get(q, &st);
	assert_int_equal(st.queued, 5);
	assert_int_equal(st.spooled, 3);
	assert_int_equal(st.dropped, 2);
	int first[] = {1, 2};
	expect_order_prefix(q, first, 2, 1000);
	/* The consumer's next peek moves 3 from the spool to memory. Memory
	 * has room now, but the spool still holds 4 and 5: item 8 must queue
	 * behind them. */
	assert_int_equal(hm_queue_peek(q)->data[0], 3);
	assert_int_equal(hm_queue_push(q, blob(8, 1000), 1000, meta_of(8)), HM_OK);
	int rest[] = {3, 4, 5, 8};
	expect_order(q, rest, 4, 1000);
	hm_queue_stats_get(q, &st);
	assert_int_equal(st.queued, 0);
	assert_int_equal(st.spooled_bytes, 0);
	hm_queue_free(q);
	rm_spool(dir);
}

static void test_spool_survives_restart_and_spill(void **state)
{
	(void)state;
	char *dir = make_spool();
	hm_queue *q;
	assert_int_equal(hm_queue_new(2100, dir, 1 << 20, &q), HM_OK);
	for (int i = 1; i <= 5; i++)   /* 1, 2 in memory; 3..5 spooled */
		assert_int_equal(hm_queue_push(q, blob(i, 1000), 1000, meta_of(i)), HM_OK);
	/* Shutdown: memory goes to the spool in front of what is there. */
	assert_int_equal(hm_queue_spill(q), 0);
	hm_queue_stats st;
	hm_queue_stats_get(q, &st);
	assert_int_equal(st.spooled, 5);
	hm_queue_free(q);

	assert_int_equal(hm_queue_new(2100, dir, 1 << 20, &q), HM_OK);
	hm_queue_stats_get(q, &st);
	assert_int_equal(st.queued, 5);
	assert_int_equal(hm_queue_push(q, blob(6, 1000), 1000, meta_of(6)), HM_OK);
	int all[] = {1, 2, 3, 4, 5, 6};
	expect_order(q, all, 6, 1000);
	hm_queue_free(q);
	rm_spool(dir);
}

static void test_spill_without_spool_counts(void **state)
{
	(void)state;
	hm_queue *q;
	assert_int_equal(hm_queue_new(1 << 20, NULL, 0, &q), HM_OK);
	for (int i = 1; i <= 4; i++)
		assert_int_equal(hm_queue_push(q, blob(i, 10), 10, NULL), HM_OK);
	assert_int_equal(hm_queue_spill(q), 4);
	hm_queue_stats st;
	hm_queue_stats_get(q, &st);
	assert_int_equal(st.queued, 0);
	assert_int_equal(st.dropped, 4);
	hm_queue_free(q);
}

static void test_corrupt_spool_file_dropped(void **state)
{
	(void)state;
	char *dir = make_spool();
	char path[512];
	snprintf(path, sizeof path, "%s/%016llx.hmq", dir, 7ull);
	FILE *f = fopen(path, "wb");
	fputs("garbage!garbage!", f);
	fclose(f);
	snprintf(path, sizeof path, "%s/unrelated.txt", dir);
	f = fopen(path, "wb");
	fputs("x", f);
	fclose(f);
	char tmp[512];   /* a spool write cut short by kill -9 */
	snprintf(tmp, sizeof tmp, "%s/.hmq.0123456789abcdef", dir);
	f = fopen(tmp, "wb");
	fputs("HMQ1", f);
	fclose(f);
	hm_queue *q;
	assert_int_equal(hm_queue_new(1 << 20, dir, 1 << 20, &q), HM_OK);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(access(path, F_OK), 0);
	assert_null(hm_queue_peek(q));
	hm_queue_stats st;
	hm_queue_stats_get(q, &st);
	assert_int_equal(st.dropped, 1);
	/* new items get sequence numbers after the old file's */
	assert_int_equal(hm_queue_push(q, blob(9, 10), 10, meta_of(9)), HM_OK);
	int want[] = {9};
	expect_order(q, want, 1, 10);
	hm_queue_free(q);
	rm_spool(dir);
}

static int count_spool_files(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += strlen(de->d_name) == 20 && !strcmp(de->d_name + 16, ".hmq");
	closedir(d);
	return n;
}

/* A crash (no spill, as after kill -9) loses nothing queued with a spool:
 * items in memory are on disk too, and their files go when they are sent. */
static void test_spool_write_through_survives_crash(void **state)
{
	(void)state;
	char *dir = make_spool();
	hm_queue *q;
	assert_int_equal(hm_queue_new(1 << 20, dir, 1 << 20, &q), HM_OK);
	for (int i = 1; i <= 4; i++)   /* all fit in memory */
		assert_int_equal(hm_queue_push(q, blob(i, 100), 100, meta_of(i)), HM_OK);
	hm_queue_stats st;
	hm_queue_stats_get(q, &st);
	assert_int_equal(st.spooled, 0);
	assert_int_equal(count_spool_files(dir), 4);
	int first[] = {1};
	expect_order_prefix(q, first, 1, 100);   /* sent: its file goes */
	assert_int_equal(count_spool_files(dir), 3);
	assert_non_null(hm_queue_peek(q));       /* in flight when we "crash" */
	hm_queue_free(q);                        /* no spill */

	assert_int_equal(hm_queue_new(1 << 20, dir, 1 << 20, &q), HM_OK);
	hm_queue_stats_get(q, &st);
	assert_int_equal(st.queued, 3);
	int rest[] = {2, 3, 4};
	expect_order(q, rest, 3, 100);
	assert_int_equal(count_spool_files(dir), 0);
	hm_queue_free(q);
	rm_spool(dir);
}

/* A refused item is set aside until its time: the others go first, it comes
 * back (before the FIFO's head) once due, keeps its attempt count, and
 * keeps its file in the spool (so a crash does not lose it either). */
static void test_defer_sets_aside(void **state)
{
	(void)state;
	hm_queue *q;
	assert_int_equal(hm_queue_new(1 << 20, NULL, 0, &q), HM_OK);
	for (int i = 1; i <= 3; i++)
		assert_int_equal(hm_queue_push(q, blob(i, 10), 10, meta_of(i)), HM_OK);
	double due = -1;
	hm_qitem *it = hm_queue_next(q, 100.0, &due);
	assert_int_equal(it->data[0], 1);
	assert_true(due == 0);
	it->attempts = 2;
	hm_queue_defer(q, 105.0);
	it = hm_queue_next(q, 101.0, &due);
	assert_int_equal(it->data[0], 2);
	assert_true(due == 105.0);
	hm_queue_pop(q);
	it = hm_queue_next(q, 105.5, &due);     /* due now: before 3 */
	assert_int_equal(it->data[0], 1);
	assert_int_equal(it->attempts, 2);
	hm_queue_defer(q, 110.0);               /* refused again */
	it = hm_queue_next(q, 106.0, &due);
	assert_int_equal(it->data[0], 3);
	hm_queue_pop(q);
	assert_null(hm_queue_next(q, 107.0, &due));   /* only 1, not due yet */
	assert_true(due == 110.0);
	hm_queue_stats st;
	hm_queue_stats_get(q, &st);
	assert_int_equal(st.queued, 1);
	assert_int_equal(st.queued_bytes, 12);
	it = hm_queue_next(q, 110.0, &due);
	assert_int_equal(it->data[0], 1);
	hm_queue_pop(q);
	assert_null(hm_queue_peek(q));
	hm_queue_stats_get(q, &st);
	assert_int_equal(st.queued, 0);
	assert_int_equal(st.queued_bytes, 0);
	hm_queue_free(q);

	char *dir = make_spool();
	/* memory: 2 items, then the spool */
	assert_int_equal(hm_queue_new(2100, dir, 1 << 20, &q), HM_OK);
	for (int i = 1; i <= 4; i++)
		assert_int_equal(hm_queue_push(q, blob(i, 1000), 1000, meta_of(i)), HM_OK);
	it = hm_queue_next(q, 0, NULL);
	assert_int_equal(it->data[0], 1);
	hm_queue_defer(q, 50.0);
	assert_int_equal(count_spool_files(dir), 4);
	it = hm_queue_next(q, 1.0, NULL);
	assert_int_equal(it->data[0], 2);
	hm_queue_pop(q);
	it = hm_queue_next(q, 2.0, NULL);       /* from the spool */
	assert_int_equal(it->data[0], 3);
	hm_queue_pop(q);
	assert_int_equal(count_spool_files(dir), 2);
	hm_queue_free(q);                       /* crash: 1 (set aside) and 4 kept */
	assert_int_equal(hm_queue_new(2100, dir, 1 << 20, &q), HM_OK);
	int last[] = {1, 4};
	expect_order(q, last, 2, 1000);
	assert_int_equal(count_spool_files(dir), 0);
	/* spill at shutdown keeps what was set aside */
	for (int i = 5; i <= 6; i++)
		assert_int_equal(hm_queue_push(q, blob(i, 1000), 1000, meta_of(i)), HM_OK);
	it = hm_queue_next(q, 0, NULL);
	hm_queue_defer(q, 50.0);
	assert_int_equal(hm_queue_spill(q), 0);
	hm_queue_free(q);
	assert_int_equal(hm_queue_new(2100, dir, 1 << 20, &q), HM_OK);
	int spilled[] = {5, 6};
	expect_order(q, spilled, 2, 1000);
	hm_queue_free(q);
	rm_spool(dir);
}

/* Symbolic links planted in the spool directory are neither read nor
 * written through. */
static void test_spool_ignores_planted_links(void **state)
{
	(void)state;
	char *dir = make_spool();
	char victim[512], link[512];
	snprintf(victim, sizeof victim, "%s.victim", dir);
	FILE *f = fopen(victim, "w");
	fputs("precious", f);
	fclose(f);
	/* the name the first item will get, and the one after */
	for (int i = 1; i <= 2; i++) {
		snprintf(link, sizeof link, "%s/%016llx.hmq", dir, (unsigned long long)i);
		assert_int_equal(symlink(victim, link), 0);
	}
	hm_queue *q;
	assert_int_equal(hm_queue_new(1 << 20, dir, 1 << 20, &q), HM_OK);
	hm_queue_stats st;
	hm_queue_stats_get(q, &st);
	assert_int_equal(st.queued, 0);          /* links are not queue items */
	assert_int_equal(hm_queue_push(q, blob(7, 100), 100, meta_of(7)), HM_OK);
	assert_int_equal(hm_queue_push(q, blob(8, 100), 100, meta_of(8)), HM_OK);
	int want[] = {7};
	expect_order_prefix(q, want, 1, 100);
	hm_queue_free(q);
	char buf[32] = {0};
	f = fopen(victim, "r");
	assert_non_null(fgets(buf, sizeof buf, f));
	fclose(f);
	assert_string_equal(buf, "precious");
	struct stat sb;
	snprintf(link, sizeof link, "%s/%016llx.hmq", dir, 2ull);
	assert_int_equal(lstat(link, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));        /* replaced, not followed */
	unlink(victim);
	rm_spool(dir);
}

static void test_exporter_rejects_bad_urls(void **state)
{
	(void)state;
	hm_export_opts o;
	hm_export_opts_init(&o);
	hm_exporter *e = NULL;
	assert_int_equal(hm_exporter_otlp("localhost:4318", &o, &e), HM_EINVAL);
	assert_null(e);
	assert_int_equal(hm_exporter_pyroscope("ftp://x", &o, &e), HM_EINVAL);
	assert_null(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_byte_bound_and_drops),
		cmocka_unit_test(test_one_item_always_fits),
		cmocka_unit_test(test_spool_overflow_keeps_order),
		cmocka_unit_test(test_spool_survives_restart_and_spill),
		cmocka_unit_test(test_spill_without_spool_counts),
		cmocka_unit_test(test_corrupt_spool_file_dropped),
		cmocka_unit_test(test_spool_write_through_survives_crash),
		cmocka_unit_test(test_defer_sets_aside),
		cmocka_unit_test(test_spool_ignores_planted_links),
		cmocka_unit_test(test_exporter_rejects_bad_urls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
