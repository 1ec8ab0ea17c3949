/* server.c - `homura server`: options, the store, the HTTP front, signals.
 *
 * Everything else lives in the library (store.h, server.h); this file opens
 * the store in --data DIR (or a postgres:// URL), starts listening, runs store maintenance
 * (retention, downsampling, size cap) once a minute, and on SIGINT/SIGTERM
 * stops accepting, finishes in-flight requests and closes the store. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "homura/error.h"
#include "homura/server.h"
#include "homura/store.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	stop_requested = sig;
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
		"                           (tokens also from HOMURA_INGEST_TOKEN/HOMURA_READ_TOKEN)\n"
		"      --retention AGE      drop data older than AGE (default 7d; 0 keeps all)\n"
		"      --downsample-after AGE  merge 10 s buckets into 1 min past AGE (default 1d)\n"
		"      --max-size SIZE      keep the database under SIZE (e.g. 2G; default none)\n"
		"      --max-body SIZE      request body cap after decompression (default 64M)\n"
		"      --max-series N       refuse new series past N (default 100000)\n"
		"      --threads N          HTTP worker threads (default 4)\n"
		"  -q, --quiet              no per-request error lines\n"
		"  -h, --help\n");
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
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *data = NULL;
	hm_server_opts so = {.listen = "127.0.0.1:4040"};
	hm_store_opts st_o = {.retention_s = 7 * 86400, .downsample_after_s = 86400};
	so.ingest_token = getenv("HOMURA_INGEST_TOKEN");
	so.read_token = getenv("HOMURA_READ_TOKEN");
	int c;
	int64_t v;
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:l:qh", lo, NULL)) != -1) {
		switch (c) {
		case 'd': data = optarg; break;
		case 'l': so.listen = optarg; break;
		case 'I': so.ingest_token = optarg; break;
		case 'R': so.read_token = optarg; break;
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
	hm_store *st;
	if (hm_store_open(data, &st_o, &st) < 0)
		return cli_fail_lib();
	hm_server *srv;
	if (hm_server_start(st, &so, &srv) < 0) {
		int rc = cli_fail_lib();
		hm_store_close(st);
		return rc;
	}
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	fprintf(stderr, "homura server: listening on %s (port %u), data in %s\n", so.listen,
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
