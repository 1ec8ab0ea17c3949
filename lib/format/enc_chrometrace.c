/* enc_chrometrace.c - the Trace Event Format ("chrometrace"), as opened by
 * chrome://tracing, Perfetto (ui.perfetto.dev) and speedscope.
 *
 * Output: {"traceEvents":[...],"displayTimeUnit":"ms","otherData":{...}}.
 * Metadata events ("ph":"M") name each process and thread; then every
 * frame on a thread's stack is a complete event ("ph":"X") with "ts" and
 * "dur" in microseconds from the profile start (three decimals: exact ns),
 * "pid" the process and "tid" the OS thread id.
 *
 * With a timeline (record's samples in time order), a sample at t covers
 * [t, t + weight) (the period when the weight is 0). Consecutive samples of
 * a thread that start with the same frames continue those frames' slices,
 * so a function that stays on the stack is one slice, with its callees
 * nested under it. Frames are compared by function (name, file, kind), not
 * by line, so a loop moving between lines stays one slice; "args" carry the
 * file and the line of the slice's first sample. A thread that was not
 * sampled for more than one sample's length after its last sample ended
 * (idle, not on a CPU) has its slices closed at that end, so gaps show.
 * Without a timeline (a profile converted from collapsed or pprof), each
 * (stack, thread) aggregate is laid end to end on its thread, as long as
 * its weight (or count x period), like a flame chart.
 *
 * The complete events are collected, then written sorted by (ts, thread,
 * depth): timestamps never decrease and a parent precedes its children. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/textesc.h"
#include "format/encode.h"

#define DEFAULT_PERIOD_NS 10000000ull    /* 100 Hz, when the profile has none */

typedef struct slice {
	uint64_t ts, dur;       /* ns from t0 */
	uint32_t frame, thread, depth;
	int32_t line;           /* line of the first sample */
} slice;

typedef struct open_frame {
	uint32_t frame;
	int32_t line;
	uint64_t begin;
} open_frame;

typedef struct tstate {
	open_frame *open;
	uint32_t nopen, cap;
	uint64_t last_t, last_end, last_dur;
	int started;
} tstate;

typedef struct writer {
	const hm_profile *p;
	slice *s;
	size_t n, cap;
} writer;

static int same_function(const hm_profile *p, uint32_t a, uint32_t b)
{
	if (a == b)
		return 1;
	const hm_frame *x = hm_profile_frame(p, a), *y = hm_profile_frame(p, b);
	return x && y && x->name == y->name && x->file == y->file && x->kind == y->kind;
}

static int emit(writer *w, uint32_t thread, uint32_t depth, const open_frame *of, uint64_t end)
{
	if (w->n == w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 1024;
		slice *ns = realloc(w->s, nc * sizeof *ns);
		if (!ns)
			return hm_error(HM_ENOMEM, "out of memory writing a Chrome trace");
		w->s = ns;
		w->cap = nc;
	}
	w->s[w->n++] = (slice){of->begin, end > of->begin ? end - of->begin : 0, of->frame, thread,
			       depth, of->line};
	return HM_OK;
}

/* Close the thread's open frames from depth k up, deepest first, at end. */
static int close_from(writer *w, tstate *ts, uint32_t thread, uint32_t k, uint64_t end)
{
	while (ts->nopen > k) {
		ts->nopen--;
		if (emit(w, thread, ts->nopen, &ts->open[ts->nopen], end) != HM_OK)
			return hm_errcode();
	}
	return HM_OK;
}

/* One sample (or aggregate) of stack on thread, covering [t, t + dur). */
static int add_sample(writer *w, tstate *ts, uint32_t thread, uint32_t stack, uint64_t t,
		      uint64_t dur)
{
	uint32_t n = 0;
	const uint32_t *fr = hm_profile_stack(w->p, stack, &n);
	if (!fr)
		n = 0;
	if (ts->started && t > ts->last_end + ts->last_dur) {
		/* Not sampled for a while: what was open ended with its last sample. */
		if (close_from(w, ts, thread, 0, ts->last_end) != HM_OK)
			return hm_errcode();
	}
	if (t < ts->last_t)
		t = ts->last_t;   /* out of order: keep slices nested */
	uint32_t k = 0;
	while (k < ts->nopen && k < n && same_function(w->p, ts->open[k].frame, fr[k]))
		k++;
	if (close_from(w, ts, thread, k, t) != HM_OK)
		return hm_errcode();
	if (n > ts->cap) {
		uint32_t nc = ts->cap ? ts->cap : 64;
		while (nc < n)
			nc *= 2;
		open_frame *no = realloc(ts->open, nc * sizeof *no);
		if (!no)
			return hm_error(HM_ENOMEM, "out of memory writing a Chrome trace");
		ts->open = no;
		ts->cap = nc;
	}
	for (uint32_t i = k; i < n; i++) {
		const hm_frame *f = hm_profile_frame(w->p, fr[i]);
		ts->open[i] = (open_frame){fr[i], f ? f->line : 0, t};
	}
	ts->nopen = n;
	ts->last_t = t;
	ts->last_end = t + dur;
	ts->last_dur = dur;
	ts->started = 1;
	return HM_OK;
}

static int cmp_slice(const void *a, const void *b)
{
	const slice *x = a, *y = b;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	if (x->thread != y->thread)
		return x->thread < y->thread ? -1 : 1;
	if (x->depth != y->depth)
		return x->depth < y->depth ? -1 : 1;
	return 0;
}

/* ns as microseconds with three decimals (exact). */
static void put_us(FILE *out, uint64_t ns)
{
	fprintf(out, "%" PRIu64 ".%03u", ns / 1000, (unsigned)(ns % 1000));
}

static const char *kind_name(int kind)
{
	switch (kind) {
	case HM_FRAME_PYTHON: return "python";
	case HM_FRAME_NATIVE: return "native";
	case HM_FRAME_THREAD: return "thread";
	case HM_FRAME_PROCESS: return "process";
	case HM_FRAME_KERNEL: return "kernel";
	default: return "other";
	}
}

static const char *label(const hm_profile *p, const char *key)
{
	const hm_profile_meta *m = hm_profile_meta_cget(p);
	for (uint32_t i = 0; i < m->nlabels && i < 32; i++)
		if (!strcmp(hm_profile_str(p, m->labels[i].key), key))
			return hm_profile_str(p, m->labels[i].value);
	return NULL;
}

/* The pid a thread is shown under: its own (subprocesses), else the
 * profile's process.pid label, else 0 (unknown, e.g. converted). */
static uint64_t thread_pid(const hm_profile *p, const hm_thread *t, uint64_t dflt)
{
	return t && t->pid ? t->pid : dflt;
}

static void put_meta(FILE *out, const hm_profile *p, uint64_t dflt_pid, int *first)
{
	uint32_t nt = hm_profile_nthreads(p);
	const char *exe = label(p, "process.executable.name");
	/* Process names: each distinct pid once (threads are few). */
	for (uint32_t i = 0; i < nt; i++) {
		uint64_t pid = thread_pid(p, hm_profile_thread(p, i), dflt_pid);
		int seen = 0;
		for (uint32_t j = 0; j < i && !seen; j++)
			seen = thread_pid(p, hm_profile_thread(p, j), dflt_pid) == pid;
		if (seen)
			continue;
		char name[320];
		if (pid)
			snprintf(name, sizeof name, "%.256s (pid %" PRIu64 ")",
				 exe && *exe ? exe : "python", pid);
		else
			snprintf(name, sizeof name, "%.256s", exe && *exe ? exe : "python");
		fprintf(out, "%s{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%" PRIu64
			",\"tid\":0,\"args\":{\"name\":", *first ? "\n" : ",\n", pid);
		hm_put_json_str(out, name);
		fputs("}}", out);
		*first = 0;
	}
	for (uint32_t i = 0; i < nt; i++) {
		const hm_thread *t = hm_profile_thread(p, i);
		const char *tname = t && t->name ? hm_profile_str(p, t->name) : NULL;
		char name[320];
		snprintf(name, sizeof name, "%.256s", tname && *tname ? tname : "thread");
		fprintf(out, "%s{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%" PRIu64
			",\"tid\":%" PRIu64 ",\"args\":{\"name\":", *first ? "\n" : ",\n",
			thread_pid(p, t, dflt_pid), t ? t->tid : (uint64_t)i);
		hm_put_json_str(out, name);
		fputs("}}", out);
		*first = 0;
	}
}

int hm_write_chrometrace(const hm_profile *p, FILE *out, const hm_write_opts *o)
{
	const hm_profile_meta *m = hm_profile_meta_cget(p);
	uint64_t period = m->period_ns ? m->period_ns : DEFAULT_PERIOD_NS;
	size_t nev = hm_profile_nevents(p);
	uint32_t nt = hm_profile_nthreads(p);
	writer w = {p, NULL, 0, 0};
	tstate *ts = calloc((size_t)nt + 1, sizeof *ts);
	uint64_t *cursor = calloc((size_t)nt + 1, sizeof *cursor);
	int rc = HM_OK;
	if (!ts || !cursor) {
		rc = hm_error(HM_ENOMEM, "out of memory writing a Chrome trace");
		goto out;
	}
	/* Time origin: the profile start, or the first event if earlier. */
	uint64_t t0 = m->start_ns;
	for (size_t i = 0; i < nev; i++) {
		uint64_t t = hm_profile_event(p, i)->t_ns;
		if (!t0 || t < t0)
			t0 = t;
	}
	if (nev) {
		for (size_t i = 0; i < nev && rc == HM_OK; i++) {
			const hm_event *e = hm_profile_event(p, i);
			if (e->thread >= nt)
				continue;
			uint64_t t = e->t_ns > t0 ? e->t_ns - t0 : 0;
			uint64_t dur = e->weight_ns > 0 ? (uint64_t)e->weight_ns : period;
			rc = add_sample(&w, &ts[e->thread], e->thread, e->stack, t, dur);
		}
	} else {
		size_t ns = hm_profile_nsamples(p);
		for (size_t i = 0; i < ns && rc == HM_OK; i++) {
			const hm_sample *s = hm_profile_sample(p, i);
			if (s->thread >= nt || s->count <= 0)
				continue;
			uint64_t dur = s->weight_ns > 0 ? (uint64_t)s->weight_ns
				       : (uint64_t)s->count * period;
			rc = add_sample(&w, &ts[s->thread], s->thread, s->stack, cursor[s->thread], dur);
			cursor[s->thread] += dur;
		}
	}
	for (uint32_t th = 0; th < nt && rc == HM_OK; th++)
		rc = close_from(&w, &ts[th], th, 0, ts[th].last_end);
	if (rc != HM_OK)
		goto out;
	if (w.n)
		qsort(w.s, w.n, sizeof *w.s, cmp_slice);

	const char *pidl = label(p, "process.pid");
	uint64_t dflt_pid = pidl ? strtoull(pidl, NULL, 10) : 0;
	fputs("{\"traceEvents\":[", out);
	int first = 1;
	put_meta(out, p, dflt_pid, &first);
	for (size_t i = 0; i < w.n; i++) {
		const slice *s = &w.s[i];
		const hm_frame *f = hm_profile_frame(p, s->frame);
		const hm_thread *t = hm_profile_thread(p, s->thread);
		const char *name = f ? hm_profile_str(p, f->name) : NULL;
		fputs(first ? "\n{\"name\":" : ",\n{\"name\":", out);
		first = 0;
		hm_put_json_str(out, name && *name ? name : "<unknown>");
		fprintf(out, ",\"cat\":\"%s\",\"ph\":\"X\",\"ts\":", kind_name(f ? f->kind : -1));
		put_us(out, s->ts);
		fputs(",\"dur\":", out);
		put_us(out, s->dur);
		fprintf(out, ",\"pid\":%" PRIu64 ",\"tid\":%" PRIu64, thread_pid(p, t, dflt_pid),
			t ? t->tid : (uint64_t)s->thread);
		const char *file = f && f->file ? hm_profile_str(p, f->file) : NULL;
		if ((file && *file) || s->line > 0) {
			fputs(",\"args\":{", out);
			if (file && *file) {
				fputs("\"file\":", out);
				hm_put_json_str(out, file);
			}
			if (s->line > 0)
				fprintf(out, "%s\"line\":%d", file && *file ? "," : "", (int)s->line);
			fputc('}', out);
		}
		fputc('}', out);
	}
	fputs("],\n\"displayTimeUnit\":\"ms\",\"otherData\":{\"exporter\":\"homura\",\"title\":", out);
	hm_put_json_str(out, o && o->title && *o->title ? o->title : "homura profile");
	fputs("}}\n", out);
	if (ferror(out))
		rc = hm_error(HM_EIO, "writing a Chrome trace failed");
out:
	for (uint32_t th = 0; ts && th <= nt; th++)
		free(ts[th].open);
	free(ts);
	free(cursor);
	free(w.s);
	return rc;
}
