/* sampler.c - the sampling loop (see sampler.h).
 *
 * Ticks are scheduled on CLOCK_MONOTONIC with absolute sleeps, so the cost of
 * a sample does not drift the rate. With jitter, each interval is drawn
 * uniformly from [0.5, 1.5] periods: the mean rate is kept, and work in the
 * target that repeats at a fixed period cannot stay in phase with the
 * sampler. A tick that starts more than one period after its due time counts
 * as late and the schedule restarts from now rather than bursting. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "homura/error.h"
#include "homura/native.h"
#include "homura/pyasync.h"
#include "homura/sampler.h"

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t real_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

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

/* xorshift64*: cheap, good enough for jitter. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}


void hm_sampler_add_thread(hm_profile *p, const hm_pythread *th, const hm_sampler_opts *o,
			   int64_t weight_ns, uint64_t t_ns)
{
	uint32_t stackbuf[512];
	uint32_t n = (uint32_t)th->nframes + 2;
	uint32_t *ids = n <= 512 ? stackbuf : malloc(n * sizeof *ids);
	if (!ids)
		return;
	uint32_t k = 0;
	if (o->threads_root) {
		char name[64];
		snprintf(name, sizeof name, "thread %d", (int)th->tid);
		hm_frame f = {hm_profile_intern_cstr(p, name), 0, 0, 0, HM_FRAME_THREAD};
		ids[k++] = hm_profile_frame_id(p, &f);
	}
	uint32_t tag = hm_profile_serial(p); /* code objects cache ids per profile */
	for (int i = th->nframes - 1; i >= 0; i--) {
		hm_pycode *c = (hm_pycode *)th->frames[i].code;
		hm_frame f;
		memset(&f, 0, sizeof f);
		/* The code object remembers its interned name and file. */
		if (c->user_gen != tag) {
			c->user = hm_profile_intern_cstr(p, c->qualname);
			c->user2 = hm_profile_intern_cstr(p, c->filename);
			c->user_gen = tag;
		}
		f.name = c->user;
		f.file = c->user2;
		f.line = o->nolineno ? 0 : th->frames[i].line;
		f.start_line = c->firstlineno;
		f.kind = HM_FRAME_PYTHON;
		ids[k++] = hm_profile_frame_id(p, &f);
	}
	if (th->in_gc) {
		/* A garbage collection runs under these frames. */
		hm_frame f = {hm_profile_intern_cstr(p, "<gc>"), 0, 0, 0, HM_FRAME_OTHER};
		ids[k++] = hm_profile_frame_id(p, &f);
	}
	uint32_t stack = hm_profile_stack_id(p, ids, k);
	uint32_t thread = hm_profile_thread_id(p, (uint64_t)th->tid, 0, th->name);
	hm_profile_add(p, stack, thread, 1, weight_ns, t_ns);
	if (ids != stackbuf)
		free(ids);
}

static void record_cost(hm_sampler_stats *st, uint64_t ns)
{
	uint64_t b = ns / 100;
	if (b < HM_COST_BUCKETS)
		st->cost_hist[b]++;
	else
		st->cost_over++;
	if (ns > st->cost_max_ns)
		st->cost_max_ns = ns;
}

double hm_sampler_cost_us(const hm_sampler_stats *st, double pct)
{
	uint64_t total = st->cost_over;
	for (int i = 0; i < HM_COST_BUCKETS; i++)
		total += st->cost_hist[i];
	if (!total)
		return 0;
	uint64_t want = (uint64_t)((double)total * pct / 100.0 + 0.5);
	if (want < 1)
		want = 1;
	uint64_t seen = 0;
	for (int i = 0; i < HM_COST_BUCKETS; i++) {
		seen += st->cost_hist[i];
		if (seen >= want)
			return (i + 0.5) / 10.0;
	}
	return (double)st->cost_max_ns / 1000.0;
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
	uint64_t deadline = mono_ns() + (uint64_t)(timeout_s * 1e9);
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
		if (mono_ns() > deadline)
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

int hm_sampler_run(hm_target *t, hm_python **pyp, hm_profile *p, const hm_sampler_opts *o,
		   hm_sampler_stats *st)
{
	hm_pysample s;
	memset(&s, 0, sizeof s);
	double rate = o->rate_hz > 0 ? o->rate_hz : 100;
	uint64_t period = (uint64_t)(1e9 / rate);
	uint64_t start = mono_ns();
	uint64_t end = o->duration_s > 0 ? start + (uint64_t)(o->duration_s * 1e9) : UINT64_MAX;
	uint64_t next = start;
	uint64_t rng = start ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
	unsigned flags = (o->idle ? 0 : HM_SAMPLE_ONCPU) | (o->gil_only ? HM_SAMPLE_GIL : 0);
	int consecutive_errors = 0;
	pid_t running[MAX_RUNNING];
	int nrun = 0;
	int rc = HM_OK;
	hm_profile_meta *meta = hm_profile_meta_get(p);
	if (!meta->start_ns)
		meta->start_ns = real_ns();
	meta->period_ns = period;
	meta->time_kind = o->idle ? HM_TIME_WALL : HM_TIME_CPU;
	if (*pyp)
		hm_python_set_max_depth(*pyp, o->max_depth > 0 ? o->max_depth : 4096);
	/* --native: a libdwfl session for the target (lib/native.c). */
	hm_native *nat = NULL;
	hm_natsample ns;
	memset(&ns, 0, sizeof ns);
	if (o->native && (rc = hm_native_open(t, &nat)) != HM_OK)
		return rc;
	/* --async: asyncio tasks (lib/pyasync_sampler.c). */
	hm_asyncsampler *as = o->async ? hm_asyncsampler_new() : NULL;

	while (!(o->stop && *o->stop)) {
		uint64_t now = mono_ns();
		if (now >= end)
			break;
		if (now > next + period) {
			st->late++;
			next = now;
		}
		if (child_exited(o->child, &st->child_status) || !hm_target_alive(t)) {
			st->target_exited = 1;
			break;
		}
		if (!*pyp) {
			/* Lost the interpreter (exec): try to find it again. */
			hm_python *np = NULL;
			if (hm_python_attach(t, &np) == HM_OK) {
				hm_python_set_max_depth(np, o->max_depth > 0 ? o->max_depth : 4096);
				*pyp = np;
				st->reattached++;
			}
		} else {
			uint64_t t0 = mono_ns();
			int paused = 0, r;
			if (nat) {
				/* Stops (only) the threads it unwinds. */
				r = hm_native_sample(nat, *pyp, &s, &ns, flags);
			} else if (o->blocking) {
				/* Paused threads all read as stopped, so learn
				 * who was running before stopping them. */
				if (!o->idle)
					nrun = running_threads(t, running, MAX_RUNNING);
				paused = hm_target_pause(t) == HM_OK;
				r = hm_python_sample(*pyp, &s, flags & ~(unsigned)HM_SAMPLE_ONCPU);
				if (paused)
					hm_target_resume(t);
			} else {
				r = hm_python_sample(*pyp, &s, flags);
			}
			uint64_t t1 = mono_ns();
			st->ticks++;
			if (r != HM_OK) {
				st->errors++;
				if (++consecutive_errors >= 5) {
					hm_python_detach(*pyp);
					*pyp = NULL;
					consecutive_errors = 0;
				}
			} else {
				consecutive_errors = 0;
				record_cost(st, t1 - t0);
				hm_python_thread_names(*pyp, &s);
				if (as)
					hm_asyncsampler_read(as, *pyp);
				uint64_t wall = real_ns();
				for (int i = 0; i < s.nthreads; i++) {
					const hm_pythread *th = &s.threads[i];
					if (!th->valid) {
						st->invalid++;
						continue;
					}
					if (!th->nframes)
						continue;
					if (o->blocking && !nat && !o->idle && !in_set(running, nrun, th->tid))
						continue;
					if (nat) {
						if (ns.stacks[i].state == HM_NATSTACK_SKIP)
							continue;
						st->native_torn += (uint64_t)hm_native_add_thread(
							p, th, &ns.stacks[i], hm_python_layout(*pyp), o,
							(int64_t)period, wall);
					} else if (!(as && hm_asyncsampler_add_thread(as, p, th, o,
										     (int64_t)period, wall))) {
						hm_sampler_add_thread(p, th, o, (int64_t)period, wall);
					}
					st->samples++;
				}
				if (as) {
					int bad = 0;
					st->samples += (uint64_t)hm_asyncsampler_add_tasks(
						as, p, o, (int64_t)period, wall, &bad);
					st->invalid += (uint64_t)bad;
				}
			}
		}
		uint64_t step = period;
		if (o->jitter)
			step = period / 2 + rng_next(&rng) % (period + 1);
		next += step;
		if (next > end)
			next = end;
		sleep_until(next);
	}
	meta->duration_ns = mono_ns() - start;
	if (nat) {
		const hm_native_stats *nst = hm_native_stats_get(nat);
		st->native_unwinds = nst->unwinds;
		st->native_failed = nst->failed;
		st->native_stop_ns = nst->stop_ns;
		st->native_stop_max_ns = nst->stop_max_ns;
		hm_native_close(nat);
		hm_natsample_free(&ns);
	}
	hm_asyncsampler_free(as);
	hm_pysample_free(&s);
	return rc;
}
