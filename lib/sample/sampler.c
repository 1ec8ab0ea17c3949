/* sampler.c - the one sampling loop (see sampler.h).
 *
 * Ticks are scheduled on CLOCK_MONOTONIC with absolute sleeps, so the cost of
 * a sample does not drift the rate. With jitter, each interval is drawn
 * uniformly from [0.5, 1.5] periods (hm_rng_next, base/base.h): the mean rate
 * is kept, and work in the target that repeats at a fixed period cannot stay
 * in phase with the sampler. A round that starts more than one period after
 * its due time counts as late and the schedule restarts from now rather than
 * bursting.
 *
 * One round: the front end's `round` event; the exit check of the processes
 * it added (the launched child reaped, /proc/PID/stat read every
 * alive_check_s, or at once after a failed read); the --subprocesses rescan;
 * then each process is read and each of its thread stacks recorded
 * (emit_thread: the one spot where a thread's sample becomes stacks); the
 * `round_done` event; the wait. A process whose reads fail five times in a
 * row loses its interpreter, which is looked for again on the next rounds
 * (an exec replaces it). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "base/error.h"
#include "native/native.h"
#include "sample/async.h"
#include "sample/ebpf.h"
#include "sample/follow.h"
#include "sample/sampler.h"

void hm_sampler_opts_init(hm_sampler_opts *o)
{
	memset(o, 0, sizeof *o);
	o->rate_hz = 100;
	o->jitter = 1;
	o->max_depth = 4096;
	o->alive_check_s = 0.05;
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
static int child_exited(pid_t child, int *status, int *reaped)
{
	if (child <= 0)
		return 0;
	/* Exits only: a ptrace stop of the child (--native, --blocking: it is
	 * our tracee too) stays for proc/ptrace.c to collect. */
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid(P_PID, (id_t)child, &si, WEXITED | WNOHANG) == 0) {
		if (si.si_pid != child)
			return 0;        /* still running */
		*status = si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8
			: (si.si_status & 0x7f) | (si.si_code == CLD_DUMPED ? 0x80 : 0);
		*reaped = 1;
		return 1;
	}
	return errno == ECHILD;
}

int hm_sampler_wait_python(hm_target *t, pid_t child, double timeout_s, hm_python **py,
			   volatile sig_atomic_t *stop, int *child_status)
{
	uint64_t deadline = hm_mono_ns() + (uint64_t)(timeout_s * 1e9);
	int last = HM_ENOTPY;
	*py = NULL;
	while (!(stop && *stop)) {
		int reaped = 0;
		if (child_exited(child, child_status, &reaped) || !hm_target_alive(t))
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

/* One process of the loop. */
struct proc {
	hm_sproc pub;            /* first: an hm_sproc * is a struct proc * */
	hm_python **pyp;         /* &pub.py, or the hm_follow entry's (which owns
				  * the target and the interpreter) */
	hm_native *nat;
	hm_natsample ns;
	hm_asyncsampler *as;
	int errors;              /* consecutive failed reads */
	uint64_t start;          /* followed: start time, to match hm_follow */
	uint64_t alive_checked;
	char label[160];         /* "process PID: program" with -s */
	int in_kernel;           /* walked by the BPF program (--ebpf) */
};

struct hm_sampler {
	hm_sampler_opts o;
	hm_sampler_events ev;
	hm_sampler_stats st;
	hm_native_stats nat_closed;  /* native counters of processes that left */
	struct proc **procs;     /* in sampling order: added ones, then followed */
	int n, cap;
	int added;               /* processes ever added (the first is the root) */
	hm_follow *fol;          /* --subprocesses */
	hm_profile *fol_profile; /* where the followed processes' stacks go: the
				  * root's profile (it may exit before them) */
	uint64_t last_scan;
	int stopping, closing;
	hm_pysample s;
	hm_ebpf *bpf;            /* --ebpf: the in-kernel walker, NULL if refused */
	char bpf_why[256];       /* why not, when asked for */
	int n_kernel;            /* processes it walks */
	uint64_t bpf_invalid;    /* its invalid count already in st.invalid */
};

static int depth_of(const hm_sampler_opts *o)
{
	return o->max_depth > 0 ? o->max_depth : 4096;
}

/* Open a process's native session (native: --native) and async reader
 * (--async). */
static int proc_open(hm_sampler *s, struct proc *pr, int native)
{
	if (native) {
		int rc = hm_native_open(pr->pub.t, &pr->nat);
		if (rc != HM_OK) {
			pr->nat = NULL;
			return rc;
		}
	}
	if (s->o.async)
		pr->as = hm_asyncsampler_new();
	if (*pr->pyp)
		hm_python_set_max_depth(*pr->pyp, depth_of(&s->o));
	return HM_OK;
}

static void add_native_stats(hm_native_stats *to, const hm_native_stats *n)
{
	to->unwinds += n->unwinds;
	to->failed += n->failed;
	to->stop_ns += n->stop_ns;
	if (n->stop_max_ns > to->stop_max_ns)
		to->stop_max_ns = n->stop_max_ns;
}

/* Close what the loop opened for pr, keeping its native counters; the
 * target and interpreter too unless hm_follow owns them. Frees pr. */
static void proc_free(hm_sampler *s, struct proc *pr)
{
	if (pr->in_kernel) {
		hm_ebpf_unwatch(s->bpf, pr->pub.pid);
		s->n_kernel--;
	}
	if (pr->nat) {
		add_native_stats(&s->nat_closed, hm_native_stats_get(pr->nat));
		hm_native_close(pr->nat);
		hm_natsample_free(&pr->ns);
	}
	hm_asyncsampler_free(pr->as);
	if (!pr->pub.followed) {
		hm_python_detach(pr->pub.py);
		hm_target_close(pr->pub.t);
	}
	free(pr);
}

static int procs_push(hm_sampler *s, struct proc *pr)
{
	if (s->n == s->cap) {
		int nc = s->cap ? s->cap * 2 : 8;
		struct proc **np = realloc(s->procs, (size_t)nc * sizeof *np);
		if (!np)
			return hm_error(HM_ENOMEM, "out of memory");
		s->procs = np;
		s->cap = nc;
	}
	s->procs[s->n++] = pr;
	return HM_OK;
}

/* Take procs[i] out of the set (keeping the order) and free it. */
static void procs_remove(hm_sampler *s, int i)
{
	struct proc *pr = s->procs[i];
	memmove(&s->procs[i], &s->procs[i + 1], (size_t)(s->n - i - 1) * sizeof *s->procs);
	s->n--;
	proc_free(s, pr);
}

/* A followed process is being dropped by hm_follow (exited, or its pid was
 * reused): its target and interpreter are still open. */
static void follower_dropped(void *ctx, hm_followed *it)
{
	hm_sampler *s = ctx;
	for (int i = 0; i < s->n; i++) {
		struct proc *pr = s->procs[i];
		if (pr->pub.followed && pr->pub.pid == it->pid && pr->start == it->start) {
			if (!s->closing && s->ev.exit && s->ev.exit(s->ev.ctx, &pr->pub))
				s->stopping = 1;
			procs_remove(s, i);
			return;
		}
	}
}

static void bpf_native_sample(void *arg, void *owner, const hm_pythread *th, const hm_natstack *ns,
			      int64_t weight_ns, uint64_t t_ns, const char *const *kframes, int nk);

/* --ebpf: the kernel walks pr (with --native, its perf samples are unwound
 * by its native session). */
static void bpf_watch(hm_sampler *s, struct proc *pr, hm_python *py)
{
	if (hm_ebpf_watch(s->bpf, pr->pub.pid, py, pr) != HM_OK) {
		if (s->ev.ebpf_skip)
			s->ev.ebpf_skip(s->ev.ctx, &pr->pub, hm_errmsg());
		return;
	}
	pr->in_kernel = 1;
	s->n_kernel++;
	if (pr->nat)
		hm_ebpf_watch_native(s->bpf, pr->pub.pid, pr->nat);
}

/* --ebpf --native: how much of each sampled user stack the kernel copies
 * (HOMURA_EBPF_STACK_BYTES, for measurements; default HM_EBPF_STACK_BYTES). */
static int ebpf_stack_bytes(void)
{
	const char *v = getenv("HOMURA_EBPF_STACK_BYTES");
	return v ? atoi(v) : 0;
}

int hm_sampler_new(const hm_sampler_opts *o, const hm_sampler_events *ev, hm_sampler **out)
{
	*out = NULL;
	hm_sampler *s = calloc(1, sizeof *s);
	if (!s)
		return hm_error(HM_ENOMEM, "out of memory");
	s->o = *o;
	if (!(s->o.rate_hz > 0))
		s->o.rate_hz = 100;
	if (!(s->o.alive_check_s > 0))
		s->o.alive_check_s = 0.05;
	if (ev)
		s->ev = *ev;
	if (s->o.ebpf) {
		if (s->o.async || s->o.subprocesses || s->o.blocking || s->o.gil_only || s->o.idle)
			snprintf(s->bpf_why, sizeof s->bpf_why, "--ebpf does not combine with "
				 "--async, --subprocesses, --blocking, --gil or --idle");
		else if ((s->o.native ? hm_ebpf_open_native(s->o.rate_hz, s->o.ebpf_kernel,
							    ebpf_stack_bytes(), bpf_native_sample,
							    &s->bpf)
				      : hm_ebpf_open(s->o.rate_hz, s->o.ebpf_kernel, &s->bpf)) != HM_OK)
			snprintf(s->bpf_why, sizeof s->bpf_why, "%s", hm_errmsg());
	}
	*out = s;
	return HM_OK;
}

const char *hm_sampler_ebpf_why(const hm_sampler *s)
{
	return s->bpf ? NULL : s->bpf_why[0] ? s->bpf_why : "--ebpf was not asked for";
}

void hm_sampler_set_child(hm_sampler *s, pid_t child)
{
	s->o.child = child;
}

void hm_sampler_free(hm_sampler *s)
{
	if (!s)
		return;
	s->closing = 1;
	hm_follow_free(s->fol);   /* frees the followed procs via the callback */
	while (s->n)
		procs_remove(s, s->n - 1);
	free(s->procs);
	hm_pysample_free(&s->s);
	hm_ebpf_close(s->bpf);
	free(s);
}

int hm_sampler_add(hm_sampler *s, hm_target *t, hm_python *py, hm_profile *profile, void *user,
		   hm_sproc **out)
{
	if (out)
		*out = NULL;
	struct proc *pr = calloc(1, sizeof *pr);
	if (!pr) {
		hm_python_detach(py);
		hm_target_close(t);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	pr->pub.pid = hm_target_pid(t);
	pr->pub.t = t;
	pr->pub.py = py;
	pr->pub.profile = profile;
	pr->pub.user = user;
	pr->pyp = &pr->pub.py;
	int root = s->added == 0, rc = proc_open(s, pr, s->o.native);
	if (rc != HM_OK && root) {
		proc_free(s, pr);
		return rc;
	}
	if (rc != HM_OK)   /* not the first: sampled without native frames */
		proc_open(s, pr, 0);
	if (s->o.subprocesses) {
		hm_follow_label(pr->pub.pid, pr->label, sizeof pr->label);
		pr->pub.label = pr->label;
	}
	if (s->o.subprocesses && root) {
		if (!(s->fol = hm_follow_new(pr->pub.pid))) {
			proc_free(s, pr);
			return hm_error(HM_ENOMEM, "out of memory");
		}
		hm_follow_on_drop(s->fol, follower_dropped, s);
		s->fol_profile = profile;
	}
	if ((rc = procs_push(s, pr)) != HM_OK) {
		proc_free(s, pr);
		return rc;
	}
	s->added++;
	if (s->bpf && py)
		bpf_watch(s, pr, py);
	if (out)
		*out = &pr->pub;
	return HM_OK;
}

int hm_sampler_count(const hm_sampler *s)
{
	return s->n;
}

hm_sampler_stats *hm_sampler_stats_of(hm_sampler *s)
{
	/* The native counters: those of the processes that left, and the
	 * running ones' so far. */
	hm_native_stats n = s->nat_closed;
	for (int i = 0; i < s->n; i++)
		if (s->procs[i]->nat)
			add_native_stats(&n, hm_native_stats_get(s->procs[i]->nat));
	s->st.native_unwinds = n.unwinds;
	s->st.native_failed = n.failed;
	s->st.native_stop_ns = n.stop_ns;
	s->st.native_stop_max_ns = n.stop_max_ns;
	if (s->bpf) {
		hm_ebpf_counts c;
		hm_ebpf_counts_get(s->bpf, &c);
		s->st.bpf_runs = c.runs;
		s->st.bpf_run_ns = c.run_ns;
		s->st.bpf_matched = c.matched;
		s->st.bpf_dropped = c.dropped;
		s->st.bpf_no_python = c.no_python;
		s->st.bpf_native_joined = c.native_joined;
		s->st.bpf_native_unjoined = c.native_unjoined;
		s->st.bpf_native_lost = c.native_lost;
		s->st.bpf_aggregated = c.aggregated;
		s->st.bpf_agg_full = c.agg_full;
		s->st.bpf_agg_entries = c.agg_entries;
		s->st.bpf_new_stacks = c.new_stacks;
		s->st.bpf_root_scans = c.root_scans;
		s->st.bpf_roots_found = c.roots_found;
		s->st.bpf_roots_at_frame = c.roots_at_frame;
		s->st.bpf_roots_in_kernel = c.roots_in_kernel;
		s->st.bpf_root_scan_ns = c.root_scan_ns;
		s->st.bpf_cpu_from_kernel = c.cpu_from_kernel;
	}
	return &s->st;
}

/* Rescan (every 250 ms) and make sure each ready descendant has a proc. */
static void followers_update(hm_sampler *s, uint64_t now)
{
	if (now - s->last_scan < 250000000ull)
		return;
	s->last_scan = now;
	hm_follow_scan(s->fol);
	for (int i = 0; i < hm_follow_count(s->fol); i++) {
		hm_followed *it = hm_follow_get(s->fol, i);
		struct proc *known = NULL;
		for (int k = 0; k < s->n && !known; k++) {
			struct proc *pr = s->procs[k];
			if (pr->pub.followed && pr->pub.pid == it->pid && pr->start == it->start)
				known = pr;
		}
		if (known) {
			/* Entries move on drops; hm_follow may have attached
			 * it again after an exec. */
			known->pyp = &it->py;
			known->pub.py = it->py;
			continue;
		}
		if (!it->py)
			continue;
		struct proc *pr = calloc(1, sizeof *pr);
		if (!pr)
			return;
		pr->pub.pid = it->pid;
		pr->pub.t = it->t;
		pr->pub.py = it->py;
		pr->pub.followed = 1;
		pr->pyp = &it->py;
		pr->start = it->start;
		snprintf(pr->label, sizeof pr->label, "%s", it->label);
		pr->pub.label = pr->label;
		pr->pub.profile = s->fol_profile;   /* one profile for the tree */
		if (proc_open(s, pr, s->o.native) != HM_OK)
			proc_open(s, pr, 0);   /* no native session: Python stacks only */
		if (procs_push(s, pr) != HM_OK) {
			proc_free(s, pr);
			return;
		}
		if (s->ev.attach)
			s->ev.attach(s->ev.ctx, &pr->pub);
	}
}

static int bpf_drain(hm_sampler *s, int timeout_ms);

/* Find the processes the front end added that have exited, tell it, and
 * drop them. */
static void check_exits(hm_sampler *s, uint64_t now)
{
	const uint64_t every = (uint64_t)(s->o.alive_check_s * 1e9);
	for (int i = 0; i < s->n;) {
		struct proc *pr = s->procs[i];
		if (pr->pub.followed) {
			i++;
			continue;
		}
		/* Reading /proc/PID/stat costs as much as a sample: not every
		 * round, but at once when the last read failed. */
		int gone = (s->o.child > 0 && pr->pub.pid == s->o.child &&
			    child_exited(s->o.child, &s->st.child_status, &s->st.child_reaped)) ||
			   ((now - pr->alive_checked > every || pr->errors) &&
			    (pr->alive_checked = now, !hm_target_alive(pr->pub.t)));
		if (!gone) {
			i++;
			continue;
		}
		if (pr->in_kernel)   /* its last samples, before the front end closes it */
			bpf_drain(s, -1);
		if (s->ev.exit && s->ev.exit(s->ev.ctx, &pr->pub))
			s->stopping = 1;
		procs_remove(s, i);
	}
}

/* One sampled thread's stack: into the process's profile (as a task's with
 * --async, merged with its native stack with --native), then to the front
 * end. */
static void emit_thread(hm_sampler *s, struct proc *pr, const hm_pythread *th,
			const hm_natstack *ns, const hm_sampler_opts *po, int64_t count, int64_t weight,
			uint64_t wall, const char *const *kframes, int nk)
{
	hm_profile *p = pr->pub.profile;
	if (p) {
		const hm_pytask *task;
		int coro;
		if (ns) {
			int torn = hm_sampler_add_native_k(p, th, ns, hm_python_layout(*pr->pyp),
							   po, weight, wall, kframes, nk);
			s->st.native_torn += (torn & HM_SAMPLER_NATIVE_TORN) != 0;
			s->st.native_no_eval += (torn & HM_SAMPLER_NATIVE_NO_EVAL) != 0;
		} else if (pr->as && (task = hm_asyncsampler_running(pr->as, th, &coro))) {
			hm_sampler_add_task(p, task, th, coro, po, weight, wall);
		} else {
			hm_sampler_add_thread_n(p, th, po, count, weight, wall, kframes, nk);
		}
	}
	if (s->ev.stack)
		s->ev.stack(s->ev.ctx, &pr->pub, th, ns);
	s->st.samples += (uint64_t)count;
}

/* One round over one process: read its threads and record their stacks. */
static void sample_proc(hm_sampler *s, struct proc *pr, unsigned flags, uint64_t period)
{
	hm_sampler_stats *st = &s->st;
	hm_pysample *smp = &s->s;
	pr->pub.py = *pr->pyp;
	if (!*pr->pyp) {
		/* Lost the interpreter (exec): try to find it again. */
		hm_python *np = NULL;
		if (hm_python_attach(pr->pub.t, &np) == HM_OK) {
			hm_python_set_max_depth(np, depth_of(&s->o));
			*pr->pyp = pr->pub.py = np;
			st->reattached++;
			if (s->ev.attach)
				s->ev.attach(s->ev.ctx, &pr->pub);
			if (s->bpf && !pr->pub.followed)
				bpf_watch(s, pr, np);
		}
		return;
	}
	hm_sampler_opts po = s->o;
	if (s->o.subprocesses) {
		po.process_pid = pr->pub.pid;
		po.process_label = pr->label;
	}
	pid_t running[MAX_RUNNING];
	int nrun = 0, by_state = 0;
	uint64_t t0 = hm_mono_ns();
	int r;
	if (pr->nat) {
		/* Stops (only) the threads it unwinds. */
		r = hm_native_sample(pr->nat, *pr->pyp, smp, &pr->ns, flags);
	} else if (s->o.blocking) {
		/* The CPU time the kernel charged to each thread says who
		 * ran, stopped or not. Without it, learn who was runnable
		 * before stopping them: paused threads read as stopped. */
		by_state = !s->o.idle && !hm_target_has_cputime(pr->pub.t);
		if (by_state)
			nrun = running_threads(pr->pub.t, running, MAX_RUNNING);
		int paused = hm_target_pause(pr->pub.t) == HM_OK;
		r = hm_python_sample(*pr->pyp, smp, by_state ? flags & ~(unsigned)HM_SAMPLE_ONCPU : flags);
		if (paused)
			hm_target_resume(pr->pub.t);
	} else {
		r = hm_python_sample(*pr->pyp, smp, flags);
	}
	uint64_t t1 = hm_mono_ns();
	st->ticks++;
	if (r != HM_OK) {
		st->errors++;
		if (++pr->errors >= 5) {
			hm_python_detach(*pr->pyp);
			*pr->pyp = pr->pub.py = NULL;
			pr->errors = 0;
		}
		return;
	}
	pr->errors = 0;
	hm_sampler_record_cost(st, t1 - t0);
	st->span_torn += (uint64_t)smp->nspan_torn;
	hm_python_thread_names(*pr->pyp, smp);
	if (s->ev.proc_sample)
		s->ev.proc_sample(s->ev.ctx, &pr->pub, smp, pr->nat ? &pr->ns : NULL);
	int async = pr->as && pr->pub.profile;
	if (async) {
		hm_asyncsampler_read(pr->as, *pr->pyp);
		st->span_torn += (uint64_t)hm_asyncsampler_span_torn(pr->as);
	}
	uint64_t wall = hm_real_ns();
	for (int i = 0; i < smp->nthreads; i++) {
		const hm_pythread *th = &smp->threads[i];
		if (!th->valid) {
			st->invalid++;
			continue;
		}
		if (th->nframes <= 0)
			continue;
		if (by_state && !in_set(running, nrun, th->tid))
			continue;
		const hm_natstack *ns = NULL;
		if (pr->nat && i < pr->ns.nstacks) {
			ns = &pr->ns.stacks[i];
			if (ns->state == HM_NATSTACK_SKIP)
				continue;
		}
		emit_thread(s, pr, th, ns, &po, 1, (int64_t)period, wall, NULL, 0);
	}
	if (async) {
		const hm_pytask *t;
		int it = 0;
		while ((t = hm_asyncsampler_waiting(pr->as, &it))) {
			if (!t->valid) {
				st->invalid++;
				continue;
			}
			if (!t->nframes)
				continue;
			hm_sampler_add_task(pr->pub.profile, t, NULL, 0, &po, (int64_t)period, wall);
			st->samples++;
		}
	}
}

/* A stack the in-kernel walker took count times (--ebpf). */
static void bpf_sample(void *arg, void *owner, const hm_pythread *th, int64_t count,
		       int64_t weight_ns, uint64_t t_ns, const char *const *kframes, int nk)
{
	hm_sampler *s = arg;
	struct proc *pr = owner;
	hm_sampler_opts po = s->o;
	emit_thread(s, pr, th, NULL, &po, count, weight_ns, t_ns, kframes, nk);
}

/* --native: a stack the in-kernel walker took, with the native stack
 * unwound from the same instant's perf sample (ns NULL: it did not come). */
static void bpf_native_sample(void *arg, void *owner, const hm_pythread *th, const hm_natstack *ns,
			      int64_t weight_ns, uint64_t t_ns, const char *const *kframes, int nk)
{
	hm_sampler *s = arg;
	struct proc *pr = owner;
	hm_sampler_opts po = s->o;
	emit_thread(s, pr, th, ns, &po, 1, weight_ns, t_ns, kframes, nk);
}

/* Drain what the in-kernel walker found (waiting up to timeout_ms). */
static int bpf_drain(hm_sampler *s, int timeout_ms)
{
	if (!s->bpf || !s->n_kernel)
		return 0;
	int got = hm_ebpf_poll(s->bpf, timeout_ms, bpf_sample, s);
	uint64_t invalid = hm_ebpf_invalid(s->bpf);   /* no system call */
	s->st.invalid += invalid - s->bpf_invalid;
	s->bpf_invalid = invalid;
	s->st.ticks++;
	return got;
}

/* Sleep until monotonic time t; a signal (Ctrl-C) wakes us early so that
 * the caller can see its stop flag. */
static void sleep_until(uint64_t t)
{
	struct timespec ts = {(time_t)(t / 1000000000ull), (long)(t % 1000000000ull)};
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

int hm_sampler_run(hm_sampler *s)
{
	const hm_sampler_opts *o = &s->o;
	hm_sampler_stats *st = &s->st;
	uint64_t period = (uint64_t)(1e9 / o->rate_hz);
	uint64_t start = hm_mono_ns();
	uint64_t end = o->duration_s > 0 ? start + (uint64_t)(o->duration_s * 1e9) : UINT64_MAX;
	uint64_t next = start;
	uint64_t rng = start ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
	unsigned flags = (o->idle ? 0 : HM_SAMPLE_ONCPU) | (o->gil_only ? HM_SAMPLE_GIL : 0) |
			 o->sample_flags;
	s->stopping = 0;

	while (!(o->stop && *o->stop)) {
		uint64_t now = hm_mono_ns();
		if (now >= end)
			break;
		if (now > next + period) {
			st->late++;
			next = now;
		}
		if (s->ev.round && s->ev.round(s->ev.ctx, s, now))
			break;
		check_exits(s, now);
		if (s->fol)
			followers_update(s, now);
		if (s->stopping)
			break;
		if (!s->n && !o->keep_going) {
			st->target_exited = 1;
			break;
		}
		st->rounds++;
		int in_user = 0;
		for (int i = 0; i < s->n; i++)
			if (!s->procs[i]->in_kernel) {
				sample_proc(s, s->procs[i], flags, period);
				in_user++;
			}
		int kernel_only = s->n_kernel && !in_user && !s->ev.wait;
		if (kernel_only) {
			/* Only the kernel samples: no tick per sample, a drain
			 * every few tens of ms (or at the end). */
			uint64_t until = hm_mono_ns() + (uint64_t)hm_ebpf_wake_ms(s->bpf) * 1000000ull;
			if (until > end)
				until = end;
			uint64_t t = hm_mono_ns();
			bpf_drain(s, until > t ? (int)((until - t + 999999) / 1000000) : 0);
		} else if (s->n_kernel) {
			bpf_drain(s, 0);
		}
		if (s->ev.round_done && s->ev.round_done(s->ev.ctx, s, hm_mono_ns()))
			break;
		if (kernel_only) {
			next = hm_mono_ns();
			continue;
		}
		uint64_t step = period;
		if (o->jitter)
			step = period / 2 + hm_rng_next(&rng) % (period + 1);
		next += step;
		if (next > end)
			next = end;
		if (s->ev.wait) {
			if (s->ev.wait(s->ev.ctx, next))
				break;
		} else {
			sleep_until(next);
		}
	}
	bpf_drain(s, -1);   /* what is still in the ring and the kernel's counts */
	if (s->bpf && s->n_kernel)
		hm_ebpf_finish(s->bpf, bpf_sample, s);   /* each thread's time since its last sample */
	return HM_OK;
}

