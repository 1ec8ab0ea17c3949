/* dump.c - `homura dump`: print every thread's current Python stack once.
 *
 * Attaches to the process, takes one sample of all threads (idle ones too)
 * with their scheduler state and the GIL holder, names the threads, and
 * prints each stack leaf first, optionally with every frame's local
 * variables as short reprs read straight from the target's memory. The
 * target is never stopped and no code runs in it, so this works on a
 * process that is deadlocked, stuck in a C call or spinning. A sample with a
 * torn thread (its stack changed while read) is taken again a few times. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "homura/error.h"
#include "homura/pyobj.h"
#include "homura/python.h"
#include "homura/target.h"

#define SAMPLE_TRIES 20

struct dump_args {
	pid_t pid;
	int locals;
	int json;
	int native;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: homura dump -p PID [options]\n"
		"Print the current Python stack of every thread of a running process.\n\n"
		"  -p, --pid PID     process to inspect\n"
		"  -l, --locals      also print each frame's local variables\n"
		"  -j, --json        print JSON instead of text\n"
		"  -n, --native      include native frames (not available yet)\n"
		"  -h, --help        this help\n");
}

static int parse_args(int argc, char **argv, struct dump_args *a)
{
	static const struct option opts[] = {
		{"pid", required_argument, 0, 'p'},
		{"locals", no_argument, 0, 'l'},
		{"json", no_argument, 0, 'j'},
		{"native", no_argument, 0, 'n'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:ljnh", opts, NULL)) != -1) {
		switch (c) {
		case 'p': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v <= 0 || v > 0x7fffffff) {
				cli_fail("invalid pid '%s'", optarg);
				return 1;
			}
			a->pid = (pid_t)v;
			break;
		}
		case 'l': a->locals = 1; break;
		case 'j': a->json = 1; break;
		case 'n': a->native = 1; break;
		case 'h': usage(stdout); return -1;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		cli_fail("unexpected argument '%s' (see homura dump --help)", argv[optind]);
		return 1;
	}
	if (!a->pid) {
		cli_fail("dump needs -p PID (see homura dump --help)");
		return 1;
	}
	return 0;
}

/* One sample of every thread, retried while some thread reads torn. */
static int sample_all(hm_python *py, hm_pysample *s)
{
	int rc = HM_EIO;
	for (int i = 0; i < SAMPLE_TRIES; i++) {
		rc = hm_python_sample(py, s, HM_SAMPLE_STATE | HM_SAMPLE_WANT_GIL);
		if (rc == HM_OK && !s->ninvalid)
			return HM_OK;
		usleep(2000);
	}
	return rc;   /* HM_OK with some threads invalid, or the error */
}

static const char *state_word(const hm_pythread *th)
{
	return th->state == 'R' ? "running" : "idle";
}

/* ---- text -------------------------------------------------------------- */

static int print_local(void *ctx, const char *name, uint64_t value, int is_cell)
{
	const hm_pyobj_reader *r = ctx;
	char repr[256];
	hm_pyobj_repr(r, value, repr, sizeof repr);
	printf("        %s = %s\n", name, repr);
	return 0;
}

static void print_text(const hm_pysample *s, const hm_pyobj_reader *r, const struct dump_args *a,
		       const char *version)
{
	printf("Process %d: Python %s, %d thread%s\n", (int)a->pid, version, s->nthreads,
	       s->nthreads == 1 ? "" : "s");
	for (int i = 0; i < s->nthreads; i++) {
		const hm_pythread *th = &s->threads[i];
		printf("\nThread %d (%s): %s%s%s\n", (int)th->tid, th->name ? th->name : "?",
		       state_word(th), th->holds_gil ? ", holds GIL" : "",
		       th->valid ? "" : " (stack unreadable: it changed while being read)");
		if (th->valid && !th->nframes)
			printf("    (no Python frames)\n");
		for (int k = 0; k < th->nframes; k++) {
			const hm_pyframe *f = &th->frames[k];
			printf("    %s (%s:%d)\n", f->code->qualname, f->code->filename, (int)f->line);
			if (a->locals && r)
				hm_pyobj_locals(r, f, print_local, (void *)r);
		}
		if (th->truncated)
			printf("    ... (deeper frames cut)\n");
	}
}

/* ---- JSON -------------------------------------------------------------- */

struct json_locals {
	const hm_pyobj_reader *r;
	json_t *obj;
};

static int json_local(void *ctx, const char *name, uint64_t value, int is_cell)
{
	struct json_locals *jl = ctx;
	char repr[256];
	hm_pyobj_repr(jl->r, value, repr, sizeof repr);
	json_object_set_new(jl->obj, name, json_string(repr));
	return 0;
}

static int print_json(const hm_pysample *s, const hm_pyobj_reader *r, const struct dump_args *a,
		      const char *version)
{
	json_t *root = json_object(), *threads = json_array();
	json_object_set_new(root, "pid", json_integer(a->pid));
	json_object_set_new(root, "python", json_string(version));
	for (int i = 0; i < s->nthreads; i++) {
		const hm_pythread *th = &s->threads[i];
		json_t *t = json_object(), *frames = json_array();
		json_object_set_new(t, "tid", json_integer(th->tid));
		json_object_set_new(t, "name", th->name ? json_string(th->name) : json_null());
		json_object_set_new(t, "state", json_string(state_word(th)));
		json_object_set_new(t, "gil", json_boolean(th->holds_gil));
		json_object_set_new(t, "valid", json_boolean(th->valid));
		for (int k = 0; k < th->nframes; k++) {
			const hm_pyframe *f = &th->frames[k];
			json_t *fr = json_object();
			json_object_set_new(fr, "name", json_string(f->code->qualname));
			json_object_set_new(fr, "file", json_string(f->code->filename));
			json_object_set_new(fr, "line", json_integer(f->line));
			if (a->locals && r) {
				struct json_locals jl = {r, json_object()};
				hm_pyobj_locals(r, f, json_local, &jl);
				json_object_set_new(fr, "locals", jl.obj);
			}
			json_array_append_new(frames, fr);
		}
		json_object_set_new(t, "frames", frames);
		json_array_append_new(threads, t);
	}
	json_object_set_new(root, "threads", threads);
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	json_decref(root);
	if (!text)
		return cli_fail("out of memory");
	puts(text);
	free(text);
	return 0;
}

int cmd_dump(int argc, char **argv)
{
	struct dump_args a;
	memset(&a, 0, sizeof a);
	int prc = parse_args(argc, argv, &a);
	if (prc)
		return prc < 0 ? 0 : prc;
	if (a.native)
		return cli_fail("dump --native is not available yet");

	hm_target *t = NULL;
	if (hm_target_open(a.pid, &t) != HM_OK)
		return cli_fail_lib();
	hm_python *py = NULL;
	if (hm_python_attach(t, &py) != HM_OK) {
		hm_target_close(t);
		return cli_fail_lib();
	}
	int status = 0;
	hm_pysample s;
	memset(&s, 0, sizeof s);
	if (!hm_python_ready(py)) {
		status = cli_fail("process %d has not started running Python code yet", (int)a.pid);
		goto out;
	}
	if (sample_all(py, &s) != HM_OK) {
		status = cli_fail_lib();
		goto out;
	}
	hm_python_thread_names(py, &s);
	hm_pyobj_reader reader, *r = NULL;
	if (a.locals && hm_pyobj_reader_init(&reader, py) == HM_OK)
		r = &reader;
	if (a.json)
		status = print_json(&s, r, &a, hm_python_version(py));
	else
		print_text(&s, r, &a, hm_python_version(py));
	fflush(stdout);
out:
	hm_pysample_free(&s);
	hm_python_detach(py);
	hm_target_close(t);
	return status;
}
