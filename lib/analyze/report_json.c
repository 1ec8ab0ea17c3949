/* report_json.c - `homura run --json`: the report as JSON, in the shape
 * docs/run.md gives (measures not taken are null, never 0). */
#include <math.h>
#include <stdio.h>

#include "analyze/report.h"
#include "base/error.h"
#include "base/textesc.h"

static void num(FILE *o, double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", o);
	else
		fprintf(o, "%.6g", v);
}

static void str(FILE *o, const char *s)
{
	if (s)
		hm_put_json_str(o, s);
	else
		fputs("null", o);
}

int hm_report_json(const hm_report *r, FILE *o)
{
	fputs("{\"program\": ", o);
	str(o, r->program);
	fputs(", \"python\": ", o);
	str(o, r->python);
	fputs(", \"elapsed_s\": ", o);
	num(o, r->elapsed_s);
	fputs(", \"cpu_samples\": ", o);
	if (r->cpu)
		fprintf(o, "%llu", (unsigned long long)r->cpu_samples);
	else
		fputs("null", o);
	fputs(", \"alloc_samples\": ", o);
	if (r->memory)
		fprintf(o, "%llu", (unsigned long long)r->alloc_samples);
	else
		fputs("null", o);
	fprintf(o, ", \"available\": {\"cpu\": %s, \"memory\": %s, \"gpu\": %s}",
		r->cpu ? "true" : "false", r->memory ? "true" : "false", r->gpu ? "true" : "false");
	fputs(", \"not_available\": {", o);
	int first = 1;
	const char *why[3] = {r->cpu ? NULL : r->cpu_why, r->memory ? NULL : r->memory_why,
			      r->gpu ? NULL : r->gpu_why};
	const char *names[3] = {"cpu", "memory", "gpu"};
	for (int i = 0; i < 3; i++) {
		if (!why[i])
			continue;
		fprintf(o, "%s\"%s\": ", first ? "" : ", ", names[i]);
		str(o, why[i]);
		first = 0;
	}
	fputs("}, \"cpu_total\": {\"python\": ", o);
	num(o, r->total_python);
	fputs(", \"native\": ", o);
	num(o, r->total_native);
	fputs(", \"system\": ", o);
	num(o, r->total_system);
	fputs(", \"outside_python\": ", o);
	num(o, r->outside_pct);
	fprintf(o, ", \"unattributed_samples\": %llu", (unsigned long long)r->unattributed_samples);
	fputs("}, \"files\": [", o);
	for (size_t i = 0; i < r->nfiles; i++) {
		const hm_rfile *f = &r->files[i];
		fputs(i ? ", {\"path\": " : "{\"path\": ", o);
		str(o, f->path);
		fputs(", \"lines\": [", o);
		for (size_t j = 0; j < f->nlines; j++) {
			const hm_rline *l = &f->lines[j];
			fprintf(o, "%s{\"line\": %d, \"function\": ", j ? ", " : "", l->line);
			str(o, l->func);
			fputs(", \"source\": ", o);
			str(o, l->source);
			static const char *const k[] = {"cpu_python", "cpu_native", "cpu_system", "alloc_mb",
							"python_alloc_share", "peak_mb", "alloc_count",
							"copy_mb_s", "gpu_util", "gpu_mem_mb"};
			double v[] = {l->cpu_python, l->cpu_native, l->cpu_system, l->alloc_mb,
				      l->python_alloc_share, l->peak_mb, l->alloc_count, l->copy_mb_s,
				      l->gpu_util, l->gpu_mem_mb};
			for (size_t m = 0; m < sizeof v / sizeof v[0]; m++) {
				fprintf(o, ", \"%s\": ", k[m]);
				num(o, v[m]);
			}
			fputs(", \"leak\": ", o);
			if (isnan(l->leak_likelihood)) {
				fputs("null", o);
			} else {
				fputs("{\"likelihood\": ", o);
				num(o, l->leak_likelihood);
				fputs(", \"mb_s\": ", o);
				num(o, l->leak_mb_s);
				fputc('}', o);
			}
			fputc('}', o);
		}
		fputs("]}", o);
	}
	fputs("], \"functions\": [", o);
	for (size_t i = 0; i < r->nfuncs; i++) {
		const hm_rfunc *f = &r->funcs[i];
		fputs(i ? ", {\"path\": " : "{\"path\": ", o);
		str(o, f->path);
		fputs(", \"function\": ", o);
		str(o, f->func);
		fprintf(o, ", \"line\": %d", f->line);
		static const char *const k[] = {"cpu_python", "cpu_native", "cpu_system", "alloc_mb", "peak_mb"};
		double v[] = {f->cpu_python, f->cpu_native, f->cpu_system, f->alloc_mb, f->peak_mb};
		for (size_t m = 0; m < 5; m++) {
			fprintf(o, ", \"%s\": ", k[m]);
			num(o, v[m]);
		}
		fputc('}', o);
	}
	fputs("], \"leaks\": [", o);
	first = 1;
	for (size_t i = 0; i < r->nfiles; i++) {
		const hm_rfile *f = &r->files[i];
		for (size_t j = 0; j < f->nlines; j++) {
			const hm_rline *l = &f->lines[j];
			if (isnan(l->leak_likelihood))
				continue;
			fputs(first ? "{\"path\": " : ", {\"path\": ", o);
			str(o, f->path);
			fprintf(o, ", \"line\": %d, \"likelihood\": ", l->line);
			num(o, l->leak_likelihood);
			fputs(", \"mb_s\": ", o);
			num(o, l->leak_mb_s);
			fputc('}', o);
			first = 0;
		}
	}
	fputs("]}\n", o);
	return ferror(o) ? hm_error(HM_ESYS, "cannot write the JSON report") : HM_OK;
}
