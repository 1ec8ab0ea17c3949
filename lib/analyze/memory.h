/* memory.h - `homura run --memory`: allocations per line, measured inside
 * the program by homura's preloaded allocation sampler and read here.
 *
 * The launched program gets the sampler through the environment that
 * hm_memsession_env returns (LD_PRELOAD of build/libhomura-alloc.so and the
 * name of a shared-memory ring). The sampler samples allocations by bytes
 * (exponential intervals, so each sample's weight is unbiased), records the
 * Python file:line of each sampled allocation with the same walker and
 * layouts `record` uses (reading its own memory), tracks the frees of
 * sampled blocks and memcpy/memmove volume, and writes records to the ring.
 * This side drains the ring (hm_memsession_poll, a few times a second from
 * the caller's loop), and aggregates per line and over time.
 *
 * Contract between `homura run` (src/run.c, analyze/report*.c) and the
 * memory half (analyze/memory.c, preload/): the types and functions below. */
#ifndef HOMURA_ANALYZE_MEMORY_H
#define HOMURA_ANALYZE_MEMORY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/profile.h"

typedef struct hm_memsession hm_memsession;

typedef struct hm_memopts {
	double sample_bytes;     /* mean bytes between samples (default 1 MiB / 8) */
	int profile_all;         /* keep library lines (else folded into the
				  * nearest caller line in the program's own files) */
	const char *preload;     /* path of libhomura-alloc.so; NULL: found next to
				  * the homura binary (build/ or $libdir/homura/) */
} hm_memopts;

/* Memory measures of one source line (or, with line == 0, one function). */
typedef struct hm_memline {
	const char *file;        /* as the program's code objects name it */
	const char *func;
	int line;
	double alloc_bytes;      /* estimated bytes allocated over the run */
	double alloc_count;      /* estimated number of allocations */
	double python_bytes;     /* ... of which by the interpreter's allocators
				  * (pymalloc's PyMem/PyObject domains, and
				  * malloc called from the interpreter itself);
				  * the rest is native (C extensions, libraries) */
	double peak_live_bytes;  /* estimated live bytes at its peak */
	double live_end_bytes;   /* estimated live bytes at the end (when the
				  * interpreter starts to finalize, or exits) */
	double copy_bytes;       /* estimated memcpy/memmove bytes */
	double leak_likelihood;  /* 0..1 for a line listed as a leak (always
				  * >= 0.7); < 0 otherwise (and for functions) */
	double leak_bytes_per_s; /* growth rate of its live memory */
} hm_memline;

/* One point of the memory-over-time series. */
typedef struct hm_mempoint {
	double t_s;              /* seconds since start */
	double live_bytes;       /* estimated live sampled bytes */
	double footprint_bytes;  /* process RSS at that time, when known (else < 0) */
} hm_mempoint;

/* Create a session (allocates the shared-memory ring). HM_OK or an hm_error
 * code with a one-line message from hm_errmsg(). */
int hm_memsession_new(const hm_memopts *o, hm_memsession **out);
void hm_memsession_free(hm_memsession *s);

/* The variables to add to the child's environment ("NAME=value", NULL
 * terminated, owned by s). LD_PRELOAD keeps any value the user had. */
char *const *hm_memsession_env(hm_memsession *s);
/* The child's pid (after launch), so RSS can be read for the timeline. */
void hm_memsession_set_pid(hm_memsession *s, pid_t pid);

/* Drain the ring; call often (every 10-100 ms) while the child runs, and
 * once after it exited. Returns records drained, or < 0 on error. */
int hm_memsession_poll(hm_memsession *s);
/* After the last poll: compute peaks, leaks and per-function totals. */
void hm_memsession_finish(hm_memsession *s, double elapsed_s);

/* Whether any record arrived (the program ran Python under the sampler);
 * when 0, why_not gets a one-line reason. */
int hm_memsession_available(const hm_memsession *s, const char **why_not);
uint64_t hm_memsession_samples(const hm_memsession *s);
/* Records the sampler dropped because the ring was full (the program never
 * waits for homura): a summary line can say so. (Extension of the
 * contract.) */
uint64_t hm_memsession_dropped(const hm_memsession *s);

/* Per-line and per-function results (valid until free). */
size_t hm_memsession_lines(const hm_memsession *s, const hm_memline **lines);
size_t hm_memsession_functions(const hm_memsession *s, const hm_memline **funcs);
size_t hm_memsession_timeline(const hm_memsession *s, const hm_mempoint **points);

/* The sampled allocations as a profile with the given value kind:
 * "alloc_space", "alloc_objects" or "inuse_space" (for pprof heap output). */
int hm_memsession_profile(const hm_memsession *s, const char *kind, hm_profile *out);

/* 1 if path is library code for the folding above: under the
 * interpreter's standard library (.../lib/pythonX.Y/), site-packages or
 * dist-packages, or a <frozen ...> module. (Extension of the contract, so
 * the CPU half can fold lines the same way.) */
int hm_memory_is_library_file(const char *path);

#endif
