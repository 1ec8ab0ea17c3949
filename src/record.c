/* record.c - `homura record`: sample a Python process and write a profile.
 *
 * Attaches to -p PID, or launches the command after `--` and waits for its
 * interpreter to come up, then drives the sampling loop (sample/sampler.h)
 * with one process whose stacks go into one profile, until Ctrl-C, the
 * duration, or the target's (with -s: its descendants' too) exit. Whatever
 * happens, the profile collected so far is written (to a temporary file
 * renamed into place), followed by a summary on stderr and, with
 * --stats-json, the same as JSON. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "base/base.h"
#include "base/error.h"
#include "base/fileio.h"
#include "base/profile.h"
#include "format/encode.h"
#include "format/filter.h"
#include "proc/discover.h"
#include "proc/launch.h"
#include "proc/target.h"
#include "python/pyasync.h"
#include "python/python.h"
#include "sample/sampler.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: homura record [options] -p PID\n"
		"       homura record [options] -- python script.py [args]\n\n"
		"  -p, --pid PID          attach to a running process\n"
		"  -o, --output FILE      where to write the profile (default homura-PID.svg)\n"
		"  -f, --format FMT       collapsed (or raw), speedscope, svg (or flamegraph),\n"
		"                         pprof, otlp, otlp-json, chrometrace (default: from\n"
		"                         the output's suffix, else svg)\n"
		"  -r, --rate HZ          samples per second (default 100, up to 10000)\n"
		"  -d, --duration SECS    stop after this long (default: Ctrl-C or target exit)\n"
		"  -i, --idle             include threads that are not running on a CPU\n"
		"  -g, --gil              only the thread holding the GIL\n"
		"  -t, --threads          a frame per thread at the root of each stack\n"
		"  -s, --subprocesses     also profile the target's Python child processes\n"
		"                         (multiprocessing, gunicorn/uwsgi workers, ...), each\n"
		"                         under a \"process PID: program\" root frame\n"
		"      --nolineno         aggregate by function, not by line\n"
		"      --function         the same as --nolineno\n"
		"      --full-filenames   accepted for py-spy users: file names are always\n"
		"                         written in full\n"
		"      --blocking         pause the target while reading each sample\n"
		"      --nonblocking      never pause the target (the default)\n"
		"  -n, --native           merge native (C/C++/Cython) frames into the Python\n"
		"                         stacks; stops each sampled thread (ptrace) for the\n"
		"                         few tens of microseconds its unwind takes; with\n"
		"                         --ebpf nothing is stopped (unwound from the kernel's\n"
		"                         copy of the registers and top of the stack)\n"
		"      --async            asyncio: each task's chain of awaiting coroutines\n"
		"                         as its stack under a 'Task <name>' root, idle tasks\n"
		"                         included (CPython 3.8-3.13)\n"
		"      --ebpf             walk the Python stacks in the kernel (a BPF program on\n"
		"                         a cpu-clock event of each CPU): exact on-CPU samples,\n"
		"                         no wake-up per sample; needs root; falls back to the\n"
		"                         user-space sampler, saying why, where BPF is refused\n"
		"      --kernel           with --ebpf: the kernel frames (from /proc/kallsyms)\n"
		"                         under the Python line of samples that ran in the kernel\n"
		"      --no-trace         don't read OpenTelemetry spans (default: samples of a\n"
		"                         program using the OpenTelemetry SDK carry the span\n"
		"                         they ran in: trace_id, span_id, span_name labels)\n"
		"      --group-by span    put every stack under a 'span: NAME' root frame\n"
		"      --no-jitter        sample at exact intervals (default: jittered)\n"
		"      --max-depth N      frames kept per stack (default 4096)\n"
		"      --stats-json FILE  write sampling statistics as JSON\n"
		"      --title TEXT       title of the flame graph\n"
		"      --focus RE         keep only stacks with a frame matching RE\n"
		"      --hide RE          remove frames matching RE\n"
		"      --thread TID       keep one thread (id or name)\n"
		"      --drop-file RE     remove frames whose file matches RE (e.g. site-packages)\n"
		"  -h, --help             this help\n");
}

struct record_args {
	pid_t pid;
	const char *output;
	const char *format;
	const char *stats_json;
	const char *title;
	char **cmd;
	hm_filter filter;
	int group_span;          /* --group-by span */
	hm_sampler_opts so;
};

static int parse_args(int argc, char **argv, struct record_args *a)
{
	enum { O_NOLINENO = 256, O_BLOCKING, O_STATS, O_NOJITTER, O_DEPTH, O_TITLE, O_FOCUS, O_HIDE,
	       O_THREAD, O_DROPFILE, O_ASYNCIO, O_NONBLOCKING, O_FULLNAMES, O_EBPF, O_NOTRACE, O_GROUPBY, O_KERNEL };
	static const struct option opts[] = {
		{"pid", required_argument, 0, 'p'},
		{"output", required_argument, 0, 'o'},
		{"format", required_argument, 0, 'f'},
		{"rate", required_argument, 0, 'r'},
		{"duration", required_argument, 0, 'd'},
		{"idle", no_argument, 0, 'i'},
		{"gil", no_argument, 0, 'g'},
		{"threads", no_argument, 0, 't'},
		{"subprocesses", no_argument, 0, 's'},
		{"nolineno", no_argument, 0, O_NOLINENO},
		{"function", no_argument, 0, O_NOLINENO},          /* py-spy's name */
		{"full-filenames", no_argument, 0, O_FULLNAMES},   /* py-spy's; always so */
		{"blocking", no_argument, 0, O_BLOCKING},
		{"nonblocking", no_argument, 0, O_NONBLOCKING},    /* py-spy's; the default */
		{"native", no_argument, 0, 'n'},
		{"no-jitter", no_argument, 0, O_NOJITTER},
		{"max-depth", required_argument, 0, O_DEPTH},
		{"stats-json", required_argument, 0, O_STATS},
		{"title", required_argument, 0, O_TITLE},
		{"focus", required_argument, 0, O_FOCUS},
		{"hide", required_argument, 0, O_HIDE},
		{"thread", required_argument, 0, O_THREAD},
		{"drop-file", required_argument, 0, O_DROPFILE},
		{"async", no_argument, 0, O_ASYNCIO},
		{"ebpf", no_argument, 0, O_EBPF},
		{"kernel", no_argument, 0, O_KERNEL},
		{"no-trace", no_argument, 0, O_NOTRACE},
		{"group-by", required_argument, 0, O_GROUPBY},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	memset(a, 0, sizeof *a);
	hm_sampler_opts_init(&a->so);
	int c;
	char *end;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+p:o:f:r:d:igtsnh", opts, NULL)) != -1) {
		switch (c) {
		case 'p': {
			long v = strtol(optarg, &end, 10);
			if (*end || v <= 0 || v > 0x3fffffff)
				return cli_fail("invalid PID '%s'", optarg) + 1;
			a->pid = (pid_t)v;
			break;
		}
		case 'o': a->output = optarg; break;
		case 'f': a->format = optarg; break;
		case 'r':
			a->so.rate_hz = strtod(optarg, &end);
			if (end == optarg || *end || !(a->so.rate_hz >= 1) || a->so.rate_hz > 10000)
				return cli_fail("invalid rate '%s' (samples per second, 1-10000)", optarg) + 1;
			break;
		case 'd':
			/* Bounded so that it converts to nanoseconds without overflow. */
			a->so.duration_s = strtod(optarg, &end);
			if (end == optarg || *end || !(a->so.duration_s > 0) || a->so.duration_s > 1e9)
				return cli_fail("invalid duration '%s' (seconds, more than 0, at most 1e9)",
						optarg) + 1;
			break;
		case 'i': a->so.idle = 1; break;
		case 'g': a->so.gil_only = 1; break;
		case 't': a->so.threads_root = 1; break;
		case 's': a->so.subprocesses = 1; break;
		case O_NOLINENO: a->so.nolineno = 1; break;
		case O_BLOCKING: a->so.blocking = 1; break;
		case O_NONBLOCKING: a->so.blocking = 0; break;
		case O_FULLNAMES: break;
		case 'n': a->so.native = 1; break;
		case O_NOJITTER: a->so.jitter = 0; break;
		case O_DEPTH:
			a->so.max_depth = (int)strtol(optarg, &end, 10);
			if (*end || a->so.max_depth < 1)
				return cli_fail("invalid --max-depth '%s'", optarg) + 1;
			break;
		case O_STATS: a->stats_json = optarg; break;
		case O_TITLE: a->title = optarg; break;
		case O_FOCUS: a->filter.focus = optarg; break;
		case O_HIDE: a->filter.hide = optarg; break;
		case O_THREAD: a->filter.thread = optarg; break;
		case O_DROPFILE: a->filter.drop_file = optarg; break;
		case O_ASYNCIO: a->so.async = 1; break;
		case O_EBPF: a->so.ebpf = 1; break;
		case O_KERNEL: a->so.ebpf_kernel = 1; break;
		case O_NOTRACE: hm_python_trace_default(0); break;
		case O_GROUPBY:
			if (strcmp(optarg, "span"))
				return cli_fail("invalid --group-by '%s' (only 'span')", optarg) + 1;
			a->group_span = 1;
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
	if (a->so.ebpf_kernel && !a->so.ebpf)
		return cli_fail("--kernel needs --ebpf (kernel stacks are read in the kernel)") + 1;
	return 0;
}

static int pick_format(const struct record_args *a)
{
	if (a->format) {
		int f = hm_format_parse(a->format);
		if (!f)
			cli_fail("unknown format '%s' (collapsed, speedscope, svg, pprof, otlp, otlp-json, "
				 "chrometrace)",
				 a->format);
		return f;
	}
	int f = a->output ? hm_format_from_path(a->output) : 0;
	return f ? f : HM_FMT_SVG;
}

static const char *suffix_of(int fmt)
{
	switch (fmt) {
	case HM_FMT_COLLAPSED: return "txt";
	case HM_FMT_SPEEDSCOPE: return "speedscope.json";
	case HM_FMT_PPROF: return "pb.gz";
	case HM_FMT_OTLP: return "otlp.pb";
	case HM_FMT_OTLP_JSON: return "otlp.json";
	case HM_FMT_CHROMETRACE: return "trace.json";
	default: return "svg";
	}
}

/* Outputs: "-" is stdout, /dev/null is written in place; anything else goes
 * through a new temporary file (O_EXCL|O_NOFOLLOW, unpredictable name)
 * renamed over the target, so a failed write never leaves a truncated
 * profile behind and a symbolic link, FIFO or device is refused, never
 * written through (fileio.h). */
static int check_writable(const char *path)
{
	return hm_output_check(path) == HM_OK ? 0 : cli_fail_lib();
}

static int write_profile(const hm_profile *p, int fmt, const char *path, const char *title)
{
	hm_write_opts wo = {title, 0};
	hm_outfile o;
	if (hm_output_open(&o, path, 0666) != HM_OK)
		return cli_fail_lib();
	if (hm_profile_write(p, fmt, o.f, &wo) != HM_OK) {
		hm_output_abort(&o);
		return cli_fail_lib();
	}
	return hm_output_commit(&o) == HM_OK ? 0 : cli_fail_lib();
}

static int ebpf_skipped;

/* --ebpf: the target is sampled from user space (e.g. Python before 3.8). */
static void ebpf_skip(void *ctx, hm_sproc *p, const char *why)
{
	ebpf_skipped = 1;
	fprintf(stderr, "homura: %s; using the user-space sampler\n", why);
}

static uint64_t rusage_us(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* cpu_setup_us, cpu_run_us: homura's own CPU time (user + system, its
 * rusage) before sampling began (attach, ELF symbols, with --ebpf the
 * kernel's verifier of the BPF program) and while it sampled. */
static void write_stats_json(const char *path, const hm_sampler_stats *st, uint64_t cpu_setup_us,
			     uint64_t cpu_run_us)
{
	hm_outfile o;
	if (hm_output_open(&o, path, 0666) != HM_OK) {
		cli_fail_lib();
		return;
	}
	FILE *f = o.f;
	fprintf(f,
		"{\"samples\": %llu, \"invalid\": %llu, \"span_torn\": %llu, \"late\": %llu, \"ticks\": %llu, "
		"\"errors\": %llu, \"sample_us\": {\"p50\": %.2f, \"p99\": %.2f, \"max\": %.2f, "
		"\"mean\": %.2f}, \"bpf\": {\"runs\": %llu, \"run_ns\": %llu, \"matched\": %llu, "
		"\"dropped\": %llu, \"no_python\": %llu, \"aggregated\": %llu, \"agg_full\": %llu, "
		"\"agg_entries\": %llu, \"new_stacks\": %llu, \"cpu_from_kernel\": %s, \"native_joined\": %llu, "
		"\"native_unjoined\": %llu, \"native_lost\": %llu, \"root_scans\": %llu, "
		"\"roots_found\": %llu, \"roots_at_frame\": %llu, \"roots_in_kernel\": %llu, "
		"\"root_scan_ns\": %llu}, \"native\": {\"unwinds\": %llu, "
		"\"torn\": %llu, \"failed\": %llu, \"stop_ns\": %llu}, "
		"\"cpu_us\": {\"setup\": %llu, \"sampling\": %llu}}\n",
		(unsigned long long)st->samples, (unsigned long long)st->invalid,
		(unsigned long long)st->span_torn,
		(unsigned long long)st->late, (unsigned long long)st->ticks,
		(unsigned long long)st->errors, hm_sampler_cost_us(st, 50), hm_sampler_cost_us(st, 99),
		(double)st->cost_max_ns / 1000.0, hm_sampler_cost_mean_us(st),
		(unsigned long long)st->bpf_runs, (unsigned long long)st->bpf_run_ns,
		(unsigned long long)st->bpf_matched, (unsigned long long)st->bpf_dropped,
		(unsigned long long)st->bpf_no_python, (unsigned long long)st->bpf_aggregated,
		(unsigned long long)st->bpf_agg_full, (unsigned long long)st->bpf_agg_entries,
		(unsigned long long)st->bpf_new_stacks, st->bpf_cpu_from_kernel ? "true" : "false",
		(unsigned long long)st->bpf_native_joined,
		(unsigned long long)st->bpf_native_unjoined, (unsigned long long)st->bpf_native_lost,
		(unsigned long long)st->bpf_root_scans, (unsigned long long)st->bpf_roots_found,
		(unsigned long long)st->bpf_roots_at_frame, (unsigned long long)st->bpf_roots_in_kernel,
		(unsigned long long)st->bpf_root_scan_ns,
		(unsigned long long)st->native_unwinds, (unsigned long long)st->native_torn,
		(unsigned long long)st->native_failed, (unsigned long long)st->native_stop_ns,
		(unsigned long long)cpu_setup_us, (unsigned long long)cpu_run_us);
	if (hm_output_commit(&o) != HM_OK)
		cli_fail_lib();
}

static void label_profile(hm_profile *p, hm_target *t, const hm_python *py)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%d", (int)hm_target_pid(t));
	hm_profile_set_label(p, "process.pid", buf);
	size_t len = 0;
	char *cmd = hm_target_cmdline(t, &len);
	if (cmd && len) {
		const char *base = strrchr(cmd, '/');
		hm_profile_set_label(p, "process.executable.name", base ? base + 1 : cmd);
	}
	/* service.name as the agent names it when the process sets none */
	const char *sn = getenv("OTEL_SERVICE_NAME");
	if (sn && *sn) {
		hm_profile_set_label(p, "service.name", sn);
	} else {
		hm_proc_program_name(cmd ? cmd : "", cmd ? len : 0, buf, sizeof buf);
		hm_profile_set_label(p, "service.name", buf);
	}
	free(cmd);
	if (gethostname(buf, sizeof buf) == 0) {
		buf[sizeof buf - 1] = 0;
		hm_profile_set_label(p, "host.name", buf);
	}
	if (py)
		hm_profile_set_label(p, "process.runtime.version", hm_python_version(py));
	hm_profile_set_label(p, "process.runtime.name", "cpython");
}

int cmd_record(int argc, char **argv)
{
	struct record_args a;
	int r = parse_args(argc, argv, &a);
	if (r)
		return r == 1 ? 0 : r - 1;
	int fmt = pick_format(&a);
	if (!fmt)
		return 1;
	if (hm_filter_active(&a.filter)) {
		/* Check the patterns now rather than after a long recording. */
		hm_profile *empty = hm_profile_new(0), *out = NULL;
		int frc = empty ? hm_filter_apply(empty, &a.filter, &out) : HM_ENOMEM;
		hm_profile_free(empty);
		hm_profile_free(out);
		if (frc != HM_OK)
			return cli_fail_lib();
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	char defpath[64];
	const char *out = a.output;
	if (!out) {
		snprintf(defpath, sizeof defpath, "homura-%d.%s", (int)(a.pid ? a.pid : getpid()),
			 suffix_of(fmt));
		out = defpath;
	}
	if (check_writable(out) || (a.stats_json && check_writable(a.stats_json)))
		return 1;

	pid_t pid = a.pid, child = 0;
	hm_sampler *smp = NULL;
	static const hm_sampler_events rec_events = {.ebpf_skip = ebpf_skip};
	a.so.stop = &stop_flag;
	/* The sampler before the program: with --ebpf, the kernel's check of
	 * the BPF program (50-200 ms) would otherwise go by with a launched
	 * program running unsampled (a short one ended before its first
	 * sample). */
	if (hm_sampler_new(&a.so, &rec_events, &smp) != HM_OK)
		return cli_fail_lib();
	if (a.cmd) {
		child = pid = hm_launch(a.cmd, 0);
		if (pid < 0) {
			int err = errno;
			hm_sampler_free(smp);
			return cli_fail("cannot start '%s': %s", a.cmd[0], strerror(err));
		}
		hm_sampler_set_child(smp, child);
	}
	hm_target *t = NULL;
	hm_python *py = NULL;
	int rc = hm_target_open(pid, &t);
	int child_status = 0;
	if (rc == HM_OK) {
		if (child)
			rc = hm_sampler_wait_python(t, child, 10.0, &py, &stop_flag, &child_status);
		else
			rc = hm_python_attach(t, &py);
	}
	if (rc != HM_OK) {
		int status = cli_fail_lib();
		hm_launch_stop(child);
		hm_target_close(t);
		hm_sampler_free(smp);
		return status;
	}

	int timeline = fmt == HM_FMT_SPEEDSCOPE || fmt == HM_FMT_OTLP || fmt == HM_FMT_OTLP_JSON ||
		       fmt == HM_FMT_CHROMETRACE;
	hm_profile *p = hm_profile_new(timeline);
	if (!p) {
		int status = cli_fail("out of memory");
		hm_launch_stop(child);
		hm_python_detach(py);
		hm_target_close(t);
		hm_sampler_free(smp);
		return status;
	}
	label_profile(p, t, py);
	if (!a.title) {
		static char title[128];
		snprintf(title, sizeof title, "homura record: pid %d, Python %s", (int)pid,
			 hm_python_version(py));
		a.title = title;
	}
	fprintf(stderr, "homura: sampling process %d (Python %s) at %g Hz%s; Ctrl-C to stop\n", (int)pid,
		hm_python_version(py), a.so.rate_hz,
		a.so.native && a.so.ebpf ? ", native frames unwound from the kernel's copies of the stack"
		: a.so.native ? ", stopping each sampled thread while it is unwound"
		: a.so.blocking ? ", pausing it for each sample" : "");

	if (a.so.async) {
		/* Say now if this interpreter's tasks cannot be read. */
		hm_pyasync *probe = NULL;
		if (hm_pyasync_open(py, &probe) != HM_OK)
			fprintf(stderr, "homura: --async: %s; recording threads only\n", hm_errmsg());
		hm_pyasync_close(probe);
	}
	hm_profile_meta *meta = hm_profile_meta_get(p);
	meta->period_ns = (uint64_t)(1e9 / a.so.rate_hz);
	meta->time_kind = a.so.idle ? HM_TIME_WALL : HM_TIME_CPU;
	if (a.so.ebpf && hm_sampler_ebpf_why(smp))
		fprintf(stderr, "homura: %s; using the user-space sampler\n", hm_sampler_ebpf_why(smp));
	rc = hm_sampler_add(smp, t, py, p, NULL, NULL);   /* takes t and py */
	if (rc != HM_OK) {
		int status = cli_fail_lib();
		hm_sampler_free(smp);
		hm_launch_stop(child);
		hm_profile_free(p);
		return status;
	}
	hm_sampler_stats *st = hm_sampler_stats_of(smp);
	if (!st->child_reaped)
		st->child_status = child_status;
	meta->start_ns = hm_real_ns();
	uint64_t t0 = hm_mono_ns(), cpu0 = rusage_us();
	rc = hm_sampler_run(smp);
	uint64_t cpu_run = rusage_us() - cpu0;
	meta->duration_ns = hm_mono_ns() - t0;
	st = hm_sampler_stats_of(smp);   /* the native counters up to date */

	/* Stopped by duration or Ctrl-C: don't leave the launched program
	 * running behind us. */
	if (!st->target_exited)
		hm_launch_stop(child);
	if (hm_filter_active(&a.filter)) {
		hm_profile *filtered = NULL;
		if (hm_filter_apply(p, &a.filter, &filtered) == HM_OK) {
			hm_profile_free(p);
			p = filtered;
		}
	}
	if (a.group_span) {
		hm_profile *grouped = NULL;
		if (hm_profile_group_by_span(p, &grouped) == HM_OK) {
			hm_profile_free(p);
			p = grouped;
		}
	}
	int status = write_profile(p, fmt, out, a.title);
	uint64_t total = st->samples + st->invalid;
	int in_kernel = a.so.ebpf && !hm_sampler_ebpf_why(smp) && !ebpf_skipped;
	if (in_kernel)
		fprintf(stderr,
			"homura: %llu samples, %llu invalid (%.2f%%), sampled in the kernel: the BPF "
			"program ran %llu times on all CPUs (%llu in the target), %.2f us per run; "
			"%llu lost to a full ring buffer, %llu outside Python\n",
			(unsigned long long)st->samples, (unsigned long long)st->invalid,
			total ? 100.0 * (double)st->invalid / (double)total : 0.0,
			(unsigned long long)st->bpf_runs, (unsigned long long)st->bpf_matched,
			st->bpf_runs ? (double)st->bpf_run_ns / 1000.0 / (double)st->bpf_runs : 0.0,
			(unsigned long long)st->bpf_dropped, (unsigned long long)st->bpf_no_python);
	else
	fprintf(stderr,
		"homura: %llu samples, %llu invalid (%.2f%%), %llu late; one sample took %.1f us median, "
		"%.1f us p99, %.1f us max\n",
		(unsigned long long)st->samples, (unsigned long long)st->invalid,
		total ? 100.0 * (double)st->invalid / (double)total : 0.0, (unsigned long long)st->late,
		hm_sampler_cost_us(st, 50), hm_sampler_cost_us(st, 99), (double)st->cost_max_ns / 1000.0);
	if (in_kernel && total >= 100 && st->invalid * 10 > total)
		fprintf(stderr, "homura: --ebpf: %.0f%% of the samples are invalid: most often their "
				"code objects had died before they were read (up to a second after the "
				"sample); without --ebpf each code object is read as it is sampled\n",
			100.0 * (double)st->invalid / (double)total);
	if (in_kernel && !st->bpf_cpu_from_kernel)
		fprintf(stderr, "homura: --ebpf: each sample's CPU time is the period (this kernel's "
				"BTF does not say where a thread's runtime is kept)\n");
	if (a.so.native && in_kernel)
		fprintf(stderr,
			"homura: native: %llu stacks unwound from the kernel's copies of registers and "
			"stack, no thread stopped; %llu torn (Python frames only), %llu failed; "
			"%llu samples without their copy (Python frames only), %llu copies lost\n",
			(unsigned long long)st->native_unwinds, (unsigned long long)st->native_torn,
			(unsigned long long)st->native_failed, (unsigned long long)st->bpf_native_unjoined,
			(unsigned long long)st->bpf_native_lost);
	else if (a.so.native)
		fprintf(stderr,
			"homura: native: %llu stacks unwound, %llu torn (Python frames only), "
			"%llu failed; threads stopped %.1f us on average, %.1f us max\n",
			(unsigned long long)st->native_unwinds, (unsigned long long)st->native_torn,
			(unsigned long long)st->native_failed,
			st->native_unwinds ? (double)st->native_stop_ns / 1000.0 / (double)st->native_unwinds : 0.0,
			(double)st->native_stop_max_ns / 1000.0);
	if (a.so.native && st->native_no_eval)
		fprintf(stderr,
			"homura: native: %llu of %llu stacks had no recognisable frame of the "
			"interpreter's evaluation loop (_PyEval_EvalFrameDefault is not named in its "
			"binary, e.g. a stripped build, and no unnamed function is big enough to be "
			"it): their native frames could not be placed among their Python frames "
			"(torn ones have Python frames only)\n",
			(unsigned long long)st->native_no_eval, (unsigned long long)st->native_unwinds);
	if (!status)
		fprintf(stderr, "homura: wrote %s (%s)%s\n", out, hm_format_name(fmt),
			st->target_exited ? "; the target exited" : "");
	if (a.stats_json)
		write_stats_json(a.stats_json, st, cpu0, cpu_run);
	if (rc != HM_OK && !status)
		status = cli_fail_lib();
	hm_sampler_free(smp);   /* closes the target (and st with it) */
	hm_profile_free(p);
	return status;
}
