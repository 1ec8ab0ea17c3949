/* report.h - `homura run`'s results, joined per line, and the three ways
 * they are written: a terminal table (report_text.c), a self-contained HTML
 * page (report_html.c) and JSON (report_json.c).
 *
 * hm_report_build joins the CPU attribution (cpu.h), the memory session
 * (memory.h, may be NULL) and the GPU samples per (file, line), reads the
 * source text of the files, and computes percentages. A measure that was not
 * taken is NaN (JSON null, "-" or blank elsewhere), never 0. */
#ifndef HOMURA_ANALYZE_REPORT_H
#define HOMURA_ANALYZE_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "analyze/cpu.h"
#include "analyze/memory.h"

typedef struct hm_rline {
	int line;
	const char *func;        /* function it belongs to (may be "") */
	const char *source;      /* the text of the line, "" if unknown */
	double cpu_python, cpu_native, cpu_system;  /* % of the program's CPU */
	double alloc_mb, python_alloc_share, peak_mb, alloc_count, copy_mb_s;
	double gpu_util, gpu_mem_mb;
	double leak_likelihood, leak_mb_s;          /* NaN: not a leak */
} hm_rline;

typedef struct hm_rfile {
	char *path;
	hm_rline *lines;         /* measured lines, by line number */
	size_t nlines;
	char **source;           /* the whole file, line i+1 at [i]; NULL if unreadable */
	size_t nsource;
} hm_rfile;

typedef struct hm_rfunc {
	const char *path, *func;
	int line;
	double cpu_python, cpu_native, cpu_system, alloc_mb, peak_mb;
} hm_rfunc;

typedef struct hm_report {
	const char *program;     /* the command line */
	const char *python;      /* interpreter version, NULL unknown */
	double elapsed_s;
	uint64_t cpu_samples;    /* on-CPU samples of the program */
	uint64_t alloc_samples;
	uint64_t lost_samples;   /* dropped by the kernel */
	uint64_t child_samples;  /* CPU samples of child processes (in the lines) */
	uint64_t unattributed_samples;  /* of them, those of children that ended before their
					 * interpreter was found: in no line, no kind, no total */
	int child_processes;
	int python_children;     /* of them, those that ran Python (their memory is not measured) */
	int cpu, memory, gpu;    /* measures available */
	const char *cpu_why, *memory_why, *gpu_why;   /* why not, when not */
	double outside_pct;      /* CPU outside any Python line (startup, C threads) */
	double total_python, total_native, total_system;  /* % over the whole program */
	hm_rfile *files;
	size_t nfiles;
	hm_rfunc *funcs;
	size_t nfuncs;
	const hm_mempoint *timeline;
	size_t ntimeline;
	/* storage */
	void *priv;
} hm_report;

typedef struct hm_report_src {
	const char *root;        /* prefix for absolute paths ("/proc/PID/root"), or NULL */
	const char *cwd;         /* directory relative paths are under, or NULL */
	const char *string_code; /* the source of "<string>" (python -c CODE), or NULL */
} hm_report_src;

/* Build r from the measures; cpu and mem may be NULL (not measured). */
int hm_report_build(hm_report *r, hm_cpuattr *cpu, hm_memsession *mem, const hm_report_src *src);
void hm_report_free(hm_report *r);

/* The summary line (no newline): duration, samples, what was not available. */
void hm_report_summary(const hm_report *r, FILE *out);
/* Terminal table: the lines that matter (at most max_lines), with their
 * source text and bars; color: ANSI colours; width: the terminal's columns
 * (0: not a terminal), which the source text is trimmed to and without
 * which, when narrow, the bars are left out. Only the columns of the
 * measures taken. */
void hm_report_text(const hm_report *r, FILE *out, int max_lines, int color, int width);
int hm_report_json(const hm_report *r, FILE *out);
int hm_report_html(const hm_report *r, FILE *out);

#endif
