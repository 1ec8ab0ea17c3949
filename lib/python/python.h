/* python.h - finding a CPython interpreter in a target and sampling its stacks.
 *
 * hm_python_attach locates the interpreter (libpython or a static python
 * executable), its version and layout, and the _PyRuntime address.
 * hm_python_sample walks every thread's Python stack once, without stopping
 * the target: reads are validated (types, owners, bounds, depth) and a thread
 * whose read was torn is retried once, then reported invalid.
 * Decoded code objects are cached by address, so a steady-state sample costs a
 * few process_vm_readv calls per thread. */
#ifndef HOMURA_PYTHON_H
#define HOMURA_PYTHON_H

#include <stdint.h>
#include <sys/types.h>

#include "proc/target.h"
#include "python/pylayout.h"

typedef struct hm_python hm_python;

/* A decoded code object. Valid until the next hm_python_sample call. */
typedef struct hm_pycode {
	uint64_t addr;
	const char *name;        /* co_name, UTF-8 */
	const char *qualname;    /* co_qualname (3.11+), else == name */
	const char *filename;    /* co_filename, UTF-8 */
	int32_t firstlineno;
	uint32_t user, user2;    /* free for the caller (e.g. interned ids) */
	uint32_t user_gen;       /* caller's tag for `user` */
} hm_pycode;

typedef struct hm_pyframe {
	const hm_pycode *code;
	int32_t line;            /* 0 if unknown */
	uint64_t addr;           /* frame address in the target (frame object on
				  * <=3.10, _PyInterpreterFrame on 3.11+) */
	int entry;               /* 3.11+: the first frame a C-level call of the
				  * evaluation loop runs (3.11 is_entry; 3.12+ its
				  * previous is a C-stack shim frame); the last
				  * frame of one _PyEval_EvalFrameDefault call
				  * walking leaf to root. 0 on <=3.10, where every
				  * frame is its own call. (--native merging) */
} hm_pyframe;

/* The OpenTelemetry span a thread or task runs in (python/otel.h). */
typedef struct hm_pyspan {
	uint64_t trace_hi, trace_lo; /* trace id; both 0: no span */
	uint64_t span_id;
	char name[128];          /* span name, "" if unreadable */
	char root[128];          /* the local root span's name (the span
				  * whose parent is remote or absent), "" if
				  * not known */
	uint64_t parent_id;      /* its parent span's id (a remote one too),
				  * 0: none, or not read */
	int local_root;          /* 1: no parent, or a remote one */
} hm_pyspan;

typedef struct hm_pythread {
	uint64_t tstate;         /* PyThreadState address */
	uint64_t pthread_id;     /* thread_id (pthread_t) */
	pid_t tid;               /* host OS thread id, 0 if unknown */
	char state;              /* /proc state letter ('R' running), 0 unknown */
	int holds_gil;
	int valid;               /* 0: torn/garbage read, frames empty */
	int truncated;           /* stack deeper than the depth limit */
	int nframes;
	int frames_cap;
	hm_pyframe *frames;      /* leaf first */
	const char *name;        /* thread name (hm_python_thread_names), NULL
				  * if unknown; valid until the next call */
	int in_gc;               /* a garbage collection runs on this thread
				  * (the GIL holder while gc is collecting) */
	hm_pyspan span;          /* its current OpenTelemetry span, when
				  * tracing is on (hm_python_set_trace) */
} hm_pythread;

typedef struct hm_pysample {
	int nthreads;
	int threads_cap;
	hm_pythread *threads;
	int ninvalid;            /* threads dropped as invalid in this sample */
	int nspan_torn;          /* threads whose span changed while they were
				  * read twice: sampled without a span */
} hm_pysample;

enum hm_sample_flags {
	HM_SAMPLE_ONCPU = 1,     /* skip (don't walk) threads not on CPU: each
				  * counts for the CPU time the kernel charged
				  * to it since the last sample (walker.c) */
	HM_SAMPLE_GIL = 2,       /* only the thread holding the GIL */
	HM_SAMPLE_STATE = 4,     /* fill hm_pythread.state even when not needed */
	HM_SAMPLE_WANT_GIL = 8,  /* fill hm_pythread.holds_gil */
	HM_SAMPLE_IDS_ONLY = 16, /* the threads' ids and states' addresses, no
				  * frames (hm_python_thread_states) */
};

/* HM_OK; HM_ENOTPY (not Python, or not initialised yet: see *not_ready);
 * HM_EVERSION (unsupported version/build, message says which). */
int hm_python_attach(hm_target *t, hm_python **out);
void hm_python_detach(hm_python *py);
const hm_pylayout *hm_python_layout(const hm_python *py);
/* "3.12.1"-style version of the target. */
const char *hm_python_version(const hm_python *py);
/* 1 once the interpreter has a thread state (the target runs Python). */
int hm_python_ready(hm_python *py);

int hm_python_sample(hm_python *py, hm_pysample *s, unsigned flags);
void hm_pysample_free(hm_pysample *s);

/* Fill hm_pythread.name for every thread of s: the threading module's
 * Thread.name (read from threading._active), else the OS thread name
 * (/proc/PID/task/TID/comm). Names are cached per thread and re-read at most
 * once a second. HM_OK (names that cannot be found stay NULL). */
int hm_python_thread_names(hm_python *py, hm_pysample *s);

/* Frames read by another walker (the in-kernel one, sample/ebpf.c) as
 * (code object address, instruction) pairs, leaf first: the instruction is
 * the frame's instruction pointer on 3.11+, its int f_lasti on <=3.10.
 * hm_python_resolve fills th's frames from the walker's code cache, with the
 * same checks as a sample (a pair that is not a code object, or an
 * instruction outside it, makes the stack invalid: -1). Call
 * hm_python_resolve_begin before each batch; frames stay valid until the
 * next begin or sample. A code address with HM_PYPAIR_ENTRY set marks the
 * frame hm_pyframe.entry (3.11+, for --native merging). */
#define HM_PYPAIR_ENTRY (1ULL << 63)
void hm_python_resolve_begin(hm_python *py);
int hm_python_resolve(hm_python *py, const uint64_t *pairs, int n, hm_pythread *th);
/* Check the code objects of a batch's pairs before any is resolved, so that
 * one seen to have died (a program dropping code as it runs) is known before
 * the first stack of the batch is given (walker.c, note_churn). */
void hm_python_resolve_check(hm_python *py, const uint64_t *pairs, int n);
/* The batch's counts cover samples taken since since_ns (hm_mono_ns; 0:
 * only this batch's): while the program drops code objects, an entry read
 * first after since_ns may stand for another object that ran at its address
 * before, and its frames are counted invalid (walker.c, ambiguous). */
void hm_python_resolve_window(hm_python *py, uint64_t since_ns);
/* The thread states of the interpreter and their host tids (up to cap);
 * *interp gets the main interpreter's address. Returns the count, -1 when
 * the interpreter could not be read. */
int hm_python_thread_states(hm_python *py, uint64_t *interp, pid_t *tids, uint64_t *tstates, int cap);

/* In-process use (the allocation sampler, preload/): an interpreter found
 * by its exported symbols rather than by ELF tables. t reads this process's
 * own memory (hm_target_open_mem with a fault-safe reader); runtime is
 * &_PyRuntime, version_hex Py_Version's value (PY_VERSION_HEX), code_type
 * and frame_type &PyCode_Type and &PyFrame_Type (0: not checked). HM_OK or
 * HM_EVERSION (no layout for that version). */
int hm_python_attach_symbols(hm_target *t, uint64_t runtime, uint32_t version_hex,
			     uint64_t code_type, uint64_t frame_type, hm_python **out);
/* Walk one thread state's stack into th (frames leaf first; th->frames
 * grows as needed, free it with free()). With hm_python_attach_symbols,
 * only the calling thread's own state: its code objects are then read
 * directly (alive while their frames are) and checked on every walk. HM_OK with th->valid set, or
 * HM_EIO when the chain could not be read or was implausible. Frames and
 * their code objects stay valid until the next walk. */
int hm_python_walk_tstate(hm_python *py, uint64_t tstate, hm_pythread *th);

/* Reading each sampled thread's current OpenTelemetry span (python/otel.h)
 * into hm_pythread.span: on by default for every interpreter attached
 * afterwards (hm_python_trace_default), or per interpreter. It costs nothing
 * while the target has no OpenTelemetry SDK loaded (it is looked for again
 * after 0.1 s, 0.2 s, ... then every 10 s). */
void hm_python_trace_default(int on);
void hm_python_set_trace(hm_python *py, int on);
/* 1 once the OpenTelemetry SDK was found in the target. */
int hm_python_trace_found(const hm_python *py);
/* The span of a contextvars.Context object (an asyncio task's context):
 * 0 with *out filled (trace ids 0: none), or -1 if tracing is off or the
 * read failed (then *out says no span). */
int hm_python_context_span(hm_python *py, uint64_t context, hm_pyspan *out);
/* 0 when the span hm_python_context_span gave for context (out) still holds
 * (one read of the words it came from), -1 otherwise (then drop it: it may
 * have changed in between). */
int hm_python_context_span_same(hm_python *py, uint64_t context, const hm_pyspan *out);

/* What an in-kernel sampler (sample/ebpf.c) needs to read a thread's span
 * itself at sample time: the constant parts of the chain thread state ->
 * context -> HAMT -> the SDK's Context dict -> span -> SpanContext -> ids,
 * and the span's name str (3.8+; instance attributes through the class's
 * shared keys: on <=3.10 learnt from a live span). */
typedef struct hm_pyspan_type {
	uint64_t type;           /* a span class (0: unused slot) */
	uint64_t keys;           /* its shared instance keys (ht_cached_keys) */
	int64_t basicsize;       /* tp_basicsize (3.13 inline values) */
	int idx_context, idx_name; /* entry of _context / _name; name -1: none */
	int64_t dictoffset;      /* <=3.10: tp_dictoffset */
	uint64_t ctx_key_at, ctx_key; /* <=3.10: where keys holds _context's key
				  * object (checked by the reader), and it */
	int idx_parent;          /* entry of _parent; -1: none */
} hm_pyspan_type;

typedef struct hm_pyspan_layout {
	uint64_t ctx_type, hamt_type, bitmap_type, array_type; /* array 0: unknown yet */
	uint64_t var;            /* the SDK's ContextVar */
	uint32_t var_h32;        /* its hash folded as the HAMT folds it */
	uint64_t dict_type;      /* the SDK's Context class (a dict subclass) */
	uint64_t span_key;       /* the "current-span-..." str key */
	uint64_t sctx_type, int_type, str_type;
	int ts_context, ctx_vars, hamt_root;
	int inst_kind;           /* 1: 3.11 pre-header, 2: 3.12 tagged, 3: 3.13
				  * inline, 4: <=3.10 tp_dictoffset */
	int dict_old;            /* <=3.10 keys objects (dk_size, dk_nentries at 32) */
	int inst_dict_ptr, inst_values_ptr, dv_values, ht_cached_keys;
	int long_tagged;         /* 3.12+ lv_tag */
	int ascii_size;          /* offset of a compact ascii str's text */
	uint32_t str_compact, str_ascii; /* a str's state word (at str + 32):
				  * its compact and ascii bits; 0: unknown */
	int compact_size;        /* offset of a compact non-ascii str's text */
	hm_pyspan_type types[2];
	uint64_t none_addr, true_addr; /* None and True (0: unknown): a span
				  * whose _parent is None, or a SpanContext
				  * with is_remote True, is a local root */
} hm_pyspan_layout;

/* Fill *out once the SDK and its classes are found (and the HAMT's types,
 * and on <=3.10 a live span, were seen in the threads' contexts): 0; 1 if
 * the SDK is there but that is not all found yet (call again soon); -1 if
 * tracing is off, the version unsupported or the SDK not found (yet). */
int hm_python_span_layout(hm_python *py, hm_pyspan_layout *out);
/* For a span name str at addr: the 48 bytes at addr + 8 (type, length, hash,
 * state, text; the first 32 equal before and after its text was read), the
 * first HM_PYSTR_RAW bytes of a compact str's text (zeros after them, and
 * for another str: what the in-kernel reader's check covers), and the
 * text. 0 or -1. */
#define HM_PYSTR_RAW 128
int hm_python_str_snapshot(hm_python *py, uint64_t addr, uint8_t head[48],
			   uint8_t raw[HM_PYSTR_RAW], char *buf, size_t cap);

/* The local root of a span (sp: its ids, parent_id and local_root as a
 * sampler read them) is given only when proven: the span is one (no parent,
 * or a remote one), or its parent is, or its parent's parent... as learnt
 * from every span read (a trace can have several local roots in one
 * process, e.g. a client calling two endpoints in one trace).
 * hm_python_span_root_from_tasks: proven by the current spans of the
 * process's asyncio tasks (each task's context and span read, no await
 * chain: a sync route's worker thread runs in a copy of the context of the
 * event loop's task that awaits it, whose current span is the server
 * span). No rate limit: the caller's. 0 found (sp->root set), -1 not. */
/* A span read elsewhere (an in-kernel sampler's sample: ids, parent_id,
 * local_root, name): learnt as the reader's own (a local root, or the
 * span's parent), and sp->root set when proven. */
void hm_python_span_note(hm_python *py, hm_pyspan *sp);
int hm_python_span_root_from_tasks(hm_python *py, hm_pyspan *sp);
/* The same, from the spans among the local variables of the stack of
 * thread state tstate, walked now (for an in-kernel sampler: the thread
 * that saw the trace's first sample, sample/ebpf.c); span_types: the span
 * classes (hm_pyspan_layout.types). Each span found is read and checked as
 * a sample's span is. First the locals where roots were found before (a
 * read or two each), then, if full, every local of every frame from the
 * root end (two reads a frame: the caller limits how often). 0 found in
 * the first pass (or known already), 1 in the full one (sp->root set); -1
 * not found (first pass only), -2 not found (full). */
int hm_python_span_root_scan(hm_python *py, uint64_t tstate, hm_pyspan *sp,
			     const uint64_t span_types[2], int full);
/* The code objects of the frames among whose locals roots were found (at
 * most max, newest first), and the index of that local (the newest for
 * the code): their number. An in-kernel walker can name the innermost
 * frame running one at a trace's first sample (and read the local itself:
 * hm_python_locals_offset), and hm_python_span_root_at looks there alone
 * (the locals where roots were found in that code, a read or two each, no
 * walk): 0 found (or known already, sp->root set), -1 not. */
int hm_python_span_root_hints(hm_python *py, uint64_t *codes, int *idx, int max);
/* Where a frame's local variable 0 lies, from the address of the frame as
 * walkers give it (the next ones follow, 8 bytes each); -1 where locals are
 * not read so. */
int hm_python_locals_offset(hm_python *py);
int hm_python_span_root_at(hm_python *py, uint64_t frame, uint64_t code, hm_pyspan *sp,
			   const uint64_t span_types[2]);

/* Maximum frames kept per thread (deeper stacks are cut at the root end). */
void hm_python_set_max_depth(hm_python *py, int depth);

#endif
