/* profile.h - the profile model shared by every front end and encoder.
 *
 * A profile interns strings, frames (function, file, line, kind) and stacks
 * (arrays of frame ids, root first), and aggregates samples per
 * (stack, thread): memory grows with distinct stacks, not with samples.
 * Optionally it also keeps a timeline (one small record per sample, in order)
 * for per-thread timelines such as speedscope's time view.
 *
 * Every sample carries two values: a count and a weight in nanoseconds (CPU
 * or wall time, see hm_profile.time_kind). Ids are dense indices from 0;
 * string id 0 is always "". */
#ifndef HOMURA_PROFILE_H
#define HOMURA_PROFILE_H

#include <stddef.h>
#include <stdint.h>

typedef uint32_t hm_str_id;

enum hm_frame_kind {
	HM_FRAME_PYTHON = 0,
	HM_FRAME_NATIVE = 1,
	HM_FRAME_THREAD = 2,    /* pseudo frame: a thread at the root (--threads) */
	HM_FRAME_PROCESS = 3,   /* pseudo frame: a process at the root */
	HM_FRAME_OTHER = 4,     /* anything else (GC, "other" buckets, imported) */
	HM_FRAME_KERNEL = 5,
};

typedef struct hm_frame {
	hm_str_id name;         /* qualified function name */
	hm_str_id file;         /* file name, 0 if none */
	int32_t line;           /* line, 0 if unknown or aggregated */
	int32_t start_line;     /* first line of the function, 0 if unknown */
	uint8_t kind;           /* enum hm_frame_kind */
} hm_frame;

typedef struct hm_thread {
	uint64_t tid;           /* OS thread id (host) */
	hm_str_id name;         /* thread name, 0 if unknown */
	uint32_t pid;
} hm_thread;

typedef struct hm_sample {      /* an aggregate: all samples of one (stack, thread, span) */
	uint32_t stack;
	uint32_t thread;
	int64_t count;
	int64_t weight_ns;
	uint32_t span;          /* hm_profile_span id, 0: outside any span */
} hm_sample;

/* An OpenTelemetry span samples ran in. Span ids are high-cardinality: a
 * profile keeps at most HM_PROFILE_MAX_SPANS distinct ones; past that, new
 * spans keep their names only (ids 0), so memory stays bounded. */
typedef struct hm_span_ref {
	uint64_t trace_hi, trace_lo; /* trace id (128 bits); 0: not kept */
	uint64_t span_id;
	hm_str_id name;         /* span name */
	hm_str_id root;         /* local root span's name, 0 if unknown */
} hm_span_ref;
#define HM_PROFILE_MAX_SPANS 65536

typedef struct hm_event {       /* one timeline record */
	uint64_t t_ns;          /* unix time in ns */
	uint32_t stack;
	uint32_t thread;
	int64_t weight_ns;
} hm_event;

typedef struct hm_label {
	hm_str_id key, value;
} hm_label;

/* What weight_ns holds: CPU or wall time in ns, or, for memory profiles
 * (analyze/memory.h), bytes allocated, objects allocated or bytes in use. */
enum hm_time_kind {
	HM_TIME_CPU = 0, HM_TIME_WALL = 1,
	HM_TIME_ALLOC_SPACE = 2, HM_TIME_ALLOC_OBJECTS = 3, HM_TIME_INUSE_SPACE = 4,
};

typedef struct hm_profile hm_profile;

hm_profile *hm_profile_new(int keep_timeline);
void hm_profile_free(hm_profile *p);
/* A number unique to this profile among all created by the process (never
 * 0), for caches that remember ids of one profile. */
uint32_t hm_profile_serial(const hm_profile *p);

/* Interning. Returned pointers/ids stay valid for the profile's life. */
hm_str_id hm_profile_intern(hm_profile *p, const char *s, size_t len);
hm_str_id hm_profile_intern_cstr(hm_profile *p, const char *s);
const char *hm_profile_str(const hm_profile *p, hm_str_id id);
uint32_t hm_profile_frame_id(hm_profile *p, const hm_frame *f);
uint32_t hm_profile_stack_id(hm_profile *p, const uint32_t *frames, uint32_t n);
uint32_t hm_profile_thread_id(hm_profile *p, uint64_t tid, uint32_t pid, const char *name);

/* a + b clamped to [INT64_MIN, INT64_MAX] instead of wrapping. */
int64_t hm_sat_add(int64_t a, int64_t b);
/* Record n samples of a stack on a thread. t_ns is the unix time. Sums
 * saturate at the int64 limits. */
void hm_profile_add(hm_profile *p, uint32_t stack, uint32_t thread, int64_t count,
		    int64_t weight_ns, uint64_t t_ns);
/* The same for samples taken inside a span (span from hm_profile_span_id;
 * 0: none, as hm_profile_add). */
void hm_profile_add_span(hm_profile *p, uint32_t stack, uint32_t thread, uint32_t span,
			 int64_t count, int64_t weight_ns, uint64_t t_ns);
/* Id of a span (interned; 0 when s has neither ids nor a name). */
uint32_t hm_profile_span_id(hm_profile *p, const hm_span_ref *s);
/* Number of span ids (including 0, "no span") and the span of an id. */
uint32_t hm_profile_nspans(const hm_profile *p);
const hm_span_ref *hm_profile_span(const hm_profile *p, uint32_t id);
/* Trace or span id as lowercase hex (32 or 16 digits + NUL). */
void hm_span_trace_hex(const hm_span_ref *s, char out[33]);
void hm_span_id_hex(const hm_span_ref *s, char out[17]);

/* Read access. */
uint32_t hm_profile_nstrings(const hm_profile *p);
uint32_t hm_profile_nframes(const hm_profile *p);
const hm_frame *hm_profile_frame(const hm_profile *p, uint32_t id);
uint32_t hm_profile_nstacks(const hm_profile *p);
const uint32_t *hm_profile_stack(const hm_profile *p, uint32_t id, uint32_t *n);
uint32_t hm_profile_nthreads(const hm_profile *p);
const hm_thread *hm_profile_thread(const hm_profile *p, uint32_t id);
size_t hm_profile_nsamples(const hm_profile *p);
const hm_sample *hm_profile_sample(const hm_profile *p, size_t i);
size_t hm_profile_nevents(const hm_profile *p);
const hm_event *hm_profile_event(const hm_profile *p, size_t i);

/* Totals over all samples. */
int64_t hm_profile_total_count(const hm_profile *p);
int64_t hm_profile_total_weight(const hm_profile *p);

/* Metadata (plain fields, set by producers). */
typedef struct hm_profile_meta {
	uint64_t start_ns;      /* unix time of the first sample window */
	uint64_t duration_ns;
	uint64_t period_ns;     /* nominal sampling interval */
	int time_kind;          /* enum hm_time_kind */
	uint32_t nlabels;
	hm_label labels[32];    /* resource-level labels: service.name, ... */
} hm_profile_meta;
hm_profile_meta *hm_profile_meta_get(hm_profile *p);
const hm_profile_meta *hm_profile_meta_cget(const hm_profile *p);
void hm_profile_set_label(hm_profile *p, const char *key, const char *value);

/* Text of a frame as used by collapsed output and SVG: "name (file:line)",
 * "name (file)" when line is 0, or "name" with no file. Writes at most cap
 * bytes (NUL-terminated) and returns the length it needed. */
size_t hm_frame_format(const hm_profile *p, const hm_frame *f, char *buf, size_t cap);

#endif
