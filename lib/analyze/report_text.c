/* report_text.c - `homura run`'s terminal table: the lines that matter
 * (most CPU or memory first, shown in file order), with their source text
 * and a bar split Python / native / system, then the top functions; columns
 * only for the measures taken, fitted to the terminal's width when known. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/report.h"
#include "base/textesc.h"

struct pick {
	const hm_rfile *f;
	const hm_rline *l;
	double weight;
};

static double z(double v)
{
	return isnan(v) ? 0 : v;
}

static int by_weight(const void *a, const void *b)
{
	double x = ((const struct pick *)a)->weight, y = ((const struct pick *)b)->weight;
	return x > y ? -1 : x < y;
}

static int by_place(const void *a, const void *b)
{
	const struct pick *x = a, *y = b;
	if (x->f != y->f)
		return x->f < y->f ? -1 : 1;
	return x->l->line < y->l->line ? -1 : x->l->line > y->l->line;
}

/* Text from the program (paths, names, source) without control characters
 * (C0, DEL, C1) and with '?' for bytes that are not UTF-8 (a latin-1 source
 * file), so that no escape sequence of its own reaches the terminal. */
static void put_clean(FILE *o, const char *s, size_t n)
{
	size_t len = strnlen(s, n), adv;
	for (size_t i = 0; i < len; i += adv) {
		uint32_t cp = hm_utf8_decode(s + i, len - i, &adv);
		if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || (cp == 0xfffd && adv == 1))
			fputc('?', o);
		else
			fwrite(s + i, 1, adv, o);
	}
}

static void bar(FILE *o, double py, double nat, double sys, int width, int color)
{
	int a = (int)lround(py * width / 100.0), b = (int)lround(nat * width / 100.0),
	    c = (int)lround(sys * width / 100.0);
	if (a + b + c > width)
		c = width - a - b < 0 ? 0 : width - a - b;
	if (color)
		fputs("\033[32m", o);
	for (int i = 0; i < a; i++)
		fputs("\u2588", o);
	if (color)
		fputs("\033[34m", o);
	for (int i = 0; i < b; i++)
		fputs("\u2593", o);
	if (color)
		fputs("\033[31m", o);
	for (int i = 0; i < c; i++)
		fputs("\u2591", o);
	if (color)
		fputs("\033[0m", o);
	for (int i = a + b + c; i < width; i++)
		fputc(' ', o);
}

static void cell(FILE *o, double v, const char *fmt, int width)
{
	if (isnan(v))
		fprintf(o, "%*s", width, "-");
	else
		fprintf(o, fmt, width, v);
}

/* The py% nat% sys% columns of a line or a function. */
static void cpu_cells(FILE *o, double py, double nat, double sys)
{
	fputc(' ', o);
	cell(o, py, "%*.1f", 6);
	fputc(' ', o);
	cell(o, nat, "%*.1f", 6);
	fputc(' ', o);
	cell(o, sys, "%*.1f", 6);
}

void hm_report_text(const hm_report *r, FILE *o, int max_lines, int color, int width)
{
	double alloc_total = 0;
	size_t n = 0;
	for (size_t i = 0; i < r->nfiles; i++)
		for (size_t j = 0; j < r->files[i].nlines; j++) {
			alloc_total += z(r->files[i].lines[j].alloc_mb);
			n++;
		}
	struct pick *p = calloc(n ? n : 1, sizeof *p);
	if (!p)
		return;
	size_t k = 0;
	for (size_t i = 0; i < r->nfiles; i++)
		for (size_t j = 0; j < r->files[i].nlines; j++) {
			const hm_rline *l = &r->files[i].lines[j];
			double cpu = z(l->cpu_python) + z(l->cpu_native) + z(l->cpu_system);
			double mem = alloc_total > 0 ? 100.0 * z(l->alloc_mb) / alloc_total : 0;
			double w = cpu > mem ? cpu : mem;
			if (w < 1.0 && isnan(l->leak_likelihood))
				continue;    /* lines under 1% of either are noise here */
			p[k].f = &r->files[i];
			p[k].l = l;
			p[k].weight = w + (isnan(l->leak_likelihood) ? 0 : 100);
			k++;
		}
	if (k > 1)
		qsort(p, k, sizeof *p, by_weight);
	if (max_lines > 0 && k > (size_t)max_lines)
		k = (size_t)max_lines;
	if (k > 1)
		qsort(p, k, sizeof *p, by_place);
	/* the columns of the measures taken; the bar only where it fits */
	int cpu_on = r->cpu || r->cpu_samples, mem_on = r->memory, gpu_on = r->gpu;
	int prefix = 6 + (cpu_on ? 21 : 0) + (mem_on ? 18 : 0) + (gpu_on ? 6 : 0) + 2;
	int show_bar = cpu_on && (width <= 0 || width - prefix - 21 >= 24);
	if (show_bar)
		prefix += 21;
	size_t src_max = width <= 0 ? 60 : (size_t)(width - prefix > 12 ? width - prefix : 12);
	const hm_rfile *cur = NULL;
	for (size_t i = 0; i < k; i++) {
		if (p[i].f != cur) {
			cur = p[i].f;
			fprintf(o, "\n%s", color ? "\033[1m" : "");
			/* a path longer than the terminal: its end, which names the file */
			const char *path = cur->path;
			size_t plen = strlen(path), pn = hm_utf8_count(path, plen);
			if (width > 3 && pn > (size_t)width) {
				path += hm_utf8_prefix(path, plen, pn - (size_t)width + 3);
				fputs("...", o);
			}
			put_clean(o, path, strlen(path));
			fprintf(o, "%s\n", color ? "\033[0m" : "");
			fprintf(o, "%6s", "line");
			if (cpu_on)
				fprintf(o, " %6s %6s %6s", "py%", "nat%", "sys%");
			if (show_bar)
				fprintf(o, " %-20s", "cpu");
			if (mem_on)
				fprintf(o, " %8s %8s", "alloc MB", "peak MB");
			if (gpu_on)
				fprintf(o, " %5s", "gpu%");
			fprintf(o, "  %s\n", "source");
		}
		const hm_rline *l = p[i].l;
		fprintf(o, "%6d", l->line);
		if (cpu_on)
			cpu_cells(o, l->cpu_python, l->cpu_native, l->cpu_system);
		if (show_bar) {
			fputc(' ', o);
			bar(o, z(l->cpu_python), z(l->cpu_native), z(l->cpu_system), 20, color);
		}
		if (mem_on) {
			fputc(' ', o);
			cell(o, l->alloc_mb, "%*.1f", 8);
			fputc(' ', o);
			cell(o, l->peak_mb, "%*.1f", 8);
		}
		if (gpu_on) {
			fputc(' ', o);
			cell(o, l->gpu_util, "%*.0f", 5);
		}
		/* the source, trimmed to what fits a terminal line */
		const char *s = l->source;
		while (*s == ' ' || *s == '\t')
			s++;
		size_t len = strlen(s), cut = hm_utf8_prefix(s, len, src_max);
		if (cut < len)
			cut = hm_utf8_prefix(s, len, src_max > 3 ? src_max - 3 : 0);
		fputs("  ", o);
		put_clean(o, s, cut);
		fputs(cut < len ? "..." : "", o);
		if (!isnan(l->leak_likelihood)) {
			/* after the source where it fits the terminal, else on a
			 * line of its own under the line number */
			char note[64];
			int nl = snprintf(note, sizeof note, "LEAK? %.0f%%, %.2f MB/s",
					  100 * l->leak_likelihood, l->leak_mb_s);
			size_t used = (size_t)prefix + hm_utf8_count(s, cut) + (cut < len ? 3 : 0);
			int own = width > 0 && nl > 0 && used + 2 + (size_t)nl > (size_t)width;
			fprintf(o, "%s%s%s%s", own ? "\n        " : "  ", color ? "\033[1;31m" : "", note,
				color ? "\033[0m" : "");
		}
		fputc('\n', o);
	}
	if (k == 0)
		fprintf(o, "homura: no line of the program used 1%% or more of its CPU time or memory\n");
	free(p);
	int nums = (cpu_on ? 21 : 0) + (mem_on ? 10 : 0);
	int namew = width <= 0 ? 40 : width - nums - 1;
	if (namew > 60)
		namew = 60;
	if (namew < 16)
		namew = 16;
	if (r->nfuncs) {
		for (size_t i = 0, shown = 0; i < r->nfuncs && shown < 10; i++) {
			const hm_rfunc *f = &r->funcs[i];
			double cpu = z(f->cpu_python) + z(f->cpu_native) + z(f->cpu_system);
			if (cpu < 1.0 && z(f->alloc_mb) < 0.01 * alloc_total)
				continue;
			if (shown++ == 0) {
				fprintf(o, "\n%-*s", namew, "function");
				if (cpu_on)
					fprintf(o, " %6s %6s %6s", "py%", "nat%", "sys%");
				if (mem_on)
					fprintf(o, " %9s", "alloc MB");
				fputc('\n', o);
			}
			const char *base = strrchr(f->path, '/');
			char name[256];
			snprintf(name, sizeof name, "%s (%s:%d)", f->func, base ? base + 1 : f->path, f->line);
			size_t nl = strlen(name), cut = hm_utf8_prefix(name, nl, (size_t)namew);
			put_clean(o, name, cut);
			fprintf(o, "%*s", (int)(namew - hm_utf8_count(name, cut)), "");
			if (cpu_on)
				cpu_cells(o, f->cpu_python, f->cpu_native, f->cpu_system);
			if (mem_on) {
				fputc(' ', o);
				cell(o, f->alloc_mb, "%*.1f", 9);
			}
			fputc('\n', o);
		}
	}
}
