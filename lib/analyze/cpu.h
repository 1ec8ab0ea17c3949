/* cpu.h - `homura run`: CPU time per line of the program, split between
 * Python (the interpreter), native code (C extensions, libraries) and the
 * kernel (system).
 *
 * Two streams are joined per thread by time: on-CPU samples from the kernel
 * (proc/perf.h: instruction pointer, tid, time) and the Python stacks of the
 * target's threads walked from outside at the same rate (python/python.h).
 * A sample's kind comes from its IP: in the kernel => system; in the
 * interpreter's own code (the python executable or libpython) => Python;
 * anywhere else => native. Its line is that of the stack walk of the same
 * thread nearest in time: the innermost frame in the program's own files
 * (library and standard-library frames fold into the line of the program
 * that called them; a stack with no frame of the program's own counts as
 * outside its lines), or the innermost frame of all with profile_all. */
#ifndef HOMURA_ANALYZE_CPU_H
#define HOMURA_ANALYZE_CPU_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proc/target.h"
#include "python/python.h"

enum hm_cpukind { HM_CPU_PYTHON = 0, HM_CPU_NATIVE = 1, HM_CPU_SYSTEM = 2, HM_CPU_KINDS = 3 };

typedef struct hm_cpuattr hm_cpuattr;

/* One line of the program (or, in the function list, one function: line is
 * then its first line). */
typedef struct hm_cpuline {
	const char *file;
	const char *func;
	int line;
	int func_line;           /* first line of its function */
	uint64_t samples[HM_CPU_KINDS];
	double gpu_util_sum;     /* sum of GPU utilisation samples taken while it ran */
	uint32_t gpu_n;          /* how many */
	double gpu_mem_max_mb;   /* largest GPU memory seen while it ran; < 0 none */
} hm_cpuline;

hm_cpuattr *hm_cpuattr_new(int profile_all);
void hm_cpuattr_free(hm_cpuattr *a);

/* The address ranges of process pid's interpreter code (IPs there are
 * Python). Each process has its own (ASLR). */
void hm_cpuattr_add_interp_range(hm_cpuattr *a, pid_t pid, uint64_t start, uint64_t end);
/* Find them in t's maps: executable mappings of the program's executable
 * (when it is the interpreter, as Debian's static python3), of
 * libpython*.so and of the dynamic loader (whose __tls_get_addr a shared
 * libpython calls for its thread state). Returns how many were found. */
int hm_cpuattr_find_interp(hm_cpuattr *a, hm_target *t);
int hm_cpuattr_classify(const hm_cpuattr *a, pid_t pid, uint64_t ip, int kernel);

/* A path as the program's own file (1) or a library's (0): paths in the
 * standard library, site-packages/dist-packages or frozen modules are not. */
int hm_cpuattr_own_file(const char *path);

/* Thread th's Python stack as walked at time t_ns (CLOCK_MONOTONIC). */
void hm_cpuattr_observe(hm_cpuattr *a, const hm_pythread *th, uint64_t t_ns);
/* A context switch of thread tid at t_ns (proc/perf.h): on, it runs from
 * then on (or is runnable, preempted); off, it is blocked. */
void hm_cpuattr_switch(hm_cpuattr *a, pid_t tid, uint64_t t_ns, int on);
/* No switch is reported after t_ns (they were turned off): samples and
 * walks after it are joined as without them. */
void hm_cpuattr_switches_end(hm_cpuattr *a, uint64_t t_ns);
/* One on-CPU sample of thread tid at t_ns, of the kind hm_cpuattr_classify
 * gave. Attributed to the line of tid's walks just before and after it when
 * they agree, else to that of the nearer one within max_gap_ns, else
 * counted as outside the program's lines. Where tid's switches are known,
 * walks made while it was blocked are left out first (they show where it
 * waited, not where it ran); all walks count when none of the others is
 * near enough. Switches up to the walks that matter must have been given
 * first. */
void hm_cpuattr_sample(hm_cpuattr *a, pid_t tid, uint64_t t_ns, int kind, uint64_t max_gap_ns);
/* A GPU sample at t_ns: utilisation (percent, < 0 unknown) and memory (MB,
 * < 0 unknown) of the process, credited to the lines its threads were on. */
void hm_cpuattr_gpu(hm_cpuattr *a, uint64_t t_ns, double util, double mem_mb);

/* Totals: samples per kind over the whole process (lines and outside). */
void hm_cpuattr_totals(const hm_cpuattr *a, uint64_t total[HM_CPU_KINDS],
		       uint64_t outside[HM_CPU_KINDS]);
/* Per line (sorted by file, line) and per function (by samples, most
 * first); valid until the next call or free. */
size_t hm_cpuattr_lines(hm_cpuattr *a, const hm_cpuline **out);
size_t hm_cpuattr_functions(hm_cpuattr *a, const hm_cpuline **out);

#endif
