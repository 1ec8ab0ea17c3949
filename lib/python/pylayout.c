/* pylayout.c - pick the CPython struct layout for a target interpreter.
 *
 * Two sources of layouts:
 *  - compiled-in tables (lib/python/layouts/pyXY.c, generated from each version's
 *    headers by tools/gen_layouts.sh) for 2.7 and 3.6-3.12;
 *  - for 3.13 and later, the _Py_DebugOffsets block CPython places at the
 *    start of _PyRuntime. It is a fixed sequence of uint64 values whose order
 *    is only stable within a minor version, so each supported minor version
 *    gets a mirror struct below (3.13, 3.14) and one map of byte positions
 *    built from it with offsetof(); one decoder reads any map.
 *
 * The debug offsets leave out a few things the walker needs. Those are
 * filled from the generated 3.13 table because the structs they describe did
 * not change in 3.13 or 3.14: the _PyStackChunk fields, the unicode state bit
 * positions, datastack_top/limit (the two pointers that follow
 * datastack_chunk in PyThreadState) and the PyCompactUnicodeObject size (two
 * words after PyASCIIObject).
 *
 * Frame owners: owner_cstack is the owner value of the interpreter's C entry
 * (shim) frame, the one frame per eval loop the walker must skip. In 3.13 that
 * is FRAME_OWNED_BY_CSTACK = 3. 3.14 renumbered the enum (INTERPRETER = 3,
 * CSTACK = 4) and moved the entry frame to FRAME_OWNED_BY_INTERPRETER, while
 * nothing in 3.14 sets CSTACK: so 3.14 gets owner_cstack 3, owner_max 4, and
 * a walker that skips owner >= owner_cstack is right for both. */
#include <stdbool.h>
#include <string.h>

#include "base/error.h"
#include "python/layouts/layouts.h"
#include "python/pylayout.h"

const hm_pylayout *hm_pylayout_builtin(int major, int minor)
{
	static const hm_pylayout *const tables[] = {
		&hm_pylayout_py27, &hm_pylayout_py36, &hm_pylayout_py37,
		&hm_pylayout_py38, &hm_pylayout_py39, &hm_pylayout_py310,
		&hm_pylayout_py311, &hm_pylayout_py312,
	};
	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
		if (tables[i]->major == major && tables[i]->minor == minor)
			return tables[i];
	return NULL;
}

/* ---- _Py_DebugOffsets mirrors (binary format of CPython 3.13 / 3.14) ---- */

struct dbg_head {
	char cookie[8];
	uint64_t version;
	uint64_t free_threaded;
};

struct dbg_313 {
	struct dbg_head head;
	struct { uint64_t size, finalizing, interpreters_head; } runtime_state;
	struct {
		uint64_t size, id, next, threads_head, gc, imports_modules,
			 sysdict, builtins, ceval_gil, gil_runtime_state,
			 gil_runtime_state_enabled, gil_runtime_state_locked,
			 gil_runtime_state_holder;
	} interpreter_state;
	struct {
		uint64_t size, prev, next, interp, current_frame, thread_id,
			 native_thread_id, datastack_chunk, status;
	} thread_state;
	struct {
		uint64_t size, previous, executable, instr_ptr, localsplus, owner;
	} interpreter_frame;
	struct {
		uint64_t size, filename, name, qualname, linetable, firstlineno,
			 argcount, localsplusnames, localspluskinds,
			 co_code_adaptive;
	} code_object;
	struct { uint64_t size, ob_type; } pyobject;
	struct { uint64_t size, tp_name, tp_repr, tp_flags; } type_object;
	struct { uint64_t size, ob_item, ob_size; } tuple_object;
	struct { uint64_t size, ob_item, ob_size; } list_object;
	struct { uint64_t size, ma_keys, ma_values; } dict_object;
	struct { uint64_t size, ob_fval; } float_object;
	struct { uint64_t size, lv_tag, ob_digit; } long_object;
	struct { uint64_t size, ob_size, ob_sval; } bytes_object;
	struct { uint64_t size, state, length, asciiobject_size; } unicode_object;
	struct { uint64_t size, collecting; } gc;
};

/* 3.14: interpreter state gained threads_main (after threads_head) and two
 * generation counters, the frame stackpointer and tlbc_index, the code
 * object co_tlbc; set, generator, llist and debugger sections were added. */
struct dbg_314 {
	struct dbg_head head;
	struct { uint64_t size, finalizing, interpreters_head; } runtime_state;
	struct {
		uint64_t size, id, next, threads_head, threads_main, gc,
			 imports_modules, sysdict, builtins, ceval_gil,
			 gil_runtime_state, gil_runtime_state_enabled,
			 gil_runtime_state_locked, gil_runtime_state_holder,
			 code_object_generation, tlbc_generation;
	} interpreter_state;
	struct {
		uint64_t size, prev, next, interp, current_frame, thread_id,
			 native_thread_id, datastack_chunk, status;
	} thread_state;
	struct {
		uint64_t size, previous, executable, instr_ptr, localsplus, owner,
			 stackpointer, tlbc_index;
	} interpreter_frame;
	struct {
		uint64_t size, filename, name, qualname, linetable, firstlineno,
			 argcount, localsplusnames, localspluskinds,
			 co_code_adaptive, co_tlbc;
	} code_object;
	struct { uint64_t size, ob_type; } pyobject;
	struct { uint64_t size, tp_name, tp_repr, tp_flags; } type_object;
	struct { uint64_t size, ob_item, ob_size; } tuple_object;
	struct { uint64_t size, ob_item, ob_size; } list_object;
	struct { uint64_t size, used, table, mask; } set_object;
	struct { uint64_t size, ma_keys, ma_values; } dict_object;
	struct { uint64_t size, ob_fval; } float_object;
	struct { uint64_t size, lv_tag, ob_digit; } long_object;
	struct { uint64_t size, ob_size, ob_sval; } bytes_object;
	struct { uint64_t size, state, length, asciiobject_size; } unicode_object;
	struct { uint64_t size, collecting; } gc;
	struct { uint64_t size, gi_name, gi_iframe, gi_frame_state; } gen_object;
	struct { uint64_t next, prev; } llist_node;
	struct {
		uint64_t eval_breaker, remote_debugger_support,
			 remote_debugging_enabled, debugger_pending_call,
			 debugger_script_path, debugger_script_path_size;
	} debugger_support;
};

/* Byte positions, inside the blob, of the values the decoder reads. */
struct dbg_map {
	int minor;
	size_t total;
	size_t rt_size, rt_interpreters_head, rt_finalizing;
	size_t is_size, is_next, is_threads_head, is_ceval_gil, is_gil,
	       is_gil_locked, is_gil_holder;
	size_t ts_size, ts_prev, ts_status, ts_next, ts_interp, ts_current_frame, ts_thread_id,
	       ts_native_thread_id, ts_datastack_chunk;
	size_t if_size, if_previous, if_executable, if_instr_ptr, if_localsplus,
	       if_owner;
	size_t co_size, co_filename, co_name, co_qualname, co_linetable,
	       co_firstlineno, co_localsplusnames, co_code_adaptive;
	size_t ob_size, ob_type, tp_size, tp_name;
	size_t by_size, by_ob_size, by_ob_sval;
	size_t un_size, un_state, un_length, un_ascii_size;
	size_t tp_flags, is_modules, is_gc, gc_size, gc_collecting;
	size_t co_localspluskinds, tu_size, tu_item, li_size, li_item;
	size_t fl_size, fl_fval, lo_size, lo_tag, lo_digit;
	size_t di_size, di_keys, di_values;
	int owner_cstack, owner_max, executable_tagged;
};

#define DBG_MAP(S, minor_, cstack, max, tagged) { \
	.minor = minor_, .total = sizeof(S), \
	.rt_size = offsetof(S, runtime_state.size), \
	.rt_interpreters_head = offsetof(S, runtime_state.interpreters_head), \
	.rt_finalizing = offsetof(S, runtime_state.finalizing), \
	.is_size = offsetof(S, interpreter_state.size), \
	.is_next = offsetof(S, interpreter_state.next), \
	.is_threads_head = offsetof(S, interpreter_state.threads_head), \
	.is_ceval_gil = offsetof(S, interpreter_state.ceval_gil), \
	.is_gil = offsetof(S, interpreter_state.gil_runtime_state), \
	.is_gil_locked = offsetof(S, interpreter_state.gil_runtime_state_locked), \
	.is_gil_holder = offsetof(S, interpreter_state.gil_runtime_state_holder), \
	.ts_size = offsetof(S, thread_state.size), \
	.ts_prev = offsetof(S, thread_state.prev), \
	.ts_status = offsetof(S, thread_state.status), \
	.ts_next = offsetof(S, thread_state.next), \
	.ts_interp = offsetof(S, thread_state.interp), \
	.ts_current_frame = offsetof(S, thread_state.current_frame), \
	.ts_thread_id = offsetof(S, thread_state.thread_id), \
	.ts_native_thread_id = offsetof(S, thread_state.native_thread_id), \
	.ts_datastack_chunk = offsetof(S, thread_state.datastack_chunk), \
	.if_size = offsetof(S, interpreter_frame.size), \
	.if_previous = offsetof(S, interpreter_frame.previous), \
	.if_executable = offsetof(S, interpreter_frame.executable), \
	.if_instr_ptr = offsetof(S, interpreter_frame.instr_ptr), \
	.if_localsplus = offsetof(S, interpreter_frame.localsplus), \
	.if_owner = offsetof(S, interpreter_frame.owner), \
	.co_size = offsetof(S, code_object.size), \
	.co_filename = offsetof(S, code_object.filename), \
	.co_name = offsetof(S, code_object.name), \
	.co_qualname = offsetof(S, code_object.qualname), \
	.co_linetable = offsetof(S, code_object.linetable), \
	.co_firstlineno = offsetof(S, code_object.firstlineno), \
	.co_localsplusnames = offsetof(S, code_object.localsplusnames), \
	.co_code_adaptive = offsetof(S, code_object.co_code_adaptive), \
	.ob_size = offsetof(S, pyobject.size), \
	.ob_type = offsetof(S, pyobject.ob_type), \
	.tp_size = offsetof(S, type_object.size), \
	.tp_name = offsetof(S, type_object.tp_name), \
	.by_size = offsetof(S, bytes_object.size), \
	.by_ob_size = offsetof(S, bytes_object.ob_size), \
	.by_ob_sval = offsetof(S, bytes_object.ob_sval), \
	.un_size = offsetof(S, unicode_object.size), \
	.un_state = offsetof(S, unicode_object.state), \
	.un_length = offsetof(S, unicode_object.length), \
	.un_ascii_size = offsetof(S, unicode_object.asciiobject_size), \
	.tp_flags = offsetof(S, type_object.tp_flags), \
	.is_modules = offsetof(S, interpreter_state.imports_modules), \
	.is_gc = offsetof(S, interpreter_state.gc), \
	.gc_size = offsetof(S, gc.size), \
	.gc_collecting = offsetof(S, gc.collecting), \
	.co_localspluskinds = offsetof(S, code_object.localspluskinds), \
	.tu_size = offsetof(S, tuple_object.size), \
	.tu_item = offsetof(S, tuple_object.ob_item), \
	.li_size = offsetof(S, list_object.size), \
	.li_item = offsetof(S, list_object.ob_item), \
	.fl_size = offsetof(S, float_object.size), \
	.fl_fval = offsetof(S, float_object.ob_fval), \
	.lo_size = offsetof(S, long_object.size), \
	.lo_tag = offsetof(S, long_object.lv_tag), \
	.lo_digit = offsetof(S, long_object.ob_digit), \
	.di_size = offsetof(S, dict_object.size), \
	.di_keys = offsetof(S, dict_object.ma_keys), \
	.di_values = offsetof(S, dict_object.ma_values), \
	.owner_cstack = cstack, .owner_max = max, .executable_tagged = tagged, \
}

static const struct dbg_map dbg_maps[] = {
	DBG_MAP(struct dbg_313, 13, 3, 3, 0),
	DBG_MAP(struct dbg_314, 14, 3, 4, 1),
};

/* Struct sizes above this are not believable: treat the blob as corrupt. */
#define DBG_MAX_SIZE (64u << 20)

struct dbg_reader {
	const unsigned char *blob;
	bool bad;
};

static uint64_t dbg_u64(const unsigned char *blob, size_t pos)
{
	uint64_t v;
	memcpy(&v, blob + pos, sizeof v);
	return v;
}

/* A struct size: positive and believable. */
static int dbg_size(struct dbg_reader *r, size_t pos)
{
	uint64_t v = dbg_u64(r->blob, pos);
	if (v == 0 || v > DBG_MAX_SIZE) {
		r->bad = true;
		return 1;        /* rejected anyway: keep the arithmetic below in range */
	}
	return (int)v;
}

/* A field offset: must lie inside its struct of size `size`. */
static int dbg_off(struct dbg_reader *r, size_t pos, int size)
{
	uint64_t v = dbg_u64(r->blob, pos);
	if (v >= (uint64_t)size) {
		r->bad = true;
		return 0;
	}
	return (int)v;
}

/* The fields the object reader, thread names and the GC frame use. What the
 * debug offsets give is taken from them; the dict keys internals, instance
 * dict placement and a few sizes are not in them and come from the 3.13
 * table (unchanged in 3.14). */
/* Like dbg_size/dbg_off for fields only the object reader uses: a bad value
 * makes that one field absent (-1) instead of rejecting the whole layout. */
static int soft_size(struct dbg_reader *r, size_t pos)
{
	uint64_t v = dbg_u64(r->blob, pos);
	return v == 0 || v > DBG_MAX_SIZE ? -1 : (int)v;
}

static int soft_off(struct dbg_reader *r, size_t pos, int size)
{
	uint64_t v = dbg_u64(r->blob, pos);
	return size <= 0 || v >= (uint64_t)size ? -1 : (int)v;
}

static void dbg_decode_objects(struct dbg_reader *r, const struct dbg_map *m,
			       hm_pylayout *L)
{
	const hm_pylayout *ref = &hm_pylayout_py313;
	int tp_sizeof = soft_size(r, m->tp_size);
	L->tp_flags = soft_off(r, m->tp_flags, tp_sizeof);
	L->tp_basicsize = ref->tp_basicsize;
	L->tp_dictoffset = ref->tp_dictoffset;
	L->ht_cached_keys = ref->ht_cached_keys;
	L->is_modules = soft_off(r, m->is_modules, L->is_size);
	int gc = soft_off(r, m->is_gc, L->is_size);
	int gc_sizeof = soft_size(r, m->gc_size);
	int collecting = soft_off(r, m->gc_collecting, gc_sizeof);
	L->is_gc_collecting = collecting < 0 ? -1 : gc + collecting;
	if (gc < 0 || L->is_gc_collecting < gc || L->is_gc_collecting >= L->is_size)
		L->is_gc_collecting = -1;
	L->rt_gc_collecting = -1;
	L->co_localspluskinds = soft_off(r, m->co_localspluskinds, L->co_size);
	L->fo_localsplus = -1;
	int tu_sizeof = soft_size(r, m->tu_size);
	L->tuple_item = soft_off(r, m->tu_item, tu_sizeof + 1);
	int li_sizeof = soft_size(r, m->li_size);
	L->list_item = soft_off(r, m->li_item, li_sizeof);
	int fl_sizeof = soft_size(r, m->fl_size);
	L->float_fval = soft_off(r, m->fl_fval, fl_sizeof);
	int lo_sizeof = soft_size(r, m->lo_size);
	L->long_tag = soft_off(r, m->lo_tag, lo_sizeof);
	L->long_digit = soft_off(r, m->lo_digit, lo_sizeof);
	L->long_digit_bits = ref->long_digit_bits;
	L->long_digit_size = ref->long_digit_size;
	int di_sizeof = soft_size(r, m->di_size);
	L->dict_keys = soft_off(r, m->di_keys, di_sizeof);
	L->dict_values = soft_off(r, m->di_values, di_sizeof);
	L->dict_used = ref->dict_used;
	L->dk_size = ref->dk_size;
	L->dk_log2_size = ref->dk_log2_size;
	L->dk_log2_index_bytes = ref->dk_log2_index_bytes;
	L->dk_kind = ref->dk_kind;
	L->dk_nentries = ref->dk_nentries;
	L->dk_indices = ref->dk_indices;
	L->dk_entry_size = ref->dk_entry_size;
	L->dk_unicode_entry_size = ref->dk_unicode_entry_size;
	L->dv_values = ref->dv_values;
	L->inst_dict_kind = ref->inst_dict_kind;
	L->inst_dict_ptr = ref->inst_dict_ptr;
	L->inst_values_ptr = ref->inst_values_ptr;
	L->tpflags_inline_values = ref->tpflags_inline_values;
	L->tpflags_managed_dict = ref->tpflags_managed_dict;
	L->mod_dict = ref->mod_dict;
	L->cell_ref = ref->cell_ref;
	if (L->long_digit <= L->long_tag)
		L->long_digit = L->long_tag = -1;
}

static void dbg_decode(struct dbg_reader *r, const struct dbg_map *m,
		       hm_pylayout *L)
{
	const hm_pylayout *ref = &hm_pylayout_py313;

	/* -1 everywhere first, so anything not set below reads "absent". */
	memset(L, 0xff, sizeof *L);
	L->major = 3;
	L->minor = m->minor;
	L->frame_model = HM_FRAMES_INTERP;
	L->linetable_kind = HM_LOCATIONS;
	L->str_kind = HM_STR_PEP393;
	L->free_threaded = 0;

	L->rt_size = dbg_size(r, m->rt_size);
	L->rt_interpreters_head = dbg_off(r, m->rt_interpreters_head, L->rt_size);
	L->rt_finalizing = dbg_off(r, m->rt_finalizing, L->rt_size);

	L->is_size = dbg_size(r, m->is_size);
	L->is_next = dbg_off(r, m->is_next, L->is_size);
	L->is_threads_head = dbg_off(r, m->is_threads_head, L->is_size);
	L->is_gil_ptr = dbg_off(r, m->is_ceval_gil, L->is_size);
	/* The main interpreter's GIL: ceval.gil points at it, and it is also
	 * embedded as _gil. The debug offsets give its fields relative to the
	 * interpreter; the walker wants them inside _gil_runtime_state. */
	int gil = dbg_off(r, m->is_gil, L->is_size);
	int locked = dbg_off(r, m->is_gil_locked, L->is_size);
	int holder = dbg_off(r, m->is_gil_holder, L->is_size);
	if (locked < gil || holder < gil)
		r->bad = true;
	L->is_gil_struct = gil;
	L->gil_locked = locked - gil;
	L->gil_last_holder = holder - gil;

	L->ts_size = dbg_size(r, m->ts_size);
	L->ts_prev = dbg_off(r, m->ts_prev, L->ts_size);
	L->ts_next = dbg_off(r, m->ts_next, L->ts_size);
	/* Which bit of _status means "holds the GIL" is not in the debug
	 * offsets: 3.13's comes from its generated table; later versions read
	 * the GIL itself. */
	L->ts_status = dbg_off(r, m->ts_status, L->ts_size);
	L->ts_gil_bit = m->minor == 13 ? ref->ts_gil_bit : -1;
	L->ts_interp = dbg_off(r, m->ts_interp, L->ts_size);
	L->ts_frame = dbg_off(r, m->ts_current_frame, L->ts_size);
	L->ts_thread_id = dbg_off(r, m->ts_thread_id, L->ts_size);
	L->ts_native_thread_id = dbg_off(r, m->ts_native_thread_id, L->ts_size);
	L->ts_datastack_chunk = dbg_off(r, m->ts_datastack_chunk, L->ts_size);
	L->ts_datastack_top = L->ts_datastack_chunk +
		(ref->ts_datastack_top - ref->ts_datastack_chunk);
	L->ts_datastack_limit = L->ts_datastack_chunk +
		(ref->ts_datastack_limit - ref->ts_datastack_chunk);
	if (L->ts_datastack_limit >= L->ts_size)
		r->bad = true;

	L->chunk_previous = ref->chunk_previous;
	L->chunk_size = ref->chunk_size;
	L->chunk_top = ref->chunk_top;
	L->chunk_data = ref->chunk_data;

	/* sizeof(_PyInterpreterFrame) counts one localsplus slot; the table
	 * wants the header only, which is where localsplus starts. */
	int if_sizeof = dbg_size(r, m->if_size);
	L->if_size = dbg_off(r, m->if_localsplus, if_sizeof);
	L->if_code = dbg_off(r, m->if_executable, if_sizeof);
	L->if_previous = dbg_off(r, m->if_previous, if_sizeof);
	L->if_instr = dbg_off(r, m->if_instr_ptr, if_sizeof);
	L->if_instr_is_prev = 0;
	L->if_owner = dbg_off(r, m->if_owner, if_sizeof);
	L->owner_cstack = m->owner_cstack;
	L->owner_max = m->owner_max;
	L->executable_tagged = m->executable_tagged;

	L->co_size = dbg_size(r, m->co_size);
	L->co_filename = dbg_off(r, m->co_filename, L->co_size);
	L->co_name = dbg_off(r, m->co_name, L->co_size);
	L->co_qualname = dbg_off(r, m->co_qualname, L->co_size);
	L->co_firstlineno = dbg_off(r, m->co_firstlineno, L->co_size);
	L->co_linetable = dbg_off(r, m->co_linetable, L->co_size);
	L->co_code_adaptive = dbg_off(r, m->co_code_adaptive, L->co_size + 1);
	L->co_localsplusnames = dbg_off(r, m->co_localsplusnames, L->co_size);
	/* Not in the debug offsets; 3.13's comes from its generated table.
	 * Elsewhere the tuple's own ob_size gives the count. */
	L->co_nlocalsplus = m->minor == 13 ? ref->co_nlocalsplus : -1;
	L->co_flags = m->minor == 13 ? ref->co_flags : -1;

	int ob_sizeof = dbg_size(r, m->ob_size);
	L->ob_type = dbg_off(r, m->ob_type, ob_sizeof);
	int by_sizeof = dbg_size(r, m->by_size);
	L->var_size = dbg_off(r, m->by_ob_size, by_sizeof);
	L->bytes_sval = dbg_off(r, m->by_ob_sval, by_sizeof);
	int un_sizeof = dbg_size(r, m->un_size);
	L->uni_length = dbg_off(r, m->un_length, un_sizeof);
	L->uni_state = dbg_off(r, m->un_state, un_sizeof);
	L->uni_ascii_size = dbg_off(r, m->un_ascii_size, un_sizeof + 1);
	L->uni_compact_size = L->uni_ascii_size +
		(ref->uni_compact_size - ref->uni_ascii_size);
	L->uni_legacy_data = L->uni_ascii_size +
		(ref->uni_legacy_data - ref->uni_ascii_size);
	L->uni_kind_shift = ref->uni_kind_shift;
	L->uni_compact_bit = ref->uni_compact_bit;
	L->uni_ascii_bit = ref->uni_ascii_bit;
	int tp_sizeof = dbg_size(r, m->tp_size);
	L->tp_name = dbg_off(r, m->tp_name, tp_sizeof);

	dbg_decode_objects(r, m, L);

	/* A PyObject header is refcount + type pointer: anything else means
	 * the blob is not laid out the way this map thinks. */
	if (ob_sizeof < 8 || L->ob_type + 8 > ob_sizeof ||
	    L->uni_state >= L->uni_ascii_size || L->bytes_sval <= L->var_size)
		r->bad = true;
}

int hm_pylayout_from_debug_offsets(const void *blob, size_t len, hm_pylayout *out)
{
	struct dbg_head head;

	if (!blob || !out)
		return hm_error(HM_EINVAL, "no _Py_DebugOffsets given");
	if (len < sizeof head)
		return hm_error(HM_EINVAL,
				"_Py_DebugOffsets truncated: %zu bytes", len);
	memcpy(&head, blob, sizeof head);
	if (memcmp(head.cookie, "xdebugpy", 8) != 0)
		return hm_error(HM_EVERSION,
				"_PyRuntime does not start with the _Py_DebugOffsets cookie");

	int major = (int)((head.version >> 24) & 0xff);
	int minor = (int)((head.version >> 16) & 0xff);
	if (head.free_threaded)
		return hm_error(HM_EVERSION,
				"free-threaded CPython %d.%d (%d.%dt) is not supported yet",
				major, minor, major, minor);

	const struct dbg_map *m = NULL;
	for (size_t i = 0; i < sizeof dbg_maps / sizeof dbg_maps[0]; i++)
		if (major == 3 && dbg_maps[i].minor == minor)
			m = &dbg_maps[i];
	if (!m)
		return hm_error(HM_EVERSION,
				"CPython %d.%d: unknown _Py_DebugOffsets layout",
				major, minor);
	if (len < m->total)
		return hm_error(HM_EINVAL,
				"_Py_DebugOffsets for CPython %d.%d truncated: %zu of %zu bytes",
				major, minor, len, m->total);

	struct dbg_reader r = { .blob = blob, .bad = false };
	hm_pylayout L;
	dbg_decode(&r, m, &L);
	if (r.bad)
		return hm_error(HM_EINVAL,
				"CPython %d.%d: _Py_DebugOffsets values out of range (corrupt or unexpected layout)",
				major, minor);
	*out = L;
	return HM_OK;
}
