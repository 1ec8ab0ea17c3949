/* stacks.c - the one place where a sampled thread becomes a profile stack
 * (sampler.h): Python stacks, Python stacks merged with their native frames
 * (--native: native/ unwinds and merges with hm_native_merge, this turns the
 * merged frames into profile frames) and asyncio tasks (--async: the tasks
 * come from sample/async.h). Every stack starts with the same root pseudo
 * frames (the process with --subprocesses, the thread with --threads), and a
 * Python frame's ids are cached in its code object per profile. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/profile.h"
#include "native/native.h"
#include "python/pyasync.h"
#include "sample/sampler.h"

/* The pseudo frames at the root of a thread's stacks written to ids;
 * returns how many (at most 2). */
static uint32_t root_frames(hm_profile *p, const hm_sampler_opts *o, pid_t tid, uint32_t *ids)
{
	uint32_t k = 0;
	if (o->process_label) {
		hm_frame f = {hm_profile_intern_cstr(p, o->process_label), 0, 0, 0, HM_FRAME_PROCESS};
		ids[k++] = hm_profile_frame_id(p, &f);
	}
	if (o->threads_root) {
		char name[64];
		snprintf(name, sizeof name, "thread %d", (int)tid);
		hm_frame f = {hm_profile_intern_cstr(p, name), 0, 0, 0, HM_FRAME_THREAD};
		ids[k++] = hm_profile_frame_id(p, &f);
	}
	return k;
}

/* The profile frame of a sampled Python frame. */
static uint32_t py_frame(hm_profile *p, const hm_pyframe *pf, const hm_sampler_opts *o)
{
	hm_pycode *c = (hm_pycode *)pf->code;
	/* The code object remembers its interned name and file for the
	 * profile whose serial it carries. */
	uint32_t tag = hm_profile_serial(p);
	if (c->user_gen != tag) {
		c->user = hm_profile_intern_cstr(p, c->qualname);
		c->user2 = hm_profile_intern_cstr(p, c->filename);
		c->user_gen = tag;
	}
	hm_frame f;
	memset(&f, 0, sizeof f);
	f.name = c->user;
	f.file = c->user2;
	f.line = o->nolineno ? 0 : pf->line;
	f.start_line = c->firstlineno;
	f.kind = HM_FRAME_PYTHON;
	return hm_profile_frame_id(p, &f);
}

uint32_t hm_sampler_py_frame(hm_profile *p, const hm_pyframe *f, const hm_sampler_opts *o)
{
	return py_frame(p, f, o);
}

static uint32_t other_frame(hm_profile *p, const char *name)
{
	hm_frame f = {hm_profile_intern_cstr(p, name), 0, 0, 0, HM_FRAME_OTHER};
	return hm_profile_frame_id(p, &f);
}

/* Add the stack ids[0..k) for thread tid (its profile thread carries the
 * process with --subprocesses), in the OpenTelemetry span it ran in (span:
 * python/otel.h; none when its ids are 0). This is the one place where a
 * sample enters a profile. */
static void add_stack(hm_profile *p, const uint32_t *ids, uint32_t k, const hm_sampler_opts *o,
		      pid_t tid, const char *tname, const hm_pyspan *span, int64_t count,
		      int64_t weight_ns, uint64_t t_ns)
{
	uint32_t stack = hm_profile_stack_id(p, ids, k);
	uint32_t thread = hm_profile_thread_id(p, (uint64_t)tid,
					       (uint32_t)(o->process_pid > 0 ? o->process_pid : 0),
					       tname);
	hm_profile_add_span(p, stack, thread, hm_sampler_span(p, span), count, weight_ns, t_ns);
}

void hm_sampler_add_thread(hm_profile *p, const hm_pythread *th, const hm_sampler_opts *o,
			   int64_t weight_ns, uint64_t t_ns)
{
	hm_sampler_add_thread_n(p, th, o, 1, weight_ns, t_ns, NULL, 0);
}

void hm_sampler_add_thread_n(hm_profile *p, const hm_pythread *th, const hm_sampler_opts *o,
			     int64_t count, int64_t weight_ns, uint64_t t_ns,
			     const char *const *kframes, int nk)
{
	uint32_t stackbuf[512];
	uint32_t n = (uint32_t)th->nframes + 3 + (uint32_t)(nk > 0 ? nk : 0);
	uint32_t *ids = n <= 512 ? stackbuf : malloc(n * sizeof *ids);
	if (!ids)
		return;
	uint32_t k = root_frames(p, o, th->tid, ids);
	for (int i = th->nframes - 1; i >= 0; i--)
		ids[k++] = py_frame(p, &th->frames[i], o);
	if (th->in_gc)   /* a garbage collection runs under these frames */
		ids[k++] = other_frame(p, "<gc>");
	for (int i = nk - 1; i >= 0; i--) {   /* kernel frames, leaf first */
		hm_frame f = {hm_profile_intern_cstr(p, kframes[i]), 0, 0, 0, HM_FRAME_KERNEL};
		ids[k++] = hm_profile_frame_id(p, &f);
	}
	add_stack(p, ids, k, o, th->tid, th->name, &th->span, count, weight_ns, t_ns);
	if (ids != stackbuf)
		free(ids);
}

void hm_sampler_add_task(hm_profile *p, const hm_pytask *task, const hm_pythread *th, int coro,
			 const hm_sampler_opts *o, int64_t weight_ns, uint64_t t_ns)
{
	/* A running task: th's frames [coro..0] (leaf first); a waiting one:
	 * its await chain. */
	const hm_pyframe *frames = th ? th->frames : task->frames;
	int hi = th ? coro : task->nframes - 1;
	uint32_t stackbuf[512];
	uint32_t n = (uint32_t)(hi + 1) + 4;
	uint32_t *ids = n <= 512 ? stackbuf : malloc(n * sizeof *ids);
	if (!ids)
		return;
	uint32_t k = th ? root_frames(p, o, th->tid, ids) : 0;
	char name[96];
	snprintf(name, sizeof name, "Task %s", task->name);
	ids[k++] = other_frame(p, name);
	for (int i = hi; i >= 0; i--)
		ids[k++] = py_frame(p, &frames[i], o);
	if (th && th->in_gc)
		ids[k++] = other_frame(p, "<gc>");
	add_stack(p, ids, k, o, th ? th->tid : 0, th ? th->name : "asyncio",
		  th ? &th->span : &task->span, 1, weight_ns, t_ns);
	if (ids != stackbuf)
		free(ids);
}

/* HM_SAMPLER_NATIVE_NO_EVAL if ns reached the thread's first frame (so the loop
 * must be on it) and none of its frames is the evaluation loop. */
static int no_eval(const hm_natstack *ns)
{
	if (!ns->complete)
		return 0;
	for (int j = 0; j < ns->nframes; j++)
		if (ns->frames[j]->role == HM_NAT_EVAL)
			return 0;
	return HM_SAMPLER_NATIVE_NO_EVAL;
}

int hm_sampler_add_native(hm_profile *p, const hm_pythread *th, const hm_natstack *ns,
			  const hm_pylayout *L, const hm_sampler_opts *o, int64_t weight_ns,
			  uint64_t t_ns)
{
	return hm_sampler_add_native_k(p, th, ns, L, o, weight_ns, t_ns, NULL, 0);
}

int hm_sampler_add_native_k(hm_profile *p, const hm_pythread *th, const hm_natstack *ns,
			    const hm_pylayout *L, const hm_sampler_opts *o, int64_t weight_ns,
			    uint64_t t_ns, const char *const *kframes, int nk)
{
	nk = nk > 0 && nk <= 256 ? nk : 0;
	if (!ns || ns->state != HM_NATSTACK_OK) {
		hm_sampler_add_thread_n(p, th, o, 1, weight_ns, t_ns, kframes, nk);
		return 0;
	}
	hm_mframe mbuf[256];
	uint32_t ibuf[258 + 256];
	int cap = ns->nframes + th->nframes;
	hm_mframe *m = cap <= 256 ? mbuf : malloc((size_t)cap * sizeof *m);
	uint32_t *ids = cap <= 256 ? ibuf : malloc((size_t)(cap + 2 + nk) * sizeof *ids);
	int n = m && ids ? hm_native_merge(ns, th, L, m, cap) : -1;
	if (n < 0) {
		if (m != mbuf)
			free(m);
		if (ids != ibuf)
			free(ids);
		hm_sampler_add_thread_n(p, th, o, 1, weight_ns, t_ns, kframes, nk);
		return m && ids ? HM_SAMPLER_NATIVE_TORN | no_eval(ns) : 0;
	}
	uint32_t k = root_frames(p, o, th->tid, ids), tag = hm_profile_serial(p);
	for (int i = n - 1; i >= 0; i--) {
		if (m[i].py) {
			ids[k++] = py_frame(p, m[i].py, o);
			continue;
		}
		hm_frame f;
		memset(&f, 0, sizeof f);
		hm_natsym *s = (hm_natsym *)m[i].nat;
		if (s->user_gen != tag) {
			s->user = hm_profile_intern_cstr(p, s->name);
			s->user2 = s->file ? hm_profile_intern_cstr(p, s->file) : 0;
			s->user_gen = tag;
		}
		f.name = s->user;
		f.file = s->user2;
		f.line = o->nolineno ? 0 : s->line;
		f.kind = HM_FRAME_NATIVE;
		ids[k++] = hm_profile_frame_id(p, &f);
	}
	for (int i = nk - 1; i >= 0; i--) {   /* kernel frames under the native leaf */
		hm_frame f = {hm_profile_intern_cstr(p, kframes[i]), 0, 0, 0, HM_FRAME_KERNEL};
		ids[k++] = hm_profile_frame_id(p, &f);
	}
	add_stack(p, ids, k, o, th->tid, th->name, &th->span, 1, weight_ns, t_ns);
	if (m != mbuf)
		free(m);
	if (ids != ibuf)
		free(ids);
	return no_eval(ns);
}
