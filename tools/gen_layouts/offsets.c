/* offsets.c - prints one CPython version's hm_pylayout table as C source.
 *
 * tools/gen_layouts.sh compiles this file once per installed interpreter,
 * against that interpreter's own headers (with Py_BUILD_CORE so the internal
 * pycore_*.h structs are visible), runs it and stores its output as
 * lib/python/layouts/pyXY.c. Every number comes from offsetof()/sizeof() or, for the
 * unicode state bit field, from setting a bit field and looking at the raw
 * word, so nothing here is a hand-copied offset. Fields a version lacks
 * print as -1. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <stdio.h>
#include <string.h>
#include <stddef.h>

#define HEX PY_VERSION_HEX
#define V(maj, min) (((maj) << 24) | ((min) << 16))

#if HEX >= V(3, 7) && HEX < V(3, 8)
#  include <internal/pystate.h>
#elif HEX >= V(3, 8) && HEX < V(3, 9)
#  include <internal/pycore_pystate.h>
#elif HEX >= V(3, 9) && HEX < V(3, 11)
#  include <internal/pycore_runtime.h>
#  include <internal/pycore_interp.h>
#  include <internal/pycore_pystate.h>
#elif HEX >= V(3, 11)
#  include <internal/pycore_runtime.h>
#  include <internal/pycore_interp.h>
#  include <internal/pycore_pystate.h>
#  include <internal/pycore_frame.h>
#  include <internal/pycore_code.h>
#endif
#if HEX >= V(3, 12)
#  include <internal/pycore_gil.h>
#endif
#if HEX >= V(3, 10)
#  include <internal/pycore_moduleobject.h>
#endif
#if HEX >= V(3, 11)
#  include <internal/pycore_dict.h>
#  include <internal/pycore_object.h>
#endif
#if HEX < V(3, 11)
#  include <longintrepr.h>
#endif

#define OFF(type, member) ((long)offsetof(type, member))
#define P(name, value) printf("\t.%s = %ld,\n", #name, (long)(value))
#define NONE(name) P(name, -1)

/* Bit position of the lowest set bit of the unicode state word after
 * `field` alone was set to 1 in a zeroed object. */
#if HEX >= V(3, 0)
#define STATE_BIT(field) lowest_bit(({ \
	PyASCIIObject o; unsigned int w; \
	memset(&o, 0, sizeof o); o.state.field = 1; \
	memcpy(&w, (char *)&o + offsetof(PyASCIIObject, state), sizeof w); w; }))
static int lowest_bit(unsigned int word)
{
	for (int i = 0; i < 32; i++)
		if (word & (1u << i))
			return i;
	return -1;
}
#endif

/* Bit position, in the 32-bit _status word of a thread state, of the bit
 * that says the thread holds the GIL: _status.holds_gil on 3.13,
 * _status.active on 3.12 (set while a thread is attached, which there is
 * between taking and dropping the GIL). */
#if HEX >= V(3, 12)
#if HEX >= V(3, 13)
#define GIL_BIT holds_gil
#else
#define GIL_BIT active
#endif
static int status_gil_bit(void)
{
	static PyThreadState t;
	unsigned int w;
	memset(&t, 0, sizeof t);
	t._status.GIL_BIT = 1;
	memcpy(&w, (char *)&t + offsetof(PyThreadState, _status), sizeof w);
	return lowest_bit(w);
}
#endif

static void runtime(void)
{
#if HEX >= V(3, 7)
	P(rt_size, sizeof(_PyRuntimeState));
	P(rt_interpreters_head, OFF(_PyRuntimeState, interpreters.head));
#else
	NONE(rt_size);
	NONE(rt_interpreters_head);
#endif
#if HEX >= V(3, 7) && HEX < V(3, 12)
	P(rt_tstate_current, OFF(_PyRuntimeState, gilstate.tstate_current));
	P(rt_gil_locked, OFF(_PyRuntimeState, ceval.gil.locked));
	P(rt_gil_last_holder, OFF(_PyRuntimeState, ceval.gil.last_holder));
#else
	NONE(rt_tstate_current);
	NONE(rt_gil_locked);
	NONE(rt_gil_last_holder);
#endif
#if HEX >= V(3, 9)
	P(rt_finalizing, OFF(_PyRuntimeState, _finalizing));
#elif HEX >= V(3, 7)
	P(rt_finalizing, OFF(_PyRuntimeState, finalizing));
#else
	NONE(rt_finalizing);
#endif
}

static void interpreter(void)
{
	P(is_size, sizeof(PyInterpreterState));
	P(is_next, OFF(PyInterpreterState, next));
#if HEX >= V(3, 11)
	P(is_threads_head, OFF(PyInterpreterState, threads.head));
#else
	P(is_threads_head, OFF(PyInterpreterState, tstate_head));
#endif
#if HEX >= V(3, 12)
	P(is_gil_ptr, OFF(PyInterpreterState, ceval.gil));
	P(is_gil_struct, OFF(PyInterpreterState, _gil));
	P(gil_locked, OFF(struct _gil_runtime_state, locked));
	P(gil_last_holder, OFF(struct _gil_runtime_state, last_holder));
#else
	NONE(is_gil_ptr);
	NONE(is_gil_struct);
	NONE(gil_locked);
	NONE(gil_last_holder);
#endif
}

static void thread(void)
{
	P(ts_size, sizeof(PyThreadState));
#if HEX >= V(3, 0)
	P(ts_prev, OFF(PyThreadState, prev));
#else
	NONE(ts_prev);
#endif
	P(ts_next, OFF(PyThreadState, next));
	P(ts_interp, OFF(PyThreadState, interp));
#if HEX >= V(3, 12)
	P(ts_status, OFF(PyThreadState, _status));
	P(ts_gil_bit, status_gil_bit());
#else
	NONE(ts_status);
	NONE(ts_gil_bit);
#endif
#if HEX < V(3, 11)
	P(ts_frame, OFF(PyThreadState, frame));
	NONE(ts_cframe);
	NONE(cframe_current_frame);
#elif HEX < V(3, 13)
	NONE(ts_frame);
	P(ts_cframe, OFF(PyThreadState, cframe));
	P(cframe_current_frame, OFF(_PyCFrame, current_frame));
#else
	P(ts_frame, OFF(PyThreadState, current_frame));
	NONE(ts_cframe);
	NONE(cframe_current_frame);
#endif
	P(ts_thread_id, OFF(PyThreadState, thread_id));
#if HEX >= V(3, 11)
	P(ts_native_thread_id, OFF(PyThreadState, native_thread_id));
	P(ts_datastack_chunk, OFF(PyThreadState, datastack_chunk));
	P(ts_datastack_top, OFF(PyThreadState, datastack_top));
	P(ts_datastack_limit, OFF(PyThreadState, datastack_limit));
	P(chunk_previous, OFF(_PyStackChunk, previous));
	P(chunk_size, OFF(_PyStackChunk, size));
	P(chunk_top, OFF(_PyStackChunk, top));
	P(chunk_data, OFF(_PyStackChunk, data));
#else
	NONE(ts_native_thread_id);
	NONE(ts_datastack_chunk);
	NONE(ts_datastack_top);
	NONE(ts_datastack_limit);
	NONE(chunk_previous);
	NONE(chunk_size);
	NONE(chunk_top);
	NONE(chunk_data);
#endif
}

static void frames(void)
{
#if HEX < V(3, 11)
	P(fo_size, sizeof(PyFrameObject));
	P(fo_back, OFF(PyFrameObject, f_back));
	P(fo_code, OFF(PyFrameObject, f_code));
	P(fo_lasti, OFF(PyFrameObject, f_lasti));
	P(fo_lineno, OFF(PyFrameObject, f_lineno));
	NONE(if_size);
	NONE(if_code);
	NONE(if_previous);
	NONE(if_instr);
	NONE(if_instr_is_prev);
	NONE(if_owner);
	NONE(if_is_entry);
	NONE(owner_cstack);
	NONE(owner_max);
#else
	NONE(fo_size);
	NONE(fo_back);
	NONE(fo_code);
	NONE(fo_lasti);
	NONE(fo_lineno);
	P(if_size, OFF(_PyInterpreterFrame, localsplus));
#  if HEX >= V(3, 13)
	P(if_code, OFF(_PyInterpreterFrame, f_executable));
#  else
	P(if_code, OFF(_PyInterpreterFrame, f_code));
#  endif
	P(if_previous, OFF(_PyInterpreterFrame, previous));
#  if HEX >= V(3, 13)
	P(if_instr, OFF(_PyInterpreterFrame, instr_ptr));
	P(if_instr_is_prev, 0);
#  else
	P(if_instr, OFF(_PyInterpreterFrame, prev_instr));
	P(if_instr_is_prev, 1);
#  endif
	P(if_owner, OFF(_PyInterpreterFrame, owner));
#  if HEX < V(3, 12)
	P(if_is_entry, OFF(_PyInterpreterFrame, is_entry));
	NONE(owner_cstack);
	P(owner_max, FRAME_OWNED_BY_FRAME_OBJECT);
#  else
	NONE(if_is_entry);
	P(owner_cstack, FRAME_OWNED_BY_CSTACK);
	P(owner_max, FRAME_OWNED_BY_CSTACK);
#  endif
#endif
	P(executable_tagged, 0);
}

static void code(void)
{
	P(co_size, sizeof(PyCodeObject));
	P(co_filename, OFF(PyCodeObject, co_filename));
	P(co_name, OFF(PyCodeObject, co_name));
#if HEX >= V(3, 11)
	P(co_qualname, OFF(PyCodeObject, co_qualname));
#else
	NONE(co_qualname);
#endif
	P(co_firstlineno, OFF(PyCodeObject, co_firstlineno));
	P(co_flags, OFF(PyCodeObject, co_flags));
#if HEX >= V(3, 10)
	P(co_linetable, OFF(PyCodeObject, co_linetable));
#else
	P(co_linetable, OFF(PyCodeObject, co_lnotab));
#endif
#if HEX < V(3, 11)
	P(co_code, OFF(PyCodeObject, co_code));
	NONE(co_code_adaptive);
	NONE(co_nlocalsplus);
	NONE(co_localsplusnames);
	P(co_varnames, OFF(PyCodeObject, co_varnames));
	P(co_nlocals, OFF(PyCodeObject, co_nlocals));
#else
	NONE(co_code);
	P(co_code_adaptive, OFF(PyCodeObject, co_code_adaptive));
	P(co_nlocalsplus, OFF(PyCodeObject, co_nlocalsplus));
	P(co_localsplusnames, OFF(PyCodeObject, co_localsplusnames));
	NONE(co_varnames);
	NONE(co_nlocals);
#endif
}

static void objects(void)
{
	P(ob_type, OFF(PyObject, ob_type));
	P(var_size, OFF(PyVarObject, ob_size));
#if HEX < V(3, 0)
	P(bytes_sval, OFF(PyStringObject, ob_sval));
	NONE(uni_length);
	NONE(uni_state);
	NONE(uni_ascii_size);
	NONE(uni_compact_size);
	NONE(uni_legacy_data);
	NONE(uni_kind_shift);
	NONE(uni_compact_bit);
	NONE(uni_ascii_bit);
#else
	P(bytes_sval, OFF(PyBytesObject, ob_sval));
	P(uni_length, OFF(PyASCIIObject, length));
	P(uni_state, OFF(PyASCIIObject, state));
	P(uni_ascii_size, sizeof(PyASCIIObject));
	P(uni_compact_size, sizeof(PyCompactUnicodeObject));
	P(uni_legacy_data, OFF(PyUnicodeObject, data));
	P(uni_kind_shift, STATE_BIT(kind));
	P(uni_compact_bit, STATE_BIT(compact));
	P(uni_ascii_bit, STATE_BIT(ascii));
#endif
	P(tp_name, OFF(PyTypeObject, tp_name));
}

/* Before 3.11 the dict keys object and its entries are private to
 * Objects/dict-common.h, and before 3.10 PyModuleObject is private to
 * Objects/moduleobject.c: these mirrors follow those definitions (identical
 * from 3.6 to 3.10). */
#if HEX >= V(3, 0) && HEX < V(3, 11)
struct old_dict_keys {
	Py_ssize_t dk_refcnt;
	Py_ssize_t dk_size;
	void *dk_lookup;
	Py_ssize_t dk_usable;
	Py_ssize_t dk_nentries;
	char dk_indices[];
};
struct old_dict_entry {
	Py_hash_t me_hash;
	PyObject *me_key;
	PyObject *me_value;
};
#endif
#if HEX < V(3, 10)
struct old_module {
	PyObject_HEAD
	PyObject *md_dict;
};
#  define MODULE_DICT OFF(struct old_module, md_dict)
#else
#  define MODULE_DICT OFF(PyModuleObject, md_dict)
#endif

#if HEX >= V(3, 11)
/* Offset (negative) of a managed-dict slot from the object, found by calling
 * the interpreter's own accessor on a fake object of a managed-dict type. */
static PyTypeObject fake_type;
static PyObject fake_obj;
static long fake_offset(void *slot)
{
	return (long)((char *)slot - (char *)&fake_obj);
}
#endif

/* Added for the object reader (lib/python/pyobj.c), thread names and the GC flag;
 * printed after the original fields, in struct order. */
static void more_objects(void)
{
	P(tuple_item, OFF(PyTupleObject, ob_item));
	P(list_item, OFF(PyListObject, ob_item));
	P(float_fval, OFF(PyFloatObject, ob_fval));
#if HEX >= V(3, 12)
	P(long_digit, OFF(PyLongObject, long_value.ob_digit));
	P(long_tag, OFF(PyLongObject, long_value.lv_tag));
#else
	P(long_digit, OFF(PyLongObject, ob_digit));
	NONE(long_tag);
#endif
	P(long_digit_bits, PyLong_SHIFT);
	P(long_digit_size, sizeof(digit));
#if HEX >= V(3, 6)
	P(dict_used, OFF(PyDictObject, ma_used));
	P(dict_keys, OFF(PyDictObject, ma_keys));
	P(dict_values, OFF(PyDictObject, ma_values));
#else
	NONE(dict_used);
	NONE(dict_keys);
	NONE(dict_values);
#endif
#if HEX >= V(3, 11)
	NONE(dk_size);
	P(dk_log2_size, OFF(PyDictKeysObject, dk_log2_size));
	P(dk_log2_index_bytes, OFF(PyDictKeysObject, dk_log2_index_bytes));
	P(dk_kind, OFF(PyDictKeysObject, dk_kind));
	P(dk_nentries, OFF(PyDictKeysObject, dk_nentries));
	P(dk_indices, OFF(PyDictKeysObject, dk_indices));
	P(dk_entry_size, sizeof(PyDictKeyEntry));
	P(dk_unicode_entry_size, sizeof(PyDictUnicodeEntry));
	P(dv_values, OFF(PyDictValues, values));
#elif HEX >= V(3, 6)
	P(dk_size, OFF(struct old_dict_keys, dk_size));
	NONE(dk_log2_size);
	NONE(dk_log2_index_bytes);
	NONE(dk_kind);
	P(dk_nentries, OFF(struct old_dict_keys, dk_nentries));
	P(dk_indices, OFF(struct old_dict_keys, dk_indices));
	P(dk_entry_size, sizeof(struct old_dict_entry));
	NONE(dk_unicode_entry_size);
	P(dv_values, 0);
#else
	NONE(dk_size);
	NONE(dk_log2_size);
	NONE(dk_log2_index_bytes);
	NONE(dk_kind);
	NONE(dk_nentries);
	NONE(dk_indices);
	NONE(dk_entry_size);
	NONE(dk_unicode_entry_size);
	NONE(dv_values);
#endif
	P(tp_basicsize, OFF(PyTypeObject, tp_basicsize));
	P(tp_dictoffset, OFF(PyTypeObject, tp_dictoffset));
	P(tp_flags, OFF(PyTypeObject, tp_flags));
#if HEX >= V(3, 11)
	P(ht_cached_keys, OFF(PyHeapTypeObject, ht_cached_keys));
	fake_type.tp_flags = Py_TPFLAGS_MANAGED_DICT;
	Py_SET_TYPE(&fake_obj, &fake_type);
#else
	NONE(ht_cached_keys);
#endif
#if HEX >= V(3, 13)
	printf("\t.inst_dict_kind = HM_IDICT_INLINE,\n");
	P(inst_dict_ptr, fake_offset(_PyObject_ManagedDictPointer(&fake_obj)));
	NONE(inst_values_ptr);
	P(tpflags_inline_values, Py_TPFLAGS_INLINE_VALUES);
#elif HEX >= V(3, 12)
	printf("\t.inst_dict_kind = HM_IDICT_TAGGED,\n");
	P(inst_dict_ptr, fake_offset(_PyObject_DictOrValuesPointer(&fake_obj)));
	NONE(inst_values_ptr);
	NONE(tpflags_inline_values);
#elif HEX >= V(3, 11)
	printf("\t.inst_dict_kind = HM_IDICT_PREHEADER,\n");
	P(inst_dict_ptr, fake_offset(_PyObject_ManagedDictPointer(&fake_obj)));
	P(inst_values_ptr, fake_offset(_PyObject_ValuesPointer(&fake_obj)));
	NONE(tpflags_inline_values);
#else
	printf("\t.inst_dict_kind = HM_IDICT_OFFSET,\n");
	NONE(inst_dict_ptr);
	NONE(inst_values_ptr);
	NONE(tpflags_inline_values);
#endif
#ifdef Py_TPFLAGS_MANAGED_DICT
	P(tpflags_managed_dict, Py_TPFLAGS_MANAGED_DICT);
#else
	NONE(tpflags_managed_dict);
#endif
	P(mod_dict, MODULE_DICT);
	P(cell_ref, OFF(PyCellObject, ob_ref));
#if HEX >= V(3, 12)
	P(is_modules, OFF(PyInterpreterState, imports.modules));
#else
	P(is_modules, OFF(PyInterpreterState, modules));
#endif
#if HEX >= V(3, 7) && HEX < V(3, 9)
	P(rt_gc_collecting, OFF(_PyRuntimeState, gc.collecting));
#else
	NONE(rt_gc_collecting);
#endif
#if HEX >= V(3, 9)
	P(is_gc_collecting, OFF(PyInterpreterState, gc.collecting));
#else
	NONE(is_gc_collecting);
#endif
#if HEX < V(3, 11)
	P(fo_localsplus, OFF(PyFrameObject, f_localsplus));
	NONE(co_localspluskinds);
#else
	NONE(fo_localsplus);
	P(co_localspluskinds, OFF(PyCodeObject, co_localspluskinds));
#endif
}

int main(int argc, char **argv)
{
	const char *full = argc > 1 ? argv[1] : PY_VERSION;

	printf("/* generated by tools/gen_layouts.sh from Python %s headers"
	       " \xe2\x80\x94 do not edit */\n", full);
	printf("#include \"layouts.h\"\n\n");
	printf("const hm_pylayout hm_pylayout_py%d%d = {\n",
	       PY_MAJOR_VERSION, PY_MINOR_VERSION);
	P(major, PY_MAJOR_VERSION);
	P(minor, PY_MINOR_VERSION);
	printf("\t.frame_model = %s,\n",
	       HEX >= V(3, 11) ? "HM_FRAMES_INTERP" : "HM_FRAMES_OBJECTS");
	printf("\t.linetable_kind = %s,\n",
	       HEX >= V(3, 11) ? "HM_LOCATIONS" :
	       HEX >= V(3, 10) ? "HM_LINETABLE_310" :
	       HEX >= V(3, 0) ? "HM_LNOTAB" : "HM_LNOTAB_27");
	printf("\t.str_kind = %s,\n", HEX >= V(3, 0) ? "HM_STR_PEP393" : "HM_STR_PY2");
#ifdef Py_GIL_DISABLED
	P(free_threaded, 1);
#else
	P(free_threaded, 0);
#endif
	runtime();
	interpreter();
	thread();
	frames();
	code();
	objects();
	more_objects();
	printf("};\n");
	return 0;
}
