/* otel.h - the current OpenTelemetry span of a thread or an asyncio task,
 * read from outside (python/otel.c).
 *
 * Private to libhomura's python/ layer: the walker calls otel_thread for
 * each thread it walked, while the thread state it just read is still in
 * py->tsbuf; everything else goes through python.h (hm_python_set_trace,
 * hm_python_context_span, hm_pythread.span). */
#ifndef HOMURA_OTEL_H
#define HOMURA_OTEL_H

#include <stddef.h>
#include <stdint.h>

#include "python/python.h"

typedef struct hm_otel hm_otel;

/* Reader state for py (3.8-3.13); NULL for other versions or without
 * memory. */
hm_otel *otel_open(hm_python *py);
void otel_close(hm_otel *o);
/* A reader over any memory (tests, fuzzing): the target t (e.g.
 * hm_target_open_mem), the layout, the built-in type addresses (as
 * hm_pyobj_reader.types), PyContext_Type and PyContextVar_Type, and the
 * ContextVar and span-key objects as if already looked up. */
struct otel_setup {
	const hm_pylayout *layout;
	hm_target *t;
	uint64_t types[11];
	uint64_t ctx_type, var_type, var, span_key;
	int64_t var_hash;
};
hm_otel *otel_open_setup(const struct otel_setup *s);
/* Bytes of a thread state that must be read so that otel_thread finds the
 * context fields in it (0 for unsupported versions). */
size_t otel_ts_need(int major, int minor);
/* Regions (at most max, which must be >= 12; OTEL_SPEC_IOV lets all fit)
 * that the walker should read together with the thread state at tstate:
 * what re-checks the span this thread had last time, or, while its span
 * keeps changing, the regions its last chain of reads touched. Returns how
 * many were written (0: none). Call otel_spec_loaded once they were all
 * read, then otel_thread. Each call forgets the regions of the call
 * before (max 0 plans none), so that they never pass for another read's. */
#define OTEL_SPEC_IOV 28
int otel_spec_iov(hm_otel *o, uint64_t tstate, hm_iov *iov, int max);
void otel_spec_loaded(hm_otel *o);
/* The thread's stack was (partly) read after those regions after all: they
 * prove nothing about it (the span is then read and proven anew). */
void otel_spec_drop(hm_otel *o);
/* Where a thread state keeps its context version (CPython bumps it at each
 * context switch: entering or leaving a Context, not at a variable's set),
 * or -1. The walker reads the regions, then the thread state, then the stack, and this
 * word again last, in one call: a value other than the thread state's
 * means the span changed after the regions were read (otel_spec_drop). */
int otel_ver_offset(const hm_otel *o);
/* The regions to read again after the stack, last in the same call (at
 * most max, which OTEL_SPEC_IOV fits; 0: none): the words of
 * otel_spec_iov's answer again, or, with the last chains' regions, those
 * of them that held the words proving those chains' answers (a span set
 * or reset in the same context does not move the version above). Once
 * they are read too, after otel_spec_loaded: otel_spec_end_check, which
 * drops the regions (otel_spec_drop) when those words no longer prove the
 * same answer (in chain mode the replayed answer is checked against them
 * in otel_thread_span). */
int otel_spec_end_iov(const hm_otel *o, hm_iov *iov, int max);
void otel_spec_end_check(hm_otel *o);
/* Fill th->span from the thread state in ts (the bytes read at th->tstate). */
void otel_thread(hm_otel *o, hm_pythread *th, const uint8_t *ts, size_t ts_len);
/* The same, giving a span only when the words that prove it were read with
 * the thread state (planned by otel_spec_iov), i.e. the span that was
 * current when the stack was read, never a neighbour's. Returns 0 (th->span
 * set, maybe to no span); 1 when the thread's span changed since its last
 * read, was not all found in the regions read with the thread state (see
 * otel_spec_iov), and last is 0: read the thread (and its stack) again, with a new
 * otel_spec_iov, and call again; 2 when last is set and the span could not
 * be proven (no span given: a torn span). */
int otel_thread_at(hm_otel *o, hm_pythread *th, const uint8_t *ts, size_t ts_len, int last);
/* otel_thread_at in two steps, so that the span is decided before the
 * stack is walked (a thread read again is walked once): the span alone,
 * then, once th's frames are walked, the local root span's name looked for
 * among their locals when it is not known yet. */
int otel_thread_span(hm_otel *o, hm_pythread *th, const uint8_t *ts, size_t ts_len, int last);
void otel_thread_root(hm_otel *o, hm_pythread *th);
/* For a reader over any memory (otel_open_setup: no interpreter, so no
 * asyncio task reader): fn gives the asyncio tasks' contexts (at most max
 * addresses into out; returns how many) where otel_thread_root looks for a
 * trace's local root among the tasks' spans. */
typedef int (*otel_task_contexts_fn)(void *ctx, uint64_t *out, int max);
void otel_set_task_contexts(hm_otel *o, otel_task_contexts_fn fn, void *ctx);
/* 0 when the answer otel_context_span gave for ctx (sp) still holds (one
 * read of the words it came from), -1 otherwise: read a task's context,
 * then its await chain, then this, so that its span held throughout. */
int otel_context_same(hm_otel *o, uint64_t ctx, const hm_pyspan *sp);
/* The span of a Context object. 0 (out filled, maybe with no span) or -1. */
int otel_context_span(hm_otel *o, uint64_t ctx, hm_pyspan *out);
int otel_found(const hm_otel *o);
/* The constant parts of the span chain for an in-kernel reader
 * (hm_python_span_layout); tstates: the thread states to learn the HAMT's
 * node types (and on <=3.10 a live span) from. 0; 1 the SDK is there but
 * not all was found yet; -1 no SDK (yet) or unsupported. */
int otel_span_layout(hm_otel *o, const uint64_t *tstates, int n, hm_pyspan_layout *out);
/* hm_python_str_snapshot. */
int otel_str_snapshot(hm_otel *o, uint64_t addr, uint8_t head[48], uint8_t raw[HM_PYSTR_RAW],
		      char *buf, size_t cap);

/* hm_python_span_note. */
void otel_span_note(hm_otel *o, hm_pyspan *sp);
/* hm_python_span_root_from_tasks (1 found, sp->root set; 0 not). */
int otel_root_in_tasks(hm_otel *o, hm_pyspan *sp);
/* hm_python_span_root_at (same arguments and results). */
int otel_root_at(hm_otel *o, uint64_t frame, uint64_t code, hm_pyspan *sp,
		 const uint64_t span_types[2]);
/* hm_python_span_root_hints. */
int otel_root_hints(const hm_otel *o, uint64_t *codes, int *idx, int max);
/* hm_python_span_root_scan, once th is walked (same arguments and
 * results). */
int otel_root_find(hm_otel *o, const hm_pythread *th, hm_pyspan *sp, const uint64_t span_types[2],
		   int full);

/* The HAMT lookup, exposed for unit tests against synthetic memory:
 * the value for key (a ContextVar whose 64-bit hash is hash) in the HAMT
 * rooted at node, with read(ctx, ...) as the memory and the three node type
 * addresses given (bitmap, array, collision). 0 found, 1 absent, -1 bad. */
typedef int (*otel_read_fn)(void *ctx, uint64_t addr, void *buf, size_t len);
int otel_hamt_find(otel_read_fn read, void *ctx, const uint64_t node_types[3], uint64_t node,
		   uint64_t key, int64_t hash, uint64_t *value);

#endif
