/* run.c - `homura run`: run a Python program (or attach to one) and report,
 * per line of its own files, where its CPU time goes (Python, native code,
 * system), its memory (allocations, peaks, leaks, copies) and its GPU use.
 *
 * CPU: kernel samples of every thread (proc/perf.h) joined with Python
 * stacks walked from outside at the same rate (analyze/cpu.h); nothing is
 * sent into the program. Child processes (multiprocessing) inherit the
 * kernel's events; their stacks are walked as well once they show up
 * (samples of one that ended before its interpreter was found are counted
 * apart, never as native). Memory: homura's allocation sampler preloaded into
 * the launched program (analyze/memory.h), hence not when attaching. GPU:
 * NVML when present (analyze/gpu.h). The program's output and exit status
 * are its own: homura's reports go to stderr and to the files asked for,
 * and homura exits with the program's status (or dies of its signal). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "analyze/cpu.h"
#include "analyze/gpu.h"
#include "analyze/memory.h"
#include "analyze/report.h"
#include "base/base.h"
#include "base/error.h"
#include "base/fileio.h"
#include "proc/launch.h"
#include "proc/perf.h"
#include "proc/target.h"
#include "python/python.h"

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t forward_sig;

static void on_signal(int sig)
{
	if (sig == SIGINT)
		stop_flag = 1;
	else
		forward_sig = sig;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: homura run [options] -- python script.py [args]\n"
		"       homura run [options] -p PID [-d SECS]\n\n"
		"The command may be any python command line (a script, a module, -c).\n"
		"Per line of the program's own files: its share of the CPU time split\n"
		"between Python, native code and the kernel; memory allocated, peak and\n"
		"leaks; GPU use. All measures are on unless some are named.\n\n"
		"      --cpu              measure CPU time (Python / native / system)\n"
		"      --memory           measure allocations (launched programs only)\n"
		"      --gpu              measure GPU use (NVML)\n"
		"  -o, --output FILE      write the HTML report there\n"
		"      --json FILE        write the report as JSON\n"
		"      --heap PREFIX      write the sampled allocations as pprof heap profiles:\n"
		"                         PREFIX.alloc_space.pb.gz, PREFIX.alloc_objects.pb.gz\n"
		"                         and PREFIX.inuse_space.pb.gz\n"
		"      --profile-all      report library lines too (default: folded into\n"
		"                         the line of the program that called them)\n"
		"  -r, --rate HZ          CPU samples per second of each thread's CPU time,\n"
		"                         and stack walks per second (default 1000)\n"
		"  -p, --pid PID          attach to a running process (CPU and GPU only)\n"
		"  -d, --duration SECS    with -p: stop after this long (default: Ctrl-C or exit)\n"
		"  -n, --lines N          lines in the terminal table (default 30, 0: none)\n"
		"  -h, --help             this help\n");
}

struct run_args {
	int cpu, memory, gpu;
	const char *html, *json, *heap;
	int profile_all;
	double rate;
	pid_t pid;
	double duration;
	int lines;
	char **cmd;
};

/* --heap PREFIX: the sampled allocations as three pprof heap profiles. */
static int write_heap(const char *prefix, const hm_memsession *mem)
{
	static const char *kinds[] = {"alloc_space", "alloc_objects", "inuse_space"};
	for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
		char path[4096];
		if ((size_t)snprintf(path, sizeof path, "%s.%s.pb.gz", prefix, kinds[k]) >= sizeof path)
			return cli_fail("--heap: path too long");
		hm_profile *p = hm_profile_new(0);
		if (!p)
			return cli_fail("out of memory");
		hm_write_opts wo = {"homura run: heap", 0};
		hm_outfile o;
		int rc = hm_memsession_profile(mem, kinds[k], p);
		if (rc == HM_OK && (rc = hm_output_open(&o, path, 0666)) == HM_OK) {
			rc = hm_profile_write(p, HM_FMT_PPROF, o.f, &wo);
			if (rc == HM_OK)
				rc = hm_output_commit(&o);
			else
				hm_output_abort(&o);
		}
		hm_profile_free(p);
		if (rc != HM_OK)
			return cli_fail_lib();
		fprintf(stderr, "homura: wrote %s\n", path);
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct run_args *a)
{
	enum { O_CPU = 256, O_MEM, O_GPU, O_JSON, O_ALL, O_HEAP };
	static const struct option opts[] = {
		{"cpu", no_argument, 0, O_CPU},
		{"memory", no_argument, 0, O_MEM},
		{"gpu", no_argument, 0, O_GPU},
		{"output", required_argument, 0, 'o'},
		{"json", required_argument, 0, O_JSON},
		{"heap", required_argument, 0, O_HEAP},
		{"profile-all", no_argument, 0, O_ALL},
		{"rate", required_argument, 0, 'r'},
		{"pid", required_argument, 0, 'p'},
		{"duration", required_argument, 0, 'd'},
		{"lines", required_argument, 0, 'n'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	memset(a, 0, sizeof *a);
	a->rate = 1000;
	a->lines = 30;
	int any = 0, c;
	char *end;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+o:r:p:d:n:h", opts, NULL)) != -1) {
		switch (c) {
		case O_CPU: a->cpu = any = 1; break;
		case O_MEM: a->memory = any = 1; break;
		case O_GPU: a->gpu = any = 1; break;
		case 'o': a->html = optarg; break;
		case O_JSON: a->json = optarg; break;
		case O_HEAP: a->heap = optarg; break;
		case O_ALL: a->profile_all = 1; break;
		case 'r':
			a->rate = strtod(optarg, &end);
			if (end == optarg || *end || !(a->rate >= 1) || a->rate > 10000)
				return cli_fail("invalid rate '%s' (samples per second, 1-10000)", optarg) + 1;
			break;
		case 'p': {
			long v = strtol(optarg, &end, 10);
			if (*end || v <= 0 || v > 0x3fffffff)
				return cli_fail("invalid PID '%s'", optarg) + 1;
			a->pid = (pid_t)v;
			break;
		}
		case 'd':
			a->duration = strtod(optarg, &end);
			if (end == optarg || *end || !(a->duration > 0) || a->duration > 1e9)
				return cli_fail("invalid duration '%s' (seconds, more than 0, at most 1e9)",
						optarg) + 1;
			break;
		case 'n': {
			long v = strtol(optarg, &end, 10);
			if (*end || end == optarg || v < 0 || v > 100000)
				return cli_fail("invalid --lines '%s' (0-100000)", optarg) + 1;
			a->lines = (int)v;
			break;
		}
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 3;
		}
	}
	if (!any)
		a->cpu = a->memory = a->gpu = 1;
	if (optind < argc)
		a->cmd = argv + optind;
	if (!a->pid && !a->cmd) {
		usage(stderr);
		return 3;
	}
	if (a->pid && a->cmd)
		return cli_fail("give either -p PID or a command to run, not both") + 1;
	if ((a->html && !*a->html) || (a->json && !*a->json) || (a->heap && !*a->heap))
		return cli_fail("an empty file name for -o, --json or --heap") + 1;
	if (a->heap && (!a->memory || a->pid))
		return cli_fail("--heap writes the sampled allocations: it needs memory measured "
				"(not --cpu or --gpu alone, nor -p PID)") + 1;
	if (a->pid && a->memory && !a->cpu && !a->gpu)
		return cli_fail("--memory needs a program that homura starts (-- python ...): it "
				"cannot be measured when attaching with -p") + 1;
	if (a->duration > 0 && !a->pid)
		return cli_fail("-d/--duration is for -p PID (a launched program runs to its end)") + 1;
	return 0;
}

/* A process of the program: the one launched (or attached to) and the
 * child processes that show up in the kernel's samples (their events are
 * inherited through fork), whose Python stacks are walked too. */
struct proc {
	pid_t pid;
	hm_target *t;
	hm_python *py;
	int failed;              /* not Python, or unreadable: samples outside lines */
	int gone;
	int was_python;          /* its interpreter was found (it may run program lines) */
	int split_known;         /* its interpreter's code ranges were looked for (attached,
				  * an unsupported Python, or not Python at all) */
	int reattached;          /* times attached again after a failed walk */
	uint64_t seen_ns, next_try;
	hm_pysample ps;
};

#define MAX_KIDS 256

/* Samples drained from the kernel wait here until a stack walk at or after
 * their time has been made (and their process's interpreter was found), so
 * each is joined with the nearer walk. */
struct pending {
	hm_perf_sample *s;
	size_t n, cap;
	pid_t pid;
	struct proc kids[MAX_KIDS];
	int nkids;
	uint64_t kid_samples;    /* samples of child processes */
	uint64_t main_new;       /* samples of the main process since its last walk */
	uint64_t unattributed;   /* of them, user-space ones of processes whose interpreter
				  * was never found (ended first): neither Python nor native */
	int overflow;
	hm_cpuattr *attr;        /* context switches go straight there */
	uint64_t switches;       /* how many so far */
	/* Does the program run in short bursts? A sample more than 1.5
	 * periods after its thread's previous one starts a burst. Only then
	 * is homura woken at each sample (see sleep_until): a thread that
	 * keeps its CPU gains nothing from it and would pay for the wakes. */
	uint64_t period_ns;
	struct { pid_t tid; uint64_t t; } last[256];
	uint64_t win_samples, win_starts;
};

static struct proc *kid_of(struct pending *p, pid_t pid)
{
	for (int i = 0; i < p->nkids; i++)
		if (p->kids[i].pid == pid)
			return &p->kids[i];
	return NULL;
}

static struct proc *new_kid(struct pending *p, pid_t pid)
{
	struct proc *k = &p->kids[p->nkids++];
	memset(k, 0, sizeof *k);
	k->pid = pid;
	k->seen_ns = hm_mono_ns();
	return k;
}

static void on_sample(void *ctx, const hm_perf_sample *s)
{
	struct pending *p = ctx;
	if (s->kind != HM_PERF_SAMPLE) {
		/* when the thread ran: needed by the samples' join, given
		 * before it (settle waits for the switches up to its walks) */
		hm_cpuattr_switch(p->attr, s->tid, s->t_ns, s->kind != HM_PERF_SWITCH_OUT);
		p->switches++;
		/* it ran: walk (a thread that wakes briefly is seen running
		 * only by a walk made then) */
		if (s->kind == HM_PERF_SWITCH_IN && s->pid == p->pid)
			p->main_new++;
		if (s->pid != p->pid && !kid_of(p, s->pid) && p->nkids < MAX_KIDS)
			new_kid(p, s->pid);
		return;
	}
	if (s->pid != p->pid) {
		p->kid_samples++;
		if (!kid_of(p, s->pid) && p->nkids < MAX_KIDS)
			new_kid(p, s->pid);
	} else {
		p->main_new++;
	}
	unsigned slot = (unsigned)s->tid & 255u;
	if (p->last[slot].tid != s->tid || s->t_ns - p->last[slot].t > p->period_ns + p->period_ns / 2)
		p->win_starts++;
	p->last[slot].tid = s->tid;
	p->last[slot].t = s->t_ns;
	p->win_samples++;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 4096;
		hm_perf_sample *n = realloc(p->s, cap * sizeof *n);
		if (!n) {
			p->overflow = 1;
			return;
		}
		p->s = n;
		p->cap = cap;
	}
	p->s[p->n++] = *s;
}

/* Attribute the pending samples up to time upto whose process is ready
 * (main_ready for the main one); all of them with final. */
static void settle(struct pending *p, hm_cpuattr *a, uint64_t upto, int main_ready, int final,
		   uint64_t gap)
{
	size_t k = 0;
	for (size_t i = 0; i < p->n; i++) {
		const hm_perf_sample *s = &p->s[i];
		int ready = final || p->overflow;
		if (!ready) {
			if (s->pid == p->pid) {
				ready = main_ready;
			} else {
				struct proc *kid = kid_of(p, s->pid);
				ready = !kid || kid->py || kid->failed || kid->gone;
			}
			ready = ready && s->t_ns <= upto;
		}
		if (!ready) {
			p->s[k++] = *s;
			continue;
		}
		if (s->pid != p->pid && !s->kernel) {
			/* Where its interpreter's code is was never read (it
			 * ended before homura attached, or there were too many
			 * children): Python or native cannot be told, nor the
			 * line. Counted apart rather than as native. */
			struct proc *kid = kid_of(p, s->pid);
			if (!kid || !kid->split_known) {
				p->unattributed++;
				continue;
			}
		}
		hm_cpuattr_sample(a, s->tid, s->t_ns, hm_cpuattr_classify(a, s->pid, s->ip, s->kernel), gap);
	}
	p->n = k;
}

/* Walk the child processes' stacks (attaching to new ones first). */
static void walk_kids(struct pending *p, hm_cpuattr *a, uint64_t now)
{
	for (int i = 0; i < p->nkids; i++) {
		struct proc *k = &p->kids[i];
		if (k->failed || k->gone)
			continue;
		if (!k->t && hm_target_open(k->pid, &k->t) != HM_OK) {
			k->t = NULL;
			k->failed = 1;
			continue;
		}
		if (!hm_target_alive(k->t)) {
			k->gone = 1;
			hm_python_detach(k->py);
			hm_target_close(k->t);
			hm_pysample_free(&k->ps);
			k->py = NULL;
			k->t = NULL;
			continue;
		}
		if (!k->py) {
			if (now < k->next_try)
				continue;
			hm_python *py = NULL;
			int rc = hm_python_attach(k->t, &py);
			if (rc == HM_OK && hm_python_ready(py)) {
				k->py = py;
				k->was_python = 1;
				k->split_known = 1;
				hm_cpuattr_find_interp(a, k->t);
			} else {
				hm_python_detach(py);
				/* not (yet) Python: a shell, a helper, or still starting
				 * (seen_ns, set while draining, may be after now) */
				if (rc == HM_EVERSION ||
				    (now > k->seen_ns && now - k->seen_ns > 5000000000ull)) {
					k->failed = 1;
					/* its own code is native; an unsupported
					 * Python's interpreter code is still Python */
					k->split_known = 1;
					hm_cpuattr_find_interp(a, k->t);
				}
				k->next_try = now + 5000000ull;
				continue;
			}
		}
		uint64_t t0 = hm_mono_ns();
		if (hm_python_sample(k->py, &k->ps, 0) == HM_OK) {
			uint64_t tm = (t0 + hm_mono_ns()) / 2;
			for (int j = 0; j < k->ps.nthreads; j++)
				hm_cpuattr_observe(a, &k->ps.threads[j], tm);
		} else if (k->reattached < 4 && hm_target_alive(k->t)) {
			/* Its image may have changed: a fork attached to before
			 * it exec'd (multiprocessing's spawn, subprocess), now
			 * attaching is quick. Attach again (its samples wait). */
			k->reattached++;
			hm_python_detach(k->py);
			hm_target_close(k->t);
			hm_pysample_free(&k->ps);
			k->py = NULL;
			k->t = NULL;
			k->seen_ns = now;
			k->next_try = 0;
		}
	}
}

static void free_kids(struct pending *p)
{
	for (int i = 0; i < p->nkids; i++) {
		hm_python_detach(p->kids[i].py);
		hm_target_close(p->kids[i].t);
		hm_pysample_free(&p->kids[i].ps);
	}
	p->nkids = 0;
}

static char *join_cmd(char **cmd)
{
	size_t len = 1;
	for (char **c = cmd; *c; c++)
		len += strlen(*c) + 1;
	char *s = malloc(len), *q = s;
	if (!s)
		return NULL;
	for (char **c = cmd; *c; c++) {
		size_t n = strlen(*c);
		memcpy(q, *c, n);
		q += n;
		*q++ = ' ';
	}
	q[q > s ? -1 : 0] = 0;
	return s;
}

/* Sleep until t_ns, or until a child process ends (SIGCHLD, blocked once
 * the program is launched, is waited for here: chld_fd, a signalfd), so
 * that a low --rate does not delay noticing the program's end by up to a
 * whole period; with the kernel's events and eager, until their next
 * sample too, so that the stacks are walked right after it. */
static void sleep_until(uint64_t t_ns, hm_perf *perf, int eager, int chld_fd)
{
	uint64_t now = hm_mono_ns();
	if (t_ns <= now)
		return;
	if (chld_fd >= 0) {
		int r;
		if (perf && eager) {
			r = hm_perf_wait(perf, chld_fd, t_ns - now);
		} else {
			struct pollfd pf = {.fd = chld_fd, .events = POLLIN};
			struct timespec ts = {(time_t)((t_ns - now) / 1000000000ull),
					      (long)((t_ns - now) % 1000000000ull)};
			r = ppoll(&pf, 1, &ts, NULL) > 0 ? 2 : 0;
		}
		if (r == 2) {
			struct signalfd_siginfo si;
			while (read(chld_fd, &si, sizeof si) == (ssize_t)sizeof si)
				;
		}
		return;
	}
	struct timespec ts = {(time_t)((t_ns - now) / 1000000000ull), (long)((t_ns - now) % 1000000000ull)};
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigtimedwait(&chld, NULL, &ts);
}

/* Set the session's variables in our environment for the launch; the
 * previous values are restored by restore_env. */
struct saved_env {
	char *name[16];
	char *old[16];
	int n;
};

static void apply_env(char *const *env, struct saved_env *sv)
{
	sv->n = 0;
	for (; env && *env && sv->n < 16; env++) {
		const char *eq = strchr(*env, '=');
		if (!eq)
			continue;
		char *name = strndup(*env, (size_t)(eq - *env));
		if (!name)
			continue;
		const char *old = getenv(name);
		sv->name[sv->n] = name;
		sv->old[sv->n] = old ? strdup(old) : NULL;
		sv->n++;
		setenv(name, eq + 1, 1);
	}
}

static void restore_env(struct saved_env *sv)
{
	for (int i = 0; i < sv->n; i++) {
		if (sv->old[i])
			setenv(sv->name[i], sv->old[i], 1);
		else
			unsetenv(sv->name[i]);
		free(sv->name[i]);
		free(sv->old[i]);
	}
	sv->n = 0;
}

/* Why Python's object allocations may be undercounted, or NULL: with
 * PYTHONMALLOC set (to anything but malloc) or the development mode, the
 * interpreter installs its allocators over the sampler's hooks at start-up,
 * so only what reaches malloc is seen. */
static const char *pymalloc_replaced(char **cmd)
{
	const char *pm = getenv("PYTHONMALLOC"), *dev = getenv("PYTHONDEVMODE");
	if (pm && *pm && strcmp(pm, "malloc") != 0)
		return "PYTHONMALLOC";
	if (dev && *dev)
		return "PYTHONDEVMODE";
	for (int i = 1; cmd && cmd[i]; i++) {
		if (!strcmp(cmd[i], "-c") || !strcmp(cmd[i], "-m") || cmd[i][0] != '-')
			break;   /* the program's own arguments from here */
		if (!strcmp(cmd[i], "-Xdev") || (!strcmp(cmd[i], "-X") && cmd[i + 1] &&
						  !strcmp(cmd[i + 1], "dev")))
			return "-X dev";
	}
	return NULL;
}

/* CODE of `python [options] -c CODE` (or -cCODE), the text of its
 * "<string>" lines; NULL for any other command. */
static const char *dash_c_code(char **cmd)
{
	const char *base = strrchr(cmd[0], '/');
	if (!strstr(base ? base + 1 : cmd[0], "python"))
		return NULL;
	for (int i = 1; cmd[i] && cmd[i][0] == '-'; i++) {
		if (!strcmp(cmd[i], "-c"))
			return cmd[i + 1];
		if (!strncmp(cmd[i], "-c", 2))
			return cmd[i] + 2;
		if (!strcmp(cmd[i], "-m") || !strcmp(cmd[i], "-") || !strcmp(cmd[i], "--"))
			return NULL;
		if ((!strcmp(cmd[i], "-X") || !strcmp(cmd[i], "-W")) && cmd[i + 1])
			i++;     /* an option with its value */
	}
	return NULL;
}

static int write_out(const char *path, int (*fn)(const hm_report *, FILE *), const hm_report *r)
{
	hm_outfile o;
	if (hm_output_open(&o, path, 0666) != HM_OK)
		return cli_fail_lib();
	if (fn(r, o.f) != HM_OK) {
		hm_output_abort(&o);
		return cli_fail_lib();
	}
	return hm_output_commit(&o) == HM_OK ? 0 : cli_fail_lib();
}

int cmd_run(int argc, char **argv)
{
	struct run_args a;
	int r = parse_args(argc, argv, &a);
	if (r)
		return r == 1 ? 0 : r - 1;
	if ((a.html && hm_output_check(a.html) != HM_OK) || (a.json && hm_output_check(a.json) != HM_OK))
		return cli_fail_lib();
	/* --heap's three files too: before the program runs, not after */
	for (int k = 0; a.heap && k < 3; k++) {
		static const char *kinds[] = {"alloc_space", "alloc_objects", "inuse_space"};
		char path[4096];
		if ((size_t)snprintf(path, sizeof path, "%s.%s.pb.gz", a.heap, kinds[k]) >= sizeof path)
			return cli_fail("--heap: path too long");
		if (hm_output_check(path) != HM_OK)
			return cli_fail_lib();
	}

	/* `homura run -- script.py`: run it with python3 */
	char **cmd = a.cmd, **ownedcmd = NULL;
	if (cmd) {
		size_t l = strlen(cmd[0]);
		if (l > 3 && !strcmp(cmd[0] + l - 3, ".py") && access(cmd[0], X_OK) != 0) {
			int n = 0;
			while (cmd[n])
				n++;
			ownedcmd = calloc((size_t)n + 2, sizeof *ownedcmd);
			if (!ownedcmd)
				return cli_fail("out of memory");
			ownedcmd[0] = "python3";
			memcpy(ownedcmd + 1, cmd, (size_t)n * sizeof *cmd);
			cmd = ownedcmd;
		}
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	hm_report rep;
	memset(&rep, 0, sizeof rep);
	rep.cpu = a.cpu;
	rep.memory = a.memory;
	rep.gpu = a.gpu;

	/* memory: a session whose environment the launched program gets */
	hm_memsession *mem = NULL;
	if (a.memory && a.pid) {
		rep.memory = 0;
		rep.memory_why = "not when attaching: allocations are sampled by a library homura "
				 "loads into the program when it starts it";
	} else if (a.memory) {
		hm_memopts mo;
		memset(&mo, 0, sizeof mo);
		mo.profile_all = a.profile_all;
		if (hm_memsession_new(&mo, &mem) != HM_OK) {
			static char why[256];
			snprintf(why, sizeof why, "%s", hm_errmsg());
			rep.memory = 0;
			rep.memory_why = why;
			mem = NULL;
		}
	}

	pid_t pid = a.pid, child = 0;
	int chld_fd = -1;
	uint64_t t_start = hm_mono_ns();
	hm_perf *perf = NULL;
	static char cpu_why[256];
	int perf_rc = HM_OK;
	if (cmd) {
		struct saved_env sv = {0};
		if (mem)
			apply_env(hm_memsession_env(mem), &sv);
		hm_held held;
		int hr = hm_launch_held(cmd, 0, &held);
		int e = errno;
		restore_env(&sv);
		/* CPU: the kernel's events are opened while the child waits
		 * before its exec, so that every thread of the program is
		 * counted from its start (opened on a running program, they
		 * can stay silent for tens of milliseconds, and a thread
		 * started and ended meanwhile was never counted) */
		if (hr == 0 && a.cpu) {
			perf_rc = hm_perf_open_exec(held.pid, a.rate, &perf);
			if (perf_rc != HM_OK)
				snprintf(cpu_why, sizeof cpu_why, "%s", hm_errmsg());
		}
		child = pid = hr == 0 ? hm_launch_go(&held) : -1;
		if (hr == 0)
			e = errno;
		if (pid < 0) {
			hm_perf_close(perf);
			hm_memsession_free(mem);
			free(ownedcmd);
			return cli_fail("cannot start '%s': %s", cmd[0], strerror(e));
		}
		if (mem)
			hm_memsession_set_pid(mem, pid);
		/* its end wakes the loop (sleep_until); blocked only now, so
		 * that the program does not inherit the mask */
		sigset_t chld;
		sigemptyset(&chld);
		sigaddset(&chld, SIGCHLD);
		sigprocmask(SIG_BLOCK, &chld, NULL);
		chld_fd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	}

	/* CPU: the kernel's samples of every thread (opened above for a
	 * launched program) */
	int early_status = 0, early_exit = 0;
	if (a.cpu && !child && (perf_rc = hm_perf_open(pid, a.rate, &perf)) != HM_OK)
		snprintf(cpu_why, sizeof cpu_why, "%s", hm_errmsg());
	if (a.cpu && perf_rc != HM_OK) {
		rep.cpu = 0;
		rep.cpu_why = cpu_why;
		perf = NULL;
		if (!child) {
			hm_memsession_free(mem);
			return cli_fail("%s", cpu_why);
		}
	}
	hm_target *t = NULL;
	if (!early_exit && child && waitpid(child, &early_status, WNOHANG) == child)
		early_exit = 1;
	if (early_exit || hm_target_open(pid, &t) != HM_OK) {
		if (child) {
			if (!early_exit)
				fprintf(stderr, "homura: %s; no per-line figures\n", hm_errmsg());
		} else {
			int st = cli_fail_lib();
			hm_perf_close(perf);
			hm_memsession_free(mem);
			return st;
		}
		t = NULL;
	}
	hm_python *py = NULL;
	if (a.pid && t && hm_python_attach(t, &py) != HM_OK) {
		int st = cli_fail_lib();
		hm_perf_close(perf);
		hm_target_close(t);
		hm_memsession_free(mem);
		return st;
	}

	hm_gpu *gpu = NULL;
	static char gpu_why[256];
	if (a.gpu && hm_gpu_open(NULL, &gpu) != HM_OK) {
		snprintf(gpu_why, sizeof gpu_why, "%s", hm_errmsg());
		rep.gpu = 0;
		rep.gpu_why = gpu_why;
		gpu = NULL;
	}
	if (!a.gpu)
		rep.gpu_why = "not asked for";
	if (!a.cpu)
		rep.cpu_why = "not asked for";
	if (!a.memory)
		rep.memory_why = "not asked for";

	hm_cpuattr *attr = hm_cpuattr_new(a.profile_all);
	if (!attr)
		return cli_fail("out of memory");
	if (py)
		hm_cpuattr_find_interp(attr, t);
	struct pending *pendp = calloc(1, sizeof *pendp);
	if (!pendp)
		return cli_fail("out of memory");
	struct pending *pend = pendp;
	pend->pid = pid;
	pend->attr = attr;
	hm_pysample ps;
	memset(&ps, 0, sizeof ps);
	uint64_t period = (uint64_t)(1e9 / a.rate);
	pend->period_ns = period;
	uint64_t gap = 3 * period > 20000000ull ? 3 * period : 20000000ull;
	uint64_t next = hm_mono_ns(), last_walk = 0, next_mem = 0, next_gpu = 0, next_attach = 0;
	uint64_t deadline = a.duration > 0 ? hm_mono_ns() + (uint64_t)(a.duration * 1e9) : 0;
	int status = early_status, exited = early_exit, py_failed = 0;
	/* Woken by a sample, homura must walk before the thread moves on:
	 * on the program's CPU an ordinary task waits until the program
	 * blocks (after a short burst of CPU, where the sample was taken,
	 * is over). The lowest real-time priority gets it a CPU at once;
	 * its work is the same, at most a walk per half period. Where not
	 * allowed (not root, no CAP_SYS_NICE), ordinary. Only while woken at
	 * each sample (eager, below): a program that keeps its CPUs busy
	 * gains nothing from it and paid for it (`homura run`, all measures:
	 * 1.34x against 1.07x without it, bench/bench_run.py, quiet). Not
	 * inherited by anything it starts; back to ordinary for the reports. */
	int old_policy = sched_getscheduler(0);
	struct sched_param old_param, rt_param = {.sched_priority = 1};
	sched_getparam(0, &old_param);
	int rt_ok = perf && old_policy == SCHED_OTHER;
	int rt = rt_ok && sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &rt_param) == 0;
	/* Never more than a quarter of a CPU at that priority (hundreds of
	 * threads to walk, a slow machine): over a second's rounds, more
	 * and homura is an ordinary task again for the rest of the run. */
	uint64_t rt_busy = 0, rt_window = hm_mono_ns(), switches_then = 0, switches_window = rt_window;
	int eager = 1;                /* woken at each sample: see below */
	uint64_t eager_window = rt_window;
	while (!exited) {
		uint64_t now = hm_mono_ns(), round_start = now;
		if (a.pid && (stop_flag || (deadline && now >= deadline)))
			break;
		if (forward_sig && child) {
			kill(child, forward_sig);
			forward_sig = 0;
		}
		if (child) {
			pid_t w = waitpid(child, &status, WNOHANG);
			if (w == child || (w < 0 && errno == ECHILD))
				exited = 1;
		} else if (t && !hm_target_alive(t)) {
			exited = 1;
		}
		/* attach to the interpreter once it is up */
		if (!py && t && !py_failed && now >= next_attach) {
			hm_python *p = NULL;
			int rc = hm_python_attach(t, &p);
			if (rc == HM_OK && hm_python_ready(p)) {
				py = p;
				hm_cpuattr_find_interp(attr, t);
			} else {
				hm_python_detach(p);
				if (rc == HM_EVERSION ||
				    (now - t_start > 10000000000ull && rc != HM_OK)) {
					fprintf(stderr, "homura: %s; no per-line CPU figures\n",
						rc == HM_EVERSION ? hm_errmsg() : "the program never ran Python");
					py_failed = 1;
				}
			}
			next_attach = now + (now - t_start > 2000000000ull ? 100000000ull : 2000000ull);
		}
		/* The kernel's samples first: the program's stacks are walked
		 * only when it ran since the last walk (or every 10 ms, for
		 * the GPU's lines), so a program that waits costs no walks.
		 * With switches, samples are joined up to the walk before the
		 * drain, whose thread states (running or blocked) are known. */
		uint64_t walked_before = last_walk;
		if (perf)
			hm_perf_drain(perf, on_sample, pend);
		if (py && !exited && (!perf || pend->main_new || now - last_walk >= 10000000ull)) {
			uint64_t t0 = hm_mono_ns();
			if (hm_python_sample(py, &ps, 0) == HM_OK) {
				uint64_t tm = (t0 + hm_mono_ns()) / 2;
				for (int i = 0; i < ps.nthreads; i++)
					hm_cpuattr_observe(attr, &ps.threads[i], tm);
				last_walk = tm;
				pend->main_new = 0;
			}
		}
		if (perf) {
			if (!exited)
				walk_kids(pend, attr, now);
			uint64_t upto = hm_perf_switches(perf) ? walked_before : last_walk;
			settle(pend, attr, upto ? upto : now, py != NULL || py_failed, 0, gap);
		}
		if (mem && now >= next_mem) {
			hm_memsession_poll(mem);
			next_mem = now + 50000000ull;
		}
		if (gpu && now >= next_gpu) {
			double u, m;
			if (hm_gpu_sample(gpu, pid, &u, &m) > 0)
				hm_cpuattr_gpu(attr, now, u, m);
			next_gpu = now + 100000000ull;
		}
		if (exited)
			break;
		/* Woken by a sample, the next round comes at once; rounds (and
		 * so walks, of the program and its children) stay at least
		 * half a period apart (many busy threads or processes wake
		 * us often), and keep their pace. */
		now = hm_mono_ns();
		rt_busy += now - round_start;
		/* Each switch costs the program a record (0.25-0.5 us): past
		 * 20000 a second over 100 ms (under 1% of a CPU), they stop
		 * and samples are joined as without them. */
		if (perf && now - switches_window >= 100000000ull) {
			if (hm_perf_switches(perf) && (pend->switches - switches_then) * 1000000000ull >
							      20000ull * (now - switches_window)) {
				hm_perf_switches_off(perf);
				hm_cpuattr_switches_end(attr, now);
			}
			switches_then = pend->switches;
			switches_window = now;
		}
		/* Woken at each sample only while the program runs in short
		 * bursts (a tenth of its samples or more start one, over
		 * 100 ms): a busy thread keeps its line between two walks
		 * anyway, and waking homura on its CPU a thousand times a
		 * second cost it 3-9% (bench/bench_run.py, --cpu). */
		if (pend->win_samples >= 20 || now - eager_window >= 100000000ull) {
			eager = pend->win_samples < 5 || pend->win_starts * 10 >= pend->win_samples;
			pend->win_samples = pend->win_starts = 0;
			eager_window = now;
			if (rt && !eager) {
				sched_setscheduler(0, old_policy, &old_param);
				rt = 0;
			} else if (!rt && eager && rt_ok) {
				rt = sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &rt_param) == 0;
			}
		}
		if (now - rt_window >= 1000000000ull) {
			if (rt && rt_busy * 4 > now - rt_window) {
				sched_setscheduler(0, old_policy, &old_param);
				rt = rt_ok = 0;
			}
			rt_busy = 0;
			rt_window = now;
		}
		if (next <= now)
			next += period;
		if (next < now)
			next = now;   /* fell behind: no burst to catch up */
		if (round_start + period / 2 > now)
			sleep_until(round_start + period / 2, NULL, 0, -1);
		sleep_until(next, perf, eager, chld_fd);
	}
	uint64_t t_end = hm_mono_ns();
	if (rt)
		sched_setscheduler(0, old_policy, &old_param);
	if (perf) {
		hm_perf_drain(perf, on_sample, pend);
		settle(pend, attr, UINT64_MAX, 1, 1, gap);
		rep.lost_samples = hm_perf_lost(perf);
		rep.child_samples = pend->kid_samples;
		rep.unattributed_samples = pend->unattributed;
		rep.child_processes = pend->nkids;
		for (int i = 0; i < pend->nkids; i++)
			rep.python_children += pend->kids[i].was_python;
		if (!hm_perf_kernel_ips(perf))
			fprintf(stderr, "homura: the kernel gives user-space IPs only: system time is "
					"counted as native\n");
	}
	rep.elapsed_s = (double)(t_end - t_start) / 1e9;
	if (!py && !py_failed && t && rep.cpu)
		fprintf(stderr, "homura: process %d ran no Python code that homura could read: CPU "
				"totals only\n", (int)pid);
	if (mem) {
		hm_memsession_poll(mem);
		hm_memsession_finish(mem, rep.elapsed_s);
		const char *why = NULL;
		if (!hm_memsession_available(mem, &why)) {
			rep.memory = 0;
			rep.memory_why = why ? why : "no allocation was sampled";
			/* the sampler needs 3.7's _PyRuntime: say so for older ones */
			static char oldpy[128];
			const char *v = py ? hm_python_version(py) : NULL;
			unsigned maj = 0, min = 0;
			if (v && sscanf(v, "%u.%u", &maj, &min) == 2 && (maj < 3 || (maj == 3 && min < 7))) {
				snprintf(oldpy, sizeof oldpy, "Python %s: the allocation sampler needs "
					 "Python 3.7 or later", v);
				rep.memory_why = oldpy;
			}
		}
	}
	char *prog = cmd ? join_cmd(cmd) : NULL;
	if (!prog && t) {
		size_t len = 0;
		prog = hm_target_cmdline(t, &len);
		for (size_t i = 0; prog && i + 1 < len; i++)
			if (!prog[i])
				prog[i] = ' ';
	}
	rep.program = prog ? prog : "";
	rep.python = py ? hm_python_version(py) : NULL;
	char root[64], cwd[64];
	snprintf(root, sizeof root, "/proc/%d/root", (int)pid);
	snprintf(cwd, sizeof cwd, "/proc/%d/cwd", (int)pid);
	hm_report_src src = {child ? NULL : root, child ? NULL : cwd, cmd ? dash_c_code(cmd) : NULL};
	int rc = hm_report_build(&rep, rep.cpu ? attr : NULL, rep.memory ? mem : NULL, &src);
	int ret = 0;
	if (rc != HM_OK) {
		ret = cli_fail_lib();
	} else {
		if (a.lines > 0) {
			struct winsize ws;
			int width = isatty(2) && ioctl(2, TIOCGWINSZ, &ws) == 0 ? ws.ws_col : 0;
			hm_report_text(&rep, stderr, a.lines, isatty(2) && !getenv("NO_COLOR"), width);
		}
		fputc('\n', stderr);
		hm_report_summary(&rep, stderr);
		fputc('\n', stderr);
		if (rep.child_samples)
			fprintf(stderr, "homura: %d child process%s: %llu of the CPU samples, in the lines "
					"of the files they ran%s\n",
				rep.child_processes, rep.child_processes == 1 ? "" : "es",
				(unsigned long long)rep.child_samples,
				rep.memory ? " (memory: the main process only)" : "");
		if (rep.unattributed_samples)
			fprintf(stderr, "homura: %llu CPU samples of child processes that ended before "
					"homura found their interpreter are not attributed (neither to "
					"lines nor to the Python/native split)\n",
				(unsigned long long)rep.unattributed_samples);
		const char *why_under = rep.memory && cmd ? pymalloc_replaced(cmd) : NULL;
		if (why_under)
			fprintf(stderr, "homura: %s: the interpreter's own allocators replace homura's "
					"hooks, so Python objects from pymalloc are not counted (only what "
					"reaches malloc is)\n", why_under);
		/* `-m json.tool`, an installed tool: its code is all library
		 * code, folded into no line of the program's own */
		if (!a.profile_all && rep.cpu && !isnan(rep.outside_pct) && rep.outside_pct >= 50 &&
		    (double)rep.cpu_samples * rep.outside_pct / 100 / a.rate >= 0.1)   /* not start-up alone */
			fprintf(stderr, "homura: %.0f%% of the CPU time was in no line of the program's own "
					"files (library code, start-up): --profile-all shows library lines\n",
				rep.outside_pct);
		if (a.html && write_out(a.html, hm_report_html, &rep) == 0)
			fprintf(stderr, "homura: wrote %s\n", a.html);
		if (a.json && write_out(a.json, hm_report_json, &rep) == 0)
			fprintf(stderr, "homura: wrote %s\n", a.json);
		if (a.heap && rep.memory && write_heap(a.heap, mem) != 0)
			ret = 1;
		else if (a.heap && !rep.memory)
			fprintf(stderr, "homura: --heap: no memory measured, no heap profile written\n");
	}
	hm_report_free(&rep);
	free(prog);
	hm_pysample_free(&ps);
	free(pend->s);
	free_kids(pend);
	free(pendp);
	hm_cpuattr_free(attr);
	hm_gpu_close(gpu);
	hm_perf_close(perf);
	hm_python_detach(py);
	hm_target_close(t);
	hm_memsession_free(mem);
	free(ownedcmd);
	if (chld_fd >= 0)
		close(chld_fd);
	if (!child)
		return ret;
	/* the program's own status */
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		signal(sig, SIG_DFL);
		raise(sig);
		return 128 + sig;
	}
	return ret;
}
