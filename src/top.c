/* top.c - `homura top`: a live, top-like view of where a Python process
 * spends its time.
 *
 * One thread does everything: it drives the sampling loop (sample/sampler.h)
 * at the chosen (jittered) rate, feeds each thread's stack to a topview
 * (sample/topview.c, which does the own/total arithmetic), and once a second
 * closes the window and redraws the screen (the loop's events). Between
 * rounds it waits in ppoll() on the terminal, so keys are handled at once and
 * the process sleeps otherwise. With --iterations N (or --once) there is no
 * curses at all: N snapshots of the table are printed to stdout, one per
 * second.
 *
 * With -n/--native the loop stops the threads with Python frames for their
 * unwind, as record -n does, and the merged native+Python stacks go to the
 * topview. With -s/--subprocesses the loop also samples the Python
 * descendants of the target in the same round; their functions count in the
 * same table.
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

#include <curses.h>

#include "cli.h"
#include "base/base.h"
#include "base/error.h"
#include "proc/launch.h"
#include "proc/target.h"
#include "python/python.h"
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

#define MAX_TNAMES 64

/* Threads seen with Python frames in the current window, for the header. */
struct tname {
	char name[48];
	uint64_t n;
};

struct top {
	struct top_args a;
	pid_t pid, child;
	hm_sampler *smp;             /* the loop, which owns target and interpreter */
	const hm_sampler_stats *st;
	hm_topview *v;
	uint64_t period_ns;
	int screen_mode;
	uint64_t window_end;         /* of the current window (monotonic) */
	int printed;                 /* text snapshots so far */
	/* current round */
	int gil;
	/* current window */
	uint64_t w_rounds, w_gil, w_threads, w_running;
	struct tname w_names[MAX_TNAMES];
	int w_nnames;
	/* last closed window, for the header */
	double gil_pct, active_pct;
	char busy[256];              /* "MainThread 99%, worker 40%" */
	int nthreads;                /* threads in the last round */
	int nprocs_sampled;          /* processes in the last round */
	int nsub;                    /* -s: descendants sampled now */
	int exited, child_status, child_reaped;
	int paused;
	int ascii;                   /* terminal cannot show UTF-8 */
	char version[32];
};

/* Count a thread (with Python frames) under its name for the header. */
static void count_name(struct top *T, const hm_sproc *pr, const hm_pythread *th)
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

/* ---------------------------------------------------------------- events */

/* A round starts. */
static int on_round(void *ctx, hm_sampler *s, uint64_t now)
{
	struct top *T = ctx;
	T->gil = 0;
	T->nthreads = 0;
	T->nprocs_sampled = 0;
	return 0;
}

/* One process was read: the header's GIL, activity and thread counts. */
static void on_proc_sample(void *ctx, hm_sproc *pr, const hm_pysample *s, const hm_natsample *nat)
{
	struct top *T = ctx;
	int running = 0;
	for (int i = 0; i < s->nthreads; i++) {
		const hm_pythread *th = &s->threads[i];
		const hm_natstack *ns = nat && i < nat->nstacks ? &nat->stacks[i] : NULL;
		T->gil |= th->holds_gil;
		/* Threads stopped for their unwind read 't': they were
		 * picked because they ran (unless -i). */
		running += th->state == 'R' ||
			   (ns && !T->a.idle && ns->state != HM_NATSTACK_SKIP && th->state == 't');
	}
	T->nthreads += s->nthreads;
	T->nprocs_sampled++;
	T->w_threads += (uint64_t)s->nthreads;
	T->w_running += (uint64_t)running;
}

/* One thread's stack into the topview. */
static void on_stack(void *ctx, hm_sproc *pr, const hm_pythread *th, const hm_natstack *ns)
{
	struct top *T = ctx;
	if (ns)
		hm_topview_add_native(T->v, th, ns, hm_python_layout(pr->py), (int64_t)T->period_ns);
	else
		hm_topview_add_thread(T->v, th, (int64_t)T->period_ns);
	count_name(T, pr, th);
}

static void on_attach(void *ctx, hm_sproc *pr)
{
	struct top *T = ctx;
	if (!pr->followed && pr->py)   /* re-attached after an exec */
		snprintf(T->version, sizeof T->version, "%s", hm_python_version(pr->py));
}

/* The target exited (a descendant's exit only shows in the count). */
static int on_exit_event(void *ctx, hm_sproc *pr)
{
	struct top *T = ctx;
	if (pr->followed)
		return 0;
	T->exited = 1;
	T->child_reaped = T->st->child_reaped;
	T->child_status = T->st->child_status;
	return 1;
}

static void end_window(struct top *T);
static void print_snapshot(const struct top *T, int nrows);
static void draw(struct top *T);
static int wait_keys(struct top *T, uint64_t until);

/* A round is over: count it, and once a second close the window and show
 * it. Nonzero when the snapshots asked for are printed. */
static int on_round_done(void *ctx, hm_sampler *s, uint64_t now)
{
	struct top *T = ctx;
	hm_topview_round(T->v);
	T->w_rounds++;
	T->w_gil += T->gil != 0;
	T->nsub = hm_sampler_count(s) - 1;
	if (now < T->window_end)
		return 0;
	end_window(T);
	T->window_end += 1000000000ull;
	if (T->window_end <= now)
		T->window_end = now + 1000000000ull;
	if (!T->screen_mode) {
		print_snapshot(T, T->a.rows);
		return ++T->printed >= T->a.iterations;
	}
	if (!T->paused)
		draw(T);
	return 0;
}

static int on_wait(void *ctx, uint64_t until)
{
	return wait_keys(ctx, until);
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
		snprintf(extra, sizeof extra, ", %d subprocess%s", T->nsub, T->nsub == 1 ? "" : "es");
	snprintf(lines[0], 512, "homura top - pid %d, Python %s, %g Hz%s%s%s", (int)T->pid,
		 T->version[0] ? T->version : "?", T->a.rate_hz, T->a.native ? ", native" : "",
		 extra, state);
	uint64_t samples = T->st ? T->st->samples : 0, invalid = T->st ? T->st->invalid : 0;
	uint64_t all = samples + invalid;
	snprintf(lines[1], 512,
		 "Samples: %llu  Invalid: %llu (%.1f%%)  GIL: %.1f%%  Active: %.1f%%  Threads: %d",
		 (unsigned long long)samples, (unsigned long long)invalid,
		 all ? 100.0 * (double)invalid / (double)all : 0.0, T->gil_pct, T->active_pct,
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
static void run_loop(struct top *T)
{
	T->window_end = hm_mono_ns() + 1000000000ull;
	hm_sampler_run(T->smp);
	if (!T->exited || stop_flag)
		return;
	/* At the exit, a window with no rounds would blank the percentages:
	 * keep the last one. */
	if (T->w_rounds)
		end_window(T);
	T->nsub = hm_sampler_count(T->smp);
	if (!T->screen_mode) {
		print_snapshot(T, T->a.rows);
		return;
	}
	/* Keep the last picture up until the user quits. */
	draw(T);
	while (!stop_flag && !wait_keys(T, UINT64_MAX))
		;
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
	hm_target *t = NULL;
	hm_python *py = NULL;
	int rc = hm_target_open(T.pid, &t);
	if (rc == HM_OK) {
		if (T.child)
			rc = hm_sampler_wait_python(t, T.child, 10.0, &py, &stop_flag, &T.child_status);
		else
			rc = hm_python_attach(t, &py);
	}
	T.v = rc == HM_OK ? hm_topview_new() : NULL;
	if (rc == HM_OK && !T.v)
		rc = hm_error(HM_ENOMEM, "out of memory");
	if (rc == HM_OK) {
		snprintf(T.version, sizeof T.version, "%s", hm_python_version(py));
		hm_sampler_opts so;
		hm_sampler_opts_init(&so);
		so.rate_hz = T.a.rate_hz;
		so.jitter = T.a.jitter;
		so.idle = T.a.idle;
		so.gil_only = T.a.gil_only;
		so.max_depth = T.a.max_depth;
		so.native = T.a.native;
		so.subprocesses = T.a.subprocesses;
		so.child = T.child;
		so.stop = &stop_flag;
		so.sample_flags = HM_SAMPLE_STATE | HM_SAMPLE_WANT_GIL;
		hm_sampler_events ev = {
			.ctx = &T,
			.round = on_round,
			.proc_sample = on_proc_sample,
			.stack = on_stack,
			.round_done = on_round_done,
			.attach = on_attach,
			.exit = on_exit_event,
			.wait = screen_mode ? on_wait : NULL,
		};
		rc = hm_sampler_new(&so, &ev, &T.smp);
	}
	if (rc == HM_OK) {
		T.st = hm_sampler_stats_of(T.smp);
		rc = hm_sampler_add(T.smp, t, py, NULL, NULL, NULL);   /* takes t and py */
		t = NULL;
		py = NULL;
	}
	if (rc != HM_OK) {
		int status = cli_fail_lib();
		stop_child(&T);
		hm_sampler_free(T.smp);
		hm_topview_free(T.v);
		hm_python_detach(py);
		hm_target_close(t);
		return status;
	}
	T.screen_mode = screen_mode;

	int status = 0;
	if (screen_mode && enter_screen(&T) != 0) {
		status = 1;
	} else {
		if (screen_mode)
			draw(&T);
		run_loop(&T);
		if (screen_mode) {
			leave_screen();
			if (T.exited) {
				T.paused = 0;
				print_snapshot(&T, T.a.rows);
			}
		}
	}
	stop_child(&T);
	hm_sampler_free(T.smp);   /* closes the targets and interpreters */
	hm_topview_free(T.v);
	if (screen)
		delscreen(screen);
	return status;
}
