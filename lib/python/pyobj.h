/* pyobj.h - reading Python objects out of a target without running its code.
 *
 * An hm_pyobj_reader pairs a layout (hm_pylayout) with a memory reader and
 * the addresses of the built-in type objects (PyUnicode_Type, PyLong_Type,
 * ... resolved from the interpreter's ELF symbols). It decodes str, bytes,
 * int, float, bool, None, tuple, list and dict contents, type names and
 * instance attributes, and formats short reprs ("'abc'", "42", "<list of 3>",
 * "<Foo object>"). Every read is bounded and checked: garbage memory gives
 * "<?>" or an error, never a crash. Nothing here calls into the target. */
#ifndef HOMURA_PYOBJ_H
#define HOMURA_PYOBJ_H

#include <stddef.h>
#include <stdint.h>

#include "python/pylayout.h"
#include "python/python.h"

/* Read len bytes at addr into buf; 0 on success, non-zero if unreadable. */
typedef int (*hm_pyobj_read_fn)(void *ctx, uint64_t addr, void *buf, size_t len);

enum hm_pytype {
	HM_PT_STR, HM_PT_BYTES, HM_PT_INT, HM_PT_FLOAT, HM_PT_BOOL, HM_PT_NONE,
	HM_PT_TUPLE, HM_PT_LIST, HM_PT_DICT, HM_PT_CELL, HM_PT_MODULE,
	HM_PT_COUNT,
	HM_PT_OTHER = -1,        /* readable object of another type */
	HM_PT_BAD = -2,          /* not a readable object */
};

typedef struct hm_pyobj_reader {
	const hm_pylayout *layout;
	hm_pyobj_read_fn read;
	void *ctx;
	/* Type object addresses by enum hm_pytype; for HM_PT_NONE the address
	 * of the None object itself. 0: unknown (that kind reads as OTHER). */
	uint64_t types[HM_PT_COUNT];
} hm_pyobj_reader;

/* Reader for an attached interpreter: its target, layout, and the type
 * addresses looked up in its ELF. HM_OK, or an error when the interpreter's
 * binary cannot be opened. */
int hm_pyobj_reader_init(hm_pyobj_reader *r, hm_python *py);
/* Read through t's memory (what hm_pyobj_reader_init sets): a reader of a
 * target also finds a name among a dict's keys many keys a read. */
void hm_pyobj_reader_target(hm_pyobj_reader *r, hm_target *t);

/* enum hm_pytype of the object at addr. */
int hm_pyobj_kind(const hm_pyobj_reader *r, uint64_t obj);

/* str contents as UTF-8 (truncated to cap). 0, or -1 if not a readable str. */
int hm_pyobj_str(const hm_pyobj_reader *r, uint64_t obj, char *buf, size_t cap);
/* int (or bool) value: magnitude and sign. 0 ok, 1 ok but wider than 64
 * bits (*mag undefined), -1 not a readable int. */
int hm_pyobj_int(const hm_pyobj_reader *r, uint64_t obj, uint64_t *mag, int *negative);
/* A non-negative int below 2**128 (OpenTelemetry trace ids): 0, or -1 if
 * not a readable int of that range. */
int hm_pyobj_uint128(const hm_pyobj_reader *r, uint64_t obj, uint64_t *hi, uint64_t *lo);
int hm_pyobj_float(const hm_pyobj_reader *r, uint64_t obj, double *v);
/* Length of a str, bytes, tuple, list or dict; -1 otherwise. */
int64_t hm_pyobj_len(const hm_pyobj_reader *r, uint64_t obj);
/* Name of the object's type (tp_name). 0, or -1. */
int hm_pyobj_type_name(const hm_pyobj_reader *r, uint64_t obj, char *buf, size_t cap);
/* Item i of a tuple or list. 0, or -1. */
int hm_pyobj_item(const hm_pyobj_reader *r, uint64_t seq, int64_t i, uint64_t *item);

/* Call fn(ctx, key, value) for each item of a dict (at most max items);
 * fn returns non-zero to stop. Returns the number of items visited, or -1 if
 * the dict is not readable. */
typedef int (*hm_pyobj_item_fn)(void *ctx, uint64_t key, uint64_t value);
int hm_pyobj_dict_items(const hm_pyobj_reader *r, uint64_t dict, hm_pyobj_item_fn fn,
			void *ctx, int max);
/* The same for a dict or an instance of a dict subclass (its type has
 * Py_TPFLAGS_DICT_SUBCLASS). */
int hm_pyobj_dict_items_sub(const hm_pyobj_reader *r, uint64_t dict, hm_pyobj_item_fn fn,
			    void *ctx, int max);
/* The first n (1-8) items of a tuple or tuple subclass instance, in one
 * read. 0, or -1 (not such a tuple, shorter, or a NULL item). */
int hm_pyobj_tuple_head(const hm_pyobj_reader *r, uint64_t obj, uint64_t *items, int n);
/* Value for a str key in a dict. 0 found, -1 not found or unreadable. */
int hm_pyobj_dict_get(const hm_pyobj_reader *r, uint64_t dict, const char *key, uint64_t *value);
/* An attribute from an instance's __dict__ (wherever this version keeps
 * it: a dict, or shared-key values). 0 found, -1 otherwise. */
int hm_pyobj_getattr(const hm_pyobj_reader *r, uint64_t obj, const char *name, uint64_t *value);
/* The same, and where the value was found: the address of the word that
 * holds it (in the instance's values array or its dict's table), which
 * changes when the attribute is set again while the dict keeps its table. */
int hm_pyobj_getattr_at(const hm_pyobj_reader *r, uint64_t obj, const char *name,
			uint64_t *value, uint64_t *at);

/* Call fn(ctx, item, 0) for each item of a set or frozenset (the type's
 * tp_name is "set" or "frozenset"; at most max items; deleted slots are
 * skipped). Returns the number visited, or -1 if it is not a readable set. */
int hm_pyobj_set_items(const hm_pyobj_reader *r, uint64_t set, hm_pyobj_item_fn fn, void *ctx,
		       int max);
/* The same, with *type the set's type: read from the type's name when 0
 * (and then set), else checked against the object's type word, which
 * spares reading the type's name at every call on the same set. */
int hm_pyobj_set_items_typed(const hm_pyobj_reader *r, uint64_t set, uint64_t *type,
			     hm_pyobj_item_fn fn, void *ctx, int max);

/* Call fn(ctx, name, value, is_cell) for each bound local variable of a
 * sampled frame (names from co_varnames / co_localsplusnames, values from
 * the frame's fast locals, untagged on 3.14+; a cell variable's value is the
 * cell's contents).
 * Returns the number visited, or -1 if the frame cannot be read. */
typedef int (*hm_pyobj_local_fn)(void *ctx, const char *name, uint64_t value, int is_cell);
int hm_pyobj_locals(const hm_pyobj_reader *r, const hm_pyframe *f, hm_pyobj_local_fn fn,
		    void *ctx);
/* The same values without their names, by index (0: unbound; a cell's
 * contents): at most max, how many returned, -1 if unreadable. */
int hm_pyobj_local_values(const hm_pyobj_reader *r, const hm_pyframe *f, uint64_t *vals, int max);
/* Where local i of frame f lives (a plain local: 0 on 3.14+, whose slots
 * are tagged), 0 if unknown. */
uint64_t hm_pyobj_local_slot(const hm_pyobj_reader *r, const hm_pyframe *f, int i);

/* A short repr written into buf (always NUL-terminated; "<?>" for
 * unreadable memory). Returns the length written. */
size_t hm_pyobj_repr(const hm_pyobj_reader *r, uint64_t obj, char *buf, size_t cap);
/* The entry index of the str key `name` in the keys object (PyDictKeysObject)
 * at keys, e.g. a class's shared instance keys (3.11+: entry i holds the
 * value at an instance's values[i]): 0 with *index and the key object's
 * address, -1 if absent or unreadable. */
int hm_pyobj_keys_index(const hm_pyobj_reader *r, uint64_t keys, const char *name, int64_t *index,
			uint64_t *key_obj);

#endif
