/* otel.c - the current OpenTelemetry span of a thread or task (otel.h).
 *
 * The OpenTelemetry API keeps the current context in one
 * contextvars.ContextVar (opentelemetry.context._RUNTIME_CONTEXT.
 * _current_context, named "current_context"); its value is an
 * opentelemetry Context (a dict subclass) whose entry under the key string
 * opentelemetry.trace.propagation._SPAN_KEY ("current-span-<uuid>") is the
 * current span. An SDK span keeps its SpanContext (a tuple subclass:
 * trace_id, span_id, is_remote, ...) in `_context`, its name in `_name` and
 * its parent's SpanContext (or None) in `_parent`.
 *
 * The chain read from outside: thread state -> context (PyContext) ->
 * ctx_vars (an immutable HAMT) -> the node holding our ContextVar (found by
 * the variable's hash, 5 bits per level: bitmap, array and collision nodes,
 * recognised by their type names and cached) -> the Context dict -> the
 * span -> its SpanContext -> the ids. Every object's type is checked, every
 * pointer aligned and every size bounded; anything unexpected gives no span.
 *
 * What does not change is cached: the ContextVar and span-key objects
 * (looked up in sys.modules once the SDK is imported; while it is not, the
 * lookup backs off from 0.1 s to 10 s) and the type objects. The context
 * pointer comes with the thread state the walker read anyway. The chain
 * below it is read again on every sample: a variable set in the same
 * context bumps no version, and consecutive HAMTs and dicts reuse each
 * other's addresses (pymalloc hands out the block freed last), so no
 * address can stand for its contents. A span seen before (same object,
 * same SpanContext object, both read live from their parents) skips the
 * reads of its name and parent (its ids are read every time). A span's
 * _context, _name and _parent are read by their entry indexes in its type's
 * shared keys (3.11+, learnt once per type, used while the type keeps those
 * keys and the span has no dict of its own): three reads rather than a key
 * scan per attribute.
 *
 * The words that check an answer (plan) lie in four or more small objects;
 * those on one page (the context, its HAMT and the HAMT's nodes are objects
 * of one pymalloc size class, often neighbours) are read as one region, as
 * each region of a process_vm_readv costs a page lookup in the kernel.
 *
 * A thread's span is given only when it is proven for the moment its stack
 * was read: the words that check the thread's last answer ride in the
 * walker's read of its thread state and stack (otel_spec_iov), so a passing
 * check says the span was current then. A span found otherwise (read after
 * the stack, when the thread's span changed since its last sample) is not
 * given: otel_thread_at asks the walker to read the thread again, now with
 * the words that check the new answer, and a span that changed again by
 * then is dropped (a torn span, counted in the stats), never replaced by a
 * neighbour's. No span needs no proof. A waiting task's span is read before
 * its await chain and checked again after it (otel_context_same).
 *
 * A thread whose span keeps changing (a new span at almost every sample)
 * would pay that chain of dependent reads and the second read at every
 * sample. Instead, for CHURN_SAMPLES samples after its span changed (and
 * while its answer has no words to check), the walker's read of its thread
 * state carries the regions that its last chains' reads touched (chain
 * mode: every read of a chain is logged; the regions are their union over
 * the last CHAIN_KEEP chains, one per page, as a new span's objects cycle
 * through a few blocks of their pymalloc size classes, mostly on the same
 * few pages). The chain is then read by the same code with the same checks
 * from that copy (chain_read). That copy is of the moment before the
 * stack: those of the regions that held the words proving the answers of
 * the thread's last chains are read again at the end of the same call,
 * and when every read found its bytes in the copy and the new answer's
 * words lie in those regions and read the same there (chain_proven: the
 * Context dict's version tag is unique), the span is of the moment the
 * stack was read and is given at once. A read that falls outside (an
 * object that moved) is made live, as is the whole chain when its words
 * changed, and the span then needs the second read as above. Chain mode
 * is left for a thread while it rarely finds a chain whole (CHAIN_HIST): a
 * busy service whose threads meet a new span at most samples, after a
 * request's worth of allocations, gains nothing from the regions and pays
 * for each.
 *
 * A chain read live costs about one system call per object, not one per
 * field: each live read brings a block of the object's neighbourhood
 * (blk_read), objects whose addresses are known together (a span's
 * SpanContext, name and parent; a SpanContext's ints) come in one read
 * (blk_prefetch), and the blocks of the few type objects a chain checks
 * (their flags, a span type's shared keys) are kept for a second.
 *
 * "No span" is an answer with words to check too: a context whose HAMT
 * lacks the SDK's variable keeps that answer while the context holds the
 * same HAMT, with the same root and count (HAMT nodes never change).
 *
 * Local root span: a span whose parent is None or remote is the root of
 * its trace in this process; its name is remembered per trace id (a small
 * table), and children of that trace report it; while it is known a
 * span's parent is not read. One never seen current is looked for once
 * per trace (root_scan; for the in-kernel sampler, otel_root_at on the
 * frame the kernel named, else otel_root_find, at a trace's first sample,
 * which makes the tasks' look itself): among the sampled stack's local
 * variables where roots were found before (hints: the middleware's frame
 * holds the server span; the in-kernel walker is given their functions,
 * otel_root_hints), then among the asyncio tasks' current spans
 * (otel_root_in_tasks, rate limited: a sync route's worker thread runs in a
 * copy of the context of the event loop's task that awaits it, whose
 * current span is the server span; one look learns the roots of all
 * requests in flight; the tasks' chains are read side by side, in turns,
 * contexts_spans), then in every local of the stack (rate limited). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/base.h"
#include "base/util.h"
#include "proc/elf.h"
#include "python/layouts/async_layouts.h"
#include "python/otel.h"
#include "python/pyasync.h"
#include "python/pyinternal.h"
#include "python/pyobj.h"

#define SPAN_SLOTS 64
#define CTX_SLOTS 128
#define TS_SLOTS 64
#define TRIED_SLOTS 128
#define SCANS_PER_S 10                   /* root_scan: looks through every frame
					  * (about 500 us), at most this many a
					  * second; */
#define TASK_LOOKS_PER_S 30              /* and through the asyncio tasks' spans
					  * (about 16 system calls with 5 tasks) */
#define SCAN_FRAMES 128
#define SCAN_LOCALS 128                  /* locals of a frame looked at */
#define ROOT_HINTS 8                     /* where roots were found: tried first */
#define ROOT_FAILS 3                     /* scans finding nothing before a pause */
#define ROOT_PAUSE_NS 5000000000ull
#define ROOT_SLOTS 256                  /* local roots by (trace, span id) */
#define EDGE_SLOTS 1024                  /* other spans' parents, by (trace, span id) */
#define ROOT_HOPS 8                      /* parents followed up to a known root */
#define LOOKUP_MIN_NS 100000000ull
#define LOOKUP_MAX_NS 10000000000ull
#define MAX_HAMT_DEPTH 8

enum { NODE_BITMAP, NODE_ARRAY, NODE_COLLISION };

struct span_slot {
	uint64_t addr, sctx;             /* span object, its SpanContext */
	uint64_t trace_hi, trace_lo, span_id;
	uint64_t parent_id;              /* 0: none (or a read failed) */
	int local_root;                  /* no parent, or a remote one */
	int parent_ok;                   /* the parent was read */
	/* _name's str, and the word that holds it (0: not known, a span
	 * read by getattr): update_name() swaps that word. */
	uint64_t name_ptr, name_at;
	char name[128];
};

/* How a span type's instances keep _context, _name and _parent (3.11+):
 * their entry indexes in the type's shared keys, so that a new span's
 * three fields are read in three reads rather than a key scan each. */
enum { F_CONTEXT, F_NAME, F_PARENT, NFIELDS };

struct span_type {
	uint64_t type, keys, flags;
	int64_t basicsize;
	int idx[NFIELDS];                /* -1: not a key */
	int bad;                         /* not read this way: getattr */
};

struct root_slot {                       /* a local root span */
	uint64_t trace_hi, trace_lo, span_id;
	char name[128];
};

struct edge_slot {                       /* a span that is no local root */
	uint64_t trace_hi, trace_lo, span_id, parent_id;
};

/* The nodes a lookup went through: for each, where the entry it followed
 * is (offset into the node) and what it held, so that the next lookup can
 * re-read exactly those words (see otel_context_span). */
struct hamt_step {
	uint64_t node;
	uint32_t off;                    /* of the key/value pair, or the child */
	uint8_t kind;                    /* NODE_* */
	uint64_t key, value;             /* key 0: a sub-node (or array child) */
};

struct hamt_path {
	int n;
	struct hamt_step step[MAX_HAMT_DEPTH];
};

/* The answer for a context, and the words it was read from. */
struct ctx_slot {
	uint64_t ctx, hamt, dict, dict_type, dict_version;
	/* absent: the HAMT (with that root and count) has no ContextVar of
	 * the SDK: no span, re-checked by those words alone. */
	uint64_t root;
	int64_t count;
	int absent;
	struct hamt_path path;
	hm_pyspan span;
	uint64_t name_at, name_ptr;      /* the span's _name word (see span_slot) */
	int valid;
};

/* Buffers for one re-check of a context's answer (plan/check). */
#define PAGE 4096u
#define MAX_REGIONS (4 + MAX_HAMT_DEPTH)

struct spec {
	uint64_t tstate, ctx;
	int loaded;                      /* read by the walker with the thread */
	int chain;                       /* the last chain's regions, not plan()'s */
	int dropped;                     /* read, but the stack came later */
	uint64_t cbuf[4], hbuf[4], dbuf[4], nmbuf[1];
	uint64_t nbuf[MAX_HAMT_DEPTH][2 + 32 * 2 + 2];
	/* Regions on one page are read as one (each region of a read costs
	 * a page lookup in the kernel): read into page[], then copied out. */
	int nscatter;
	struct { void *dst; uint32_t off, len; } scatter[MAX_REGIONS];
	uint8_t page[2 * PAGE];
};

struct root_hint {                       /* a local where a root was found */
	uint64_t code;
	int idx;
};

struct tried_slot {                      /* parents whose root was looked for */
	uint64_t trace_hi, trace_lo, span_id;
};

/* The last chain read for a thread (see otel_thread_span): the regions its
 * reads touched, merged per page, read with the thread state while the
 * thread's span keeps changing (churn > 0). */
#define CHAIN_READS 128                  /* reads of one chain remembered */
#define CHAIN_READ_MAX 1024              /* a longer read is not remembered */
#define CHAIN_RANGES 24                  /* regions added to the thread's read */
#define CHAIN_KEEP 32                    /* chains a region is kept untouched */
#define CHAIN_BUF (8 * PAGE)             /* the regions' bytes, at most */
#define SNAP_MAP 128                     /* > the pages CHAIN_RANGES regions of at
					  * most 2 pages span */
#define CHURN_SAMPLES 8                  /* samples in chain mode after a change */
/* Chain mode pays (one region per page in every read of the thread) only
 * where a new span's objects land on the pages of the last ones: a busy
 * program whose thread meets a new span at most samples after many other
 * allocations (a web service at 100 Hz) finds few chains whole. Chain mode
 * is left for a thread while fewer than half of its last CHAIN_HIST chains
 * with a span were found whole, and tried again after CHAIN_RETRY samples. */
#define CHAIN_HIST 8
#define CHAIN_RETRY 64
#define BLK 256                          /* blk_read: bytes read around a live read */
#define NBLK 64
#define NWANT 32                         /* blocks wanted in one turn */
#define DEFER_BATCH 6                    /* contexts read in turns together */
#define DEFER_TURNS 16
#define NTBLK 8
#define TBLK_NS 1000000000ull

struct chain_range {
	uint64_t addr;
	uint32_t len, off;               /* off: into hm_otel.snapbuf */
};

struct ts_slot {                         /* the context a thread had last */
	uint64_t tstate, ctx;
	uint64_t last_hi, last_lo, last_sid;   /* and its last answer */
	int churn;                       /* > 0: its span changed lately */
	int nranges;
	uint32_t seq;                    /* chains read */
	struct chain_range range[CHAIN_RANGES];
	uint32_t used[CHAIN_RANGES];     /* seq of the last chain that read there */
	uint32_t proof[CHAIN_RANGES];    /* and of the last whose answer's proving
					  * words lay there (0: none) */
	/* The last CHAIN_HIST chains with a span read in chain mode, one bit
	 * each (1: found whole in the regions), newest in bit 0, and how many
	 * there were (capped); the thread's samples since chain mode was last
	 * tried. */
	uint32_t hist, nhist, since;
	uint32_t scan_fails;             /* root_scan: scans in a row finding none */
	uint64_t scan_next_ns;           /* and none before then */
};

struct hm_otel {
	hm_python *py;                   /* NULL for otel_open_setup's */
	hm_target *t;
	hm_pyobj_reader r;
	const hm_pyasync_layout *A;
	uint64_t ctx_type, var_type;     /* PyContext_Type, PyContextVar_Type */
	uint64_t hamt_type;
	uint64_t node_types[3];
	uint64_t sctx_type;              /* SpanContext */
	uint64_t var;                    /* the ContextVar, 0 until found */
	int64_t var_hash;
	uint64_t span_key;               /* the "current-span-..." str object */
	char span_key_text[96];
	uint64_t next_lookup_ns, backoff_ns;
	struct ctx_slot *ctxs;           /* [CTX_SLOTS], by context address */
	struct ts_slot tss[TS_SLOTS];
	struct spec spec;                /* planned with a thread state read */
	uint64_t span_types[2];          /* types of spans read (for root_scan) */
	struct span_type stypes[2];
	uint64_t scan_tokens_ns, task_tokens_ns;   /* root_scan's rate limits */
	struct tried_slot tried[TRIED_SLOTS];
	struct root_hint hints[ROOT_HINTS];
	int hint_next;
	/* The asyncio tasks (otel_root_in_tasks), opened at the first look. */
	hm_pyasync *async;
	int async_failed;
	otel_task_contexts_fn task_fn;   /* without py: the tasks' contexts */
	void *task_ctx;
	struct spec own;                 /* for a re-check of our own */
	/* The words read again after the stack, last in the same call: in
	 * plan mode those of spec again (spec_end), in chain mode the
	 * regions that held the words proving the thread's last chains'
	 * answers (endsnap, endbuf; end_read once read). */
	struct spec spec_end;
	hm_iov end_iov[CHAIN_RANGES];
	int nend, nendsnap, end_read;
	struct chain_range endsnap[CHAIN_RANGES];
	uint64_t endbuf[CHAIN_BUF / 8];
	struct span_slot spans[SPAN_SLOTS];
	struct root_slot roots[ROOT_SLOTS];
	struct edge_slot edges[EDGE_SLOTS];
	uint64_t true_addr;              /* True (otel_span_layout), 0: unknown */
	/* Reading a chain through chain_read: the reads it made (log), and
	 * the snapshot of the last chain's regions taken with the thread
	 * state (snap, snapbuf) that serves them while replaying. */
	hm_pyobj_read_fn live_read;
	void *live_ctx;
	int replaying, missed, nlog;
	uint64_t reread_tstate;          /* asked to read again: plan, no chain */
	struct { uint64_t addr; uint32_t len; int hit; } log[CHAIN_READS];   /* hit: the snap
									 * region that served it, -1: none */
	/* Blocks read live while a chain is read (blk_read): a read of a
	 * few words brings the rest of its object along, so the chain's next
	 * reads there cost no system call. Emptied at each chain_begin. */
	int nblk, blk_next;
	struct { uint64_t addr; uint32_t len; } blk[NBLK];
	uint8_t blk_data[NBLK][BLK];     /* (apart: a lookup scans blk alone) */
	/* Deferred (blk_defer, contexts_spans): a block not held is not read
	 * but wanted, and the read fails; the chains of several contexts are
	 * read in turns, the blocks they want read together between turns. */
	int blk_defer, nwant;
	unsigned defer_miss;             /* reads deferred so far */
	struct { uint64_t addr; uint32_t len; } want[NWANT];
	/* Blocks of the type objects of a span's chain (its Context dict's,
	 * span's and SpanContext's: flags, shared keys), kept across chains
	 * for TBLK_NS: a type lives at least as long as its instances, and
	 * these fields do not change in a type's life. */
	uint64_t blk_now, ctx_dict_type;
	int ntblk;
	struct { uint64_t addr, born; uint32_t len; } tblk[NTBLK];
	uint8_t tblk_data[NTBLK][BLK];
	int nsnap;
	struct chain_range snap[CHAIN_RANGES];
	uint8_t snap_map[SNAP_MAP];      /* by page: 1 + a snap region on it, 0: none */
	uint64_t snapbuf[CHAIN_BUF / 8];
	/* chain_proven's proof words of an answer it proved (for ctx), which
	 * chain_mark_proof marks next; proven_np -1: none. */
	int proven_np;
	uint64_t proven_ctx;
	hm_iov proven_p[MAX_REGIONS];
};

static const hm_pyasync_layout *ctx_layout(int major, int minor)
{
	if (major != 3)
		return NULL;
	switch (minor) {
	case 8: return &hm_pyasync_layout_py38;
	case 9: return &hm_pyasync_layout_py39;
	case 10: return &hm_pyasync_layout_py310;
	case 11: return &hm_pyasync_layout_py311;
	case 12: return &hm_pyasync_layout_py312;
	case 13: return &hm_pyasync_layout_py313;
	default: return NULL;
	}
}

size_t otel_ts_need(int major, int minor)
{
	const hm_pyasync_layout *A = ctx_layout(major, minor);
	if (!A || A->ts_context < 0 || A->ts_context_ver < 0 || A->ts_id < 0)
		return 0;
	int m = A->ts_context;
	if (A->ts_context_ver > m)
		m = A->ts_context_ver;
	if (A->ts_id > m)
		m = A->ts_id;
	return (size_t)m + 8;
}

static int rd(const hm_otel *o, uint64_t addr, void *buf, size_t len)
{
	if (!addr || (addr & 7) || addr + len < addr)
		return -1;
	return o->r.read(o->r.ctx, addr, buf, len) ? -1 : 0;
}

static uint64_t ld64(const void *b, size_t off)
{
	uint64_t v;
	memcpy(&v, (const uint8_t *)b + off, 8);
	return v;
}

static void str_bits(const hm_pylayout *L, uint32_t *compact, uint32_t *ascii);

hm_otel *otel_open(hm_python *py)
{
	const hm_pyasync_layout *A = ctx_layout(py->layout->major, py->layout->minor);
	if (!A || py->layout->free_threaded)
		return NULL;
	hm_otel *o = calloc(1, sizeof *o);
	if (!o)
		return NULL;
	o->py = py;
	o->t = py->t;
	o->A = A;
	if (hm_pyobj_reader_init(&o->r, py) != HM_OK) {
		otel_close(o);
		return NULL;
	}
	/* The two public type objects are exported by every build. */
	char *path = hm_target_path(py->t, py->mod_path);
	hm_elf *e = path ? hm_elf_open(path) : NULL;
	free(path);
	uint64_t a, sz;
	if (e && hm_elf_symbol(e, "PyContext_Type", &a, &sz) == HM_OK)
		o->ctx_type = a + py->mod_bias;
	if (e && hm_elf_symbol(e, "PyContextVar_Type", &a, &sz) == HM_OK)
		o->var_type = a + py->mod_bias;
	/* True, for the kernel's check of a parent's is_remote. */
	if (e && hm_elf_symbol(e, "_Py_TrueStruct", &a, &sz) == HM_OK)
		o->true_addr = a + py->mod_bias;
	hm_elf_close(e);
	if (!o->ctx_type || !o->var_type) {
		otel_close(o);
		return NULL;
	}
	return o;
}

static int setup_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	return hm_target_read(ctx, addr, buf, len) != HM_OK;
}

_Static_assert(sizeof ((struct otel_setup *)0)->types == sizeof ((hm_pyobj_reader *)0)->types,
	       "otel_setup.types must match hm_pyobj_reader.types");

hm_otel *otel_open_setup(const struct otel_setup *s)
{
	const hm_pyasync_layout *A = ctx_layout(s->layout->major, s->layout->minor);
	if (!A)
		return NULL;
	hm_otel *o = calloc(1, sizeof *o);
	if (!o || !(o->ctxs = calloc(CTX_SLOTS, sizeof *o->ctxs))) {
		free(o);
		return NULL;
	}
	o->t = s->t;
	o->A = A;
	o->r.layout = s->layout;
	o->r.read = setup_read;
	o->r.ctx = s->t;
	memcpy(o->r.types, s->types, sizeof o->r.types);
	o->ctx_type = s->ctx_type;
	o->var_type = s->var_type;
	o->var = s->var;
	o->var_hash = s->var_hash;
	o->span_key = s->span_key;
	return o;
}

void otel_close(hm_otel *o)
{
	if (o) {
		free(o->ctxs);
		hm_pyasync_close(o->async);
	}
	free(o);
}

int otel_found(const hm_otel *o)
{
	return o && o->var;
}

/* ---- the HAMT ---------------------------------------------------------- */

struct hamt_reader {
	otel_read_fn read;
	void *ctx;
	uint64_t *types;                 /* [3], learnt on the way when learn */
	hm_otel *learn;
	struct hamt_path *path;          /* filled when not NULL */
};

static void hamt_record(const struct hamt_reader *h, int depth, uint64_t node, uint32_t off,
			int kind, uint64_t key, uint64_t value)
{
	if (!h->path)
		return;
	h->path->step[depth] = (struct hamt_step){node, off, (uint8_t)kind, key, value};
	h->path->n = depth + 1;
}

static int hrd(const struct hamt_reader *h, uint64_t addr, void *buf, size_t len)
{
	if (!addr || (addr & 7) || addr + len < addr)
		return -1;
	return h->read(h->ctx, addr, buf, len) ? -1 : 0;
}

/* The node kind of type t (learnt from its tp_name once). */
static int node_kind(const struct hamt_reader *h, uint64_t t)
{
	for (int i = 0; i < 3; i++)
		if (h->types[i] && h->types[i] == t)
			return i;
	if (!h->learn || !t || (t & 7))
		return -1;
	const hm_pylayout *L = h->learn->r.layout;
	uint64_t name;
	char buf[32];
	if (L->tp_name < 0 || hrd(h, t + (uint64_t)L->tp_name, &name, 8) || !name)
		return -1;
	/* tp_name is a C string in the binary: read it bytewise-safe. */
	memset(buf, 0, sizeof buf);
	if (h->read(h->ctx, name, buf, 24))
		return -1;
	static const char *const names[3] = {"hamt_bitmap_node", "hamt_array_node",
					     "hamt_collision_node"};
	for (int i = 0; i < 3; i++)
		if (!strncmp(buf, names[i], strlen(names[i]) + 1)) {
			if (h->types[i])
				return -1;   /* a second type of that name: not ours */
			h->types[i] = t;
			return i;
		}
	return -1;
}

/* Node layouts (every 3.x: PyObject_VAR_HEAD is 24 bytes, PyObject_HEAD 16):
 * bitmap node: ob_size (2 * entries) at 16, uint32 bitmap at 24, key/value
 * pairs from 32 (a NULL key: the value is a sub-node); array node: 32 child
 * pointers from 16; collision node: ob_size at 16, int32 hash at 24, pairs
 * from 32. */
static int hamt_find(const struct hamt_reader *h, uint64_t node, uint64_t key, int64_t hash,
		     uint64_t *value)
{
	int32_t x = (int32_t)(uint32_t)((uint64_t)hash & 0xffffffffu) ^
		    (int32_t)(uint32_t)((uint64_t)hash >> 32);
	uint32_t h32 = (uint32_t)(x == -1 ? -2 : x);
	uint32_t shift = 0;
	for (int depth = 0; depth < MAX_HAMT_DEPTH; depth++) {
		uint8_t head[32];
		if (hrd(h, node, head, sizeof head))
			return -1;
		int kind = node_kind(h, ld64(head, 8));
		if (kind < 0)
			return -1;
		int64_t size = (int64_t)ld64(head, 16);
		if (kind == NODE_ARRAY) {
			if (shift >= 32)
				return -1;
			uint64_t child;
			uint32_t idx = (h32 >> shift) & 31;
			if (hrd(h, node + 16 + 8 * (uint64_t)idx, &child, 8))
				return -1;
			if (!child)
				return 1;
			hamt_record(h, depth, node, 16 + 8 * idx, kind, 0, child);
			node = child;
			shift += 5;
			continue;
		}
		if (size < 0 || size > 64 || (size & 1))
			return -1;
		uint64_t pair[2];
		if (kind == NODE_COLLISION) {
			int32_t ch;
			memcpy(&ch, head + 24, 4);
			if ((uint32_t)ch != h32)
				return 1;
			for (int64_t i = 0; i < size; i += 2) {
				if (hrd(h, node + 32 + 8 * (uint64_t)i, pair, 16))
					return -1;
				if (pair[0] == key) {
					*value = pair[1];
					hamt_record(h, depth, node, (uint32_t)(32 + 8 * i), kind, key, pair[1]);
					return pair[1] && !(pair[1] & 7) ? 0 : -1;
				}
			}
			return 1;
		}
		if (shift >= 32)
			return -1;
		uint32_t bitmap;
		memcpy(&bitmap, head + 24, 4);
		if (__builtin_popcount(bitmap) * 2 != size)
			return -1;
		uint32_t bit = 1u << ((h32 >> shift) & 31);
		if (!(bitmap & bit))
			return 1;
		uint32_t idx = (uint32_t)__builtin_popcount(bitmap & (bit - 1));
		if (hrd(h, node + 32 + 16 * (uint64_t)idx, pair, 16))
			return -1;
		if (!pair[1] || (pair[1] & 7))
			return -1;
		hamt_record(h, depth, node, 32 + 16 * idx, kind, pair[0], pair[1]);
		if (pair[0] == 0) {
			node = pair[1];
			shift += 5;
			continue;
		}
		if (pair[0] != key)
			return 1;
		*value = pair[1];
		return 0;
	}
	return -1;
}

int otel_hamt_find(otel_read_fn read, void *ctx, const uint64_t node_types[3], uint64_t node,
		   uint64_t key, int64_t hash, uint64_t *value)
{
	uint64_t types[3] = {node_types[0], node_types[1], node_types[2]};
	struct hamt_reader h = {read, ctx, types, NULL, NULL};
	return hamt_find(&h, node, key, hash, value);
}

static int target_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	hm_otel *o = ctx;
	return o->r.read(o->r.ctx, addr, buf, len);
}

/* ---- finding the SDK --------------------------------------------------- */

static uint64_t main_interp(hm_otel *o)
{
	const hm_pylayout *L = o->r.layout;
	hm_python *py = o->py;
	if (!py)
		return 0;
	uint64_t interp = 0, head = py->runtime + (uint64_t)L->rt_interpreters_head;
	for (int i = 0; py->runtime && i < HM_MAX_INTERPS; i++) {
		uint64_t next;
		if (rd(o, head, &next, 8) || !next)
			break;
		interp = next;
		head = next + (uint64_t)L->is_next;
	}
	return interp;
}

static int module_global(hm_otel *o, uint64_t modules, const char *mod, const char *name,
			 uint64_t *v)
{
	const hm_pylayout *L = o->r.layout;
	uint64_t m, d;
	return hm_pyobj_dict_get(&o->r, modules, mod, &m) ||
	       rd(o, m + (uint64_t)L->mod_dict, &d, 8) || hm_pyobj_dict_get(&o->r, d, name, v);
}

/* Look the ContextVar and the span key up; 0 found. */
static int lookup(hm_otel *o)
{
	const hm_pylayout *L = o->r.layout;
	uint64_t interp = main_interp(o), modules, rc, var, key;
	if (!interp || L->is_modules < 0 || L->mod_dict < 0 ||
	    rd(o, interp + (uint64_t)L->is_modules, &modules, 8))
		return -1;
	if (module_global(o, modules, "opentelemetry.context", "_RUNTIME_CONTEXT", &rc) ||
	    hm_pyobj_getattr(&o->r, rc, "_current_context", &var) ||
	    module_global(o, modules, "opentelemetry.trace.propagation", "_SPAN_KEY", &key))
		return -1;
	uint8_t vb[64];
	if (o->A->var_hash < 0 || (size_t)o->A->var_hash + 8 > sizeof vb ||
	    rd(o, var, vb, (size_t)o->A->var_hash + 8) || ld64(vb, (size_t)L->ob_type) != o->var_type)
		return -1;
	if (hm_pyobj_str(&o->r, key, o->span_key_text, sizeof o->span_key_text) ||
	    strncmp(o->span_key_text, "current-span", 12))
		return -1;
	o->var_hash = (int64_t)ld64(vb, (size_t)o->A->var_hash);
	o->span_key = key;
	o->var = var;
	return 0;
}

static int ready(hm_otel *o)
{
	if (o->var)
		return 1;
	uint64_t now = hm_mono_ns();
	if (now < o->next_lookup_ns)
		return 0;
	/* The answer cache is allocated once the SDK is there. */
	if ((o->ctxs || (o->ctxs = calloc(CTX_SLOTS, sizeof *o->ctxs))) && lookup(o) == 0)
		return 1;
	o->backoff_ns = !o->backoff_ns ? LOOKUP_MIN_NS
		: o->backoff_ns * 2 > LOOKUP_MAX_NS ? LOOKUP_MAX_NS : o->backoff_ns * 2;
	o->next_lookup_ns = now + o->backoff_ns;
	return 0;
}

/* ---- spans ------------------------------------------------------------- */

struct key_find {
	hm_otel *o;
	uint64_t value;
	int found;
};

static int match_span_key(void *ctx, uint64_t key, uint64_t value)
{
	struct key_find *f = ctx;
	if (key == f->o->span_key) {
		f->value = value;
		f->found = 1;
		return 1;
	}
	return 0;
}

static uint64_t mix(uint64_t a)
{
	a ^= a >> 33;
	a *= 0xff51afd7ed558ccdull;
	a ^= a >> 33;
	return a;
}

/* A trace's local roots and the other spans' parents, as learnt from
 * every span read (read_span): facts, never stale (a span id is random,
 * and a span's parent never changes), so a slot taken by another span is
 * the only way to lose one. A span's local root is given only when these
 * prove it: the span is one, or its parent is, or its parent's parent...
 * A trace may have several local roots in one process (a client calling
 * two of its endpoints in one trace): a root per trace would name the
 * other request's root. */
static uint64_t span_key(uint64_t hi, uint64_t lo, uint64_t sid)
{
	return mix(hi ^ mix(lo ^ mix(sid)));
}

static struct root_slot *root_slot(hm_otel *o, uint64_t hi, uint64_t lo, uint64_t sid)
{
	return &o->roots[span_key(hi, lo, sid) % ROOT_SLOTS];
}

static struct edge_slot *edge_slot(hm_otel *o, uint64_t hi, uint64_t lo, uint64_t sid)
{
	return &o->edges[span_key(hi, lo, sid) % EDGE_SLOTS];
}

static void learn(hm_otel *o, const struct span_slot *s)
{
	if (!s->parent_ok)
		return;
	if (s->local_root) {
		struct root_slot *r = root_slot(o, s->trace_hi, s->trace_lo, s->span_id);
		if (!s->name[0] || (r->span_id == s->span_id && r->trace_hi == s->trace_hi &&
				    r->trace_lo == s->trace_lo && !strcmp(r->name, s->name)))
			return;
		r->trace_hi = s->trace_hi;
		r->trace_lo = s->trace_lo;
		r->span_id = s->span_id;
		memcpy(r->name, s->name, sizeof r->name);
	} else if (s->parent_id) {
		*edge_slot(o, s->trace_hi, s->trace_lo, s->span_id) =
			(struct edge_slot){s->trace_hi, s->trace_lo, s->span_id, s->parent_id};
	}
}

/* sp's local root name when proven (above), else NULL. */
static const char *root_name(hm_otel *o, const hm_pyspan *sp)
{
	uint64_t hi = sp->trace_hi, lo = sp->trace_lo;
	uint64_t id = sp->local_root ? sp->span_id : sp->parent_id;
	if (sp->local_root && sp->name[0])
		return sp->name;
	for (int hop = 0; id && hop < ROOT_HOPS; hop++) {
		const struct root_slot *r = root_slot(o, hi, lo, id);
		if (r->span_id == id && r->trace_hi == hi && r->trace_lo == lo)
			return r->name;
		const struct edge_slot *e = edge_slot(o, hi, lo, id);
		if (e->span_id != id || e->trace_hi != hi || e->trace_lo != lo)
			return NULL;
		id = e->parent_id;
	}
	return NULL;
}

static void copy_name(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);
	memmove(dst, src, n);
	dst[n] = 0;
}

/* Fill sp->root if it is proven now; 1 when sp has it. */
static int fill_root(hm_otel *o, hm_pyspan *sp)
{
	if (!sp->root[0] && (sp->trace_hi || sp->trace_lo)) {
		const char *r = root_name(o, sp);
		if (r)
			copy_name(sp->root, sizeof sp->root, r);
	}
	return sp->root[0] != 0;
}

void otel_span_note(hm_otel *o, hm_pyspan *sp)
{
	struct span_slot s;
	memset(&s, 0, sizeof s);
	s.trace_hi = sp->trace_hi;
	s.trace_lo = sp->trace_lo;
	s.span_id = sp->span_id;
	s.parent_id = sp->parent_id;
	s.local_root = sp->local_root;
	s.parent_ok = sp->local_root || sp->parent_id;
	memcpy(s.name, sp->name, sizeof s.name);
	if (sp->trace_hi || sp->trace_lo)
		learn(o, &s);
	fill_root(o, sp);
}

/* Is sctx a SpanContext? (a tuple subclass named SpanContext; learnt once) */
static int is_span_context(hm_otel *o, uint64_t sctx)
{
	const hm_pylayout *L = o->r.layout;
	uint64_t t;
	if (rd(o, sctx + (uint64_t)L->ob_type, &t, 8) || !t)
		return 0;
	if (o->sctx_type)
		return t == o->sctx_type;
	char name[32];
	if (hm_pyobj_type_name(&o->r, sctx, name, sizeof name) || strcmp(name, "SpanContext"))
		return 0;
	o->sctx_type = t;
	return 1;
}

static const char *const field_names[NFIELDS] = {"_context", "_name", "_parent"};

static struct span_type *learn_fields(hm_otel *o, struct span_type *st, uint64_t t);

static struct span_type *learn_span_type(hm_otel *o, uint64_t t)
{
	struct span_type *st = &o->stypes[o->stypes[0].type && o->stypes[0].type != t];
	if (st->type == t)
		return st->bad ? NULL : st;
	unsigned m = o->defer_miss;
	struct span_type *r = learn_fields(o, st, t);
	if (!r && o->defer_miss != m)
		st->type = 0;            /* a read deferred: learnt at the next turn */
	return r;
}

static struct span_type *learn_fields(hm_otel *o, struct span_type *st, uint64_t t)
{
	const hm_pylayout *L = o->r.layout;
	memset(st, 0, sizeof *st);
	st->type = t;
	st->bad = 1;
	int kind = L->inst_dict_kind;
	if ((kind != HM_IDICT_PREHEADER && kind != HM_IDICT_TAGGED && kind != HM_IDICT_INLINE) ||
	    L->ht_cached_keys < 0 || L->tp_flags < 0 || L->inst_dict_ptr == 0 ||
	    rd(o, t + (uint64_t)L->tp_flags, &st->flags, 8) ||
	    rd(o, t + (uint64_t)L->tp_basicsize, &st->basicsize, 8) ||
	    rd(o, t + (uint64_t)L->ht_cached_keys, &st->keys, 8) || !st->keys ||
	    !(L->tpflags_managed_dict > 0 && (st->flags & (uint64_t)L->tpflags_managed_dict)))
		return NULL;
	if (kind == HM_IDICT_PREHEADER && L->inst_values_ptr == -1)
		return NULL;
	if (kind == HM_IDICT_INLINE &&
	    (L->tpflags_inline_values <= 0 || !(st->flags & (uint64_t)L->tpflags_inline_values) ||
	     st->basicsize <= 0 || st->basicsize > 1 << 20))
		return NULL;
	for (int i = 0; i < NFIELDS; i++) {
		int64_t idx;
		uint64_t key;
		st->idx[i] = hm_pyobj_keys_index(&o->r, st->keys, field_names[i], &idx, &key) ? -1
			     : idx > 255 ? 256 : (int)idx;
		if (st->idx[i] > 255)
			return NULL;
	}
	if (st->idx[F_CONTEXT] < 0)
		return NULL;
	st->bad = 0;
	return st;
}

/* The span's fields (0: absent) by their indexes in its type's shared keys,
 * with the same rules as hm_pyobj_getattr: values only while the instance
 * has no dict of its own, and only while the type's keys are the ones the
 * indexes were learnt from. 0, or -1 (read them by getattr). */
static int span_fields(hm_otel *o, uint64_t span, uint64_t t, uint64_t f[NFIELDS],
		       uint64_t *name_at)
{
	const hm_pylayout *L = o->r.layout;
	struct span_type *st = learn_span_type(o, t);
	uint64_t keys, slot, values = 0, v[256];
	if (!st || rd(o, t + (uint64_t)L->ht_cached_keys, &keys, 8) || keys != st->keys ||
	    rd(o, span + (uint64_t)(int64_t)L->inst_dict_ptr, &slot, 8))
		return -1;
	switch (L->inst_dict_kind) {
	case HM_IDICT_PREHEADER:
		if (slot || rd(o, span + (uint64_t)(int64_t)L->inst_values_ptr, &values, 8))
			return -1;
		break;
	case HM_IDICT_TAGGED:
		if (!(slot & 1))
			return -1;
		values = slot + 1;
		break;
	default:
		if (slot)
			return -1;
		values = span + (uint64_t)st->basicsize;
		break;
	}
	int n = 0;
	for (int i = 0; i < NFIELDS; i++)
		if (st->idx[i] + 1 > n)
			n = st->idx[i] + 1;
	if (!values || o->r.read(o->r.ctx, values + (uint64_t)L->dv_values, v, 8 * (size_t)n))
		return -1;
	for (int i = 0; i < NFIELDS; i++) {
		f[i] = st->idx[i] >= 0 ? v[st->idx[i]] : 0;
		if (f[i] & 7)
			return -1;
	}
	*name_at = st->idx[F_NAME] >= 0 ?
		   values + (uint64_t)L->dv_values + 8 * (uint64_t)st->idx[F_NAME] : 0;
	return f[F_CONTEXT] ? 0 : -1;
}

/* Read the span object at addr into its slot. The ids and the _name
 * pointer are read every time; a span whose object, SpanContext object and
 * ids all equal the slot's is the one seen before (span ids are random), so
 * its parent is not read again, nor its name while _name holds the same
 * str (update_name() puts another there). NULL if addr holds no span with
 * ids. */
static void blk_prefetch(hm_otel *o, const uint64_t *addrs, int n);

/* The parent of the span at addr (whose fields are f when fast): its id
 * (a remote parent's too; 0 for none) and whether the span is its trace's
 * local root (no parent, or a remote one). -1 when it cannot be read: no
 * root is learnt or given from that span. */
static int span_parent(hm_otel *o, uint64_t addr, int fast, const uint64_t f[NFIELDS],
		       uint64_t *pid, int *root)
{
	uint64_t parent = fast ? f[F_PARENT] : 0, pitems[3], remote, sid_hi;
	int neg;
	*pid = 0;
	*root = 0;
	if (!parent && hm_pyobj_getattr(&o->r, addr, "_parent", &parent))
		return -1;
	if (hm_pyobj_kind(&o->r, parent) == HM_PT_NONE) {
		*root = 1;
		return 0;
	}
	if (!is_span_context(o, parent) || hm_pyobj_tuple_head(&o->r, parent, pitems, 3) ||
	    hm_pyobj_uint128(&o->r, pitems[1], &sid_hi, pid) || sid_hi || !*pid ||
	    hm_pyobj_int(&o->r, pitems[2], &remote, &neg)) {
		*pid = 0;
		return -1;
	}
	*root = remote != 0;
	return 0;
}

static struct span_slot *read_span(hm_otel *o, uint64_t addr)
{
	struct span_slot *s = &o->spans[mix(addr) % SPAN_SLOTS];
	uint64_t sctx, items[3], sid_hi, hi, lo, sid, t, f[NFIELDS], name_at = 0;
	unsigned miss = o->defer_miss;
	if (rd(o, addr + (uint64_t)o->r.layout->ob_type, &t, 8) || !t)
		return NULL;
	int fast = span_fields(o, addr, t, f, &name_at) == 0;
	if (!fast)
		name_at = 0;
	if (fast)
		sctx = f[F_CONTEXT];
	else if (hm_pyobj_getattr(&o->r, addr, "_context", &sctx))
		return NULL;
	if (fast)
		blk_prefetch(o, f, NFIELDS);
	if (!is_span_context(o, sctx) || hm_pyobj_tuple_head(&o->r, sctx, items, 3))
		return NULL;
	/* The ids in one read, and with them the parent's span id (a new
	 * span's local root is found through it; its SpanContext came with
	 * the fields). */
	uint64_t pre[3] = {items[0], items[1], 0}, pitems[3];
	if (fast && f[F_PARENT] && s->addr != addr && is_span_context(o, f[F_PARENT]) &&
	    !hm_pyobj_tuple_head(&o->r, f[F_PARENT], pitems, 3))
		pre[2] = pitems[1];
	blk_prefetch(o, pre, 3);
	if (hm_pyobj_uint128(&o->r, items[0], &hi, &lo) ||
	    hm_pyobj_uint128(&o->r, items[1], &sid_hi, &sid) || sid_hi || (!hi && !lo) || !sid)
		return NULL;
	/* Absent by index (or a key added since the indexes were learnt):
	 * by getattr, as every field of a span not read by index. */
	uint64_t name = fast ? f[F_NAME] : 0;
	if (!name && hm_pyobj_getattr_at(&o->r, addr, "_name", &name, &name_at))
		name = name_at = 0;
	int same = s->addr == addr && s->sctx == sctx && s->trace_hi == hi && s->trace_lo == lo &&
		   s->span_id == sid;
	if (same && s->name_ptr == name) {
		s->name_at = name_at;
		learn(o, s);             /* (its slot may have been taken since) */
		return s;
	}
	struct span_slot n;
	memset(&n, 0, sizeof n);
	n.trace_hi = hi;
	n.trace_lo = lo;
	n.span_id = sid;
	if (!name || hm_pyobj_str(&o->r, name, n.name, sizeof n.name)) {
		/* Only a NonRecordingSpan has no name; anything else was
		 * caught changing (torn): no span rather than half of one. */
		char tname[32];
		if (hm_pyobj_type_name(&o->r, addr, tname, sizeof tname) ||
		    strcmp(tname, "NonRecordingSpan"))
			return NULL;
		n.name[0] = 0;
	}
	/* Its parent: the local root is found through it (a span renamed
	 * keeps the one read before). */
	if (same) {
		n.parent_ok = s->parent_ok;
		n.parent_id = s->parent_id;
		n.local_root = s->local_root;
	} else {
		n.parent_ok = span_parent(o, addr, fast, f, &n.parent_id, &n.local_root) == 0;
	}
	if (o->defer_miss != miss)
		return NULL;             /* (its parent wanted a block) */
	n.addr = addr;
	n.sctx = sctx;
	n.name_ptr = name;
	n.name_at = name_at;
	*s = n;
	if (t != o->span_types[0] && t != o->span_types[1]) {
		o->span_types[1] = o->span_types[0];
		o->span_types[0] = t;
	}
	learn(o, s);
	return s;
}

/* Re-reading the words the last answer for a context came from: its
 * ctx_vars, the HAMT's root, each HAMT entry followed, and the Context
 * dict's type and version tag. Each object's pointer is read live from its
 * parent, so if every word equals what it was, the lookup would follow the
 * same path to the same dict; and a dict's version tag is drawn from an
 * interpreter-wide counter when it is created (and on every change), so an
 * equal tag is the same, unchanged dict: the same span. plan() lists the
 * regions (so that the walker can read them with the thread state, in its
 * one system call, at the context the thread had last time), check()
 * compares them. */
/* The regions in r (n of them) as iovecs, those within one page merged
 * into one read into sp->page (the context, its HAMT and the HAMT's nodes
 * are small objects of one size class, often on one page). */
static int merge(struct spec *sp, hm_iov *r, int n, hm_iov *iov)
{
	int order[MAX_REGIONS], m = 0;
	for (int i = 0; i < n; i++) {
		int j = i;
		for (; j > 0 && r[order[j - 1]].addr > r[i].addr; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	size_t used = 0;
	sp->nscatter = 0;
	for (int i = 0; i < n;) {
		const hm_iov *a = &r[order[i]];
		uint64_t page = a->addr / PAGE, end = a->addr + a->len;
		int k = i + 1;
		while (k < n && (r[order[k]].addr + r[order[k]].len - 1) / PAGE == page) {
			if (r[order[k]].addr + r[order[k]].len > end)
				end = r[order[k]].addr + r[order[k]].len;
			k++;
		}
		if (k - i < 2 || (a->addr + a->len - 1) / PAGE != page ||
		    used + (end - a->addr) > sizeof sp->page) {
			iov[m++] = *a;
			i++;
			continue;
		}
		iov[m++] = (hm_iov){a->addr, sp->page + used, (size_t)(end - a->addr)};
		for (; i < k; i++) {
			const hm_iov *b = &r[order[i]];
			sp->scatter[sp->nscatter].dst = b->buf;
			sp->scatter[sp->nscatter].off = (uint32_t)(used + (b->addr - a->addr));
			sp->scatter[sp->nscatter].len = (uint32_t)b->len;
			sp->nscatter++;
		}
		used += end - a->addr;
	}
	return m;
}

static void scatter(struct spec *sp)
{
	for (int i = 0; i < sp->nscatter; i++)
		memcpy(sp->scatter[i].dst, sp->page + sp->scatter[i].off, sp->scatter[i].len);
}

static int plan(hm_otel *o, const struct ctx_slot *c, uint64_t ctx, struct spec *sp, hm_iov *out)
{
	const hm_pylayout *L = o->r.layout;
	if (!c->valid || c->ctx != ctx ||
	    (!c->absent && (c->path.n < 1 || c->path.n > MAX_HAMT_DEPTH)) ||
	    (size_t)o->A->hamt_count > sizeof sp->hbuf)
		return -1;
	hm_iov iov[MAX_REGIONS];
	int n = 0;
	iov[n++] = (hm_iov){ctx + 8, sp->cbuf, (size_t)o->A->ctx_vars};          /* type .. vars */
	/* type, root (.. count) */
	iov[n++] = (hm_iov){c->hamt + 8, sp->hbuf,
			    (size_t)(c->absent ? o->A->hamt_count : o->A->hamt_root)};
	if (c->absent) {
		sp->ctx = ctx;
		return merge(sp, iov, n, out);
	}
	for (int i = 0; i < c->path.n; i++) {
		const struct hamt_step *st = &c->path.step[i];
		size_t len = (size_t)st->off + (st->kind == NODE_ARRAY ? 8 : 16) - 8;
		if (len > sizeof sp->nbuf[0])
			return -1;
		iov[n++] = (hm_iov){st->node + 8, sp->nbuf[i], len};
	}
	iov[n++] = (hm_iov){c->dict + 8, sp->dbuf, (size_t)L->dict_used + 8};   /* type .. version */
	/* The span's _name word: a span renamed since (update_name) is read
	 * again, its name with it. */
	if (c->name_at)
		iov[n++] = (hm_iov){c->name_at, sp->nmbuf, 8};
	sp->ctx = ctx;
	return merge(sp, iov, n, out);
}

static int check(const hm_otel *o, const struct ctx_slot *c, const struct spec *sp)
{
	const hm_pylayout *L = o->r.layout;
	if (sp->cbuf[0] != o->ctx_type || ld64(sp->cbuf, (size_t)o->A->ctx_vars - 8) != c->hamt ||
	    sp->hbuf[0] != o->hamt_type)
		return -1;
	if (c->absent)
		return ld64(sp->hbuf, (size_t)o->A->hamt_root - 8) == c->root &&
		       (int64_t)ld64(sp->hbuf, (size_t)o->A->hamt_count - 8) == c->count ? 0 : -1;
	if (ld64(sp->hbuf, (size_t)o->A->hamt_root - 8) != c->path.step[0].node)
		return -1;
	for (int i = 0; i < c->path.n; i++) {
		const struct hamt_step *st = &c->path.step[i];
		const uint8_t *b = (const uint8_t *)sp->nbuf[i];
		if (ld64(b, 0) != o->node_types[st->kind])
			return -1;
		if (st->kind == NODE_ARRAY) {
			if (ld64(b, st->off - 8) != st->value)
				return -1;
		} else if (ld64(b, st->off - 8) != st->key || ld64(b, st->off) != st->value) {
			return -1;
		}
		uint64_t next = i + 1 < c->path.n ? c->path.step[i + 1].node : c->dict;
		if (st->value != next)
			return -1;
	}
	if (sp->dbuf[0] != c->dict_type || ld64(sp->dbuf, (size_t)L->dict_used) != c->dict_version)
		return -1;
	if (c->name_at && sp->nmbuf[0] != c->name_ptr)
		return -1;
	return 0;
}

static int fast_path(hm_otel *o, struct ctx_slot *c, uint64_t ctx)
{
	hm_iov iov[MAX_REGIONS];
	int n = plan(o, c, ctx, &o->own, iov);
	if (n < 0 || hm_target_readv(o->t, iov, n) != HM_OK)
		return -1;
	scatter(&o->own);
	return check(o, c, &o->own);
}

static void answer(hm_otel *o, const struct ctx_slot *c, hm_pyspan *out)
{
	*out = c->span;
	/* The local root may have been learnt (or renamed) since. */
	const char *r = (out->trace_hi || out->trace_lo) ? root_name(o, out) : NULL;
	if (r && strcmp(r, out->root))
		copy_name(out->root, sizeof out->root, r);
}

/* ---- the chain read with the thread state ----------------------------- */

static int chain_read(void *ctx, uint64_t addr, void *buf, size_t len);
static int blk_reader(void *ctx, uint64_t addr, void *buf, size_t len);

/* The type object of a chain whose fields read (tp_flags .. ht_cached_keys)
 * hold addr: its address, and in *end where those fields end (a block kept
 * for a second holds no byte past them: what lies beyond is not the
 * type's). 0 for any other address. */
static uint64_t chain_type_at(const hm_otel *o, uint64_t addr, uint64_t *end)
{
	const hm_pylayout *L = o->r.layout;
	int64_t last = L->ht_cached_keys > L->tp_flags ? L->ht_cached_keys : L->tp_flags;
	const uint64_t ts[4] = {o->span_types[0], o->span_types[1], o->sctx_type, o->ctx_dict_type};
	for (int i = 0; i < 4 && last >= 0; i++)
		if (ts[i] && addr >= ts[i] && addr - ts[i] < (uint64_t)last + 8) {
			*end = ts[i] + (uint64_t)last + 8;
			return ts[i];
		}
	return 0;
}

/* A live read while a chain (or a root scan) is read: served from a block
 * read earlier in this chain when one holds [addr, addr + len) (or from a
 * type's block younger than TBLK_NS), else the block from 64 bytes before
 * addr (rounded down to 64) to BLK on, within addr's page (so that it fails
 * only where the exact read would), is read and kept. A fresh chain then
 * costs about one system call per object rather than one per field. What a
 * block serves was read at one instant, earlier than the exact read would
 * have been: the checks that follow are the same either way. */
/* The block around addr: from 64 bytes before it (a managed dict's
 * pointers, 3.11+, lie just before the object), rounded down to 64, to BLK
 * on, within addr's page. */
static void blk_bounds(uint64_t addr, uint64_t *start, uint64_t *end)
{
	uint64_t page = addr / PAGE * PAGE, s = addr & ~(uint64_t)63;
	*start = s - page >= 64 ? s - 64 : page;
	*end = page + PAGE - *start > BLK ? *start + BLK : page + PAGE;
}

/* A block wanted at the next turn (deferred reads, contexts_spans). */
static void want(hm_otel *o, uint64_t start, uint64_t end)
{
	for (int i = 0; i < o->nwant; i++)
		if (o->want[i].addr == start)
			return;
	if (o->nwant < NWANT) {
		o->want[o->nwant].addr = start;
		o->want[o->nwant++].len = (uint32_t)(end - start);
	}
}

static int blk_read(hm_otel *o, uint64_t addr, void *buf, size_t len)
{
	for (int i = 0; i < o->ntblk; i++) {
		uint64_t a = o->tblk[i].addr;
		if (addr >= a && len <= o->tblk[i].len && addr - a <= o->tblk[i].len - len &&
		    o->blk_now - o->tblk[i].born < TBLK_NS) {
			memcpy(buf, o->tblk_data[i] + (addr - a), len);
			return 0;
		}
	}
	for (int i = 0; i < o->nblk; i++) {
		uint64_t a = o->blk[i].addr;
		if (addr >= a && len <= o->blk[i].len && addr - a <= o->blk[i].len - len) {
			memcpy(buf, o->blk_data[i] + (addr - a), len);
			return 0;
		}
	}
	uint64_t start, end;
	blk_bounds(addr, &start, &end);
	if (len > BLK || addr + len > end)
		return o->live_read(o->live_ctx, addr, buf, len);
	uint8_t *data;
	uint64_t tend, t = chain_type_at(o, addr, &tend);
	if (t) {
		start = start < t ? t : start;
		end = end > tend ? tend : end;
		if (addr + len > end)
			return o->live_read(o->live_ctx, addr, buf, len);
		int k = 0;
		for (int i = 1; i < o->ntblk; i++)
			if (o->tblk[i].born < o->tblk[k].born)
				k = i;
		if (o->ntblk < NTBLK)
			k = o->ntblk++;
		o->tblk[k].addr = start;
		o->tblk[k].len = 0;
		o->tblk[k].born = o->blk_now;
		data = o->tblk_data[k];
		if (o->live_read(o->live_ctx, start, data, (size_t)(end - start)))
			return o->live_read(o->live_ctx, addr, buf, len);
		o->tblk[k].len = (uint32_t)(end - start);
	} else if (o->blk_defer) {
		o->defer_miss++;         /* the read fails: the chain goes on next turn */
		want(o, start, end);
		return -1;
	} else {
		int k = o->nblk < NBLK ? o->nblk++ : o->blk_next++ % NBLK;
		o->blk[k].len = 0;
		data = o->blk_data[k];
		if (o->live_read(o->live_ctx, start, data, (size_t)(end - start)))
			return o->live_read(o->live_ctx, addr, buf, len);
		o->blk[k].addr = start;
		o->blk[k].len = (uint32_t)(end - start);
	}
	memcpy(buf, data + (addr - start), len);
	return 0;
}

/* Objects a chain reads next whose addresses are known together (a span's
 * SpanContext, name and parent; a SpanContext's two ints): their blocks in
 * one read, when a chain is read live (not from the regions read with the
 * thread: there they are found, or a miss reads on) or a scan is, and they
 * are in no block yet. */
static void blk_prefetch(hm_otel *o, const uint64_t *addrs, int n)
{
	if ((o->r.read != chain_read && o->r.read != blk_reader) || o->replaying)
		return;
	hm_iov iov[4];
	int k = 0, slot[4];
	for (int i = 0; i < n && i < 4; i++) {
		uint64_t a = addrs[i], start, end;
		uint64_t tend;
		if (!a || (a & 7) || chain_type_at(o, a, &tend))
			continue;
		int have = 0;
		for (int j = 0; j < o->nblk && !have; j++)
			have = a >= o->blk[j].addr && a - o->blk[j].addr + 32 <= o->blk[j].len;
		for (int j = 0; j < k && !have; j++)
			have = a >= iov[j].addr && a - iov[j].addr + 32 <= iov[j].len;
		if (have)
			continue;
		blk_bounds(a, &start, &end);
		if (o->blk_defer) {
			/* read at the next turn, with the block that the
			 * read in progress wants */
			want(o, start, end);
			continue;
		}
		if (o->nblk + k >= NBLK)
			continue;
		slot[k] = o->nblk + k;
		iov[k] = (hm_iov){start, o->blk_data[slot[k]], (size_t)(end - start)};
		k++;
	}
	if (k < 2 || hm_target_readv(o->t, iov, k) != HM_OK)
		return;      /* one alone is read when asked for */
	for (int j = 0; j < k; j++) {
		o->blk[slot[j]].addr = iov[j].addr;
		o->blk[slot[j]].len = (uint32_t)iov[j].len;
	}
	o->nblk += k;
}

/* Copy [addr, addr + len) from region r, copied into data at its off. 1
 * when it lay there. */
static int range_take(const struct chain_range *r, const uint64_t *data, uint64_t addr, void *buf,
		      size_t len)
{
	if (addr < r->addr || len > r->len || addr - r->addr > r->len - len)
		return 0;
	memcpy(buf, (const uint8_t *)data + r->off + (addr - r->addr), len);
	return 1;
}

/* The same from n regions: the index of the one it lay in, else -1. */
static int range_copy(const struct chain_range *rs, int n, const uint64_t *data, uint64_t addr,
		      void *buf, size_t len)
{
	for (int i = 0; i < n; i++)
		if (range_take(&rs[i], data, addr, buf, len))
			return i;
	return -1;
}

/* The snapshot's regions by page (a chain reads ~30 times, from ~13
 * regions): each region under every page it spans, open addressing. */
static unsigned page_slot(uint64_t page)
{
	return (unsigned)((page * 0x9E3779B97F4A7C15ull) >> 57) & (SNAP_MAP - 1);
}

static void snap_map_build(hm_otel *o)
{
	memset(o->snap_map, 0, sizeof o->snap_map);
	for (int i = 0; i < o->nsnap; i++) {
		const struct chain_range *r = &o->snap[i];
		if (!r->len)
			continue;
		for (uint64_t pg = r->addr / PAGE; pg <= (r->addr + r->len - 1) / PAGE; pg++) {
			unsigned h = page_slot(pg), n = 0;
			while (o->snap_map[h] && ++n < SNAP_MAP)
				h = (h + 1) & (SNAP_MAP - 1);
			if (n < SNAP_MAP)
				o->snap_map[h] = (uint8_t)(i + 1);
		}
	}
}

/* range_copy over the snapshot, by the regions on addr's page. */
static int snap_copy(hm_otel *o, uint64_t addr, void *buf, size_t len)
{
	unsigned h = page_slot(addr / PAGE);
	for (unsigned n = 0; n < SNAP_MAP && o->snap_map[h]; n++, h = (h + 1) & (SNAP_MAP - 1)) {
		int i = o->snap_map[h] - 1;
		if (range_take(&o->snap[i], o->snapbuf, addr, buf, len))
			return i;
	}
	return -1;
}

/* While a chain is read for a thread (otel_thread_span), every read goes
 * through chain_read: served from the snapshot when replaying and the
 * region was in it (a miss reads live and is noted), and logged, so that
 * the next sample can read the same regions with the thread state. */
static int chain_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	hm_otel *o = ctx;
	int hit = o->replaying ? snap_copy(o, addr, buf, len) : -1;
	if (hit < 0) {
		o->missed = 1;
		if (blk_read(o, addr, buf, len))
			return -1;
	}
	if (o->nlog < CHAIN_READS && len <= CHAIN_READ_MAX) {
		o->log[o->nlog].addr = addr;
		o->log[o->nlog].len = (uint32_t)len;
		o->log[o->nlog].hit = hit;
		o->nlog++;
	}
	return 0;
}

static void chain_begin(hm_otel *o, int replay)
{
	o->live_read = o->r.read;
	o->live_ctx = o->r.ctx;
	o->r.read = chain_read;
	o->r.ctx = o;
	o->replaying = replay;
	o->missed = 0;
	o->proven_np = -1;
	o->nlog = 0;
	o->nblk = 0;
	o->blk_next = 0;
	o->blk_now = hm_mono_ns();
}

/* Add the logged reads to t's regions: a read on the page of a region (or
 * overlapping one) widens it, others make a new region while there is
 * room. Regions no chain touched in CHAIN_KEEP chains are dropped. The
 * regions are the union over the last chains because the objects of a new
 * span cycle through a few blocks of their size class, mostly on a few
 * pages, rather than always taking the last span's. */
static void chain_union(hm_otel *o, struct ts_slot *t)
{
	t->seq++;
	for (int k = 0; k < o->nlog; k++) {
		uint64_t a = o->log[k].addr, b = a + o->log[k].len;
		int i = o->log[k].hit;
		/* Served by the snapshot of t's regions: within its region. */
		if (i >= 0 && i < t->nranges && a >= t->range[i].addr &&
		    b <= t->range[i].addr + t->range[i].len) {
			t->used[i] = t->seq;
			continue;
		}
		for (i = 0; i < t->nranges; i++) {
			struct chain_range *r = &t->range[i];
			uint64_t e = r->addr + r->len;
			if (a / PAGE == r->addr / PAGE || (a <= e && b >= r->addr)) {
				if (a < r->addr)
					r->addr = a;
				if (b > e)
					e = b;
				r->len = (uint32_t)(e - r->addr);
				break;
			}
		}
		if (i == t->nranges) {
			if (t->nranges == CHAIN_RANGES)
				continue;        /* this one will be read live */
			t->range[t->nranges++] = (struct chain_range){a, (uint32_t)(b - a), 0};
			t->proof[i] = 0;
		}
		t->used[i] = t->seq;
	}
	/* Drop old regions (and overlong ones), then the oldest while the
	 * bytes do not fit. */
	for (;;) {
		int m = 0, oldest = -1;
		uint32_t used = 0;
		for (int i = 0; i < t->nranges; i++) {
			if (t->seq - t->used[i] > CHAIN_KEEP || t->range[i].len > 2 * PAGE)
				continue;
			t->range[m] = t->range[i];
			t->used[m] = t->used[i];
			t->proof[m] = t->proof[i];
			t->range[m].off = used;
			used += (t->range[m].len + 7) & ~7u;
			if (oldest < 0 || t->used[m] < t->used[oldest])
				oldest = m;
			m++;
		}
		t->nranges = m;
		if (used <= CHAIN_BUF)
			break;
		t->used[oldest] = t->seq - CHAIN_KEEP - 1;
	}
}

/* Back to live reads; the log joins t's regions. 1 when the chain was
 * replayed and every read was served by the snapshot. */
static int chain_end(hm_otel *o, struct ts_slot *t)
{
	o->r.read = o->live_read;
	o->r.ctx = o->live_ctx;
	int whole = o->replaying && !o->missed;
	o->replaying = 0;
	chain_union(o, t);
	return whole;
}

/* The words that prove c's answer: plan's regions less the span's _name
 * word (which says nothing of which span is current), for k, a copy of c
 * without it. */
static int proof_iov(hm_otel *o, const struct ctx_slot *c, uint64_t ctx, struct ctx_slot *k,
		     hm_iov *iov)
{
	*k = *c;
	k->name_at = 0;
	return plan(o, k, ctx, &o->own, iov);
}

/* Chain mode: the chain is replayed from regions read before the stack,
 * so what it finds must be proven for the stack too. Read again after the
 * stack: those of t's regions that held the words proving an answer of its
 * last chains (a new chain's context, HAMT, nodes and Context dict take
 * blocks of the last ones', on those pages); all of them when none did. */
static int proof_recent(const struct ts_slot *t, int i)
{
	return t->proof[i] && t->seq - t->proof[i] <= CHAIN_KEEP;
}

static void chain_end_plan(hm_otel *o, const struct ts_slot *t)
{
	int any = 0;
	for (int i = 0; i < t->nranges && !any; i++)
		any = proof_recent(t, i);
	uint32_t used = 0;
	for (int i = 0; i < t->nranges; i++) {
		if (any && !proof_recent(t, i))
			continue;
		const struct chain_range *r = &t->range[i];
		o->endsnap[o->nendsnap] = (struct chain_range){r->addr, r->len, used};
		o->end_iov[o->nend++] = (hm_iov){r->addr, (uint8_t *)o->endbuf + used, r->len};
		o->nendsnap++;
		used += (r->len + 7) & ~7u;
	}
}

/* After a chain: mark t's regions that hold the words proving its answer
 * for ctx (chain_end_plan reads them again). */
static void chain_mark_proof(hm_otel *o, struct ts_slot *t, uint64_t ctx)
{
	const struct ctx_slot *c = &o->ctxs[mix(ctx) % CTX_SLOTS];
	hm_iov p[MAX_REGIONS];
	struct ctx_slot k;
	if (!t->nranges || !c->valid || c->ctx != ctx)
		return;
	const hm_iov *pp = p;
	int np;
	if (o->proven_np >= 0 && o->proven_ctx == ctx) {
		pp = o->proven_p;        /* (the answer chain_proven just proved) */
		np = o->proven_np;
	} else {
		np = proof_iov(o, c, ctx, &k, p);
	}
	for (int i = 0; i < t->nranges; i++) {
		const struct chain_range *r = &t->range[i];
		for (int j = 0; j < np; j++)
			if (pp[j].addr < r->addr + r->len && pp[j].addr + pp[j].len > r->addr) {
				t->proof[i] = t->seq;
				break;
			}
	}
}

/* The replayed chain's answer for ctx, proven by the regions read again
 * after the stack: every word that proves it lies there and holds what
 * the replay read (the Context dict's version tag is unique, so a sibling
 * span set meanwhile, in the blocks of the one replayed, differs there).
 * 0: proven; 1: those words changed; -1: not all of them were read again. */
static int chain_proven(hm_otel *o, uint64_t ctx)
{
	const struct ctx_slot *c = &o->ctxs[mix(ctx) % CTX_SLOTS];
	hm_iov p[MAX_REGIONS];
	struct ctx_slot k;
	if (!o->end_read || !c->valid || c->ctx != ctx)
		return -1;
	int np = proof_iov(o, c, ctx, &k, p);
	if (np < 0)
		return -1;
	for (int j = 0; j < np; j++)
		if (range_copy(o->endsnap, o->nendsnap, o->endbuf, p[j].addr, p[j].buf, p[j].len) < 0)
			return -1;
	scatter(&o->own);
	if (check(o, &k, &o->own))
		return 1;
	o->proven_np = np;
	o->proven_ctx = ctx;
	memcpy(o->proven_p, p, (size_t)np * sizeof *p);
	return 0;
}

int otel_spec_iov(hm_otel *o, uint64_t tstate, hm_iov *iov, int max)
{
	o->spec.loaded = 0;
	o->spec.tstate = 0;
	o->spec.chain = 0;
	o->spec.dropped = 0;
	o->nend = o->nendsnap = o->end_read = 0;
	int reread = o->reread_tstate == tstate;
	o->reread_tstate = 0;
	if (!o->var || max < MAX_REGIONS)
		return 0;
	struct ts_slot *t = &o->tss[mix(tstate) % TS_SLOTS];
	if (t->tstate != tstate)
		return 0;
	struct ctx_slot *c = t->ctx ? &o->ctxs[mix(t->ctx) % CTX_SLOTS] : NULL;
	int plannable = c && c->valid && c->ctx == t->ctx;
	/* A thread whose span changed lately (or whose answer has no words
	 * to check): the regions of its last chain, so that a new chain at
	 * the same addresses (pymalloc hands a new span's objects the blocks
	 * the last one freed) is read with the stack. Not when the thread is
	 * read again to prove a chain just read: plan() says more cheaply
	 * whether it still holds. */
	int pays = t->nhist < CHAIN_HIST / 2 ||
		   2 * (uint32_t)__builtin_popcount(t->hist & ((1u << CHAIN_HIST) - 1)) >= CHAIN_HIST ||
		   t->since >= CHAIN_RETRY;
	t->since++;
	if (!reread && t->nranges > 0 && t->nranges <= max && (t->churn > 0 || !plannable) &&
	    (pays || !plannable)) {
		t->since = 0;
		o->nsnap = t->nranges;
		for (int i = 0; i < t->nranges; i++) {
			o->snap[i] = t->range[i];
			iov[i] = (hm_iov){t->range[i].addr, (uint8_t *)o->snapbuf + t->range[i].off,
					  t->range[i].len};
		}
		snap_map_build(o);
		o->spec.chain = 1;
		o->spec.tstate = tstate;
		chain_end_plan(o, t);
		return t->nranges;
	}
	if (!plannable)
		return 0;
	int n = plan(o, c, t->ctx, &o->spec, iov);
	if (n < 0)
		return 0;
	o->spec.tstate = tstate;
	int m = plan(o, c, t->ctx, &o->spec_end, o->end_iov);
	o->nend = m > 0 ? m : 0;
	return n;
}

void otel_spec_drop(hm_otel *o)
{
	if (o->spec.loaded) {
		o->spec.loaded = 0;
		o->spec.dropped = 1;
	}
}

int otel_spec_end_iov(const hm_otel *o, hm_iov *iov, int max)
{
	if (!o->spec.tstate || o->nend > max)
		return 0;
	memcpy(iov, o->end_iov, (size_t)o->nend * sizeof *iov);
	return o->nend;
}

/* A span set or reset in the thread's context while the stack was read
 * leaves the thread's context version as it was, and may even leave
 * ctx_vars where it was (a sibling span: the reset's HAMT freed the one
 * the words saw, the next set's took its block): the words read again
 * must still prove the same answer (a new Context dict, even in an old
 * one's block, has a new version tag). In chain mode (whose answer is not
 * known before the replay) the regions are only noted as read: the replayed
 * answer is checked against them (chain_proven). */
void otel_spec_end_check(hm_otel *o)
{
	if (!o->spec.loaded || !o->nend)
		return;
	if (o->spec.chain) {
		o->end_read = 1;         /* checked once the chain is replayed */
		return;
	}
	scatter(&o->spec_end);
	const struct ctx_slot *c = &o->ctxs[mix(o->spec.ctx) % CTX_SLOTS];
	if (!c->valid || c->ctx != o->spec.ctx || check(o, c, &o->spec_end))
		otel_spec_drop(o);
}

int otel_ver_offset(const hm_otel *o)
{
	return o->A && o->A->ts_context_ver >= 0 ? o->A->ts_context_ver : -1;
}

void otel_spec_loaded(hm_otel *o)
{
	o->spec.loaded = o->spec.tstate != 0;
	if (o->spec.loaded && !o->spec.chain)
		scatter(&o->spec);
}

static int context_span(hm_otel *o, uint64_t ctx, hm_pyspan *out, int try_cached);

int otel_context_span(hm_otel *o, uint64_t ctx, hm_pyspan *out)
{
	return context_span(o, ctx, out, 1);
}

/* try_cached 0: the words of the cached answer were just read and differ
 * (skip re-reading them). */
static int context_span(hm_otel *o, uint64_t ctx, hm_pyspan *out, int try_cached)
{
	out->trace_hi = out->trace_lo = out->span_id = 0;
	out->name[0] = out->root[0] = 0;
	out->parent_id = 0;
	out->local_root = 0;
	if (!ready(o))
		return 0;
	const hm_pylayout *L = o->r.layout;
	uint8_t cb[48];
	size_t clen = (size_t)o->A->ctx_vars + 8;
	if (!ctx)
		return 0;
	struct ctx_slot *c = &o->ctxs[mix(ctx) % CTX_SLOTS];
	if (try_cached && fast_path(o, c, ctx) == 0) {
		answer(o, c, out);
		return 0;
	}
	c->valid = 0;
	if (clen > sizeof cb || rd(o, ctx, cb, clen) || ld64(cb, (size_t)L->ob_type) != o->ctx_type)
		return -1;
	uint64_t hamt = ld64(cb, (size_t)o->A->ctx_vars), hb[6], value, span;
	size_t hlen = (size_t)o->A->hamt_count + 8;
	if (hlen > sizeof hb || rd(o, hamt, hb, hlen))
		return -1;
	if (!o->hamt_type) {
		char name[16];
		if (hm_pyobj_type_name(&o->r, hamt, name, sizeof name) || strcmp(name, "hamt"))
			return -1;
		o->hamt_type = ld64(hb, (size_t)L->ob_type);
	}
	if (ld64(hb, (size_t)L->ob_type) != o->hamt_type)
		return -1;
	int64_t count = (int64_t)ld64(hb, (size_t)o->A->hamt_count);
	uint64_t root = ld64(hb, (size_t)o->A->hamt_root);
	if (count < 0 || count > (1 << 24))
		return -1;
	struct hamt_reader h = {target_read, o, o->node_types, o, &c->path};
	c->path.n = 0;
	int rc = count ? hamt_find(&h, root, o->var, o->var_hash, &value) : 1;
	if (rc > 0) {
		/* No span: so long as the context holds the same HAMT (its
		 * nodes never change), with the same root and count. */
		memset(&c->span, 0, sizeof c->span);
		c->name_at = c->name_ptr = 0;
		c->ctx = ctx;
		c->hamt = hamt;
		c->root = root;
		c->count = count;
		c->absent = 1;
		c->path.n = 0;
		c->valid = 1;
	}
	if (rc)
		return rc > 0 ? 0 : -1;
	/* The Context dict's type and version tag, read before its items:
	 * a change in between shows at the next sample. */
	uint64_t db[3];
	int cacheable = L->dict_used >= 8 && L->dict_keys == L->dict_used + 16 &&
			!rd(o, value + 8, db, (size_t)L->dict_used + 8);
	struct key_find f = {o, 0, 0};
	if (hm_pyobj_dict_items_sub(&o->r, value, match_span_key, &f, 64) < 0)
		return -1;
	struct span_slot *s = NULL;
	if (f.found) {
		span = f.value;
		if (hm_pyobj_kind(&o->r, span) != HM_PT_OTHER)
			return -1;
		s = read_span(o, span);
		/* Torn, or (contexts_spans) a block not read yet: no answer,
		 * and none kept. An empty answer kept here would be given by
		 * the fast path until the context changed: a task waiting in
		 * its span, whose context a look for roots met first, went
		 * without it for tens of samples (3.10). */
		if (!s)
			return -1;
	}
	if (s) {
		out->trace_hi = s->trace_hi;
		out->trace_lo = s->trace_lo;
		out->span_id = s->span_id;
		out->parent_id = s->parent_id;
		out->local_root = s->local_root;
		memcpy(out->name, s->name, sizeof out->name);
		fill_root(o, out);
	}
	if (cacheable && c->path.n > 0 && c->path.step[c->path.n - 1].value == value) {
		c->ctx = ctx;
		c->hamt = hamt;
		c->dict = value;
		c->dict_type = db[0];
		o->ctx_dict_type = db[0];
		c->dict_version = ld64(db, (size_t)L->dict_used);
		c->span = *out;
		c->name_at = s ? s->name_at : 0;
		c->name_ptr = s ? s->name_ptr : 0;
		c->absent = 0;
		c->valid = 1;
	}
	return 0;
}

/* The local root of a trace whose root span was never current when a
 * sample was taken (a web framework's server span is current only between
 * its children): it is usually a local variable of a frame below, e.g. the
 * OpenTelemetry middleware's `current_span`. Looked for once per trace in
 * the sampled stack: first in the locals where a root was found before
 * (hints: a code object and a local's index, a read or two each), then,
 * at most SCANS_PER_S times a second, in every local of every frame (the
 * values of a frame in one read, their types in one more). A thread whose
 * stacks held no root in ROOT_FAILS scans in a row (a worker thread whose
 * request's server span lives in another thread) is scanned again only
 * after a pause. Reads go through blk_read. */
static int blk_reader(void *ctx, uint64_t addr, void *buf, size_t len)
{
	return blk_read(ctx, addr, buf, len);
}

static void blk_begin(hm_otel *o)
{
	o->live_read = o->r.read;
	o->live_ctx = o->r.ctx;
	o->r.read = blk_reader;
	o->r.ctx = o;
	o->nblk = 0;
	o->blk_next = 0;
	o->blk_now = hm_mono_ns();
}

static void blk_end(hm_otel *o)
{
	o->r.read = o->live_read;
	o->r.ctx = o->live_ctx;
}

/* The object at v (of type t) read as a span when t is a span class
 * (read_span learns its root or parent): 1 when it is a local root of
 * trace hi:lo. */
static int look_at(hm_otel *o, uint64_t v, uint64_t t, uint64_t hi, uint64_t lo)
{
	if (!t || (t != o->span_types[0] && t != o->span_types[1]))
		return 0;
	struct span_slot *s = read_span(o, v);
	return s && s->local_root && s->trace_hi == hi && s->trace_lo == lo;
}

/* The locals of the frame at frame (running code) where roots were found
 * before: 1 when one proves sp's root. */
static int hinted_at(hm_otel *o, uint64_t frame, uint64_t code, hm_pyspan *sp)
{
	hm_pyframe f;
	memset(&f, 0, sizeof f);
	f.addr = frame;
	for (int h = 0; h < ROOT_HINTS; h++) {
		uint64_t slot, v, t;
		if (!o->hints[h].code || o->hints[h].code != code ||
		    !(slot = hm_pyobj_local_slot(&o->r, &f, o->hints[h].idx)) ||
		    rd(o, slot, &v, 8) || !v || (v & 7) ||
		    rd(o, v + (uint64_t)o->r.layout->ob_type, &t, 8))
			continue;
		look_at(o, v, t, sp->trace_hi, sp->trace_lo);
		if (fill_root(o, sp))
			return 1;
	}
	return 0;
}

static int hinted(hm_otel *o, const hm_pythread *th, hm_pyspan *sp)
{
	for (int i = 0; i < th->nframes && i < SCAN_FRAMES; i++) {
		const hm_pyframe *f = &th->frames[i];
		if (f->code && hinted_at(o, f->addr, f->code->addr, sp))
			return 1;
	}
	return 0;
}

static void learn_hint(hm_otel *o, uint64_t code, int idx)
{
	for (int h = 0; h < ROOT_HINTS; h++)
		if (o->hints[h].code == code && o->hints[h].idx == idx)
			return;
	o->hints[o->hint_next++ % ROOT_HINTS] = (struct root_hint){code, idx};
}

int otel_root_hints(const hm_otel *o, uint64_t *codes, int *idx, int max)
{
	int n = 0;
	/* Newest first; a function may come with several locals (a trace
	 * with two local roots, both bound in one frame). */
	for (int k = 1; k <= ROOT_HINTS && n < max; k++) {
		const struct root_hint *h = &o->hints[(o->hint_next - k + 2 * ROOT_HINTS) % ROOT_HINTS];
		int seen = !h->code;
		for (int j = 0; j < n && !seen; j++)
			seen = codes[j] == h->code && idx[j] == h->idx;
		if (!seen) {
			codes[n] = h->code;
			idx[n++] = h->idx;
		}
	}
	return n;
}

/* Every local of the stack's frames, from the root end (a framework's
 * outer layers hold the server span), SCAN_FRAMES at most. */
static int scan_frames(hm_otel *o, const hm_pythread *th, hm_pyspan *sp)
{
	const uint64_t ob_type = (uint64_t)o->r.layout->ob_type;
	int first = th->nframes > SCAN_FRAMES ? th->nframes - SCAN_FRAMES : 0;
	for (int i = th->nframes - 1; i >= first; i--) {
		const hm_pyframe *f = &th->frames[i];
		uint64_t vals[SCAN_LOCALS], types[SCAN_LOCALS];
		hm_iov iov[SCAN_LOCALS];
		int n = hm_pyobj_local_values(&o->r, f, vals, SCAN_LOCALS), k = 0;
		for (int j = 0; j < n; j++) {
			types[j] = 0;
			if (vals[j] && !(vals[j] & 7))
				iov[k++] = (hm_iov){vals[j] + ob_type, &types[j], 8};
		}
		/* All the types in one read; one at a time if one of the
		 * objects is not readable. */
		if (k && hm_target_readv(o->t, iov, k) != HM_OK)
			for (int j = 0; j < k; j++)
				if (rd(o, iov[j].addr, iov[j].buf, 8))
					*(uint64_t *)iov[j].buf = 0;
		for (int j = 0; j < n; j++) {
			if (!types[j])
				continue;
			if (look_at(o, vals[j], types[j], sp->trace_hi, sp->trace_lo))
				learn_hint(o, f->code->addr, j);
			if (fill_root(o, sp))
				return 1;
		}
	}
	return 0;
}

/* The blocks wanted in a turn, in one read. -1 if one is unreadable. */
static int blk_fetch(hm_otel *o)
{
	hm_iov iov[NWANT];
	int slot[NWANT];
	for (int i = 0; i < o->nwant; i++) {
		slot[i] = o->nblk < NBLK ? o->nblk++ : o->blk_next++ % NBLK;
		o->blk[slot[i]].len = 0;
		iov[i] = (hm_iov){o->want[i].addr, o->blk_data[slot[i]], o->want[i].len};
	}
	int n = o->nwant;
	o->nwant = 0;
	if (n && hm_target_readv(o->t, iov, n) != HM_OK)
		return -1;
	for (int i = 0; i < n; i++) {
		o->blk[slot[i]].addr = iov[i].addr;
		o->blk[slot[i]].len = (uint32_t)iov[i].len;
	}
	return 0;
}

/* The spans of n contexts (read_span learns each span read: roots, and
 * other spans' parents). Each context's chain is a dozen dependent
 * objects; read one by one, a look through a service's tasks cost about
 * 15 system calls a task. Instead, DEFER_BATCH contexts at a time, their
 * chains are read in turns from blocks: a turn reads every chain as far
 * as the blocks held go, noting the block each one wants next, and those
 * blocks come in one read before the next turn. A chain read so is as
 * checked as one read live (each object read before the objects it
 * points to); if a wanted block is unreadable, the rest is read live. */
static void contexts_spans(hm_otel *o, const uint64_t *ctxs, int n)
{
	hm_pyspan sp;
	for (int b = 0; b < n; b += DEFER_BATCH) {
		int pend[DEFER_BATCH], np = 0;
		for (int i = b; i < n && i < b + DEFER_BATCH; i++)
			pend[np++] = i;
		blk_begin(o);
		o->blk_defer = 1;
		o->nwant = 0;
		for (int turn = 0; np && turn < DEFER_TURNS; turn++) {
			int k = 0;
			for (int j = 0; j < np; j++) {
				unsigned m = o->defer_miss;
				context_span(o, ctxs[pend[j]], &sp, 0);
				if (o->defer_miss != m)
					pend[k++] = pend[j];
			}
			np = k;
			if (np && blk_fetch(o) < 0)
				o->blk_defer = 0;
		}
		o->blk_defer = 0;
		o->nwant = 0;
		blk_end(o);
	}
}

/* sp's local root when the asyncio tasks' current spans prove it. A sync
 * route (FastAPI runs a `def` route in a worker thread, in a copy of the
 * context of the event loop's task, which awaits it) runs its trace in a
 * thread whose stack holds no server span; the awaiting task's current
 * span is the server span all along. Reading the tasks' spans learns the
 * roots of every request in flight at once. 1 (sp->root set) or 0. */
#define LOOK_TASKS 1024
int otel_root_in_tasks(hm_otel *o, hm_pyspan *sp)
{
	uint64_t *ctxs = malloc(LOOK_TASKS * sizeof *ctxs);
	int n = 0;
	if (!ctxs)
		return 0;
	if (!o->py && o->task_fn) {
		/* A reader over any memory (tests): the contexts given. */
		n = o->task_fn(o->task_ctx, ctxs, LOOK_TASKS);
	} else if (o->py && !o->async_failed) {
		if (!o->async && hm_pyasync_open(o->py, &o->async) != HM_OK)
			o->async_failed = 1;
		else
			n = hm_pyasync_contexts(o->async, ctxs, LOOK_TASKS);
	}
	contexts_spans(o, ctxs, n > 0 ? n : 0);
	free(ctxs);
	return fill_root(o, sp);
}

/* Once per parent whose root is not known (tried): the hints (no rate
 * limit), then the asyncio tasks' spans (at most TASK_LOOKS_PER_S a
 * second), then, unless the thread is paused, every frame (at most
 * SCANS_PER_S a second). A parent is tried once a look found nothing in
 * the tasks and the frames were looked through or the thread is paused:
 * a look denied by a rate limit is made again at the next sample. */
static void root_scan(hm_otel *o, const hm_pythread *th, hm_pyspan *sp)
{
	uint64_t hi = sp->trace_hi, lo = sp->trace_lo, pid = sp->parent_id;
	if (fill_root(o, sp) || sp->local_root || !pid)
		return;
	struct tried_slot *tr = &o->tried[span_key(hi, lo, pid) % TRIED_SLOTS];
	if (tr->trace_hi == hi && tr->trace_lo == lo && tr->span_id == pid)
		return;
	struct ts_slot *t = &o->tss[mix(th->tstate) % TS_SLOTS];
	if (t->tstate != th->tstate)
		t = NULL;
	blk_begin(o);
	int found = hinted(o, th, sp);
	blk_end(o);
	if (found && t)
		t->scan_fails = 0;
	uint64_t now = hm_mono_ns();
	if (!found) {
		if (!hm_token_take(&o->task_tokens_ns, now, 1000000000ull / TASK_LOOKS_PER_S, 10))
			return;
		found = otel_root_in_tasks(o, sp);
	}
	if (!found) {
		int paused = t && now < t->scan_next_ns;
		if (!paused && !hm_token_take(&o->scan_tokens_ns, now, 1000000000ull / SCANS_PER_S, 10))
			return;
		if (!paused) {
			blk_begin(o);
			found = scan_frames(o, th, sp);
			blk_end(o);
			if (t && found)
				t->scan_fails = 0;
			else if (t && ++t->scan_fails >= ROOT_FAILS)
				t->scan_next_ns = now + ROOT_PAUSE_NS;
		}
	}
	*tr = (struct tried_slot){hi, lo, pid};
}

void otel_set_task_contexts(hm_otel *o, otel_task_contexts_fn fn, void *ctx)
{
	o->task_fn = fn;
	o->task_ctx = ctx;
}

/* Remember t's answer sp; churn is restarted when it differs from the last. */
static void remember(struct ts_slot *t, const hm_pyspan *sp, int failed)
{
	if (failed || sp->trace_hi != t->last_hi || sp->trace_lo != t->last_lo ||
	    sp->span_id != t->last_sid)
		t->churn = CHURN_SAMPLES;
	else if (t->churn > 0)
		t->churn--;
	t->last_hi = sp->trace_hi;
	t->last_lo = sp->trace_lo;
	t->last_sid = sp->span_id;
}

int otel_thread_span(hm_otel *o, hm_pythread *th, const uint8_t *ts, size_t ts_len, int last)
{
	hm_pyspan *sp = &th->span;
	sp->trace_hi = sp->trace_lo = sp->span_id = 0;
	sp->name[0] = sp->root[0] = 0;
	sp->parent_id = 0;
	sp->local_root = 0;
	const hm_pyasync_layout *A = o->A;
	int spec = o->spec.loaded && o->spec.tstate == th->tstate;
	int chain = spec && o->spec.chain;
	o->spec.loaded = 0;
	if ((size_t)A->ts_context + 8 > ts_len || !ready(o))
		return 0;
	/* The context pointer came with the thread state, and, when it is
	 * the one this thread had last time, the words that check the last
	 * answer (plan) came in the same read: then the answer is the span
	 * current when the stack was read. */
	uint64_t ctx = ld64(ts, (size_t)A->ts_context);
	if (!ctx)
		return 0;
	struct ctx_slot *c = &o->ctxs[mix(ctx) % CTX_SLOTS];
	struct ts_slot *t = &o->tss[mix(th->tstate) % TS_SLOTS];
	if (t->tstate != th->tstate) {
		memset(t, 0, sizeof *t);
		t->tstate = th->tstate;
	}
	/* The read with the last chain's regions failed (one was unmapped):
	 * start the regions anew. */
	if (o->spec.tstate == th->tstate && o->spec.chain && !spec && !o->spec.dropped)
		t->nranges = 0;
	t->ctx = ctx;
	int planned = spec && !chain && o->spec.ctx == ctx && c->valid && c->ctx == ctx;
	if (planned && check(o, c, &o->spec) == 0) {
		answer(o, c, sp);
		remember(t, sp, 0);
		return 0;
	}
	/* Read the chain: in chain mode from the snapshot of the last
	 * chain's regions, taken in the read of the thread state and stack
	 * (an object not where the last one was is read live, and so is
	 * everything after it); otherwise live, after the stack. Same code,
	 * same checks either way. */
	chain_begin(o, chain);
	int rc = context_span(o, ctx, sp, !planned && !chain);
	int whole = chain_end(o, t), raced = 0;
	/* Replayed from the regions read before the stack: given only when
	 * its words read again after the stack prove it. A span that changed
	 * in between is read live now (and proven by a second read, below). */
	if (whole && !rc) {
		int p = chain_proven(o, ctx);
		if (p) {
			whole = 0;
			raced = p > 0;
			chain_begin(o, 0);
			rc = context_span(o, ctx, sp, 0);
			chain_end(o, t);
		}
	}
	chain_mark_proof(o, t, ctx);
	remember(t, sp, rc != 0);
	int found = !rc && (sp->trace_hi || sp->trace_lo);
	if (chain && (found || !whole)) {
		/* (a race says nothing of where new chains' objects lie) */
		t->hist = (t->hist << 1) | (uint32_t)(found && (whole || raced));
		if (t->nhist < CHAIN_HIST)
			t->nhist++;
	}
	/* All of it from the read that also read the stack: the span of
	 * that moment. No span is never wrong. */
	if (!found || whole)
		return 0;
	/* Read (partly) now, after the stack: a span may have started or
	 * ended in between. It is kept only once a read of the thread state
	 * proves it: the next read plans the words that check this answer. */
	sp->trace_hi = sp->trace_lo = sp->span_id = 0;
	sp->name[0] = sp->root[0] = 0;
	sp->parent_id = 0;
	sp->local_root = 0;
	o->reread_tstate = th->tstate;
	return last ? 2 : 1;
}

void otel_thread_root(hm_otel *o, hm_pythread *th)
{
	if ((th->span.trace_hi || th->span.trace_lo) && !th->span.root[0])
		root_scan(o, th, &th->span);
}

int otel_thread_at(hm_otel *o, hm_pythread *th, const uint8_t *ts, size_t ts_len, int last)
{
	int rc = otel_thread_span(o, th, ts, ts_len, last);
	if (rc == 0)
		otel_thread_root(o, th);
	return rc;
}

void otel_thread(hm_otel *o, hm_pythread *th, const uint8_t *ts, size_t ts_len)
{
	otel_thread_at(o, th, ts, ts_len, 1);
}

int otel_context_same(hm_otel *o, uint64_t ctx, const hm_pyspan *sp)
{
	if (!o->var || !ctx || !o->ctxs)
		return -1;
	struct ctx_slot *c = &o->ctxs[mix(ctx) % CTX_SLOTS];
	if (!c->valid || c->ctx != ctx || c->span.trace_hi != sp->trace_hi ||
	    c->span.trace_lo != sp->trace_lo || c->span.span_id != sp->span_id)
		return -1;
	return fast_path(o, c, ctx);
}

/* ---- the constants an in-kernel reader needs (otel_span_layout) -------- */

/* <=3.10: the shared keys of class t, from a live instance's split dict
 * (a span read lately), and where that keys object holds _context's key. */
static int old_keys(hm_otel *o, uint64_t t, int64_t dictoffset, hm_pyspan_type *out)
{
	const hm_pylayout *L = o->r.layout;
	for (int i = 0; i < SPAN_SLOTS; i++) {
		uint64_t a = o->spans[i].addr, ot, dict, d[2], kh[2], key;
		int64_t idx;
		if (!a || rd(o, a + (uint64_t)L->ob_type, &ot, 8) || ot != t ||
		    rd(o, a + (uint64_t)dictoffset, &dict, 8) || hm_pyobj_kind(&o->r, dict) != HM_PT_DICT ||
		    rd(o, dict + (uint64_t)L->dict_keys, d, 16) || !d[0] || !d[1] ||
		    rd(o, d[0] + (uint64_t)L->dk_size, kh, 8))
			continue;
		int64_t size = (int64_t)kh[0];
		if (size < 8 || size > (1 << 16) || (size & (size - 1)) ||
		    hm_pyobj_keys_index(&o->r, d[0], "_context", &idx, &key))
			continue;
		uint64_t width = size <= 0xff ? 1 : size <= 0xffff ? 2 : 4;
		out->keys = d[0];
		out->idx_context = (int)idx;
		out->ctx_key_at = d[0] + (uint64_t)L->dk_indices + (uint64_t)size * width +
				  (uint64_t)idx * (uint64_t)L->dk_entry_size + 8;
		out->ctx_key = key;
		if (rd(o, out->ctx_key_at, kh, 8) || kh[0] != key)
			return -1;
		return 0;
	}
	return -1;
}

static int span_type(hm_otel *o, uint64_t modules, const char *mod, const char *name,
		     int need_name, hm_pyspan_type *out)
{
	const hm_pylayout *L = o->r.layout;
	uint64_t t, keys, flags, key;
	int64_t basicsize, ictx, iname = -1, iparent = -1, dictoffset;
	memset(out, 0, sizeof *out);
	out->idx_parent = -1;
	if (module_global(o, modules, mod, name, &t) || rd(o, t + (uint64_t)L->tp_flags, &flags, 8) ||
	    rd(o, t + (uint64_t)L->tp_basicsize, &basicsize, 8))
		return -1;
	if (L->minor <= 10) {
		if (rd(o, t + (uint64_t)L->tp_dictoffset, &dictoffset, 8) || dictoffset <= 0 ||
		    dictoffset > 4096 || old_keys(o, t, dictoffset, out))
			return -1;
		if (hm_pyobj_keys_index(&o->r, out->keys, "_name", &iname, &key) && need_name)
			return -1;
		if (hm_pyobj_keys_index(&o->r, out->keys, "_parent", &iparent, &key) || iparent > 255)
			iparent = -1;
		out->idx_parent = (int)iparent;
		out->type = t;
		out->basicsize = basicsize;
		out->dictoffset = dictoffset;
		out->idx_name = (int)iname;
		return out->idx_context > 255 || iname > 255 ? -1 : 0;
	}
	if (rd(o, t + (uint64_t)L->ht_cached_keys, &keys, 8) || !keys)
		return -1;
	/* Attributes in a managed dict (and 3.13's inline values). */
	if (!(flags & (uint64_t)L->tpflags_managed_dict) ||
	    (L->inst_dict_kind == HM_IDICT_INLINE && !(flags & (uint64_t)L->tpflags_inline_values)) ||
	    basicsize <= 0 || basicsize > 4096)
		return -1;
	if (hm_pyobj_keys_index(&o->r, keys, "_context", &ictx, &key) ||
	    (hm_pyobj_keys_index(&o->r, keys, "_name", &iname, &key) && need_name) || ictx > 255 ||
	    iname > 255)
		return -1;
	if (hm_pyobj_keys_index(&o->r, keys, "_parent", &iparent, &key) || iparent > 255)
		iparent = -1;
	out->type = t;
	out->keys = keys;
	out->basicsize = basicsize;
	out->idx_context = (int)ictx;
	out->idx_name = (int)iname;
	out->idx_parent = (int)iparent;
	return 0;
}


int otel_span_layout(hm_otel *o, const uint64_t *tstates, int n, hm_pyspan_layout *out)
{
	const hm_pylayout *L = o->r.layout;
	memset(out, 0, sizeof *out);
	int old = L->major == 3 && L->minor >= 8 && L->minor <= 10;
	if (!o->py || L->major != 3 || L->minor < 8 || L->dict_keys != 32 || L->dict_values != 40 ||
	    (old && (L->dk_size != 8 || L->dk_nentries != 32 || L->dk_indices != 40 ||
		     L->dk_entry_size != 24 || L->tp_dictoffset < 0)) ||
	    (!old && (L->ht_cached_keys < 0 || L->tpflags_managed_dict <= 0 || L->dk_size >= 0 ||
		      L->dk_log2_index_bytes != 9 || L->dk_kind != 10 || L->dk_nentries != 24 ||
		      L->dk_indices != 32)) ||
	    L->var_size != 16 ||
	    L->tuple_item != 24 || L->long_digit != 24 || L->long_digit_bits != 30 ||
	    L->long_digit_size != 4 || (L->long_tag >= 0 && L->long_tag != 16) ||
	    (L->uni_ascii_size != 40 && L->uni_ascii_size != 48) || o->A->ctx_vars < 16 ||
	    o->A->ctx_vars > 40 || o->A->hamt_root < 16 || o->A->hamt_root > 40)
		return -1;
	if (!ready(o))
		return -1;
	/* The HAMT's types show in any thread's context: its variables are a
	 * HAMT whose root is a bitmap node (the empty one while it holds
	 * nothing); the array node type shows in a big one only. */
	for (int i = 0; i < n && (!o->hamt_type || !o->node_types[NODE_BITMAP] || old); i++) {
		uint64_t ctx, c[2], hamt, root, t;
		hm_pyspan sp;
		if (rd(o, tstates[i] + (uint64_t)o->A->ts_context, &ctx, 8) || !ctx)
			continue;
		otel_context_span(o, ctx, &sp);
		if (rd(o, ctx + 8, c, 8) || c[0] != o->ctx_type ||
		    rd(o, ctx + (uint64_t)o->A->ctx_vars, &hamt, 8) ||
		    rd(o, hamt + (uint64_t)L->ob_type, &t, 8))
			continue;
		if (!o->hamt_type) {
			char name[16];
			if (hm_pyobj_type_name(&o->r, hamt, name, sizeof name) || strcmp(name, "hamt"))
				continue;
			o->hamt_type = t;
		}
		if (t != o->hamt_type || rd(o, hamt + (uint64_t)o->A->hamt_root, &root, 8) ||
		    rd(o, root + (uint64_t)L->ob_type, &t, 8))
			continue;
		struct hamt_reader h = {target_read, o, o->node_types, o, NULL};
		node_kind(&h, t);
	}
	uint64_t modules, interp = main_interp(o);
	if (!o->hamt_type || !o->node_types[NODE_BITMAP] || !interp ||
	    rd(o, interp + (uint64_t)L->is_modules, &modules, 8))
		return 1;
	if (module_global(o, modules, "opentelemetry.trace.span", "SpanContext", &out->sctx_type) ||
	    module_global(o, modules, "opentelemetry.context.context", "Context", &out->dict_type))
		return 1;
	/* The SDK's span (shared keys known once one was made), and the API's
	 * NonRecordingSpan (a remote parent, an unsampled trace). */
	int k = 0;
	if (!span_type(o, modules, "opentelemetry.sdk.trace", "_Span", 1, &out->types[k]))
		k++;
	if (!span_type(o, modules, "opentelemetry.trace.span", "NonRecordingSpan", 0, &out->types[k]))
		k++;
	if (!k)
		return 1;
	out->ctx_type = o->ctx_type;
	out->hamt_type = o->hamt_type;
	out->bitmap_type = o->node_types[NODE_BITMAP];
	out->array_type = o->node_types[NODE_ARRAY];
	out->var = o->var;
	int32_t x = (int32_t)(uint32_t)((uint64_t)o->var_hash & 0xffffffffu) ^
		    (int32_t)(uint32_t)((uint64_t)o->var_hash >> 32);
	out->var_h32 = (uint32_t)(x == -1 ? -2 : x);
	out->span_key = o->span_key;
	out->int_type = o->r.types[HM_PT_INT];
	out->str_type = o->r.types[HM_PT_STR];
	out->ts_context = o->A->ts_context;
	out->ctx_vars = o->A->ctx_vars;
	out->hamt_root = o->A->hamt_root;
	out->inst_kind = L->inst_dict_kind == HM_IDICT_PREHEADER ? 1
		       : L->inst_dict_kind == HM_IDICT_TAGGED ? 2
		       : L->inst_dict_kind == HM_IDICT_INLINE ? 3
		       : L->inst_dict_kind == HM_IDICT_OFFSET ? 4 : 0;
	out->dict_old = old;
	out->inst_dict_ptr = L->inst_dict_ptr;
	out->inst_values_ptr = L->inst_values_ptr;
	out->dv_values = L->dv_values;
	out->ht_cached_keys = L->ht_cached_keys;
	out->long_tagged = L->long_tag >= 0;
	out->ascii_size = L->uni_ascii_size;
	str_bits(L, &out->str_compact, &out->str_ascii);
	out->compact_size = L->uni_compact_size;
	out->none_addr = o->r.types[HM_PT_NONE];
	out->true_addr = o->true_addr;
	if (!out->inst_kind || !out->int_type || !out->str_type ||
	    (out->inst_kind == 1 && out->inst_values_ptr != out->inst_dict_ptr - 8))
		return -1;
	return 0;
}

/* A str's compact and ascii bits in its state word, where the in-kernel
 * reader finds them as python.h's hm_pyspan_layout says; 0 and 0 else. */
static void str_bits(const hm_pylayout *L, uint32_t *compact, uint32_t *ascii)
{
	*compact = *ascii = 0;
	if (L->uni_state == 32 && L->uni_compact_bit >= 0 && L->uni_compact_bit < 32 &&
	    L->uni_ascii_bit >= 0 && L->uni_ascii_bit < 32 && L->uni_kind_shift == 2 &&
	    L->uni_compact_size > L->uni_ascii_size && L->uni_compact_size % 8 == 0 &&
	    L->uni_ascii_size % 8 == 0) {
		*compact = 1u << L->uni_compact_bit;
		*ascii = 1u << L->uni_ascii_bit;
	}
}

/* A str's first bytes, read in one call: the reads of hm_pyobj_str that
 * fall in them are served from there. */
struct str_block {
	const hm_otel *o;
	uint64_t addr;
	const uint8_t *b;
	size_t len;
};

static int str_block_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	const struct str_block *s = ctx;
	if (addr >= s->addr && len <= s->len && addr - s->addr <= s->len - len) {
		memcpy(buf, s->b + (addr - s->addr), len);
		return 0;
	}
	return rd(s->o, addr, buf, len);
}

/* The str at addr (its head: the 48 bytes at addr + 8), the first bytes
 * of its text as the in-kernel reader takes them for its check (raw: a
 * compact str's first HM_PYSTR_RAW bytes, zeros after them and for another str),
 * and its text, then its head again, which must not have changed. The
 * object's first BLK bytes (up to its page's end) come in one read: a
 * span name's head and text, where a name read field by field took four. */
int otel_str_snapshot(hm_otel *o, uint64_t addr, uint8_t head[48], uint8_t raw[HM_PYSTR_RAW],
		      char *buf, size_t cap)
{
	const hm_pylayout *L = o->r.layout;
	uint8_t blk[BLK], again[48];
	size_t len = PAGE - (addr & (PAGE - 1));
	len = len > BLK ? BLK : len < 56 ? 56 : len;
	if (rd(o, addr, blk, len) && (len == 56 || rd(o, addr, blk, len = 56)))
		return -1;
	memcpy(head, blk + 8, 48);
	memset(raw, 0, HM_PYSTR_RAW);
	struct str_block sb = {o, addr, blk, len};
	hm_pyobj_reader r = o->r;
	r.read = str_block_read;
	r.ctx = &sb;
	if (ld64(head, 0) != o->r.types[HM_PT_STR])
		return -1;
	uint32_t compact, ascii, state;
	uint64_t slen = ld64(head, 8);
	str_bits(L, &compact, &ascii);
	memcpy(&state, head + 24, 4);
	uint32_t kind = (state >> 2) & 7;
	if (compact && (state & compact) && slen > 0 && slen < (1u << 24) &&
	    (kind == 1 || kind == 2 || kind == 4)) {
		uint64_t bytes = slen * kind,
			 at = addr + (uint64_t)((state & ascii) ? L->uni_ascii_size : L->uni_compact_size);
		if (str_block_read(&sb, at, raw, bytes < HM_PYSTR_RAW ? (size_t)bytes : HM_PYSTR_RAW))
			return -1;
	}
	if (hm_pyobj_str(&r, addr, buf, cap) || rd(o, addr + 8, again, 48) ||
	    memcmp(head, again, 32))     /* type, length, hash, state */
		return -1;
	return 0;
}

/* ---- a trace's local root for an in-kernel sampler ----------------------- */

/* Before a look for sp's root: the span classes the kernel side reads
 * (look_at reads only locals of these types) noted. -1 for a span without
 * a trace, 1 when its root is known already (sp->root set), else 0. */
static int root_prepare(hm_otel *o, hm_pyspan *sp, const uint64_t span_types[2])
{
	if (!o || (!sp->trace_hi && !sp->trace_lo))
		return -1;
	for (int i = 0; i < 2; i++) {
		uint64_t t = span_types[i];
		if (t && t != o->span_types[0] && t != o->span_types[1]) {
			o->span_types[1] = o->span_types[0];
			o->span_types[0] = t;
		}
	}
	return fill_root(o, sp) ? 1 : 0;
}

int otel_root_at(hm_otel *o, uint64_t frame, uint64_t code, hm_pyspan *sp,
		 const uint64_t span_types[2])
{
	int k = root_prepare(o, sp, span_types);
	if (k)
		return k > 0 ? 0 : -1;
	blk_begin(o);
	int found = frame && code && hinted_at(o, frame, code, sp);
	blk_end(o);
	return found ? 0 : -1;
}

int otel_root_find(hm_otel *o, const hm_pythread *th, hm_pyspan *sp, const uint64_t span_types[2],
		   int full)
{
	int k = root_prepare(o, sp, span_types);
	if (k)
		return k > 0 ? 0 : -1;
	/* Where roots were found before first (a request's server span is
	 * the same local of the same middleware function every time: a read
	 * or two), then, if full, every local from the root end. */
	blk_begin(o);
	int found = hinted(o, th, sp), in_full = 0;
	if (!found && full)
		found = in_full = scan_frames(o, th, sp);
	blk_end(o);
	if (!found)
		return full ? -2 : -1;
	return in_full;
}
