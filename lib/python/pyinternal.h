/* pyinternal.h - state shared by python.c (attach) and walker.c (sampling).
 * Private to libhomura. */
#ifndef HOMURA_PYINTERNAL_H
#define HOMURA_PYINTERNAL_H

#include <stdint.h>

#include "python/python.h"

#define HM_CODE_CACHE_MAX 65536      /* entries; cleared wholesale beyond */
#define HM_CHUNK_COPIES 8
#define HM_THREAD_CACHE 256
#define HM_THREAD_INDEX 509           /* slots of the index into it (prime) */
#define HM_SPEC_FRAMES 1024          /* <=3.10 frames prefetched per thread */
#define HM_SPEC_CFRAMES 4            /* 3.11/3.12 cframes speculated per thread */
#define HM_CODE_BATCH 32             /* code objects re-read in one call per walk */
#define HM_STR_PRE 256               /* bytes of a str read ahead (walker.c: read_str) */
#define HM_OFFCHUNK_FRAMES 256       /* 3.11+ frames outside the data stack
				      * (coroutines: an ASGI app's await
				      * chain is 20-40 deep) */
#define HM_MAX_INTERPS 64

struct code_entry {
	hm_pycode pub;
	uint64_t checked_ns;         /* when the entry was last re-validated */
	uint64_t used_ns;            /* when a sample last met it */
	uint64_t born_ns;            /* when it was decoded */
	uint64_t ident[4];           /* name, filename, line table pointers and
				      * first line: what an address reuse
				      * would change */
	uint64_t code_type;          /* ob_type seen */
	uint8_t *linetable;
	uint32_t lt_len;
	uint32_t code_bytes;         /* bytecode length, for bounds checks */
	uint64_t bytecode;           /* <=3.10: address of the co_code bytes */
	int32_t memo_off[2], memo_line[2]; /* last two offset -> line pairs
				      * (a recursive function is met at its
				      * call site and at its leaf) */
	int shim;                    /* interpreter-internal code (3.13 __init__ shim) */
	int died;                    /* found dead while resolving (note_churn) */
	int body;                    /* a module's or class's body (or code
				      * exec'd as one): runs once, then dies */
	uint64_t reused_in;          /* hm_python_resolve: the batch (nsample) that
				      * found its address holding another code
				      * object before it: that batch's frames
				      * there may have run either */
	char *strings;               /* storage for name/qualname/filename */
	struct code_entry *next_dead; /* in hm_python.graveyard */
};

struct chunk_copy {                  /* a data-stack chunk copied locally */
	uint64_t addr;               /* remote address of the copied range */
	uint64_t len;
	uint8_t *buf;
	size_t cap;
};

struct thread_cache {                /* what we learned about a tstate */
	uint64_t tstate;
	uint64_t pthread_id;
	pid_t ns_tid, host_tid;
	uint64_t tid_read_ns;        /* <=3.10: when ns_tid was read (mono ns) */
	uint64_t cframe;             /* 3.11/3.12: last cframe address */
	uint64_t cframes[HM_SPEC_CFRAMES]; /* and the last few distinct ones, newest first */
	uint64_t chunk;              /* last datastack chunk address */
	uint64_t chunk_len;          /* bytes we read of it last time */
	uint64_t last_seen;          /* sample number */
	uint64_t *spec;              /* <=3.10: last frame chain, leaf first */
	int nspec;
	/* on-CPU accounting (HM_SAMPLE_ONCPU, see walker.c) */
	pid_t cpu_tid;               /* the thread the figures below are of */
	uint64_t cpu_ns;             /* its kernel CPU time when last read, 0 never */
	int64_t credit_ns;           /* CPU time not yet counted in samples
				      * (< 0: counted ahead of the kernel) */
	uint64_t judge_cpu, judge_ns; /* CPU time and clock where the window
				      * that judges a GIL holder starts */
	int trusted;                 /* GIL holder credited without asking */
	uint32_t rate;               /* share of the last window it ran, /1024 */
	int64_t est_ns;              /* credited on that rate since last read */
	uint64_t distrust_until;     /* not trusted before then */
	uint64_t held_seq;           /* last on-CPU sample it held the GIL in */
	uint64_t decided_seq;        /* on-CPU sample `decided` is for */
	int decided;                 /* counted in that sample */
};

struct hm_python {
	hm_target *t;
	const hm_pylayout *layout;
	hm_pylayout layout_copy;
	uint64_t runtime;            /* &_PyRuntime, 0 if none */
	uint64_t interp_head_sym;    /* &interp_head (2.7, 3.6) */
	uint64_t tstate_current_sym; /* &_PyThreadState_Current (2.7, 3.6) */
	uint64_t code_type;          /* &PyCode_Type */
	uint64_t frame_type;         /* &PyFrame_Type (<=3.10 validation) */
	char version[32];
	int max_depth;
	int tid_offset;              /* tid inside glibc struct pthread */
	int inproc;                  /* hm_python_attach_symbols: this process,
				      * walking the calling thread's own stack */

	/* walker state */
	uint64_t nsample;
	uint64_t sample_ns;          /* start of the current sample */
	uint64_t interval_ns;        /* smoothed time between samples */
	int resolving;               /* in hm_python_resolve (code_get) */
	uint64_t churn_ns;           /* when resolving last saw a code object
				      * other than a module body die (note_churn) */
	int gone;                    /* the target was seen exited (code_get:
				      * its memory cannot be read again) */
	int finalizing;              /* its interpreter was seen finalizing
				      * (code_get: code objects die at the
				      * teardown, not as code churn) */
	uint64_t fin_read_in;        /* the batch (nsample) that last read it */
	uint64_t window_ns;          /* hm_python_resolve_window */
#define HM_CHURN_DEATHS 4
	uint64_t deaths_ns[HM_CHURN_DEATHS]; /* when the last functions were
				      * found dead (walker.c: note_churn) */
	uint64_t ndeaths;
	uint32_t gil_checks;         /* without CPU times (walker.c): GIL- */
	uint64_t gil_distrust_until; /* holder checks skipped; a holder was
				      * seen blocked: ask for every thread
				      * until then */
	uint64_t oncpu_ns;           /* start of the last on-CPU sample */
	uint64_t oncpu_avg;          /* smoothed interval between them: the
				      * CPU time one sample stands for */
	uint64_t oncpu_seq;          /* on-CPU samples taken */
	uint64_t oncpu_gap;          /* time since the one before */
	uint32_t gc_checks;          /* samples since the collector flag was read */
	uint64_t gc_watch_until;     /* a collection was seen: read the flag
				      * every sample until then */
	uint64_t interp;             /* last main interpreter address */
	size_t ts_len, fo_len, if_len, co_len;   /* bytes read per object */
	uint8_t *tsbuf;
	uint8_t *framebuf;           /* one frame read remotely */
	struct code_entry **codes;   /* open-addressing table by address */
	uint32_t codes_cap, ncodes;
	struct code_entry *graveyard; /* removed this sample, freed at the next:
				       * frames already taken may point to them */
	struct chunk_copy chunks[HM_CHUNK_COPIES];
	int nchunks;
	struct thread_cache threads[HM_THREAD_CACHE];
	uint16_t thread_index[HM_THREAD_INDEX]; /* by tstate address: slot + 1 */
	uint8_t *specbuf;            /* prefetched frames */
	size_t spec_stride;          /* bytes per prefetched frame */
	uint64_t spec_addr[HM_SPEC_FRAMES];
	int nspec_loaded;
	/* Code objects a walk must re-read (code_get), read in one call
	 * before it: their addresses and bytes (co_len each), this walk only. */
	uint64_t code_pre[HM_CODE_BATCH];
	uint8_t *code_prebuf;
	int ncode_pre;
	/* When resolving (hm_python_resolve), the names and file names of the
	 * prefetched code objects that still match their entries, read in one
	 * call after them: the first HM_STR_PRE bytes of each, this batch only. */
	uint64_t str_pre[2 * HM_CODE_BATCH];
	uint8_t *str_prebuf;
	int nstr_pre;
	int walk_late;               /* the walk read a frame after the thread
				      * state (not prefetched with it) */
	uint64_t interps[HM_MAX_INTERPS];   /* interpreter list, refreshed */
	uint64_t heads[HM_MAX_INTERPS];     /* last threads head per interp */
	uint64_t heads_ns[HM_MAX_INTERPS];  /* when each was read */
	uint64_t gil_ptrs[HM_MAX_INTERPS];  /* 3.12: ceval.gil per interp */
	int ninterps;
	uint64_t interps_ns;         /* when the list was read */

	/* object reading, thread names (pynames.c) */
	char *mod_path;              /* the interpreter's ELF (maps path) */
	uint64_t mod_bias;
	struct pynames *names;       /* thread-name cache, NULL until used */

	/* OpenTelemetry spans (otel.c) */
	int trace;                   /* read each thread's span */
	int otel_failed;             /* the reader could not be opened */
	struct hm_otel *otel;        /* NULL until first used */
};

/* python.c: the span reader when tracing is on (opened on first use). */
struct hm_otel *python_otel(hm_python *py);

void walker_init(hm_python *py);

/* The walker's cache of decoded code objects, shared with the asyncio
 * reader (pyasync.c): the entry for the code object at addr - trusted,
 * re-validated or decoded as for a frame of a sample - or NULL if addr
 * holds no code object. Valid until the next hm_python_sample(). */
struct code_entry *walker_code(hm_python *py, uint64_t addr);
/* Line of byte offset off into c's bytecode (off < 0: the first line). */
int walker_code_line(const hm_python *py, struct code_entry *c, int64_t off);
void walker_fini(hm_python *py);
void pynames_free(hm_python *py);

#endif
