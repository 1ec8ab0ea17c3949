/* pystack.h - what the in-kernel Python stack walker (pystack.bpf.c) and
 * its loader (sample/ebpf.c) share: the per-process layout the BPF program
 * walks with, and the record it emits per sample. Plain fixed-size types
 * only: this header is compiled both for the BPF target and for the host. */
#ifndef HOMURA_SAMPLE_BPF_PYSTACK_H
#define HOMURA_SAMPLE_BPF_PYSTACK_H

#define HM_BPF_MAX_FRAMES 127    /* frames per emitted stack (leaf first) */
#define HM_BPF_MAX_THREADS 64    /* thread states scanned to find a tid */
#define HM_BPF_MAX_PROCS 4096
#define HM_BPF_MAX_TIDS 65536
#define HM_BPF_KSTACK_DEPTH 64      /* kernel frames kept (--kernel) */
#define HM_BPF_ROOT_HINTS 4

/* How to walk one process's Python frames (filled from its hm_pylayout). */
struct hm_bpf_proc {
	unsigned long long interp;       /* main PyInterpreterState address */
	int is_threads_head;             /* interp -> first thread state */
	int ts_next;
	int ts_native_tid;               /* -1: find threads through the tid map */
	int ts_frame;                    /* current frame (<=3.10, 3.13+), -1 */
	int ts_cframe;                   /* cframe (3.11, 3.12), -1 */
	int cframe_current_frame;
	int frame_model;                 /* 0: frame objects (<=3.10), 1: _PyInterpreterFrame */
	int f_code;                      /* f_code / f_executable */
	int f_back;                      /* f_back / previous */
	int f_instr;                     /* f_lasti (int) / prev_instr, instr_ptr */
	int f_owner;                     /* -1 on <=3.10 */
	int owner_cstack;                /* FRAME_OWNED_BY_CSTACK, -1 none */
	int owner_max;
	int code_tagged;                 /* f_executable is a tagged stack ref */
	int frame_min;                   /* bytes of a frame header the walk reads
					  * (every offset above + 8, <= 120) */
	/* --native (record --ebpf --native, sample/ebpf.c): */
	int f_is_entry;                  /* 3.11 is_entry, -1 otherwise */
	int native;                      /* 1: let the perf event write its sample
					  * (user registers and stack) after each
					  * emitted record of this process */
	/* Code objects a local of whose frames held a trace's local root
	 * span (user space learnt them; 0: none): a trace's first sample
	 * names the innermost frame running one (hm_bpf_event.root_frame),
	 * where user space looks first. */
	unsigned long long root_hint[HM_BPF_ROOT_HINTS];
	int root_idx[HM_BPF_ROOT_HINTS]; /* the local that held it */
	int f_localsplus;                /* a frame's local 0, from the frame's
					  * address (-1: not read) */
	int pad_root;
};

/* Set in a frame's code field: the frame is the first one a C-level call of
 * the evaluation loop runs (3.11 is_entry; 3.12+ the next frame root-ward
 * is a C-stack shim). User addresses never have this bit. */
#define HM_BPF_CODE_ENTRY (1ULL << 63)

/* One frame: the code object's address and, for 3.11+, the instruction
 * pointer (for <=3.10 the int f_lasti). */
struct hm_bpf_frame {
	unsigned long long code;
	unsigned long long instr;
};

enum hm_bpf_status {
	HM_BPF_OK = 0,
	HM_BPF_NO_THREAD = 1,            /* the tid has no thread state (yet) */
	HM_BPF_READ_FAILED = 2,          /* a read faulted: torn or paged out */
	HM_BPF_BAD_FRAME = 3,            /* a frame failed validation */
	HM_BPF_NO_FRAME = 4,             /* thread state without a frame */
	HM_BPF_NEW_TRACE = 5,            /* not a sample: the first sample of a
					  * trace the program saw (its span in the
					  * record, no frames; sent at once, with a
					  * wake-up): user space may look for the
					  * trace's local root span meanwhile */
	HM_BPF_NEW_STACK = 6,            /* not a sample: a stack the aggs map
					  * counted that the program had not seen
					  * in the process (its frames, sent at
					  * once): user space reads its code
					  * objects while the process surely
					  * lives, not only at the next drain */
};

/* The OpenTelemetry span current when the sample was taken (otelspan.bpf.h):
 * its ids, read in the kernel at sample time, and the address of its name
 * (a str; user space reads the text and checks it against name_check in
 * the event). All 0: no span. */
struct hm_bpf_span {
	unsigned long long trace_hi, trace_lo, span_id, name;
	unsigned long long parent_id;    /* its parent's span id (0: none, or
					  * not read) */
};

/* How to read a process's current span (sample/ebpf.c fills it from
 * python.h's hm_pyspan_layout; the otel map, by pid). */
struct hm_bpf_otel_type {
	unsigned long long type, keys;   /* span class, its shared keys */
	long long basicsize;
	int idx_context, idx_name;       /* entries in keys; name -1: none */
	long long dictoffset;            /* <=3.10: tp_dictoffset */
	unsigned long long ctx_key_at, ctx_key; /* <=3.10: keys' _context entry
					  * key field, and what it holds */
	int idx_parent;                  /* entry of _parent, -1 none */
	int vals_first, vals_n;          /* the values entries read at once
					  * (_context, _name, _parent among
					  * them); vals_n 0: one by one, no
					  * parent */
	int pad;
};

struct hm_bpf_otel {
	unsigned long long ctx_type, hamt_type, bitmap_type, array_type;
	unsigned long long var, dict_type, span_key, sctx_type, int_type, str_type;
	unsigned int var_h32;
	int ts_context, ctx_vars, hamt_root;
	int inst_kind;                   /* 1: 3.11, 2: 3.12, 3: 3.13, 4: <=3.10 */
	int inst_dict_ptr, inst_values_ptr, dv_values, ht_cached_keys;
	int long_tagged, ascii_size;
	/* a str's state word (at str + 32, its kind in bits 2-4): its compact
	 * and ascii bits (0: unknown; a compact str's text follows the
	 * object's head at ascii_size, or compact_size when not ascii) */
	unsigned int str_compact, str_ascii;
	int compact_size, pad;
	struct hm_bpf_otel_type types[2];
	int dict_old;                    /* <=3.10 keys objects (dk_size) */
	int pad2;
	/* None and True (a span's _parent: None, or a SpanContext whose
	 * is_remote is True, makes it its trace's local root); 0: unknown */
	unsigned long long none_addr, true_addr;
};

/* hm_bpf_event.span_text: the first bytes of a span name's text; and
 * span_text_len: their count, the str's kind (1, 2, 4 bytes a character)
 * and whether they are the whole text */
#define HM_BPF_NAME_TEXT 128                /* (= python.h's HM_PYSTR_RAW) */
#define HM_BPF_TEXT_BYTES(l) ((l) & 0xffu)
#define HM_BPF_TEXT_KIND(l) (((l) >> 8) & 7u)
#define HM_BPF_TEXT_WHOLE 0x1000u

/* hm_bpf_event.span_flags */
#define HM_BPF_SPAN_LOCAL_ROOT 1         /* the span is its trace's local root
					  * (its parent is None or remote) */

/* Why an event has no span (hm_bpf_event.span_why; 0: it has one). */
enum hm_bpf_span_why {
	HM_BPF_SPAN_OK = 0,
	HM_BPF_SPAN_OFF = 1,             /* not asked for, or not found yet */
	HM_BPF_SPAN_NONE = 2,            /* no span current */
	HM_BPF_SPAN_BAD = 3,             /* a read or a check failed */
};

/* A span name str's identity at sample time: b holds the 48 bytes at
 * str + 8 (type, length, hash, state, ...), ascii_size the offset of a
 * compact ascii str's text, text the first bytes of a compact str's text
 * (HM_BPF_NAME_TEXT at most, zeros after them; all zeros for another
 * str). Computed the same way in the kernel and in user space, which
 * accepts the text it reads only if this matches. A str built at run time
 * has no hash yet (-1): the text's first bytes and its length tell two
 * such names apart. */
static inline unsigned long long hm_bpf_name_check(const unsigned char *b, int ascii_size,
						   const unsigned char *text)
{
	unsigned long long len, hash, head, h;
	__builtin_memcpy(&len, b + 8, 8);
	__builtin_memcpy(&hash, b + 16, 8);
	__builtin_memcpy(&head, b + ((ascii_size - 8) & 40), 8);
	if (len < 8)
		head &= (1ULL << (8 * len)) - 1;
	h = hash ^ (len * 0x9E3779B97F4A7C15ULL) ^ (head * 0xC2B2AE3D27D4EB4FULL);
	for (int i = 0; i < HM_BPF_NAME_TEXT / 8; i++) {
		unsigned long long w;
		__builtin_memcpy(&w, text + 8 * i, 8);
		h = (h ^ w) * 0x100000001B3ULL;
		h ^= h >> 31;
	}
	return h;
}

struct hm_bpf_event {
	unsigned int pid, tid;
	unsigned long long t_ns;         /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	unsigned long long tstate;
	unsigned int status;             /* enum hm_bpf_status */
	unsigned int truncated;
	unsigned int nframes;
	unsigned int kernel;             /* the sample interrupted kernel code */
	unsigned int nkips;              /* kernel return addresses after the
					  * frames (ring records with --kernel) */
	unsigned int pad;
	/* The CPU time this sample stands for: the thread's runtime as the
	 * kernel accounts it (task_struct se.sum_exec_runtime, the first
	 * field of /proc/PID/task/TID/schedstat) since its previous sample
	 * (for its first one, since user space seeded the rtlast map when it
	 * watched the process), capped at HM_BPF_WEIGHT_CAP periods; the
	 * period for the first sample of a thread born since, or where the
	 * kernel's BTF does not give the field. */
	unsigned long long weight_ns;
	struct hm_bpf_span span;         /* the current OpenTelemetry span */
	unsigned long long span_name_check; /* hm_bpf_name_check of span.name */
	unsigned int span_why;           /* enum hm_bpf_span_why */
	unsigned int span_flags;         /* HM_BPF_SPAN_* */
	/* HM_BPF_NEW_TRACE: the innermost frame whose code object is one of
	 * its process's root_hint, and that code object (0: none); the span
	 * in that local when it is the local root of the sample's trace (read
	 * and checked as the sample's span is; root.span_id 0: none) */
	unsigned long long root_frame, root_code;
	struct hm_bpf_span root;
	unsigned long long root_name_check;
	/* The text of span.name and of root.name (its first HM_BPF_NAME_TEXT
	 * bytes when longer), read with the name's head when it is a compact
	 * str: its length, kind and whether whole (0: none; user space reads
	 * the str, or finds it by its address and check among the names it
	 * has). A name built for each span (an f-string) is freed with its
	 * span, often before user space could read it. */
	unsigned int span_text_len, root_text_len;
	char span_text[HM_BPF_NAME_TEXT], root_text[HM_BPF_NAME_TEXT];
	/* (frames stay last: only the frames used are sent, followed in a
	 * ring record by nkips kernel addresses, leaf first) */
	struct hm_bpf_frame frames[HM_BPF_MAX_FRAMES];
	unsigned long long kips_room[HM_BPF_KSTACK_DEPTH]; /* (kernel addresses
					  * go right after the frames used) */
};

/* The kernel addresses of a ring record (nkips of them). */
#define HM_BPF_KIPS(e) ((const unsigned long long *)(const void *)&(e)->frames[(e)->nframes])

/* A delta of runtime above this many periods is taken as this many: the
 * thread ran that long without a sample, which a steady sampler does not
 * let happen (it guards against a tid the map remembers from an earlier
 * watch of the process). */
#define HM_BPF_WEIGHT_CAP 256

/* A thread's runtime (ns) at its last sample (the rtlast map, by tid; user
 * space puts each thread's runtime there when it watches a process). */
struct hm_bpf_rt {
	unsigned long long rt;
	unsigned int pid, pad;
	unsigned long long trace_hi, trace_lo; /* the trace of its last sample
					  * with a span (0: none yet), */
	unsigned long long trace_parent; /* and that span's parent */
	unsigned long long span_id;      /* the span of its last sample (0: none) */
	unsigned long long stack;        /* and that sample's stack hash */
	/* The span its last sample found, and the Context dict (address and
	 * version tag) it came from (otelspan.bpf.h) */
	unsigned long long c_dict, c_ver, c_check;
	unsigned long long c_name_at;    /* the span's _name word (0: unknown):
					  * update_name() changes it */
	struct hm_bpf_span c_span;
	unsigned int c_flags, c_pad;
};

/* Traces the program has seen, by the parent of the span sampled (the
 * traces map, an LRU): the first sample of a (trace, parent) not in it
 * sends an HM_BPF_NEW_TRACE record, as user space proves a span's local
 * root through its parent (a trace can have several local roots in one
 * process). */
struct hm_bpf_trace_key {
	unsigned int pid, pad;
	unsigned long long trace_hi, trace_lo, parent_id;
};
#define HM_BPF_TRACES 8192

/* The stacks (pid, hash of the frames) the aggs map has counted: an LRU. */
struct hm_bpf_stack_key {
	unsigned int pid, pad;
	unsigned long long hash;
};
#define HM_BPF_STACKS 16384
/* HM_BPF_NEW_STACK records wake user space at most this often (ns). */
#define HM_BPF_NEW_STACK_WAKE_NS 20000000ull

/* Counters kept by the BPF program (a per-CPU array, index enum). */
enum hm_bpf_counter {
	HM_BPFC_RUNS = 0,                /* program runs (all processes) */
	HM_BPFC_MATCHED,                 /* runs in a watched process */
	HM_BPFC_EMITTED,                 /* events written */
	HM_BPFC_DROPPED,                 /* ring buffer full */
	HM_BPFC_AGGREGATED,              /* samples counted in the aggs map */
	HM_BPFC_AGG_FULL,                /* aggs map full: sent to the ring */
	HM_BPFC_NEW_STACKS,              /* HM_BPF_NEW_STACK records sent */
	HM_BPFC_NCOUNTERS
};

/* ---- in-kernel aggregation (the default path) ----
 * Samples with the same key are counted in one entry of a hash map (aggs)
 * that user space reads and clears about once a second, instead of one
 * ring record each. A key is new to the map when its first sample in the
 * period arrives: that sample's frames are stored with it. When the map is
 * full the sample goes to the ring buffer (and HM_BPFC_AGG_FULL counts it). */

struct hm_bpf_agg_key {
	unsigned int pid, tid;
	unsigned long long stack;        /* hash of the (code, instr) pairs */
	unsigned long long tstate;
	unsigned int nframes;
	unsigned char status, truncated, kernel, span_why;
	struct hm_bpf_span span;         /* the sample's span (all zero: none) */
	int kstack;                      /* kstacks id of the kernel stack
					  * (--kernel, in kernel mode), else -1 */
	unsigned int pad2;
};

struct hm_bpf_agg {
	unsigned long long count;        /* samples with this key */
	unsigned long long last_ns;      /* the latest one's time (CLOCK_MONOTONIC) */
	unsigned long long weight_ns;    /* their CPU time (hm_bpf_event.weight_ns) */
	struct hm_bpf_event ev;          /* the first one, with its frames */
};

#define HM_BPF_AGG_ENTRIES 4096     /* default size of the aggs map */
#define HM_BPF_KSTACKS 4096         /* distinct kernel stacks per read */

#endif
