/* dump.c - `homura dump`: print every thread's current Python stack once.
 *
 * Attaches to the process, takes one sample of all threads (idle ones too)
 * with their scheduler state and the GIL holder, names the threads, and
 * prints each stack leaf first, optionally with every frame's local
 * variables as short reprs read straight from the target's memory. The
 * target is never stopped and no code runs in it, so this works on a
 * process that is deadlocked, stuck in a C call or spinning. A sample with a
 * torn thread (its stack changed while read) is taken again a few times.
 *
 * --native adds the native frames: one hm_native_sample stops each thread
 * with Python frames (ptrace), re-reads its Python stack and unwinds it, and
 * hm_native_merge puts both together; threads without Python frames are
 * unwound alone afterwards (hm_native_unwind). Scheduler states come from the
 * plain sample taken before, since stopped threads all read as stopped. Each
 * stack is first copied into a dump_stack (native symbols are only valid
 * until the next unwind), then printed.
 *
 * --async reads the asyncio tasks (hm_pyasync_tasks) after the threads and
 * prints each task's await chain, innermost coroutine first. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "base/error.h"
#include "native/native.h"
#include "proc/target.h"
#include "python/pyasync.h"
#include "python/pyobj.h"
#include "python/python.h"

#define SAMPLE_TRIES 20
#define NATIVE_TRIES 5

struct dump_args {
	pid_t pid;
	int locals;
	int json;
	int native;
	int async;
};

/* One printed frame: a Python frame of the sample, or a copied native one. */
struct dump_frame {
	const hm_pyframe *py;
	char *name, *file, *module;   /* native frames (owned) */
	int32_t line;
};

enum { NAT_NONE = 0, NAT_MERGED, NAT_ALONE, NAT_FAILED, NAT_TORN };

struct dump_stack {
	int n;
	struct dump_frame *f;
	int native;                   /* NAT_* */
	char state;                   /* scheduler state before any stop */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: homura dump -p PID [options]\n"
		"Print the current Python stack of every thread of a running process.\n\n"
		"  -p, --pid PID     process to inspect\n"
		"  -l, --locals      also print each frame's local variables\n"
		"  -j, --json        print JSON instead of text\n"
		"  -n, --native      include native (C/C++/Cython) frames, merged into the\n"
		"                    Python stack; this stops each thread briefly (ptrace)\n"
		"                    while its native stack is unwound (without -n the\n"
		"                    target is never stopped)\n"
		"      --async       also print every asyncio task and the chain of\n"
		"                    coroutines it awaits (Python 3.8-3.13)\n"
		"      --no-trace    don't read each thread's and task's OpenTelemetry span\n"
		"                    (shown by default where the program uses the SDK)\n"
		"      --full-filenames  accepted for py-spy users: file names are always\n"
		"                    printed in full\n"
		"      --nonblocking accepted for py-spy users: the target is never\n"
		"                    paused (except with -n, see above)\n"
		"  -h, --help        this help\n");
}

static int parse_args(int argc, char **argv, struct dump_args *a)
{
	enum { O_ASYNC = 256, O_PYSPY_NOOP, O_NOTRACE };
	static const struct option opts[] = {
		{"pid", required_argument, 0, 'p'},
		{"locals", no_argument, 0, 'l'},
		{"json", no_argument, 0, 'j'},
		{"native", no_argument, 0, 'n'},
		{"async", no_argument, 0, O_ASYNC},
		{"no-trace", no_argument, 0, O_NOTRACE},
		{"full-filenames", no_argument, 0, O_PYSPY_NOOP},  /* py-spy's; always so */
		{"nonblocking", no_argument, 0, O_PYSPY_NOOP},     /* py-spy's; the default */
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
		case O_ASYNC: a->async = 1; break;
		case O_NOTRACE: hm_python_trace_default(0); break;
		case O_PYSPY_NOOP: break;
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

static const char *state_word(char state)
{
	return state == 'R' ? "running" : "idle";
}

/* ---- building the stacks --------------------------------------------------- */

static void stacks_free(struct dump_stack *ds, int n)
{
	if (!ds)
		return;
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < ds[i].n; k++) {
			free(ds[i].f[k].name);
			free(ds[i].f[k].file);
			free(ds[i].f[k].module);
		}
		free(ds[i].f);
	}
	free(ds);
}

static int copy_native(struct dump_frame *out, const hm_natsym *sym)
{
	memset(out, 0, sizeof *out);
	out->name = strdup(sym->name ? sym->name : "?");
	out->file = sym->file ? strdup(sym->file) : NULL;
	out->module = strdup(sym->module ? sym->module : "");
	out->line = sym->line;
	if (!out->name || (sym->file && !out->file) || !out->module)
		return hm_error(HM_ENOMEM, "out of memory");
	return HM_OK;
}

/* The Python stack alone. */
static int stack_python(struct dump_stack *d, const hm_pythread *th)
{
	d->f = calloc((size_t)(th->nframes ? th->nframes : 1), sizeof *d->f);
	if (!d->f)
		return hm_error(HM_ENOMEM, "out of memory");
	for (int k = 0; k < th->nframes; k++)
		d->f[k].py = &th->frames[k];
	d->n = th->nframes;
	return HM_OK;
}

/* th merged with its native stack; the Python stack alone if they do not fit. */
static int stack_merged(struct dump_stack *d, const hm_pythread *th, const hm_natstack *ns,
			const hm_pylayout *L)
{
	int cap = ns->nframes + th->nframes;
	hm_mframe *m = calloc((size_t)(cap ? cap : 1), sizeof *m);
	if (!m)
		return hm_error(HM_ENOMEM, "out of memory");
	int n = hm_native_merge(ns, th, L, m, cap);
	if (n < 0) {
		free(m);
		d->native = NAT_TORN;
		return stack_python(d, th);
	}
	d->f = calloc((size_t)(n ? n : 1), sizeof *d->f);
	if (!d->f) {
		free(m);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	int rc = HM_OK;
	for (int k = 0; k < n && rc == HM_OK; k++) {
		if (m[k].py)
			d->f[k].py = m[k].py;
		else
			rc = copy_native(&d->f[k], m[k].nat);
		d->n = k + 1;
	}
	free(m);
	d->native = NAT_MERGED;
	return rc;
}

/* A native stack without Python frames, as unwound. */
static int stack_native(struct dump_stack *d, const hm_natstack *ns)
{
	d->f = calloc((size_t)(ns->nframes ? ns->nframes : 1), sizeof *d->f);
	if (!d->f)
		return hm_error(HM_ENOMEM, "out of memory");
	for (int k = 0; k < ns->nframes; k++) {
		int rc = copy_native(&d->f[k], ns->frames[k]);
		d->n = k + 1;
		if (rc != HM_OK)
			return rc;
	}
	d->native = NAT_ALONE;
	return HM_OK;
}

/* Python stacks only (no --native). */
static int build_plain(const hm_pysample *s, struct dump_stack **out)
{
	struct dump_stack *ds = calloc((size_t)(s->nthreads ? s->nthreads : 1), sizeof *ds);
	if (!ds)
		return hm_error(HM_ENOMEM, "out of memory");
	for (int i = 0; i < s->nthreads; i++) {
		ds[i].state = s->threads[i].state;
		if (stack_python(&ds[i], &s->threads[i]) != HM_OK) {
			stacks_free(ds, s->nthreads);
			return HM_ENOMEM;
		}
	}
	*out = ds;
	return HM_OK;
}

/* --native: s is replaced by the sample taken while the threads stood
 * still; states come from `before`. */
static int build_native(hm_native *nat, hm_python *py, const hm_pysample *before,
			hm_pysample *s, struct dump_stack **out)
{
	hm_natsample ns;
	memset(&ns, 0, sizeof ns);
	int rc = HM_EIO;
	for (int i = 0; i < NATIVE_TRIES; i++) {
		rc = hm_native_sample(nat, py, s, &ns, HM_SAMPLE_STATE | HM_SAMPLE_WANT_GIL);
		if (rc == HM_OK && !s->ninvalid)
			break;
		usleep(2000);
	}
	if (rc != HM_OK) {
		hm_natsample_free(&ns);
		return rc;
	}
	struct dump_stack *ds = calloc((size_t)(s->nthreads ? s->nthreads : 1), sizeof *ds);
	if (!ds) {
		hm_natsample_free(&ns);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	const hm_pylayout *L = hm_python_layout(py);
	/* First everything that uses this sample's symbols... */
	for (int i = 0; i < s->nthreads && rc == HM_OK; i++) {
		const hm_pythread *th = &s->threads[i];
		ds[i].state = th->state;
		for (int k = 0; k < before->nthreads; k++)
			if (before->threads[k].tid == th->tid && before->threads[k].state)
				ds[i].state = before->threads[k].state;
		const hm_natstack *st = i < ns.nstacks ? &ns.stacks[i] : NULL;
		if (st && st->state == HM_NATSTACK_OK)
			rc = stack_merged(&ds[i], th, st, L);
		else {
			if (st && st->state == HM_NATSTACK_FAILED)
				ds[i].native = NAT_FAILED;
			rc = stack_python(&ds[i], th);
		}
	}
	/* ...then the threads without Python frames, each unwound alone. */
	for (int i = 0; i < s->nthreads && rc == HM_OK; i++) {
		const hm_pythread *th = &s->threads[i];
		if (ds[i].native || !th->valid || th->nframes || th->tid <= 0)
			continue;
		hm_natstack one;
		memset(&one, 0, sizeof one);
		if (hm_native_unwind(nat, th->tid, &one) == HM_OK)
			rc = stack_native(&ds[i], &one);
		else
			ds[i].native = NAT_FAILED;
		hm_natstack_free(&one);
	}
	hm_natsample_free(&ns);
	if (rc != HM_OK) {
		stacks_free(ds, s->nthreads);
		return rc;
	}
	*out = ds;
	return HM_OK;
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

static void print_native_frame(const struct dump_frame *f)
{
	if (f->file && f->line > 0)
		printf("    %s (%s:%d) [native]\n", f->name, f->file, (int)f->line);
	else if (f->file && *f->file && !(f->name[0] == '[' && f->module && !strcmp(f->file, f->module)))
		printf("    %s (%s) [native]\n", f->name, f->file);
	else if (f->name[0] == '[')
		printf("    %s [native]\n", f->name);   /* "[module]": no symbol */
	else if (f->module && *f->module)
		printf("    %s (%s) [native]\n", f->name, f->module);
	else
		printf("    %s [native]\n", f->name);
}

static void print_pyframe(const hm_pyframe *f, const hm_pyobj_reader *r, int locals)
{
	printf("    %s (%s:%d)\n", f->code->qualname, f->code->filename, (int)f->line);
	if (locals && r)
		hm_pyobj_locals(r, f, print_local, (void *)r);
}

/* "    span: NAME trace=... span=... (root: NAME)" when sp is a span. */
static void print_span(const hm_pyspan *sp)
{
	if (!sp->trace_hi && !sp->trace_lo)
		return;
	printf("    span: %s trace_id=%016llx%016llx span_id=%016llx", sp->name[0] ? sp->name : "?",
	       (unsigned long long)sp->trace_hi, (unsigned long long)sp->trace_lo,
	       (unsigned long long)sp->span_id);
	if (sp->root[0] && strcmp(sp->root, sp->name))
		printf(" (local root: %s)", sp->root);
	printf("\n");
}

static json_t *json_span(const hm_pyspan *sp)
{
	if (!sp->trace_hi && !sp->trace_lo)
		return json_null();
	char tid[33], sid[17];
	snprintf(tid, sizeof tid, "%016llx%016llx", (unsigned long long)sp->trace_hi,
		 (unsigned long long)sp->trace_lo);
	snprintf(sid, sizeof sid, "%016llx", (unsigned long long)sp->span_id);
	json_t *o = json_object();
	json_object_set_new(o, "trace_id", json_string(tid));
	json_object_set_new(o, "span_id", json_string(sid));
	json_object_set_new(o, "name", json_string(sp->name));
	json_object_set_new(o, "local_root_name", sp->root[0] ? json_string(sp->root) : json_null());
	return o;
}

static void print_text(const hm_pysample *s, const struct dump_stack *ds,
		       const hm_pyobj_reader *r, const struct dump_args *a, const char *version)
{
	printf("Process %d: Python %s, %d thread%s\n", (int)a->pid, version, s->nthreads,
	       s->nthreads == 1 ? "" : "s");
	for (int i = 0; i < s->nthreads; i++) {
		const hm_pythread *th = &s->threads[i];
		const struct dump_stack *d = &ds[i];
		printf("\nThread %d (%s): %s%s%s\n", (int)th->tid, th->name ? th->name : "?",
		       state_word(d->state), th->holds_gil ? ", holds GIL" : "",
		       th->valid ? "" : " (stack unreadable: it changed while being read)");
		print_span(&th->span);
		if (th->valid && !d->n)
			printf("    (no Python frames)\n");
		for (int k = 0; k < d->n; k++) {
			if (d->f[k].py)
				print_pyframe(d->f[k].py, r, a->locals);
			else
				print_native_frame(&d->f[k]);
		}
		if (th->truncated)
			printf("    ... (deeper frames cut)\n");
		if (a->native && d->native == NAT_FAILED && th->valid)
			printf("    (native stack unavailable: the thread could not be stopped or unwound)\n");
		else if (a->native && d->native == NAT_TORN)
			printf("    (native stack left out: it did not match the Python stack)\n");
	}
}

static void print_tasks_text(const hm_pytasks *tk, const hm_pyobj_reader *r, int locals)
{
	if (!tk->ntasks)
		printf("\nNo asyncio tasks\n");
	for (int i = 0; i < tk->ntasks; i++) {
		const hm_pytask *t = &tk->tasks[i];
		printf("\nTask %s:%s%s\n", t->name, t->running ? " running" : "",
		       t->valid ? "" : " (unreadable: it changed while being read)");
		print_span(&t->span);
		for (int k = 0; k < t->nframes; k++)
			print_pyframe(&t->frames[k], r, locals);
		if (t->truncated)
			printf("    ... (deeper awaits cut)\n");
	}
	if (tk->ninvalid)
		printf("\n(%d task%s could not be read)\n", tk->ninvalid, tk->ninvalid == 1 ? "" : "s");
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

static json_t *json_pyframe(const hm_pyframe *f, const hm_pyobj_reader *r, const struct dump_args *a)
{
	json_t *fr = json_object();
	json_object_set_new(fr, "name", json_string(f->code->qualname));
	json_object_set_new(fr, "file", json_string(f->code->filename));
	json_object_set_new(fr, "line", json_integer(f->line));
	if (a->native) {
		json_object_set_new(fr, "kind", json_string("python"));
		json_object_set_new(fr, "native", json_false());
	}
	if (a->locals && r) {
		struct json_locals jl = {r, json_object()};
		hm_pyobj_locals(r, f, json_local, &jl);
		json_object_set_new(fr, "locals", jl.obj);
	}
	return fr;
}

static json_t *json_native_frame(const struct dump_frame *f)
{
	json_t *fr = json_object();
	json_object_set_new(fr, "name", json_string(f->name));
	json_object_set_new(fr, "file", f->file ? json_string(f->file) : json_null());
	json_object_set_new(fr, "line", json_integer(f->line));
	json_object_set_new(fr, "module", json_string(f->module ? f->module : ""));
	json_object_set_new(fr, "kind", json_string("native"));
	json_object_set_new(fr, "native", json_true());
	return fr;
}

static json_t *json_threads(const hm_pysample *s, const struct dump_stack *ds,
			    const hm_pyobj_reader *r, const struct dump_args *a)
{
	static const char *nat_words[] = {"none", "merged", "native only", "failed", "torn"};
	json_t *threads = json_array();
	for (int i = 0; i < s->nthreads; i++) {
		const hm_pythread *th = &s->threads[i];
		const struct dump_stack *d = &ds[i];
		json_t *t = json_object(), *frames = json_array();
		json_object_set_new(t, "tid", json_integer(th->tid));
		json_object_set_new(t, "name", th->name ? json_string(th->name) : json_null());
		json_object_set_new(t, "state", json_string(state_word(d->state)));
		json_object_set_new(t, "gil", json_boolean(th->holds_gil));
		json_object_set_new(t, "valid", json_boolean(th->valid));
		json_object_set_new(t, "span", json_span(&th->span));
		if (a->native)
			json_object_set_new(t, "native_stack", json_string(nat_words[d->native]));
		for (int k = 0; k < d->n; k++)
			json_array_append_new(frames, d->f[k].py ? json_pyframe(d->f[k].py, r, a)
					      : json_native_frame(&d->f[k]));
		json_object_set_new(t, "frames", frames);
		json_array_append_new(threads, t);
	}
	return threads;
}

static json_t *json_tasks(const hm_pytasks *tk, const hm_pyobj_reader *r, const struct dump_args *a)
{
	json_t *tasks = json_array();
	for (int i = 0; i < tk->ntasks; i++) {
		const hm_pytask *t = &tk->tasks[i];
		json_t *o = json_object(), *frames = json_array();
		json_object_set_new(o, "name", json_string(t->name));
		json_object_set_new(o, "running", json_boolean(t->running));
		json_object_set_new(o, "valid", json_boolean(t->valid));
		json_object_set_new(o, "truncated", json_boolean(t->truncated));
		json_object_set_new(o, "span", json_span(&t->span));
		for (int k = 0; k < t->nframes; k++)
			json_array_append_new(frames, json_pyframe(&t->frames[k], r, a));
		json_object_set_new(o, "frames", frames);
		json_array_append_new(tasks, o);
	}
	return tasks;
}

static int emit_json(json_t *root)
{
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

	hm_target *t = NULL;
	if (hm_target_open(a.pid, &t) != HM_OK)
		return cli_fail_lib();
	hm_python *py = NULL;
	if (hm_python_attach(t, &py) != HM_OK) {
		hm_target_close(t);
		return cli_fail_lib();
	}
	int status = 0;
	hm_pysample before, s;
	memset(&before, 0, sizeof before);
	memset(&s, 0, sizeof s);
	hm_native *nat = NULL;
	hm_pyasync *as = NULL;
	hm_pytasks tasks;
	memset(&tasks, 0, sizeof tasks);
	struct dump_stack *ds = NULL;
	json_t *root = NULL;
	if (!hm_python_ready(py)) {
		status = cli_fail("process %d has not started running Python code yet", (int)a.pid);
		goto out;
	}
	if (a.async && hm_pyasync_open(py, &as) != HM_OK) {
		status = cli_fail_lib();   /* says which versions --async supports */
		goto out;
	}
	if (a.native && hm_native_open(t, &nat) != HM_OK) {
		status = cli_fail("--native: %s", hm_errmsg());
		goto out;
	}
	if (sample_all(py, a.native ? &before : &s) != HM_OK) {
		status = cli_fail_lib();
		goto out;
	}
	if (a.native) {
		if (build_native(nat, py, &before, &s, &ds) != HM_OK) {
			status = cli_fail_lib();
			goto out;
		}
	} else if (build_plain(&s, &ds) != HM_OK) {
		status = cli_fail_lib();
		goto out;
	}
	hm_python_thread_names(py, &s);
	hm_pyobj_reader reader, *r = NULL;
	if (a.locals && hm_pyobj_reader_init(&reader, py) == HM_OK)
		r = &reader;
	if (a.json) {
		root = json_object();
		json_object_set_new(root, "pid", json_integer(a.pid));
		json_object_set_new(root, "python", json_string(hm_python_version(py)));
		json_object_set_new(root, "threads", json_threads(&s, ds, r, &a));
	} else {
		print_text(&s, ds, r, &a, hm_python_version(py));
		fflush(stdout);
	}
	if (as) {
		/* After the threads: the tasks' read does not disturb them. */
		if (hm_pyasync_tasks(as, &tasks) != HM_OK) {
			status = cli_fail("--async: %s", hm_errmsg());
			json_decref(root);
			root = NULL;
			goto out;
		}
		if (root)
			json_object_set_new(root, "tasks", json_tasks(&tasks, r, &a));
		else
			print_tasks_text(&tasks, r, a.locals);
	}
	if (root) {
		status = emit_json(root);
		root = NULL;
	}
	fflush(stdout);
out:
	stacks_free(ds, s.nthreads);
	hm_pytasks_free(&tasks);
	hm_pyasync_close(as);
	hm_native_close(nat);
	hm_pysample_free(&before);
	hm_pysample_free(&s);
	hm_python_detach(py);
	hm_target_close(t);
	return status;
}
