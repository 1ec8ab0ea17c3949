/* memdrive.c - test driver for the memory half of `homura run`
 * (analyze/memory.h + preload/): runs a command under the allocation
 * sampler, drains the ring every 20 ms, and prints the results as JSON on
 * stdout (the command's own stdout/stderr pass through to stderr).
 *
 *   memdrive [--all] [--sample-bytes N] [--preload PATH] [--pprof KIND:FILE]
 *            -- command args...
 *
 * Output: {"status": wait status decoded as {"exit": n} or {"signal": n},
 * "available", "why_not", "samples", "lines": [...], "functions": [...],
 * "timeline": n points, "max_rss", "leaks": [...]}. Used by
 * tests/integration/test_memory.py and bench/bench_memory.py. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "analyze/memory.h"
#include "base/base.h"
#include "base/error.h"
#include "format/encode.h"

extern char **environ;

static json_t *line_json(const hm_memline *m)
{
	json_t *o = json_object();
	json_object_set_new(o, "file", json_string(m->file ? m->file : ""));
	json_object_set_new(o, "func", json_string(m->func ? m->func : ""));
	json_object_set_new(o, "line", json_integer(m->line));
	json_object_set_new(o, "alloc_bytes", json_real(m->alloc_bytes));
	json_object_set_new(o, "alloc_count", json_real(m->alloc_count));
	json_object_set_new(o, "python_bytes", json_real(m->python_bytes));
	json_object_set_new(o, "peak_live_bytes", json_real(m->peak_live_bytes));
	json_object_set_new(o, "live_end_bytes", json_real(m->live_end_bytes));
	json_object_set_new(o, "copy_bytes", json_real(m->copy_bytes));
	json_object_set_new(o, "leak_likelihood", json_real(m->leak_likelihood));
	json_object_set_new(o, "leak_bytes_per_s", json_real(m->leak_bytes_per_s));
	return o;
}

int main(int argc, char **argv)
{
	hm_memopts o = {0};
	const char *pprof = NULL;
	int i = 1;
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else if (!strcmp(argv[i], "--all")) {
			o.profile_all = 1;
		} else if (!strcmp(argv[i], "--sample-bytes") && i + 1 < argc) {
			o.sample_bytes = atof(argv[++i]);
		} else if (!strcmp(argv[i], "--preload") && i + 1 < argc) {
			o.preload = argv[++i];
		} else if (!strcmp(argv[i], "--pprof") && i + 1 < argc) {
			pprof = argv[++i];
		} else {
			fprintf(stderr, "memdrive: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (i >= argc) {
		fprintf(stderr, "memdrive: no command\n");
		return 2;
	}
	hm_memsession *s;
	if (hm_memsession_new(&o, &s) != HM_OK) {
		fprintf(stderr, "memdrive: %s\n", hm_errmsg());
		return 1;
	}
	/* environment: ours first, then the caller's minus what we replace */
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 8, sizeof *env);
	size_t k = 0;
	char *const *add = hm_memsession_env(s);
	for (size_t a = 0; add[a]; a++)
		env[k++] = add[a];
	for (size_t e = 0; e < n; e++) {
		int dup = 0;
		for (size_t a = 0; add[a] && !dup; a++) {
			size_t l = strcspn(add[a], "=") + 1;
			dup = !strncmp(environ[e], add[a], l);
		}
		if (!dup)
			env[k++] = environ[e];
	}
	double t0 = hm_mono_s();
	pid_t pid = fork();
	if (pid == 0) {
		dup2(2, 1);
		execvpe(argv[i], argv + i, env);
		fprintf(stderr, "memdrive: cannot run %s: %s\n", argv[i], strerror(errno));
		_exit(127);
	}
	hm_memsession_set_pid(s, pid);
	int status = 0;
	for (;;) {
		if (hm_memsession_poll(s) < 0)
			fprintf(stderr, "memdrive: %s\n", hm_errmsg());
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	hm_memsession_poll(s);
	hm_memsession_finish(s, hm_mono_s() - t0);

	json_t *out = json_object();
	json_t *st = json_object();
	if (WIFEXITED(status))
		json_object_set_new(st, "exit", json_integer(WEXITSTATUS(status)));
	else
		json_object_set_new(st, "signal", json_integer(WTERMSIG(status)));
	json_object_set_new(out, "status", st);
	const char *why = NULL;
	json_object_set_new(out, "available", json_boolean(hm_memsession_available(s, &why)));
	json_object_set_new(out, "why_not", why ? json_string(why) : json_null());
	json_object_set_new(out, "samples", json_integer((json_int_t)hm_memsession_samples(s)));
	json_object_set_new(out, "dropped", json_integer((json_int_t)hm_memsession_dropped(s)));
	const hm_memline *lines;
	size_t nl = hm_memsession_lines(s, &lines);
	json_t *jl = json_array(), *leaks = json_array();
	for (size_t j = 0; j < nl; j++) {
		json_array_append_new(jl, line_json(&lines[j]));
		if (lines[j].leak_likelihood >= 0)
			json_array_append_new(leaks, line_json(&lines[j]));
	}
	json_object_set_new(out, "lines", jl);
	json_object_set_new(out, "leaks", leaks);
	nl = hm_memsession_functions(s, &lines);
	jl = json_array();
	for (size_t j = 0; j < nl; j++)
		json_array_append_new(jl, line_json(&lines[j]));
	json_object_set_new(out, "functions", jl);
	const hm_mempoint *pts;
	size_t np = hm_memsession_timeline(s, &pts);
	double max_rss = -1, max_live = 0;
	for (size_t j = 0; j < np; j++) {
		if (pts[j].footprint_bytes > max_rss)
			max_rss = pts[j].footprint_bytes;
		if (pts[j].live_bytes > max_live)
			max_live = pts[j].live_bytes;
	}
	json_object_set_new(out, "timeline", json_integer((json_int_t)np));
	json_object_set_new(out, "max_rss", json_real(max_rss));
	json_object_set_new(out, "max_live", json_real(max_live));
	if (pprof) {
		char kind[32];
		const char *colon = strchr(pprof, ':');
		size_t kl = colon ? (size_t)(colon - pprof) : 0;
		if (!colon || kl >= sizeof kind) {
			fprintf(stderr, "memdrive: --pprof KIND:FILE\n");
			return 2;
		}
		memcpy(kind, pprof, kl);
		kind[kl] = 0;
		hm_profile *p = hm_profile_new(0);
		FILE *f = fopen(colon + 1, "wb");
		if (!f || hm_memsession_profile(s, kind, p) != HM_OK ||
		    hm_profile_write(p, HM_FMT_PPROF, f, NULL) != HM_OK) {
			fprintf(stderr, "memdrive: pprof: %s\n", hm_errmsg());
			return 1;
		}
		fclose(f);
		hm_profile_free(p);
	}
	char *text = json_dumps(out, JSON_INDENT(1));
	puts(text);
	free(text);
	json_decref(out);
	hm_memsession_free(s);
	free(env);
	return 0;
}
