/* stacks.c - a thread's merged Python and native stack as a profile stack
 * (record --native). native/ unwinds and merges (hm_native_merge); this
 * turns the merged frames into profile frames the way hm_sampler_add_thread
 * does for Python-only stacks. */
#include <stdlib.h>
#include <string.h>

#include "base/profile.h"
#include "native/native.h"
#include "sample/sampler.h"

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
	if (!ns || ns->state != HM_NATSTACK_OK) {
		hm_sampler_add_thread(p, th, o, weight_ns, t_ns);
		return 0;
	}
	hm_mframe mbuf[256];
	uint32_t ibuf[258];
	int cap = ns->nframes + th->nframes;
	hm_mframe *m = cap <= 256 ? mbuf : malloc((size_t)cap * sizeof *m);
	uint32_t *ids = cap <= 256 ? ibuf : malloc((size_t)(cap + 2) * sizeof *ids);
	int n = m && ids ? hm_native_merge(ns, th, L, m, cap) : -1;
	if (n < 0) {
		if (m != mbuf)
			free(m);
		if (ids != ibuf)
			free(ids);
		hm_sampler_add_thread(p, th, o, weight_ns, t_ns);
		return m && ids ? HM_SAMPLER_NATIVE_TORN | no_eval(ns) : 0;
	}
	uint32_t k = hm_sampler_root_frames(p, o, th->tid, ids), tag = hm_profile_serial(p);
	for (int i = n - 1; i >= 0; i--) {
		if (m[i].py) {
			ids[k++] = hm_sampler_py_frame(p, m[i].py, o);
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
	uint32_t stack = hm_profile_stack_id(p, ids, k);
	hm_profile_add_span(p, stack, hm_sampler_thread(p, o, th->tid, th->name),
			    hm_sampler_span(p, &th->span), 1, weight_ns, t_ns);
	if (m != mbuf)
		free(m);
	if (ids != ibuf)
		free(ids);
	return no_eval(ns);
}
