/* test_pyasync.c - set reading (hm_pyobj_set_items) on sets built by hand,
 * and the generated asyncio offset tables.
 *
 * Sets are laid out in the local arena of fake_objects.h (PySetObject:
 * fill, used, mask, table; setentry {key, hash}) and the reader's memory
 * callback serves only that arena, so anything outside it reads as
 * unmapped. The tables are checked for the facts lib/python/pyobj.c and
 * lib/python/pyasync.c rely on, and the back-off of the task-container
 * lookup is checked step by step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "python/layouts/async_layouts.h"
#include "python/layouts/layouts.h"
#include "python/pyasync.h"
#include "python/pylayout.h"
#include "python/pyobj.h"

/* the arena, its reader and alloc/put64/make_type; the rest of the
 * header's helpers are not used here */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "fake_objects.h"
#pragma GCC diagnostic pop

static uint64_t obj_of(uint64_t type, size_t size)
{
	uint64_t o = alloc(size);
	put64(o, 0, 1);
	put64(o, L->ob_type, type);
	return o;
}

static void setup(int minor)
{
	memset(arena, 0, sizeof arena);
	used = 0;
	L = minor == 13 ? &hm_pylayout_py313 : hm_pylayout_builtin(3, minor);
	assert_non_null(L);
	memset(&R, 0, sizeof R);
	R.layout = L;
	R.read = arena_read;
}

/* A set of `n` items in a table of mask+1 slots (item i in slot slots[i]),
 * plus `deleted` dummy slots. */
static uint64_t make_set(uint64_t type, const uint64_t *items, const int *slots, int n,
			 int64_t mask, int deleted_slot, uint64_t dummy)
{
	const hm_pyasync_layout *A = &hm_pyasync_layout_py312;
	uint64_t s = obj_of(type, 200);
	uint64_t table = alloc((size_t)(mask + 1) * 16);
	for (int i = 0; i < n; i++) {
		put64(table, slots[i] * 16 + A->set_entry_key, items[i]);
		put64(table, slots[i] * 16 + 8, 1000 + (uint64_t)i);   /* hash */
	}
	if (deleted_slot >= 0) {
		put64(table, deleted_slot * 16, dummy);
		put64(table, deleted_slot * 16 + 8, (uint64_t)-1);
	}
	put64(s, A->set_used - 8, (uint64_t)n + (deleted_slot >= 0));  /* fill */
	put64(s, A->set_used, (uint64_t)n);
	put64(s, A->set_mask, (uint64_t)mask);
	put64(s, A->set_table, table);
	return s;
}

struct seen {
	uint64_t items[64];
	int n;
	int stop_after;
};

static int collect(void *ctx, uint64_t item, uint64_t value)
{
	struct seen *s = ctx;
	assert_int_equal(value, 0);
	s->items[s->n++] = item;
	return s->stop_after && s->n >= s->stop_after;
}

static int has(const struct seen *s, uint64_t v)
{
	for (int i = 0; i < s->n; i++)
		if (s->items[i] == v)
			return 1;
	return 0;
}

static void set_items(int minor)
{
	setup(minor);
	uint64_t set_t = make_type("set"), frozen_t = make_type("frozenset");
	uint64_t other_t = make_type("dict"), dummy_t = make_type("<dummy key> type");
	uint64_t dummy = obj_of(dummy_t, 16);
	uint64_t items[5];
	for (int i = 0; i < 5; i++)
		items[i] = obj_of(other_t, 32);
	int slots[5] = {0, 3, 4, 9, 15};
	uint64_t s = make_set(set_t, items, slots, 5, 15, 7, dummy);
	struct seen got = {{0}, 0, 0};
	assert_int_equal(hm_pyobj_set_items(&R, s, collect, &got, 100), 5);
	assert_int_equal(got.n, 5);
	for (int i = 0; i < 5; i++)
		assert_true(has(&got, items[i]));
	assert_false(has(&got, dummy));          /* the deleted slot */

	/* max and early stop */
	struct seen two = {{0}, 0, 0};
	assert_int_equal(hm_pyobj_set_items(&R, s, collect, &two, 2), 2);
	struct seen stop = {{0}, 0, 3};
	assert_int_equal(hm_pyobj_set_items(&R, s, collect, &stop, 100), 3);

	/* frozenset, empty set */
	uint64_t f = make_set(frozen_t, items, slots, 2, 7, -1, 0);
	struct seen fz = {{0}, 0, 0};
	assert_int_equal(hm_pyobj_set_items(&R, f, collect, &fz, 100), 2);
	uint64_t e = make_set(set_t, items, slots, 0, 7, -1, 0);
	struct seen none = {{0}, 0, 0};
	assert_int_equal(hm_pyobj_set_items(&R, e, collect, &none, 100), 0);
}

static int nreads;

static int counted_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	nreads++;
	return arena_read(ctx, addr, buf, len);
}

/* hm_pyobj_set_items_typed: the first call learns the set's type from its
 * name, later ones check the type word alone (two reads: the head, the
 * table); an object of another type, or a set of another type than the
 * one learnt, gives -1 without an item. */
static void set_items_typed(int minor)
{
	setup(minor);
	R.read = counted_read;
	uint64_t set_t = make_type("set"), other_t = make_type("dict");
	uint64_t weak_t = make_type("WeakSet");
	uint64_t items[3];
	for (int i = 0; i < 3; i++)
		items[i] = obj_of(other_t, 32);
	int slots[3] = {1, 2, 6};
	uint64_t s = make_set(set_t, items, slots, 3, 7, -1, 0);
	uint64_t type = 0;
	struct seen a = {{0}, 0, 0};
	nreads = 0;
	assert_int_equal(hm_pyobj_set_items_typed(&R, s, &type, collect, &a, 100), 3);
	assert_int_equal(type, set_t);
	int first = nreads;
	struct seen b = {{0}, 0, 0};
	nreads = 0;
	assert_int_equal(hm_pyobj_set_items_typed(&R, s, &type, collect, &b, 100), 3);
	assert_int_equal(nreads, 2);
	assert_true(first > nreads);
	for (int i = 0; i < 3; i++)
		assert_true(has(&b, items[i]));

	/* not a set: refused by its type word, nothing visited; with no
	 * type known, by its name, and nothing learnt */
	uint64_t w = obj_of(weak_t, 200);
	struct seen c = {{0}, 0, 0};
	assert_int_equal(hm_pyobj_set_items_typed(&R, w, &type, collect, &c, 100), -1);
	assert_int_equal(c.n, 0);
	uint64_t none = 0;
	assert_int_equal(hm_pyobj_set_items_typed(&R, w, &none, collect, &c, 100), -1);
	assert_int_equal(none, 0);
	assert_int_equal(c.n, 0);
	/* unreadable */
	assert_int_equal(hm_pyobj_set_items_typed(&R, 0x10, &type, collect, &c, 100), -1);
}

static void test_set_items_typed_311(void **state) { (void)state; set_items_typed(11); }
static void test_set_items_typed_313(void **state) { (void)state; set_items_typed(13); }

static void test_set_items_310(void **state) { (void)state; set_items(10); }
static void test_set_items_312(void **state) { (void)state; set_items(12); }
static void test_set_items_313(void **state) { (void)state; set_items(13); }

/* Garbage never crashes and never reads as a set. */
static void test_set_garbage(void **state)
{
	(void)state;
	setup(12);
	const hm_pyasync_layout *A = &hm_pyasync_layout_py312;
	uint64_t set_t = make_type("set"), dict_t = make_type("dict");
	uint64_t items[1] = {obj_of(dict_t, 32)};
	int slots[1] = {1};
	struct seen got = {{0}, 0, 0};
	/* not a set */
	assert_int_equal(hm_pyobj_set_items(&R, items[0], collect, &got, 10), -1);
	/* NULL, misaligned, unmapped */
	assert_int_equal(hm_pyobj_set_items(&R, 0, collect, &got, 10), -1);
	assert_int_equal(hm_pyobj_set_items(&R, items[0] + 3, collect, &got, 10), -1);
	assert_int_equal(hm_pyobj_set_items(&R, 0x10, collect, &got, 10), -1);
	/* mask not 2^n - 1, negative, huge; used > slots; table unmapped */
	uint64_t s = make_set(set_t, items, slots, 1, 7, -1, 0);
	put64(s, A->set_mask, 6);
	assert_int_equal(hm_pyobj_set_items(&R, s, collect, &got, 10), -1);
	put64(s, A->set_mask, (uint64_t)-1);
	assert_int_equal(hm_pyobj_set_items(&R, s, collect, &got, 10), -1);
	put64(s, A->set_mask, (1ull << 40) - 1);
	assert_int_equal(hm_pyobj_set_items(&R, s, collect, &got, 10), -1);
	put64(s, A->set_mask, 7);
	put64(s, A->set_used, 9);
	assert_int_equal(hm_pyobj_set_items(&R, s, collect, &got, 10), -1);
	put64(s, A->set_used, 1);
	put64(s, A->set_table, 0x1000);
	assert_int_equal(hm_pyobj_set_items(&R, s, collect, &got, 10), -1);
	assert_int_equal(got.n, 0);
	/* a table that runs off the arena: whatever was read is reported */
	uint64_t end = (uint64_t)(uintptr_t)arena + sizeof arena - 64;
	put64(s, A->set_table, end);
	put64(s, A->set_mask, 1023);
	put64(s, A->set_used, 5);
	assert_int_equal(hm_pyobj_set_items(&R, s, collect, &got, 10), -1);
}

/* The generated tables carry what lib/python/pyobj.c and lib/python/pyasync.c assume. */
static void test_async_tables(void **state)
{
	(void)state;
	const hm_pyasync_layout *all[] = {
		&hm_pyasync_layout_py38, &hm_pyasync_layout_py39, &hm_pyasync_layout_py310,
		&hm_pyasync_layout_py311, &hm_pyasync_layout_py312, &hm_pyasync_layout_py313,
	};
	for (int i = 0; i < 6; i++) {
		const hm_pyasync_layout *A = all[i];
		assert_int_equal(A->major, 3);
		assert_int_equal(A->minor, 8 + i);
		/* pyobj.c's set constants */
		assert_int_equal(A->set_used, 24);
		assert_int_equal(A->set_mask, 32);
		assert_int_equal(A->set_table, 40);
		assert_int_equal(A->set_entry_size, 16);
		assert_int_equal(A->set_entry_key, 0);
		assert_int_equal(A->wr_object, 16);
		assert_true(A->tp_base > 0);
		if (A->minor <= 10) {
			/* frame object model: gi_frame, YIELD_FROM */
			assert_true(A->gen_frame > 0 && A->gen_iframe == -1);
			assert_true(A->fo_valuestack > 0);
			assert_true((A->fo_stacktop > 0) != (A->fo_stackdepth > 0));
			assert_int_equal(A->op_yield_from, 72);
		} else {
			/* embedded frame, RESUME after the yield */
			assert_true(A->gen_frame == -1 && A->gen_iframe > A->gen_frame_state);
			assert_true(A->if_stacktop > 0 && A->if_localsplus > A->if_stacktop);
			assert_true(A->op_resume > 0 && A->op_resume < 256);
			assert_int_equal(A->st_executing, 0);
			assert_true(A->st_completed > 0);
			assert_true(A->st_created < A->st_suspended);
		}
		assert_int_equal(A->st_has_yf, A->minor >= 13);
	}
	assert_int_equal(hm_pyasync_layout_py313.st_suspended_yf, -1);
	assert_int_equal(hm_pyasync_layout_py310.st_suspended, -1);
	assert_true(hm_pyasync_layout_py311.op_resume_quick > 0);
	assert_true(hm_pyasync_layout_py312.op_instrumented_resume > 0);
}

/* Task-container lookups: an empty one is retried soon with a doubling
 * back-off capped at 10 s; a positive one is kept 10 s and resets it. */
static void test_lookup_backoff(void **state)
{
	(void)state;
	uint64_t b = 0;
	const uint64_t ms = 1000000ull;
	assert_int_equal(hm_pyasync_next_lookup(&b, 0), 100 * ms);
	assert_int_equal(hm_pyasync_next_lookup(&b, 0), 200 * ms);
	assert_int_equal(hm_pyasync_next_lookup(&b, 0), 400 * ms);
	for (int i = 0; i < 10; i++)
		hm_pyasync_next_lookup(&b, 0);
	assert_int_equal(hm_pyasync_next_lookup(&b, 0), 10000 * ms);
	assert_int_equal(hm_pyasync_next_lookup(&b, 1), 10000 * ms);
	assert_int_equal(hm_pyasync_next_lookup(&b, 0), 100 * ms);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_items_310),
		cmocka_unit_test(test_set_items_312),
		cmocka_unit_test(test_set_items_313),
		cmocka_unit_test(test_set_items_typed_311),
		cmocka_unit_test(test_set_items_typed_313),
		cmocka_unit_test(test_set_garbage),
		cmocka_unit_test(test_async_tables),
		cmocka_unit_test(test_lookup_backoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
