/* pystack.bpf.c - the in-kernel half of `record --ebpf`: a BPF program
 * attached to a per-CPU software cpu-clock perf event. It runs only on the
 * CPU where the interrupted task was running, so each run is one sample of
 * on-CPU time. For a task of a watched process (the procs map, filled by
 * sample/ebpf.c from the process's hm_pylayout) it finds the thread's
 * PyThreadState (the tids map, or a bounded scan of the interpreter's
 * thread list by native thread id on 3.11+), walks the current Python
 * frames leaf first with bpf_probe_read_user, and counts the stack of
 * (code object, instruction) pairs in a hash map per (thread, stack) that
 * user space reads about once a second (or, when that map is full or
 * aggregation is off, emits the pairs into a ring buffer), with the thread's current
 * OpenTelemetry span where asked for (otelspan.bpf.h). Names and lines are resolved in
 * user space, once per code object, with the walker's caches; validation of
 * what was read (object types, instruction ranges) happens there too. With
 * --native the program's return value lets the perf event write its own
 * sample (user registers and stack copy) right after such a record. Each
 * sample weighs the thread's runtime since its previous sample, from the
 * kernel's own accounting (sample_weight); with --kernel, a sample taken in
 * kernel mode carries the kernel stack (a stack id in the counted key, the
 * addresses themselves in a ring record). The first sample of each trace
 * is also sent at once (trace_new, trace_send), so that user space can look for the
 * trace's local root span while the trace runs; where a local of a frame
 * of the stack held a root before (root_hint), the program reads those
 * locals itself (root_of), and a root found there rides in the record,
 * which then needs no wake-up when that root is the span's parent. */
#include <linux/bpf.h>
#include <linux/bpf_perf_event.h>
#include <bpf/bpf_helpers.h>

#include "pystack.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HM_BPF_MAX_PROCS);
	__type(key, __u32);
	__type(value, struct hm_bpf_proc);
} procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, HM_BPF_MAX_TIDS);
	__type(key, __u32);
	__type(value, __u64);
} tids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HM_BPFC_NCOUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

#include "otelspan.bpf.h"

static __always_inline void count(__u32 i)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &i);
	if (v)
		*v += 1;
}

static __always_inline int rd(void *dst, __u32 len, __u64 addr)
{
	return bpf_probe_read_user(dst, len, (const void *)addr);
}

static __always_inline __u64 rd64(__u64 addr, int *err)
{
	__u64 v = 0;
	if (rd(&v, sizeof v, addr))
		*err = 1;
	return v;
}

/* The thread state of tid: the map, or (3.11+) a scan of the thread list. */
static __always_inline __u64 find_tstate(const struct hm_bpf_proc *p, __u32 tid)
{
	__u64 *hit = bpf_map_lookup_elem(&tids, &tid);
	int err = 0;
	if (hit && p->ts_native_tid < 0)
		return *hit;
	if (hit) {
		/* 3.11+: the state still names this thread (a tid can be
		 * reused by a new thread with a new state). */
		__u64 ts = *hit;
		__u64 ntid = rd64(ts + (__u64)p->ts_native_tid, &err);
		if (!err && (__u32)ntid == tid)
			return ts;
		bpf_map_delete_elem(&tids, &tid);
		err = 0;
	}
	if (p->ts_native_tid < 0)
		return 0;
	__u64 ts = rd64(p->interp + (__u64)p->is_threads_head, &err);
	for (int i = 0; i < HM_BPF_MAX_THREADS && ts && !err; i++) {
		__u64 ntid = rd64(ts + (__u64)p->ts_native_tid, &err);
		if (!err && (__u32)ntid == tid) {
			bpf_map_update_elem(&tids, &tid, &ts, BPF_ANY);
			return ts;
		}
		ts = rd64(ts + (__u64)p->ts_next, &err);
	}
	return 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hm_bpf_event);
} scratch SEC(".maps");

/* State of one walk, shared with the bpf_loop callback. */
struct walk {
	const struct hm_bpf_proc *p;
	struct hm_bpf_event *e;          /* the record (scratch) */
	struct fbuf *f;                  /* the frame header buffer (framebuf) */
	__u64 frame;
	__u32 n;
	__u32 status;
	__u32 truncated;
	__u64 hash;                      /* of the pairs so far (aggregation key) */
	struct winbuf *win;              /* the leaf's end of the data stack (3.11+) */
	__u64 win_lo, win_hi;            /* the addresses it holds (empty: equal) */
	__u64 want_root;                 /* a trace's first sample: note the */
	__u64 root_frame, root_code;     /* innermost frame of a root_hint code, */
	__u64 root_local;                /* and a local that held a root */
};

/* A frame's header, read in one go (every field the walk needs lies in
 * its first FRAME_READ bytes: checked by sample/ebpf.c). */
#define FRAME_READ 128
struct fbuf {
	__u8 b[FRAME_READ + 8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fbuf);
} framebuf SEC(".maps");

static __always_inline __u64 ld64(const struct fbuf *f, int off)
{
	__u64 v;
	__builtin_memcpy(&v, &f->b[off & (FRAME_READ - 1)], 8);
	return v;
}

/* 3.12+: the frame before a C-stack shim (leaf-ward) is the first one of
 * a C-level call of the evaluation loop (--native merging). */
static __always_inline void mark_entry(struct hm_bpf_event *e, __u32 n)
{
	__u32 i = n - 1;
	if (i < HM_BPF_MAX_FRAMES)          /* n == 0 wraps to a big i */
		e->frames[i].code |= HM_BPF_CODE_ENTRY;
}

/* ---- one read for many frames (3.11+) ----
 * _PyInterpreterFrames of Python functions live in the thread's data
 * stack, callers below callees: one read of the WIN bytes that end with the
 * leaf's header holds most frames of a typical stack, which are then copied
 * from it instead of read from the target one by one. */
#define WIN 4096
struct winbuf {
	__u8 b[WIN + FRAME_READ + 8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct winbuf);
} winbuf SEC(".maps");

/* Read the window that ends with the header of the leaf frame w->frame:
 * WIN bytes, or what lies in the leaf's page (the data stack's start may
 * follow an unmapped page). Leaves it empty when neither can be read. */
static __always_inline void window_read(struct walk *w)
{
	struct winbuf *win = w->win;
	w->win_lo = w->win_hi = 0;
	if (!win || (w->frame & 7))
		return;
	__u64 end = w->frame + FRAME_READ;
	if (rd(win->b, WIN, end - WIN) == 0) {
		w->win_lo = end - WIN;
		w->win_hi = end;
		return;
	}
	__u64 start = w->frame & ~4095ull;
	__u64 len = (end - start) & (2 * WIN - 1);   /* in [128, WIN + 127] */
	asm volatile("" : "+r"(len));    /* one register for the checks and the read */
	if (len > WIN || len < FRAME_READ)
		return;
	if (rd(win->b, len, start) == 0) {
		w->win_lo = start;
		w->win_hi = end;
	}
}

/* The header of frame (8-aligned) into f from the window: 0, or -1 when
 * the window does not hold it. */
static __always_inline int window_get(struct walk *w, struct fbuf *f, __u64 frame)
{
	struct winbuf *win = w->win;
	if (!win || frame < w->win_lo || frame + FRAME_READ > w->win_hi)
		return -1;
	__u64 off = (frame - w->win_lo) & (WIN - 1);
	__builtin_memcpy(f->b, &win->b[off], FRAME_READ);
	return 0;
}

/* ---- in-kernel aggregation (pystack.h) ---- */

/* Set by user space before loading: 1 to count samples per key in aggs,
 * 0 to send every sample to the ring buffer. */
volatile const __u32 hm_agg_on = 1;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HM_BPF_AGG_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct hm_bpf_agg_key);
	__type(value, struct hm_bpf_agg);
} aggs SEC(".maps");

/* Set by user space before loading: 1 to key samples taken in kernel mode
 * by their kernel stack too (--kernel). */
volatile const __u32 hm_kstack_on = 0;

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, HM_BPF_KSTACKS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, HM_BPF_KSTACK_DEPTH * sizeof(__u64));
} kstacks SEC(".maps");

/* Where a new key's first value is built. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hm_bpf_agg);
} aggbuf SEC(".maps");

static __always_inline __u64 agg_mix(__u64 h, __u64 code, __u64 instr)
{
	h = (h ^ code) * 0x100000001b3ull;
	h = (h ^ instr) * 0xff51afd7ed558ccdull;
	return h ^ (h >> 29);
}

/* Count e (whose frames hash to hash) in aggs: 0 done, 1 done with a new
 * key, -1 the map is full, or the key is new and may_insert is 0 (send it
 * to the ring instead). */
static __always_inline int agg_add(const struct hm_bpf_event *e, __u64 hash, int kstack,
				   int may_insert)
{
	struct hm_bpf_agg_key k;
	__builtin_memset(&k, 0, sizeof k);
	k.kstack = kstack;
	k.pid = e->pid;
	k.tid = e->tid;
	k.stack = hash;
	k.tstate = e->tstate;
	k.nframes = e->nframes;
	k.status = (__u8)e->status;
	k.truncated = (__u8)e->truncated;
	k.kernel = (__u8)e->kernel;
	k.span_why = (__u8)e->span_why;
	k.span = e->span;
	struct hm_bpf_agg *v = bpf_map_lookup_elem(&aggs, &k);
	if (v) {
		__sync_fetch_and_add(&v->count, 1);
		__sync_fetch_and_add(&v->weight_ns, e->weight_ns);
		v->last_ns = e->t_ns;
		return 0;
	}
	if (!may_insert)
		return -1;
	__u32 zero = 0;
	struct hm_bpf_agg *nv = bpf_map_lookup_elem(&aggbuf, &zero);
	if (!nv)
		return -1;
	nv->count = 1;
	nv->weight_ns = e->weight_ns;
	nv->last_ns = e->t_ns;
	bpf_probe_read_kernel(&nv->ev, sizeof nv->ev, e);
	long rc = bpf_map_update_elem(&aggs, &k, nv, BPF_NOEXIST);
	if (rc == 0)
		return 1;
	/* Another CPU added it meanwhile, or the map is full. */
	v = bpf_map_lookup_elem(&aggs, &k);
	if (v) {
		__sync_fetch_and_add(&v->count, 1);
		__sync_fetch_and_add(&v->weight_ns, e->weight_ns);
		return 0;
	}
	return -1;
}

/* ---- each sample's CPU time, from the kernel's own accounting ----
 * The cpu-clock timer cannot fire while interrupts are off (around context
 * switches), so a thread that runs in short bursts gets fewer samples than
 * its CPU time; the kernel's runtime of the thread (se.sum_exec_runtime,
 * what /proc/PID/task/TID/schedstat shows first) is exact, and its delta
 * since the thread's previous sample is the CPU time this sample stands
 * for: the deltas of a thread add up to its runtime, however few samples
 * it gets. (The kernel updates a running thread's runtime at its ticks and
 * context switches: a steady thread's time comes in tick-sized steps.) */

/* Set by user space before loading (sample/ebpf.c): the offset of
 * se.sum_exec_runtime in task_struct, from the kernel's BTF (0: unknown,
 * every sample weighs one period), and the period in ns. */
volatile const __u32 hm_rt_off = 0;
volatile const __u64 hm_period_ns = 1000000;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, HM_BPF_MAX_TIDS);
	__type(key, __u32);
	__type(value, struct hm_bpf_rt);
} rtlast SEC(".maps");

static __always_inline __u64 sample_weight(__u32 pid, __u32 tid, struct hm_bpf_rt **lp)
{
	__u64 rt = 0;
	*lp = 0;
	if (!hm_rt_off ||
	    bpf_probe_read_kernel(&rt, sizeof rt, (const void *)(bpf_get_current_task() + hm_rt_off)))
		return hm_period_ns;
	struct hm_bpf_rt *l = bpf_map_lookup_elem(&rtlast, &tid);
	if (l && l->pid == pid && rt >= l->rt) {
		*lp = l;
		/* (A thread runs on one CPU at a time: no other run of this
		 * program updates its entry meanwhile.) */
		__u64 d = rt - l->rt;
		l->rt = rt;
		return d < HM_BPF_WEIGHT_CAP * hm_period_ns ? d : HM_BPF_WEIGHT_CAP * hm_period_ns;
	}
	/* The thread's first sample (user space put the runtime of each
	 * thread there when the process was first watched: this one was
	 * born since), or a tid reused by another thread. */
	struct hm_bpf_rt n = {.rt = rt, .pid = pid};
	bpf_map_update_elem(&rtlast, &tid, &n, BPF_ANY);
	return hm_period_ns;
}

/* ---- a trace's first sample (HM_BPF_NEW_TRACE) ----
 * A trace's local root span (e.g. a web server's request span) may never
 * be current when a sample is taken: it is current only between its
 * children. User space can find it among the thread's local variables
 * while the trace still runs there, so the first sample of each trace is
 * also sent at once as a short record with a wake-up. The thread's entry in
 * rtlast remembers its last trace (no extra look-up while it stays in one
 * trace); a change looks the trace up in the traces map (an LRU), and only a
 * trace not in it sends the record; a sample whose span is the local root
 * itself sends it without the look-up and without a wake-up (it names its
 * trace: user space learns it before the counted stacks). (The wake-up
 * costs the sampled thread 10-20 us, about +0.8 us a sample in the FastAPI
 * service; reading the ring every 5 ms instead cost homura 20-30 us a look
 * on a virtual machine, and came too late for an async route's root, whose
 * middleware frame has left the thread by then.) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, HM_BPF_TRACES);
	__type(key, struct hm_bpf_trace_key);
	__type(value, __u32);
} traces SEC(".maps");

/* Whether e is its trace's first sample: -1 if not, else the flags its
 * record goes with (trace_send, once the stack is walked). */
static __always_inline long trace_new(struct hm_bpf_rt *l, const struct hm_bpf_event *e)
{
	if (e->span_why != HM_BPF_SPAN_OK)
		return -1;
	if (l) {
		if (l->trace_hi == e->span.trace_hi && l->trace_lo == e->span.trace_lo &&
		    l->trace_parent == e->span.parent_id)
			return -1;
		l->trace_hi = e->span.trace_hi;
		l->trace_lo = e->span.trace_lo;
		l->trace_parent = e->span.parent_id;
	}
	/* A local root names its trace by itself: the record goes without a
	 * wake-up (user space reads the ring before the counted stacks, so
	 * that it knows the root before the trace's other samples). */
	long wake = BPF_RB_NO_WAKEUP;
	/* (Without the thread's entry, no kernel runtimes: the map alone
	 * says whether the trace is new, for roots too.) */
	if (!l || !(e->span_flags & HM_BPF_SPAN_LOCAL_ROOT)) {
		struct hm_bpf_trace_key k = {.pid = e->pid, .pad = 0, .trace_hi = e->span.trace_hi,
					     .trace_lo = e->span.trace_lo,
					     .parent_id = e->span.parent_id};
		__u32 one = 1;
		if (bpf_map_lookup_elem(&traces, &k) ||
		    bpf_map_update_elem(&traces, &k, &one, BPF_NOEXIST))
			return -1;           /* seen (or the map is busy) */
		if (!(e->span_flags & HM_BPF_SPAN_LOCAL_ROOT))
			wake = BPF_RB_FORCE_WAKEUP;
	}
	return wake;
}

/* The record of a trace's first sample: its span, and the frame where the
 * trace's root was found before (w's), no frames. */
static __always_inline void trace_send(struct hm_bpf_event *e, long flags, __u64 root_frame,
				       __u64 root_code)
{
	__u32 status = e->status, n = e->nframes;
	e->status = HM_BPF_NEW_TRACE;
	e->nframes = 0;
	e->root_frame = root_frame;
	e->root_code = root_code;
	bpf_ringbuf_output(&events, e, sizeof(*e) - sizeof(e->frames) - sizeof(e->kips_room),
			   (__u64)flags);
	e->status = status;
	e->nframes = n;
	e->root_frame = 0;
	e->root_code = 0;
	__builtin_memset(&e->root, 0, sizeof e->root);
	e->root_name_check = 0;
	e->root_text_len = 0;
}

/* ---- a stack's first count (HM_BPF_NEW_STACK) ----
 * User space reads the aggs map about once a second, and resolves each
 * stack's code objects then. A process that exits (or tears its
 * interpreter down) before that read has no code objects left to read,
 * and stacks through code it had not run before that drain were lost: a
 * program's last phase, up to a second of it. So a stack counted for the
 * first time in a process (its hash not in the stacks LRU) is also sent
 * to the ring at once, frames only, with a wake-up at most every
 * HM_BPF_NEW_STACK_WAKE_NS: user space reads its code objects within
 * milliseconds. A stack counted again after a drain is not new; the
 * stacks of a steady program stop coming after its first seconds. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, HM_BPF_STACKS);
	__type(key, struct hm_bpf_stack_key);
	__type(value, __u32);
} stacks SEC(".maps");

__u64 hm_new_stack_wake_ns = 0;

static __always_inline void stack_note(struct hm_bpf_event *e, __u64 hash, __u64 len)
{
	struct hm_bpf_stack_key k = {.pid = e->pid, .pad = 0, .hash = hash};
	__u32 one = 1;
	if (e->status != HM_BPF_OK || !e->nframes || bpf_map_lookup_elem(&stacks, &k) ||
	    bpf_map_update_elem(&stacks, &k, &one, BPF_NOEXIST))
		return;
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (e->t_ns - hm_new_stack_wake_ns >= HM_BPF_NEW_STACK_WAKE_NS) {
		hm_new_stack_wake_ns = e->t_ns;
		flags = BPF_RB_FORCE_WAKEUP;
	}
	e->status = HM_BPF_NEW_STACK;
	if (bpf_ringbuf_output(&events, e, len, flags) == 0)
		count(HM_BPFC_NEW_STACKS);
	e->status = HM_BPF_OK;
}

/* The span in the local at slot idx of w's root frame, read as the
 * sample's span is, into e->root: 2 when it is the sample's span's parent
 * (its local root, proven), 1 another local root of the sample's trace,
 * 0 none. */
static __always_inline int root_try(const struct hm_bpf_proc *p, const struct walk *w,
				    struct hm_bpf_event *e, struct hm_bpf_otel *o,
				    struct otel_buf *buf, __u64 idx)
{
	__u64 v = 0;
	if (rd(&v, 8, w->root_frame + (__u64)p->f_localsplus + 8 * (idx & 0xff)) || !v ||
	    (v & 7) || !otel_span_at(o, buf, v, e, 1) || e->root.trace_hi != e->span.trace_hi ||
	    e->root.trace_lo != e->span.trace_lo)
		return 0;
	return e->root.span_id == e->span.parent_id ? 2 : 1;
}

/* The span in a local of w's root frame (the locals where its function
 * held a root before: root_local, then one other), when it is the local
 * root of e's trace (read and checked as the sample's span is): into
 * e->root. 2 when it is the sample's span's parent (the root of this
 * (trace, parent) proven), 1 another local root of the trace (a trace may
 * have several here: a client calling two endpoints with one parent), 0
 * none. Two locals at most: each read of a span is verified apart. */
static __always_inline int root_of(const struct hm_bpf_proc *p, __u32 pid, const struct walk *w,
				   struct hm_bpf_event *e)
{
	__u32 zero = 0;
	struct hm_bpf_otel *o = bpf_map_lookup_elem(&otel, &pid);
	struct otel_buf *buf = bpf_map_lookup_elem(&otelbuf, &zero);
	if (!o || !buf || p->f_localsplus < 0 || p->f_localsplus > 4096)
		return 0;
	int r = root_try(p, w, e, o, buf, w->root_local);
	/* Another local of that function's (the walk took the last of its
	 * hints). */
	__u64 other = 0x100;
	for (int i = 0; i < HM_BPF_ROOT_HINTS; i++)
		if (p->root_hint[i] == w->root_code && (__u64)(p->root_idx[i] & 0xff) != w->root_local)
			other = (__u64)(p->root_idx[i] & 0xff);
	if (r == 2 || other > 0xff)
		return r;
	struct hm_bpf_span keep = e->root;
	__u64 keep_check = e->root_name_check;
	int r2 = root_try(p, w, e, o, buf, other);
	if (r2 == 2 || r != 1)
		return r2;
	e->root = keep;
	e->root_name_check = keep_check;
	e->root_text_len = 0;           /* (its text was overwritten: read) */
	return 1;
}

/* One frame per call: 0 to go on, 1 to stop. */
static long walk_one(__u32 i, void *arg)
{
	struct walk *w = arg;
	const struct hm_bpf_proc *p = w->p;
	struct hm_bpf_event *e = w->e;   /* looked up once per sample */
	struct fbuf *f = w->f;
	if (!e || !f || !p)
		return 1;
	__u64 frame = w->frame;
	if (!frame)
		return 1;
	if (frame & 7) {
		w->status = HM_BPF_BAD_FRAME;
		return 1;
	}
	if (window_get(w, f, frame) && rd(f->b, FRAME_READ, frame)) {
		/* The header may end near the end of a mapping: read the
		 * part the walk needs. */
		if (rd(f->b, (__u32)p->frame_min & (FRAME_READ - 1), frame)) {
			w->status = HM_BPF_READ_FAILED;
			return 1;
		}
	}
	__u64 code = ld64(f, p->f_code);
	__u64 back = ld64(f, p->f_back);
	__u64 instr;
	if (p->frame_model == 0) {
		instr = (__u64)(__s64)(__s32)ld64(f, p->f_instr);
	} else {
		instr = ld64(f, p->f_instr);
		__u8 owner = f->b[p->f_owner & (FRAME_READ - 1)];
		if (owner > p->owner_max) {
			w->status = HM_BPF_BAD_FRAME;
			return 1;
		}
		if (owner == p->owner_cstack) {    /* C-stack shim frame */
			mark_entry(e, w->n);
			w->frame = back;
			return 0;
		}
	}
	if (p->f_is_entry >= 0 && f->b[p->f_is_entry & (FRAME_READ - 1)])
		code |= HM_BPF_CODE_ENTRY;
	if (p->code_tagged)
		code &= ~3ULL;
	if (w->want_root && !w->root_frame) {
		__u64 c = code & ~HM_BPF_CODE_ENTRY;
		for (int i = 0; i < HM_BPF_ROOT_HINTS; i++)
			if (p->root_hint[i] && p->root_hint[i] == c) {
				w->root_frame = frame;
				w->root_code = c;
				w->root_local = (__u64)(p->root_idx[i] & 0xff);
			}
	}
	__u32 n = w->n;
	if (n >= HM_BPF_MAX_FRAMES) {
		w->truncated = 1;
		return 1;
	}
	e->frames[n].code = code;
	e->frames[n].instr = instr;
	w->hash = agg_mix(w->hash, code, instr);
	w->n = n + 1;
	w->frame = back;
	return 0;
}

/* --native: a non-zero return lets the perf event write its own sample
 * (the thread's user registers and a copy of the top of its user stack),
 * which user space joins with this record by tid and time and unwinds
 * after the fact; nothing is stopped. Only records with Python frames of a
 * process that wants native frames get one. */
static __always_inline int native_wanted(const struct hm_bpf_proc *p, const struct hm_bpf_event *e)
{
	return p->native && e->status == HM_BPF_OK && e->nframes > 0;
}

SEC("perf_event")
int hm_pystack(struct bpf_perf_event_data *ctx)
{
	/* (Runs are counted by the kernel's own BPF statistics: nothing
	 * here for tasks of other processes but one hash lookup.) */
	__u64 id = bpf_get_current_pid_tgid();
	__u32 pid = id >> 32, tid = (__u32)id;
	struct hm_bpf_proc *p = bpf_map_lookup_elem(&procs, &pid);
	if (!p)
		return 0;
	count(HM_BPFC_MATCHED);
	__u32 zero = 0;
	struct hm_bpf_event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	e->pid = pid;
	e->tid = tid;
	e->t_ns = bpf_ktime_get_ns();
	e->status = HM_BPF_OK;
	e->truncated = 0;
	e->nframes = 0;
	e->nkips = 0;
	/* Every sample of the thread moves its runtime mark, those outside
	 * Python too, so that each weighs only the time since the last. */
	struct hm_bpf_rt *rtl;
	e->weight_ns = sample_weight(pid, tid, &rtl);
	/* user_mode(regs): the CS selector's low bits are 3 in user mode. */
	e->kernel = (ctx->regs.cs & 3) != 3;
	__u64 ts = find_tstate(p, tid);
	e->tstate = ts;
	e->root_frame = 0;
	e->root_code = 0;
	hm_otel_sample(pid, ts, rtl, e);
	/* A trace's first sample that wakes user space (to look for the
	 * trace's local root) also names the frame where to look. */
	long tflags = trace_new(rtl, e);
	/* A sample with a span counts in aggs under (thread, stack, span): a
	 * key whose insert (an allocation and a copy of the whole record)
	 * costs several times a ring record, and that repeats only while the
	 * span lasts. A new key is inserted only when the thread's last sample
	 * had the same span and stack (a loop inside a span that stays);
	 * other new keys go to the ring. (A new span at every sample made
	 * --ebpf span reading cost +5-7 us a sample; a web service's requests,
	 * whose spans last a few samples with a different stack at each,
	 * about +3.) */
	__u64 sid = e->span_why == HM_BPF_SPAN_OK ? e->span.span_id : 0;
	int span_new = rtl && sid && sid != rtl->span_id;
	__u64 last_stack = rtl ? rtl->stack : 0;
	if (rtl)
		rtl->span_id = sid;
	struct walk w = {.p = p, .e = e, .f = bpf_map_lookup_elem(&framebuf, &zero), .frame = 0,
			 .n = 0, .status = HM_BPF_OK, .truncated = 0, .hash = 0xcbf29ce484222325ull,
			 .want_root = tflags == BPF_RB_FORCE_WAKEUP, .root_frame = 0, .root_code = 0,
			 .root_local = 0};
	int err = 0;
	if (!ts) {
		w.status = HM_BPF_NO_THREAD;
		goto out;
	}
	if (p->ts_cframe >= 0) {
		__u64 cf = rd64(ts + (__u64)p->ts_cframe, &err);
		w.frame = cf && !err ? rd64(cf + (__u64)p->cframe_current_frame, &err) : 0;
	} else {
		w.frame = rd64(ts + (__u64)p->ts_frame, &err);
	}
	if (err) {
		w.status = HM_BPF_READ_FAILED;
		goto out;
	}
	if (!w.frame) {
		w.status = HM_BPF_NO_FRAME;
		goto out;
	}
	if (p->frame_model == 1) {
		w.win = bpf_map_lookup_elem(&winbuf, &zero);
		window_read(&w);
	}
	bpf_loop(2 * HM_BPF_MAX_FRAMES, walk_one, &w, 0);
	if (w.status == HM_BPF_OK && w.frame && w.n >= HM_BPF_MAX_FRAMES)
		w.truncated = 1;
out:
	e->status = w.status;
	e->truncated = w.truncated;
	e->nframes = w.n;
	if (tflags >= 0) {
		/* The root in that frame's locals, read here: the record then
		 * needs no wake-up when it is the span's parent (user space
		 * learns the root from it); another root of the trace rides
		 * along, and user space looks at once for this one's. */
		int rk = tflags == BPF_RB_FORCE_WAKEUP && w.root_frame ? root_of(p, pid, &w, e) : 0;
		if (rk == 2)
			tflags = BPF_RB_NO_WAKEUP;
		else if (!rk)
			__builtin_memset(&e->root, 0, sizeof e->root);
		trace_send(e, tflags, w.root_frame, w.root_code);
	}
	/* --native: each such sample needs its own record, joined with the
	 * perf event's copy of the registers and stack. */
	if (rtl)
		rtl->stack = w.hash;
	if (hm_agg_on && !native_wanted(p, e) && !span_new) {
		int kstack = -1;
		if (hm_kstack_on && e->kernel)
			kstack = (int)bpf_get_stackid(ctx, &kstacks, 0);
		int may_insert = !sid || !rtl || last_stack == w.hash;
		int added = agg_add(e, w.hash, kstack < 0 ? -1 : kstack, may_insert);
		if (added >= 0) {
			count(HM_BPFC_AGGREGATED);
			if (added)
				stack_note(e, w.hash, sizeof(*e) - sizeof(e->frames) - sizeof(e->kips_room) +
						      (__u64)(w.n & 127) * sizeof(e->frames[0]));
			return 0;
		}
		if (may_insert)
			count(HM_BPFC_AGG_FULL);
	}
	/* Send only the frames used, then (--kernel, in kernel mode) the
	 * kernel stack right after them. */
	__u64 used = (__u64)(w.n & 127) * sizeof(e->frames[0]);
	if (hm_kstack_on && e->kernel) {
		long got = bpf_get_stack(ctx, (__u8 *)e->frames + used, sizeof e->kips_room, 0);
		if (got > 0)
			e->nkips = (__u32)got / 8;
	}
	__u64 len = sizeof(*e) - sizeof(e->frames) - sizeof(e->kips_room) + used +
		    (__u64)(e->nkips & (HM_BPF_KSTACK_DEPTH * 2 - 1)) * 8;
	if (len > sizeof(*e))
		len = sizeof(*e);
	/* No wake-up per sample: user space drains the ring every 50 ms; only
	 * a ring more than half full wakes it early. */
	__u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > (1 << 21) ? BPF_RB_FORCE_WAKEUP
										: BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&events, e, len, flags)) {
		count(HM_BPFC_DROPPED);
		return 0;
	}
	count(HM_BPFC_EMITTED);
	return native_wanted(p, e);
}
