/* cpu.c - joining on-CPU samples and Python stacks per line (cpu.h).
 *
 * Lines are frames interned in a private hm_profile (so a code object's
 * interned ids are cached in it, as record's sampler does). Each thread keeps
 * its last few observations (time, frame) and, when the kernel reports
 * them, its last context switches; a sample takes the nearest observation
 * made while the thread was running (or runnable), else the nearest one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyze/cpu.h"
#include "base/profile.h"
#include "sample/sampler.h"

#define HIST 64
#define SWHIST 256
/* A walk made while the thread ran is worth one made while it was blocked
 * this many times nearer (a thread that mostly waits is seen running
 * rarely, and such walks say where its CPU time goes). */
#define RUNNING_GAP 5
#define NO_SITE UINT32_MAX

struct obs {
	uint64_t t_ns;
	uint32_t site;
};

/* A context switch: from t_ns on, the thread runs (or waits for a CPU,
 * preempted: it stays where it was) if on, else it is blocked. */
struct sw {
	uint64_t t_ns;
	uint8_t on;
};

struct thr {
	pid_t tid;
	uint32_t n;              /* observations so far (ring index = n % HIST) */
	struct obs h[HIST];
	uint64_t last_cpu_ns;    /* time of its latest CPU sample */
	struct sw *sw;           /* its latest switches (ring of SWHIST, in time order) */
	uint32_t nsw;            /* switches so far (ring index = nsw % SWHIST) */
};

struct site {
	uint64_t samples[HM_CPU_KINDS];
	double gpu_util_sum;
	uint32_t gpu_n;
	double gpu_mem_max;
};

struct range {
	uint64_t start, end;
	pid_t pid;
};

struct hm_cpuattr {
	int profile_all;
	hm_profile *p;
	hm_sampler_opts so;
	struct site *sites;
	uint32_t nsites;
	uint8_t *own;            /* per string id: 0 unknown, 1 own, 2 library */
	uint32_t own_cap;
	struct thr *thr;
	size_t nthr, thr_cap;
	struct range *ranges;
	size_t nranges;
	uint64_t total[HM_CPU_KINDS], outside[HM_CPU_KINDS];
	uint64_t sw_until;       /* switches known up to then (UINT64_MAX: all along) */
	hm_cpuline *lines, *funcs;
	size_t nlines, nfuncs;
};

hm_cpuattr *hm_cpuattr_new(int profile_all)
{
	hm_cpuattr *a = calloc(1, sizeof *a);
	if (!a)
		return NULL;
	a->profile_all = profile_all;
	a->p = hm_profile_new(0);
	if (!a->p) {
		free(a);
		return NULL;
	}
	hm_sampler_opts_init(&a->so);
	a->sw_until = UINT64_MAX;
	return a;
}

void hm_cpuattr_free(hm_cpuattr *a)
{
	if (!a)
		return;
	hm_profile_free(a->p);
	for (size_t i = 0; i < a->nthr; i++)
		free(a->thr[i].sw);
	free(a->sites);
	free(a->own);
	free(a->thr);
	free(a->ranges);
	free(a->lines);
	free(a->funcs);
	free(a);
}

void hm_cpuattr_add_interp_range(hm_cpuattr *a, pid_t pid, uint64_t start, uint64_t end)
{
	struct range *r = realloc(a->ranges, (a->nranges + 1) * sizeof *r);
	if (!r)
		return;
	a->ranges = r;
	r[a->nranges].start = start;
	r[a->nranges].end = end;
	r[a->nranges].pid = pid;
	a->nranges++;
}

int hm_cpuattr_find_interp(hm_cpuattr *a, hm_target *t)
{
	char link[64], exe[4096];
	snprintf(link, sizeof link, "/proc/%d/exe", (int)hm_target_pid(t));
	ssize_t n = readlink(link, exe, sizeof exe - 1);
	exe[n > 0 ? n : 0] = 0;
	if (hm_target_refresh_maps(t) != 0)
		return 0;
	size_t nm = 0;
	const hm_map *m = hm_target_maps(t, &nm);
	int found = 0;
	for (size_t i = 0; i < nm; i++) {
		if (!m[i].path || m[i].perms[2] != 'x')
			continue;
		const char *base = strrchr(m[i].path, '/');
		base = base ? base + 1 : m[i].path;
		/* The dynamic loader counts with the interpreter: while Python
		 * runs, its time there is the interpreter's thread-local lookups
		 * (__tls_get_addr, a shared libpython's every access to its
		 * thread state). */
		int interp = !strncmp(base, "libpython", 9) || (exe[0] && !strcmp(m[i].path, exe)) ||
			     !strncmp(base, "ld-linux", 8) || !strncmp(base, "ld64.so", 7) ||
			     !strncmp(base, "ld-musl", 7);
		if (interp) {
			hm_cpuattr_add_interp_range(a, hm_target_pid(t), m[i].start, m[i].end);
			found++;
		}
	}
	return found;
}

int hm_cpuattr_classify(const hm_cpuattr *a, pid_t pid, uint64_t ip, int kernel)
{
	if (kernel)
		return HM_CPU_SYSTEM;
	for (size_t i = 0; i < a->nranges; i++)
		if (a->ranges[i].pid == pid && ip >= a->ranges[i].start && ip < a->ranges[i].end)
			return HM_CPU_PYTHON;
	return HM_CPU_NATIVE;
}

int hm_cpuattr_own_file(const char *path)
{
	if (!path || !*path)
		return 0;
	if (path[0] == '<')
		return !strcmp(path, "<string>") || !strcmp(path, "<stdin>");
	static const char *const lib[] = {"/lib/python", "/site-packages/", "/dist-packages/",
					  "/lib/pypy", "/lib64/python"};
	for (size_t i = 0; i < sizeof lib / sizeof lib[0]; i++)
		if (strstr(path, lib[i]))
			return 0;
	return 1;
}

static int file_is_own(hm_cpuattr *a, hm_str_id file)
{
	if (file >= a->own_cap) {
		uint32_t cap = a->own_cap ? a->own_cap : 64;
		while (cap <= file)
			cap *= 2;
		uint8_t *o = realloc(a->own, cap);
		if (!o)
			return hm_cpuattr_own_file(hm_profile_str(a->p, file));
		memset(o + a->own_cap, 0, cap - a->own_cap);
		a->own = o;
		a->own_cap = cap;
	}
	if (!a->own[file])
		a->own[file] = hm_cpuattr_own_file(hm_profile_str(a->p, file)) ? 1 : 2;
	return a->own[file] == 1;
}

static int ensure_site(hm_cpuattr *a, uint32_t id)
{
	if (id < a->nsites)
		return 0;
	uint32_t n = a->nsites ? a->nsites : 64;
	while (n <= id)
		n *= 2;
	struct site *s = realloc(a->sites, n * sizeof *s);
	if (!s)
		return -1;
	memset(s + a->nsites, 0, (n - a->nsites) * sizeof *s);
	for (uint32_t i = a->nsites; i < n; i++)
		s[i].gpu_mem_max = -1;
	a->sites = s;
	a->nsites = n;
	return 0;
}

static struct thr *find_thr(hm_cpuattr *a, pid_t tid, int create)
{
	for (size_t i = 0; i < a->nthr; i++)
		if (a->thr[i].tid == tid)
			return &a->thr[i];
	if (!create)
		return NULL;
	if (a->nthr == a->thr_cap) {
		size_t cap = a->thr_cap ? a->thr_cap * 2 : 16;
		struct thr *t = realloc(a->thr, cap * sizeof *t);
		if (!t)
			return NULL;
		a->thr = t;
		a->thr_cap = cap;
	}
	struct thr *t = &a->thr[a->nthr++];
	memset(t, 0, sizeof *t);
	t->tid = tid;
	return t;
}

void hm_cpuattr_observe(hm_cpuattr *a, const hm_pythread *th, uint64_t t_ns)
{
	if (!th->valid || th->tid <= 0)
		return;
	uint32_t site = NO_SITE;
	if (a->profile_all && th->nframes > 0) {
		site = hm_sampler_py_frame(a->p, &th->frames[0], &a->so);
	} else {
		for (int i = 0; i < th->nframes; i++) {   /* leaf first */
			uint32_t fid = hm_sampler_py_frame(a->p, &th->frames[i], &a->so);
			const hm_frame *f = hm_profile_frame(a->p, fid);
			if (!file_is_own(a, f->file))
				continue;
			/* code run from text ("<string>") is whoever ran it's: the
			 * program's as the outermost frame (python -c) or when the
			 * nearest frame below it that is not such code is the
			 * program's (its own exec(), a function of python -c), not
			 * when a library exec()s it (a .pth line run by site.py);
			 * as the memory side (memory.h) decides */
			if (hm_profile_str(a->p, f->file)[0] == '<') {
				int j = i + 1, caller_own = 1;
				for (; j < th->nframes; j++) {
					uint32_t cid = hm_sampler_py_frame(a->p, &th->frames[j], &a->so);
					hm_str_id cf = hm_profile_frame(a->p, cid)->file;
					if (hm_profile_str(a->p, cf)[0] != '<' || !file_is_own(a, cf)) {
						caller_own = file_is_own(a, cf);
						break;
					}
				}
				if (!caller_own)
					continue;
			}
			site = fid;
			break;
		}
		/* No frame of the program's own (imports at startup, library
		 * threads): outside the program's lines. */
	}
	if (site != NO_SITE && ensure_site(a, site) != 0)
		site = NO_SITE;
	struct thr *t = find_thr(a, th->tid, 1);
	if (!t)
		return;
	struct obs *o = &t->h[t->n % HIST];
	o->t_ns = t_ns;
	o->site = site;
	t->n++;
}

void hm_cpuattr_switch(hm_cpuattr *a, pid_t tid, uint64_t t_ns, int on)
{
	struct thr *t = find_thr(a, tid, 1);
	if (!t)
		return;
	if (!t->sw && !(t->sw = malloc(SWHIST * sizeof *t->sw)))
		return;
	/* a ring, in time order: rings of different CPUs are read one after
	 * the other, so a thread that moved may come out of order (a few
	 * places back at most) */
	uint32_t k = t->nsw < SWHIST ? t->nsw : SWHIST - 1;   /* kept after this one */
	uint32_t i = t->nsw;
	for (uint32_t moved = 0; moved < k && t->sw[(i - 1) % SWHIST].t_ns > t_ns; moved++, i--)
		t->sw[i % SWHIST] = t->sw[(i - 1) % SWHIST];
	t->sw[i % SWHIST].t_ns = t_ns;
	t->sw[i % SWHIST].on = (uint8_t)!!on;
	t->nsw++;
}

/* Was the thread running (or runnable) at w: 1, blocked: 0, unknown
 * (no switch kept at or before w): -1. */
static int running_at(const hm_cpuattr *a, const struct thr *t, uint64_t w)
{
	if (w > a->sw_until)
		return -1;
	uint32_t k = t->nsw < SWHIST ? t->nsw : SWHIST, first = t->nsw - k;
	if (!k || t->sw[first % SWHIST].t_ns > w)
		return -1;
	uint32_t lo = first, hi = t->nsw;   /* the last switch at or before w */
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (t->sw[mid % SWHIST].t_ns <= w)
			lo = mid;
		else
			hi = mid;
	}
	return t->sw[lo % SWHIST].on;
}

void hm_cpuattr_switches_end(hm_cpuattr *a, uint64_t t_ns)
{
	a->sw_until = t_ns;
}

/* The line of a sample at t_ns from the walks of its thread: those just
 * before and just after it if they agree, else the nearer one within
 * max_gap_ns; with running_only, walks made while the thread was blocked
 * are left out. */
static uint32_t join(const hm_cpuattr *a, const struct thr *t, uint64_t t_ns, uint64_t max_gap_ns,
		     int running_only)
{
	const struct obs *before = NULL, *after = NULL;
	uint32_t k = t->n < HIST ? t->n : HIST;
	for (uint32_t i = 0; i < k; i++) {
		const struct obs *o = &t->h[(t->n - 1 - i) % HIST];
		if (running_only && running_at(a, t, o->t_ns) == 0)
			continue;
		if (o->t_ns <= t_ns) {
			if (!before || o->t_ns > before->t_ns)
				before = o;
		} else if (!after || o->t_ns < after->t_ns) {
			after = o;
		}
	}
	if (before && after && before->site == after->site)
		/* on the same line at both ends: there throughout, however far
		 * apart the walks were (homura starved of CPU) */
		return before->site;
	uint64_t db = before ? t_ns - before->t_ns : UINT64_MAX;
	uint64_t da = after ? after->t_ns - t_ns : UINT64_MAX;
	const struct obs *o = db <= da ? before : after;
	if (o && (db <= da ? db : da) <= max_gap_ns)
		return o->site;
	return NO_SITE;
}

void hm_cpuattr_sample(hm_cpuattr *a, pid_t tid, uint64_t t_ns, int kind, uint64_t max_gap_ns)
{
	if (kind < 0 || kind >= HM_CPU_KINDS)
		return;
	a->total[kind]++;
	struct thr *t = find_thr(a, tid, 0);
	uint32_t site = NO_SITE;
	if (t) {
		t->last_cpu_ns = t_ns;
		/* A walk made while the thread was blocked shows where it
		 * waits (a sleep, a read), not where it ran: a thread that
		 * wakes for less than the time between walks, runs a loop
		 * and sleeps again is seen asleep at both ends. Walks made
		 * while it ran first (within RUNNING_GAP times the gap); any
		 * walk when none is near. */
		if (t->nsw && t_ns <= a->sw_until)
			site = join(a, t, t_ns, RUNNING_GAP * max_gap_ns, 1);
		if (site == NO_SITE)
			site = join(a, t, t_ns, max_gap_ns, 0);
	}
	if (site == NO_SITE) {
		a->outside[kind]++;
		return;
	}
	a->sites[site].samples[kind]++;
}

void hm_cpuattr_gpu(hm_cpuattr *a, uint64_t t_ns, double util, double mem_mb)
{
	/* Threads that ran in the last 200 ms; if none, the first thread seen
	 * (the main thread): a program waiting for its GPU is still "on" that
	 * line. */
	int any = 0;
	for (int pass = 0; pass < 2 && !any; pass++) {
		for (size_t i = 0; i < a->nthr; i++) {
			struct thr *t = &a->thr[i];
			if (!t->n)
				continue;
			if (pass == 0 && (t->last_cpu_ns + 200000000ull < t_ns || !t->last_cpu_ns))
				continue;
			if (pass == 1 && i != 0)
				continue;
			uint32_t site = t->h[(t->n - 1) % HIST].site;
			if (site == NO_SITE)
				continue;
			struct site *s = &a->sites[site];
			if (util >= 0) {
				s->gpu_util_sum += util;
				s->gpu_n++;
			}
			if (mem_mb >= 0 && mem_mb > s->gpu_mem_max)
				s->gpu_mem_max = mem_mb;
			any = 1;
		}
	}
}

void hm_cpuattr_totals(const hm_cpuattr *a, uint64_t total[HM_CPU_KINDS],
		       uint64_t outside[HM_CPU_KINDS])
{
	for (int k = 0; k < HM_CPU_KINDS; k++) {
		if (total)
			total[k] = a->total[k];
		if (outside)
			outside[k] = a->outside[k];
	}
}

static uint64_t line_sum(const hm_cpuline *l)
{
	return l->samples[0] + l->samples[1] + l->samples[2];
}

static int cmp_line(const void *x, const void *y)
{
	const hm_cpuline *a = x, *b = y;
	int c = strcmp(a->file, b->file);
	if (c)
		return c;
	return a->line < b->line ? -1 : a->line > b->line;
}

static int cmp_func(const void *x, const void *y)
{
	uint64_t a = line_sum(x), b = line_sum(y);
	if (a != b)
		return a > b ? -1 : 1;
	return cmp_line(x, y);
}

static int used(const struct site *s)
{
	return s->samples[0] || s->samples[1] || s->samples[2] || s->gpu_n || s->gpu_mem_max >= 0;
}

size_t hm_cpuattr_lines(hm_cpuattr *a, const hm_cpuline **out)
{
	free(a->lines);
	a->lines = NULL;
	a->nlines = 0;
	uint32_t nf = hm_profile_nframes(a->p);
	size_t n = 0;
	for (uint32_t i = 0; i < nf && i < a->nsites; i++)
		n += used(&a->sites[i]);
	a->lines = calloc(n ? n : 1, sizeof *a->lines);
	if (!a->lines) {
		*out = NULL;
		return 0;
	}
	for (uint32_t i = 0; i < nf && i < a->nsites; i++) {
		const struct site *s = &a->sites[i];
		if (!used(s))
			continue;
		const hm_frame *f = hm_profile_frame(a->p, i);
		hm_cpuline *l = &a->lines[a->nlines++];
		l->file = hm_profile_str(a->p, f->file);
		l->func = hm_profile_str(a->p, f->name);
		l->line = f->line;
		l->func_line = f->start_line;
		memcpy(l->samples, s->samples, sizeof l->samples);
		l->gpu_util_sum = s->gpu_util_sum;
		l->gpu_n = s->gpu_n;
		l->gpu_mem_max_mb = s->gpu_mem_max;
	}
	if (a->nlines > 1)
		qsort(a->lines, a->nlines, sizeof *a->lines, cmp_line);
	*out = a->lines;
	return a->nlines;
}

size_t hm_cpuattr_functions(hm_cpuattr *a, const hm_cpuline **out)
{
	const hm_cpuline *lines;
	size_t n = hm_cpuattr_lines(a, &lines);
	free(a->funcs);
	a->nfuncs = 0;
	a->funcs = calloc(n ? n : 1, sizeof *a->funcs);
	if (!a->funcs) {
		*out = NULL;
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		const hm_cpuline *l = &lines[i];
		hm_cpuline *f = NULL;
		for (size_t j = a->nfuncs; j-- > 0;) {
			hm_cpuline *c = &a->funcs[j];
			if (c->func_line == l->func_line && !strcmp(c->func, l->func) &&
			    !strcmp(c->file, l->file)) {
				f = c;
				break;
			}
		}
		if (!f) {
			f = &a->funcs[a->nfuncs++];
			*f = *l;
			f->line = l->func_line;
			continue;
		}
		for (int k = 0; k < HM_CPU_KINDS; k++)
			f->samples[k] += l->samples[k];
		f->gpu_util_sum += l->gpu_util_sum;
		f->gpu_n += l->gpu_n;
		if (l->gpu_mem_max_mb > f->gpu_mem_max_mb)
			f->gpu_mem_max_mb = l->gpu_mem_max_mb;
	}
	if (a->nfuncs > 1)
		qsort(a->funcs, a->nfuncs, sizeof *a->funcs, cmp_func);
	*out = a->funcs;
	return a->nfuncs;
}
