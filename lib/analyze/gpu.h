/* gpu.h - `homura run --gpu`: a process's GPU utilisation and memory from
 * NVIDIA's management library (NVML), loaded at run time with dlopen, so
 * homura needs no GPU, driver or CUDA to build or run.
 *
 * hm_gpu_open fails with a one-line reason ("no NVML", "no GPU") where there
 * is nothing to measure; callers then report the GPU as not available. */
#ifndef HOMURA_ANALYZE_GPU_H
#define HOMURA_ANALYZE_GPU_H

#include <sys/types.h>

typedef struct hm_gpu hm_gpu;

/* libpath: the NVML library to load (NULL: $HOMURA_NVML, else
 * libnvidia-ml.so.1). HM_OK, or an hm_error code with the reason. */
int hm_gpu_open(const char *libpath, hm_gpu **out);
void hm_gpu_close(hm_gpu *g);
/* Number of GPUs NVML sees. */
int hm_gpu_count(const hm_gpu *g);

/* The process pid's use of the GPUs now: utilisation in percent (of the
 * GPU(s) it runs on; per-process when NVML gives it, else that of the
 * device) and memory in MB summed over devices. 1 if pid uses a GPU, 0 if
 * not (both set to 0), < 0 on error. */
int hm_gpu_sample(hm_gpu *g, pid_t pid, double *util_pct, double *mem_mb);

#endif
