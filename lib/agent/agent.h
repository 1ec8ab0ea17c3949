/* agent.h - continuous profiling of a changing set of Python processes.
 *
 * The agent keeps a set of targets (given pids, processes whose command line
 * matches a pattern, or every CPython process), samples them all from one
 * loop, and cuts each target's samples into windows of a fixed length. At
 * each window end the target's profile gets its labels, start and duration
 * and goes to every exporter; a fresh profile starts. */
#ifndef HOMURA_AGENT_H
#define HOMURA_AGENT_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/export.h"

typedef struct hm_agent hm_agent;

typedef struct hm_agent_opts {
	double rate_hz;          /* default 100 */
	double interval_s;       /* window length, default 10 */
	double scan_interval_s;  /* /proc rescan for --all/--name, default 2 */
	double stats_interval_s; /* CPU-use log line period, default 60 (0 = off) */
	int idle;                /* include threads not on CPU (wall time) */
	int nolineno;            /* aggregate by function */
	int ebpf;                /* sample in the kernel (sample/ebpf.h) */
	int kernel;              /* with ebpf: kernel frames of samples that
				  * ran in the kernel */
	int max_depth;           /* frames kept per stack (default 4096) */
	const pid_t *pids;       /* fixed targets */
	int npids;
	const char *name_regex;  /* POSIX extended regex on the command line */
	int all;                 /* every CPython process */
	const char *service;     /* service.name when the target sets none */
	const char *const *labels;   /* "k=v", applied last (override) */
	int nlabels;
	volatile sig_atomic_t *stop;
} hm_agent_opts;

typedef struct hm_agent_stats {
	uint64_t ticks;
	uint64_t samples;        /* thread stacks recorded */
	uint64_t invalid;        /* thread stacks dropped as torn */
	uint64_t span_torn;      /* samples whose span changed while read: no span */
	uint64_t errors;         /* failed target reads */
	uint64_t late;           /* ticks > 1 period late */
	uint64_t windows;        /* profiles handed to the exporters */
	uint64_t empty_windows;  /* windows with no sample (not exported) */
	uint64_t attached, detached;
	int targets;             /* profiled now */
	double cpu_s;            /* own user + system CPU */
	double wall_s;
	long max_rss_kb;
} hm_agent_stats;

void hm_agent_opts_init(hm_agent_opts *o);
/* Checks options and attaches to the given pids (a pid that is not Python is
 * an error). */
int hm_agent_new(const hm_agent_opts *o, hm_agent **out);
/* The agent does not own exporters; they must outlive hm_agent_run. */
int hm_agent_add_exporter(hm_agent *a, hm_exporter *e);
/* Sample until *stop, or (when only fixed pids are profiled) until they have
 * all exited. The last, partial windows are exported before returning. */
int hm_agent_run(hm_agent *a);
void hm_agent_stats_get(hm_agent *a, hm_agent_stats *st);
void hm_agent_free(hm_agent *a);

#endif
