/* sampler.c - the sampling loop (see sampler.h).
 *
 * Ticks are scheduled on CLOCK_MONOTONIC with absolute sleeps, so the cost of
 * a sample does not drift the rate. With jitter, each interval is drawn
 * uniformly from [0.5, 1.5] periods: the mean rate is kept, and work in the
 * target that repeats at a fixed period cannot stay in phase with the
 * sampler. A tick that starts more than one period after its due time counts
 * as late and the schedule restarts from now rather than bursting. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/util.h"
#include "native/native.h"
#include "python/pyasync.h"
#include "sample/async.h"
#include "sample/follow.h"
#include "sample/sampler.h"

static void sleep_until(uint64_t t)
{
	struct timespec ts = {(time_t)(t / 1000000000ull), (long)(t % 1000000000ull)};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		break;   /* a signal (Ctrl-C) wakes us so the caller can stop */
}

void hm_sampler_opts_init(hm_sampler_opts *o)
{
	memset(o, 0, sizeof *o);
	o->rate_hz = 100;
	o->jitter = 1;
	o->max_depth = 4096;
}


uint32_t hm_sampler_root_frames(hm_profile *p, const hm_sampler_opts *o, pid_t tid, uint32_t *ids)
{
	uint32_t k = 0;
	if (o->process_label) {
		hm_frame f = {hm_profile_intern_cstr(p, o->process_label), 0, 0, 0, HM_FRAME_PROCESS};
		ids[k++] = hm_profile_frame_id(p, &f);
	}
	if (o->threads_root) {
		char name[64];
		snprintf(name, sizeof name, "thread %d", (int)tid);
		hm_frame f = {hm_profile_intern_cstr(p, name), 0, 0, 0, HM_FRAME_THREAD};
		ids[k++] = hm_profile_frame_id(p, &f);
	}
	return k;
}

uint32_t hm_sampler_py_frame(hm_profile *p, const hm_pyframe *pf, const hm_sampler_opts *o)
{
	hm_pycode *c = (hm_pycode *)pf->code;
	/* The code object remembers its interned name and file for the
	 * profile whose serial it carries. */
	uint32_t tag = hm_profile_serial(p);
	if (c->user_gen != tag) {
		c->user = hm_profile_intern_cstr(p, c->qualname);
		c->user2 = hm_profile_intern_cstr(p, c->filename);
		c->user_gen = tag;
	}
	hm_frame f;
	memset(&f, 0, sizeof f);
	f.name = c->user;
	f.file = c->user2;
	f.line = o->nolineno ? 0 : pf->line;
	f.start_line = c->firstlineno;
	f.kind = HM_FRAME_PYTHON;
	return hm_profile_frame_id(p, &f);
}

uint32_t hm_sampler_thread(hm_profile *p, const hm_sampler_opts *o, pid_t tid, const char *name)
{
	return hm_profile_thread_id(p, (uint64_t)tid, (uint32_t)(o->process_pid > 0 ? o->process_pid : 0),
				    name);
}

void hm_sampler_add_thread(hm_profile *p, const hm_pythread *th, const hm_sampler_opts *o,
			   int64_t weight_ns, uint64_t t_ns)
{
	uint32_t stackbuf[512];
	uint32_t n = (uint32_t)th->nframes + 3;
	uint32_t *ids = n <= 512 ? stackbuf : malloc(n * sizeof *ids);
	if (!ids)
		return;
	uint32_t k = hm_sampler_root_frames(p, o, th->tid, ids);
	for (int i = th->nframes - 1; i >= 0; i--)
		ids[k++] = hm_sampler_py_frame(p, &th->frames[i], o);
	if (th->in_gc) {
		/* A garbage collection runs under these frames. */
		hm_frame f = {hm_profile_intern_cstr(p, "<gc>"), 0, 0, 0, HM_FRAME_OTHER};
		ids[k++] = hm_profile_frame_id(p, &f);
	}
	uint32_t stack = hm_profile_stack_id(p, ids, k);
	hm_profile_add_span(p, stack, hm_sampler_thread(p, o, th->tid, th->name),
			    hm_sampler_span(p, &th->span), 1, weight_ns, t_ns);
	if (ids != stackbuf)
		free(ids);
}

#define COST_LIN_NS ((uint64_t)HM_COST_BUCKETS * 100)   /* 2 ms */

/* The log bucket of ns >= COST_LIN_NS: floor(STEPS * log2(ns / 2 ms)). */
static int cost_log_bucket(uint64_t ns)
{
	double x = log2((double)ns / (double)COST_LIN_NS) * HM_COST_LOG_STEPS;
	return x < 0 ? 0 : x >= HM_COST_LOG_BUCKETS ? HM_COST_LOG_BUCKETS : (int)x;
}

void hm_sampler_record_cost(hm_sampler_stats *st, uint64_t ns)
{
	uint64_t b = ns / 100;
	if (b < HM_COST_BUCKETS) {
		st->cost_hist[b]++;
	} else {
		int lb = cost_log_bucket(ns);
		if (lb < HM_COST_LOG_BUCKETS)
			st->cost_log[lb]++;
		else
			st->cost_over++;
	}
	if (ns > st->cost_max_ns)
		st->cost_max_ns = ns;
	st->cost_sum_ns += ns;
}

static uint64_t cost_count(const hm_sampler_stats *st)
{
	uint64_t total = st->cost_over;
	for (int i = 0; i < HM_COST_BUCKETS; i++)
		total += st->cost_hist[i];
	for (int i = 0; i < HM_COST_LOG_BUCKETS; i++)
		total += st->cost_log[i];
	return total;
}

double hm_sampler_cost_mean_us(const hm_sampler_stats *st)
{
	uint64_t total = cost_count(st);
	return total ? (double)st->cost_sum_ns / (double)total / 1000.0 : 0;
}

double hm_sampler_cost_us(const hm_sampler_stats *st, double pct)
{
	uint64_t total = cost_count(st);
	if (!total)
		return 0;
	uint64_t want = (uint64_t)((double)total * pct / 100.0 + 0.5);
	if (want < 1)
		want = 1;
	double max_us = (double)st->cost_max_ns / 1000.0, us = max_us;
	uint64_t seen = 0;
	int i;
	for (i = 0; i < HM_COST_BUCKETS; i++) {
		seen += st->cost_hist[i];
		if (seen >= want) {
			us = (i + 0.5) / 10.0;
			break;
		}
	}
	for (int j = 0; i == HM_COST_BUCKETS && j < HM_COST_LOG_BUCKETS; j++) {
		seen += st->cost_log[j];
		if (seen >= want) {
			/* the bucket's geometric middle */
			us = (double)COST_LIN_NS / 1000.0 * exp2((j + 0.5) / HM_COST_LOG_STEPS);
			break;
		}
	}
	return us < max_us ? us : max_us;
}

/* Has the launched child (if any) exited?  Reaps it. */
static int child_exited(pid_t child, int *status)
{
	if (child <= 0)
		return 0;
	int s;
	pid_t r = waitpid(child, &s, WNOHANG);
	if (r == child) {
		*status = s;
		return 1;
	}
	return r < 0 && errno == ECHILD;
}

int hm_sampler_wait_python(hm_target *t, pid_t child, double timeout_s, hm_python **py,
			   volatile sig_atomic_t *stop, int *child_status)
{
	uint64_t deadline = hm_mono_ns() + (uint64_t)(timeout_s * 1e9);
	int last = HM_ENOTPY;
	*py = NULL;
	while (!(stop && *stop)) {
		if (child_exited(child, child_status) || !hm_target_alive(t))
			return hm_error(HM_ENOPROC, "process %d exited before Python started",
					(int)hm_target_pid(t));
		hm_python *p = NULL;
		last = hm_python_attach(t, &p);
		if (last == HM_OK) {
			if (hm_python_ready(p)) {
				*py = p;
				return HM_OK;
			}
			hm_python_detach(p);
		} else if (last == HM_EVERSION) {
			return last;
		}
		if (hm_mono_ns() > deadline)
			break;
		usleep(500);
	}
	if (stop && *stop)
		return hm_error(HM_ENOPROC, "interrupted before Python started");
	if (last == HM_OK)
		return hm_error(HM_ENOTPY, "process %d never started running Python code",
				(int)hm_target_pid(t));
	return last;
}

#define MAX_RUNNING 1024

/* Threads of t in state 'R' now. */
static int running_threads(hm_target *t, pid_t *out, int max)
{
	pid_t tids[MAX_RUNNING];
	int n = hm_target_threads(t, tids, MAX_RUNNING), k = 0;
	for (int i = 0; i < n && k < max; i++)
		if (hm_target_thread_state(t, tids[i]) == 'R')
			out[k++] = tids[i];
	return k;
}

static int in_set(const pid_t *set, int n, pid_t v)
{
	for (int i = 0; i < n; i++)
		if (set[i] == v)
			return 1;
	return 0;
}

/* One sampled process: the root target, or a followed descendant. */
struct proc {
	hm_target *t;
	hm_python **pyp;         /* may become NULL (exec): re-attached later */
	hm_python *own_py;       /* storage for followed processes' pointer */
	hm_native *nat;
	hm_natsample ns;
	hm_asyncsampler *as;
	int errors;              /* consecutive failed rounds */
	pid_t pid;
	uint64_t start;          /* followed: start time, to match hm_follow */
	char label[160];         /* "process PID: program" with -s */
	int followed;
};

static int proc_open(struct proc *pr, hm_target *t, hm_python **pyp, const hm_sampler_opts *o)
{
	pr->t = t;
	pr->pyp = pyp;
	pr->pid = hm_target_pid(t);
	memset(&pr->ns, 0, sizeof pr->ns);
	pr->nat = NULL;
	pr->as = NULL;
	pr->errors = 0;
	if (o->native) {
		int rc = hm_native_open(t, &pr->nat);
		if (rc != HM_OK)
			return rc;
	}
	/* --async: asyncio tasks (lib/sample/async.c). */
	if (o->async)
		pr->as = hm_asyncsampler_new();
	if (*pyp)
		hm_python_set_max_depth(*pyp, o->max_depth > 0 ? o->max_depth : 4096);
	return HM_OK;
}

static void proc_close(struct proc *pr, hm_sampler_stats *st)
{
	if (pr->nat) {
		const hm_native_stats *nst = hm_native_stats_get(pr->nat);
		st->native_unwinds += nst->unwinds;
		st->native_failed += nst->failed;
		st->native_stop_ns += nst->stop_ns;
		if (nst->stop_max_ns > st->native_stop_max_ns)
			st->native_stop_max_ns = nst->stop_max_ns;
		hm_native_close(pr->nat);
		hm_natsample_free(&pr->ns);
		pr->nat = NULL;
	}
	hm_asyncsampler_free(pr->as);
	pr->as = NULL;
}

/* One round over one process: read its stacks and add them to p. */
static void sample_proc(struct proc *pr, hm_pysample *s, hm_profile *p, const hm_sampler_opts *o,
			hm_sampler_stats *st, unsigned flags, uint64_t period)
{
	hm_sampler_opts po = *o;
	if (o->subprocesses) {
		po.process_pid = pr->pid;
		po.process_label = pr->label;
	}
	if (!*pr->pyp) {
		/* Lost the interpreter (exec): try to find it again. */
		hm_python *np = NULL;
		if (hm_python_attach(pr->t, &np) == HM_OK) {
			hm_python_set_max_depth(np, o->max_depth > 0 ? o->max_depth : 4096);
			*pr->pyp = np;
			st->reattached++;
		}
		return;
	}
	pid_t running[MAX_RUNNING];
	int nrun = 0, by_state = 0;
	uint64_t t0 = hm_mono_ns();
	int r;
	if (pr->nat) {
		/* Stops (only) the threads it unwinds. */
		r = hm_native_sample(pr->nat, *pr->pyp, s, &pr->ns, flags);
	} else if (o->blocking) {
		/* The CPU time the kernel charged to each thread says who
		 * ran, stopped or not. Without it, learn who was runnable
		 * before stopping them: paused threads read as stopped. */
		by_state = !o->idle && !hm_target_has_cputime(pr->t);
		if (by_state)
			nrun = running_threads(pr->t, running, MAX_RUNNING);
		int paused = hm_target_pause(pr->t) == HM_OK;
		r = hm_python_sample(*pr->pyp, s, by_state ? flags & ~(unsigned)HM_SAMPLE_ONCPU : flags);
		if (paused)
			hm_target_resume(pr->t);
	} else {
		r = hm_python_sample(*pr->pyp, s, flags);
	}
	uint64_t t1 = hm_mono_ns();
	st->ticks++;
	if (r != HM_OK) {
		st->errors++;
		if (++pr->errors >= 5) {
			hm_python_detach(*pr->pyp);
			*pr->pyp = NULL;
			pr->errors = 0;
		}
		return;
	}
	pr->errors = 0;
	hm_sampler_record_cost(st, t1 - t0);
	hm_python_thread_names(*pr->pyp, s);
	if (pr->as)
		hm_asyncsampler_read(pr->as, *pr->pyp);
	uint64_t wall = hm_real_ns();
	for (int i = 0; i < s->nthreads; i++) {
		const hm_pythread *th = &s->threads[i];
		if (!th->valid) {
			st->invalid++;
			continue;
		}
		if (!th->nframes)
			continue;
		if (by_state && !in_set(running, nrun, th->tid))
			continue;
		if (pr->nat) {
			if (pr->ns.stacks[i].state == HM_NATSTACK_SKIP)
				continue;
			int torn = hm_sampler_add_native(p, th, &pr->ns.stacks[i],
							hm_python_layout(*pr->pyp), &po,
							(int64_t)period, wall);
			st->native_torn += (torn & HM_SAMPLER_NATIVE_TORN) != 0;
			st->native_no_eval += (torn & HM_SAMPLER_NATIVE_NO_EVAL) != 0;
		} else if (!(pr->as && hm_asyncsampler_add_thread(pr->as, p, th, &po, (int64_t)period,
								    wall))) {
			hm_sampler_add_thread(p, th, &po, (int64_t)period, wall);
		}
		st->samples++;
	}
	if (pr->as) {
		int bad = 0;
		st->samples += (uint64_t)hm_asyncsampler_add_tasks(pr->as, p, &po, (int64_t)period, wall,
								   &bad);
		st->invalid += (uint64_t)bad;
	}
}

/* The followed descendants (--subprocesses), kept in step with hm_follow. */
struct followers {
	hm_follow *f;
	struct proc *procs;
	int n, cap;
	const hm_sampler_opts *o;
	hm_sampler_stats *st;
	uint64_t last_scan;
};

static void follower_dropped(void *ctx, hm_followed *it)
{
	struct followers *fl = ctx;
	for (int i = 0; i < fl->n; i++)
		if (fl->procs[i].pid == it->pid && fl->procs[i].start == it->start) {
			/* The followed entry owns t and py; we own the rest. */
			proc_close(&fl->procs[i], fl->st);
			fl->procs[i] = fl->procs[--fl->n];
			return;
		}
}

/* Rescan (every 250 ms) and make sure each ready descendant has a proc. */
static void followers_update(struct followers *fl, uint64_t now)
{
	if (now - fl->last_scan < 250000000ull)
		return;
	fl->last_scan = now;
	hm_follow_scan(fl->f);
	for (int i = 0; i < hm_follow_count(fl->f); i++) {
		hm_followed *it = hm_follow_get(fl->f, i);
		int known = 0;
		for (int k = 0; k < fl->n; k++)
			if (fl->procs[k].pid == it->pid && fl->procs[k].start == it->start) {
				/* hm_follow may have re-attached it after an exec. */
				fl->procs[k].pyp = &it->py;
				known = 1;
			}
		if (known || !it->py)
			continue;
		if (fl->n == fl->cap) {
			int nc = fl->cap ? fl->cap * 2 : 8;
			struct proc *np = realloc(fl->procs, (size_t)nc * sizeof *np);
			if (!np)
				return;
			fl->procs = np;
			fl->cap = nc;
		}
		struct proc *pr = &fl->procs[fl->n];
		memset(pr, 0, sizeof *pr);
		if (proc_open(pr, it->t, &it->py, fl->o) != HM_OK)
			continue;
		pr->followed = 1;
		pr->start = it->start;
		snprintf(pr->label, sizeof pr->label, "%s", it->label);
		fl->n++;
	}
}

int hm_sampler_run(hm_target *t, hm_python **pyp, hm_profile *p, const hm_sampler_opts *o,
		   hm_sampler_stats *st)
{
	hm_pysample s;
	memset(&s, 0, sizeof s);
	double rate = o->rate_hz > 0 ? o->rate_hz : 100;
	uint64_t period = (uint64_t)(1e9 / rate);
	uint64_t start = hm_mono_ns();
	uint64_t end = o->duration_s > 0 ? start + (uint64_t)(o->duration_s * 1e9) : UINT64_MAX;
	uint64_t next = start;
	uint64_t rng = start ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
	unsigned flags = (o->idle ? 0 : HM_SAMPLE_ONCPU) | (o->gil_only ? HM_SAMPLE_GIL : 0);
	hm_profile_meta *meta = hm_profile_meta_get(p);
	if (!meta->start_ns)
		meta->start_ns = hm_real_ns();
	meta->period_ns = period;
	meta->time_kind = o->idle ? HM_TIME_WALL : HM_TIME_CPU;

	struct proc root;
	memset(&root, 0, sizeof root);
	int rc = proc_open(&root, t, pyp, o);
	if (rc != HM_OK)
		return rc;
	struct followers fl;
	memset(&fl, 0, sizeof fl);
	fl.o = o;
	fl.st = st;
	if (o->subprocesses) {
		hm_follow_label(root.pid, root.label, sizeof root.label);
		if (!(fl.f = hm_follow_new(root.pid))) {
			proc_close(&root, st);
			return hm_error(HM_ENOMEM, "out of memory");
		}
		hm_follow_on_drop(fl.f, follower_dropped, &fl);
	}
	int root_alive = 1;
	uint64_t alive_checked = 0;

	while (!(o->stop && *o->stop)) {
		uint64_t now = hm_mono_ns();
		if (now >= end)
			break;
		if (now > next + period) {
			st->late++;
			next = now;
		}
		/* Reading /proc/PID/stat costs as much as a sample: check
		 * every 50 ms, and whenever the last round could not read. */
		if (root_alive && (child_exited(o->child, &st->child_status) ||
				   ((now - alive_checked > 50000000ull || root.errors) &&
				    (alive_checked = now, !hm_target_alive(t)))))
			root_alive = 0;
		if (fl.f)
			followers_update(&fl, now);
		if (!root_alive && !fl.n) {
			st->target_exited = 1;
			break;
		}
		if (root_alive)
			sample_proc(&root, &s, p, o, st, flags, period);
		for (int i = 0; i < fl.n; i++)
			sample_proc(&fl.procs[i], &s, p, o, st, flags, period);
		uint64_t step = period;
		if (o->jitter)
			step = period / 2 + hm_rng_next(&rng) % (period + 1);
		next += step;
		if (next > end)
			next = end;
		sleep_until(next);
	}
	meta->duration_ns = hm_mono_ns() - start;
	hm_follow_free(fl.f);      /* closes the followers' procs via the callback */
	free(fl.procs);
	proc_close(&root, st);
	hm_pysample_free(&s);
	return HM_OK;
}
