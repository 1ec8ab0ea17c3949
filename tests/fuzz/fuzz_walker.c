/* fuzz_walker.c - the stack walker (lib/python/walker.c) fed random "remote" memory.
 *
 * The target is an hm_target_open_mem target: its memory is the fuzz input
 * (after a 4-byte header) at address BASE, then zeros up to BASE + VIRT;
 * every other address is unmapped. The header picks the CPython layout
 * (2.7 .. 3.13 tables, or "debug offsets": the layout decoded by
 * hm_pylayout_from_debug_offsets from the first 4 KiB at _PyRuntime, as
 * for 3.13+), the sample flags, the number of samples in a row (caches
 * carry over) and the depth limit. Whatever the memory holds, a sample
 * must end with sane threads and frames, without a sanitizer report.
 *
 * FUZZ_WALKER_SEEDS=DIR build-fuzz/fuzz_walker writes seed inputs to DIR
 * and exits: for each layout, an interpreter with two threads (three and
 * two frames; on 3.11+ the first thread's frames lie in a data-stack chunk)
 * laid out by the layout's offsets, so fuzzing starts from memory the
 * walker accepts; with FUZZ_WALKER_BLOB=FILE (the first 4 KiB of a 3.13+
 * _PyRuntime: its _Py_DebugOffsets), one more whose layout comes from
 * those debug offsets. tests/fuzz/make_seeds.sh runs it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proc/target.h"
#include "python/layouts/layouts.h"
#include "python/pyinternal.h"
#include "python/python.h"

#define BASE 0x10000ull
#define VIRT (4u << 20)
#define CODE_TYPE 0x7000ull      /* addresses of PyCode_Type / PyFrame_Type: */
#define FRAME_TYPE 0x7100ull     /* compared, never read */
#define HDR 4

static const hm_pylayout *const layouts[] = {
	&hm_pylayout_py27, &hm_pylayout_py36, &hm_pylayout_py37, &hm_pylayout_py38,
	&hm_pylayout_py39, &hm_pylayout_py310, &hm_pylayout_py311, &hm_pylayout_py312,
	&hm_pylayout_py313, NULL /* from debug offsets */,
};
#define NLAYOUTS (sizeof layouts / sizeof layouts[0])

static void check_sample(const hm_python *py, const hm_pysample *s)
{
	FUZZ_ASSERT(s->nthreads >= 0 && s->nthreads <= s->threads_cap);
	FUZZ_ASSERT(s->ninvalid >= 0);
	if (getenv("FUZZ_VERBOSE"))     /* what a seed or reproducer walks */
		for (int i = 0; i < s->nthreads; i++) {
			fprintf(stderr, "%s thread %d (valid %d):", py->version, s->threads[i].tid,
				s->threads[i].valid);
			for (int k = 0; k < s->threads[i].nframes; k++)
				fprintf(stderr, " %s:%d", s->threads[i].frames[k].code->name,
					s->threads[i].frames[k].line);
			fprintf(stderr, "\n");
		}
	for (int i = 0; i < s->nthreads; i++) {
		const hm_pythread *th = &s->threads[i];
		FUZZ_ASSERT(th->nframes >= 0 && th->nframes <= th->frames_cap);
		FUZZ_ASSERT(th->nframes <= py->max_depth);
		FUZZ_ASSERT(th->valid || th->nframes == 0);
		for (int k = 0; k < th->nframes; k++) {
			const hm_pycode *c = th->frames[k].code;
			FUZZ_ASSERT(c && c->name && c->qualname && c->filename);
			FUZZ_ASSERT(strlen(c->name) + strlen(c->qualname) + strlen(c->filename) <
				    (size_t)1 << 20);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < HDR)
		return 0;
	struct fuzz_mem m = {data + HDR, size - HDR, BASE, VIRT};
	hm_target *t;
	if (hm_target_open_mem(fuzz_mem_read, &m, &t) != 0)
		return 0;
	hm_python *py = calloc(1, sizeof *py);
	FUZZ_ASSERT(py);
	py->t = t;
	const hm_pylayout *L = layouts[data[0] % NLAYOUTS];
	if (!L) {
		uint8_t blob[4096];
		fuzz_mem_read(&m, BASE, blob, sizeof blob);
		if (hm_pylayout_from_debug_offsets(blob, sizeof blob, &py->layout_copy) != 0) {
			free(py);
			hm_target_close(t);
			return 0;
		}
		L = &py->layout_copy;
	}
	py->layout = L;
	if (L->major == 2 || (L->major == 3 && L->minor < 7))
		py->interp_head_sym = BASE;
	else
		py->runtime = BASE;
	py->code_type = CODE_TYPE;
	py->frame_type = L->frame_model == HM_FRAMES_OBJECTS ? FRAME_TYPE : 0;
	py->max_depth = data[3] ? data[3] : 4096;
	py->tid_offset = 16;
	snprintf(py->version, sizeof py->version, "%d.%d", L->major, L->minor);
	walker_init(py);
	unsigned flags = data[1] & (HM_SAMPLE_ONCPU | HM_SAMPLE_GIL | HM_SAMPLE_STATE |
				 HM_SAMPLE_WANT_GIL);
	hm_pysample s;
	memset(&s, 0, sizeof s);
	hm_python_ready(py);
	for (int i = 0; i <= data[2] % 3; i++)
		if (hm_python_sample(py, &s, flags) == 0)
			check_sample(py, &s);
	hm_pysample_free(&s);
	/* The code objects met, resolved as the in-kernel walker's frames are
	 * (hm_python_resolve: read ahead in one call with their names, each
	 * entry checked again), with words of the memory as more pairs. */
	uint64_t pairs[2 * 24];
	int n = 0;
	for (uint32_t i = 0; py->codes && i < py->codes_cap && n < 16; i++)
		if (py->codes[i]) {
			pairs[2 * n] = py->codes[i]->pub.addr;
			pairs[2 * n + 1] = py->codes[i]->pub.addr + (uint64_t)L->co_code_adaptive;
			n++;
		}
	for (int i = 0; i < 8 && n < 24; i++, n++)
		fuzz_mem_read(&m, BASE + 64 + 16 * (uint64_t)i, &pairs[2 * n], 16);
	hm_pythread th;
	memset(&th, 0, sizeof th);
	for (int k = 0; k < 2; k++) {
		hm_python_resolve_begin(py);
		hm_python_resolve_check(py, pairs, n);
		if (hm_python_resolve(py, pairs, n, &th) == 0)
			FUZZ_ASSERT(th.nframes <= n);
	}
	free(th.frames);
	hm_python_detach(py);
	hm_target_close(t);
	return 0;
}

/* ---- seeds ---- */

#define IMG 16384

struct img {
	uint8_t b[IMG];
	size_t used;
};

static uint64_t alloc(struct img *m, size_t n)
{
	m->used = (m->used + 15) & ~(size_t)15;
	uint64_t a = BASE + m->used;
	m->used += n;
	FUZZ_ASSERT(m->used <= IMG);
	return a;
}

static void put(struct img *m, uint64_t addr, int off, const void *v, size_t n)
{
	if (off < 0)
		return;
	uint64_t at = addr - BASE + (uint64_t)off;
	if (at + n <= IMG)       /* fields past the image read as zeros */
		memcpy(m->b + at, v, n);
}

static void w64(struct img *m, uint64_t a, int off, uint64_t v) { put(m, a, off, &v, 8); }
static void w32(struct img *m, uint64_t a, int off, uint32_t v) { put(m, a, off, &v, 4); }
static void w8(struct img *m, uint64_t a, int off, uint8_t v) { put(m, a, off, &v, 1); }

static uint64_t mkstr(struct img *m, const hm_pylayout *L, const char *s)
{
	size_t n = strlen(s);
	if (L->str_kind == HM_STR_PY2) {
		uint64_t a = alloc(m, (size_t)L->bytes_sval + n + 1);
		w64(m, a, L->var_size, n);
		put(m, a, L->bytes_sval, s, n);
		return a;
	}
	uint64_t a = alloc(m, (size_t)L->uni_ascii_size + n + 1);
	w64(m, a, L->uni_length, n);
	w32(m, a, L->uni_state, (1u << L->uni_kind_shift) | (1u << L->uni_compact_bit) |
		(1u << L->uni_ascii_bit));
	put(m, a, L->uni_ascii_size, s, n);
	return a;
}

static uint64_t mkbytes(struct img *m, const hm_pylayout *L, const void *d, size_t n)
{
	uint64_t a = alloc(m, (size_t)L->bytes_sval + n + 1);
	w64(m, a, L->var_size, n);
	put(m, a, L->bytes_sval, d, n);
	return a;
}

static uint64_t mkcode(struct img *m, const hm_python *py, const char *name, int line)
{
	const hm_pylayout *L = py->layout;
	static const uint8_t lt[] = {2, 1, 2, 1, 4, 2};
	size_t sz = py->co_len;
	if (L->co_code_adaptive >= 0 && (size_t)L->co_code_adaptive + 40 > sz)
		sz = (size_t)L->co_code_adaptive + 40;
	uint64_t c = alloc(m, sz);
	if (L->ob_type >= 8)
		w64(m, c, L->ob_type - 8, 1);   /* a live object's reference count */
	w64(m, c, L->ob_type, CODE_TYPE);
	w64(m, c, L->co_name, mkstr(m, L, name));
	w64(m, c, L->co_qualname, mkstr(m, L, name));
	w64(m, c, L->co_filename, mkstr(m, L, "app.py"));
	w32(m, c, L->co_firstlineno, (uint32_t)line);
	w64(m, c, L->co_linetable, mkbytes(m, L, lt, sizeof lt));
	if (L->co_code_adaptive >= 0) {
		w64(m, c, L->var_size, 20);   /* code units */
	} else if (L->co_code >= 0) {
		uint8_t code[20] = {0};
		w64(m, c, L->co_code, mkbytes(m, L, code, sizeof code));
	}
	return c;
}

/* A chain of n frames running codes[], leaf first; returns the leaf. For
 * 3.11+ with chunk != 0, the frames lie in the chunk (callers lower). */
static uint64_t mkframes(struct img *m, const hm_python *py, const uint64_t *codes, int n,
			 uint64_t chunk)
{
	const hm_pylayout *L = py->layout;
	uint64_t prev = 0;
	for (int i = n - 1; i >= 0; i--) {      /* root first */
		uint64_t f;
		if (L->frame_model == HM_FRAMES_OBJECTS) {
			f = alloc(m, py->fo_len);
			w64(m, f, L->ob_type, FRAME_TYPE);
			w64(m, f, L->fo_code, codes[i]);
			w32(m, f, L->fo_lasti, 2);
			w64(m, f, L->fo_back, prev);
		} else {
			size_t step = (py->if_len + 15) & ~(size_t)15;
			f = chunk ? chunk + (uint64_t)L->chunk_data + (uint64_t)(n - 1 - i) * step :
				    alloc(m, py->if_len);
			w64(m, f, L->if_code, codes[i]);
			w64(m, f, L->if_previous, prev);
			w64(m, f, L->if_instr, codes[i] + (uint64_t)L->co_code_adaptive + 4);
			w8(m, f, L->if_owner, 0);
		}
		prev = f;
	}
	return prev;
}

static uint64_t mktstate(struct img *m, const hm_python *py, uint64_t interp, uint64_t leaf,
			 uint64_t chunk, int nframes, uint32_t tid)
{
	const hm_pylayout *L = py->layout;
	uint64_t ts = alloc(m, py->ts_len);
	w64(m, ts, L->ts_interp, interp);
	w64(m, ts, L->ts_native_thread_id, tid);
	if (L->ts_cframe >= 0) {
		uint64_t cf = alloc(m, (size_t)L->cframe_current_frame + 8);
		w64(m, ts, L->ts_cframe, cf);
		w64(m, cf, L->cframe_current_frame, leaf);
	} else {
		w64(m, ts, L->ts_frame, leaf);
	}
	if (chunk) {
		size_t step = (py->if_len + 15) & ~(size_t)15;
		w64(m, ts, L->ts_datastack_chunk, chunk);
		w64(m, ts, L->ts_datastack_top, chunk + (uint64_t)L->chunk_data +
		    (uint64_t)nframes * step);
	}
	return ts;
}

/* One seed for layout li; for the debug-offsets entry, blob (the start of
 * a real _PyRuntime) goes first and gives the layout. */
static void make_seed(const char *dir, int li, const uint8_t *blob, size_t bloblen)
{
	static struct img m;
	memset(&m, 0, sizeof m);
	hm_python *py = calloc(1, sizeof *py);
	FUZZ_ASSERT(py);
	const hm_pylayout *L = layouts[li];
	if (!L) {
		FUZZ_ASSERT(bloblen == 4096);
		if (hm_pylayout_from_debug_offsets(blob, bloblen, &py->layout_copy) != 0) {
			fprintf(stderr, "fuzz_walker: debug offsets: %s\n", hm_errmsg());
			exit(1);
		}
		L = &py->layout_copy;
		memcpy(m.b, blob, bloblen);
	}
	py->layout = L;
	walker_init(py);
	m.used = blob ? bloblen : 256;    /* _PyRuntime (or interp_head) at BASE */
	if (L->rt_interpreters_head >= 0 && (size_t)L->rt_interpreters_head + 8 > m.used)
		m.used = (size_t)L->rt_interpreters_head + 8;
	int is_max = L->is_next > L->is_threads_head ? L->is_next : L->is_threads_head;
	if (L->is_gil_ptr > is_max)
		is_max = L->is_gil_ptr;
	uint64_t interp = alloc(&m, (size_t)is_max + 8);
	w64(&m, BASE, L->major == 2 || L->minor < 7 ? 0 : L->rt_interpreters_head, interp);
	uint64_t codes[3] = {mkcode(&m, py, "leaf", 10), mkcode(&m, py, "work", 20),
			     mkcode(&m, py, "main", 1)};
	uint64_t chunk = 0;
	if (L->frame_model == HM_FRAMES_INTERP) {
		size_t step = (py->if_len + 15) & ~(size_t)15;
		size_t len = (size_t)L->chunk_data + 4 * step;
		chunk = alloc(&m, len);
		w64(&m, chunk, L->chunk_size, len);
		w64(&m, chunk, L->chunk_top, 3 * step / 8);
	}
	uint64_t ts1 = mktstate(&m, py, interp, mkframes(&m, py, codes, 3, chunk), chunk, 3, 101);
	uint64_t ts2 = mktstate(&m, py, interp, mkframes(&m, py, codes + 1, 2, 0), 0, 2, 102);
	w64(&m, ts1, L->ts_next, ts2);
	w64(&m, ts2, L->ts_prev, ts1);
	w64(&m, interp, L->is_threads_head, ts1);
	if (L->ts_status >= 0 && L->ts_gil_bit >= 0)
		w32(&m, ts1, L->ts_status, 1u << L->ts_gil_bit);
	w64(&m, BASE, L->rt_tstate_current, ts1);
	if (L->is_gil_ptr >= 0) {
		uint64_t gil = alloc(&m, 64);
		w64(&m, interp, L->is_gil_ptr, gil);
		w32(&m, gil, L->gil_locked, 1);
		w64(&m, gil, L->gil_last_holder, ts1);
	}
	char path[4096];
	snprintf(path, sizeof path, "%s/seed-%d.%d%s", dir, L->major, L->minor,
		 blob ? "-debug-offsets" : "");
	FILE *f = fopen(path, "wb");
	if (!f) {
		fprintf(stderr, "fuzz_walker: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	uint8_t hdr[HDR] = {(uint8_t)li, HM_SAMPLE_WANT_GIL, 1, 0};
	fwrite(hdr, 1, HDR, f);
	fwrite(m.b, 1, m.used, f);
	fclose(f);
	walker_fini(py);
	free(py);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *dir = getenv("FUZZ_WALKER_SEEDS");
	if (!dir)
		return 0;
	for (size_t i = 0; i < NLAYOUTS; i++)
		if (layouts[i])
			make_seed(dir, (int)i, NULL, 0);
	/* FUZZ_WALKER_BLOB: 4 KiB from the start of a 3.13+ _PyRuntime */
	const char *bp = getenv("FUZZ_WALKER_BLOB");
	if (bp) {
		uint8_t blob[4096];
		FILE *f = fopen(bp, "rb");
		if (!f || fread(blob, 1, sizeof blob, f) != sizeof blob) {
			fprintf(stderr, "fuzz_walker: cannot read 4096 bytes of %s\n", bp);
			exit(1);
		}
		fclose(f);
		make_seed(dir, (int)NLAYOUTS - 1, blob, sizeof blob);
	}
	exit(0);
}
