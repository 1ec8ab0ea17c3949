/* pyasync.c - reading a target's asyncio tasks and their await chains
 * (python/pyasync.h).
 *
 * Finding tasks: sys.modules['asyncio.tasks'] holds the task registry the C
 * _asyncio module shares: _all_tasks (a weakref.WeakSet, 3.8-3.11), or
 * _scheduled_tasks (WeakSet) and _eager_tasks (set) on 3.12/3.13. A WeakSet's
 * `data` attribute is a set of weak references; each live one's wr_object is
 * a task. The containers' addresses, once found, are cached for 10 s; a
 * lookup that finds none (asyncio not imported yet) is retried after 100 ms,
 * then 200 ms, 400 ms, ... up to 10 s, so tasks show up soon after a program
 * starts asyncio late.
 *
 * A task: the C Task struct (Modules/_asynciomodule.c) is not in any
 * installed header, so rather than per-version offsets the coroutine field is
 * found at run time: the first pointer in the object's first words whose type
 * is PyCoro_Type or PyGen_Type and which is followed by the task name (a str,
 * or on 3.12+ an int that get_name() turns into "Task-N"); task_coro and
 * task_name are adjacent in every version. That offset is learnt once and
 * re-checked (by type) on every task. Pure-Python tasks (asyncio.tasks.Task
 * when _asyncio is missing) are read through their _coro and _name
 * attributes.
 *
 * The await chain follows CPython's own rule for "what does this suspended
 * coroutine wait on" (the gen_yf logic): only when the frame is suspended in
 * an await/yield from - <=3.9: f_stacktop set and the next instruction is
 * YIELD_FROM; 3.10: f_state suspended and the next instruction is YIELD_FROM;
 * 3.11/3.12: suspended and the next instruction is RESUME with oparg >= 2;
 * 3.13: gi_frame_state is FRAME_SUSPENDED_YIELD_FROM - the awaited object is
 * the top of the frame's value stack (f_stacktop[-1], f_valuestack
 * [f_stackdepth-1], or localsplus[stacktop-1]). The chain continues through
 * coroutines and generators and stops at anything else (a Future).
 * Offsets, frame-state values and opcodes come from lib/python/layouts/async_py*.c
 * (generated from headers by tools/gen_async_layouts.sh).
 *
 * A task's contextvars.Context (task_context, right after task_name; or
 * _context) gives its OpenTelemetry span (hm_python_context_span) when
 * tracing is on. hm_pyasync_contexts gives the tasks' contexts alone (the
 * span reader's look for a trace's local root), in a read per step over
 * all the tasks rather than a few per task.
 *
 * Code objects come from the walker's cache (walker_code), so a coroutine's
 * frame here carries the same hm_pycode as that function on a thread stack. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "base/util.h"
#include "proc/elf.h"
#include "python/layouts/async_layouts.h"
#include "python/pyasync.h"
#include "python/pyinternal.h"
#include "python/pyobj.h"

#define MAX_TASKS 4096           /* tasks read per call */
#define MAX_CHAIN 256            /* coroutines followed per task */
#define SCAN_WORDS 40            /* words of a Task searched for its coroutine */
#define LOOKUP_NS 10000000000ull /* re-find the task containers every 10 s */
#define RETRY_MIN_NS 100000000ull /* first retry of an empty lookup: 100 ms */
#define TYPE_CACHE 32

enum task_kind { TK_UNKNOWN = 0, TK_C = 1, TK_PY = 2, TK_NOT = 3 };

struct hm_pyasync {
	hm_python *py;
	const hm_pylayout *L;
	const hm_pyasync_layout *A;
	hm_pyobj_reader r;
	uint64_t coro_type, gen_type, weakref_type;
	/* task containers (WeakSet or set objects), refreshed every 10 s */
	uint64_t containers[2];
	int ncontainers;
	/* each container's set (itself, or a WeakSet's `data`) and its type,
	 * found at the first gather after a lookup; 0 unknown */
	uint64_t sets[2], set_types[2];
	uint64_t containers_ns;      /* time of the last lookup, 0 none */
	uint64_t lookup_ns;          /* its validity: LOOKUP_NS, or the back-off
				      * of an empty one */
	uint64_t backoff_ns;         /* current back-off, 0 after a positive one */
	int coro_off;                /* learnt offset of task_coro, 0 unknown */
	struct { uint64_t type; int kind; } types[TYPE_CACHE];
	int ntypes;
	uint64_t *found;             /* task addresses of one call */
	int nfound;
	size_t fo_len, if_len;
};

static int rd(hm_pyasync *a, uint64_t addr, void *buf, size_t len)
{
	if (!addr || addr + len < addr)
		return -1;
	return hm_target_read(a->py->t, addr, buf, len) == HM_OK ? 0 : -1;
}

static int rd_ptr(hm_pyasync *a, uint64_t addr, uint64_t *v)
{
	return rd(a, addr, v, 8);
}

static uint64_t type_of(hm_pyasync *a, uint64_t obj)
{
	uint64_t t;
	if (!obj || (obj & 7) || rd_ptr(a, obj + (uint64_t)a->L->ob_type, &t) || (t & 7))
		return 0;
	return t;
}

static const hm_pyasync_layout *async_layout(int major, int minor)
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

int hm_pyasync_open(hm_python *py, hm_pyasync **out)
{
	const hm_pylayout *L = hm_python_layout(py);
	const hm_pyasync_layout *A = async_layout(L->major, L->minor);
	*out = NULL;
	if (!A || L->free_threaded)
		return hm_error(HM_EVERSION, "--async supports CPython 3.8-3.13 (target runs %s)",
				hm_python_version(py));
	hm_pyasync *a = calloc(1, sizeof *a);
	if (!a)
		return hm_error(HM_ENOMEM, "out of memory");
	a->py = py;
	a->L = L;
	a->A = A;
	int rc = hm_pyobj_reader_init(&a->r, py);
	if (rc != HM_OK) {
		free(a);
		return rc;
	}
	/* Type objects the chain and the task sets are checked against. */
	char *p = hm_target_path(py->t, py->mod_path);
	hm_elf *e = p ? hm_elf_open(p) : NULL;
	free(p);
	if (!e) {
		free(a);
		return hm_errcode() ? hm_errcode() : HM_ENOMEM;
	}
	uint64_t addr, sz;
	if (hm_elf_symbol(e, "PyCoro_Type", &addr, &sz) == HM_OK)
		a->coro_type = addr + py->mod_bias;
	if (hm_elf_symbol(e, "PyGen_Type", &addr, &sz) == HM_OK)
		a->gen_type = addr + py->mod_bias;
	if (hm_elf_symbol(e, "_PyWeakref_RefType", &addr, &sz) == HM_OK)
		a->weakref_type = addr + py->mod_bias;
	hm_elf_close(e);
	if (!a->coro_type) {
		free(a);
		return hm_error(HM_EVERSION, "PyCoro_Type not found in %s", py->mod_path);
	}
	a->fo_len = L->fo_size > 0 ? (size_t)L->fo_size : 0;
	a->if_len = L->if_size > 0 ? (size_t)L->if_size : 0;
	*out = a;
	return HM_OK;
}

void hm_pyasync_close(hm_pyasync *a)
{
	if (!a)
		return;
	free(a->found);
	free(a);
}

/* ---- coroutines -------------------------------------------------------- */

/* What one coroutine/generator object tells: its frame, line, state and
 * (when suspended in an await) the object awaited. */
struct coro_info {
	struct code_entry *code;
	int line;
	uint64_t frame;              /* frame address as the walker reports it */
	int running;
	uint64_t awaited;            /* 0: none */
};

static int push(hm_pytask *t, const struct coro_info *ci)
{
	if (t->nframes == t->frames_cap) {
		int nc = t->frames_cap ? t->frames_cap * 2 : 16;
		hm_pyframe *nf = realloc(t->frames, (size_t)nc * sizeof *nf);
		if (!nf)
			return -1;
		t->frames = nf;
		t->frames_cap = nc;
	}
	hm_pyframe *f = &t->frames[t->nframes++];
	f->code = &ci->code->pub;
	f->line = ci->line;
	f->addr = ci->frame;
	f->entry = 0;
	return 0;
}

/* <=3.10: the frame object of a generator. 1 done (finished), 0 ok, -1 bad. */
static int coro_frameobj(hm_pyasync *a, uint64_t gen, struct coro_info *ci)
{
	const hm_pylayout *L = a->L;
	const hm_pyasync_layout *A = a->A;
	uint64_t frame;
	uint8_t f[1024];
	if (rd_ptr(a, gen + (uint64_t)A->gen_frame, &frame))
		return -1;
	if (!frame)
		return 1;            /* finished: gi_frame cleared */
	if (!a->fo_len || a->fo_len > sizeof f || (frame & 7) || rd(a, frame, f, a->fo_len))
		return -1;
	if (a->py->frame_type && hm_ld_u64(f, L->ob_type) != a->py->frame_type)
		return -1;
	ci->code = walker_code(a->py, hm_ld_u64(f, L->fo_code));
	if (!ci->code)
		return -1;
	ci->frame = frame;
	int64_t lasti = hm_ld_i32(f, L->fo_lasti);
	int64_t off = L->linetable_kind == HM_LINETABLE_310 ? lasti * 2 : lasti;
	if (ci->code->code_bytes && off >= (int64_t)ci->code->code_bytes + 2)
		return -1;
	ci->line = walker_code_line(a->py, ci->code, off);
	uint64_t top = 0;        /* address of the value stack's top item */
	int suspended;
	if (A->fo_stacktop >= 0) {
		/* 3.8/3.9: f_stacktop is NULL while the frame runs */
		uint64_t st = hm_ld_u64(f, A->fo_stacktop), base = hm_ld_u64(f, A->fo_valuestack);
		ci->running = st == 0;
		suspended = st != 0 && lasti >= 0;
		if (suspended && st > base && st - base < (1u << 20))
			top = st - 8;
	} else {
		int8_t state = (int8_t)f[A->fo_state];
		int32_t depth = hm_ld_i32(f, A->fo_stackdepth);
		if (state >= A->st_completed)
			return 1;
		ci->running = state == A->st_executing;
		suspended = state == A->st_suspended && lasti >= 0;
		if (suspended && depth > 0 && depth < (1 << 20))
			top = hm_ld_u64(f, A->fo_valuestack) + 8 * (uint64_t)(depth - 1);
	}
	if (!suspended || !top || A->op_yield_from < 0 || !ci->code->bytecode)
		return 0;
	/* Suspended in `yield from`/`await` if the next instruction is
	 * YIELD_FROM (it re-runs on resumption). */
	int64_t next = off + 2;
	uint8_t op;
	if (next < 0 || next >= (int64_t)ci->code->code_bytes ||
	    rd(a, ci->code->bytecode + (uint64_t)next, &op, 1))
		return -1;
	if (op == A->op_yield_from && rd_ptr(a, top, &ci->awaited))
		return -1;
	return 0;
}

/* 3.11+: the frame embedded in the generator. */
static int coro_iframe(hm_pyasync *a, uint64_t gen, struct coro_info *ci)
{
	const hm_pylayout *L = a->L;
	const hm_pyasync_layout *A = a->A;
	int8_t state;
	uint8_t f[512];
	if (rd(a, gen + (uint64_t)A->gen_frame_state, &state, 1))
		return -1;
	if (state >= A->st_completed)
		return 1;
	if (state < A->st_created)
		return -1;
	uint64_t frame = gen + (uint64_t)A->gen_iframe;
	if (!a->if_len || a->if_len > sizeof f || rd(a, frame, f, a->if_len))
		return -1;
	uint64_t code = hm_ld_u64(f, L->if_code);
	if (L->executable_tagged)
		code &= ~(uint64_t)3;
	ci->code = walker_code(a->py, code);
	if (!ci->code)
		return -1;
	ci->frame = frame;
	uint64_t instr = hm_ld_u64(f, L->if_instr);
	int64_t off = (int64_t)(instr - (code + (uint64_t)L->co_code_adaptive));
	if (off < -2 || off > (int64_t)ci->code->code_bytes)
		return -1;
	ci->line = walker_code_line(a->py, ci->code, off);
	ci->running = state == A->st_executing;
	int yf = 0;
	if (A->st_has_yf) {
		yf = state == A->st_suspended_yf;               /* 3.13 */
	} else if (state == A->st_suspended) {
		/* 3.11/3.12: prev_instr is the YIELD_VALUE; the RESUME after it
		 * has oparg >= 2 when the yield was an await / yield from. */
		uint8_t next[2];
		if (off < 0 || off + 4 > (int64_t)ci->code->code_bytes || rd(a, instr + 2, next, 2))
			return -1;
		int op = next[0];
		yf = (op == A->op_resume || op == A->op_resume_quick ||
		      op == A->op_instrumented_resume) && next[1] >= 2;
	}
	if (!yf)
		return 0;
	int32_t stacktop = hm_ld_i32(f, A->if_stacktop);
	if (stacktop < 1 || stacktop > (1 << 20))
		return -1;
	return rd_ptr(a, frame + (uint64_t)A->if_localsplus + 8 * (uint64_t)(stacktop - 1),
		      &ci->awaited) ? -1 : 0;
}

static int is_coro(hm_pyasync *a, uint64_t obj)
{
	uint64_t t = type_of(a, obj);
	return t && (t == a->coro_type || (a->gen_type && t == a->gen_type));
}

/* Fill t's frames from the task's coroutine down its await chain.
 * 1 finished (no frames), 0 ok, -1 bad read. */
static int read_chain(hm_pyasync *a, uint64_t coro, hm_pytask *t)
{
	int max = a->py->max_depth > 0 && a->py->max_depth < MAX_CHAIN ? a->py->max_depth : MAX_CHAIN;
	for (int depth = 0; coro; depth++) {
		if (depth >= max) {
			t->truncated = 1;
			break;
		}
		struct coro_info ci;
		memset(&ci, 0, sizeof ci);
		int rc = a->A->gen_frame >= 0 ? coro_frameobj(a, coro, &ci) : coro_iframe(a, coro, &ci);
		if (rc < 0)
			return -1;
		if (rc > 0 && depth == 0)
			return 1;    /* the task's coroutine finished */
		if (rc > 0)
			break;       /* an inner one just finished */
		if (depth == 0) {
			t->coro_frame = ci.frame;
			t->running = ci.running;
		}
		if (push(t, &ci))
			return -1;
		if (ci.running)
			break;       /* the rest is on the thread's stack */
		coro = ci.awaited && is_coro(a, ci.awaited) ? ci.awaited : 0;
	}
	/* leaf first, like a thread's frames */
	for (int i = 0, j = t->nframes - 1; i < j; i++, j--) {
		hm_pyframe tmp = t->frames[i];
		t->frames[i] = t->frames[j];
		t->frames[j] = tmp;
	}
	return 0;
}

/* ---- tasks ------------------------------------------------------------- */

/* Is this type (or a base) the C Task or the Python one? Cached by type. */
static int task_kind(hm_pyasync *a, uint64_t type)
{
	for (int i = 0; i < a->ntypes; i++)
		if (a->types[i].type == type)
			return a->types[i].kind;
	int kind = TK_NOT;
	uint64_t t = type;
	for (int depth = 0; t && depth < 16; depth++) {
		char name[64];
		uint64_t np;
		if (rd_ptr(a, t + (uint64_t)a->L->tp_name, &np))
			return TK_UNKNOWN;
		/* hm_pyobj_type_name wants an object: read tp_name directly */
		size_t k = 0;
		if (rd(a, np, name, 16) == 0) {
			name[15] = 0;
			k = strnlen(name, 15);
		}
		if (k == 13 && !memcmp(name, "_asyncio.Task", 13)) {
			kind = TK_C;
			break;
		}
		if (k == 4 && !memcmp(name, "Task", 4))
			kind = TK_PY;    /* keep looking for the C base */
		if (rd_ptr(a, t + (uint64_t)a->A->tp_base, &t) || (t & 7))
			return TK_UNKNOWN;
	}
	if (a->ntypes < TYPE_CACHE) {
		a->types[a->ntypes].type = type;
		a->types[a->ntypes].kind = kind;
		a->ntypes++;
	}
	return kind;
}

/* Task name from the name object: a str, or an int counter. */
static int name_from(hm_pyasync *a, uint64_t obj, char *buf, size_t cap)
{
	uint64_t v;
	int neg;
	if (hm_pyobj_kind(&a->r, obj) == HM_PT_STR)
		return hm_pyobj_str(&a->r, obj, buf, cap);
	if (hm_pyobj_kind(&a->r, obj) == HM_PT_INT && hm_pyobj_int(&a->r, obj, &v, &neg) == 0 && !neg) {
		snprintf(buf, cap, "Task-%llu", (unsigned long long)v);
		return 0;
	}
	return -1;
}

static int name_ok(hm_pyasync *a, uint64_t obj)
{
	int k = hm_pyobj_kind(&a->r, obj);
	return k == HM_PT_STR || k == HM_PT_INT;
}

/* The coroutine and name object of a C Task. */
static int c_task_fields(hm_pyasync *a, uint64_t task, uint64_t *coro, uint64_t *name)
{
	uint64_t w[SCAN_WORDS];
	if (a->coro_off) {
		uint64_t pair[2];
		if (rd(a, task + (uint64_t)a->coro_off, pair, sizeof pair))
			return -1;
		if (is_coro(a, pair[0])) {
			*coro = pair[0];
			*name = pair[1];
			return 0;
		}
		/* a finished task may have dropped its coroutine */
		if (!pair[0])
			return 1;
	}
	if (rd(a, task, w, sizeof w))
		return -1;
	for (int i = 2; i + 1 < SCAN_WORDS; i++) {
		if (!w[i] || (w[i] & 7) || !is_coro(a, w[i]) || !name_ok(a, w[i + 1]))
			continue;
		a->coro_off = i * 8;
		*coro = w[i];
		*name = w[i + 1];
		return 0;
	}
	return 1;                    /* no coroutine: done, or not a task we know */
}

static hm_pytask *new_task(hm_pytasks *out)
{
	if (out->ntasks == out->tasks_cap) {
		int nc = out->tasks_cap ? out->tasks_cap * 2 : 16;
		hm_pytask *nt = realloc(out->tasks, (size_t)nc * sizeof *nt);
		if (!nt)
			return NULL;
		memset(nt + out->tasks_cap, 0, (size_t)(nc - out->tasks_cap) * sizeof *nt);
		out->tasks = nt;
		out->tasks_cap = nc;
	}
	hm_pytask *t = &out->tasks[out->ntasks];
	hm_pyframe *keep = t->frames;
	int cap = t->frames_cap;
	memset(t, 0, sizeof *t);
	t->frames = keep;
	t->frames_cap = cap;
	return t;
}

static void read_task(hm_pyasync *a, uint64_t obj, hm_pytasks *out)
{
	uint64_t type = type_of(a, obj);
	/* Not a task, or freed since its weak reference was read. */
	int kind = type ? task_kind(a, type) : TK_UNKNOWN;
	if (kind != TK_C && kind != TK_PY)
		return;
	hm_pytask *t = new_task(out);
	if (!t)
		return;
	t->addr = obj;
	uint64_t coro = 0, nameobj = 0;
	int rc = -1;
	if (kind == TK_C)
		rc = c_task_fields(a, obj, &coro, &nameobj);
	else if (kind == TK_PY)
		rc = hm_pyobj_getattr(&a->r, obj, "_coro", &coro) ||
		     hm_pyobj_getattr(&a->r, obj, "_name", &nameobj) ? -1 : 0;
	if (rc == 0 && !is_coro(a, coro))
		rc = 1;              /* a custom awaitable: nothing to show */
	/* Its context: task_context follows task_coro and task_name in every
	 * C Task; a Python Task keeps _context. The span reader checks the
	 * object is a Context. Its span is read before the await chain and
	 * checked again after it: a span kept held while the chain was read. */
	uint64_t ctx = 0;
	if (rc == 0) {
		if (kind == TK_C && a->coro_off)
			rd_ptr(a, obj + (uint64_t)a->coro_off + 16, &ctx);
		else if (kind == TK_PY)
			hm_pyobj_getattr(&a->r, obj, "_context", &ctx);
		if (ctx)
			hm_python_context_span(a->py, ctx, &t->span);
	}
	t->context = ctx;
	if (rc == 0)
		rc = read_chain(a, coro, t);
	if (rc > 0)
		return;              /* finished or not readable as a task: skip */
	if (rc == 0 && name_from(a, nameobj, t->name, sizeof t->name))
		snprintf(t->name, sizeof t->name, "?");
	t->valid = rc == 0;
	if (!t->valid) {
		t->nframes = 0;
		out->ninvalid++;
	} else if ((t->span.trace_hi || t->span.trace_lo) &&
		   hm_python_context_span_same(a->py, ctx, &t->span)) {
		memset(&t->span, 0, sizeof t->span);
		out->nspan_torn++;
	}
	out->ntasks++;
}

static int add_found(hm_pyasync *a, uint64_t obj)
{
	if (a->nfound >= MAX_TASKS)
		return 1;
	for (int i = 0; i < a->nfound; i++)
		if (a->found[i] == obj)
			return 0;
	a->found[a->nfound++] = obj;
	return 0;
}

static int gather_item(void *ctx, uint64_t item, uint64_t unused)
{
	hm_pyasync *a = ctx;
	(void)unused;
	uint64_t t = type_of(a, item);
	if (!t)
		return 0;
	int weak = a->weakref_type ? t == a->weakref_type : 0;
	if (!weak && !a->weakref_type) {
		char name[32];
		weak = hm_pyobj_type_name(&a->r, item, name, sizeof name) == 0 &&
		       !strncmp(name, "weakref", 7);
	}
	if (weak) {
		uint64_t obj;
		if (rd_ptr(a, item + (uint64_t)a->A->wr_object, &obj) || !obj ||
		    obj == a->r.types[HM_PT_NONE])
			return 0;        /* dead reference */
		item = obj;
	}
	return add_found(a, item);
}

/* sys.modules['asyncio.tasks'] task containers (0 found if none). */
static int find_containers(hm_pyasync *a)
{
	const hm_pylayout *L = a->L;
	hm_python *py = a->py;
	uint64_t interp = 0, modules = 0, mod, mdict, v;
	a->ncontainers = 0;
	if (L->is_modules < 0 || L->mod_dict < 0)
		return -1;
	uint64_t head = py->runtime + (uint64_t)L->rt_interpreters_head;
	/* The main interpreter is the last one in the list. */
	for (int i = 0; py->runtime && i < HM_MAX_INTERPS; i++) {
		uint64_t next;
		if (rd_ptr(a, head, &next) || !next)
			break;
		interp = next;
		head = next + (uint64_t)L->is_next;
	}
	if (!interp || rd_ptr(a, interp + (uint64_t)L->is_modules, &modules))
		return -1;
	if (hm_pyobj_dict_get(&a->r, modules, "asyncio.tasks", &mod))
		return 0;            /* asyncio not imported (yet) */
	if (rd_ptr(a, mod + (uint64_t)L->mod_dict, &mdict))
		return -1;
	static const char *const names[] = {"_all_tasks", "_scheduled_tasks", "_eager_tasks"};
	for (size_t i = 0; i < sizeof names / sizeof names[0] && a->ncontainers < 2; i++) {
		if (hm_pyobj_dict_get(&a->r, mdict, names[i], &v))
			continue;
		/* A WeakSet: keep its `data` set (never replaced) instead. */
		uint64_t data;
		if (hm_pyobj_set_items(&a->r, v, NULL, NULL, 0) < 0 &&
		    !hm_pyobj_getattr(&a->r, v, "data", &data))
			v = data;
		a->containers[a->ncontainers++] = v;
	}
	return 0;
}

uint64_t hm_pyasync_next_lookup(uint64_t *backoff_ns, int found)
{
	if (found) {
		*backoff_ns = 0;
		return LOOKUP_NS;
	}
	/* Empty: 100 ms after the first, doubling up to LOOKUP_NS. */
	if (!*backoff_ns)
		*backoff_ns = RETRY_MIN_NS;
	else if ((*backoff_ns *= 2) > LOOKUP_NS)
		*backoff_ns = LOOKUP_NS;
	return *backoff_ns;
}

/* The task containers, looked up again every LOOKUP_NS (sooner after an
 * empty lookup). */
static int containers(hm_pyasync *a)
{
	if (!a->found && !(a->found = malloc(MAX_TASKS * sizeof *a->found)))
		return hm_error(HM_ENOMEM, "out of memory");
	uint64_t now = hm_mono_ns();
	if (!a->containers_ns || now - a->containers_ns >= a->lookup_ns) {
		memset(a->sets, 0, sizeof a->sets);
		memset(a->set_types, 0, sizeof a->set_types);
		if (find_containers(a) < 0) {
			a->containers_ns = 0;
			return hm_error(HM_EIO, "cannot read sys.modules of the target");
		}
		a->containers_ns = now;
		/* 3.12+ has two containers; one alone is a module caught
		 * mid-import: look again soon as well. */
		int want = a->L->minor >= 12 ? 2 : 1;
		a->lookup_ns = hm_pyasync_next_lookup(&a->backoff_ns, a->ncontainers >= want);
	}
	return HM_OK;
}

/* Every container's items into a->found (gather_item, or, batched, the
 * items themselves): a container is a set of tasks or weakrefs, or a
 * WeakSet (its `data` set). */
static int gather_all(hm_pyasync *a, hm_pyobj_item_fn fn)
{
	a->nfound = 0;
	for (int i = 0; i < a->ncontainers && i < 2; i++) {
		uint64_t c = a->containers[i], data;
		if (a->sets[i] &&
		    hm_pyobj_set_items_typed(&a->r, a->sets[i], &a->set_types[i], fn, a, MAX_TASKS) >= 0)
			continue;
		a->set_types[i] = 0;
		a->sets[i] = c;
		if (hm_pyobj_set_items_typed(&a->r, c, &a->set_types[i], fn, a, MAX_TASKS) >= 0)
			continue;
		a->set_types[i] = 0;
		a->sets[i] = 0;
		if (hm_pyobj_getattr(&a->r, c, "data", &data) ||
		    hm_pyobj_set_items_typed(&a->r, data, &a->set_types[i], fn, a, MAX_TASKS) < 0) {
			a->set_types[i] = 0;
			a->containers_ns = 0;    /* look again next time */
			return hm_error(HM_EIO, "cannot read the asyncio task set");
		}
		a->sets[i] = data;
	}
	return HM_OK;
}

int hm_pyasync_tasks(hm_pyasync *a, hm_pytasks *out)
{
	out->ntasks = 0;
	out->ninvalid = 0;
	out->nspan_torn = 0;
	int rc = containers(a);
	if (rc == HM_OK)
		rc = gather_all(a, gather_item);
	if (rc != HM_OK)
		return rc;
	for (int i = 0; i < a->nfound; i++)
		read_task(a, a->found[i], out);
	return HM_OK;
}

static int collect_item(void *ctx, uint64_t item, uint64_t unused)
{
	(void)unused;
	return add_found(ctx, item);
}

/* A task's context the slow way (one task, read by fields). */
static uint64_t task_context(hm_pyasync *a, uint64_t task)
{
	uint64_t t = type_of(a, task), coro = 0, name, ctx = 0;
	int kind = t ? task_kind(a, t) : TK_UNKNOWN;
	if (kind == TK_C && c_task_fields(a, task, &coro, &name) == 0)
		rd_ptr(a, task + (uint64_t)a->coro_off + 16, &ctx);
	else if (kind == TK_PY && !hm_pyobj_getattr(&a->r, task, "_coro", &coro) && coro)
		hm_pyobj_getattr(&a->r, task, "_context", &ctx);
	return ctx;
}

/* The first words words of each of the n objects at objs, all in one read:
 * n * words words, or NULL when one of them is unreadable (or out of
 * memory): the caller then reads them one by one. */
static uint64_t *heads(hm_pyasync *a, const uint64_t *objs, int n, size_t words)
{
	uint64_t *buf = malloc((size_t)n * words * 8);
	hm_iov *iov = malloc((size_t)n * sizeof *iov);
	int ok = buf && iov;
	for (int i = 0; ok && i < n; i++)
		iov[i] = (hm_iov){objs[i], buf + (size_t)i * words, words * 8};
	if (ok && hm_target_readv(a->py->t, iov, n) != HM_OK)
		ok = 0;
	free(iov);
	if (!ok) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* a->found (weakrefs, or tasks) as the objects they refer to, from every
 * item's type and referent read at once: an item of another type is a
 * task itself (a set of tasks); a dead reference is dropped. */
static int deref_found(hm_pyasync *a)
{
	int n = a->nfound;
	size_t words = (size_t)a->A->wr_object / 8 + 1;
	uint64_t *items = malloc((size_t)n * 8);
	if (!items)
		return -1;
	memcpy(items, a->found, (size_t)n * 8);
	uint64_t *buf = heads(a, items, n, words);
	a->nfound = 0;
	for (int i = 0; i < n; i++) {
		if (!buf) {
			gather_item(a, items[i], 0);
			continue;
		}
		const uint64_t *w = buf + (size_t)i * words;
		uint64_t obj = items[i];
		if (w[a->L->ob_type / 8] == a->weakref_type) {
			obj = w[a->A->wr_object / 8];
			if (!obj || (obj & 7) || obj == a->r.types[HM_PT_NONE])
				continue;
		}
		add_found(a, obj);
	}
	free(items);
	free(buf);
	return 0;
}

int hm_pyasync_contexts(hm_pyasync *a, uint64_t *ctxs, int max)
{
	/* Until the weakref type is known (from its name, where the binary
	 * has no symbol), items are gathered one by one, which learns it. */
	int batched = a->weakref_type != 0;
	if (containers(a) != HM_OK || gather_all(a, batched ? collect_item : gather_item) != HM_OK ||
	    (batched && a->nfound && deref_found(a) < 0))
		return -1;
	int n = a->nfound < max ? a->nfound : max, k = 0;
	/* A C task's head up to its context (task_coro, task_name,
	 * task_context), every task's at once, once the offset is known
	 * (learnt from a task read the slow way). */
	size_t words = (size_t)a->coro_off / 8 + 3;
	uint64_t *buf = a->coro_off && n ? heads(a, a->found, n, words) : NULL;
	for (int i = 0; i < n; i++) {
		uint64_t ctx = 0;
		if (buf) {
			const uint64_t *w = buf + (size_t)i * words;
			uint64_t t = w[a->L->ob_type / 8];
			int kind = t && !(t & 7) ? task_kind(a, t) : TK_UNKNOWN;
			if (kind == TK_C && w[a->coro_off / 8])   /* (a finished task: no coroutine) */
				ctx = w[a->coro_off / 8 + 2];
			else if (kind == TK_PY)
				ctx = task_context(a, a->found[i]);
		} else {
			ctx = task_context(a, a->found[i]);
		}
		if (ctx && !(ctx & 7))
			ctxs[k++] = ctx;
	}
	free(buf);
	return k;
}

void hm_pytasks_free(hm_pytasks *t)
{
	for (int i = 0; i < t->tasks_cap; i++)
		free(t->tasks[i].frames);
	free(t->tasks);
	memset(t, 0, sizeof *t);
}
