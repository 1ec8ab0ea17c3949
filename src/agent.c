/* agent.c - `homura agent`: continuous profiling of Python processes.
 *
 * Thin front end over lib/agent/agent.c (targets, sampling, windows) and
 * lib/agent/export*.c (exporters and their queues): parses flags and the optional
 * config file (key = value lines named after the long flags, read first so
 * that flags override), builds the exporters, runs the agent until SIGTERM or
 * SIGINT, then flushes the exporters for at most --flush-timeout seconds and
 * reports what it sent, dropped and spent. Log lines carry a UTC timestamp. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <time.h>

#include "cli.h"
#include "agent/agent.h"
#include "python/python.h"
#include "agent/export.h"
#include "base/base.h"
#include "base/error.h"
#include "base/log.h"
#include "base/fileio.h"
#include "format/encode.h"
#include "base/parse.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void log_line(int level, const char *msg)
{
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(stderr, "%s homura agent%s: %s\n", stamp,
		level == HM_LOG_WARN ? " warning" : level == HM_LOG_ERROR ? " error" : "", msg);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: homura agent [options] (-p PID ... | --name REGEX | --all) EXPORTER...\n\n"
		"Targets:\n"
		"  -p, --pid PID             profile this process (repeatable)\n"
		"      --name REGEX          CPython processes whose command line matches\n"
		"      --all                 every CPython process on the host\n"
		"      --scan-interval SECS  how often to look for new processes (default 2)\n"
		"Sampling:\n"
		"  -r, --rate HZ             samples per second per process (default 100)\n"
		"      --interval SECS       length of one profile window (default 10)\n"
		"      --idle                include threads not running on a CPU (wall time)\n"
		"      --nolineno            aggregate by function, not by line\n"
		"      --ebpf                walk the stacks in the kernel (one BPF program for\n"
		"                            every target; root); else the user-space sampler\n"
		"      --kernel              with --ebpf: kernel frames under the Python line of\n"
		"                            samples that ran in the kernel (/proc/kallsyms)\n"
		"      --no-trace            don't read OpenTelemetry spans (by default samples\n"
		"                            of programs using the OpenTelemetry SDK carry\n"
		"                            trace_id, span_id and span_name)\n"
		"      --max-depth N         frames kept per stack (default 4096)\n"
		"Labels:\n"
		"      --service NAME        service.name when the process sets none\n"
		"      --label KEY=VALUE     extra label on every profile (repeatable)\n"
		"Exporters (one or more):\n"
		"      --otlp URL            OTLP/HTTP (protobuf, gzip) to URL\n"
		"      --server URL          homura server (same OTLP endpoint)\n"
		"      --pyroscope URL       Pyroscope /ingest (pprof)\n"
		"      --dir PATH            files in PATH\n"
		"      --dir-format FMT      pprof (default), otlp, collapsed, speedscope\n"
		"      --dir-max-size SIZE   delete the oldest files beyond SIZE (e.g. 500M)\n"
		"Delivery:\n"
		"      --queue-max-bytes SIZE  memory queue bound per exporter (default 64M)\n"
		"      --spool DIR           keep the queues on disk too (survive kill -9 and\n"
		"                            restarts; take the overflow)\n"
		"      --spool-max-bytes SIZE  disk spool bound per exporter (default 256M)\n"
		"      --timeout SECS        one HTTP request (default 10)\n"
		"      --backoff-max SECS    longest wait between retries (default 30)\n"
		"      --max-attempts N      drop a profile refused (408/429/5xx) N times\n"
		"                            (default 10, 0 = never)\n"
		"      --max-age SECS        drop profiles queued longer than this (default: never)\n"
		"      --flush-timeout SECS  time to drain the queues at exit (default 10)\n"
		"      --header 'K: V'       extra HTTP header (repeatable)\n"
		"      --token TOKEN         Authorization: Bearer TOKEN\n"
		"Other:\n"
		"      --config FILE         'key = value' lines named after the long flags\n"
		"      --stats-interval SECS own CPU use log period (default 60, 0 = off)\n"
		"      --stats-json FILE     statistics as JSON at exit\n"
		"  -h, --help                this help\n");
}

#define MAX_LIST 64

struct agent_args {
	hm_agent_opts ao;
	hm_export_opts eo;
	pid_t pids[MAX_LIST];
	const char *labels[MAX_LIST];
	const char *otlp[MAX_LIST], *pyro[MAX_LIST];
	const char *headers[MAX_LIST + 2];
	int notlp, npyro, nheaders;
	const char *dir, *dir_format, *spool, *stats_json;
	double flush_timeout;
	char *token_header;
};

static int add_list(const char **list, int *n, const char *v, const char *what)
{
	if (*n >= MAX_LIST)
		return cli_fail("too many %s (at most %d)", what, MAX_LIST);
	list[(*n)++] = v;
	return 0;
}

/* "64M" -> bytes (hm_parse_size); -1 on error. */
static long long parse_size(const char *s)
{
	int64_t v;
	return hm_parse_size(s, &v) < 0 ? -1 : (long long)v;
}

static int parse_secs(const char *s, double *out, double min, const char *what)
{
	char *end;
	double v = strtod(s, &end);
	if (end != s && *end == 's')
		end++;
	if (end == s || *end || !(v >= min))
		return cli_fail("invalid %s '%s' (seconds)", what, s);
	*out = v;
	return 0;
}

enum {
	O_NAME = 256, O_ALL, O_SCAN, O_INTERVAL, O_IDLE, O_NOLINENO, O_EBPF, O_DEPTH, O_SERVICE, O_LABEL,
	O_OTLP, O_SERVER, O_PYRO, O_DIR, O_DIRFMT, O_DIRMAX, O_QMAX, O_SPOOL, O_SPOOLMAX,
	O_TIMEOUT, O_BACKOFF, O_MAXATT, O_MAXAGE, O_FLUSH, O_HEADER, O_TOKEN, O_CONFIG, O_STATSI, O_STATSJ,
	O_NOTRACE, O_KERNEL,
};

static const struct option long_opts[] = {
	{"pid", required_argument, 0, 'p'},
	{"name", required_argument, 0, O_NAME},
	{"all", no_argument, 0, O_ALL},
	{"scan-interval", required_argument, 0, O_SCAN},
	{"rate", required_argument, 0, 'r'},
	{"interval", required_argument, 0, O_INTERVAL},
	{"idle", no_argument, 0, O_IDLE},
	{"nolineno", no_argument, 0, O_NOLINENO},
	{"ebpf", no_argument, 0, O_EBPF},
	{"kernel", no_argument, 0, O_KERNEL},
	{"no-trace", no_argument, 0, O_NOTRACE},
	{"max-depth", required_argument, 0, O_DEPTH},
	{"service", required_argument, 0, O_SERVICE},
	{"label", required_argument, 0, O_LABEL},
	{"otlp", required_argument, 0, O_OTLP},
	{"server", required_argument, 0, O_SERVER},
	{"pyroscope", required_argument, 0, O_PYRO},
	{"dir", required_argument, 0, O_DIR},
	{"dir-format", required_argument, 0, O_DIRFMT},
	{"dir-max-size", required_argument, 0, O_DIRMAX},
	{"queue-max-bytes", required_argument, 0, O_QMAX},
	{"spool", required_argument, 0, O_SPOOL},
	{"spool-max-bytes", required_argument, 0, O_SPOOLMAX},
	{"timeout", required_argument, 0, O_TIMEOUT},
	{"backoff-max", required_argument, 0, O_BACKOFF},
	{"max-attempts", required_argument, 0, O_MAXATT},
	{"max-age", required_argument, 0, O_MAXAGE},
	{"flush-timeout", required_argument, 0, O_FLUSH},
	{"header", required_argument, 0, O_HEADER},
	{"token", required_argument, 0, O_TOKEN},
	{"config", required_argument, 0, O_CONFIG},
	{"stats-interval", required_argument, 0, O_STATSI},
	{"stats-json", required_argument, 0, O_STATSJ},
	{"help", no_argument, 0, 'h'},
	{0, 0, 0, 0},
};

/* One option (from the command line or the config file). 0 ok, 1 help,
 * 3 usage error (already reported). */
static int apply_opt(struct agent_args *a, int c, const char *v)
{
	char *end;
	long long sz;
	switch (c) {
	case 'p': {
		long pid = strtol(v, &end, 10);
		if (*end || pid <= 0 || pid > 0x3fffffff)
			return cli_fail("invalid PID '%s'", v) + 2;
		if (a->ao.npids >= MAX_LIST)
			return cli_fail("too many -p (at most %d)", MAX_LIST) + 2;
		a->pids[a->ao.npids++] = (pid_t)pid;
		return 0;
	}
	case O_NAME: a->ao.name_regex = v; return 0;
	case O_ALL: a->ao.all = !v || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes"); return 0;
	case O_SCAN: return parse_secs(v, &a->ao.scan_interval_s, 0.1, "--scan-interval") ? 3 : 0;
	case 'r':
		a->ao.rate_hz = strtod(v, &end);
		if (*end || !(a->ao.rate_hz >= 1) || a->ao.rate_hz > 10000)
			return cli_fail("invalid rate '%s' (samples per second, 1-10000)", v) + 2;
		a->eo.rate_hz = a->ao.rate_hz;
		return 0;
	case O_INTERVAL: return parse_secs(v, &a->ao.interval_s, 0.1, "--interval") ? 3 : 0;
	case O_IDLE: a->ao.idle = !v || strcmp(v, "false"); return 0;
	case O_NOLINENO: a->ao.nolineno = !v || strcmp(v, "false"); return 0;
	case O_EBPF: a->ao.ebpf = !v || strcmp(v, "false"); return 0;
	case O_KERNEL: a->ao.kernel = !v || strcmp(v, "false"); return 0;
	case O_NOTRACE: hm_python_trace_default(!(!v || strcmp(v, "false"))); return 0;
	case O_DEPTH:
		a->ao.max_depth = (int)strtol(v, &end, 10);
		if (*end || a->ao.max_depth < 1)
			return cli_fail("invalid --max-depth '%s'", v) + 2;
		return 0;
	case O_SERVICE: a->ao.service = v; return 0;
	case O_LABEL:
		if (!strchr(v, '=') || *v == '=')
			return cli_fail("invalid --label '%s' (want KEY=VALUE)", v) + 2;
		return add_list(a->labels, &a->ao.nlabels, v, "labels") ? 3 : 0;
	case O_OTLP:
	case O_SERVER: return add_list(a->otlp, &a->notlp, v, "OTLP exporters") ? 3 : 0;
	case O_PYRO: return add_list(a->pyro, &a->npyro, v, "Pyroscope exporters") ? 3 : 0;
	case O_DIR: a->dir = v; return 0;
	case O_DIRFMT: a->dir_format = v; return 0;
	case O_DIRMAX:
		if ((sz = parse_size(v)) < 0)
			return cli_fail("invalid --dir-max-size '%s' (bytes, K/M/G/T suffix)", v) + 2;
		a->eo.dir_max_bytes = (uint64_t)sz;
		return 0;
	case O_QMAX:
		if ((sz = parse_size(v)) < 0)
			return cli_fail("invalid --queue-max-bytes '%s' (bytes, K/M/G/T suffix)", v) + 2;
		a->eo.queue_max_bytes = (size_t)sz;
		return 0;
	case O_SPOOL: a->spool = v; return 0;
	case O_SPOOLMAX:
		if ((sz = parse_size(v)) < 0)
			return cli_fail("invalid --spool-max-bytes '%s' (bytes, K/M/G/T suffix)", v) + 2;
		a->eo.spool_max_bytes = (size_t)sz;
		return 0;
	case O_TIMEOUT: return parse_secs(v, &a->eo.timeout_s, 0.1, "--timeout") ? 3 : 0;
	case O_BACKOFF: return parse_secs(v, &a->eo.backoff_max_s, 0.1, "--backoff-max") ? 3 : 0;
	case O_MAXATT: {
		long n = strtol(v, &end, 10);
		if (end == v || *end || n < 0 || n > 1000000)
			return cli_fail("invalid --max-attempts '%s' (0-1000000)", v) + 2;
		a->eo.max_attempts = (unsigned)n;
		return 0;
	}
	case O_MAXAGE: return parse_secs(v, &a->eo.max_age_s, 0, "--max-age") ? 3 : 0;
	case O_FLUSH: return parse_secs(v, &a->flush_timeout, 0, "--flush-timeout") ? 3 : 0;
	case O_HEADER:
		if (!strchr(v, ':'))
			return cli_fail("invalid --header '%s' (want 'Name: value')", v) + 2;
		return add_list(a->headers, &a->nheaders, v, "headers") ? 3 : 0;
	case O_TOKEN:
		free(a->token_header);
		if (asprintf(&a->token_header, "Authorization: Bearer %s", v) < 0)
			a->token_header = NULL;
		return 0;
	case O_STATSI: return parse_secs(v, &a->ao.stats_interval_s, 0, "--stats-interval") ? 3 : 0;
	case O_STATSJ: a->stats_json = v; return 0;
	case O_CONFIG: return 0;   /* read before the flags */
	case 'h': usage(stdout); return 1;
	default: usage(stderr); return 3;
	}
}

/* Config file: "key = value" per line, '#' comments, keys are long flag
 * names. The strings are kept for the life of the process (*keep). */
static int read_config(struct agent_args *a, const char *path, char **keep)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return cli_fail("cannot read config %s: %s", path, strerror(errno)) + 2;
	size_t cap = 0, len = 0;
	char *all = NULL;
	char line[4096];
	while (fgets(line, sizeof line, f)) {
		size_t l = strlen(line);
		if (len + l + 1 > cap) {
			cap = (len + l + 1) * 2;
			char *n = realloc(all, cap);
			if (!n) {
				free(all);
				fclose(f);
				return cli_fail("out of memory") + 2;
			}
			all = n;
		}
		memcpy(all + len, line, l + 1);
		len += l;
	}
	fclose(f);
	*keep = all;
	int lineno = 0;
	for (char *s = all, *next; s && *s; s = next) {
		next = strchr(s, '\n');
		if (next)
			*next++ = 0;
		lineno++;
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s || *s == '#' || *s == ';')
			continue;
		char *eq = strchr(s, '=');
		char *key = s, *val = NULL;
		if (eq) {
			*eq = 0;
			val = eq + 1;
			while (*val == ' ' || *val == '\t')
				val++;
			char *e = val + strlen(val);
			while (e > val && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
				*--e = 0;
			if (*val == '"' && e > val + 1 && e[-1] == '"') {
				val++;
				e[-1] = 0;
			}
		}
		char *e = key + strlen(key);
		while (e > key && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
			*--e = 0;
		const struct option *o = long_opts;
		while (o->name && strcmp(o->name, key))
			o++;
		if (!o->name || o->val == 'h' || o->val == O_CONFIG)
			return cli_fail("%s:%d: unknown setting '%s'", path, lineno, key) + 2;
		if (o->has_arg == required_argument && (!val || !*val))
			return cli_fail("%s:%d: '%s' needs a value", path, lineno, key) + 2;
		if (o->has_arg == no_argument && val && strcmp(val, "true") && strcmp(val, "1") &&
		    strcmp(val, "yes")) {
			if (!strcmp(val, "false") || !strcmp(val, "0") || !strcmp(val, "no"))
				continue;
			return cli_fail("%s:%d: '%s' is true or false", path, lineno, key) + 2;
		}
		int r = apply_opt(a, o->val, o->has_arg == no_argument ? NULL : val);
		if (r)
			return r;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct agent_args *a, char **cfg_keep)
{
	memset(a, 0, sizeof *a);
	hm_agent_opts_init(&a->ao);
	hm_export_opts_init(&a->eo);
	a->flush_timeout = 10;
	/* The config file first, so that flags override it. */
	for (int i = 1; i < argc; i++) {
		const char *cfg = NULL;
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			cfg = argv[i + 1];
		else if (!strncmp(argv[i], "--config=", 9))
			cfg = argv[i] + 9;
		if (cfg) {
			int r = read_config(a, cfg, cfg_keep);
			if (r)
				return r;
			break;
		}
	}
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:r:h", long_opts, NULL)) != -1) {
		int r = apply_opt(a, c, optarg);
		if (r)
			return r;
	}
	if (optind < argc)
		return cli_fail("unexpected argument '%s'", argv[optind]) + 2;
	if (!a->ao.npids && !a->ao.name_regex && !a->ao.all) {
		usage(stderr);
		return cli_fail("no targets: give -p PID, --name REGEX or --all") + 2;
	}
	if (!a->notlp && !a->npyro && !a->dir)
		return cli_fail("no exporter: give --otlp, --server, --pyroscope or --dir") + 2;
	a->ao.pids = a->pids;
	a->ao.labels = a->labels;
	if (a->token_header)
		a->headers[a->nheaders++] = a->token_header;
	a->headers[a->nheaders] = NULL;
	a->eo.headers = a->headers;
	return 0;
}

/* A per-exporter spool directory: DIR/<url with odd characters as '_'>. */
static char *spool_for(const char *base, const char *url)
{
	if (!base)
		return NULL;
	char name[256];
	snprintf(name, sizeof name, "%s", url);
	for (char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		      *c == '.' || *c == '-'))
			*c = '_';
	char *out = NULL;
	if (asprintf(&out, "%s/%s", base, name) < 0)
		return NULL;
	return out;
}

static void write_stats_json(const char *path, const hm_agent_stats *st, hm_exporter **exp,
			     int nexp)
{
	hm_outfile o;
	if (hm_output_open(&o, path, 0666) != HM_OK) {
		cli_fail_lib();
		return;
	}
	FILE *f = o.f;
	fprintf(f,
		"{\"wall_s\": %.3f, \"cpu_s\": %.3f, \"cpu_pct\": %.4f, \"max_rss_kb\": %ld, "
		"\"ticks\": %llu, \"samples\": %llu, \"invalid\": %llu, \"span_torn\": %llu, "
		"\"errors\": %llu, "
		"\"late\": %llu, \"profiles\": %llu, \"empty_windows\": %llu, \"attached\": %llu, "
		"\"detached\": %llu, \"targets\": %d, \"exporters\": [",
		st->wall_s, st->cpu_s, st->wall_s > 0 ? 100.0 * st->cpu_s / st->wall_s : 0.0,
		st->max_rss_kb, (unsigned long long)st->ticks, (unsigned long long)st->samples,
		(unsigned long long)st->invalid, (unsigned long long)st->span_torn,
		(unsigned long long)st->errors,
		(unsigned long long)st->late, (unsigned long long)st->windows,
		(unsigned long long)st->empty_windows, (unsigned long long)st->attached,
		(unsigned long long)st->detached, st->targets);
	for (int i = 0; i < nexp; i++) {
		hm_export_stats es;
		hm_exporter_stats(exp[i], &es);
		fprintf(f,
			"%s{\"name\": \"%s\", \"submitted\": %llu, \"sent\": %llu, \"sent_bytes\": %llu, "
			"\"failed_attempts\": %llu, \"rejected\": %llu, \"expired\": %llu, "
			"\"dropped_full\": %llu, "
			"\"dropped_full_bytes\": %llu, \"dropped_exit\": %llu, \"queued\": %llu, "
			"\"files_deleted\": %llu}",
			i ? ", " : "", hm_exporter_name(exp[i]), (unsigned long long)es.submitted,
			(unsigned long long)es.sent, (unsigned long long)es.sent_bytes,
			(unsigned long long)es.failed_attempts, (unsigned long long)es.rejected,
			(unsigned long long)es.expired, (unsigned long long)es.dropped_full, (unsigned long long)es.dropped_full_bytes,
			(unsigned long long)es.dropped_exit, (unsigned long long)es.queued,
			(unsigned long long)es.files_deleted);
	}
	fprintf(f, "]}\n");
	if (hm_output_commit(&o) != HM_OK)
		cli_fail_lib();
}

int cmd_agent(int argc, char **argv)
{
	struct agent_args a;
	char *cfg_keep = NULL;
	int r = parse_args(argc, argv, &a, &cfg_keep);
	if (r) {
		free(cfg_keep);
		free(a.token_header);
		return r == 1 ? 0 : 1;
	}
	hm_log_set(log_line);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);

	int status = 0;
	hm_exporter *exp[2 * MAX_LIST + 1];
	int nexp = 0;
	hm_agent *agent = NULL;
	a.ao.stop = &stop_flag;
	if (a.dir_format) {
		a.eo.dir_format = hm_format_parse(a.dir_format);
		if (a.eo.dir_format != HM_FMT_PPROF && a.eo.dir_format != HM_FMT_OTLP &&
		    a.eo.dir_format != HM_FMT_COLLAPSED && a.eo.dir_format != HM_FMT_SPEEDSCOPE &&
		    a.eo.dir_format != HM_FMT_OTLP_JSON) {
			status = cli_fail("unknown --dir-format '%s' (pprof, otlp, collapsed, speedscope)",
					  a.dir_format);
			goto out;
		}
	}
	for (int i = 0; i < a.notlp + a.npyro; i++) {
		int is_otlp = i < a.notlp;
		const char *url = is_otlp ? a.otlp[i] : a.pyro[i - a.notlp];
		hm_export_opts eo = a.eo;
		char *sp = spool_for(a.spool, url);
		eo.spool_dir = sp;
		int rc = is_otlp ? hm_exporter_otlp(url, &eo, &exp[nexp])
				 : hm_exporter_pyroscope(url, &eo, &exp[nexp]);
		free(sp);
		if (rc != HM_OK) {
			status = cli_fail_lib();
			goto out;
		}
		nexp++;
	}
	if (a.dir) {
		if (hm_exporter_dir(a.dir, &a.eo, &exp[nexp]) != HM_OK) {
			status = cli_fail_lib();
			goto out;
		}
		nexp++;
	}
	if (hm_agent_new(&a.ao, &agent) != HM_OK) {
		status = cli_fail_lib();
		goto out;
	}
	for (int i = 0; i < nexp; i++)
		hm_agent_add_exporter(agent, exp[i]);
	hm_log(HM_LOG_INFO, "sampling at %g Hz, a profile every %g s, to %d exporter%s", a.ao.rate_hz,
	       a.ao.interval_s, nexp, nexp == 1 ? "" : "s");
	hm_agent_run(agent);
	hm_log(HM_LOG_INFO, "stopping: flushing queues (at most %g s)", a.flush_timeout);

	/* All exporters drain at once; then each is waited for in turn, the
	 * later ones with what is left of the budget. */
	for (int i = 0; i < nexp; i++)
		hm_exporter_drain(exp[i]);
	uint64_t t0 = hm_mono_ns();
	for (int i = 0; i < nexp; i++) {
		double spent = (double)(hm_mono_ns() - t0) / 1e9;
		double left = a.flush_timeout - spent;
		hm_exporter_flush(exp[i], left > 0 ? left : 0);
	}
	hm_agent_stats st;
	hm_agent_stats_get(agent, &st);
	hm_log(HM_LOG_INFO,
	       "done: %llu samples, %llu profiles from %llu processes; cpu %.2f s in %.1f s "
	       "(%.2f%% of a core), max rss %ld KiB",
	       (unsigned long long)st.samples, (unsigned long long)st.windows,
	       (unsigned long long)st.attached, st.cpu_s, st.wall_s,
	       st.wall_s > 0 ? 100.0 * st.cpu_s / st.wall_s : 0.0, st.max_rss_kb);
	for (int i = 0; i < nexp; i++) {
		hm_export_stats es;
		hm_exporter_stats(exp[i], &es);
		hm_log(HM_LOG_INFO,
		       "%s: sent %llu profiles (%llu bytes); dropped %llu (queue full), %llu "
		       "(rejected), %llu (refused too often or too old), %llu (at exit); %llu "
		       "still spooled",
		       hm_exporter_name(exp[i]), (unsigned long long)es.sent,
		       (unsigned long long)es.sent_bytes, (unsigned long long)es.dropped_full,
		       (unsigned long long)es.rejected, (unsigned long long)es.expired,
		       (unsigned long long)es.dropped_exit,
		       (unsigned long long)es.queued);
	}
	if (a.stats_json)
		write_stats_json(a.stats_json, &st, exp, nexp);
out:
	hm_agent_free(agent);
	for (int i = 0; i < nexp; i++)
		hm_exporter_free(exp[i]);
	curl_global_cleanup();
	free(cfg_keep);
	free(a.token_header);
	return status;
}
