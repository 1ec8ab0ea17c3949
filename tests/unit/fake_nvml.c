/* fake_nvml.c - a stand-in for libnvidia-ml.so with the few entry points
 * analyze/gpu.c uses, for tests/unit/test_gpu.c: built as
 * build/tests/libfakenvml.so; fake_nvml_set() says what it reports. */
#include <string.h>

struct procinfo {
	unsigned int pid;
	unsigned long long used;
	unsigned int gi, ci;
};

struct putil {
	unsigned int pid;
	unsigned long long ts;
	unsigned int sm, mem, enc, dec;
};

struct util {
	unsigned int gpu, memory;
};

static int ndev = 1, fail_init, have_putil = 1, inits;
static unsigned int the_pid;
static unsigned long long the_mem;
static unsigned int the_sm = 50, the_dev_util = 80;

void fake_nvml_set(int devices, int init_fails, int per_process_util, unsigned int pid,
		   unsigned long long mem, unsigned int sm, unsigned int dev_util)
{
	ndev = devices;
	fail_init = init_fails;
	have_putil = per_process_util;
	the_pid = pid;
	the_mem = mem;
	the_sm = sm;
	the_dev_util = dev_util;
}

int fake_nvml_inits(void)
{
	return inits;
}

int nvmlInit_v2(void)
{
	if (fail_init)
		return 9;   /* NVML_ERROR_DRIVER_NOT_LOADED */
	inits++;
	return 0;
}

int nvmlShutdown(void)
{
	inits--;
	return 0;
}

int nvmlDeviceGetCount_v2(unsigned int *n)
{
	*n = (unsigned int)ndev;
	return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **dev)
{
	*dev = (void *)(unsigned long)(i + 1);
	return 0;
}

int nvmlDeviceGetComputeRunningProcesses_v3(void *dev, unsigned int *n, struct procinfo *p)
{
	/* our process on the first device only, with another one */
	if ((unsigned long)dev != 1) {
		*n = 0;
		return 0;
	}
	if (*n < 2) {
		*n = 2;
		return 7;   /* NVML_ERROR_INSUFFICIENT_SIZE */
	}
	memset(p, 0, 2 * sizeof *p);
	p[0].pid = the_pid + 1;
	p[0].used = 1ull << 30;
	p[1].pid = the_pid;
	p[1].used = the_mem;
	*n = 2;
	return 0;
}

int nvmlDeviceGetProcessUtilization(void *dev, struct putil *s, unsigned int *n,
				    unsigned long long last)
{
	(void)dev;
	if (!have_putil)
		return 3;   /* NVML_ERROR_NOT_SUPPORTED */
	if (*n < 1)
		return 7;
	memset(s, 0, sizeof *s);
	s[0].pid = the_pid;
	s[0].ts = last + 1000;
	s[0].sm = the_sm;
	*n = 1;
	return 0;
}

int nvmlDeviceGetUtilizationRates(void *dev, struct util *u)
{
	(void)dev;
	u->gpu = the_dev_util;
	u->memory = 10;
	return 0;
}
