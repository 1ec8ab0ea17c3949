/* test_ptype.c - profile type ids <-> store types (server/ptype.h) and the
 * ingest plan that turns a pprof's sample types into profile types: Go CPU
 * and heap profiles, Node's wall (samples, wall, cpu) and heap (objects,
 * space), a pprof without sample types (the name suffix decides), and ids
 * that are malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "base/error.h"
#include "server/ptype.h"

static void test_ids_roundtrip(void **state)
{
	(void)state;
	static const char *const types[] = {"process_cpu", "wall", "memory",
		"memory.alloc_space.bytes.space.bytes", "goroutine.goroutine.count.goroutine.count"};
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		hm_ptype ids[2];
		int n = hm_ptype_ids(types[i], ids);
		assert_true(n == 1 || n == 2);
		for (int k = 0; k < n; k++) {
			char st[HM_STORE_MAX_NAME + 1];
			int vk;
			assert_int_equal(hm_ptype_from_id(ids[k].id, strlen(ids[k].id), st, sizeof st,
							  &vk), 0);
			assert_string_equal(st, types[i]);
			assert_int_equal(vk, ids[k].value_kind);
		}
	}
	hm_ptype ids[2];
	assert_int_equal(hm_ptype_ids("memory.inuse_space.bytes.space.bytes", ids), 1);
	assert_string_equal(ids[0].id, "memory:inuse_space:bytes:space:bytes");
	assert_string_equal(ids[0].sample_unit, "bytes");
	assert_int_equal(hm_ptype_ids("process_cpu", ids), 2);
	assert_string_equal(ids[0].id, "process_cpu:cpu:nanoseconds:cpu:nanoseconds");
	assert_string_equal(ids[1].id, "process_cpu:samples:count:cpu:nanoseconds");
}

static void test_bad_ids(void **state)
{
	(void)state;
	char st[HM_STORE_MAX_NAME + 1];
	int vk;
	assert_int_equal(hm_ptype_from_id("a:b", 3, st, sizeof st, &vk), HM_EINVAL);
	assert_int_equal(hm_ptype_from_id("a:b:c:d:e:f", 11, st, sizeof st, &vk), HM_EINVAL);
	/* odd characters cannot make a store type outside the label syntax */
	assert_int_equal(hm_ptype_from_id("x y:b.c:d-e:f:g", 15, st, sizeof st, &vk), 0);
	assert_true(hm_store_label_name_ok(st));
	assert_int_equal(hm_ptype_from_id("1x:b:c:d:e", 10, st, sizeof st, &vk), 0);
	assert_true(hm_store_label_name_ok(st));
}

static int plan(const char *fallback, const hm_pprof_vt *st, size_t n, hm_pprof_vt period,
		hm_ptype_plan *pl, int pairs[][2])
{
	memset(pl, 0, sizeof *pl);
	pl->fallback = fallback;
	return hm_ptype_plan_fn(pl, st, n, period, pairs, HM_PPROF_MAX_PARTS);
}

static void test_plans(void **state)
{
	(void)state;
	hm_ptype_plan pl;
	int pairs[HM_PPROF_MAX_PARTS][2];
	/* Go CPU: samples count beside cpu nanoseconds */
	hm_pprof_vt go_cpu[] = {{"samples", "count"}, {"cpu", "nanoseconds"}};
	assert_int_equal(plan(NULL, go_cpu, 2, (hm_pprof_vt){"cpu", "nanoseconds"}, &pl, pairs), 1);
	assert_string_equal(pl.types[0], "process_cpu");
	assert_int_equal(pairs[0][0], 0);
	assert_int_equal(pairs[0][1], 1);
	/* Node wall: samples, wall, cpu -> wall and process_cpu, whatever the suffix */
	hm_pprof_vt node[] = {{"samples", "count"}, {"wall", "nanoseconds"}, {"cpu", "nanoseconds"}};
	assert_int_equal(plan("memory.alloc_space.bytes.space.bytes", node, 3,
			      (hm_pprof_vt){"wall", "nanoseconds"}, &pl, pairs), 2);
	assert_string_equal(pl.types[0], "wall");
	assert_string_equal(pl.types[1], "process_cpu");
	assert_int_equal(pairs[1][0], 0);
	assert_int_equal(pairs[1][1], 2);
	/* Go heap: four types, period space:bytes */
	hm_pprof_vt heap[] = {{"alloc_objects", "count"}, {"alloc_space", "bytes"},
			      {"inuse_objects", "count"}, {"inuse_space", "bytes"}};
	assert_int_equal(plan("process_cpu", heap, 4, (hm_pprof_vt){"space", "bytes"}, &pl, pairs),
			 4);
	assert_string_equal(pl.types[0], "memory.alloc_objects.count.space.bytes");
	assert_string_equal(pl.types[3], "memory.inuse_space.bytes.space.bytes");
	assert_int_equal(pairs[3][0], 3);
	assert_int_equal(pairs[3][1], 3);
	/* Node heap: objects / space are in-use values */
	hm_pprof_vt nheap[] = {{"objects", "count"}, {"space", "bytes"}};
	assert_int_equal(plan(NULL, nheap, 2, (hm_pprof_vt){"inuse_space", "bytes"}, &pl, pairs),
			 2);
	assert_string_equal(pl.types[0], "memory.inuse_objects.count.space.bytes");
	assert_string_equal(pl.types[1], "memory.inuse_space.bytes.space.bytes");
	/* mutex from the suffix's family */
	hm_pprof_vt mutex[] = {{"contentions", "count"}, {"delay", "nanoseconds"}};
	assert_int_equal(plan("block.delay.nanoseconds.contentions.count", mutex, 2,
			      (hm_pprof_vt){"contentions", "count"}, &pl, pairs), 2);
	assert_string_equal(pl.types[1], "block.delay.nanoseconds.contentions.count");
	/* nothing said: the suffix decides */
	assert_int_equal(plan("wall", NULL, 0, (hm_pprof_vt){"", ""}, &pl, pairs), 1);
	assert_string_equal(pl.types[0], "wall");
	assert_true(hm_store_label_name_ok(pl.types[0]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids_roundtrip),
		cmocka_unit_test(test_bad_ids),
		cmocka_unit_test(test_plans),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
