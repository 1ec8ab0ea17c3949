/* report_html.c - `homura run -o report.html`: one self-contained page
 * (inline CSS, script and SVG; nothing fetched, so it opens offline): the
 * summary, leaks, a memory-over-time chart, the per-function table and each
 * file's source with per-line heat. Tables sort by a click on a column
 * header. Every text from the program (paths, names, source) is escaped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/report.h"
#include "base/error.h"
#include "base/textesc.h"

#define MAX_FULL_SOURCE 5000   /* longer files: measured lines only */

static void esc(FILE *o, const char *s)
{
	hm_put_xml(o, s ? s : "", s ? strlen(s) : 0);
}

static double z(double v)
{
	return isnan(v) ? 0 : v;
}

/* A numeric cell: data-v carries the value for sorting. */
static void td(FILE *o, double v, const char *fmt)
{
	if (isnan(v)) {
		fputs("<td data-v=\"-1\"></td>", o);
		return;
	}
	fprintf(o, "<td data-v=\"%.6g\">", v);
	fprintf(o, fmt, v);
	fputs("</td>", o);
}

static const char STYLE[] =
	"body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}"
	"h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}"
	"table{border-collapse:collapse;margin:.5em 0}"
	"th,td{padding:1px 6px;text-align:right;white-space:nowrap}"
	"th{background:#eee;cursor:pointer;position:sticky;top:0}"
	"td.src{text-align:left;font-family:monospace;white-space:pre}"
	"td.fn{text-align:left}"
	"tr.leak td{outline:1px solid #c00;background:#fdd!important}"
	".sum{background:#f6f6f6;padding:.5em;border-radius:4px}"
	".na{color:#a00}";

/* A click on a header sorts its table by that column (th.cellIndex: its
 * place in its own row, not among all the page's headers), largest first,
 * then smallest first on the next click. */
static const char SCRIPT[] =
	"document.querySelectorAll('table.sort th').forEach(function(th){"
	"th.addEventListener('click',function(){var i=th.cellIndex;"
	"var tb=th.closest('table').tBodies[0],rows=Array.prototype.slice.call(tb.rows);"
	"var d=th.dataset.d==='1'?1:-1;th.dataset.d=d===1?'0':'1';"
	"rows.sort(function(a,b){var x=a.cells[i],y=b.cells[i];"
	"var u=x.dataset.v,v=y.dataset.v;"
	"if(u!==undefined&&v!==undefined)return d*(parseFloat(u)-parseFloat(v));"
	"return d*x.textContent.localeCompare(y.textContent);});"
	"rows.forEach(function(r){tb.appendChild(r);});});});";

static void chart(FILE *o, const hm_report *r)
{
	if (!r->ntimeline)
		return;
	double tmax = 0, ymax = 0;
	for (size_t i = 0; i < r->ntimeline; i++) {
		const hm_mempoint *p = &r->timeline[i];
		if (p->t_s > tmax)
			tmax = p->t_s;
		if (p->live_bytes > ymax)
			ymax = p->live_bytes;
		if (p->footprint_bytes > ymax)
			ymax = p->footprint_bytes;
	}
	if (tmax <= 0)
		tmax = 1;
	if (ymax <= 0)
		ymax = 1;
	const double W = 800, H = 200;
	fputs("<h2>Memory over time</h2><svg id=\"memchart\" width=\"820\" height=\"230\" "
	      "xmlns=\"http://www.w3.org/2000/svg\"><rect x=\"10\" y=\"5\" width=\"800\" height=\"200\" "
	      "fill=\"#fafafa\" stroke=\"#ccc\"/>",
	      o);
	for (int series = 0; series < 2; series++) {
		fprintf(o, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
			series ? "#999" : "#c33");
		for (size_t i = 0; i < r->ntimeline; i++) {
			const hm_mempoint *p = &r->timeline[i];
			double y = series ? p->footprint_bytes : p->live_bytes;
			if (y < 0)
				continue;
			fprintf(o, "%.1f,%.1f ", 10 + W * p->t_s / tmax, 5 + H - H * y / ymax);
		}
		fputs("\"/>", o);
	}
	fprintf(o, "<text x=\"12\" y=\"20\" font-size=\"11\">%.1f MB</text>"
		   "<text x=\"12\" y=\"222\" font-size=\"11\">0 s</text>"
		   "<text x=\"770\" y=\"222\" font-size=\"11\">%.1f s</text>"
		   "<text x=\"300\" y=\"222\" font-size=\"11\" fill=\"#c33\">sampled live memory</text>"
		   "<text x=\"450\" y=\"222\" font-size=\"11\" fill=\"#999\">RSS</text></svg>\n",
		ymax / 1048576.0, tmax);
}

static void line_row(FILE *o, const hm_report *r, int n, const char *src, const hm_rline *l)
{
	double cpu = l ? z(l->cpu_python) + z(l->cpu_native) + z(l->cpu_system) : 0;
	double heat = cpu > 100 ? 1 : cpu / 100.0;
	double h = heat > 0 ? 0.15 + 0.85 * sqrt(heat) : 0;
	int leak = l && !isnan(l->leak_likelihood);
	fprintf(o, "<tr%s style=\"background:rgba(255,80,0,%.3f)\"><td data-v=\"%d\">%d</td>",
		leak ? " class=\"leak\"" : "", h * 0.6, n, n);
	if (l) {
		if (r->cpu) {
			td(o, l->cpu_python, "%.1f");
			td(o, l->cpu_native, "%.1f");
			td(o, l->cpu_system, "%.1f");
		}
		if (r->memory) {
			td(o, l->alloc_mb, "%.1f");
			td(o, isnan(l->python_alloc_share) ? NAN : 100 * l->python_alloc_share, "%.0f%%");
			td(o, l->peak_mb, "%.1f");
			td(o, l->copy_mb_s, "%.1f");
			td(o, leak ? 100 * l->leak_likelihood : NAN, "%.0f%%");
		}
		if (r->gpu) {
			td(o, l->gpu_util, "%.0f");
			td(o, l->gpu_mem_mb, "%.0f");
		}
	} else {
		int cols = (r->cpu ? 3 : 0) + (r->memory ? 5 : 0) + (r->gpu ? 2 : 0);
		for (int i = 0; i < cols; i++)
			fputs("<td data-v=\"-1\"></td>", o);
	}
	fputs("<td class=\"src\">", o);
	esc(o, src);
	fputs("</td></tr>\n", o);
}

int hm_report_html(const hm_report *r, FILE *o)
{
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>homura run: ", o);
	esc(o, r->program);
	fprintf(o, "</title><style>%s</style></head><body>\n<h1>homura run: ", STYLE);
	esc(o, r->program);
	fputs("</h1>\n<div class=\"sum\" id=\"summary\">", o);
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (m) {
		hm_report_summary(r, m);
		fclose(m);
		esc(o, buf);
		free(buf);
	}
	if (r->python) {
		fputs("<br>Python ", o);
		esc(o, r->python);
	}
	fputs("</div>\n", o);

	int nleak = 0;
	for (size_t i = 0; i < r->nfiles; i++)
		for (size_t j = 0; j < r->files[i].nlines; j++)
			if (!isnan(r->files[i].lines[j].leak_likelihood)) {
				if (!nleak++)
					fputs("<h2>Possible leaks</h2><ul id=\"leaks\">", o);
				const hm_rline *l = &r->files[i].lines[j];
				fputs("<li>", o);
				esc(o, r->files[i].path);
				fprintf(o, ":%d: likelihood %.0f%%, %.3f MB/s &mdash; <code>", l->line,
					100 * l->leak_likelihood, l->leak_mb_s);
				esc(o, l->source);
				fputs("</code></li>", o);
			}
	if (nleak)
		fputs("</ul>\n", o);
	chart(o, r);

	const char *hdr_cpu = "<th>Python %</th><th>native %</th><th>system %</th>";
	const char *hdr_mem = "<th>alloc MB</th><th>Python share</th><th>peak MB</th><th>copy MB/s</th><th>leak</th>";
	const char *hdr_gpu = "<th>GPU %</th><th>GPU MB</th>";
	if (r->nfuncs) {
		fputs("<h2>Functions</h2><table class=\"sort\" id=\"functions\"><thead><tr><th>function</th>"
		      "<th>file</th><th>line</th>",
		      o);
		if (r->cpu)
			fputs("<th>Python %</th><th>native %</th><th>system %</th>", o);
		if (r->memory)
			fputs("<th>alloc MB</th><th>peak MB</th>", o);
		fputs("</tr></thead><tbody>\n", o);
		for (size_t i = 0; i < r->nfuncs; i++) {
			const hm_rfunc *f = &r->funcs[i];
			fputs("<tr><td class=\"fn\">", o);
			esc(o, f->func);
			fputs("</td><td class=\"fn\">", o);
			esc(o, f->path);
			fprintf(o, "</td><td data-v=\"%d\">%d</td>", f->line, f->line);
			if (r->cpu) {
				td(o, f->cpu_python, "%.1f");
				td(o, f->cpu_native, "%.1f");
				td(o, f->cpu_system, "%.1f");
			}
			if (r->memory) {
				td(o, f->alloc_mb, "%.1f");
				td(o, f->peak_mb, "%.1f");
			}
			fputs("</tr>\n", o);
		}
		fputs("</tbody></table>\n", o);
	}
	for (size_t i = 0; i < r->nfiles; i++) {
		const hm_rfile *f = &r->files[i];
		fputs("<h2 class=\"file\">", o);
		esc(o, f->path);
		fputs("</h2><table class=\"sort lines\"><thead><tr><th>line</th>", o);
		if (r->cpu)
			fputs(hdr_cpu, o);
		if (r->memory)
			fputs(hdr_mem, o);
		if (r->gpu)
			fputs(hdr_gpu, o);
		fputs("<th>source</th></tr></thead><tbody>\n", o);
		if (f->nsource && f->nsource <= MAX_FULL_SOURCE) {
			size_t j = 0;
			for (size_t n = 1; n <= f->nsource; n++) {
				while (j < f->nlines && f->lines[j].line < (int)n)
					j++;
				const hm_rline *l = j < f->nlines && f->lines[j].line == (int)n ? &f->lines[j] : NULL;
				line_row(o, r, (int)n, f->source[n - 1], l);
			}
		} else {
			for (size_t j = 0; j < f->nlines; j++)
				line_row(o, r, f->lines[j].line, f->lines[j].source, &f->lines[j]);
		}
		fputs("</tbody></table>\n", o);
	}
	fprintf(o, "<script>%s</script>\n</body></html>\n", SCRIPT);
	return ferror(o) ? hm_error(HM_ESYS, "cannot write the HTML report") : HM_OK;
}
