/* test_gpu.c - analyze/gpu.c against a fake NVML (fake_nvml.c, built as
 * libfakenvml.so next to this test): a missing library, a failing init,
 * a process on the GPU (memory, per-process and device-wide utilisation)
 * and one that is not. */
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "analyze/gpu.h"
#include "base/error.h"

static char fake[PATH_MAX];
static void (*set)(int, int, int, unsigned int, unsigned long long, unsigned int, unsigned int);
static int (*inits)(void);

static void test_no_library(void **state)
{
	(void)state;
	hm_gpu *g = (hm_gpu *)1;
	assert_int_not_equal(hm_gpu_open("/nonexistent/libnvidia-ml.so.1", &g), HM_OK);
	assert_null(g);
	assert_non_null(strstr(hm_errmsg(), "no NVML"));
}

static void test_init_fails(void **state)
{
	(void)state;
	set(1, 1, 1, 0, 0, 0, 0);
	hm_gpu *g = NULL;
	assert_int_not_equal(hm_gpu_open(fake, &g), HM_OK);
	assert_non_null(strstr(hm_errmsg(), "no GPU"));
	set(0, 0, 1, 0, 0, 0, 0);
	assert_int_not_equal(hm_gpu_open(fake, &g), HM_OK);
	assert_non_null(strstr(hm_errmsg(), "no GPU"));
	assert_int_equal(inits(), 0);   /* shut down again */
}

static void test_process_on_gpu(void **state)
{
	(void)state;
	set(2, 0, 1, 4242, 300ull << 20, 37, 90);
	hm_gpu *g = NULL;
	assert_int_equal(hm_gpu_open(fake, &g), HM_OK);
	assert_int_equal(hm_gpu_count(g), 2);
	double u = -5, m = -5;
	assert_int_equal(hm_gpu_sample(g, 4242, &u, &m), 1);
	assert_true(u == 37.0);                 /* its own utilisation */
	assert_true(m == 300.0);                /* MB */
	/* not on the GPU: 0, and both 0 */
	assert_int_equal(hm_gpu_sample(g, 1111, &u, &m), 0);
	assert_true(u == 0 && m == 0);
	hm_gpu_close(g);
	assert_int_equal(inits(), 0);
}

static void test_device_utilisation_fallback(void **state)
{
	(void)state;
	set(1, 0, 0, 77, 1ull << 20, 37, 64);
	hm_gpu *g = NULL;
	assert_int_equal(hm_gpu_open(fake, &g), HM_OK);
	double u, m;
	assert_int_equal(hm_gpu_sample(g, 77, &u, &m), 1);
	assert_true(u == 64.0);                 /* the device's */
	assert_true(m == 1.0);
	hm_gpu_close(g);
}

static void test_env_default(void **state)
{
	(void)state;
	set(1, 0, 1, 5, 2ull << 20, 12, 0);
	setenv("HOMURA_NVML", fake, 1);
	hm_gpu *g = NULL;
	assert_int_equal(hm_gpu_open(NULL, &g), HM_OK);
	double u, m;
	assert_int_equal(hm_gpu_sample(g, 5, &u, &m), 1);
	assert_true(u == 12.0 && m == 2.0);
	hm_gpu_close(g);
	unsetenv("HOMURA_NVML");
}

int main(int argc, char **argv)
{
	(void)argc;
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return 1;
	self[n] = 0;
	snprintf(fake, sizeof fake, "%s/libfakenvml.so", dirname(self));
	(void)argv;
	void *h = dlopen(fake, RTLD_NOW);
	if (!h) {
		fprintf(stderr, "test_gpu: %s\n", dlerror());
		return 1;
	}
	set = (void (*)(int, int, int, unsigned int, unsigned long long, unsigned int, unsigned int))
		dlsym(h, "fake_nvml_set");
	inits = (int (*)(void))dlsym(h, "fake_nvml_inits");
	if (!set || !inits)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_library),
		cmocka_unit_test(test_init_fails),
		cmocka_unit_test(test_process_on_gpu),
		cmocka_unit_test(test_device_utilisation_fallback),
		cmocka_unit_test(test_env_default),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
