/* ebpf.c - the user-space half of `record --ebpf` (sample/ebpf.h): loads the
 * in-kernel Python stack walker, opens one cpu-clock perf event per CPU for
 * it, tells it how to walk the target (its layout offsets and interpreter,
 * and the thread states of threads it cannot find itself), drains its ring
 * buffer, and turns each record into a profile sample. With --native
 * (hm_ebpf_open_native) the same perf events also copy the sampled thread's
 * user registers and the top of its stack into a ring per CPU; each copy is
 * joined with the record of the same instant and unwound afterwards (see
 * the native section below). Samples are counted per stack in the kernel
 * and those counts read about once a second; the ring buffer carries what
 * does not fit, and every --native record. With tracing on it also tells the kernel how
 * to read the current OpenTelemetry span (send_otel); each sample carries
 * the span's ids as the kernel read them, and its name from the str it
 * pointed at, once checked (span_name), and its local root span's name
 * when the process's span reader proves it (every sample's span teaches it
 * local roots, which the kernel flags, and the other spans' parents), or
 * once looked for among the thread's locals when the kernel sends the first
 * sample of a (trace, parent) (trace_first). Each sample's CPU time is the
 * thread's runtime since its previous sample as the kernel accounts it
 * (read by the program; seeded per thread at the watch, seed_runtimes, and
 * completed at the end, hm_ebpf_finish); with --kernel, kernel stacks come
 * by stack id with counted samples and inside ring records. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "base/error.h"
#include "base/util.h"
#include "sample/ebpf.h"

#ifndef HM_HAVE_EBPF

int hm_ebpf_built(void)
{
	return 0;
}

#define NOT_BUILT "--ebpf: this homura was built without BPF support (clang, bpftool and libbpf-dev were missing)"

int hm_ebpf_open(double rate_hz, int kernel_stacks, hm_ebpf **out)
{
	*out = NULL;
	return hm_error(HM_ESYS, NOT_BUILT);
}

int hm_ebpf_watch(hm_ebpf *e, pid_t pid, hm_python *py, void *owner)
{
	return hm_error(HM_ESYS, NOT_BUILT);
}

void hm_ebpf_unwatch(hm_ebpf *e, pid_t pid)
{
}

int hm_ebpf_poll(hm_ebpf *e, int timeout_ms, hm_ebpf_sample_fn fn, void *arg)
{
	return hm_error(HM_ESYS, NOT_BUILT);
}

void hm_ebpf_counts_get(hm_ebpf *e, hm_ebpf_counts *c)
{
	memset(c, 0, sizeof *c);
}

uint64_t hm_ebpf_invalid(const hm_ebpf *e)
{
	return 0;
}

int hm_ebpf_wake_ms(const hm_ebpf *e)
{
	return 50;
}

void hm_ebpf_close(hm_ebpf *e)
{
}

void hm_ebpf_finish(hm_ebpf *e, hm_ebpf_sample_fn fn, void *arg)
{
}

int hm_ebpf_open_native(double rate_hz, int kernel_stacks, int stack_bytes, hm_ebpf_native_fn nfn,
			hm_ebpf **out)
{
	*out = NULL;
	return hm_error(HM_ESYS, NOT_BUILT);
}

int hm_ebpf_watch_native(hm_ebpf *e, pid_t pid, hm_native *nat)
{
	return hm_error(HM_ESYS, NOT_BUILT);
}

#else

#include <linux/perf_event.h>
#include <dirent.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "python/pydecode.h"
#include "python/pylayout.h"
#include "sample/bpf/pystack.h"
#include "sample/pystack.skel.h"

#define MAX_CPUS 1024
#define TID_REFRESH_NS 2000000000ull     /* re-send thread states every 2 s (3.11+: the
					  * kernel side finds new threads and checks
					  * the ones it knows by their native id) */
#define TID_REFRESH_OLD_NS 50000000ull   /* <=3.10: the kernel cannot find them itself */
#define OTEL_RETRY_FAST_NS 10000000ull   /* span layout not found yet: look again
					  * every 10 ms for the first second (on
					  * <=3.10 it needs a span that is live), */
#define OTEL_RETRY_NS 200000000ull       /* then every 0.2 s */
#define OTEL_RETRY_FOR_NS 10000000000ull /* for 10 s, then backing off */
#define OTEL_RETRY_MAX_NS 10000000000ull /* to every 10 s */
#define OTEL_RECHECK_NS 2000000000ull    /* found: look again, when the kernel met an
					  * unexpected object, at most this often */
#define NAME_SLOTS 512
_Static_assert(HM_BPF_NAME_TEXT == HM_PYSTR_RAW, "the kernel's name text and user space's");
#define AGG_READ_NS 1000000000ull        /* read the aggregates every second, */
#define AGG_FIRST_NS 50000000ull         /* and 50 ms after a new process is watched,
					  * doubling from there: its code objects are
					  * resolved while it runs, even if it is short */

int hm_ebpf_built(void)
{
	return 1;
}

struct watched {
	pid_t pid;                  /* 0: free slot */
	hm_python *py;
	void *owner;
	struct hm_bpf_proc pi;
	int interp_sent;
	uint64_t refresh_ns;        /* how often thread states are re-sent */
	uint64_t last_threads;
	hm_native *nat;             /* --native: unwinds its perf samples */
	uint64_t native_from;       /* ... of records from this time on (before,
				  * the program did not know it yet) */
	/* OpenTelemetry spans read in the kernel (otelspan.bpf.h) */
	struct hm_bpf_otel otel;    /* what the kernel side has, if otel_sent */
	int otel_sent;
	int otel_complete;          /* the SDK's span class is in it */
	int otel_bad;               /* the kernel met an unexpected object */
	uint64_t otel_next_ns;      /* when to look for the layout again */
	uint64_t otel_backoff_ns, otel_first_ns;
	struct name_slot *names;    /* [NAME_SLOTS]: span name strs resolved */
};

/* A span's local root (local_root_span_name) is looked for when the kernel
 * sends the first sample of a (trace, parent) whose root is not proven
 * yet (trace_first): */
#define ROOT_SCANS_PER_S 100        /* looks among a thread's locals, at most
				  * (the frame the kernel named, a few reads;
				  * else about 100 us: a walk, and the frames
				  * of functions that held a root before), */
#define ROOT_FULL_PER_S 30          /* and, when not found there, the asyncio
				  * tasks' current spans (about 16 system
				  * calls with 5 tasks), else all the
				  * thread's frames (about 500 us) */
#define ROOT_SCAN_BURST 10

struct name_slot {
	uint64_t addr, check;
	char name[128];
};

/* --native: a record waiting for its perf sample (see the native section). */
struct pend {
	struct pend *next;          /* hash chain by tid */
	int age;                    /* drains it has waited through */
	int done;
	size_t len;
	struct hm_bpf_event ev;     /* the record (len bytes of it) */
};

/* --native: a perf sample copied out of its ring, waiting to be joined. */
struct psample {
	uint32_t tid;
	int nregs;                  /* NREGS, or 0 without user registers */
	uint64_t t;
	uint64_t regs[17];          /* DWARF order */
	size_t len;
	uint8_t stack[];            /* the used part of the stack copy */
};

#define PEND_BUCKETS 1024
#define MAX_QUEUED_BYTES (128u << 20) /* copied perf samples, stacks included */
#define COLLECT_NS 10000000ull      /* collect again while unwinding, every 10 ms */
#define POLL_BUDGET_NS 1000000000ull
/* Perf ring pages per CPU: each sample takes its whole stack_bytes there
 * (16 KiB: 2 MiB hold 126 samples, over 100 ms at 1000 Hz, enough for the
 * first drains, which load symbols and line tables); fewer on hosts with
 * many CPUs (64 MiB in all at most). */
#define PERF_RING_PAGES_MAX 512
#define PERF_RING_TOTAL (64u << 20)

struct native_side {
	hm_ebpf_native_fn fn;
	int stack_bytes;
	void **rings;               /* per CPU perf mmap, NULL where none */
	size_t ring_len;
	int ring_pages;             /* a power of 2, plus one header page */
	int ep;                     /* epoll: the BPF ring and every perf ring */
	struct pend **pend;
	int npend, cappend;
	struct pend *bucket[PEND_BUCKETS];
	uint8_t *wrap;              /* a perf record that wraps the ring end */
	hm_natstack ns;
	struct psample **q;         /* copied perf samples, in order */
	int nq, capq;
	size_t qbytes;              /* their stack bytes (bounded) */
	uint64_t collected_ns;
	int debug;                  /* HOMURA_BPF_DEBUG: each join on stderr */
};

struct hm_ebpf {
	struct hm_pystack *skel;
	struct ring_buffer *rb;
	struct bpf_link **links;
	int *fds;
	int ncpu;
	int stats_fd;
	int64_t weight_ns;          /* the period */
	int rt_weights;             /* samples weigh the kernel's runtime deltas */
	struct last *last_ev;       /* each thread's latest sample (open
				  * addressing by tid, cap_last slots) */
	size_t n_last, cap_last;
	uint64_t mono_to_real;      /* add to a CLOCK_MONOTONIC time for unix time */
	struct watched *w;
	int nw, capw;
	struct watched *last;       /* the last event's process */
	uint64_t scan_tokens_ns;    /* trace_first's rate limits */
	uint64_t full_tokens_ns;
	hm_ebpf_sample_fn fn;       /* during a poll */
	void *arg;
	int delivered;
	hm_ebpf_counts c;
	hm_pythread th;
	uint64_t pairs[2 * HM_BPF_MAX_FRAMES];
	struct native_side *nat;    /* --native, else NULL */
	/* in-kernel aggregation */
	int agg;                    /* on (the default) */
	int agg_max;                /* the aggs map's size */
	uint64_t agg_last;          /* when it was last read */
	uint64_t agg_every;         /* and how long after that it is read again */
	uint64_t agg_read_ns, agg_first_ns; /* AGG_READ_NS, AGG_FIRST_NS (or
				      * HOMURA_BPF_AGG_READ_MS for both) */
	struct hm_bpf_agg_key *agg_keys;
	struct hm_bpf_agg *agg_vals;
	/* kernel stacks (--kernel) */
	int kstack_on;
	struct ksym *ksyms;         /* /proc/kallsyms text symbols, by address */
	size_t nksyms;
	char *ksym_names;
	int ksyms_loaded;
	const char *kf[HM_BPF_KSTACK_DEPTH];
};

/* A thread's latest delivered record (hm_ebpf_finish gives it the time
 * the thread ran after it). */
struct last {
	uint32_t tid, pid;          /* tid 0: a free slot */
	uint64_t t_ns;
	size_t len;
	struct hm_bpf_event *ev;    /* len bytes */
};

struct ksym {
	uint64_t addr;
	size_t name;                /* offset in ksym_names */
};

static int pend_add(hm_ebpf *E, const struct hm_bpf_event *e, size_t len);

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_WARN && getenv("HOMURA_BPF_DEBUG"))
		return vfprintf(stderr, fmt, ap);
	return 0;
}

static struct watched *find_watched(hm_ebpf *e, pid_t pid)
{
	if (e->last && e->last->pid == pid)
		return e->last;
	for (int i = 0; i < e->nw; i++)
		if (e->w[i].pid == pid)
			return e->last = &e->w[i];
	return NULL;
}

/* The text of a span name str whose identity the kernel took at sample
 * time (hm_bpf_name_check): the text the kernel read with it when whole
 * (text, tlen: HM_BPF_TEXT_*; 0: none), else a name kept by its address
 * and check, else the str read now and believed only if it still matches.
 * Most names are constants, read once; a span's later samples (counted in
 * the kernel, or its answer reused there) come without the text. "" when
 * none of this gives it. */
static void span_name(struct watched *w, uint64_t addr, uint64_t check, const char *text,
		      unsigned tlen, char *out, size_t cap)
{
	out[0] = 0;
	if (!addr)
		return;
	if (!w->names && !(w->names = calloc(NAME_SLOTS, sizeof *w->names)))
		return;
	struct name_slot *n = &w->names[((addr >> 3) ^ check) % NAME_SLOTS];
	unsigned kind = HM_BPF_TEXT_KIND(tlen), bytes = HM_BPF_TEXT_BYTES(tlen);
	char buf[sizeof n->name];
	if ((tlen & HM_BPF_TEXT_WHOLE) && (kind == 1 || kind == 2 || kind == 4) && bytes % kind == 0 &&
	    bytes <= HM_BPF_NAME_TEXT) {
		hm_ucs_to_utf8((int)kind, text, bytes / kind, buf, sizeof buf);
	} else if (n->addr == addr && n->check == check) {
		snprintf(out, cap, "%s", n->name);
		return;
	} else {
		uint8_t head[48], raw[HM_BPF_NAME_TEXT];
		if (hm_python_str_snapshot(w->py, addr, head, raw, buf, sizeof buf) ||
		    hm_bpf_name_check(head, w->otel.ascii_size, raw) != check)
			return;
	}
	n->addr = addr;
	n->check = check;
	memcpy(n->name, buf, sizeof n->name);
	snprintf(out, cap, "%s", n->name);
}

/* A span as the kernel read it (its name once checked), taught to the
 * process's span reader (a local root, or a span's parent), with its local
 * root's name when that reader proves it; with need_name, not taught if
 * its name did not pass the check (a root named "" would name its trace). */
static void kernel_span(struct watched *w, const struct hm_bpf_span *s, uint64_t name_check,
			const char *text, unsigned tlen, int local_root, int need_name,
			hm_pyspan *sp)
{
	memset(sp, 0, sizeof *sp);
	sp->trace_hi = s->trace_hi;
	sp->trace_lo = s->trace_lo;
	sp->span_id = s->span_id;
	sp->parent_id = s->parent_id;
	sp->local_root = local_root;
	span_name(w, s->name, name_check, text, tlen, sp->name, sizeof sp->name);
	if (sp->name[0] || !need_name)
		hm_python_span_note(w->py, sp);
}

/* A sample's span (kernel_span). */
static void event_span(struct watched *w, const struct hm_bpf_event *e, hm_pyspan *sp)
{
	memset(sp, 0, sizeof *sp);
	if (e->span_why == HM_BPF_SPAN_BAD)
		w->otel_bad = 1;
	if (e->span_why != HM_BPF_SPAN_OK || (!e->span.trace_hi && !e->span.trace_lo) || !w->otel_sent)
		return;
	kernel_span(w, &e->span, e->span_name_check, e->span_text, e->span_text_len,
		    (e->span_flags & HM_BPF_SPAN_LOCAL_ROOT) != 0, 0, sp);
}

/* The code objects where the process's roots were found, to the kernel
 * side (hm_bpf_proc.root_hint), when they changed. */
static void send_root_hints(hm_ebpf *E, struct watched *w)
{
	uint64_t codes[HM_BPF_ROOT_HINTS] = {0};
	int idx[HM_BPF_ROOT_HINTS] = {0};
	hm_python_span_root_hints(w->py, codes, idx, HM_BPF_ROOT_HINTS);
	if (!w->interp_sent ||
	    (!memcmp(codes, w->pi.root_hint, sizeof codes) && !memcmp(idx, w->pi.root_idx, sizeof idx)))
		return;
	memcpy(w->pi.root_hint, codes, sizeof codes);
	memcpy(w->pi.root_idx, idx, sizeof idx);
	uint32_t key = (uint32_t)w->pid;
	bpf_map__update_elem(E->skel->maps.procs, &key, sizeof key, &w->pi, sizeof w->pi, BPF_ANY);
}

/* The first sample of a (trace, parent) (HM_BPF_NEW_TRACE, sent at once):
 * unless its span's local root is proven, look for it among the locals of
 * the thread, which most likely still runs the trace (a web framework's
 * request span is current only between its children, and a local of the
 * middleware's frame meanwhile), then among the asyncio tasks' current
 * spans, then all the thread's frames. At most ROOT_SCANS_PER_S a second,
 * ROOT_FULL_PER_S past the first look. */
static void trace_first(hm_ebpf *E, const struct hm_bpf_event *e)
{
	struct watched *w = find_watched(E, (pid_t)e->pid);
	if (!w || !w->otel_sent || e->span_why != HM_BPF_SPAN_OK)
		return;
	/* The root the program read in the frame it named (a local root of
	 * the sample's trace): learnt as a sample's span is. */
	if (e->root.span_id && e->root.trace_hi == e->span.trace_hi &&
	    e->root.trace_lo == e->span.trace_lo) {
		hm_pyspan r;
		kernel_span(w, &e->root, e->root_name_check, e->root_text, e->root_text_len, 1, 1, &r);
		E->c.roots_in_kernel += r.name[0] != 0;
	}
	hm_pyspan sp;
	event_span(w, e, &sp);
	if (sp.root[0] || sp.local_root || !sp.parent_id)
		return;
	uint64_t now = hm_mono_ns();
	if (!hm_token_take(&E->scan_tokens_ns, now, 1000000000ull / ROOT_SCANS_PER_S, ROOT_SCAN_BURST))
		return;
	uint64_t types[2] = {w->otel.types[0].type, w->otel.types[1].type};
	E->c.root_scans++;
	/* The frame the kernel named (one running code where a root was
	 * found before): its locals alone, no walk of the thread. */
	int rc = -1;
	if (e->root_frame && hm_python_span_root_at(w->py, e->root_frame, e->root_code, &sp,
						       types) == 0) {
		rc = 0;
		E->c.roots_at_frame++;
	}
	if (rc < 0)
		rc = hm_python_span_root_scan(w->py, e->tstate, &sp, types, 0);
	/* Not in the frames of a function that held a root before: a sync
	 * route's worker thread runs the trace while the event loop's task
	 * that holds the server span awaits it (that task's current span is
	 * the root); else every frame of the thread. */
	if (rc < 0 && hm_token_take(&E->full_tokens_ns, now, 1000000000ull / ROOT_FULL_PER_S, ROOT_SCAN_BURST)) {
		if (hm_python_span_root_from_tasks(w->py, &sp) == 0)
			rc = 1;
		else
			rc = hm_python_span_root_scan(w->py, e->tstate, &sp, types, 1);
	}
	if (rc >= 0)
		E->c.roots_found++;
	E->c.root_scan_ns += hm_mono_ns() - now;
	send_root_hints(E, w);
}

/* A record's frames (at most HM_BPF_MAX_FRAMES) as the walker's (code,
 * instruction) pairs, in E->pairs. */
static const uint64_t *pairs_of(hm_ebpf *E, const struct hm_bpf_event *e)
{
	for (uint32_t k = 0; k < e->nframes && k < HM_BPF_MAX_FRAMES; k++) {
		E->pairs[2 * k] = e->frames[k].code;
		E->pairs[2 * k + 1] = e->frames[k].instr;
	}
	return E->pairs;
}

/* A stack counted for the first time in its process (HM_BPF_NEW_STACK, not a
 * sample: its count comes with the drain): its code objects are read now,
 * while the process surely lives, so that the drain resolves its frames
 * even when the process has exited or torn its interpreter down by then
 * (walker.c: settled_trust). */
static void stack_first(hm_ebpf *E, const struct hm_bpf_event *e, size_t len)
{
	struct watched *w = find_watched(E, (pid_t)e->pid);
	if (!w || e->nframes > HM_BPF_MAX_FRAMES ||
	    len < offsetof(struct hm_bpf_event, frames) + e->nframes * sizeof e->frames[0])
		return;
	hm_python_resolve_check(w->py, pairs_of(E, e), (int)e->nframes);
}

/* A record's frames into E->th (resolved with the walker's code cache), as
 * count samples. 0, or -1 if it is not a sample (counted as invalid or
 * outside Python). */
static int record_stack(hm_ebpf *E, struct watched *w, const struct hm_bpf_event *e,
			uint64_t count)
{
	int n = (int)e->nframes;
	if (hm_python_resolve(w->py, pairs_of(E, e), n, &E->th) != 0) {
		E->c.invalid += count;
		return -1;
	}
	if (E->th.nframes == 0) {
		E->c.no_python += count;
		return -1;
	}
	event_span(w, e, &E->th.span);
	E->th.tid = (pid_t)e->tid;
	E->th.tstate = e->tstate;
	E->th.truncated |= e->truncated != 0;
	E->th.name = NULL;
	E->c.samples += count;
	E->delivered += (int)count;
	return 0;
}

/* ---- each thread's latest record (kernel runtime weights only) ---- */

#define LAST_MAX 8192                   /* slots: at most half of them used */
#define LAST_AGE_NS 2000000000ull

static struct last *last_slot(hm_ebpf *E, uint32_t tid)
{
	size_t mask = E->cap_last - 1;
	for (size_t i = (tid * 2654435761u) & mask;; i = (i + 1) & mask)
		if (E->last_ev[i].tid == tid || !E->last_ev[i].tid)
			return &E->last_ev[i];
}

/* Put the entries of live processes (pid != drop) sampled at or after
 * since_ns into a table of cap slots (a power of 2). */
static int last_rehash(hm_ebpf *E, size_t cap, uint32_t drop, uint64_t since_ns)
{
	struct last *old = E->last_ev;
	size_t ocap = E->cap_last;
	struct last *nt = calloc(cap, sizeof *nt);
	if (!nt)
		return -1;
	E->last_ev = nt;
	E->cap_last = cap;
	E->n_last = 0;
	for (size_t i = 0; i < ocap; i++) {
		if (!old[i].tid)
			continue;
		if (old[i].pid == drop || old[i].t_ns < since_ns) {
			free(old[i].ev);
			continue;
		}
		*last_slot(E, old[i].tid) = old[i];
		E->n_last++;
	}
	free(old);
	return 0;
}

/* Remember e (len bytes) as tid's latest record if it is. */
static void last_note(hm_ebpf *E, const struct hm_bpf_event *e, size_t len, uint64_t t_ns)
{
	if (!E->rt_weights || E->nat || !e->tid)
		return;
	if (E->n_last * 2 >= E->cap_last) {
		/* Full at LAST_MAX: the threads not sampled for LAST_AGE_NS go
		 * (ended ones, in a long-lived process whose threads come and
		 * go, as under the agent): a thread that ran a period or more
		 * after its last sample would most likely have had another, so
		 * what they would still give at the end is next to nothing, and
		 * memory stays flat. */
		size_t cap = E->cap_last ? E->cap_last * 2 : 256;
		uint64_t since = 0;
		if (cap > LAST_MAX) {
			cap = E->cap_last;
			since = t_ns > LAST_AGE_NS ? t_ns - LAST_AGE_NS : 0;
		}
		if (last_rehash(E, cap, 0, since) != 0 || E->n_last * 2 >= E->cap_last)
			return;
	}
	struct last *l = last_slot(E, e->tid);
	if (l->tid && l->pid == e->pid && l->t_ns > t_ns)
		return;
	if (!l->tid || l->len < len) {
		struct hm_bpf_event *n = malloc(len);
		if (!n)
			return;
		free(l->ev);
		l->ev = n;
	}
	if (!l->tid)
		E->n_last++;
	l->tid = e->tid;
	l->pid = e->pid;
	l->t_ns = t_ns;
	l->len = len;
	memcpy(l->ev, e, len);
}

/* The CPU time of count samples that the kernel weighed weight_ns in all
 * (pystack.h, hm_bpf_event.weight_ns): that, or count periods where the
 * kernel's runtime could not be read. */
static int64_t cpu_time(const hm_ebpf *E, uint64_t count, uint64_t weight_ns)
{
	if (!E->rt_weights || weight_ns > (uint64_t)INT64_MAX)
		return E->weight_ns * (int64_t)count;
	return (int64_t)weight_ns;
}

/* Deliver one record (from the ring, or an aggregate's first sample) as
 * count samples of weight_ns of CPU time in all, the latest at t_ns
 * (CLOCK_MONOTONIC). */
static void deliver(hm_ebpf *E, const struct hm_bpf_event *e, size_t len, uint64_t count,
		    uint64_t weight_ns, uint64_t t_ns, const char *const *kframes, int nk)
{
	size_t head = offsetof(struct hm_bpf_event, frames);
	if (len < head)
		return;
	struct watched *w = find_watched(E, (pid_t)e->pid);
	if (!w)
		return;                     /* unwatched since */
	if (e->nframes > HM_BPF_MAX_FRAMES || e->nkips > HM_BPF_KSTACK_DEPTH ||
	    len < head + e->nframes * sizeof e->frames[0] + e->nkips * sizeof(uint64_t)) {
		E->c.invalid += count;
		return;
	}
	if (e->status == HM_BPF_NO_THREAD || e->status == HM_BPF_NO_FRAME) {
		E->c.no_python += count;
		return;
	}
	if (e->status != HM_BPF_OK) {
		E->c.invalid += count;
		return;
	}
	/* --native: a perf sample follows; wait for it (the same test as the
	 * program's native_wanted; such records are never counted in the
	 * kernel). */
	if (count == 1 && w->nat && E->nat && e->nframes > 0 && e->t_ns >= w->native_from &&
	    pend_add(E, e, len) == 0)
		return;
	if (record_stack(E, w, e, count) == 0) {
		E->fn(E->arg, w->owner, &E->th, (int64_t)count, cpu_time(E, count, weight_ns),
		      t_ns + E->mono_to_real, kframes, nk);
		if (count)
			last_note(E, e, len, t_ns);
	}
}

static int kernel_ips(hm_ebpf *E, const struct hm_bpf_event *e);

static int on_event(void *ctx, void *data, size_t len)
{
	hm_ebpf *E = ctx;
	const struct hm_bpf_event *e = data;
	if (len >= offsetof(struct hm_bpf_event, frames) && e->status == HM_BPF_NEW_TRACE) {
		trace_first(E, e);
		return 0;
	}
	if (len >= offsetof(struct hm_bpf_event, frames) && e->status == HM_BPF_NEW_STACK) {
		stack_first(E, e, len);
		return 0;
	}
	if (len >= offsetof(struct hm_bpf_event, frames) && e->nframes <= HM_BPF_MAX_FRAMES &&
	    e->nkips <= HM_BPF_KSTACK_DEPTH &&
	    len >= offsetof(struct hm_bpf_event, frames) + e->nframes * sizeof e->frames[0] +
			   e->nkips * sizeof(uint64_t)) {
		int nk = kernel_ips(E, e);
		deliver(E, e, len, 1, e->weight_ns, e->t_ns, E->kf, nk);
	} else if (len >= offsetof(struct hm_bpf_event, frames)) {
		deliver(E, e, len, 1, e->weight_ns, e->t_ns, NULL, 0);   /* counted invalid */
	}
	return 0;
}

/* ---- the aggregates (pystack.h): read and cleared about once a second */

#define AGG_BATCH 128

/* ---- kernel stacks (--kernel): ids into the kstacks map, symbols from
 * /proc/kallsyms (read once; text symbols only) */

static int ksym_cmp(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;
	return (x->addr > y->addr) - (x->addr < y->addr);
}

static void ksyms_load(hm_ebpf *E)
{
	E->ksyms_loaded = 1;
	FILE *f = fopen("/proc/kallsyms", "re");
	if (!f)
		return;
	size_t cap = 0, ncap = 0, nlen = 0;
	char line[512];
	while (fgets(line, sizeof line, f)) {
		unsigned long long addr;
		char type, name[256];
		if (sscanf(line, "%llx %c %255s", &addr, &type, name) != 3 || !addr ||
		    (type != 't' && type != 'T'))
			continue;
		size_t l = strlen(name) + 1;
		if (E->nksyms == cap) {
			size_t nc = cap ? cap * 2 : 65536;
			struct ksym *ns = realloc(E->ksyms, nc * sizeof *ns);
			if (!ns)
				break;
			E->ksyms = ns;
			cap = nc;
		}
		if (nlen + l > ncap) {
			size_t nc = ncap ? ncap * 2 : 1 << 20;
			char *nn = realloc(E->ksym_names, nc);
			if (!nn)
				break;
			E->ksym_names = nn;
			ncap = nc;
		}
		memcpy(E->ksym_names + nlen, name, l);
		E->ksyms[E->nksyms++] = (struct ksym){addr, nlen};
		nlen += l;
	}
	fclose(f);
	qsort(E->ksyms, E->nksyms, sizeof *E->ksyms, ksym_cmp);
}

static const char *ksym_name(hm_ebpf *E, uint64_t ip)
{
	size_t lo = 0, hi = E->nksyms;
	while (lo < hi) {   /* the last symbol at or below ip */
		size_t mid = lo + (hi - lo) / 2;
		if (E->ksyms[mid].addr <= ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? E->ksym_names + E->ksyms[lo - 1].name : "[kernel]";
}

/* n kernel addresses (leaf first, a zero ends them early) named into
 * E->kf; their number. */
static int kernel_names(hm_ebpf *E, const uint64_t *ips, int n)
{
	if (!E->ksyms_loaded)
		ksyms_load(E);
	int k = 0;
	while (k < n && k < HM_BPF_KSTACK_DEPTH && ips[k]) {
		E->kf[k] = ksym_name(E, ips[k]);
		k++;
	}
	return k;
}

/* The kernel frames of stack id into E->kf (leaf first); their number. */
static int kernel_frames(hm_ebpf *E, int id)
{
	if (!E->kstack_on || id < 0)
		return 0;
	uint64_t ips[HM_BPF_KSTACK_DEPTH];
	uint32_t key = (uint32_t)id;
	if (bpf_map__lookup_elem(E->skel->maps.kstacks, &key, sizeof key, ips, sizeof ips, 0) != 0)
		return 0;
	return kernel_names(E, ips, HM_BPF_KSTACK_DEPTH);
}

/* A ring record's own kernel frames (--kernel, in kernel mode; checked:
 * e holds nkips addresses after its frames) into E->kf. */
static int kernel_ips(hm_ebpf *E, const struct hm_bpf_event *e)
{
	if (!E->kstack_on || !e->nkips)
		return 0;
	uint64_t ips[HM_BPF_KSTACK_DEPTH];
	int n = (int)e->nkips;
	memcpy(ips, HM_BPF_KIPS(e), (size_t)n * sizeof ips[0]);
	return kernel_names(E, ips, n);
}

/* Forget the kernel stacks read (the map is bounded). */
static void kstacks_clear(hm_ebpf *E)
{
	if (!E->kstack_on)
		return;
	int fd = bpf_map__fd(E->skel->maps.kstacks);
	uint32_t k;
	for (int i = 0; i < HM_BPF_KSTACKS && bpf_map_get_next_key(fd, NULL, &k) == 0; i++)
		if (bpf_map_delete_elem(fd, &k) != 0)
			break;
}

/* The same one entry at a time, for kernels without batch operations on
 * hash maps (before 5.6). */
static void agg_drain_slow(hm_ebpf *E, int fd)
{
	struct hm_bpf_agg_key k;
	for (int i = 0; i < E->agg_max && bpf_map_get_next_key(fd, NULL, &k) == 0; i++) {
		if (bpf_map_lookup_elem(fd, &k, &E->agg_vals[0]) == 0) {
			E->c.agg_entries++;
			int nk = kernel_frames(E, k.kstack);
			deliver(E, &E->agg_vals[0].ev, sizeof E->agg_vals[0].ev, E->agg_vals[0].count,
				E->agg_vals[0].weight_ns, E->agg_vals[0].last_ns, E->kf, nk);
		}
		if (bpf_map_delete_elem(fd, &k) != 0)
			break;
	}
}

/* Read and clear the aggs map, delivering each entry's samples. */
static void agg_drain(hm_ebpf *E)
{
	if (!E->agg_keys) {
		E->agg_keys = malloc(AGG_BATCH * sizeof *E->agg_keys);
		E->agg_vals = malloc(AGG_BATCH * sizeof *E->agg_vals);
		if (!E->agg_keys || !E->agg_vals)
			return;
	}
	int fd = bpf_map__fd(E->skel->maps.aggs);
	uint64_t token = 0;
	int first = 1;
	/* The counts cover the time since the last drain. */
	for (int i = 0; i < E->nw; i++)
		if (E->w[i].pid)
			hm_python_resolve_window(E->w[i].py, E->agg_last);
	/* Bounded: the map holds at most max_entries (it may fill again
	 * while we read). */
	for (int rounds = 0; rounds < 1 + E->agg_max / AGG_BATCH + 4; rounds++) {
		uint32_t n = AGG_BATCH;
		int rc = bpf_map_lookup_and_delete_batch(fd, first ? NULL : &token, &token, E->agg_keys,
							 E->agg_vals, &n, NULL);
		int err = rc < 0 ? errno : 0;
		first = 0;
		if (rc < 0 && err != ENOENT) {
			if (rounds == 0)
				agg_drain_slow(E, fd);      /* no batch operations here */
			break;
		}
		/* Every span first (local roots, parents): a trace's samples
		 * may come before the one of its root span in the batch; and
		 * every code object, so that one seen dead is known before the
		 * first stack is given (hm_python_resolve_check). */
		for (uint32_t i = 0; i < n; i++) {
			const struct hm_bpf_event *e = &E->agg_vals[i].ev;
			struct watched *w = find_watched(E, (pid_t)e->pid);
			hm_pyspan sp;
			if (!w)
				continue;
			event_span(w, e, &sp);
			if (e->status == HM_BPF_OK && e->nframes <= HM_BPF_MAX_FRAMES)
				hm_python_resolve_check(w->py, pairs_of(E, e), (int)e->nframes);
		}
		for (uint32_t i = 0; i < n; i++) {
			const struct hm_bpf_agg *v = &E->agg_vals[i];
			E->c.agg_entries++;
			int nk = kernel_frames(E, E->agg_keys[i].kstack);
			deliver(E, &v->ev, sizeof v->ev, v->count, v->weight_ns, v->last_ns, E->kf, nk);
		}
		if (rc < 0)
			break;                      /* ENOENT: the end */
	}
	for (int i = 0; i < E->nw; i++)
		if (E->w[i].pid)
			hm_python_resolve_window(E->w[i].py, 0);
	kstacks_clear(E);
}

/* The layout the BPF program walks with, from the target's hm_pylayout. */
static int proc_info(hm_python *py, struct hm_bpf_proc *pi, int same_pidns)
{
	const hm_pylayout *L = hm_python_layout(py);
	memset(pi, 0, sizeof *pi);
	if (L->major < 3 || (L->major == 3 && L->minor < 8))
		return hm_error(HM_EVERSION, "--ebpf: Python %s is not supported (3.8+)", hm_python_version(py));
	pi->is_threads_head = L->is_threads_head;
	pi->ts_next = L->ts_next;
	pi->ts_native_tid = same_pidns ? L->ts_native_thread_id : -1;
	pi->ts_cframe = L->ts_cframe;
	pi->cframe_current_frame = L->cframe_current_frame;
	pi->ts_frame = L->ts_frame;
	if (L->frame_model == HM_FRAMES_OBJECTS) {
		pi->frame_model = 0;
		pi->f_code = L->fo_code;
		pi->f_back = L->fo_back;
		pi->f_instr = L->fo_lasti;
		pi->f_owner = -1;
		pi->owner_cstack = -1;
	} else if (L->frame_model == HM_FRAMES_INTERP) {
		pi->frame_model = 1;
		pi->f_code = L->if_code;
		pi->f_back = L->if_previous;
		pi->f_instr = L->if_instr;
		pi->f_owner = L->if_owner;
		pi->owner_cstack = L->owner_cstack;
		pi->owner_max = L->owner_max;
		pi->code_tagged = L->executable_tagged;
	} else {
		return hm_error(HM_EVERSION, "--ebpf: Python %s is not supported (3.8+)", hm_python_version(py));
	}
	pi->native = 0;
	pi->f_localsplus = hm_python_locals_offset(py);
	pi->f_is_entry = L->frame_model == HM_FRAMES_INTERP && L->if_is_entry >= 0 ? L->if_is_entry : -1;
	int hi = pi->f_code > pi->f_back ? pi->f_code : pi->f_back;
	if (pi->f_is_entry > hi)
		hi = pi->f_is_entry;
	if (pi->f_instr > hi)
		hi = pi->f_instr;
	if (pi->f_owner > hi)
		hi = pi->f_owner;
	pi->frame_min = hi + 8;
	if (pi->frame_min > 120 || pi->f_code < 0 || pi->f_back < 0 || pi->f_instr < 0)
		return hm_error(HM_EVERSION, "--ebpf: this interpreter's frame layout is not supported");
	if (pi->ts_cframe < 0 && pi->ts_frame < 0)
		return hm_error(HM_EVERSION, "--ebpf: no frame pointer in this interpreter's layout");
	return HM_OK;
}

/* Send the thread states user space knows (and the interpreter). */
/* Each thread's runtime now (the first field of its schedstat: the same
 * se.sum_exec_runtime the program reads) into the rtlast map, before the
 * process's first sample: a thread's first sample then weighs its runtime
 * since the watch began, not a period, so that a thread sampled rarely
 * (short bursts) is not short of the time before it. Threads born later
 * have their first sample weigh a period. */
static void seed_runtimes(hm_ebpf *E, pid_t pid)
{
	if (!E->rt_weights)
		return;
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d)) && n < HM_BPF_MAX_TIDS / 4) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);
		if (tid <= 0 || *end)
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%ld/schedstat", (int)pid, tid);
		FILE *f = fopen(path, "re");
		unsigned long long rt;
		if (!f)
			continue;
		if (fscanf(f, "%llu", &rt) == 1) {
			struct hm_bpf_rt v = {.rt = rt, .pid = (uint32_t)pid};
			uint32_t k = (uint32_t)tid;
			bpf_map__update_elem(E->skel->maps.rtlast, &k, sizeof k, &v, sizeof v, BPF_ANY);
			n++;
		}
		fclose(f);
	}
	closedir(d);
}

static int send_threads(hm_ebpf *E, struct watched *w)
{
	pid_t tids[HM_BPF_MAX_THREADS * 4];
	uint64_t ts[HM_BPF_MAX_THREADS * 4];
	uint64_t interp = 0;
	int n = hm_python_thread_states(w->py, &interp, tids, ts, (int)(sizeof tids / sizeof *tids));
	if (n < 0)
		return -1;
	if (interp && (!w->interp_sent || w->pi.interp != interp)) {
		w->pi.interp = interp;
		uint32_t key = (uint32_t)w->pid;
		if (bpf_map__update_elem(E->skel->maps.procs, &key, sizeof key, &w->pi, sizeof w->pi,
					 BPF_ANY) != 0)
			return -1;
		w->interp_sent = 1;
	}
	for (int i = 0; i < n; i++) {
		uint32_t k = (uint32_t)tids[i];
		bpf_map__update_elem(E->skel->maps.tids, &k, sizeof k, &ts[i], sizeof ts[i], BPF_ANY);
	}
	return n;
}

/* Tell the kernel side how to read the process's span, once the SDK is
 * found (tracing on: hm_python_span_layout says no with --no-trace). */
static void send_otel(hm_ebpf *E, struct watched *w, uint64_t now)
{
	/* Once sent, only an unexpected object met in the kernel (a class
	 * whose shared keys changed, a span class not known yet) makes it
	 * look again: the look-up reads sys.modules. */
	if (now < w->otel_next_ns || (w->otel_sent && w->otel_complete && !w->otel_bad))
		return;
	w->otel_bad = 0;
	hm_pyspan_layout L;
	uint32_t key = (uint32_t)w->pid;
	if (!w->otel_first_ns)
		w->otel_first_ns = now;
	int rc = hm_python_span_layout(w->py, &L);
	/* The SDK is there but, e.g. on <=3.10, no span was live in a
	 * thread's context just now: in the first second, a few more tries
	 * a millisecond apart (spans come and go fast). */
	for (int i = 0; rc == 1 && !w->otel_sent && now - w->otel_first_ns < 1000000000ull && i < 8;
	     i++) {
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
		rc = hm_python_span_layout(w->py, &L);
	}
	if (rc != 0) {
		if (w->otel_complete) {
			w->otel_next_ns = now + OTEL_RECHECK_NS;
			return;
		}
		/* (cheap while the SDK is not there or has made no span:
		 * python/otel.c keeps its own back-off for the first) */
		w->otel_backoff_ns = now - w->otel_first_ns < 1000000000ull ? OTEL_RETRY_FAST_NS
			: now - w->otel_first_ns < OTEL_RETRY_FOR_NS ? OTEL_RETRY_NS
			: w->otel_backoff_ns * 2 > OTEL_RETRY_MAX_NS ? OTEL_RETRY_MAX_NS
			: w->otel_backoff_ns * 2;
		w->otel_next_ns = now + w->otel_backoff_ns;
		return;
	}
	struct hm_bpf_otel o;
	memset(&o, 0, sizeof o);
	o.ctx_type = L.ctx_type;
	o.hamt_type = L.hamt_type;
	o.bitmap_type = L.bitmap_type;
	o.array_type = L.array_type;
	o.var = L.var;
	o.dict_type = L.dict_type;
	o.span_key = L.span_key;
	o.sctx_type = L.sctx_type;
	o.int_type = L.int_type;
	o.str_type = L.str_type;
	o.var_h32 = L.var_h32;
	o.ts_context = L.ts_context;
	o.ctx_vars = L.ctx_vars;
	o.hamt_root = L.hamt_root;
	o.inst_kind = L.inst_kind;
	o.inst_dict_ptr = L.inst_dict_ptr;
	o.inst_values_ptr = L.inst_values_ptr;
	o.dv_values = L.dv_values;
	o.ht_cached_keys = L.ht_cached_keys;
	o.long_tagged = L.long_tagged;
	o.ascii_size = L.ascii_size;
	o.str_compact = L.str_compact;
	o.str_ascii = L.str_ascii;
	o.compact_size = L.compact_size;
	for (int i = 0; i < 2; i++) {
		o.types[i].type = L.types[i].type;
		o.types[i].keys = L.types[i].keys;
		o.types[i].basicsize = L.types[i].basicsize;
		o.types[i].idx_context = L.types[i].idx_context;
		o.types[i].idx_name = L.types[i].idx_name;
		o.types[i].dictoffset = L.types[i].dictoffset;
		o.types[i].ctx_key_at = L.types[i].ctx_key_at;
		o.types[i].ctx_key = L.types[i].ctx_key;
		/* _context, _name and _parent read at once from the span's
		 * values, when they lie within 24 entries of each other. */
		int idx[3] = {L.types[i].idx_context, L.types[i].idx_name, L.types[i].idx_parent};
		int lo = idx[0], hi = idx[0];
		for (int j = 1; j < 3; j++) {
			if (idx[j] >= 0 && idx[j] < lo)
				lo = idx[j];
			if (idx[j] > hi)
				hi = idx[j];
		}
		o.types[i].idx_parent = L.types[i].idx_parent;
		if (lo >= 0 && hi - lo < 24) {
			o.types[i].vals_first = lo;
			o.types[i].vals_n = hi - lo + 1;
		} else {
			o.types[i].idx_parent = -1;
		}
	}
	o.none_addr = L.none_addr;
	o.true_addr = L.true_addr;
	o.dict_old = L.dict_old;
	/* The SDK's span class is known once it made a span (its shared
	 * keys fill in then): until then keep looking at the fast pace. */
	w->otel_complete = (o.types[0].type && o.types[0].idx_name >= 0) ||
			   (o.types[1].type && o.types[1].idx_name >= 0);
	w->otel_next_ns = now + (w->otel_complete ? OTEL_RECHECK_NS : OTEL_RETRY_NS);
	if (w->otel_sent && !memcmp(&o, &w->otel, sizeof o))
		return;
	if (bpf_map__update_elem(E->skel->maps.otel, &key, sizeof key, &o, sizeof o, BPF_ANY) == 0) {
		w->otel = o;
		w->otel_sent = 1;
	}
}

static int same_pid_namespace(pid_t pid)
{
	char a[64], b[64], pa[64];
	snprintf(pa, sizeof pa, "/proc/%d/ns/pid", (int)pid);
	ssize_t la = readlink("/proc/self/ns/pid", a, sizeof a - 1);
	ssize_t lb = readlink(pa, b, sizeof b - 1);
	return la > 0 && la == lb && !memcmp(a, b, (size_t)la);
}

static int native_open(hm_ebpf *E, int stack_bytes, hm_ebpf_native_fn nfn);
static void native_attr(hm_ebpf *E, struct perf_event_attr *a);
static int native_ring(hm_ebpf *E, int cpu, int fd);
static int native_poll(hm_ebpf *E, int timeout_ms);
static void native_close(hm_ebpf *E);

/* Where task_struct keeps se.sum_exec_runtime (the thread's runtime as
 * the scheduler accounts it), from the running kernel's BTF: its offset,
 * or 0 when the kernel has no BTF or the fields are not there. (Looked up
 * here rather than relocated by CO-RE, which would make the whole program
 * fail to load on a kernel without BTF.) */
static uint32_t runtime_offset(void)
{
	struct btf *btf = btf__load_vmlinux_btf();
	if (!btf || libbpf_get_error(btf))
		return 0;
	uint32_t off = 0, se = 0;
	const char *names[2][2] = {{"task_struct", "se"}, {"sched_entity", "sum_exec_runtime"}};
	int ok = 1;
	for (int step = 0; step < 2 && ok; step++) {
		ok = 0;
		int id = btf__find_by_name_kind(btf, names[step][0], BTF_KIND_STRUCT);
		const struct btf_type *t = id > 0 ? btf__type_by_id(btf, (uint32_t)id) : NULL;
		const struct btf_member *m = t ? btf_members(t) : NULL;
		for (int i = 0; t && i < btf_vlen(t); i++) {
			const char *mn = btf__name_by_offset(btf, m[i].name_off);
			uint32_t bits = btf_member_bit_offset(t, (uint32_t)i);
			if (mn && !strcmp(mn, names[step][1]) && bits % 8 == 0 &&
			    !btf_member_bitfield_size(t, (uint32_t)i)) {
				if (step == 0)
					se = bits / 8;
				else
					off = se + bits / 8;
				ok = 1;
				break;
			}
		}
	}
	btf__free(btf);
	return ok ? off : 0;
}

static int ebpf_open(double rate_hz, int kernel_stacks, int stack_bytes, hm_ebpf_native_fn nfn,
		     hm_ebpf **out)
{
	*out = NULL;
	libbpf_set_print(libbpf_quiet);
	hm_ebpf *E = calloc(1, sizeof *E);
	if (!E)
		return hm_error(HM_ENOMEM, "out of memory");
	E->stats_fd = -1;
	int rc;
	/* HOMURA_BPF_RING=1 sends every sample through the ring buffer (no
	 * aggregation); HOMURA_BPF_AGG_ENTRIES sizes the aggs map (tests fill
	 * a small one to check the fallback to the ring);
	 * HOMURA_BPF_AGG_READ_MS reads it at that fixed period (tests take
	 * one longer than a program, whose stacks are then all resolved
	 * through the code objects read at their first count). */
	const char *ring = getenv("HOMURA_BPF_RING");
	const char *ents = getenv("HOMURA_BPF_AGG_ENTRIES");
	const char *every = getenv("HOMURA_BPF_AGG_READ_MS");
	E->agg_read_ns = AGG_READ_NS;
	E->agg_first_ns = AGG_FIRST_NS;
	if (every && atoi(every) > 0 && atoi(every) <= 3600 * 1000)
		E->agg_read_ns = E->agg_first_ns = (uint64_t)atoi(every) * 1000000ull;
	E->agg = !(ring && !strcmp(ring, "1"));
	E->agg_max = HM_BPF_AGG_ENTRIES;
	if (ents && atoi(ents) > 0 && atoi(ents) <= 1 << 20)
		E->agg_max = atoi(ents);
	double rate = rate_hz > 0 ? rate_hz : 100;
	uint64_t period = (uint64_t)(1e9 / rate);
	if (period < 10000)
		period = 10000;
	E->weight_ns = (int64_t)period;
	/* HOMURA_BPF_WEIGHTS=period: every sample weighs one period (tests
	 * and measurements compare the two). */
	const char *wv = getenv("HOMURA_BPF_WEIGHTS");
	uint32_t rt_off = wv && !strcmp(wv, "period") ? 0 : runtime_offset();
	E->rt_weights = rt_off != 0;
	E->c.cpu_from_kernel = E->rt_weights;
	E->skel = hm_pystack__open();
	if (E->skel) {
		E->skel->rodata->hm_rt_off = rt_off;
		E->skel->rodata->hm_period_ns = period;
		E->skel->rodata->hm_agg_on = (uint32_t)E->agg;
		E->skel->rodata->hm_kstack_on = kernel_stacks ? 1u : 0u;
		E->kstack_on = kernel_stacks != 0;
		bpf_map__set_max_entries(E->skel->maps.aggs, (uint32_t)E->agg_max);
		if (hm_pystack__load(E->skel) != 0) {
			int err = errno;
			hm_pystack__destroy(E->skel);
			E->skel = NULL;
			errno = err;
		}
	}
	if (!E->skel) {
		rc = hm_error(errno == EPERM || errno == EACCES ? HM_EPERM : HM_ESYS,
			      "--ebpf: cannot load the BPF program: %s (needs root or CAP_BPF and "
			      "CAP_PERFMON, and a kernel with BPF ring buffers)", strerror(errno));
		goto fail;
	}
	int ncpu = libbpf_num_possible_cpus();
	E->ncpu = ncpu <= 0 ? 1 : ncpu > MAX_CPUS ? MAX_CPUS : ncpu;
	if (nfn && (rc = native_open(E, stack_bytes, nfn)) != HM_OK)
		goto fail;
	E->links = calloc((size_t)E->ncpu, sizeof *E->links);
	E->fds = malloc((size_t)E->ncpu * sizeof *E->fds);
	if (!E->links || !E->fds) {
		rc = hm_error(HM_ENOMEM, "out of memory");
		goto fail;
	}
	for (int c = 0; c < E->ncpu; c++)
		E->fds[c] = -1;
	int opened = 0;
	for (int c = 0; c < E->ncpu; c++) {
		struct perf_event_attr a;
		memset(&a, 0, sizeof a);
		a.size = sizeof a;
		a.type = PERF_TYPE_SOFTWARE;
		a.config = PERF_COUNT_SW_CPU_CLOCK;
		a.sample_period = period;
		if (E->nat)
			native_attr(E, &a);
		int fd = (int)syscall(SYS_perf_event_open, &a, -1, c, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0) {
			if (errno == ENODEV || errno == ENOENT)
				continue;           /* CPU offline */
			rc = hm_error(errno == EACCES || errno == EPERM ? HM_EPERM : HM_ESYS,
				      "--ebpf: perf_event_open on CPU %d: %s", c, strerror(errno));
			goto fail;
		}
		E->fds[c] = fd;
		if (E->nat && (rc = native_ring(E, c, fd)) != HM_OK)
			goto fail;
		E->links[c] = bpf_program__attach_perf_event(E->skel->progs.hm_pystack, fd);
		if (!E->links[c]) {
			rc = hm_error(HM_ESYS, "--ebpf: cannot attach the BPF program to CPU %d: %s", c,
				      strerror(errno));
			goto fail;
		}
		opened++;
	}
	if (!opened) {
		rc = hm_error(HM_ESYS, "--ebpf: no CPU could be sampled");
		goto fail;
	}
	E->mono_to_real = hm_real_ns() - hm_mono_ns();
	E->agg_last = hm_mono_ns();
	E->agg_every = E->agg_read_ns;
	E->rb = ring_buffer__new(bpf_map__fd(E->skel->maps.events), on_event, E, NULL);
	if (!E->rb) {
		rc = hm_error(HM_ESYS, "--ebpf: cannot open the ring buffer: %s", strerror(errno));
		goto fail;
	}
	if (E->nat) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
		if (epoll_ctl(E->nat->ep, EPOLL_CTL_ADD, ring_buffer__epoll_fd(E->rb), &ev) != 0) {
			rc = hm_error(HM_ESYS, "--ebpf: epoll: %s", strerror(errno));
			goto fail;
		}
	}
	/* The kernel's own count of the program's run time (for the summary
	 * and the benchmarks); optional. */
	E->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	*out = E;
	return HM_OK;
fail:
	hm_ebpf_close(E);
	return rc;
}

int hm_ebpf_open(double rate_hz, int kernel_stacks, hm_ebpf **out)
{
	return ebpf_open(rate_hz, kernel_stacks, 0, NULL, out);
}

/* (Every --native sample goes through the ring: its kernel stack, with
 * kernel_stacks, rides in the record.) */
int hm_ebpf_open_native(double rate_hz, int kernel_stacks, int stack_bytes, hm_ebpf_native_fn nfn,
			hm_ebpf **out)
{
	return ebpf_open(rate_hz, kernel_stacks, stack_bytes, nfn, out);
}

int hm_ebpf_watch(hm_ebpf *E, pid_t pid, hm_python *py, void *owner)
{
	struct hm_bpf_proc pi;
	int rc = proc_info(py, &pi, same_pid_namespace(pid));
	if (rc != HM_OK)
		return rc;
	struct watched *w = find_watched(E, pid);
	if (!w) {
		for (int i = 0; i < E->nw && !w; i++)
			if (!E->w[i].pid)
				w = &E->w[i];
	}
	if (!w) {
		if (E->nw == E->capw) {
			if (E->capw >= HM_BPF_MAX_PROCS)
				return hm_error(HM_EINVAL, "--ebpf: more than %d processes", HM_BPF_MAX_PROCS);
			int nc = E->capw ? E->capw * 2 : 16;
			struct watched *nw = realloc(E->w, (size_t)nc * sizeof *nw);
			if (!nw)
				return hm_error(HM_ENOMEM, "out of memory");
			E->w = nw;
			E->capw = nc;
			E->last = NULL;
		}
		w = &E->w[E->nw++];
		w->names = NULL;
	}
	free(w->names);             /* a process watched again */
	memset(w, 0, sizeof *w);
	w->pid = pid;
	w->py = py;
	w->owner = owner;
	w->pi = pi;
	w->refresh_ns = pi.ts_native_tid >= 0 ? TID_REFRESH_NS : TID_REFRESH_OLD_NS;
	hm_python_resolve_begin(py);
	/* The span layout first: the process's first samples (once it is in
	 * the procs map) then carry spans already. */
	send_otel(E, w, hm_mono_ns());
	seed_runtimes(E, pid);
	if (send_threads(E, w) < 0 || !w->interp_sent) {
		hm_ebpf_unwatch(E, pid);
		return hm_error(HM_EIO, "--ebpf: cannot read the interpreter's threads of process %d", (int)pid);
	}
	w->last_threads = hm_mono_ns();
	/* Read the counts soon: resolve its code objects while it runs. */
	E->agg_last = w->last_threads;
	E->agg_every = E->agg_first_ns;
	return HM_OK;
}

void hm_ebpf_unwatch(hm_ebpf *E, pid_t pid)
{
	struct watched *w = find_watched(E, pid);
	if (!w)
		return;
	uint32_t key = (uint32_t)pid;
	bpf_map__delete_elem(E->skel->maps.procs, &key, sizeof key, 0);
	if (E->cap_last)
		last_rehash(E, E->cap_last, (uint32_t)pid, 0);
	if (w->otel_sent)
		bpf_map__delete_elem(E->skel->maps.otel, &key, sizeof key, 0);
	/* Its tids age out of the LRU map. */
	w->pid = 0;
	w->py = NULL;
	w->nat = NULL;
	w->otel_sent = 0;
	free(w->names);
	w->names = NULL;
	E->last = NULL;
}

int hm_ebpf_poll(hm_ebpf *E, int timeout_ms, hm_ebpf_sample_fn fn, void *arg)
{
	for (int i = 0; i < E->nw; i++)
		if (E->w[i].pid)
			hm_python_resolve_begin(E->w[i].py);
	E->fn = fn;
	E->arg = arg;
	E->delivered = 0;
	/* The program does not wake us per sample (BPF_RB_NO_WAKEUP): wait
	 * for the timeout (or a ring filling up), then take what is there. */
	int got = E->nat || timeout_ms < 0 ? 0 : ring_buffer__poll(E->rb, timeout_ms);
	if (got < 0 && got != -EINTR)
		return hm_error(HM_ESYS, "--ebpf: ring buffer: %s", strerror(-got));
	got = E->nat ? native_poll(E, timeout_ms < 0 ? 0 : timeout_ms) : ring_buffer__consume(E->rb);
	if (got < 0 && got != -EINTR)
		return hm_error(HM_ESYS, "--ebpf: ring buffer: %s", strerror(-got));
	uint64_t now = hm_mono_ns();
	if (E->agg && (timeout_ms < 0 || now - E->agg_last >= E->agg_every)) {
		agg_drain(E);
		E->agg_last = now;
		E->agg_every = E->agg_every * 2 < E->agg_read_ns ? E->agg_every * 2 : E->agg_read_ns;
	}
	for (int i = 0; i < E->nw; i++) {
		struct watched *w = &E->w[i];
		if (w->pid && now - w->last_threads >= w->refresh_ns) {
			hm_python_resolve_begin(w->py);
			send_threads(E, w);
			w->last_threads = now;
		}
		if (w->pid)
			send_otel(E, w, now);
	}
	return E->delivered;
}

void hm_ebpf_finish(hm_ebpf *E, hm_ebpf_sample_fn fn, void *arg)
{
	E->fn = fn;
	E->arg = arg;
	size_t cap = E->cap_last;
	struct last *tab = E->last_ev;
	/* (deliver notes no record of count 0; the table is taken anyway) */
	E->last_ev = NULL;
	E->cap_last = E->n_last = 0;
	uint64_t cap_ns = HM_BPF_WEIGHT_CAP * (uint64_t)E->weight_ns;
	for (size_t i = 0; i < cap; i++) {
		struct last *l = &tab[i];
		if (!l->tid)
			continue;
		char path[64];
		snprintf(path, sizeof path, "/proc/%u/task/%u/schedstat", l->pid, l->tid);
		FILE *f = fopen(path, "re");
		unsigned long long now = 0;
		int ok = f && fscanf(f, "%llu", &now) == 1;
		if (f)
			fclose(f);
		struct hm_bpf_rt mark;
		uint32_t key = l->tid;
		if (ok && E->rt_weights && find_watched(E, (pid_t)l->pid) &&
		    bpf_map__lookup_elem(E->skel->maps.rtlast, &key, sizeof key, &mark, sizeof mark, 0) == 0 &&
		    mark.pid == l->pid && now > mark.rt) {
			uint64_t d = now - mark.rt;
			deliver(E, l->ev, l->len, 0, d < cap_ns ? d : cap_ns, l->t_ns, NULL, 0);
		}
		free(l->ev);
	}
	free(tab);
}

static uint64_t counter(hm_ebpf *E, uint32_t key, uint64_t *vals)
{
	uint64_t sum = 0;
	if (bpf_map__lookup_elem(E->skel->maps.counters, &key, sizeof key, vals,
				 (size_t)E->ncpu * sizeof *vals, 0) == 0)
		for (int c = 0; c < E->ncpu; c++)
			sum += vals[c];
	return sum;
}

void hm_ebpf_counts_get(hm_ebpf *E, hm_ebpf_counts *c)
{
	*c = E->c;
	struct bpf_prog_info info;
	uint32_t ilen = sizeof info;
	memset(&info, 0, sizeof info);
	if (E->stats_fd >= 0 &&
	    bpf_obj_get_info_by_fd(bpf_program__fd(E->skel->progs.hm_pystack), &info, &ilen) == 0) {
		c->runs = info.run_cnt;
		c->run_ns = info.run_time_ns;
	}
	uint64_t *vals = calloc((size_t)E->ncpu, sizeof *vals);
	if (vals) {
		c->dropped = counter(E, HM_BPFC_DROPPED, vals);
		c->matched = counter(E, HM_BPFC_MATCHED, vals);
		c->aggregated = counter(E, HM_BPFC_AGGREGATED, vals);
		c->agg_full = counter(E, HM_BPFC_AGG_FULL, vals);
		c->new_stacks = counter(E, HM_BPFC_NEW_STACKS, vals);
		free(vals);
	}
}

int hm_ebpf_wake_ms(const hm_ebpf *E)
{
	if (!E->agg)
		return 50;
	uint64_t now = hm_mono_ns(), due = E->agg_last + E->agg_every;
	uint64_t ms = due > now ? (due - now + 999999) / 1000000 : 1;
	return ms < 200 ? (int)ms : 200;
}

uint64_t hm_ebpf_invalid(const hm_ebpf *E)
{
	return E->c.invalid;
}

void hm_ebpf_close(hm_ebpf *E)
{
	if (!E)
		return;
	for (size_t i = 0; i < E->cap_last; i++)
		free(E->last_ev[i].ev);
	free(E->last_ev);
	if (E->rb)
		ring_buffer__free(E->rb);
	native_close(E);
	for (int c = 0; E->links && E->fds && c < E->ncpu; c++) {
		if (E->links[c])
			bpf_link__destroy(E->links[c]);
		if (E->fds[c] >= 0)
			close(E->fds[c]);
	}
	if (E->stats_fd >= 0)
		close(E->stats_fd);
	if (E->skel)
		hm_pystack__destroy(E->skel);
	for (int i = 0; E->w && i < E->nw; i++) {
		free(E->w[i].names);
	}
	free(E->th.frames);
	free(E->agg_keys);
	free(E->agg_vals);
	free(E->ksyms);
	free(E->ksym_names);
	free(E->links);
	free(E->fds);
	free(E->w);
	free(E);
}

/* ---- native frames without stopping anyone (--native) ------------------
 *
 * Each CPU's perf event also samples PERF_SAMPLE_TID | TIME | REGS_USER |
 * STACK_USER, on CLOCK_MONOTONIC (the clock of bpf_ktime_get_ns), into an
 * mmap ring of its own; the BPF program lets it write a sample only right
 * after a record of a process watched with native frames, in the same
 * interrupt. A poll waits on every ring, takes the BPF records first (those
 * records wait as pending), then each CPU's perf samples: a sample is joined
 * with the pending record of the same tid nearest in time, within JOIN_NS
 * (the program reads the clock a few microseconds before the sample is
 * written); one that finds none reads the BPF ring once more (its record
 * may have come in meanwhile), then counts as lost. The native stack is
 * unwound from the sample's registers and stack copy (hm_native_unwind_copy)
 * while the thread runs on. A record still without its sample after a whole
 * drain goes out with Python frames only (counted). */

#define JOIN_NS 1000000ull          /* at most 1 ms between the two clocks */
#define MAX_PENDING 50000          /* records (at most 2 KiB each) */
#define MAX_STACK_BYTES 60000       /* the kernel caps a sample at 64 KiB */
/* x86-64 perf registers: AX BX CX DX SI DI BP SP IP (bits 0-8), R8-R15
 * (bits 16-23), written in bit order. */
#define REGS_MASK 0xff01ffull
#define NREGS 17

static int native_open(hm_ebpf *E, int stack_bytes, hm_ebpf_native_fn nfn)
{
#if !defined(__x86_64__)
	(void)E; (void)stack_bytes; (void)nfn;
	return hm_error(HM_EINVAL, "--ebpf --native: native frames from the kernel sampler are "
			"only supported on x86-64");
#else
	struct native_side *N = calloc(1, sizeof *N);
	if (!N)
		return hm_error(HM_ENOMEM, "out of memory");
	E->nat = N;
	N->ep = -1;
	N->fn = nfn;
	N->debug = getenv("HOMURA_BPF_DEBUG") != NULL;
	if (stack_bytes <= 0)
		stack_bytes = HM_EBPF_STACK_BYTES;
	if (stack_bytes > MAX_STACK_BYTES)
		stack_bytes = MAX_STACK_BYTES;
	N->stack_bytes = stack_bytes & ~7;
	N->rings = calloc((size_t)E->ncpu, sizeof *N->rings);
	N->wrap = malloc(1 << 16);
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	N->ring_pages = PERF_RING_PAGES_MAX;
	while (N->ring_pages > 16 && (size_t)N->ring_pages * pg * (size_t)E->ncpu > PERF_RING_TOTAL)
		N->ring_pages /= 2;
	N->ring_len = (size_t)(N->ring_pages + 1) * pg;
	if (!N->rings || !N->wrap)
		return hm_error(HM_ENOMEM, "out of memory");
	N->ep = epoll_create1(EPOLL_CLOEXEC);
	if (N->ep < 0)
		return hm_error(HM_ESYS, "--ebpf: epoll: %s", strerror(errno));
	return HM_OK;
#endif
}

static void native_attr(hm_ebpf *E, struct perf_event_attr *a)
{
	a->sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_REGS_USER |
			 PERF_SAMPLE_STACK_USER;
	a->sample_regs_user = REGS_MASK;
	a->sample_stack_user = (uint32_t)E->nat->stack_bytes;
	a->use_clockid = 1;
	a->clockid = CLOCK_MONOTONIC;
	/* Off until the program is attached (libbpf enables it then): until
	 * then every sample of every task would be written. */
	a->disabled = 1;
	/* Wake the poll when a ring is half full, not per sample. */
	a->watermark = 1;
	a->wakeup_watermark = (uint32_t)((size_t)E->nat->ring_pages / 2 * (size_t)sysconf(_SC_PAGESIZE));
}

static int native_ring(hm_ebpf *E, int cpu, int fd)
{
	struct native_side *N = E->nat;
	void *m = mmap(NULL, N->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return hm_error(errno == EPERM ? HM_EPERM : HM_ESYS,
				"--ebpf --native: cannot map the perf ring of CPU %d: %s", cpu, strerror(errno));
	N->rings[cpu] = m;
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)cpu + 1};
	if (epoll_ctl(N->ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		return hm_error(HM_ESYS, "--ebpf: epoll: %s", strerror(errno));
	return HM_OK;
}

static int pend_add(hm_ebpf *E, const struct hm_bpf_event *e, size_t len)
{
	struct native_side *N = E->nat;
	if (N->npend >= MAX_PENDING)
		return -1;
	if (N->npend == N->cappend) {
		int nc = N->cappend ? N->cappend * 2 : 256;
		struct pend **np = realloc(N->pend, (size_t)nc * sizeof *np);
		if (!np)
			return -1;
		N->pend = np;
		N->cappend = nc;
	}
	struct pend *pd = malloc(offsetof(struct pend, ev) + len);
	if (!pd)
		return -1;
	pd->age = 0;
	pd->done = 0;
	pd->len = len;
	memcpy(&pd->ev, e, len);
	struct pend **b = &N->bucket[e->tid % PEND_BUCKETS];
	pd->next = *b;
	*b = pd;
	N->pend[N->npend++] = pd;
	return 0;
}

static struct pend *pend_find(struct native_side *N, uint32_t tid, uint64_t t)
{
	struct pend *best = NULL;
	uint64_t bestd = JOIN_NS + 1;
	for (struct pend *pd = N->bucket[tid % PEND_BUCKETS]; pd; pd = pd->next) {
		if (pd->done || pd->ev.tid != tid)
			continue;
		uint64_t d = t >= pd->ev.t_ns ? t - pd->ev.t_ns : pd->ev.t_ns - t;
		if (d < bestd) {
			best = pd;
			bestd = d;
		}
	}
	return best;
}

/* Records whose sample came are freed; those that waited a whole drain go
 * out with Python frames only; the rest wait for the next drain. */
static void pend_finish(hm_ebpf *E)
{
	struct native_side *N = E->nat;
	int k = 0;
	memset(N->bucket, 0, sizeof N->bucket);
	for (int i = 0; i < N->npend; i++) {
		struct pend *pd = N->pend[i];
		if (!pd->done && pd->age >= 1) {
			struct watched *w = find_watched(E, (pid_t)pd->ev.pid);
			if (N->debug)
				fprintf(stderr, "homura: native: record of tid %u at %llu without a perf sample\n",
					pd->ev.tid, (unsigned long long)pd->ev.t_ns);
			if (w && record_stack(E, w, &pd->ev, 1) == 0) {
				E->c.native_unjoined++;
				int nk = kernel_ips(E, &pd->ev);
				N->fn(E->arg, w->owner, &E->th, NULL, cpu_time(E, 1, pd->ev.weight_ns),
				      pd->ev.t_ns + E->mono_to_real, E->kf, nk);
			}
			pd->done = 1;
		}
		if (pd->done) {
			free(pd);
			continue;
		}
		pd->age++;
		struct pend **b = &N->bucket[pd->ev.tid % PEND_BUCKETS];
		pd->next = *b;
		*b = pd;
		N->pend[k++] = pd;
	}
	N->npend = k;
}

/* One PERF_RECORD_SAMPLE (its body, len bytes), copied out of the ring
 * with the used part of its stack copy, to be joined and unwound after the
 * rings are drained (so that a slow unwind, e.g. the first ones that load
 * line tables, never lets a ring fill up). */
static void perf_sample(hm_ebpf *E, const uint8_t *p, size_t len)
{
	struct native_side *N = E->nat;
	const uint8_t *end = p + len;
	uint32_t ids[2];
	uint64_t t, abi, size, dyn = 0, v[NREGS] = {0};
	const uint8_t *stack = NULL;
	if (len < 24)
		goto bad;
	memcpy(ids, p, 8);
	memcpy(&t, p + 8, 8);
	memcpy(&abi, p + 16, 8);
	p += 24;
	if (abi) {
		if ((size_t)(end - p) < sizeof v)
			goto bad;
		memcpy(v, p, sizeof v);
		p += sizeof v;
	}
	if ((size_t)(end - p) < 8)
		goto bad;
	memcpy(&size, p, 8);
	p += 8;
	if (size) {
		if (size > (size_t)(end - p) || (size_t)(end - p) - size < 8)
			goto bad;
		stack = p;
		memcpy(&dyn, p + size, 8);
		if (dyn > size)
			dyn = size;
	}
	if (N->qbytes + (size_t)dyn > MAX_QUEUED_BYTES)
		goto bad;
	if (N->nq == N->capq) {
		int nc = N->capq ? N->capq * 2 : 256;
		struct psample **nq = realloc(N->q, (size_t)nc * sizeof *nq);
		if (!nq)
			goto bad;
		N->q = nq;
		N->capq = nc;
	}
	struct psample *ps = malloc(sizeof *ps + (size_t)dyn);
	if (!ps)
		goto bad;
	ps->tid = ids[1];
	ps->t = t;
	ps->nregs = abi ? NREGS : 0;
	/* DWARF order: rax rdx rcx rbx rsi rdi rbp rsp r8-r15 rip. */
	uint64_t regs[NREGS] = {v[0],  v[3],  v[2],  v[1],  v[4],  v[5],  v[6],  v[7], v[9],
				v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[8]};
	memcpy(ps->regs, regs, sizeof regs);
	ps->len = (size_t)dyn;
	N->qbytes += (size_t)dyn;
	if (dyn)
		memcpy(ps->stack, stack, (size_t)dyn);
	N->q[N->nq++] = ps;
	return;
bad:
	E->c.native_lost++;
}

/* A copied perf sample: join it with its record, unwind, deliver. */
static void perf_join(hm_ebpf *E, const struct psample *ps)
{
	struct native_side *N = E->nat;
	struct pend *pd = pend_find(N, ps->tid, ps->t);
	if (!pd) {
		ring_buffer__consume(E->rb);    /* its record may have come since */
		pd = pend_find(N, ps->tid, ps->t);
	}
	if (!pd) {
		if (N->debug)
			fprintf(stderr, "homura: native: perf sample of tid %u at %llu without a record\n",
				ps->tid, (unsigned long long)ps->t);
		E->c.native_lost++;
		return;
	}
	pd->done = 1;
	struct watched *w = find_watched(E, (pid_t)pd->ev.pid);
	if (!w || !w->nat)
		return;                     /* unwatched since */
	if (N->debug)
		fprintf(stderr, "homura: native join: tid %u at %llu, perf - bpf = %lld ns, stack %zu bytes\n",
			ps->tid, (unsigned long long)ps->t, (long long)(ps->t - pd->ev.t_ns), ps->len);
	if (record_stack(E, w, &pd->ev, 1) != 0)
		return;
	E->c.native_joined++;
	hm_native_unwind_copy(w->nat, w->py, (pid_t)ps->tid, ps->regs, ps->nregs, ps->stack, ps->len,
			      &N->ns);
	int nk = kernel_ips(E, &pd->ev);
	N->fn(E->arg, w->owner, &E->th, &N->ns, cpu_time(E, 1, pd->ev.weight_ns),
	      pd->ev.t_ns + E->mono_to_real, E->kf, nk);
}

/* Everything in one CPU's perf ring. */
static void perf_drain(hm_ebpf *E, int cpu)
{
	struct native_side *N = E->nat;
	struct perf_event_mmap_page *m = N->rings[cpu];
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	uint8_t *data = (uint8_t *)m + (m->data_offset ? m->data_offset : pg);
	uint64_t size = m->data_size ? m->data_size : N->ring_len - pg;
	uint64_t head = __atomic_load_n(&m->data_head, __ATOMIC_ACQUIRE);
	uint64_t tail = m->data_tail;
	while (head - tail >= sizeof(struct perf_event_header)) {
		struct perf_event_header h;
		uint64_t off = tail % size;
		for (size_t i = 0; i < sizeof h; i++)
			((uint8_t *)&h)[i] = data[(off + i) % size];
		if (h.size < sizeof h || h.size > head - tail)
			break;
		const uint8_t *rec = data + off;
		if (off + h.size > size) {
			size_t first = (size_t)(size - off);
			memcpy(N->wrap, data + off, first);
			memcpy(N->wrap + first, data, h.size - first);
			rec = N->wrap;
		}
		if (h.type == PERF_RECORD_SAMPLE) {
			perf_sample(E, rec + sizeof h, h.size - sizeof h);
		} else if (h.type == PERF_RECORD_LOST && h.size >= sizeof h + 16) {
			uint64_t lost;
			memcpy(&lost, rec + sizeof h + 8, 8);
			E->c.native_lost += lost;
			if (N->debug)
				fprintf(stderr, "homura: native: %llu perf samples lost on CPU %d (ring %llu of %llu bytes used)\n",
					(unsigned long long)lost, cpu, (unsigned long long)(head - tail),
					(unsigned long long)size);
		}
		tail += h.size;
	}
	__atomic_store_n(&m->data_tail, tail, __ATOMIC_RELEASE);
}

/* Everything in the BPF ring, then in every perf ring (copied out). */
static int native_collect(hm_ebpf *E)
{
	struct native_side *N = E->nat;
	int got = ring_buffer__consume(E->rb);
	for (int c = 0; c < E->ncpu; c++)
		if (N->rings[c])
			perf_drain(E, c);
	N->collected_ns = hm_mono_ns();
	return got;
}

static int native_poll(hm_ebpf *E, int timeout_ms)
{
	struct native_side *N = E->nat;
	struct epoll_event evs[16];
	if (epoll_wait(N->ep, evs, 16, timeout_ms) < 0 && errno != EINTR)
		return -errno;
	int got = native_collect(E);
	if (got < 0)
		return got;
	/* Unwind what was copied; collect again now and then, so that the
	 * rings never fill while unwinds are slow; give up for this poll
	 * after a second (the rest waits for the next). */
	uint64_t t0 = hm_mono_ns();
	int i = 0;
	for (; i < N->nq; i++) {
		perf_join(E, N->q[i]);
		N->qbytes -= N->q[i]->len;
		free(N->q[i]);
		N->q[i] = NULL;
		if ((i & 7) == 7) {
			uint64_t now = hm_mono_ns();
			if (now - N->collected_ns > COLLECT_NS)
				native_collect(E);
			if (now - t0 > POLL_BUDGET_NS) {
				i++;
				break;
			}
		}
	}
	if (i && N->nq > i)
		memmove(N->q, N->q + i, (size_t)(N->nq - i) * sizeof *N->q);
	N->nq -= i;
	if (!N->nq)
		pend_finish(E);     /* records still waiting: only once all is joined */
	return got;
}

static void native_close(hm_ebpf *E)
{
	struct native_side *N = E->nat;
	if (!N)
		return;
	for (int c = 0; N->rings && c < E->ncpu; c++)
		if (N->rings[c])
			munmap(N->rings[c], N->ring_len);
	for (int i = 0; i < N->npend; i++)
		free(N->pend[i]);
	for (int i = 0; i < N->nq; i++)
		free(N->q[i]);
	free(N->q);
	if (N->ep >= 0)
		close(N->ep);
	hm_natstack_free(&N->ns);
	free(N->pend);
	free(N->rings);
	free(N->wrap);
	free(N);
	E->nat = NULL;
}

int hm_ebpf_watch_native(hm_ebpf *E, pid_t pid, hm_native *nat)
{
	struct watched *w = find_watched(E, pid);
	if (!w || !E->nat)
		return hm_error(HM_EINVAL, "--ebpf: process %d is not watched with native frames", (int)pid);
	w->nat = nat;
	w->pi.native = 1;
	uint32_t key = (uint32_t)pid;
	if (w->interp_sent &&
	    bpf_map__update_elem(E->skel->maps.procs, &key, sizeof key, &w->pi, sizeof w->pi, BPF_ANY) != 0) {
		w->nat = NULL;
		w->pi.native = 0;
		return hm_error(HM_ESYS, "--ebpf: cannot update process %d: %s", (int)pid, strerror(errno));
	}
	w->native_from = hm_mono_ns();
	return HM_OK;
}

#endif
