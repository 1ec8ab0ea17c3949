/* walker.c - sampling every thread's Python stack from outside the process.
 *
 * One sample: read the interpreter list, then for each thread state read the
 * thread state, its frame chain and the code objects on it. The walk never
 * stops the target, so anything read may be torn; every value is checked
 * before use (object types, frame owners, instruction offsets within the
 * code, address ordering on the data stack, a depth limit and Brent's cycle
 * check) and a thread whose walk fails is retried once and then dropped.
 *
 * Cost: the number of process_vm_readv calls dominates (~1.5 us each), so:
 *  - 3.11+: the whole live part of the thread's data-stack chunk is read in
 *    one call and frames are decoded from the local copy;
 *  - the thread state, the current frame of its last few 3.11/3.12
 *    cframes and its data-stack chunk are read speculatively in one call at
 *    the addresses of the last samples (with the words that prove its
 *    OpenTelemetry span, otel.h; the span is proven for the stack only
 *    when the current frame, the chunk and every frame walked came in that
 *    call: a thread whose walk read a frame later is read again, with the
 *    frames just walked prefetched, and keeps no span if that fails too);
 *  - the interpreter's thread-list head, GIL and collector flag are read
 *    only when needed (see hm_python_sample);
 *  - decoded code objects (names, line tables) are cached by address and
 *    re-validated at most once a second. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "base/error.h"
#include "base/util.h"
#include "python/otel.h"
#include "python/pydecode.h"
#include "python/pyinternal.h"

#define MAX_THREADS 4096
#define MAX_INTERPS 64
#define MAX_WALK 100000          /* hard bound on frames visited */
#define MAX_STR 4096             /* code points kept of a name */
#define MAX_LINETABLE (1 << 20)
#define MAX_CHUNK_READ (4u << 20)
#define REVALIDATE_NS 1000000000ull
#define CHURN_NS 3000000000ull   /* hm_python_resolve: see note_churn */
#define CHURN_DEATHS HM_CHURN_DEATHS
#define YOUNG_NS 1000000000ull   /* a code entry decoded this recently is checked on each sample */

static size_t span(int n, const int *offs, size_t width)
{
	int m = 0;
	for (int i = 0; i < n; i++)
		if (offs[i] > m)
			m = offs[i];
	return (size_t)m + width;
}

void walker_init(hm_python *py)
{
	const hm_pylayout *L = py->layout;
	int ts[] = {L->ts_prev, L->ts_next, L->ts_interp, L->ts_status, L->ts_frame, L->ts_cframe,
		    L->ts_thread_id, L->ts_native_thread_id, L->ts_datastack_chunk,
		    L->ts_datastack_top};
	py->ts_len = span(10, ts, 8);
	/* The context pointer of each thread (OpenTelemetry spans, otel.c)
	 * comes with the same read. */
	size_t ctx_need = otel_ts_need(L->major, L->minor);
	if (ctx_need > py->ts_len && L->ts_size > 0 && ctx_need <= (size_t)L->ts_size)
		py->ts_len = ctx_need;
	int fo[] = {L->ob_type, L->fo_back, L->fo_code, L->fo_lasti};
	py->fo_len = span(4, fo, 8);
	int ifr[] = {L->if_code, L->if_previous, L->if_instr, L->if_owner};
	py->if_len = span(4, ifr, 8);
	int co[] = {L->ob_type, L->var_size, L->co_filename, L->co_name, L->co_qualname,
		    L->co_firstlineno, L->co_linetable, L->co_code, L->co_flags};
	py->co_len = span((int)(sizeof co / sizeof co[0]), co, 8);
	py->tsbuf = calloc(1, py->ts_len);
	py->framebuf = calloc(1, py->fo_len > py->if_len ? py->fo_len : py->if_len);
	py->spec_stride = py->fo_len > py->if_len ? py->fo_len : py->if_len;
	py->specbuf = calloc(HM_SPEC_FRAMES, py->spec_stride);
	py->code_prebuf = calloc(HM_CODE_BATCH, py->co_len);
	py->str_prebuf = calloc(2 * HM_CODE_BATCH, HM_STR_PRE);
	py->codes_cap = 1024;
	py->codes = calloc(py->codes_cap, sizeof *py->codes);
}

static void free_code(struct code_entry *c)
{
	free(c->linetable);
	free(c->strings);
	free(c);
}

static void bury_dead_codes(hm_python *py)
{
	while (py->graveyard) {
		struct code_entry *c = py->graveyard;
		py->graveyard = c->next_dead;
		free_code(c);
	}
}

static void clear_codes(hm_python *py)
{
	bury_dead_codes(py);
	for (uint32_t i = 0; i < py->codes_cap; i++)
		if (py->codes[i]) {
			free_code(py->codes[i]);
			py->codes[i] = NULL;
		}
	py->ncodes = 0;
}

void walker_fini(hm_python *py)
{
	if (py->codes)
		clear_codes(py);
	free(py->codes);
	for (int i = 0; i < HM_CHUNK_COPIES; i++)
		free(py->chunks[i].buf);
	free(py->tsbuf);
	free(py->framebuf);
	free(py->specbuf);
	free(py->code_prebuf);
	free(py->str_prebuf);
	for (int i = 0; i < HM_THREAD_CACHE; i++)
		free(py->threads[i].spec);
}

/* ---- strings ----------------------------------------------------------- */

/* Read a str object (unicode on 3.x, PyStringObject on 2.7) as UTF-8 into
 * out (cap bytes). Returns 0 or -1 on an implausible object. */
static int read_str(hm_python *py, uint64_t addr, char *out, size_t cap)
{
	const hm_pylayout *L = py->layout;
	uint8_t head[HM_STR_PRE];
	out[0] = 0;
	if (!addr || (addr & 7))
		return -1;
	int k = 0;
	while (k < py->nstr_pre && py->str_pre[k] != addr)
		k++;
	if (k < py->nstr_pre)
		memcpy(head, py->str_prebuf + (size_t)k * HM_STR_PRE, sizeof head);
	else if (hm_target_read(py->t, addr, head, sizeof head) != HM_OK)
		return -1;
	if (L->str_kind == HM_STR_PY2) {
		int64_t n = hm_ld_i64(head, L->var_size);
		if (n < 0 || n > MAX_STR)
			return -1;
		size_t len = (size_t)n < cap - 1 ? (size_t)n : cap - 1;
		if ((size_t)L->bytes_sval + len <= sizeof head)
			memcpy(out, head + L->bytes_sval, len);
		else if (hm_target_read(py->t, addr + (uint64_t)L->bytes_sval, out, len) != HM_OK)
			return -1;
		out[len] = 0;
		return 0;
	}
	uint32_t state = (uint32_t)hm_ld_i32(head, L->uni_state);
	int64_t n = hm_ld_i64(head, L->uni_length);
	int kind = (int)((state >> L->uni_kind_shift) & 7);
	int compact = (int)((state >> L->uni_compact_bit) & 1);
	int ascii = (int)((state >> L->uni_ascii_bit) & 1);
	if (n < 0 || n > (1 << 24) || (kind != 1 && kind != 2 && kind != 4) || (ascii && kind != 1))
		return -1;
	if (n > MAX_STR)
		n = MAX_STR;
	uint64_t data;
	if (compact)
		data = addr + (uint64_t)(ascii ? L->uni_ascii_size : L->uni_compact_size);
	else {
		data = hm_ld_u64(head, L->uni_legacy_data);
		if (!data)
			return -1;
	}
	size_t bytes = (size_t)n * (size_t)kind;
	uint8_t stackbuf[1024];
	uint8_t *raw = stackbuf;
	if (data >= addr && data - addr <= sizeof head && bytes <= sizeof head - (data - addr))
		raw = head + (data - addr);
	else {
		if (bytes > sizeof stackbuf && !(raw = malloc(bytes)))
			return -1;
		if (hm_target_read(py->t, data, raw, bytes) != HM_OK) {
			if (raw != stackbuf)
				free(raw);
			return -1;
		}
	}
	hm_ucs_to_utf8(kind, raw, (size_t)n, out, cap);
	if (raw != stackbuf && (raw < head || raw >= head + sizeof head))
		free(raw);
	return 0;
}

/* Read a bytes object's contents (malloc'd) and length. */
static int read_bytes(hm_python *py, uint64_t addr, uint8_t **out, uint32_t *len)
{
	const hm_pylayout *L = py->layout;
	uint8_t head[64];
	*out = NULL;
	*len = 0;
	if (!addr || (size_t)L->bytes_sval > sizeof head)
		return -1;
	if (hm_target_read(py->t, addr, head, (size_t)L->bytes_sval) != HM_OK)
		return -1;
	int64_t n = hm_ld_i64(head, L->var_size);
	if (n < 0 || n > MAX_LINETABLE)
		return -1;
	uint8_t *b = malloc((size_t)n + 1);
	if (!b)
		return -1;
	if (n && hm_target_read(py->t, addr + (uint64_t)L->bytes_sval, b, (size_t)n) != HM_OK) {
		free(b);
		return -1;
	}
	*out = b;
	*len = (uint32_t)n;
	return 0;
}

/* ---- code objects ------------------------------------------------------ */

/* Fibonacci hash of a target address: the high bits are well mixed. */
static inline uint32_t addr_hash(uint64_t addr)
{
	return (uint32_t)((addr * 0x9E3779B97F4A7C15ull) >> 32);
}

static uint32_t code_slot(const hm_python *py, uint64_t addr)
{
	return addr_hash(addr) & (py->codes_cap - 1);
}

static struct code_entry *code_lookup(hm_python *py, uint64_t addr)
{
	for (uint32_t i = code_slot(py, addr);; i = (i + 1) & (py->codes_cap - 1)) {
		struct code_entry *c = py->codes[i];
		if (!c)
			return NULL;
		if (c->pub.addr == addr)
			return c;
	}
}

static void code_insert(hm_python *py, struct code_entry *c)
{
	if ((py->ncodes + 1) * 4 > py->codes_cap * 3) {
		uint32_t ncap = py->codes_cap * 2;
		struct code_entry **nt = calloc(ncap, sizeof *nt);
		if (!nt) {
			free_code(c);
			return;
		}
		struct code_entry **old = py->codes;
		uint32_t ocap = py->codes_cap;
		py->codes = nt;
		py->codes_cap = ncap;
		for (uint32_t i = 0; i < ocap; i++)
			if (old[i]) {
				uint32_t j = code_slot(py, old[i]->pub.addr);
				while (nt[j])
					j = (j + 1) & (ncap - 1);
				nt[j] = old[i];
			}
		free(old);
	}
	uint32_t j = code_slot(py, c->pub.addr);
	while (py->codes[j])
		j = (j + 1) & (py->codes_cap - 1);
	py->codes[j] = c;
	py->ncodes++;
}

static void code_remove(hm_python *py, struct code_entry *victim)
{
	/* Rebuild the probe run around the victim (linear probing delete). */
	uint32_t i = code_slot(py, victim->pub.addr);
	while (py->codes[i] != victim)
		i = (i + 1) & (py->codes_cap - 1);
	py->codes[i] = NULL;
	py->ncodes--;
	victim->next_dead = py->graveyard;
	py->graveyard = victim;
	for (uint32_t j = (i + 1) & (py->codes_cap - 1); py->codes[j]; j = (j + 1) & (py->codes_cap - 1)) {
		struct code_entry *c = py->codes[j];
		py->codes[j] = NULL;
		py->ncodes--;
		code_insert(py, c);
	}
}

/* Decode the code object at addr, or NULL if it is not a plausible one. */
static struct code_entry *code_load(hm_python *py, uint64_t addr, const uint8_t *co)
{
	const hm_pylayout *L = py->layout;
	char name[1024], qual[1024], file[4096];
	if (read_str(py, hm_ld_u64(co, L->co_name), name, sizeof name))
		return NULL;
	if (read_str(py, hm_ld_u64(co, L->co_filename), file, sizeof file))
		return NULL;
	qual[0] = 0;
	if (L->co_qualname >= 0 && read_str(py, hm_ld_u64(co, L->co_qualname), qual, sizeof qual))
		return NULL;
	struct code_entry *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	size_t ln = strlen(name) + 1, lq = strlen(qual) + 1, lf = strlen(file) + 1;
	c->strings = malloc(ln + lq + lf);
	if (!c->strings) {
		free(c);
		return NULL;
	}
	memcpy(c->strings, name, ln);
	memcpy(c->strings + ln, qual, lq);
	memcpy(c->strings + ln + lq, file, lf);
	c->pub.addr = addr;
	c->pub.name = c->strings;
	c->pub.qualname = qual[0] ? c->strings + ln : c->strings;
	c->pub.filename = c->strings + ln + lq;
	c->pub.firstlineno = hm_ld_i32(co, L->co_firstlineno);
	/* CO_NEWLOCALS (0x2) marks a function's code in every version; where
	 * the flags' place is not known, the name tells a module body. */
	c->body = L->co_flags >= 0 ? !(hm_ld_i32(co, L->co_flags) & 0x2) : !strcmp(name, "<module>");
	c->code_type = hm_ld_u64(co, L->ob_type);
	c->memo_off[0] = c->memo_off[1] = -1;
	if (read_bytes(py, hm_ld_u64(co, L->co_linetable), &c->linetable, &c->lt_len)) {
		free_code(c);
		return NULL;
	}
	if (L->co_code_adaptive >= 0) {
		int64_t units = hm_ld_i64(co, L->var_size);
		if (units < 0 || units > (1 << 26)) {
			free_code(c);
			return NULL;
		}
		c->code_bytes = (uint32_t)units * 2;
	} else if (L->co_code >= 0) {
		uint8_t head[64];
		uint64_t b = hm_ld_u64(co, L->co_code);
		if (!b || hm_target_read(py->t, b, head, 32) != HM_OK) {
			free_code(c);
			return NULL;
		}
		int64_t n = hm_ld_i64(head, L->var_size);
		if (n < 0 || n > (1 << 26)) {
			free_code(c);
			return NULL;
		}
		c->code_bytes = (uint32_t)n;
		c->bytecode = b + (uint64_t)L->bytes_sval;
	}
	/* 3.13 pushes a frame running an internal code object named
	 * "__init__" from file "__init__" around calls of Python __init__
	 * methods: it is not user code, so the walker skips it. */
	c->shim = !strcmp(file, "__init__") && !strcmp(name, "__init__") && c->pub.firstlineno <= 1;
	c->checked_ns = hm_mono_ns();
	return c;
}

/* The cached decoded code object at addr, loading or re-validating it. */
/* What identifies the code object in co (its name, file and line table
 * objects and first line): a code object is immutable, so these change only
 * when its address was freed and reused for another one. */
static void code_ident(const hm_pylayout *L, const uint8_t *co, uint64_t ident[4])
{
	ident[0] = hm_ld_u64(co, L->co_name);
	ident[1] = hm_ld_u64(co, L->co_filename);
	ident[2] = hm_ld_u64(co, L->co_linetable);
	ident[3] = (uint64_t)(uint32_t)hm_ld_i32(co, L->co_firstlineno);
}

/* Whether cached entry c (NULL: none) is used as it is, without reading
 * its code object again (see code_get). */
static int code_fresh(const hm_python *py, const struct code_entry *c)
{
	uint64_t now = py->sample_ns;
	if (!c || py->inproc)
		return 0;
	uint64_t stale_after = 3 * py->interval_ns + 1000000;
	int recent = now - c->used_ns <= stale_after;
	int young = now - c->born_ns < YOUNG_NS;
	return recent && now - c->checked_ns < REVALIDATE_NS && (!young || c->checked_ns == now);
}

/* Whether the object whose bytes are at obj looks alive: its reference
 * count positive and far below an address. pymalloc writes its free list's
 * next pointer (or 0) where a freed block's count was; immortal counts are
 * below 2^32 (3.12-3.14). Free-threaded builds keep two counts elsewhere:
 * not checked. */
static int alive(const hm_pylayout *L, const uint8_t *obj)
{
	if (L->free_threaded || L->ob_type < 8)
		return 1;
	int64_t rc = hm_ld_i64(obj, L->ob_type - 8);
	return rc > 0 && rc < ((int64_t)1 << 40);
}

/* Resolving (hm_python_resolve): c's code object died or its address holds
 * another one now. A module's body dies at the end of its import, and the
 * bodies of its classes with it, as start-up does by the dozen (a stack's
 * code objects are read at its first count, HM_BPF_NEW_STACK, so such
 * deaths are seen); a function's code dying means the program makes and
 * drops code as it runs (exec or compile in a loop), and the address of
 * one can hold another before a drain. For CHURN_NS from then, a
 * code object first met in a batch may have taken the address of one that
 * ran earlier in it: that batch's frames there are counted invalid (a
 * frame of a dead function must not be shown as another's), as are those of
 * one found at the address of another that died (1 returned). An address
 * that a body held is taken as the new object's: start-up's imports end
 * long before most drains, and what they leave is mostly what the program
 * runs next.
 * One function found dead, or replaced (replaced: another live code
 * object at its address, which the caller then counts invalid in this
 * batch, 1 returned), is not proof alone: modules delete helpers they ran
 * once at import (urllib.parse deletes _fix_result_transcoding), and the
 * next import's code may take the address; a program that exits within
 * CHURN_NS of that would lose its last drain (settled_trust). It takes
 * CHURN_DEATHS such functions within CHURN_NS; a program that makes and
 * drops code loses dozens at each collection. */
static int note_churn(hm_python *py, struct code_entry *c, int replaced)
{
	if (c->body || (!replaced && c->died))
		return 0;
	c->died = 1;
	py->deaths_ns[py->ndeaths++ % CHURN_DEATHS] = py->sample_ns;
	/* (the oldest of the last CHURN_DEATHS is next to be overwritten) */
	if (py->ndeaths >= CHURN_DEATHS &&
	    py->sample_ns - py->deaths_ns[py->ndeaths % CHURN_DEATHS] < CHURN_NS)
		py->churn_ns = py->sample_ns;
	return replaced;
}

/* Whether a program seen dropping code objects (note_churn) may still be:
 * then no entry is used unread when resolving (once per batch), however
 * long it has held its address (an old entry's address is as likely to be
 * taken). */
static int churning(const hm_python *py)
{
	return py->churn_ns && py->sample_ns - py->churn_ns < CHURN_NS;
}

/* Whether code object co still has c's name and file name. Checked when
 * frames read up to a second ago are resolved (hm_python_resolve): a
 * program that compiles code in a loop frees a code object, its strings and
 * its line table together, and the next one takes all their addresses, so
 * the pointers alone (code_ident) do not tell the two apart. */
static int same_names(hm_python *py, const uint8_t *co, const struct code_entry *c)
{
	const hm_pylayout *L = py->layout;
	char buf[4096];   /* as code_load's: cut at the same place */
	if (read_str(py, hm_ld_u64(co, L->co_name), buf, 1024) || strcmp(buf, c->pub.name))
		return 0;
	return !read_str(py, hm_ld_u64(co, L->co_filename), buf, sizeof buf) &&
	       !strcmp(buf, c->pub.filename);
}

/* Whether the target's interpreter is finalizing (Py_Finalize sets
 * _PyRuntime's (_)finalizing before it tears the modules down, and never
 * clears it): read at most once per batch, when a code object is found
 * dead, and remembered once seen. */
static int finalizing(hm_python *py)
{
	const hm_pylayout *L = py->layout;
	if (py->finalizing)
		return 1;
	if (py->inproc || !py->runtime || L->rt_finalizing < 0 || py->fin_read_in == py->nsample)
		return 0;
	py->fin_read_in = py->nsample;
	uint64_t v = 0;
	if (hm_target_read(py->t, py->runtime + (uint64_t)L->rt_finalizing, &v, sizeof v) != HM_OK)
		return 0;
	return py->finalizing = v != 0;
}

/* Entry c (NULL: none) when its code object cannot be read again or has
 * died since the kernel read the frames of this batch (a drain of its
 * aggregates comes up to a second after them): when the target exits,
 * the frames of its last second would otherwise all be lost. Two cases
 * where no other code object can have taken the address in between:
 * - the process is gone (exited): its memory cannot change (exited = 1);
 * - the interpreter finalizes: its teardown frees every function, and no
 *   code is compiled there (exited = 0: c's object was found dead).
 * Alive, an entry is trusted up to REVALIDATE_NS after its last check, and
 * the frames of the last drain were taken up to a second after that: an
 * entry checked in the last 3 s (as hm_python_resolve_begin counts recent)
 * is what they ran, unless the program was dropping code objects before
 * (note_churn): then its address may have held another since. A read that
 * fails in a live process, or a code object that dies in a running
 * program, still fails the frame. */
static struct code_entry *settled_trust(hm_python *py, struct code_entry *c, int exited)
{
	if (!c || py->inproc || py->sample_ns - c->checked_ns > 3 * REVALIDATE_NS || churning(py))
		return NULL;
	if (!exited)
		return finalizing(py) ? c : NULL;
	if (!py->gone) {
		/* Exiting, a process has no memory before it is a zombie: a
		 * read of _PyRuntime, mapped for as long as it has memory, then
		 * fails too. */
		uint8_t b;
		py->gone = py->runtime ? hm_target_read(py->t, py->runtime, &b, 1) != HM_OK
				       : !hm_target_alive(py->t);
	}
	return py->gone ? c : NULL;
}

/* The decoded code object at addr, from the cache when it is safe to trust
 * it. A code object met on consecutive samples is alive all along, so its
 * entry is trusted without a read. One not met for a while (more than three
 * sampling intervals) may have died and its address been reused - as happens
 * to startup code a few milliseconds into a program - so it is checked
 * again with one read; and every entry is checked at least once a second.
 * An entry decoded less than a second ago is checked at each sample that
 * meets it (once per sample): start-up code (a .pth line's <module>, an
 * import's module body) dies within milliseconds and its address goes to
 * the next code object compiled, which the samples right after would
 * otherwise take for the dead one - a generator expression of the program
 * shown as "<module> (<string>:1)". A walk's reads of such entries come in
 * one call before it (code_prefetch). */
static struct code_entry *code_get(hm_python *py, uint64_t addr)
{
	const hm_pylayout *L = py->layout;
	if (!addr || (addr & 7))
		return NULL;
	struct code_entry *c = code_lookup(py, addr);
	uint64_t now = py->sample_ns;
	if (c && !py->inproc) {
		int fresh = code_fresh(py, c) &&
			    (!py->resolving || !churning(py) || c->checked_ns == now);
		c->used_ns = now;
		if (fresh)
			return c;
	}
	uint8_t co[512];
	if (py->co_len > sizeof co)
		return NULL;
	if (py->inproc) {
		/* In-process walk of the calling thread's own stack
		 * (hm_python_walk_tstate from the allocation sampler): the
		 * frame holds its code object, so it is alive and is read
		 * directly - and every time, since code objects die and their
		 * addresses are reused far faster than between two samples of
		 * `record`. */
		memcpy(co, (const void *)(uintptr_t)addr, py->co_len);
	} else {
		int k = 0;
		while (k < py->ncode_pre && py->code_pre[k] != addr)
			k++;
		if (k < py->ncode_pre)
			memcpy(co, py->code_prebuf + (size_t)k * py->co_len, py->co_len);
		else if (hm_target_read(py->t, addr, co, py->co_len) != HM_OK)
			return settled_trust(py, c, 1);
	}
	/* A frame read a moment before may have returned since, and its code
	 * object died with it (a module body, at an import's end): a freed
	 * code object keeps its fields, whose strings are freed too and soon
	 * hold other text (a file name the next import probes for). Freed by
	 * malloc (a large code object), its type word is overwritten. */
	int freed = py->code_type && hm_ld_u64(co, L->ob_type) != py->code_type;
	if (freed || (!py->inproc && !alive(L, co))) {
		if (!c || !py->resolving)
			return NULL;
		if (settled_trust(py, c, 0))
			return c;
		if (!freed && !finalizing(py))
			(void)note_churn(py, c, 0);
		return NULL;
	}
	int reused = 0;
	if (c) {
		uint64_t ident[4];
		code_ident(L, co, ident);
		if (!memcmp(ident, c->ident, sizeof ident) && (!py->resolving || same_names(py, co, c))) {
			c->checked_ns = now;
			return c;
		}
		if (py->resolving && !finalizing(py))
			reused = note_churn(py, c, 1);
		code_remove(py, c);
	}
	c = code_load(py, addr, co);
	if (c && !py->inproc) {
		/* Its strings were read after it: if it is the same live code
		 * object now, they were its own when read. */
		uint8_t again[512];
		uint64_t was[4], now_ident[4];
		code_ident(L, co, was);
		if (hm_target_read(py->t, addr, again, py->co_len) != HM_OK || !alive(L, again) ||
		    (code_ident(L, again, now_ident), memcmp(was, now_ident, sizeof was))) {
			free_code(c);
			return NULL;
		}
	}
	if (c) {
		code_ident(L, co, c->ident);
		c->used_ns = c->checked_ns = c->born_ns = now;
		if (reused)
			c->reused_in = py->nsample;
		code_insert(py, c);
	}
	return c;
}

struct code_entry *walker_code(hm_python *py, uint64_t addr)
{
	return code_get(py, addr);
}

/* A frame's instruction lies outside its code object: the entry may be
 * stale (address reuse) - drop it so the retry decodes the object anew. */
static void code_distrust(hm_python *py, struct code_entry *c)
{
	code_remove(py, c);
}

/* Line of a byte offset into the code, memoised for the last offset. */
static int code_line(struct code_entry *c, int kind, int64_t off)
{
	if (off < 0)
		return c->pub.firstlineno;
	if (c->memo_off[0] == off)
		return c->memo_line[0];
	if (c->memo_off[1] == off)
		return c->memo_line[1];
	int line = hm_line_for_offset(kind, c->linetable, c->lt_len, c->pub.firstlineno, (uint32_t)off);
	c->memo_off[1] = c->memo_off[0];
	c->memo_line[1] = c->memo_line[0];
	c->memo_off[0] = (int32_t)off;
	c->memo_line[0] = line;
	return line;
}

int walker_code_line(const hm_python *py, struct code_entry *c, int64_t off)
{
	return code_line(c, py->layout->linetable_kind, off);
}

/* ---- frames ------------------------------------------------------------ */

static int push_frame(hm_pythread *th, const struct code_entry *c, int line, uint64_t addr)
{
	if (th->nframes == th->frames_cap) {
		int nc = th->frames_cap ? th->frames_cap * 2 : 64;
		hm_pyframe *nf = realloc(th->frames, (size_t)nc * sizeof *nf);
		if (!nf)
			return -1;
		th->frames = nf;
		th->frames_cap = nc;
	}
	th->frames[th->nframes].code = &c->pub;
	th->frames[th->nframes].line = line;
	th->frames[th->nframes].addr = addr;
	th->frames[th->nframes].entry = 0;
	th->nframes++;
	return 0;
}

/* Brent's cycle check: returns 1 when addr repeats a saved address. */
struct cycle {
	uint64_t saved;
	uint64_t power, steps;
};

static int cycle_step(struct cycle *cy, uint64_t addr)
{
	if (addr == cy->saved)
		return 1;
	if (++cy->steps == cy->power) {
		cy->saved = addr;
		cy->power *= 2;
		cy->steps = 0;
	}
	return 0;
}

/* Local bytes (len) of the frame at addr: from this sample's prefetch when it
 * was there, else read remotely. */
static const uint8_t *prefetched_frame(hm_python *py, uint64_t addr, size_t len, int *hint)
{
	for (int k = 0; k < py->nspec_loaded; k++) {
		int i = (*hint + k) % py->nspec_loaded;
		if (py->spec_addr[i] == addr) {
			*hint = i + 1;
			return py->specbuf + (size_t)i * py->spec_stride;
		}
	}
	py->walk_late = 1;
	if (hm_target_read(py->t, addr, py->framebuf, len) != HM_OK)
		return NULL;
	return py->framebuf;
}

/* The code objects of the frames this walk will meet that code_get would
 * read again (code_fresh), in one call rather than one each: the frames
 * are followed through what is already local (the data-stack copies and
 * the frames prefetched with the thread state); one that is not is read
 * here and added to the prefetched frames, where the walk finds it. A walk of
 * a service's stack meets a few such code objects per sample: code met
 * often stays fresh, a request's path through a framework does not. */
/* The data-stack copy holding [addr, addr + len), or -1. Written so that
 * a garbage addr near 2^64 cannot wrap around. */
static int chunk_at(const hm_python *py, uint64_t addr, size_t len)
{
	for (int i = 0; i < py->nchunks; i++) {
		const struct chunk_copy *cc = &py->chunks[i];
		if (addr >= cc->addr && cc->len >= len && addr - cc->addr <= cc->len - len)
			return i;
	}
	return -1;
}

static const uint8_t *local_frame(hm_python *py, uint64_t addr, size_t len)
{
	int i = chunk_at(py, addr, len);
	if (i >= 0)
		return py->chunks[i].buf + (addr - py->chunks[i].addr);
	for (int k = 0; k < py->nspec_loaded; k++)
		if (py->spec_addr[k] == addr)
			return py->specbuf + (size_t)k * py->spec_stride;
	return NULL;
}

static void code_prefetch(hm_python *py, uint64_t frame)
{
	const hm_pylayout *L = py->layout;
	int objects = L->frame_model == HM_FRAMES_OBJECTS;
	size_t len = objects ? py->fo_len : py->if_len;
	hm_iov iov[HM_CODE_BATCH];
	int n = 0;
	py->ncode_pre = 0;
	if (py->inproc || !py->code_prebuf)
		return;
	/* No further than the walk goes (shim frames are not counted). */
	int max = py->max_depth < 4096 ? py->max_depth + 64 : 4096;
	for (int i = 0; frame && !(frame & 7) && i < max && n < HM_CODE_BATCH; i++) {
		const uint8_t *f = local_frame(py, frame, len);
		if (!f) {
			/* Read now (the walk would read it anyway) and kept
			 * with the prefetched frames, where the walk finds it. */
			int k = py->nspec_loaded;
			uint8_t *slot = py->specbuf + (size_t)k * py->spec_stride;
			if (k >= HM_SPEC_FRAMES || hm_target_read(py->t, frame, slot, len) != HM_OK)
				break;
			py->walk_late = 1;
			py->spec_addr[k] = frame;
			py->nspec_loaded = k + 1;
			f = slot;
		}
		uint64_t code = hm_ld_u64(f, objects ? L->fo_code : L->if_code);
		if (!objects && L->executable_tagged)
			code &= ~(uint64_t)3;
		frame = hm_ld_u64(f, objects ? L->fo_back : L->if_previous);
		if (!objects && f[L->if_owner] == L->owner_cstack)
			continue;
		if (!code || (code & 7) || code_fresh(py, code_lookup(py, code)))
			continue;
		int dup = 0;
		for (int j = 0; j < n && !dup; j++)
			dup = iov[j].addr == code;
		if (!dup) {
			iov[n] = (hm_iov){code, py->code_prebuf + (size_t)n * py->co_len, py->co_len};
			py->code_pre[n++] = code;
		}
	}
	/* One alone is read where it is met; a failed call (a torn frame's
	 * garbage pointer) leaves each to be read where it is met. */
	if (n >= 2 && hm_target_readv(py->t, iov, n) == HM_OK)
		py->ncode_pre = n;
}

/* <=3.10: PyFrameObject chain from tstate->frame. The chain seen is kept in
 * the thread cache so the next sample can prefetch it in one call. */
static int walk_frame_objects(hm_python *py, uint64_t frame, hm_pythread *th,
			      struct thread_cache *tc)
{
	const hm_pylayout *L = py->layout;
	struct cycle cy = {0, 1, 0};
	int hint = 0;
	tc->nspec = 0;
	for (int n = 0; frame; n++) {
		if (n >= MAX_WALK || (frame & 7) || cycle_step(&cy, frame))
			return -1;
		if (th->nframes >= py->max_depth) {
			th->truncated = 1;
			return 0;
		}
		const uint8_t *f = prefetched_frame(py, frame, py->fo_len, &hint);
		if (!f)
			return -1;
		if (py->frame_type && hm_ld_u64(f, L->ob_type) != py->frame_type)
			return -1;
		struct code_entry *c = code_get(py, hm_ld_u64(f, L->fo_code));
		if (!c)
			return -1;
		int64_t lasti = hm_ld_i32(f, L->fo_lasti);
		int64_t off = L->linetable_kind == HM_LINETABLE_310 ? lasti * 2 : lasti;
		if (off >= (int64_t)c->code_bytes + 2 && c->code_bytes) {
			code_distrust(py, c);
			return -1;
		}
		if (push_frame(th, c, code_line(c, L->linetable_kind, off), frame))
			return -1;
		if (!tc->spec)
			tc->spec = malloc(HM_SPEC_FRAMES * sizeof *tc->spec);
		if (tc->spec && tc->nspec < HM_SPEC_FRAMES)
			tc->spec[tc->nspec++] = frame;
		frame = hm_ld_u64(f, L->fo_back);
	}
	return 0;
}

static int chunk_reserve(struct chunk_copy *cc, uint64_t len)
{
	if (len > MAX_CHUNK_READ)
		return -1;
	if (cc->cap < len) {
		uint8_t *nb = realloc(cc->buf, len);
		if (!nb)
			return -1;
		cc->buf = nb;
		cc->cap = len;
	}
	return 0;
}

/* Copy [addr, addr+len) of a data-stack chunk into slot i. */
static int chunk_fill(hm_python *py, int i, uint64_t addr, uint64_t len)
{
	struct chunk_copy *cc = &py->chunks[i];
	if (chunk_reserve(cc, len))
		return -1;
	if (hm_target_read(py->t, addr, cc->buf, len) != HM_OK)
		return -1;
	cc->addr = addr;
	cc->len = len;
	return 0;
}

/* Local bytes of the interpreter frame at addr: from a chunk copy when it
 * lies inside one, else read remotely (generator frames, older chunks). */
static const uint8_t *iframe_bytes(hm_python *py, uint64_t addr, int *chunk_idx,
				   struct thread_cache *tc, int *hint)
{
	int in = chunk_at(py, addr, py->if_len);
	if (in >= 0) {
		*chunk_idx = in;
		return py->chunks[in].buf + (addr - py->chunks[in].addr);
	}
	/* Not in a copied chunk: try the chunk before the oldest copied one. */
	const hm_pylayout *L = py->layout;
	if (py->nchunks > 0 && py->nchunks < HM_CHUNK_COPIES && L->chunk_previous >= 0) {
		struct chunk_copy *last = &py->chunks[py->nchunks - 1];
		if (last->len >= (uint64_t)L->chunk_data) {
			uint64_t prev = hm_ld_u64(last->buf, L->chunk_previous);
			uint8_t hdr[64];
			if (prev && addr > prev && (size_t)L->chunk_data <= sizeof hdr &&
			    hm_target_read(py->t, prev, hdr, (size_t)L->chunk_data) == HM_OK) {
				uint64_t size = hm_ld_u64(hdr, L->chunk_size);
				uint64_t top = hm_ld_u64(hdr, L->chunk_top);
				uint64_t len = (uint64_t)L->chunk_data + top * 8;
				if (size <= MAX_CHUNK_READ && len <= size && len >= py->if_len &&
				    addr - prev <= len - py->if_len &&
				    (py->walk_late = 1, chunk_fill(py, py->nchunks, prev, len) == 0)) {
					*chunk_idx = py->nchunks++;
					return py->chunks[*chunk_idx].buf + (addr - prev);
				}
			}
		}
	}
	/* Outside the data stack (3.12+ entry frames live on the C stack,
	 * generator frames in their generator): prefetched with the thread
	 * state when this address was seen last time, else read now; either
	 * way remembered for the next sample's prefetch. */
	*chunk_idx = -1;
	if (!tc->spec)
		tc->spec = malloc(HM_SPEC_FRAMES * sizeof *tc->spec);
	if (tc->spec && tc->nspec < HM_OFFCHUNK_FRAMES)
		tc->spec[tc->nspec++] = addr;
	return prefetched_frame(py, addr, py->if_len, hint);
}

/* 3.11+: _PyInterpreterFrame chain. FRAME_OWNED_BY_GENERATOR is 1 in
 * every version (THREAD is 0). */
#define FRAME_OWNED_BY_GENERATOR 1
/* 3.11+: _PyInterpreterFrame chain. */
static int walk_iframes(hm_python *py, uint64_t frame, hm_pythread *th, struct thread_cache *tc)
{
	const hm_pylayout *L = py->layout;
	struct cycle cy = {0, 1, 0};
	int hint = 0;
	tc->nspec = 0;
	uint64_t prev_addr = 0;
	int prev_chunk = -1;
	for (int n = 0; frame; n++) {
		if (n >= MAX_WALK || (frame & 7) || cycle_step(&cy, frame))
			return -1;
		int ci;
		const uint8_t *f = iframe_bytes(py, frame, &ci, tc, &hint);
		if (!f)
			return -1;
		/* Frames on one chunk are pushed upwards: callers sit lower. */
		if (ci >= 0 && ci == prev_chunk && frame >= prev_addr)
			return -1;
		prev_addr = frame;
		prev_chunk = ci;
		uint64_t code = hm_ld_u64(f, L->if_code);
		uint64_t previous = hm_ld_u64(f, L->if_previous);
		uint64_t instr = hm_ld_u64(f, L->if_instr);
		int owner = f[L->if_owner];
		if (L->executable_tagged)
			code &= ~(uint64_t)3;
		if (owner > L->owner_max)
			return -1;
		/* 3.12+: a running generator's frame links to the frame that
		 * resumed it (an entry shim at least); one with no previous
		 * had returned or yielded when it was read, after the frame
		 * that pointed at it: a stack of two moments. */
		if (!previous && owner == FRAME_OWNED_BY_GENERATOR && L->owner_cstack >= 0)
			return -1;
		if (owner == L->owner_cstack) {
			/* 3.12+: the frame run just before this shim is the
			 * first one of a C-level eval call (--native). */
			if (th->nframes > 0)
				th->frames[th->nframes - 1].entry = 1;
			frame = previous;
			continue;
		}
		if (th->nframes >= py->max_depth) {
			th->truncated = 1;
			return 0;
		}
		struct code_entry *c = code_get(py, code);
		if (!c)
			return -1;
		if (c->shim) {
			frame = previous;
			continue;
		}
		int64_t off = (int64_t)(instr - (code + (uint64_t)L->co_code_adaptive));
		if (off < -2 || off > (int64_t)c->code_bytes) {
			code_distrust(py, c);
			return -1;
		}
		if (push_frame(th, c, code_line(c, L->linetable_kind, off), frame))
			return -1;
		if (L->if_is_entry >= 0 && (size_t)L->if_is_entry < py->if_len)
			th->frames[th->nframes - 1].entry = f[L->if_is_entry] != 0;   /* 3.11 */
		frame = previous;
	}
	return 0;
}

/* ---- frames read elsewhere (sample/ebpf.c: the in-kernel walker) ------- */

void hm_python_resolve_begin(hm_python *py)
{
	uint64_t t = hm_mono_ns();
	/* The pairs come from frames that were live when the kernel read
	 * them, whenever a code object was last met: a cached one counts as
	 * recent for 3 s and is re-checked once a second (REVALIDATE_NS), not
	 * re-read whenever a process is sampled less often than each drain. */
	py->interval_ns = 1000000000ull;
	py->sample_ns = t;
	py->nsample++;
	bury_dead_codes(py);
	if (py->ncodes > HM_CODE_CACHE_MAX)
		clear_codes(py);
}

static int resolve_pairs(hm_python *py, const uint64_t *pairs, int n, hm_pythread *th);

/* Whether code_get, resolving, reads the code object at addr. */
static int resolve_reads(hm_python *py, uint64_t addr)
{
	struct code_entry *c = code_lookup(py, addr);
	return !c || !code_fresh(py, c) || (churning(py) && c->checked_ns != py->sample_ns);
}

/* Before the pairs are resolved: the code objects code_get will read,
 * in one call, then the names and file names that same_names will read
 * (of the entries whose words still match), in a second. Each entry is
 * checked once a second, and a stack's entries mostly fall due together:
 * a drain re-checked them at three calls each. Each is read after the
 * object that points to it, as code_get reads them; a call that fails
 * leaves each to be read where it is met. */
static void resolve_prefetch(hm_python *py, const uint64_t *pairs, int n)
{
	const hm_pylayout *L = py->layout;
	hm_iov iov[2 * HM_CODE_BATCH];
	int k = 0;
	py->ncode_pre = py->nstr_pre = 0;
	if (py->inproc || !py->code_prebuf || !py->str_prebuf)
		return;
	for (int i = 0; i < n && k < HM_CODE_BATCH; i++) {
		uint64_t code = pairs[2 * i] & ~HM_PYPAIR_ENTRY;
		if (!code || (code & 7) || !resolve_reads(py, code))
			continue;
		int dup = 0;
		for (int j = 0; j < k && !dup; j++)
			dup = py->code_pre[j] == code;
		if (!dup) {
			iov[k] = (hm_iov){code, py->code_prebuf + (size_t)k * py->co_len, py->co_len};
			py->code_pre[k++] = code;
		}
	}
	if (k < 2 || hm_target_readv(py->t, iov, k) != HM_OK)
		return;
	py->ncode_pre = k;
	int m = 0;
	for (int j = 0; j < k; j++) {
		const uint8_t *co = py->code_prebuf + (size_t)j * py->co_len;
		struct code_entry *c = code_lookup(py, py->code_pre[j]);
		uint64_t ident[4];
		if (!c || !alive(L, co))
			continue;
		code_ident(L, co, ident);
		if (memcmp(ident, c->ident, sizeof ident))
			continue;
		for (int f = 0; f < 2; f++) {
			uint64_t a = f ? ident[1] : ident[0];
			int dup = !a || (a & 7);
			for (int q = 0; q < m && !dup; q++)
				dup = py->str_pre[q] == a;
			if (dup)
				continue;
			iov[m] = (hm_iov){a, py->str_prebuf + (size_t)m * HM_STR_PRE, HM_STR_PRE};
			py->str_pre[m++] = a;
		}
	}
	if (m >= 2 && hm_target_readv(py->t, iov, m) == HM_OK)
		py->nstr_pre = m;
}

static void resolve_done(hm_python *py)
{
	py->ncode_pre = py->nstr_pre = 0;
	py->resolving = 0;
}

/* Whether this batch's frames of c's code may have run another code object
 * (see note_churn): its address held another one before it, or it was first
 * met in this batch (or within the window its counts cover: a stack's code
 * objects are read at its first count, HM_BPF_NEW_STACK) while the program
 * drops code objects. */
static int ambiguous(const hm_python *py, const struct code_entry *c)
{
	if (c->reused_in && c->reused_in == py->nsample)
		return 1;
	return (c->born_ns == py->sample_ns || (py->window_ns && c->born_ns >= py->window_ns)) &&
	       churning(py);
}

void hm_python_resolve_window(hm_python *py, uint64_t since_ns)
{
	py->window_ns = since_ns;
}

void hm_python_resolve_check(hm_python *py, const uint64_t *pairs, int n)
{
	py->resolving = 1;
	resolve_prefetch(py, pairs, n);
	for (int i = 0; i < n; i++)
		code_get(py, pairs[2 * i] & ~HM_PYPAIR_ENTRY);
	resolve_done(py);
}

/* The pairs were read up to a second ago (a drain of the kernel's counts):
 * a code entry found holding another object than the one cached for its
 * address was reused in between, and this batch's frames there may have run
 * either object, so they are counted invalid (code_get marks it). */
int hm_python_resolve(hm_python *py, const uint64_t *pairs, int n, hm_pythread *th)
{
	py->resolving = 1;
	resolve_prefetch(py, pairs, n);
	int rc = resolve_pairs(py, pairs, n, th);
	resolve_done(py);
	return rc;
}

static int resolve_pairs(hm_python *py, const uint64_t *pairs, int n, hm_pythread *th)
{
	const hm_pylayout *L = py->layout;
	th->nframes = 0;
	th->valid = 0;
	th->truncated = 0;
	for (int i = 0; i < n; i++) {
		if (th->nframes >= py->max_depth) {
			th->truncated = 1;
			break;
		}
		uint64_t code = pairs[2 * i] & ~HM_PYPAIR_ENTRY, instr = pairs[2 * i + 1];
		int entry = (pairs[2 * i] & HM_PYPAIR_ENTRY) != 0;
		struct code_entry *c = code_get(py, code);
		if (!c || ambiguous(py, c))
			return -1;
		int64_t off;
		if (L->frame_model == HM_FRAMES_OBJECTS) {
			int64_t lasti = (int32_t)instr;
			off = L->linetable_kind == HM_LINETABLE_310 ? lasti * 2 : lasti;
			if (off >= (int64_t)c->code_bytes + 2 && c->code_bytes) {
				code_distrust(py, c);
				return -1;
			}
		} else {
			if (c->shim) {
				if (entry && th->nframes > 0)   /* as walk_iframes */
					th->frames[th->nframes - 1].entry = 1;
				continue;
			}
			off = (int64_t)(instr - (code + (uint64_t)L->co_code_adaptive));
			if (off < -2 || off > (int64_t)c->code_bytes) {
				code_distrust(py, c);
				return -1;
			}
		}
		if (push_frame(th, c, code_line(c, L->linetable_kind, off), 0))
			return -1;
		th->frames[th->nframes - 1].entry = entry;
	}
	th->valid = 1;
	return 0;
}

/* Every thread state of the main interpreter with its host thread id, for
 * walkers that find a thread's state by tid (sample/ebpf.c). */
int hm_python_thread_states(hm_python *py, uint64_t *interp, pid_t *tids, uint64_t *tstates, int cap)
{
	hm_pysample s = {0};
	int rc = hm_python_sample(py, &s, HM_SAMPLE_IDS_ONLY);
	*interp = py->ninterps > 0 ? py->interps[0] : py->interp;
	if (rc != HM_OK) {
		hm_pysample_free(&s);
		return -1;
	}
	int n = 0;
	for (int i = 0; i < s.nthreads && n < cap; i++) {
		if (!s.threads[i].tid)
			continue;
		tids[n] = s.threads[i].tid;
		tstates[n++] = s.threads[i].tstate;
	}
	hm_pysample_free(&s);
	return n;
}

/* ---- threads ----------------------------------------------------------- */

/* The cache entry of a thread state: one probe of a direct-mapped index
 * by address, else a scan (new thread, or an index collision), which
 * takes over the least recently seen entry when the thread is new. */
static struct thread_cache *thread_cache_get(hm_python *py, uint64_t tstate)
{
	uint32_t h = addr_hash(tstate) % HM_THREAD_INDEX;
	int hint = py->thread_index[h];
	if (hint > 0 && py->threads[hint - 1].tstate == tstate)
		return &py->threads[hint - 1];
	struct thread_cache *oldest = &py->threads[0];
	struct thread_cache *tc = NULL;
	for (int i = 0; i < HM_THREAD_CACHE && !tc; i++) {
		if (py->threads[i].tstate == tstate)
			tc = &py->threads[i];
		else if (py->threads[i].last_seen < oldest->last_seen)
			oldest = &py->threads[i];
	}
	if (!tc) {
		uint64_t *spec = oldest->spec;
		memset(oldest, 0, sizeof *oldest);
		oldest->spec = spec;
		oldest->tstate = tstate;
		tc = oldest;
	}
	py->thread_index[h] = (uint16_t)(tc - py->threads + 1);
	return tc;
}

/* OS tid of a thread state: native_thread_id (3.11+) or, before, the tid
 * stored in glibc's struct pthread that thread_id points to. */
static void thread_ids(hm_python *py, struct thread_cache *tc, const uint8_t *ts)
{
	const hm_pylayout *L = py->layout;
	uint64_t pth = L->ts_thread_id >= 0 ? hm_ld_u64(ts, L->ts_thread_id) : 0;
	pid_t ns_tid = 0;
	if (L->ts_native_thread_id >= 0)
		ns_tid = (pid_t)hm_ld_i64(ts, L->ts_native_thread_id);
	/* Before 3.11 the tid comes from glibc's struct pthread, which a new
	 * thread may reuse (same pthread_t, and its tstate at the same address
	 * as the thread that ended): read it again every 20 ms, so a reused
	 * one gets its own tid, not the ended thread's. */
	uint64_t now = L->ts_native_thread_id < 0 ? hm_mono_ns() : 0;
	if (tc->pthread_id == pth && tc->ns_tid &&
	    (L->ts_native_thread_id < 0 ? now - tc->tid_read_ns < 20000000ull : tc->ns_tid == ns_tid))
		return;
	tc->pthread_id = pth;
	tc->tid_read_ns = now;
	if (!ns_tid && pth && py->tid_offset >= 0) {
		int32_t v;
		if (hm_target_read(py->t, pth + (uint64_t)py->tid_offset, &v, 4) == HM_OK && v > 0)
			ns_tid = v;
	}
	tc->ns_tid = ns_tid;
	tc->host_tid = ns_tid ? hm_target_host_tid(py->t, ns_tid) : 0;
}

static hm_pythread *next_thread(hm_pysample *s)
{
	if (s->nthreads == s->threads_cap) {
		int nc = s->threads_cap ? s->threads_cap * 2 : 8;
		hm_pythread *nt = realloc(s->threads, (size_t)nc * sizeof *nt);
		if (!nt)
			return NULL;
		memset(nt + s->threads_cap, 0, (size_t)(nc - s->threads_cap) * sizeof *nt);
		s->threads = nt;
		s->threads_cap = nc;
	}
	hm_pythread *th = &s->threads[s->nthreads];
	th->nframes = 0;
	th->valid = 1;
	th->truncated = 0;
	th->holds_gil = 0;
	th->state = 0;
	th->name = NULL;
	th->in_gc = 0;
	return th;
}

/* Read a thread state plus, speculatively and in the same call, what its
 * walk will need at last sample's addresses: the 3.11/3.12 cframe, the live
 * part of the data-stack chunk (3.11+) or the frame objects (<=3.10).
 * `pre` regions (the interpreter's thread list head, the GIL) ride along, and
 * so do the words that re-check the thread's last OpenTelemetry span.
 * Fills py->tsbuf, the first chunk copy and the frame prefetch. Returns the
 * current frame address (0: no Python frame) or (uint64_t)-1 on a failed
 * read. */
static uint64_t read_thread(hm_python *py, struct thread_cache *tc, const hm_iov *pre, int npre,
			    int span_words)
{
	const hm_pylayout *L = py->layout;
	hm_iov iov[9 + 2 * OTEL_SPEC_IOV + HM_SPEC_FRAMES];
	int n = 0;
	uint64_t cframe_buf[HM_SPEC_CFRAMES] = {0};
	for (int i = 0; i < npre; i++)
		iov[n++] = pre[i];
	/* What re-checks the thread's OpenTelemetry span (otel.c), just
	 * before the thread state: its context version (read there) and these
	 * words, both read again at the end of this call, say whether the
	 * span changed at any time after these words were read and before the
	 * stack was. */
	int nspan = py->otel ? otel_spec_iov(py->otel, tc->tstate, iov + n,
					     span_words ? OTEL_SPEC_IOV : 0) : 0;
	n += nspan;
	iov[n++] = (hm_iov){tc->tstate, py->tsbuf, py->ts_len};
	/* The current frame of the cframes the thread had lately (a thread
	 * that enters and leaves a nested evaluation loop, as a `with` block's
	 * __enter__ does, moves between a few), so that the current frame
	 * comes with the thread state in one read as the stack does. */
	int spec_cframe = 0;
	if (L->ts_cframe >= 0)
		for (; spec_cframe < HM_SPEC_CFRAMES && tc->cframes[spec_cframe]; spec_cframe++)
			iov[n++] = (hm_iov){tc->cframes[spec_cframe] + (uint64_t)L->cframe_current_frame,
					    &cframe_buf[spec_cframe], 8};
	int spec_chunk = L->frame_model == HM_FRAMES_INTERP && tc->chunk && tc->chunk_len &&
			 chunk_reserve(&py->chunks[0], tc->chunk_len) == 0;
	if (spec_chunk)
		iov[n++] = (hm_iov){tc->chunk, py->chunks[0].buf, tc->chunk_len};
	int nspec = tc->nspec;
	for (int i = 0; i < nspec; i++) {
		py->spec_addr[i] = tc->spec[i];
		iov[n++] = (hm_iov){tc->spec[i], py->specbuf + (size_t)i * py->spec_stride,
				    L->frame_model == HM_FRAMES_OBJECTS ? py->fo_len : py->if_len};
	}
	/* Last, the thread's context version again: a context switch (an
	 * asyncio task's step entering its context) after the span's regions
	 * were read, before the stack was, shows as a version that moved
	 * since the thread state was read; */
	uint64_t ver_end = 0;
	int ver_at = nspan ? otel_ver_offset(py->otel) : -1;
	if (ver_at >= 0 && (size_t)ver_at + 8 <= py->ts_len)
		iov[n++] = (hm_iov){tc->tstate + (uint64_t)ver_at, &ver_end, 8};
	else
		ver_at = -1;
	/* and the span's words again: a span that started or ended in the
	 * same context (a variable's set or reset, which leaves the version
	 * as it was) shows there. */
	int nend = nspan ? otel_spec_end_iov(py->otel, iov + n, OTEL_SPEC_IOV) : 0;
	n += nend;
	py->nspec_loaded = 0;
	if (hm_target_readv(py->t, iov, n) == HM_OK) {
		py->nspec_loaded = nspec;
		if (nspan) {
			otel_spec_loaded(py->otel);
			if (ver_at >= 0 && hm_ld_u64(py->tsbuf, (size_t)ver_at) != ver_end)
				otel_spec_drop(py->otel);
			else if (nend)
				otel_spec_end_check(py->otel);
		}
	} else {
		/* Something speculative was unmapped (or the target is gone):
		 * read the required parts alone (and forget the cframes: one
		 * may be of a C stack that is gone). */
		spec_cframe = spec_chunk = 0;
		memset(tc->cframes, 0, sizeof tc->cframes);
		if (npre && hm_target_readv(py->t, pre, npre) != HM_OK)
			return (uint64_t)-1;
		if (hm_target_read(py->t, tc->tstate, py->tsbuf, py->ts_len) != HM_OK)
			return (uint64_t)-1;
	}
	const uint8_t *ts = py->tsbuf;
	uint64_t frame;
	int late = 0;
	if (L->ts_cframe >= 0) {
		uint64_t cframe = hm_ld_u64(ts, L->ts_cframe);
		if (!cframe)
			return 0;
		int k = 0;
		while (k < spec_cframe && tc->cframes[k] != cframe)
			k++;
		if (k < spec_cframe) {
			frame = cframe_buf[k];
		} else {
			if (hm_target_read(py->t, cframe + (uint64_t)L->cframe_current_frame, &frame, 8) != HM_OK)
				return (uint64_t)-1;
			late = 1;
		}
		/* Most recent first: it moves to the front from where it was,
		 * else from the first free slot, else the oldest drops out. */
		int j = 0;
		while (j < HM_SPEC_CFRAMES - 1 && tc->cframes[j] && tc->cframes[j] != cframe)
			j++;
		memmove(&tc->cframes[1], &tc->cframes[0], (size_t)j * sizeof tc->cframes[0]);
		tc->cframes[0] = cframe;
		tc->cframe = cframe;
	} else {
		frame = hm_ld_u64(ts, L->ts_frame);
	}
	py->nchunks = 0;
	if (L->frame_model == HM_FRAMES_INTERP && L->ts_datastack_chunk >= 0) {
		uint64_t chunk = hm_ld_u64(ts, L->ts_datastack_chunk);
		uint64_t top = hm_ld_u64(ts, L->ts_datastack_top);
		if (chunk && top > chunk && top - chunk <= MAX_CHUNK_READ) {
			uint64_t need = top - chunk;
			if (spec_chunk && chunk == tc->chunk && need <= tc->chunk_len) {
				py->chunks[0].addr = chunk;
				py->chunks[0].len = need;
				py->nchunks = 1;
			} else {
				/* Read a little beyond top so that a growing
				 * stack still fits next time. */
				uint64_t want = need + 1024;
				late = 1;
				if (chunk_fill(py, 0, chunk, want) == 0 || chunk_fill(py, 0, chunk, need) == 0) {
					tc->chunk = chunk;
					tc->chunk_len = py->chunks[0].len;
					py->chunks[0].len = need;
					py->nchunks = 1;
				}
			}
		}
	}
	/* The current frame or the data stack came in a later read: the span
	 * words read with the thread state do not prove the span of this
	 * stack (otel_thread_span reads the thread again if it has one). */
	if (late && nspan)
		otel_spec_drop(py->otel);
	return frame;
}

/* Re-read the list of interpreters (rarely changes: refreshed every 100 ms)
 * and, on 3.12, each one's GIL pointer. */
static int refresh_interps(hm_python *py)
{
	const hm_pylayout *L = py->layout;
	uint64_t interp = 0;
	uint64_t at = py->runtime ? py->runtime + (uint64_t)L->rt_interpreters_head : py->interp_head_sym;
	if (!at || hm_target_read(py->t, at, &interp, 8) != HM_OK)
		return -1;
	int n = 0;
	while (interp && n < HM_MAX_INTERPS) {
		if (interp & 7)
			return -1;
		py->interps[n] = interp;
		py->gil_ptrs[n] = 0;
		if (L->is_gil_ptr >= 0 &&
		    hm_target_read(py->t, interp + (uint64_t)L->is_gil_ptr, &py->gil_ptrs[n], 8) != HM_OK)
			return -1;
		n++;
		if (hm_target_read(py->t, interp + (uint64_t)L->is_next, &interp, 8) != HM_OK)
			return -1;
	}
	if (n != py->ninterps)
		memset(py->heads, 0, sizeof py->heads);
	py->ninterps = n;
	py->interps_ns = hm_mono_ns();
	return 0;
}

/* The regions that tell who holds the GIL of interpreter i. */
struct gil_read {
	uint64_t holder;
	int32_t locked;
};

static int gil_iov(hm_python *py, int i, struct gil_read *g, hm_iov *iov)
{
	const hm_pylayout *L = py->layout;
	g->holder = 0;
	g->locked = 1;
	if (py->runtime && L->rt_tstate_current >= 0) {
		iov[0] = (hm_iov){py->runtime + (uint64_t)L->rt_tstate_current, &g->holder, 8};
		return 1;
	}
	if (py->tstate_current_sym) {
		iov[0] = (hm_iov){py->tstate_current_sym, &g->holder, 8};
		return 1;
	}
	uint64_t gil = py->gil_ptrs[i];
	if (!gil && L->is_gil_struct >= 0)
		gil = py->interps[i] + (uint64_t)L->is_gil_struct;
	if (!gil || L->gil_last_holder < 0)
		return 0;
	iov[0] = (hm_iov){gil + (uint64_t)L->gil_last_holder, &g->holder, 8};
	if (L->gil_locked < 0)
		return 1;
	iov[1] = (hm_iov){gil + (uint64_t)L->gil_locked, &g->locked, 4};
	return 2;
}

int hm_python_ready(hm_python *py)
{
	const hm_pylayout *L = py->layout;
	uint64_t head = 0;
	if (refresh_interps(py) || !py->ninterps ||
	    hm_target_read(py->t, py->interps[0] + (uint64_t)L->is_threads_head, &head, 8) != HM_OK)
		return 0;
	return head != 0;
}

/* On CPU or not (HM_SAMPLE_ONCPU). A runnable thread is not necessarily
 * running: one that wakes for microseconds 200 times a second is runnable,
 * waiting for the GIL or a CPU, far more often than it runs. So the decision
 * follows the CPU time the kernel charged to each thread (schedstat's
 * sum_exec_runtime): a thread earns the CPU time it used since it was last
 * read as credit and is counted in a sample when its credit reaches half
 * the mean interval between samples, which the count then uses up. Its
 * samples add up to its CPU time, whether it ran in one piece or in many
 * short bursts. The credit is kept within one interval plus CPU_SLACK_NS
 * either way: a running thread's CPU time is brought up to date at
 * scheduler ticks (up to 10 ms apart), and a thread must not be counted
 * long after it stopped, nor left out long after it started, for time
 * counted or run long before.
 *
 * Reading the CPU time costs as much as the rest of a busy thread's sample.
 * A thread that holds the GIL runs Python code, as much as the CPU it shares
 * with other work allows, unless a C extension blocks while holding it. So
 * a thread that held the GIL at this sample and the last one is read only
 * every JUDGE_NS while it keeps the GIL, and in between earns credit at the
 * rate it ran over the last such window (corrected by its next read). One
 * that ran less than a quarter of a window and is blocked now (a C
 * extension that blocks with the GIL) is read on every sample for
 * DISTRUST_NS.
 *
 * The credit may also hold the CPU time of a longer interval just ended
 * (the sampler was late). A thread seen for the first time is counted if
 * /proc/PID/task/TID/syscall says it is runnable; without the CPU time
 * figure (an old kernel, a tid that is not the process's) every thread is,
 * except the GIL holder, taken as running but for a spot check every
 * GIL_SPOT_CHECK-th time (once the kernel says a holder is blocked, every
 * thread is asked for DISTRUST_NS). */
#define GIL_SPOT_CHECK 16
#define DISTRUST_NS 2000000000ull
#define JUDGE_NS 50000000ull
#define CPU_SLACK_NS 10000000ll

static char oncpu_state(hm_python *py, const hm_pythread *th)
{
	if (th->holds_gil && py->sample_ns >= py->gil_distrust_until &&
	    py->gil_checks++ % GIL_SPOT_CHECK)
		return 'R';
	char st = hm_target_thread_oncpu(py->t, th->tid);
	if (th->holds_gil && st && st != 'R')
		py->gil_distrust_until = py->sample_ns + DISTRUST_NS;
	return st;
}

static void credit_add(struct thread_cache *tc, int64_t ns, int64_t bound)
{
	tc->credit_ns += ns;
	if (tc->credit_ns > bound)
		tc->credit_ns = bound;
	else if (tc->credit_ns < -bound)
		tc->credit_ns = -bound;
}

static int decide_oncpu(hm_python *py, struct thread_cache *tc, const hm_pythread *th)
{
	int64_t dt = (int64_t)py->oncpu_avg;
	int64_t bound = (py->oncpu_gap > py->oncpu_avg ? (int64_t)py->oncpu_gap : dt) + CPU_SLACK_NS;
	uint64_t now = py->sample_ns, cpu;
	if (tc->cpu_tid != th->tid) {
		tc->cpu_tid = th->tid;
		tc->cpu_ns = 0;
		tc->trusted = 0;
		tc->distrust_until = 0;
	}
	/* Held the GIL at the last sample too. */
	int held = th->holds_gil && tc->held_seq && tc->held_seq + 1 == py->oncpu_seq;
	if (th->holds_gil)
		tc->held_seq = py->oncpu_seq;
	if (held && tc->trusted && now - tc->judge_ns < JUDGE_NS) {
		/* Earns at the rate it ran over its last window. */
		int64_t est = (int64_t)(((uint64_t)dt * tc->rate) >> 10);
		credit_add(tc, est, bound);
		tc->est_ns += est;
		goto decide;
	}
	/* No figure: no schedstat, or the thread is not among the process's
	 * (gone, or a tid left stale by a fork, as in uWSGI's workers). */
	if (hm_target_thread_cputime(py->t, th->tid, &cpu) <= 0)
		return oncpu_state(py, th) == 'R';
	if (!tc->cpu_ns) {
		tc->cpu_ns = tc->judge_cpu = cpu;
		tc->judge_ns = now;
		tc->credit_ns = 0;
		tc->est_ns = 0;
		return hm_target_thread_oncpu(py->t, th->tid) == 'R';
	}
	uint64_t used = cpu > tc->cpu_ns ? cpu - tc->cpu_ns : 0;
	tc->cpu_ns = cpu;
	if (!held || now - tc->judge_ns >= JUDGE_NS) {
		/* Only a GIL held throughout is judged. */
		uint64_t ran = cpu > tc->judge_cpu ? cpu - tc->judge_cpu : 0, span = now - tc->judge_ns;
		if (held) {
			tc->rate = ran >= span ? 1024 : (uint32_t)((ran << 10) / span);
			/* Little CPU time and not runnable: blocked with the GIL
			 * (runnable: it waits for a CPU, which the rate says). */
			if (tc->rate < 256 && hm_target_thread_oncpu(py->t, th->tid) != 'R') {
				tc->trusted = 0;
				tc->distrust_until = now + DISTRUST_NS;
			} else if (now >= tc->distrust_until) {
				tc->trusted = 1;
			}
		}
		tc->judge_cpu = cpu;
		tc->judge_ns = now;
	}
	/* What it used, less what it was credited with on the estimate. */
	credit_add(tc, (int64_t)used - (int64_t)tc->est_ns, bound);
	tc->est_ns = 0;
decide:
	/* The credit says how often to count the thread, not where: the
	 * stack is the one of this instant. A thread blocked now (a sleep, a
	 * wait, a select between two requests) ran its CPU time elsewhere:
	 * counted now, that time went to its waiting line (a thread working
	 * and sleeping in turns got 50-87% of its samples in the sleep). So
	 * it is counted at a later sample that finds it running, its credit
	 * kept. A running thread's own CPU time is not in its figure yet
	 * (the kernel brings it up to date at ticks and switches): at an
	 * instant it runs, it may borrow up to half an interval, which its
	 * next figures pay back. The GIL holder runs (the distrust above
	 * catches one that blocks holding it); any other thread is asked. */
	if (tc->credit_ns * 2 < -dt)
		return 0;
	if (!th->holds_gil && hm_target_thread_oncpu(py->t, th->tid) != 'R')
		return 0;
	tc->credit_ns -= dt;
	return 1;
}

/* Decided once per sample: a walk retried after a torn read asks again. */
static int oncpu(hm_python *py, struct thread_cache *tc, const hm_pythread *th)
{
	if (tc->decided_seq != py->oncpu_seq || tc->cpu_tid != th->tid) {
		tc->decided = decide_oncpu(py, tc, th);
		tc->decided_seq = py->oncpu_seq;
	}
	return tc->decided;
}

/* Walk one thread whose state was (or is now) read; 0 ok, -1 invalid. */
static int walk_thread(hm_python *py, struct thread_cache *tc, hm_pythread *th, uint64_t frame,
		       unsigned flags)
{
	const hm_pylayout *L = py->layout;
	thread_ids(py, tc, py->tsbuf);
	th->pthread_id = tc->pthread_id;
	th->tid = tc->host_tid;
	if (flags & HM_SAMPLE_IDS_ONLY)
		return 0;
	if ((flags & HM_SAMPLE_STATE) && th->tid)
		th->state = hm_target_thread_state(py->t, th->tid);
	if (!frame || ((flags & HM_SAMPLE_GIL) && !th->holds_gil))
		return 0;
	if (flags & HM_SAMPLE_ONCPU) {
		int on = th->tid && oncpu(py, tc, th);
		if (!(flags & HM_SAMPLE_STATE))
			th->state = on ? 'R' : th->tid ? 'S' : 0;
		if (!on)
			return 0;
	}
	th->nframes = 0;
	th->truncated = 0;
	py->walk_late = 0;
	code_prefetch(py, frame);
	int rc = L->frame_model == HM_FRAMES_OBJECTS ? walk_frame_objects(py, frame, th, tc)
						     : walk_iframes(py, frame, th, tc);
	py->ncode_pre = 0;
	return rc;
}

/* Was tstate already visited in this interpreter's list?  Lists are short;
 * for long ones compare against a sorted copy. */
static int seen_before(const hm_pysample *s, int first, uint64_t ts)
{
	for (int i = first; i < s->nthreads; i++)
		if (s->threads[i].tstate == ts)
			return 1;
	return 0;
}

/* What a sample reads besides each thread's own state. Every region added
 * to the one process_vm_readv of the first thread costs a page pin in the
 * kernel (~0.5-1 us here), so each is read only when needed:
 *  - the interpreter's thread-list head: new threads are pushed at the head,
 *    which sets the old head's `prev`, and a freed head no longer points
 *    back at its interpreter; either shows in the head thread state read
 *    anyway, and the head itself is re-read then and every HEAD_REFRESH_NS;
 *  - who holds the GIL: 3.12+ keep it as a bit of each thread state's
 *    _status; older versions read the GIL (or the current thread state);
 *  - the collector's flag (<gc>): every GC_SPOT_CHECK-th sample, and every
 *    sample for GC_WATCH_NS after a collection was seen running. */
#define HEAD_REFRESH_NS 100000000ull
#define GC_SPOT_CHECK 8
#define GC_WATCH_NS 5000000000ull

struct interp_read {
	uint64_t head;
	int32_t collecting;
	struct gil_read gil;
	hm_iov pre[4];
	int npre;
	int status_gil;          /* holder from each thread's _status bit */
};

static void plan_interp_read(hm_python *py, int ii, unsigned flags, int want_head, int want_gc,
			     struct interp_read *r)
{
	const hm_pylayout *L = py->layout;
	r->head = 0;
	r->collecting = 0;
	r->npre = 0;
	r->gil.holder = 0;
	r->gil.locked = 0;
	if (want_head)
		r->pre[r->npre++] = (hm_iov){py->interps[ii] + (uint64_t)L->is_threads_head, &r->head, 8};
	uint64_t gc_at = L->is_gc_collecting >= 0 ? py->interps[ii] + (uint64_t)L->is_gc_collecting
		: L->rt_gc_collecting >= 0 && py->runtime ? py->runtime + (uint64_t)L->rt_gc_collecting : 0;
	if (want_gc && gc_at)
		r->pre[r->npre++] = (hm_iov){gc_at, &r->collecting, 4};
	else
		want_gc = 0;
	r->status_gil = L->ts_status >= 0 && L->ts_gil_bit >= 0;
	if (!r->status_gil && ((flags & HM_SAMPLE_WANT_GIL) || want_gc))
		r->npre += gil_iov(py, ii, &r->gil, r->pre + r->npre);
}

/* Does the thread state just read into tsbuf still head interpreter ii's
 * list? */
static int still_head(const hm_python *py, int ii)
{
	const hm_pylayout *L = py->layout;
	if (L->ts_prev >= 0 && hm_ld_u64(py->tsbuf, L->ts_prev) != 0)
		return 0;
	return hm_ld_u64(py->tsbuf, L->ts_interp) == py->interps[ii];
}

static int holds_gil(const hm_python *py, const struct interp_read *r, uint64_t ts)
{
	const hm_pylayout *L = py->layout;
	if (r->status_gil)
		return (int)(((uint32_t)hm_ld_i32(py->tsbuf, L->ts_status) >> L->ts_gil_bit) & 1);
	return r->gil.locked && r->gil.holder == ts;
}

/* Given th's tid and holds_gil: walked (see will_walk)? */
static int walk_decided(hm_python *py, struct thread_cache *tc, const hm_pythread *th,
			unsigned flags)
{
	if ((flags & HM_SAMPLE_GIL) && !th->holds_gil)
		return 0;
	return !(flags & HM_SAMPLE_ONCPU) || (th->tid && oncpu(py, tc, th));
}

/* Would walk_thread walk the thread just read (at ts, in py->tsbuf)? Not
 * one off CPU while only those are sampled, nor one without the GIL while
 * only its holder is: no span is read for a stack not taken. */
static int will_walk(hm_python *py, struct thread_cache *tc, hm_pythread *th,
		     const struct interp_read *r, uint64_t ts, unsigned flags)
{
	if (!(flags & (HM_SAMPLE_ONCPU | HM_SAMPLE_GIL)))
		return 1;
	thread_ids(py, tc, py->tsbuf);
	th->tid = tc->host_tid;
	th->holds_gil = (flags & HM_SAMPLE_WANT_GIL) && holds_gil(py, r, ts);
	return walk_decided(py, tc, th, flags);
}

/* will_walk's answer before the thread is read, where it can be known
 * then: the GIL holder came with the interpreter's read (not from each
 * thread state's status bit, 3.12+) and the thread's tid is known from its
 * last sample. A thread that will not be walked (an idle pool worker while
 * only threads on CPU are sampled) then reads no span words with its
 * state: in the FastAPI service at 100 Hz most threads read in a sample
 * are such workers, each with a few regions of words before its stack and
 * the same again after it. The on-CPU decision is made once per sample
 * (oncpu caches it), with the same inputs as will_walk's. 1: will walk, or
 * not known. */
static int walk_foreseen(hm_python *py, struct thread_cache *tc, const struct interp_read *r,
			 uint64_t ts, unsigned flags)
{
	if (!(flags & (HM_SAMPLE_ONCPU | HM_SAMPLE_GIL)) || r->status_gil || !tc->host_tid)
		return 1;
	/* Only for a thread decided in the last sample too (one with a
	 * Python frame then): one without a frame is not decided, and its
	 * CPU time since its last decision goes to its next one, as before. */
	if ((flags & HM_SAMPLE_ONCPU) && tc->decided_seq + 1 != py->oncpu_seq)
		return 1;
	hm_pythread th = {.tid = tc->host_tid,
			  .holds_gil = (flags & HM_SAMPLE_WANT_GIL) && holds_gil(py, r, ts)};
	return walk_decided(py, tc, &th, flags);
}

int hm_python_sample(hm_python *py, hm_pysample *s, unsigned flags)
{
	const hm_pylayout *L = py->layout;
	s->nthreads = 0;
	s->ninvalid = 0;
	s->nspan_torn = 0;
	py->nsample++;
	uint64_t t = hm_mono_ns();
	if (py->sample_ns) {
		/* Exponential average of the sampling interval (1/8 weight). */
		uint64_t gap = t - py->sample_ns;
		py->interval_ns = py->interval_ns ? py->interval_ns - py->interval_ns / 8 + gap / 8 : gap;
	}
	py->sample_ns = t;
	bury_dead_codes(py);
	if (py->ncodes > HM_CODE_CACHE_MAX)
		clear_codes(py);
	if (flags & (HM_SAMPLE_GIL | HM_SAMPLE_ONCPU))
		flags |= HM_SAMPLE_WANT_GIL;
	if (flags & HM_SAMPLE_ONCPU) {
		/* The mean interval between on-CPU samples: of all so far
		 * for the first 32, then a moving average (a gap after a
		 * pause or a stall weighs at most 4 intervals). */
		uint64_t gap = py->oncpu_ns ? t - py->oncpu_ns : 0, avg = py->oncpu_avg;
		if (gap) {
			uint64_t w = py->oncpu_seq < 32 ? py->oncpu_seq : 32;
			if (avg && gap > 4 * avg)
				gap = 4 * avg;
			avg = avg ? avg - avg / w + gap / w : gap;
		}
		py->oncpu_avg = avg;
		py->oncpu_gap = gap;
		py->oncpu_ns = t;
		py->oncpu_seq++;
	}
	if ((!py->ninterps || t - py->interps_ns > 100000000ull) && refresh_interps(py))
		return hm_error(HM_EIO, "cannot read the interpreter list");
	if (!py->ninterps)
		return hm_error(HM_EIO, "no interpreter");
	int want_gc = t < py->gc_watch_until || py->gc_checks++ % GC_SPOT_CHECK == 0;

	for (int ii = 0; ii < py->ninterps; ii++) {
		struct interp_read r;
		uint64_t f0 = (uint64_t)-1;
		struct thread_cache *tc0 = NULL;
		int want_head = !py->heads[ii] || L->ts_prev < 0 ||
				t - py->heads_ns[ii] > HEAD_REFRESH_NS;
		for (;;) {
			plan_interp_read(py, ii, flags, want_head, want_gc, &r);
			/* Speculate that the list head is last sample's head. */
			if (py->heads[ii]) {
				tc0 = thread_cache_get(py, py->heads[ii]);
				f0 = read_thread(py, tc0, r.pre, r.npre, 1);
			} else if (hm_target_readv(py->t, r.pre, r.npre) != HM_OK) {
				return hm_error(HM_EIO, "cannot read interpreter state");
			}
			if (f0 == (uint64_t)-1 && tc0 && r.npre && hm_target_readv(py->t, r.pre, r.npre) != HM_OK)
				return hm_error(HM_EIO, "cannot read interpreter state");
			if (want_head)
				break;
			if (f0 != (uint64_t)-1 && still_head(py, ii)) {
				r.head = py->heads[ii];
				break;
			}
			want_head = 1;   /* the list changed at its head: read it */
		}
		if (want_head) {
			py->heads[ii] = r.head;
			py->heads_ns[ii] = t;
		}
		if (r.collecting)
			py->gc_watch_until = t + GC_WATCH_NS;

		uint64_t ts = r.head;
		int first = s->nthreads;
		for (int nt = 0; ts && nt < MAX_THREADS; nt++) {
			if ((ts & 7) || seen_before(s, first, ts)) {
				/* A torn read linked the list back on itself. */
				s->ninvalid++;
				break;
			}
			struct thread_cache *tc = thread_cache_get(py, ts);
			tc->last_seen = py->nsample;
			hm_pythread *th = next_thread(s);
			if (!th)
				return hm_error(HM_ENOMEM, "out of memory");
			th->tstate = ts;
			int ok = -1, torn = 0;
			hm_otel *otel = python_otel(py);
			/* (no words to leave out before the SDK is found) */
			int words = !otel_found(otel) || walk_foreseen(py, tc, &r, ts, flags);
			for (int attempt = 0; attempt < 3 && ok; attempt++) {
				uint64_t f;
				if (attempt == 0 && nt == 0 && tc0 && ts == tc0->tstate &&
				    f0 != (uint64_t)-1)
					f = f0;   /* prefetched with the list head */
				else
					f = read_thread(py, tc, NULL, 0, words || attempt > 0);
				/* The span this read proves, decided before the
				 * walk: a span changed since the thread's last
				 * sample is found only now, so the thread is read
				 * again with the words that prove it, and the
				 * stack walked is of that read (twice at most: an
				 * event loop may switch contexts in between). */
				th->span.trace_hi = th->span.trace_lo = th->span.span_id = 0;
				torn = 0;
				for (int k = 0; otel && f && f != (uint64_t)-1 &&
						will_walk(py, tc, th, &r, ts, flags); k++) {
					int rc = otel_thread_span(otel, th, py->tsbuf, py->ts_len, k == 2);
					torn = rc == 2;
					if (rc != 1)
						break;
					f = read_thread(py, tc, NULL, 0, 1);
				}
				if (f == (uint64_t)-1)
					continue;
				int held = holds_gil(py, &r, ts);
				th->holds_gil = (flags & HM_SAMPLE_WANT_GIL) && held;
				th->in_gc = r.collecting && held;
				ok = walk_thread(py, tc, th, f, flags);
				/* A frame read after the thread state (the stack
				 * moved since the last sample, so it was not
				 * prefetched) is of a later moment than the span
				 * that read proved: read the thread again, with
				 * the frames just walked prefetched; a span still
				 * not proven for its stack is dropped. */
				if (!ok && py->walk_late && (th->span.trace_hi || th->span.trace_lo)) {
					if (attempt < 2) {
						ok = -1;
						continue;
					}
					th->span.trace_hi = th->span.trace_lo = th->span.span_id = 0;
					th->span.name[0] = th->span.root[0] = 0;
					torn = 1;
				}
			}
			if (!ok && th->nframes && otel) {
				s->nspan_torn += torn;
				otel_thread_root(otel, th);
			} else {
				th->span.trace_hi = th->span.trace_lo = th->span.span_id = 0;
			}
			uint64_t next_ts = hm_ld_u64(py->tsbuf, L->ts_next);
			if (ok) {
				th->valid = 0;
				th->nframes = 0;
				s->ninvalid++;
				if (hm_target_read(py->t, ts + (uint64_t)L->ts_next, &next_ts, 8) != HM_OK)
					next_ts = 0;
			}
			s->nthreads++;
			ts = next_ts;
		}
	}
	return HM_OK;
}

int hm_python_walk_tstate(hm_python *py, uint64_t tstate, hm_pythread *th)
{
	uint64_t t = hm_mono_ns();
	if (py->sample_ns) {
		uint64_t gap = t - py->sample_ns;
		py->interval_ns = py->interval_ns ? py->interval_ns - py->interval_ns / 8 + gap / 8 : gap;
	}
	py->sample_ns = t;
	py->nsample++;
	bury_dead_codes(py);
	if (py->ncodes > HM_CODE_CACHE_MAX)
		clear_codes(py);
	th->tstate = tstate;
	th->nframes = 0;
	th->valid = 0;
	th->truncated = 0;
	th->holds_gil = 0;
	th->state = 0;
	th->name = NULL;
	th->in_gc = 0;
	if (!tstate || (tstate & 7))
		return hm_error(HM_EIO, "no thread state");
	struct thread_cache *tc = thread_cache_get(py, tstate);
	tc->last_seen = py->nsample;
	for (int attempt = 0; attempt < 2; attempt++) {
		uint64_t f = read_thread(py, tc, NULL, 0, 1);
		if (f == (uint64_t)-1)
			continue;
		th->nframes = 0;
		if (walk_thread(py, tc, th, f, 0) == 0) {
			th->valid = 1;
			return HM_OK;
		}
	}
	th->nframes = 0;
	return hm_error(HM_EIO, "torn or implausible frame chain");
}

void hm_pysample_free(hm_pysample *s)
{
	for (int i = 0; i < s->threads_cap; i++)
		free(s->threads[i].frames);
	free(s->threads);
	memset(s, 0, sizeof *s);
}
