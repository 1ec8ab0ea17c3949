/* test_sampler_cost.c - the sampler's per-round cost histogram
 * (hm_sampler_record_cost, hm_sampler_cost_us): percentiles of fast rounds
 * to 0.1 us, and of slow ones (--native's stops take milliseconds to
 * seconds) within a bucket's width rather than all reported as the maximum. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "sample/sampler.h"

static hm_sampler_stats *new_stats(void)
{
	hm_sampler_stats *st = calloc(1, sizeof *st);
	assert_non_null(st);
	return st;
}

/* |got - want| within rel of want */
static void assert_near(double got, double want, double rel)
{
	if (got < want * (1 - rel) || got > want * (1 + rel))
		fail_msg("got %.3f, want %.3f (+-%.1f%%)", got, want, rel * 100);
}

static void test_cost_fast(void **state)
{
	(void)state;
	hm_sampler_stats *st = new_stats();
	/* 1..100 us, one round each */
	for (int i = 1; i <= 100; i++)
		hm_sampler_record_cost(st, (uint64_t)i * 1000);
	assert_near(hm_sampler_cost_us(st, 50), 50, 0.01);
	assert_near(hm_sampler_cost_us(st, 99), 99, 0.01);
	assert_near(hm_sampler_cost_mean_us(st), 50.5, 1e-9);
	free(st);
}

static void test_cost_slow(void **state)
{
	(void)state;
	hm_sampler_stats *st = new_stats();
	/* 100 rounds from 1 ms to 100 ms ... */
	for (int i = 1; i <= 100; i++)
		hm_sampler_record_cost(st, (uint64_t)i * 1000000);
	/* ... and one of 411 ms */
	hm_sampler_record_cost(st, 410959000);
	assert_near(hm_sampler_cost_us(st, 50), 50000, 0.025);
	assert_near(hm_sampler_cost_us(st, 99), 99000, 0.025);
	assert_near(hm_sampler_cost_us(st, 100), 410959, 0.025);
	assert_true(hm_sampler_cost_us(st, 100) <= 410959.0);
	free(st);
}

static void test_cost_extremes(void **state)
{
	(void)state;
	hm_sampler_stats *st = new_stats();
	assert_true(hm_sampler_cost_us(st, 50) == 0);
	/* exactly 2 ms, the first log bucket; then 40 s; then beyond the
	 * log buckets: percentiles never exceed the maximum */
	hm_sampler_record_cost(st, 2000000);
	assert_near(hm_sampler_cost_us(st, 50), 2000, 0.025);
	hm_sampler_record_cost(st, 40000000000ull);
	assert_near(hm_sampler_cost_us(st, 99), 40000000, 0.025);
	hm_sampler_record_cost(st, UINT64_MAX / 2);
	hm_sampler_record_cost(st, UINT64_MAX / 2);
	assert_near(hm_sampler_cost_us(st, 99), (double)(UINT64_MAX / 2) / 1000.0, 1e-9);
	assert_true(hm_sampler_cost_us(st, 1) <= hm_sampler_cost_us(st, 50));
	free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cost_fast),
		cmocka_unit_test(test_cost_slow),
		cmocka_unit_test(test_cost_extremes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
