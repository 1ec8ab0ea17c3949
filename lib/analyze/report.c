/* report.c - joining the measures per line (report.h) and the summary. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analyze/report.h"
#include "base/error.h"

#define MAX_SOURCE_BYTES (8u << 20)
#define MAX_SOURCE_LINES 200000

struct priv {
	char **strs;             /* strings we own */
	size_t nstrs, cap;
};

static const char *keep(hm_report *r, char *s)
{
	struct priv *p = r->priv;
	if (!s)
		return "";
	if (p->nstrs == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		char **n = realloc(p->strs, cap * sizeof *n);
		if (!n) {
			free(s);
			return "";
		}
		p->strs = n;
		p->cap = cap;
	}
	p->strs[p->nstrs++] = s;
	return s;
}

/* Open a source file for reading only if it is a regular file: a name
 * from the program could be a FIFO or a device, which must not block or
 * be read. */
static FILE *open_regular(const char *path)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return NULL;
	}
	FILE *f = fdopen(fd, "r");
	if (!f)
		close(fd);
	return f;
}

static void load_source(hm_rfile *f, const hm_report_src *src)
{
	char path[8192];
	FILE *in = NULL;
	if (f->path[0] == '/') {
		if (src && src->root) {
			snprintf(path, sizeof path, "%s%s", src->root, f->path);
			in = open_regular(path);
		}
		if (!in)
			in = open_regular(f->path);
	} else if (f->path[0] != '<') {
		if (src && src->cwd) {
			snprintf(path, sizeof path, "%s/%s", src->cwd, f->path);
			in = open_regular(path);
		}
		if (!in)
			in = open_regular(f->path);
	}
	if (!in && src && src->string_code && !strcmp(f->path, "<string>"))
		in = fmemopen((void *)src->string_code, strlen(src->string_code), "r");
	if (!in)
		return;
	size_t cap = 0, total = 0;
	char *line = NULL;
	size_t lcap = 0;
	ssize_t n;
	while ((n = getline(&line, &lcap, in)) >= 0 && f->nsource < MAX_SOURCE_LINES) {
		total += (size_t)n;
		if (total > MAX_SOURCE_BYTES)
			break;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = 0;
		if (f->nsource == cap) {
			cap = cap ? cap * 2 : 256;
			char **s = realloc(f->source, cap * sizeof *s);
			if (!s)
				break;
			f->source = s;
		}
		f->source[f->nsource] = strdup(line);
		if (!f->source[f->nsource])
			break;
		f->nsource++;
	}
	free(line);
	fclose(in);
}

static hm_rfile *get_file(hm_report *r, const char *path)
{
	for (size_t i = 0; i < r->nfiles; i++)
		if (!strcmp(r->files[i].path, path))
			return &r->files[i];
	hm_rfile *n = realloc(r->files, (r->nfiles + 1) * sizeof *n);
	if (!n)
		return NULL;
	r->files = n;
	hm_rfile *f = &n[r->nfiles];
	memset(f, 0, sizeof *f);
	f->path = strdup(path);
	if (!f->path)
		return NULL;
	r->nfiles++;
	return f;
}

static hm_rline *get_line(hm_report *r, const char *path, int line, const char *func)
{
	hm_rfile *f = get_file(r, path ? path : "");
	if (!f)
		return NULL;
	for (size_t i = 0; i < f->nlines; i++)
		if (f->lines[i].line == line)
			return &f->lines[i];
	hm_rline *n = realloc(f->lines, (f->nlines + 1) * sizeof *n);
	if (!n)
		return NULL;
	f->lines = n;
	hm_rline *l = &n[f->nlines++];
	l->line = line;
	l->func = keep(r, strdup(func ? func : ""));
	l->source = "";
	l->cpu_python = l->cpu_native = l->cpu_system = NAN;
	l->alloc_mb = l->python_alloc_share = l->peak_mb = l->alloc_count = l->copy_mb_s = NAN;
	l->gpu_util = l->gpu_mem_mb = NAN;
	l->leak_likelihood = l->leak_mb_s = NAN;
	return l;
}

static int cmp_rline(const void *a, const void *b)
{
	const hm_rline *x = a, *y = b;
	return x->line < y->line ? -1 : x->line > y->line;
}

static int cmp_rfile(const void *a, const void *b)
{
	return strcmp(((const hm_rfile *)a)->path, ((const hm_rfile *)b)->path);
}

static hm_rfunc *get_func(hm_report *r, const char *path, const char *func, int line)
{
	for (size_t i = 0; i < r->nfuncs; i++)
		if (r->funcs[i].line == line && !strcmp(r->funcs[i].func, func) &&
		    !strcmp(r->funcs[i].path, path))
			return &r->funcs[i];
	hm_rfunc *n = realloc(r->funcs, (r->nfuncs + 1) * sizeof *n);
	if (!n)
		return NULL;
	r->funcs = n;
	hm_rfunc *f = &n[r->nfuncs++];
	f->path = keep(r, strdup(path));
	f->func = keep(r, strdup(func));
	f->line = line;
	f->cpu_python = f->cpu_native = f->cpu_system = f->alloc_mb = f->peak_mb = NAN;
	return f;
}

static double fsum(double a, double b)
{
	return isnan(a) ? b : a + b;
}

static double z(double v)
{
	return isnan(v) ? 0 : v;
}

static int cmp_rfunc(const void *a, const void *b)
{
	const hm_rfunc *x = a, *y = b;
	/* NaN (not measured) counts as 0: a comparison with NaN would break
	 * qsort's order */
	double cx = z(x->cpu_python) + z(x->cpu_native) + z(x->cpu_system);
	double cy = z(y->cpu_python) + z(y->cpu_native) + z(y->cpu_system);
	if (cx != cy)
		return cx > cy ? -1 : 1;
	double ax = z(x->alloc_mb), ay = z(y->alloc_mb);
	if (ax != ay)
		return ax > ay ? -1 : 1;
	int c = strcmp(x->path, y->path);
	return c ? c : x->line - y->line;
}

int hm_report_build(hm_report *r, hm_cpuattr *cpu, hm_memsession *mem, const hm_report_src *src)
{
	r->priv = calloc(1, sizeof(struct priv));
	if (!r->priv)
		return hm_error(HM_ENOMEM, "out of memory");
	r->total_python = r->total_native = r->total_system = r->outside_pct = NAN;
	if (cpu && r->cpu) {
		uint64_t tot[HM_CPU_KINDS], out[HM_CPU_KINDS];
		hm_cpuattr_totals(cpu, tot, out);
		double all = (double)(tot[0] + tot[1] + tot[2]);
		r->cpu_samples = tot[0] + tot[1] + tot[2];
		if (all > 0) {
			r->total_python = 100.0 * (double)tot[0] / all;
			r->total_native = 100.0 * (double)tot[1] / all;
			r->total_system = 100.0 * (double)tot[2] / all;
			r->outside_pct = 100.0 * (double)(out[0] + out[1] + out[2]) / all;
		}
		const hm_cpuline *cl;
		size_t n = hm_cpuattr_lines(cpu, &cl);
		for (size_t i = 0; i < n; i++) {
			hm_rline *l = get_line(r, cl[i].file, cl[i].line, cl[i].func);
			if (!l)
				return hm_error(HM_ENOMEM, "out of memory");
			if (all > 0) {
				/* a line may hold several functions (lambdas,
				 * comprehensions): their sums */
				l->cpu_python = fsum(l->cpu_python, 100.0 * (double)cl[i].samples[0] / all);
				l->cpu_native = fsum(l->cpu_native, 100.0 * (double)cl[i].samples[1] / all);
				l->cpu_system = fsum(l->cpu_system, 100.0 * (double)cl[i].samples[2] / all);
			}
			if (r->gpu && cl[i].gpu_n) {
				double u = cl[i].gpu_util_sum / cl[i].gpu_n;
				if (isnan(l->gpu_util) || u > l->gpu_util)
					l->gpu_util = u;
			}
			if (r->gpu && cl[i].gpu_mem_max_mb >= 0 &&
			    (isnan(l->gpu_mem_mb) || cl[i].gpu_mem_max_mb > l->gpu_mem_mb))
				l->gpu_mem_mb = cl[i].gpu_mem_max_mb;
		}
		n = hm_cpuattr_functions(cpu, &cl);
		for (size_t i = 0; i < n; i++) {
			hm_rfunc *f = get_func(r, cl[i].file, cl[i].func, cl[i].line);
			if (!f)
				return hm_error(HM_ENOMEM, "out of memory");
			if (all > 0) {
				f->cpu_python = 100.0 * (double)cl[i].samples[0] / all;
				f->cpu_native = 100.0 * (double)cl[i].samples[1] / all;
				f->cpu_system = 100.0 * (double)cl[i].samples[2] / all;
			}
		}
	}
	if (mem && r->memory) {
		r->alloc_samples = hm_memsession_samples(mem);
		const hm_memline *ml;
		size_t n = hm_memsession_lines(mem, &ml);
		for (size_t i = 0; i < n; i++) {
			hm_rline *l = get_line(r, ml[i].file, ml[i].line, ml[i].func);
			if (!l)
				return hm_error(HM_ENOMEM, "out of memory");
			/* several functions on one line: sums (peaks: the largest) */
			double py_mb = (isnan(l->python_alloc_share) ? 0 : l->python_alloc_share * z(l->alloc_mb)) +
				       ml[i].python_bytes / 1048576.0;
			l->alloc_mb = fsum(l->alloc_mb, ml[i].alloc_bytes / 1048576.0);
			l->alloc_count = fsum(l->alloc_count, ml[i].alloc_count);
			l->python_alloc_share = l->alloc_mb > 0 ? py_mb / l->alloc_mb : NAN;
			double peak = ml[i].peak_live_bytes / 1048576.0;
			if (isnan(l->peak_mb) || peak > l->peak_mb)
				l->peak_mb = peak;
			if (r->elapsed_s > 0)
				l->copy_mb_s = fsum(l->copy_mb_s, ml[i].copy_bytes / 1048576.0 / r->elapsed_s);
			if (ml[i].leak_likelihood >= 0 &&
			    (isnan(l->leak_likelihood) || ml[i].leak_likelihood > l->leak_likelihood)) {
				l->leak_likelihood = ml[i].leak_likelihood;
				l->leak_mb_s = ml[i].leak_bytes_per_s / 1048576.0;
			}
		}
		n = hm_memsession_functions(mem, &ml);
		for (size_t i = 0; i < n; i++) {
			hm_rfunc *f = get_func(r, ml[i].file ? ml[i].file : "", ml[i].func ? ml[i].func : "",
					       ml[i].line);
			if (!f)
				return hm_error(HM_ENOMEM, "out of memory");
			f->alloc_mb = ml[i].alloc_bytes / 1048576.0;
			f->peak_mb = ml[i].peak_live_bytes / 1048576.0;
		}
		r->ntimeline = hm_memsession_timeline(mem, &r->timeline);
	}
	/* Lines measured by one side only have 0, not null, for the other's
	 * measures when that side was on; but memory is measured in the main
	 * process only: with child processes that ran Python, a line with CPU time and no
	 * allocation may have run in a child, where nothing was measured, so
	 * its memory is null (not measured), not 0. */
	for (size_t i = 0; i < r->nfiles; i++) {
		hm_rfile *f = &r->files[i];
		for (size_t j = 0; j < f->nlines; j++) {
			hm_rline *l = &f->lines[j];
			if (r->cpu && r->cpu_samples && isnan(l->cpu_python))
				l->cpu_python = l->cpu_native = l->cpu_system = 0;
			if (r->memory && isnan(l->alloc_mb) && !r->python_children) {
				l->alloc_mb = l->peak_mb = l->alloc_count = 0;
				l->copy_mb_s = 0;
			}
		}
		if (f->nlines > 1)
			qsort(f->lines, f->nlines, sizeof *f->lines, cmp_rline);
	}
	if (r->nfiles > 1)
		qsort(r->files, r->nfiles, sizeof *r->files, cmp_rfile);
	for (size_t i = 0; i < r->nfiles; i++) {
		hm_rfile *f = &r->files[i];
		load_source(f, src);
		for (size_t j = 0; j < f->nlines; j++) {
			int ln = f->lines[j].line;
			if (ln >= 1 && (size_t)ln <= f->nsource)
				f->lines[j].source = f->source[ln - 1];
		}
	}
	for (size_t i = 0; i < r->nfuncs; i++) {   /* as for lines */
		hm_rfunc *f = &r->funcs[i];
		if (r->cpu && r->cpu_samples && isnan(f->cpu_python))
			f->cpu_python = f->cpu_native = f->cpu_system = 0;
		if (r->memory && isnan(f->alloc_mb) && !r->python_children)
			f->alloc_mb = f->peak_mb = 0;
	}
	if (r->nfuncs > 1)
		qsort(r->funcs, r->nfuncs, sizeof *r->funcs, cmp_rfunc);
	return HM_OK;
}

void hm_report_free(hm_report *r)
{
	for (size_t i = 0; i < r->nfiles; i++) {
		hm_rfile *f = &r->files[i];
		for (size_t j = 0; j < f->nsource; j++)
			free(f->source[j]);
		free(f->source);
		free(f->lines);
		free(f->path);
	}
	free(r->files);
	free(r->funcs);
	struct priv *p = r->priv;
	if (p) {
		for (size_t i = 0; i < p->nstrs; i++)
			free(p->strs[i]);
		free(p->strs);
		free(p);
	}
	r->files = NULL;
	r->funcs = NULL;
	r->priv = NULL;
}

void hm_report_summary(const hm_report *r, FILE *out)
{
	fprintf(out, "homura: %.2f s", r->elapsed_s);
	if (r->cpu || r->cpu_samples)
		fprintf(out, ", %llu CPU samples", (unsigned long long)r->cpu_samples);
	if (r->memory)
		fprintf(out, ", %llu allocation samples", (unsigned long long)r->alloc_samples);
	if (r->cpu && !isnan(r->total_python))
		fprintf(out, "; CPU %.0f%% Python, %.0f%% native, %.0f%% system", r->total_python,
			r->total_native, r->total_system);
	if (r->lost_samples)
		fprintf(out, "; %llu samples lost", (unsigned long long)r->lost_samples);
	if (!r->cpu)
		fprintf(out, "; CPU: not available (%s)", r->cpu_why ? r->cpu_why : "off");
	if (!r->memory)
		fprintf(out, "; memory: not available (%s)", r->memory_why ? r->memory_why : "off");
	if (!r->gpu)
		fprintf(out, "; GPU: not available (%s)", r->gpu_why ? r->gpu_why : "off");
}
