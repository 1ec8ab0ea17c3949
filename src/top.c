/* top.c - `homura top`: a live, top-like view of where a Python process
 * spends its time.
 *
 * One thread does everything: it calls hm_python_sample at the chosen
 * (jittered) rate, feeds each thread's stack to a topview (lib/sample/topview.c,
 * which does the own/total arithmetic), and once a second closes the window
 * and redraws the screen. Between samples it waits in ppoll() on the
 * terminal, so keys are handled at once and the process sleeps otherwise.
 * With --iterations N (or --once) there is no curses at all: N snapshots of
 * the table are printed to stdout, one per second.
 *
 * With -n/--native each round goes through hm_native_sample instead (the
 * threads with Python frames are stopped for their unwind, as record -n
 * does) and the merged native+Python stacks are fed to the topview as text
 * frames. With -s/--subprocesses the Python descendants the hm_follow set
 * finds (rescanned every 250 ms) are sampled in the same round as the root,
 * each with its own native session; their functions count in the same table.
 *
 * The terminal is restored on every way out: q, Ctrl-C, SIGTERM/SIGHUP (the
 * handlers only set a flag that the loop checks), errors, and the exit path
 * (atexit). When the target exits the screen says so and waits for q; the
 * final table is then printed to stdout, after the terminal is restored. */
#include <errno.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include <curses.h>

#include "cli.h"
#include "base/base.h"
#include "base/error.h"
#include "native/native.h"
#include "proc/launch.h"
#include "proc/target.h"
#include "python/python.h"
#include "sample/follow.h"
#include "sample/sampler.h"
#include "sample/topview.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: homura top [options] -p PID\n"
		"       homura top [options] -- python script.py [args]\n\n"
		"  -p, --pid PID          attach to a running process\n"
		"  -r, --rate HZ          samples per second (default 100, up to 10000)\n"
		"  -i, --idle             include threads that are not running on a CPU\n"
		"  -g, --gil              only the thread holding the GIL\n"
		"  -l, --lines            start in the line view (default: functions)\n"
		"  -S, --sort COL         own, total, owntime or totaltime (default own)\n"
		"  -n, --native           include native (C/C++/Cython) frames; stops each\n"
		"                         sampled thread briefly (ptrace) while unwinding\n"
		"  -s, --subprocesses     also sample the target's Python child processes\n"
		"                         (their functions count in the same table)\n"
		"      --no-trace         don't read OpenTelemetry spans (read by default\n"
		"                         where the program uses the OpenTelemetry SDK)\n"
		"      --no-jitter        sample at exact intervals (default: jittered)\n"
		"      --max-depth N      frames kept per stack (default 4096)\n"
		"      --iterations N     print N one-second snapshots as text, no screen\n"
		"      --once             the same as --iterations 1\n"
		"      --rows N           rows per text snapshot (default 20)\n"
		"      --full-filenames   never shorten file names to fit the width (rows\n"
		"                         are cut at the right edge instead)\n"
		"      --nonblocking      accepted for py-spy users: top never pauses the\n"
		"                         target (except -n, see above)\n"
		"  -h, --help             this help\n\n"
		"keys: 1-4 or o/t/O/T sort by %%Own, %%Total, OwnTime, TotalTime; l function/line\n"
		"view; p or space pause the display (sampling goes on); q or Ctrl-C quit.\n"
		"%%Own and %%Total cover the last second (100%% = one thread all the time);\n"
		"OwnTime and TotalTime add up since the start. A launched command's output is\n"
		"discarded while the screen is shown.\n");
}

struct top_args {
	pid_t pid;
	char **cmd;
	double rate_hz;
	int idle, gil_only, jitter, max_depth;
	int iterations;          /* > 0: text mode */
	int rows;                /* rows per text snapshot */
	int mode, sort;
	int native, subprocesses;
	int full_filenames;      /* rows are cut at the edge, paths kept whole */
};

static int parse_sort(const char *s)
{
	static const char *names[4] = {"own", "total", "owntime", "totaltime"};
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, names[i]))
			return i;
	if (s[0] >= '1' && s[0] <= '4' && !s[1])
		return s[0] - '1';
	return -1;
}

/* 0: go on; 1: exit 0 (help); >1: exit status + 1. */
static int parse_args(int argc, char **argv, struct top_args *a)
{
	enum { O_NOTRACE = 300, O_NOJITTER = 256, O_DEPTH, O_ONCE, O_ROWS, O_ITER, O_FULLNAMES, O_NONBLOCKING };
	static const struct option opts[] = {
		{"pid", required_argument, 0, 'p'},
		{"rate", required_argument, 0, 'r'},
		{"idle", no_argument, 0, 'i'},
		{"gil", no_argument, 0, 'g'},
		{"lines", no_argument, 0, 'l'},
		{"sort", required_argument, 0, 'S'},
		{"native", no_argument, 0, 'n'},
		{"subprocesses", no_argument, 0, 's'},
		{"no-jitter", no_argument, 0, O_NOJITTER},
		{"no-trace", no_argument, 0, O_NOTRACE},
		{"max-depth", required_argument, 0, O_DEPTH},
		{"iterations", required_argument, 0, O_ITER},
		{"once", no_argument, 0, O_ONCE},
		{"rows", required_argument, 0, O_ROWS},
		{"full-filenames", no_argument, 0, O_FULLNAMES},
		{"nonblocking", no_argument, 0, O_NONBLOCKING},    /* py-spy's; the default */
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	memset(a, 0, sizeof *a);
	a->rate_hz = 100;
	a->jitter = 1;
	a->max_depth = 4096;
	a->rows = 20;
	int c;
	char *end;
	long v;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+p:r:iglS:nsh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			v = strtol(optarg, &end, 10);
			if (*end || v <= 0 || v > 0x3fffffff)
				return cli_fail("invalid PID '%s'", optarg) + 1;
			a->pid = (pid_t)v;
			break;
		case 'r':
			a->rate_hz = strtod(optarg, &end);
			if (end == optarg || *end || !(a->rate_hz >= 1) || a->rate_hz > 10000)
				return cli_fail("invalid rate '%s' (samples per second, 1-10000)", optarg) + 1;
			break;
		case 'i': a->idle = 1; break;
		case 'g': a->gil_only = 1; break;
		case 'l': a->mode = HM_TOP_LINES; break;
		case 'n': a->native = 1; break;
		case 's': a->subprocesses = 1; break;
		case 'S':
			a->sort = parse_sort(optarg);
			if (a->sort < 0)
				return cli_fail("invalid --sort '%s' (own, total, owntime, totaltime)", optarg) + 1;
			break;
		case O_NOJITTER: a->jitter = 0; break;
		case O_NOTRACE: hm_python_trace_default(0); break;
		case O_DEPTH:
			v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 1000000)
				return cli_fail("invalid --max-depth '%s'", optarg) + 1;
			a->max_depth = (int)v;
			break;
		case O_ITER:
			v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 1000000000)
				return cli_fail("invalid --iterations '%s'", optarg) + 1;
			a->iterations = (int)v;
			break;
		case O_ONCE: a->iterations = 1; break;
		case O_FULLNAMES: a->full_filenames = 1; break;
		case O_NONBLOCKING: break;
		case O_ROWS:
			v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 100000)
				return cli_fail("invalid --rows '%s'", optarg) + 1;
			a->rows = (int)v;
			break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 3;
		}
	}
	if (optind < argc)
		a->cmd = argv + optind;
	if (!a->pid && !a->cmd) {
		usage(stderr);
		return 3;
	}
	if (a->pid && a->cmd)
		return cli_fail("give either -p PID or a command to run, not both") + 1;
	return 0;
}

/* ---------------------------------------------------------------- state */

/* One sampled process: the root target, or a followed descendant. */
struct tproc {
	hm_target *t;
	hm_python **pyp;             /* NULL'd after repeated failures (exec) */
	hm_native *nat;              /* --native session, NULL if none */
	hm_natsample ns;
	pid_t pid;
	uint64_t start;              /* followed: start time (matches hm_follow) */
	int errors;                  /* consecutive failed rounds */
	int followed;
};

#define MAX_TNAMES 64

/* Threads seen with Python frames in the current window, for the header. */
struct tname {
	char name[48];
	uint64_t n;
};

struct top {
	struct top_args a;
	hm_target *t;
	hm_python *py;
	pid_t pid, child;
	hm_topview *v;
	hm_pysample s;
	uint64_t period_ns;
	struct tproc root;
	/* -s: the followed descendants, kept in step with hm_follow */
	hm_follow *fol;
	struct tproc *procs;
	int nprocs, procs_cap;
	uint64_t last_scan;
	/* -n: scratch for merged stacks */
	hm_mframe *mf;
	hm_topframe *tf;
	int mcap;
	uint64_t native_torn;
	/* current window */
	uint64_t w_rounds, w_gil, w_threads, w_running;
	struct tname w_names[MAX_TNAMES];
	int w_nnames;
	/* last closed window, for the header */
	double gil_pct, active_pct;
	char busy[256];              /* "MainThread 99%, worker 40%" */
	int nthreads;                /* threads in the last round */
	int nprocs_sampled;          /* processes in the last round */
	uint64_t samples, invalid, errors;
	int exited, child_status, child_reaped;
	int paused;
	int ascii;                   /* terminal cannot show UTF-8 */
	char version[32];
};

static int target_gone(struct top *T)
{
	if (T->child > 0 && !T->child_reaped) {
		int st;
		pid_t r = waitpid(T->child, &st, WNOHANG);
		if (r == T->child) {
			T->child_status = st;
			T->child_reaped = 1;
			return 1;
		}
	}
	return !hm_target_alive(T->t);
}

static int tproc_open(struct tproc *pr, hm_target *t, hm_python **pyp, const struct top_args *a)
{
	memset(pr, 0, sizeof *pr);
	pr->t = t;
	pr->pyp = pyp;
	pr->pid = hm_target_pid(t);
	if (a->native) {
		int rc = hm_native_open(t, &pr->nat);
		if (rc != HM_OK) {
			pr->nat = NULL;
			return rc;
		}
	}
	if (*pyp)
		hm_python_set_max_depth(*pyp, a->max_depth);
	return HM_OK;
}

static void tproc_close(struct tproc *pr)
{
	if (pr->nat) {
		hm_native_close(pr->nat);
		hm_natsample_free(&pr->ns);
		pr->nat = NULL;
	}
}

static void follower_dropped(void *ctx, hm_followed *it)
{
	struct top *T = ctx;
	for (int i = 0; i < T->nprocs; i++)
		if (T->procs[i].pid == it->pid && T->procs[i].start == it->start) {
			/* The hm_follow entry owns t and py; the rest is ours. */
			tproc_close(&T->procs[i]);
			T->procs[i] = T->procs[--T->nprocs];
			return;
		}
}

/* -s: rescan the descendants (every 250 ms) and give each ready one a
 * tproc. */
static void followers_update(struct top *T)
{
	uint64_t now = hm_mono_ns();
	if (now - T->last_scan < 250000000ull)
		return;
	T->last_scan = now;
	hm_follow_scan(T->fol);
	for (int i = 0; i < hm_follow_count(T->fol); i++) {
		hm_followed *it = hm_follow_get(T->fol, i);
		int known = 0;
		for (int k = 0; k < T->nprocs; k++)
			if (T->procs[k].pid == it->pid && T->procs[k].start == it->start) {
				T->procs[k].pyp = &it->py;   /* entries move on drops */
				known = 1;
			}
		if (known || !it->py)
			continue;
		if (T->nprocs == T->procs_cap) {
			int nc = T->procs_cap ? T->procs_cap * 2 : 8;
			struct tproc *np = realloc(T->procs, (size_t)nc * sizeof *np);
			if (!np)
				return;
			T->procs = np;
			T->procs_cap = nc;
		}
		struct tproc *pr = &T->procs[T->nprocs];
		if (tproc_open(pr, it->t, &it->py, &T->a) != HM_OK) {
			/* No native session for this one: its Python stacks only. */
			struct top_args plain = T->a;
			plain.native = 0;
			tproc_open(pr, it->t, &it->py, &plain);
		}
		pr->followed = 1;
		pr->start = it->start;
		T->nprocs++;
	}
}

/* Count a thread (with Python frames) under its name for the header. */
static void count_name(struct top *T, const struct tproc *pr, const hm_pythread *th)
{
	char name[48];
	if (pr->followed)
		snprintf(name, sizeof name, "%s@%d", th->name ? th->name : "?", (int)pr->pid);
	else if (th->name)
		snprintf(name, sizeof name, "%s", th->name);
	else
		snprintf(name, sizeof name, "%d", (int)th->tid);
	for (int i = 0; i < T->w_nnames; i++)
		if (!strcmp(T->w_names[i].name, name)) {
			T->w_names[i].n++;
			return;
		}
	if (T->w_nnames < MAX_TNAMES) {
		struct tname *t = &T->w_names[T->w_nnames++];
		snprintf(t->name, sizeof t->name, "%s", name);
		t->n = 1;
	}
}

/* -n: th merged with its native stack into the topview; the Python stack
 * alone when the two do not fit together. */
static void add_native(struct top *T, const hm_pythread *th, const hm_natstack *ns,
		       const hm_pylayout *L)
{
	int cap = ns->nframes + th->nframes;
	if (cap > T->mcap) {
		hm_mframe *m = realloc(T->mf, (size_t)cap * sizeof *m);
		if (m)
			T->mf = m;
		hm_topframe *f = realloc(T->tf, (size_t)cap * sizeof *f);
		if (f)
			T->tf = f;
		if (!m || !f) {
			hm_topview_add_thread(T->v, th, (int64_t)T->period_ns);
			return;
		}
		T->mcap = cap;
	}
	int n = hm_native_merge(ns, th, L, T->mf, cap);
	if (n <= 0) {
		T->native_torn += n < 0;
		hm_topview_add_thread(T->v, th, (int64_t)T->period_ns);
		return;
	}
	for (int i = 0; i < n; i++) {
		hm_topframe *f = &T->tf[i];
		if (T->mf[i].py) {
			const hm_pyframe *pf = T->mf[i].py;
			f->name = pf->code->qualname;
			f->file = pf->code->filename;
			f->line = pf->line;
			f->start_line = pf->code->firstlineno;
		} else {
			const hm_natsym *s = T->mf[i].nat;
			f->name = s->name;
			f->file = s->file ? s->file : s->module;
			if (s->name[0] == '[' && f->file && !strcmp(f->file, s->module))
				f->file = NULL;   /* "[module]": no symbol there */
			f->line = s->line;
			f->start_line = 0;
		}
	}
	hm_topview_add(T->v, T->tf, n, (int64_t)T->period_ns);
}

/* One process's threads into the topview. */
static void sample_proc(struct top *T, struct tproc *pr, int *gil)
{
	if (!*pr->pyp) {
		/* Lost the interpreter (an exec): look for it again. */
		hm_python *np = NULL;
		if (hm_python_attach(pr->t, &np) != HM_OK)
			return;
		hm_python_set_max_depth(np, T->a.max_depth);
		*pr->pyp = np;
		if (!pr->followed)
			snprintf(T->version, sizeof T->version, "%s", hm_python_version(np));
		return;
	}
	unsigned flags = HM_SAMPLE_STATE | HM_SAMPLE_WANT_GIL | (T->a.idle ? 0 : HM_SAMPLE_ONCPU) |
			 (T->a.gil_only ? HM_SAMPLE_GIL : 0);
	int r = pr->nat ? hm_native_sample(pr->nat, *pr->pyp, &T->s, &pr->ns, flags)
			: hm_python_sample(*pr->pyp, &T->s, flags);
	if (r != HM_OK) {
		T->errors++;
		if (++pr->errors >= 5) {
			hm_python_detach(*pr->pyp);
			*pr->pyp = NULL;
			pr->errors = 0;
		}
		return;
	}
	pr->errors = 0;
	hm_python_thread_names(*pr->pyp, &T->s);
	const hm_pylayout *L = hm_python_layout(*pr->pyp);
	int running = 0;
	for (int i = 0; i < T->s.nthreads; i++) {
		const hm_pythread *th = &T->s.threads[i];
		const hm_natstack *ns = pr->nat && i < pr->ns.nstacks ? &pr->ns.stacks[i] : NULL;
		*gil |= th->holds_gil;
		/* Threads stopped for their unwind read 't': they were
		 * picked because they ran (unless -i). */
		running += th->state == 'R' ||
			   (ns && !T->a.idle && ns->state != HM_NATSTACK_SKIP && th->state == 't');
		if (!th->valid) {
			T->invalid++;
			continue;
		}
		if (th->nframes <= 0)
			continue;
		if (ns) {
			if (ns->state == HM_NATSTACK_SKIP)
				continue;
			if (ns->state == HM_NATSTACK_OK)
				add_native(T, th, ns, L);
			else
				hm_topview_add_thread(T->v, th, (int64_t)T->period_ns);
		} else {
			hm_topview_add_thread(T->v, th, (int64_t)T->period_ns);
		}
		count_name(T, pr, th);
		T->samples++;
	}
	T->nthreads += T->s.nthreads;
	T->nprocs_sampled++;
	T->w_threads += (uint64_t)T->s.nthreads;
	T->w_running += (uint64_t)running;
}

/* One sampling round: every thread's stack into the topview. */
static void sample_round(struct top *T)
{
	if (target_gone(T)) {
		T->exited = 1;
		return;
	}
	if (T->fol)
		followers_update(T);
	int gil = 0;
	T->nthreads = 0;
	T->nprocs_sampled = 0;
	sample_proc(T, &T->root, &gil);
	for (int i = 0; i < T->nprocs; i++)
		sample_proc(T, &T->procs[i], &gil);
	hm_topview_round(T->v);
	T->w_rounds++;
	T->w_gil += gil != 0;
}

static int cmp_tname(const void *pa, const void *pb)
{
	const struct tname *a = pa, *b = pb;
	return a->n < b->n ? 1 : a->n > b->n ? -1 : strcmp(a->name, b->name);
}

static void end_window(struct top *T)
{
	hm_topview_end_window(T->v);
	T->gil_pct = T->w_rounds ? 100.0 * (double)T->w_gil / (double)T->w_rounds : 0;
	T->active_pct = T->w_threads ? 100.0 * (double)T->w_running / (double)T->w_threads : 0;
	/* The busiest threads of the window, by name. */
	qsort(T->w_names, (size_t)T->w_nnames, sizeof T->w_names[0], cmp_tname);
	size_t o = 0;
	T->busy[0] = 0;
	for (int i = 0; i < T->w_nnames && o + 1 < sizeof T->busy; i++) {
		double pct = T->w_rounds ? 100.0 * (double)T->w_names[i].n / (double)T->w_rounds : 0;
		int w = snprintf(T->busy + o, sizeof T->busy - o, "%s%s %.0f%%", i ? ", " : "",
				 T->w_names[i].name, pct);
		if (w < 0 || (size_t)w >= sizeof T->busy - o) {
			T->busy[o] = 0;
			break;
		}
		o += (size_t)w;
	}
	T->w_nnames = 0;
	T->w_rounds = T->w_gil = T->w_threads = T->w_running = 0;
}

/* ---------------------------------------------------------------- text */

static const char *sort_names[4] = {"%Own", "%Total", "OwnTime", "TotalTime"};

static void exit_text(const struct top *T, char *buf, size_t cap)
{
	if (!T->child_reaped)
		snprintf(buf, cap, "process %d exited", (int)T->pid);
	else if (WIFEXITED(T->child_status))
		snprintf(buf, cap, "process %d exited (code %d)", (int)T->pid,
			 WEXITSTATUS(T->child_status));
	else if (WIFSIGNALED(T->child_status))
		snprintf(buf, cap, "process %d exited (signal %d)", (int)T->pid,
			 WTERMSIG(T->child_status));
	else
		snprintf(buf, cap, "process %d exited", (int)T->pid);
}

/* The three header lines. */
static void header_lines(const struct top *T, char lines[3][512])
{
	char state[96] = "";
	if (T->exited) {
		char ex[80];
		exit_text(T, ex, sizeof ex);
		snprintf(state, sizeof state, "  [%s]", ex);
	} else if (T->paused) {
		snprintf(state, sizeof state, "  [paused]");
	}
	char extra[64] = "";
	if (T->a.subprocesses)
		snprintf(extra, sizeof extra, ", %d subprocess%s", T->nprocs, T->nprocs == 1 ? "" : "es");
	snprintf(lines[0], 512, "homura top - pid %d, Python %s, %g Hz%s%s%s", (int)T->pid,
		 T->version[0] ? T->version : "?", T->a.rate_hz, T->a.native ? ", native" : "",
		 extra, state);
	uint64_t all = T->samples + T->invalid;
	snprintf(lines[1], 512,
		 "Samples: %llu  Invalid: %llu (%.1f%%)  GIL: %.1f%%  Active: %.1f%%  Threads: %d",
		 (unsigned long long)T->samples, (unsigned long long)T->invalid,
		 all ? 100.0 * (double)T->invalid / (double)all : 0.0, T->gil_pct, T->active_pct,
		 T->nthreads);
	snprintf(lines[2], 512, "View: %s  Sort: %s%s%s",
		 T->a.mode == HM_TOP_LINES ? "lines" : "functions", sort_names[T->a.sort],
		 T->busy[0] ? "  Busy: " : "", T->busy);
}

/* Columns of the terminal on stdout, 0 when it is not one (no limit). */
static int stdout_width(void)
{
	struct winsize ws;
	if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 0;
}

/* A snapshot as plain text on stdout, fitted to the terminal if it is one. */
static void print_snapshot(const struct top *T, int nrows)
{
	FILE *f = stdout;
	char lines[3][512], buf[8192];
	int width = stdout_width();
	header_lines(T, lines);
	for (int i = 0; i < 3; i++) {
		hm_text_fit(lines[i], width ? width : -1, 0, buf, sizeof buf);
		fprintf(f, "%s\n", buf);
	}
	hm_topview_format_columns(T->a.sort, width, buf, sizeof buf);
	fprintf(f, "%s\n", buf);
	hm_toprow *rows = calloc((size_t)nrows, sizeof *rows);
	if (!rows)
		return;
	size_t n = hm_topview_rows(T->v, T->a.mode, T->a.sort, rows, (size_t)nrows);
	for (size_t i = 0; i < n; i++) {
		if (T->a.full_filenames && width) {
			char full[8192];
			hm_topview_format_row(&rows[i], -1, T->ascii, full, sizeof full);
			hm_text_fit(full, width, T->ascii, buf, sizeof buf);
		} else {
			hm_topview_format_row(&rows[i], width, width ? T->ascii : 0, buf, sizeof buf);
		}
		fprintf(f, "%s\n", buf);
	}
	fprintf(f, "\n");
	fflush(f);
	free(rows);
}

/* ---------------------------------------------------------------- screen */

static int screen_on;
static SCREEN *screen;

static void leave_screen(void)
{
	if (screen_on) {
		endwin();
		screen_on = 0;
	}
}

static int enter_screen(struct top *T)
{
	screen = newterm(NULL, stdout, stdin);
	if (!screen)
		return cli_fail("cannot use the terminal (TERM=%s)",
				getenv("TERM") ? getenv("TERM") : "");
	set_term(screen);
	screen_on = 1;
	atexit(leave_screen);
	cbreak();
	noecho();
	nonl();
	nodelay(stdscr, TRUE);
	keypad(stdscr, TRUE);
	curs_set(0);
	return 0;
}

/* Draw one line of text at row y, at most w columns. */
static void put_line(int y, const char *text, int w, int attr)
{
	char buf[2048];
	if (w <= 0)
		return;
	hm_text_fit(text, w, 1, buf, sizeof buf);
	move(y, 0);
	if (attr)
		attron(attr);
	addstr(buf);
	if (attr) {
		/* Fill the reverse-video bar to the end of the line. */
		for (int x = hm_text_width(buf, 1); x < w; x++)
			addch(' ');
		attroff(attr);
	}
}

static void draw(struct top *T)
{
	int h = LINES, w = COLS;
	char lines[3][512], buf[2048];
	erase();
	header_lines(T, lines);
	for (int i = 0; i < 3 && i < h; i++)
		put_line(i, lines[i], i == h - 1 ? w - 1 : w, 0);
	if (h > 4) {
		hm_topview_format_columns(T->a.sort, w, buf, sizeof buf);
		put_line(3, buf, h - 1 == 3 ? w - 1 : w, A_REVERSE);
	}
	int nrows = h - 5;   /* header (3), columns, help line */
	if (nrows > 0) {
		hm_toprow *rows = calloc((size_t)nrows, sizeof *rows);
		size_t n = rows ? hm_topview_rows(T->v, T->a.mode, T->a.sort, rows, (size_t)nrows) : 0;
		for (size_t i = 0; i < n; i++) {
			if (T->a.full_filenames) {
				char full[2048];
				hm_topview_format_row(&rows[i], -1, T->ascii, full, sizeof full);
				hm_text_fit(full, w, T->ascii, buf, sizeof buf);
			} else {
				hm_topview_format_row(&rows[i], w, T->ascii, buf, sizeof buf);
			}
			move(4 + (int)i, 0);
			addstr(buf);
		}
		free(rows);
	}
	if (h >= 5) {
		const char *help = T->exited ? "q quit (the final table is printed on exit)"
			: "1-4 sort  l function/line view  p pause  q quit";
		put_line(h - 1, help, w - 1, A_BOLD);
	}
	refresh();
}

/* Handle pending keys. Returns 1 when the user asked to quit. */
static int handle_keys(struct top *T)
{
	int ch, redraw = 0;
	while ((ch = getch()) != ERR) {
		switch (ch) {
		case 'q': case 'Q': return 1;
		case '1': case 'o': T->a.sort = HM_TOP_SORT_OWN; break;
		case '2': case 't': T->a.sort = HM_TOP_SORT_TOTAL; break;
		case '3': case 'O': T->a.sort = HM_TOP_SORT_OWN_TIME; break;
		case '4': case 'T': T->a.sort = HM_TOP_SORT_TOTAL_TIME; break;
		case 'l': case 'L':
			T->a.mode = T->a.mode == HM_TOP_LINES ? HM_TOP_FUNCTIONS : HM_TOP_LINES;
			break;
		case 'p': case 'P': case ' ': T->paused = !T->paused; break;
		case 12: clearok(curscr, TRUE); break;   /* Ctrl-L */
		case KEY_RESIZE: break;
		default: continue;
		}
		redraw = 1;
	}
	if (redraw)
		draw(T);
	return 0;
}

/* Wait until the monotonic time `until` (UINT64_MAX: until a key or a
 * signal), handling keys. Returns 1 when the user asked to quit. */
static int wait_keys(struct top *T, uint64_t until)
{
	while (!stop_flag) {
		uint64_t now = hm_mono_ns();
		if (until != UINT64_MAX && now >= until)
			return 0;
		struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
		struct timespec ts, *tsp = NULL;
		if (until != UINT64_MAX) {
			uint64_t d = until - now;
			ts.tv_sec = (time_t)(d / 1000000000ull);
			ts.tv_nsec = (long)(d % 1000000000ull);
			tsp = &ts;
		}
		int r = ppoll(&pfd, 1, tsp, NULL);
		if (r > 0 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)))
			return 1;   /* the terminal went away */
		if (r > 0 || (r < 0 && errno == EINTR)) {
			if (handle_keys(T))
				return 1;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- main */

static void stop_child(struct top *T)
{
	if (T->child <= 0 || T->child_reaped)
		return;
	hm_launch_stop(T->child);
	T->child_reaped = 1;
}

/* The sampling loop; returns when done (quit, signal, iterations, or the
 * target's exit in text mode). */
static void run_loop(struct top *T, int screen_mode)
{
	uint64_t start = hm_mono_ns();
	uint64_t next = start, window_end = start + 1000000000ull;
	uint64_t rng = start ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
	int printed = 0;
	while (!stop_flag) {
		uint64_t now = hm_mono_ns();
		if (now > next + T->period_ns)
			next = now;   /* late: restart the schedule, don't burst */
		sample_round(T);
		now = hm_mono_ns();
		if (T->exited || now >= window_end) {
			/* At the exit, a window with no rounds would blank the
			 * percentages: keep the last one. */
			if (!T->exited || T->w_rounds)
				end_window(T);
			window_end += 1000000000ull;
			if (window_end <= now)
				window_end = now + 1000000000ull;
			if (!screen_mode) {
				print_snapshot(T, T->a.rows);
				if (++printed >= T->a.iterations || T->exited)
					return;
			} else if (!T->paused || T->exited) {
				draw(T);
			}
		}
		if (T->exited) {
			/* Keep the last picture up until the user quits. */
			while (!stop_flag && !wait_keys(T, UINT64_MAX))
				;
			return;
		}
		uint64_t step = T->period_ns;
		if (T->a.jitter)
			step = T->period_ns / 2 + hm_rng_next(&rng) % (T->period_ns + 1);
		next += step;
		if (screen_mode) {
			if (wait_keys(T, next))
				return;
		} else {
			struct timespec ts = {(time_t)(next / 1000000000ull),
					      (long)(next % 1000000000ull)};
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		}
	}
}

int cmd_top(int argc, char **argv)
{
	struct top T;
	memset(&T, 0, sizeof T);
	int r = parse_args(argc, argv, &T.a);
	if (r)
		return r == 1 ? 0 : r - 1;
	int screen_mode = T.a.iterations == 0;
	if (screen_mode && (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)))
		return cli_fail("top needs a terminal; use --iterations N for text snapshots");
	setlocale(LC_ALL, "");
	const char *cs = nl_langinfo(CODESET);
	T.ascii = !cs || strcmp(cs, "UTF-8") != 0;
	T.period_ns = (uint64_t)(1e9 / T.a.rate_hz);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;   /* no SA_RESTART: waits end at once */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	T.pid = T.a.pid;
	if (T.a.cmd) {
		T.child = T.pid = hm_launch(T.a.cmd, screen_mode);
		if (T.pid < 0)
			return cli_fail("cannot start '%s': %s", T.a.cmd[0], strerror(errno));
	}
	int rc = hm_target_open(T.pid, &T.t);
	if (rc == HM_OK) {
		if (T.child)
			rc = hm_sampler_wait_python(T.t, T.child, 10.0, &T.py, &stop_flag,
						    &T.child_status);
		else
			rc = hm_python_attach(T.t, &T.py);
	}
	T.v = rc == HM_OK ? hm_topview_new() : NULL;
	if (rc == HM_OK && !T.v)
		rc = hm_error(HM_ENOMEM, "out of memory");
	if (rc == HM_OK)
		rc = tproc_open(&T.root, T.t, &T.py, &T.a);
	if (rc == HM_OK && T.a.subprocesses) {
		T.fol = hm_follow_new(T.pid);
		if (!T.fol)
			rc = hm_error(HM_ENOMEM, "out of memory");
		else
			hm_follow_on_drop(T.fol, follower_dropped, &T);
	}
	if (rc != HM_OK) {
		int status = cli_fail_lib();
		tproc_close(&T.root);
		stop_child(&T);
		hm_topview_free(T.v);
		hm_python_detach(T.py);
		hm_target_close(T.t);
		return status;
	}
	hm_python_set_max_depth(T.py, T.a.max_depth);
	snprintf(T.version, sizeof T.version, "%s", hm_python_version(T.py));

	int status = 0;
	if (screen_mode && enter_screen(&T) != 0) {
		status = 1;
	} else {
		if (screen_mode)
			draw(&T);
		run_loop(&T, screen_mode);
		if (screen_mode) {
			leave_screen();
			if (T.exited) {
				T.paused = 0;
				print_snapshot(&T, T.a.rows);
			}
		}
	}
	stop_child(&T);
	hm_follow_free(T.fol);   /* closes the followers' tprocs via the callback */
	free(T.procs);
	tproc_close(&T.root);
	free(T.mf);
	free(T.tf);
	hm_pysample_free(&T.s);
	hm_topview_free(T.v);
	hm_python_detach(T.py);
	hm_target_close(T.t);
	if (screen)
		delscreen(screen);
	return status;
}
