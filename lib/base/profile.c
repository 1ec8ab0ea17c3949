/* profile.c - the profile model (see profile.h).
 *
 * Five interners carry everything: strings, frames (hm_frame blobs), stacks
 * (uint32 frame-id arrays), spans (hm_span_ref, capped) and sample keys
 * ((stack, thread, span) triples). A sample
 * key's id indexes the aggregate array, so adding a sample is one hash
 * lookup; counts and weights add with saturation (hostile input cannot wrap
 * a sum). The optional timeline is a growable array of hm_event. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/intern.h"
#include "base/profile.h"

struct hm_profile {
	hm_intern strings, frames, stacks, keys, spans;
	hm_sample *samples;          /* indexed by key id */
	size_t samples_cap;
	hm_thread *threads;
	uint32_t nthreads, threads_cap;
	hm_event *events;
	size_t nevents, events_cap;
	int keep_timeline;
	int64_t total_count, total_weight;
	uint32_t serial;
	hm_profile_meta meta;
};

static uint32_t next_serial;

int64_t hm_sat_add(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

hm_profile *hm_profile_new(int keep_timeline)
{
	hm_profile *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	hm_intern_init(&p->strings);
	hm_intern_init(&p->frames);
	hm_intern_init(&p->stacks);
	hm_intern_init(&p->keys);
	hm_intern_init(&p->spans);
	p->keep_timeline = keep_timeline;
	do
		p->serial = __atomic_add_fetch(&next_serial, 1, __ATOMIC_RELAXED);
	while (!p->serial);
	hm_intern_put(&p->strings, "", 0, NULL);   /* id 0 is "" */
	hm_span_ref none;
	memset(&none, 0, sizeof none);
	hm_intern_put(&p->spans, &none, sizeof none, NULL);   /* span 0: none */
	return p;
}

void hm_profile_free(hm_profile *p)
{
	if (!p)
		return;
	hm_intern_free(&p->strings);
	hm_intern_free(&p->frames);
	hm_intern_free(&p->stacks);
	hm_intern_free(&p->keys);
	hm_intern_free(&p->spans);
	free(p->samples);
	free(p->threads);
	free(p->events);
	free(p);
}

hm_str_id hm_profile_intern(hm_profile *p, const char *s, size_t len)
{
	if (len > UINT32_MAX / 2)
		len = UINT32_MAX / 2;
	uint32_t id = hm_intern_put(&p->strings, s, (uint32_t)len, NULL);
	return id == UINT32_MAX ? 0 : id;
}

hm_str_id hm_profile_intern_cstr(hm_profile *p, const char *s)
{
	return s ? hm_profile_intern(p, s, strlen(s)) : 0;
}

const char *hm_profile_str(const hm_profile *p, hm_str_id id)
{
	const char *s = hm_intern_get(&p->strings, id, NULL);
	return s ? s : "";
}

uint32_t hm_profile_frame_id(hm_profile *p, const hm_frame *f)
{
	hm_frame key;
	memset(&key, 0, sizeof key);  /* padding must not take part in the hash */
	key.name = f->name;
	key.file = f->file;
	key.line = f->line;
	key.start_line = f->start_line;
	key.kind = f->kind;
	return hm_intern_put(&p->frames, &key, sizeof key, NULL);
}

uint32_t hm_profile_stack_id(hm_profile *p, const uint32_t *frames, uint32_t n)
{
	return hm_intern_put(&p->stacks, frames, n * (uint32_t)sizeof *frames, NULL);
}

uint32_t hm_profile_thread_id(hm_profile *p, uint64_t tid, uint32_t pid, const char *name)
{
	for (uint32_t i = 0; i < p->nthreads; i++)
		if (p->threads[i].tid == tid && p->threads[i].pid == pid) {
			if (name && *name && !p->threads[i].name)
				p->threads[i].name = hm_profile_intern_cstr(p, name);
			return i;
		}
	if (p->nthreads == p->threads_cap) {
		uint32_t nc = p->threads_cap ? p->threads_cap * 2 : 16;
		hm_thread *nt = realloc(p->threads, nc * sizeof *nt);
		if (!nt)
			return 0;
		p->threads = nt;
		p->threads_cap = nc;
	}
	hm_thread *t = &p->threads[p->nthreads];
	t->tid = tid;
	t->pid = pid;
	t->name = name ? hm_profile_intern_cstr(p, name) : 0;
	return p->nthreads++;
}

uint32_t hm_profile_span_id(hm_profile *p, const hm_span_ref *s)
{
	hm_span_ref key;
	memset(&key, 0, sizeof key);  /* padding must not take part in the hash */
	key.trace_hi = s->trace_hi;
	key.trace_lo = s->trace_lo;
	key.span_id = s->span_id;
	key.name = s->name;
	key.root = s->root;
	if (p->spans.n >= HM_PROFILE_MAX_SPANS) {
		/* Full: known spans keep their ids, new ones their names. */
		uint32_t id = hm_intern_find(&p->spans, &key, sizeof key);
		if (id != UINT32_MAX)
			return id;
		key.trace_hi = key.trace_lo = key.span_id = 0;
		id = hm_intern_find(&p->spans, &key, sizeof key);
		return id == UINT32_MAX ? 0 : id;
	}
	uint32_t id = hm_intern_put(&p->spans, &key, sizeof key, NULL);
	return id == UINT32_MAX ? 0 : id;
}

uint32_t hm_profile_nspans(const hm_profile *p) { return p->spans.n; }

const hm_span_ref *hm_profile_span(const hm_profile *p, uint32_t id)
{
	return hm_intern_get(&p->spans, id, NULL);
}

void hm_span_trace_hex(const hm_span_ref *s, char out[33])
{
	snprintf(out, 33, "%016llx%016llx", (unsigned long long)s->trace_hi,
		 (unsigned long long)s->trace_lo);
}

void hm_span_id_hex(const hm_span_ref *s, char out[17])
{
	snprintf(out, 17, "%016llx", (unsigned long long)s->span_id);
}

void hm_profile_add(hm_profile *p, uint32_t stack, uint32_t thread, int64_t count,
		    int64_t weight_ns, uint64_t t_ns)
{
	hm_profile_add_span(p, stack, thread, 0, count, weight_ns, t_ns);
}

void hm_profile_add_span(hm_profile *p, uint32_t stack, uint32_t thread, uint32_t span,
			 int64_t count, int64_t weight_ns, uint64_t t_ns)
{
	uint32_t key[3] = {stack, thread, span};
	int added;
	uint32_t id = hm_intern_put(&p->keys, key, sizeof key, &added);
	if (id == UINT32_MAX)
		return;
	if (id >= p->samples_cap) {
		size_t nc = p->samples_cap ? p->samples_cap * 2 : 256;
		hm_sample *ns = realloc(p->samples, nc * sizeof *ns);
		if (!ns)
			return;
		p->samples = ns;
		p->samples_cap = nc;
	}
	hm_sample *s = &p->samples[id];
	if (added) {
		s->stack = stack;
		s->thread = thread;
		s->span = span;
		s->count = 0;
		s->weight_ns = 0;
	}
	s->count = hm_sat_add(s->count, count);
	s->weight_ns = hm_sat_add(s->weight_ns, weight_ns);
	p->total_count = hm_sat_add(p->total_count, count);
	p->total_weight = hm_sat_add(p->total_weight, weight_ns);
	if (p->keep_timeline) {
		if (p->nevents == p->events_cap) {
			size_t nc = p->events_cap ? p->events_cap * 2 : 1024;
			hm_event *ne = realloc(p->events, nc * sizeof *ne);
			if (!ne)
				return;
			p->events = ne;
			p->events_cap = nc;
		}
		p->events[p->nevents++] = (hm_event){t_ns, stack, thread, weight_ns};
	}
}

uint32_t hm_profile_nstrings(const hm_profile *p) { return p->strings.n; }
uint32_t hm_profile_nframes(const hm_profile *p) { return p->frames.n; }
uint32_t hm_profile_nstacks(const hm_profile *p) { return p->stacks.n; }
uint32_t hm_profile_nthreads(const hm_profile *p) { return p->nthreads; }
size_t hm_profile_nsamples(const hm_profile *p) { return p->keys.n; }
size_t hm_profile_nevents(const hm_profile *p) { return p->nevents; }
int64_t hm_profile_total_count(const hm_profile *p) { return p->total_count; }
int64_t hm_profile_total_weight(const hm_profile *p) { return p->total_weight; }

const hm_frame *hm_profile_frame(const hm_profile *p, uint32_t id)
{
	return hm_intern_get(&p->frames, id, NULL);
}

const uint32_t *hm_profile_stack(const hm_profile *p, uint32_t id, uint32_t *n)
{
	uint32_t len = 0;
	const uint32_t *f = hm_intern_get(&p->stacks, id, &len);
	*n = len / (uint32_t)sizeof(uint32_t);
	return f;
}

const hm_thread *hm_profile_thread(const hm_profile *p, uint32_t id)
{
	return id < p->nthreads ? &p->threads[id] : NULL;
}

const hm_sample *hm_profile_sample(const hm_profile *p, size_t i)
{
	return i < p->keys.n ? &p->samples[i] : NULL;
}

const hm_event *hm_profile_event(const hm_profile *p, size_t i)
{
	return i < p->nevents ? &p->events[i] : NULL;
}

uint32_t hm_profile_serial(const hm_profile *p) { return p->serial; }

hm_profile_meta *hm_profile_meta_get(hm_profile *p) { return &p->meta; }
const hm_profile_meta *hm_profile_meta_cget(const hm_profile *p) { return &p->meta; }

void hm_profile_set_label(hm_profile *p, const char *key, const char *value)
{
	hm_str_id k = hm_profile_intern_cstr(p, key);
	hm_str_id v = hm_profile_intern_cstr(p, value);
	for (uint32_t i = 0; i < p->meta.nlabels; i++)
		if (p->meta.labels[i].key == k) {
			p->meta.labels[i].value = v;
			return;
		}
	if (p->meta.nlabels < sizeof p->meta.labels / sizeof p->meta.labels[0])
		p->meta.labels[p->meta.nlabels++] = (hm_label){k, v};
}

size_t hm_frame_format(const hm_profile *p, const hm_frame *f, char *buf, size_t cap)
{
	const char *name = hm_profile_str(p, f->name);
	const char *file = hm_profile_str(p, f->file);
	int n;
	if (!*file)
		n = snprintf(buf, cap, "%s", name);
	else if (f->line > 0)
		n = snprintf(buf, cap, "%s (%s:%d)", name, file, (int)f->line);
	else
		n = snprintf(buf, cap, "%s (%s)", name, file);
	return n < 0 ? 0 : (size_t)n;
}
