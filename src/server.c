/* server.c - `homura server`: options, the store, the HTTP front, signals.
 *
 * Everything else lives in the library (store.h, server.h); this file opens
 * the store in --data DIR (or a postgres:// URL), starts listening, runs store maintenance
 * (retention, downsampling, size cap) once a minute, and on SIGINT/SIGTERM
 * stops accepting, finishes in-flight requests and closes the store; a
 * second signal, or requests still running STOP_GRACE_S later, end the
 * process at once (the store is crash-safe). Tokens come from options,
 * files (kept out of /proc/PID/cmdline) or the environment; an empty one
 * is refused rather than taken as "no token". */
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "base/error.h"
#include "base/parse.h"
#include "server/server.h"
#include "store/store.h"

static volatile sig_atomic_t stop_requested;

#define STOP_GRACE_S 10
#define MAX_TOKEN 4096

static void on_signal(int sig)
{
	if (stop_requested) {
		static const char m[] = "homura server: second signal, exiting now\n";
		if (write(2, m, sizeof m - 1) < 0) {
		}
		_exit(1);
	}
	stop_requested = sig;
	alarm(STOP_GRACE_S);   /* in-flight requests get this long to finish */
}

static void on_alarm(int sig)
{
	static const char m[] = "homura server: requests still running, exiting now\n";
	if (write(2, m, sizeof m - 1) < 0) {
	}
	_exit(1);
}

/* A token from FILE: one line, its newline stripped, not empty. */
static char *read_token_file(const char *opt, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat sb;
	if (fd < 0) {
		cli_fail("%s %s: %s", opt, path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		cli_fail("%s %s: not a regular file", opt, path);
		return NULL;
	}
	char *buf = malloc(MAX_TOKEN + 2);
	size_t n = 0;
	ssize_t r;
	while (buf && n < MAX_TOKEN + 1 &&
	       (r = read(fd, buf + n, MAX_TOKEN + 1 - n)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			cli_fail("%s %s: %s", opt, path, strerror(errno));
			free(buf);
			close(fd);
			return NULL;
		}
		n += (size_t)r;
	}
	close(fd);
	if (!buf) {
		cli_fail("out of memory");
		return NULL;
	}
	if (n > MAX_TOKEN) {
		free(buf);
		cli_fail("%s %s: longer than %d bytes", opt, path, MAX_TOKEN);
		return NULL;
	}
	if (n && buf[n - 1] == '\n')
		n--;
	if (n && buf[n - 1] == '\r')
		n--;
	buf[n] = 0;
	const char *why = !n ? "is empty" : NULL;
	for (size_t i = 0; !why && i < n; i++)
		if ((unsigned char)buf[i] < 0x21 || buf[i] == 0x7f)
			why = "must hold the token alone on one line (no spaces or control characters)";
	if (why) {
		free(buf);
		cli_fail("%s %s %s", opt, path, why);
		return NULL;
	}
	return buf;
}

/* Raise the soft open-file limit towards what max_conns connections need. */
static void raise_nofile(unsigned max_conns)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)max_conns + 256;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int parse_count(const char *opt, const char *v, long lo, long hi, unsigned *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (end == v || *end || errno || n < lo || n > hi)
		return cli_fail("bad %s '%s' (%ld to %ld)", opt, v, lo, hi);
	*out = (unsigned)n;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: homura server --data DIR|postgres://URL [options]\n\n"
		"Store profiles (OTLP, Pyroscope /ingest and Push) and serve the query API.\n\n"
		"  -d, --data DIR           data directory (created; SQLite database inside)\n"
		"  -d, --data postgres://[user[:pw]@]host[:port]/db[?options]\n"
		"                           store in PostgreSQL instead (also postgresql://;\n"
		"                           a socket: postgresql:///db?host=/run/postgresql);\n"
		"                           several servers may share one database\n"
		"  -l, --listen HOST:PORT   listen address (default 127.0.0.1:4040;\n"
		"                           \":PORT\" listens on every interface)\n"
		"      --ingest-token T     require \"Authorization: Bearer T\" to ingest\n"
		"      --read-token T       require \"Authorization: Bearer T\" to query\n"
		"      --ingest-token-file FILE, --read-token-file FILE\n"
		"                           the token from FILE (one line), kept out of the\n"
		"                           process list; tokens also from HOMURA_INGEST_TOKEN /\n"
		"                           HOMURA_READ_TOKEN; an empty token is refused\n"
		"      --retention AGE      drop data older than AGE (default 7d; 0 keeps all)\n"
		"      --downsample-after AGE  merge 10 s buckets into 1 min past AGE (default 1d)\n"
		"      --max-size SIZE      keep the database under SIZE (e.g. 2G; default none)\n"
		"      --max-body SIZE      request body cap after decompression (default 64M)\n"
		"      --max-series N       refuse new series past N (default 100000)\n"
		"      --threads N          HTTP worker threads (default 4)\n"
		"      --max-connections N  open connections in all (default 1000)\n"
		"      --max-connections-per-ip N  open connections per client address\n"
		"                           (default 64; more are closed at once)\n"
		"      --idle-timeout AGE   close connections idle this long (default 30s)\n"
		"  -q, --quiet              no per-request error lines\n"
		"  -h, --help\n");
}

static int serve(const char *data, const hm_server_opts *so, const hm_store_opts *st_o)
{
	/* before the server answers: a client that sees /ready may stop us at
	 * once, and SIGTERM's default action would skip the clean shutdown */
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	hm_store *st;
	if (hm_store_open(data, st_o, &st) < 0)
		return cli_fail_lib();
	hm_server *srv;
	if (hm_server_start(st, so, &srv) < 0) {
		int rc = cli_fail_lib();
		hm_store_close(st);
		return rc;
	}
	fprintf(stderr, "homura server: listening on %s (port %u), data in %s\n", so->listen,
		hm_server_port(srv), data);
	/* the first maintenance runs right away, once the server is answering
	 * (a large downsampling backlog must not delay /ready) */
	time_t last = 0;
	while (!stop_requested) {
		time_t now = time(NULL);
		if (now - last >= 60) {
			last = now;
			if (hm_store_maintain(st, (int64_t)now) < 0)
				fprintf(stderr, "homura server: maintenance: %s\n", hm_errmsg());
		}
		sleep(1);
	}
	fprintf(stderr, "homura server: stopping\n");
	hm_server_stop(srv);
	hm_store_close(st);
	return 0;
}

int cmd_server(int argc, char **argv)
{
	static const struct option lo[] = {
		{"data", required_argument, NULL, 'd'},
		{"listen", required_argument, NULL, 'l'},
		{"ingest-token", required_argument, NULL, 'I'},
		{"read-token", required_argument, NULL, 'R'},
		{"retention", required_argument, NULL, 'r'},
		{"downsample-after", required_argument, NULL, 'D'},
		{"max-size", required_argument, NULL, 'S'},
		{"max-body", required_argument, NULL, 'B'},
		{"max-series", required_argument, NULL, 'N'},
		{"threads", required_argument, NULL, 'T'},
		{"ingest-token-file", required_argument, NULL, 'i'},
		{"read-token-file", required_argument, NULL, 'k'},
		{"max-connections", required_argument, NULL, 'C'},
		{"max-connections-per-ip", required_argument, NULL, 'P'},
		{"idle-timeout", required_argument, NULL, 'O'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *data = NULL;
	hm_server_opts so = {.listen = "127.0.0.1:4040"};
	hm_store_opts st_o = {.retention_s = 7 * 86400, .downsample_after_s = 86400};
	const char *ingest_file = NULL, *read_file = NULL;
	const char *ingest_opt = NULL, *read_opt = NULL;
	int c;
	int64_t v;
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:l:qh", lo, NULL)) != -1) {
		switch (c) {
		case 'd': data = optarg; break;
		case 'l': so.listen = optarg; break;
		case 'I': ingest_opt = optarg; break;
		case 'R': read_opt = optarg; break;
		case 'i': ingest_file = optarg; break;
		case 'k': read_file = optarg; break;
		case 'C':
			if (parse_count("--max-connections", optarg, 1, 100000, &so.max_conns))
				return 1;
			break;
		case 'P':
			if (parse_count("--max-connections-per-ip", optarg, 1, 100000,
					&so.max_conns_per_ip))
				return 1;
			break;
		case 'O':
			if (hm_parse_duration(optarg, &v) < 0)
				return cli_fail_lib();
			if (v < 1 || v > 86400)
				return cli_fail("--idle-timeout must be 1s to 1d");
			so.idle_timeout_s = (unsigned)v;
			break;
		case 'q': so.quiet = 1; break;
		case 'r':
			if (hm_parse_duration(optarg, &st_o.retention_s) < 0)
				return cli_fail_lib();
			break;
		case 'D':
			if (hm_parse_duration(optarg, &st_o.downsample_after_s) < 0)
				return cli_fail_lib();
			break;
		case 'S':
			if (hm_parse_size(optarg, &st_o.max_bytes) < 0)
				return cli_fail_lib();
			break;
		case 'B':
			if (hm_parse_size(optarg, &v) < 0)
				return cli_fail_lib();
			if (v < 1024)
				return cli_fail("--max-body must be at least 1K");
			so.max_body = (size_t)v;
			break;
		case 'N': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || n <= 0 || n > 100000000)
				return cli_fail("bad --max-series '%s'", optarg);
			st_o.max_series = (uint32_t)n;
			break;
		}
		case 'T': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || n <= 0 || n > 256)
				return cli_fail("bad --threads '%s'", optarg);
			so.threads = (unsigned)n;
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc)
		return cli_fail("unexpected argument '%s' (see homura server --help)", argv[optind]);
	if (!data)
		return cli_fail("--data DIR (or postgres://URL) is required (see homura server --help)");
	if (ingest_opt && ingest_file)
		return cli_fail("give --ingest-token or --ingest-token-file, not both");
	if (read_opt && read_file)
		return cli_fail("give --read-token or --read-token-file, not both");
	const char *env_ingest = getenv("HOMURA_INGEST_TOKEN");
	const char *env_read = getenv("HOMURA_READ_TOKEN");
	so.ingest_token = ingest_opt ? ingest_opt : env_ingest;
	so.read_token = read_opt ? read_opt : env_read;
	if (so.ingest_token && !*so.ingest_token && !ingest_file)
		return cli_fail("empty ingest token (%s); unset it for none",
				ingest_opt ? "--ingest-token" : "HOMURA_INGEST_TOKEN");
	if (so.read_token && !*so.read_token && !read_file)
		return cli_fail("empty read token (%s); unset it for none",
				read_opt ? "--read-token" : "HOMURA_READ_TOKEN");
	char *ingest_buf = NULL, *read_buf = NULL;
	if (ingest_file && !(ingest_buf = read_token_file("--ingest-token-file", ingest_file)))
		return 1;
	if (read_file && !(read_buf = read_token_file("--read-token-file", read_file))) {
		free(ingest_buf);
		return 1;
	}
	if (ingest_buf)
		so.ingest_token = ingest_buf;
	if (read_buf)
		so.read_token = read_buf;
	raise_nofile(so.max_conns ? so.max_conns : HM_SERVER_MAX_CONNS);
	int rc = serve(data, &so, &st_o);
	if (ingest_buf)
		memset(ingest_buf, 0, strlen(ingest_buf));
	if (read_buf)
		memset(read_buf, 0, strlen(read_buf));
	free(ingest_buf);
	free(read_buf);
	return rc;
}
