/* gpu.c - NVML through dlopen (gpu.h).
 *
 * Only a handful of NVML entry points are used, each looked up by name; the
 * structures are declared here from NVML's documented layouts:
 * nvmlProcessInfo_t (v1: pid, usedGpuMemory; v2/v3 add gpuInstanceId and
 * computeInstanceId), nvmlProcessUtilizationSample_t (pid, timeStamp,
 * smUtil, memUtil, encUtil, decUtil) and nvmlUtilization_t (gpu, memory). */
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/gpu.h"
#include "base/error.h"

#define MAX_DEV 64
#define MAX_PROCS 256
#define NVML_ERROR_INSUFFICIENT_SIZE 7

typedef void *nvml_dev;

struct procinfo_v1 {
	unsigned int pid;
	unsigned long long used;
};

struct procinfo_v2 {
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

struct hm_gpu {
	void *lib;
	int ndev;
	nvml_dev dev[MAX_DEV];
	unsigned long long last_ts[MAX_DEV];
	int (*shutdown)(void);
	int (*procs)(nvml_dev, unsigned int *, void *);
	int procs_v2;            /* procs takes struct procinfo_v2 */
	int (*putil)(nvml_dev, struct putil *, unsigned int *, unsigned long long);
	int (*util)(nvml_dev, struct util *);
};

static void *sym(void *lib, const char *a, const char *b)
{
	void *f = dlsym(lib, a);
	if (!f && b)
		f = dlsym(lib, b);
	return f;
}

int hm_gpu_open(const char *libpath, hm_gpu **out)
{
	*out = NULL;
	if (!libpath)
		libpath = getenv("HOMURA_NVML");
	if (!libpath || !*libpath)
		libpath = "libnvidia-ml.so.1";
	void *lib = dlopen(libpath, RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		return hm_error(HM_EINVAL, "no NVML (%s cannot be loaded)", libpath);
	int (*init)(void) = (int (*)(void))sym(lib, "nvmlInit_v2", "nvmlInit");
	int (*count)(unsigned int *) = (int (*)(unsigned int *))sym(lib, "nvmlDeviceGetCount_v2",
								   "nvmlDeviceGetCount");
	int (*handle)(unsigned int, nvml_dev *) =
		(int (*)(unsigned int, nvml_dev *))sym(lib, "nvmlDeviceGetHandleByIndex_v2",
							"nvmlDeviceGetHandleByIndex");
	if (!init || !count || !handle) {
		dlclose(lib);
		return hm_error(HM_EINVAL, "no NVML (%s lacks nvmlInit)", libpath);
	}
	if (init() != 0) {
		dlclose(lib);
		return hm_error(HM_EINVAL, "no GPU (NVML could not initialise: no driver or device)");
	}
	hm_gpu *g = calloc(1, sizeof *g);
	if (!g) {
		dlclose(lib);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	g->lib = lib;
	g->shutdown = (int (*)(void))sym(lib, "nvmlShutdown", NULL);
	g->procs = (int (*)(nvml_dev, unsigned int *, void *))sym(lib, "nvmlDeviceGetComputeRunningProcesses_v3",
								  "nvmlDeviceGetComputeRunningProcesses_v2");
	g->procs_v2 = g->procs != NULL;
	if (!g->procs)
		g->procs = (int (*)(nvml_dev, unsigned int *, void *))sym(lib, "nvmlDeviceGetComputeRunningProcesses", NULL);
	g->putil = (int (*)(nvml_dev, struct putil *, unsigned int *, unsigned long long))sym(
		lib, "nvmlDeviceGetProcessUtilization", NULL);
	g->util = (int (*)(nvml_dev, struct util *))sym(lib, "nvmlDeviceGetUtilizationRates", NULL);
	unsigned int n = 0;
	if (count(&n) != 0)
		n = 0;
	for (unsigned int i = 0; i < n && g->ndev < MAX_DEV; i++)
		if (handle(i, &g->dev[g->ndev]) == 0)
			g->ndev++;
	if (g->ndev == 0 || !g->procs) {
		int ndev = g->ndev;
		hm_gpu_close(g);
		return hm_error(HM_EINVAL, ndev ? "no GPU process information in NVML" : "no GPU (NVML sees none)");
	}
	*out = g;
	return HM_OK;
}

void hm_gpu_close(hm_gpu *g)
{
	if (!g)
		return;
	if (g->shutdown)
		g->shutdown();
	dlclose(g->lib);
	free(g);
}

int hm_gpu_count(const hm_gpu *g)
{
	return g->ndev;
}

/* Memory of pid on device i in bytes; 1 if it runs there. */
static int proc_mem(hm_gpu *g, int i, pid_t pid, double *bytes)
{
	static struct procinfo_v2 buf2[MAX_PROCS];
	static struct procinfo_v1 buf1[MAX_PROCS];
	unsigned int n = MAX_PROCS;
	int rc = g->procs(g->dev[i], &n, g->procs_v2 ? (void *)buf2 : (void *)buf1);
	if (rc != 0 && rc != NVML_ERROR_INSUFFICIENT_SIZE)
		return 0;
	if (n > MAX_PROCS)
		n = MAX_PROCS;
	for (unsigned int k = 0; k < n; k++) {
		unsigned int p = g->procs_v2 ? buf2[k].pid : buf1[k].pid;
		unsigned long long used = g->procs_v2 ? buf2[k].used : buf1[k].used;
		if ((pid_t)p == pid) {
			/* NVML_VALUE_NOT_AVAILABLE is all ones */
			*bytes = used == ~0ull ? 0 : (double)used;
			return 1;
		}
	}
	return 0;
}

static double proc_util(hm_gpu *g, int i, pid_t pid)
{
	if (g->putil) {
		struct putil s[MAX_PROCS];
		unsigned int n = MAX_PROCS;
		if (g->putil(g->dev[i], s, &n, g->last_ts[i]) == 0) {
			double best = -1;
			unsigned long long ts = g->last_ts[i];
			for (unsigned int k = 0; k < n && k < MAX_PROCS; k++) {
				if (s[k].ts > ts)
					ts = s[k].ts;
				if ((pid_t)s[k].pid == pid && (double)s[k].sm > best)
					best = s[k].sm;
			}
			g->last_ts[i] = ts;
			if (best >= 0)
				return best;
		}
	}
	struct util u;
	if (g->util && g->util(g->dev[i], &u) == 0)
		return u.gpu;
	return -1;
}

int hm_gpu_sample(hm_gpu *g, pid_t pid, double *util_pct, double *mem_mb)
{
	*util_pct = 0;
	*mem_mb = 0;
	int on = 0, nutil = 0;
	double util = 0, mem = 0;
	for (int i = 0; i < g->ndev; i++) {
		double b = 0;
		if (!proc_mem(g, i, pid, &b))
			continue;
		on = 1;
		mem += b;
		double u = proc_util(g, i, pid);
		if (u >= 0) {
			util += u;
			nutil++;
		}
	}
	if (!on)
		return 0;
	*util_pct = nutil ? util / nutil : -1;
	*mem_mb = mem / 1048576.0;
	return 1;
}
