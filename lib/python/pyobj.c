/* pyobj.c - decoding Python objects from another process's memory.
 *
 * The target keeps running while we read, so nothing read is trusted: an
 * object's type is recognised only by comparing its ob_type with the type
 * object addresses resolved from the interpreter's ELF symbols, every size
 * and count is bounded before it sizes a read, and a failed read turns into
 * "<?>" rather than an error up the stack.
 *
 * Dicts: one scanner serves every version. It walks the entries array of a
 * PyDictKeysObject (after the index table, whose size is dk_size * index
 * width before 3.11 and 1 << dk_log2_index_bytes since), taking keys from the
 * entries and values either from the entries (combined tables) or from a
 * separate values array (split tables, and instance attributes kept as
 * shared-key values on 3.11+). Instance dicts are found per
 * hm_pylayout.inst_dict_kind: tp_dictoffset, the 3.11 pre-header slots, the
 * tagged 3.12 slot, or 3.13's inline values after tp_basicsize.
 *
 * Frame locals: 3.14's fast-locals slots are tagged references
 * (_PyStackRef), whose tag bits are cleared before the value is read. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "proc/elf.h"
#include "python/pydecode.h"
#include "python/pyinternal.h"
#include "python/pyobj.h"

#define MAX_STR_READ 4096        /* code points decoded of one str */
#define MAX_LEN (1ll << 40)      /* believable container length */
#define MAX_ENTRIES (1 << 20)    /* dict entries scanned */
#define ENTRY_BATCH 128          /* dict entries read per call */
#define MAX_DIGITS 1024

static uint64_t ld_ptr(const uint8_t *b, int off)
{
	uint64_t v;
	memcpy(&v, b + off, 8);
	return v;
}

static int64_t ld_i64(const uint8_t *b, int off)
{
	int64_t v;
	memcpy(&v, b + off, 8);
	return v;
}

static int rd(const hm_pyobj_reader *r, uint64_t addr, void *buf, size_t len)
{
	if (!addr || addr + len < addr)
		return -1;
	return r->read(r->ctx, addr, buf, len) ? -1 : 0;
}

static int rd_ptr(const hm_pyobj_reader *r, uint64_t addr, uint64_t *v)
{
	return rd(r, addr, v, 8);
}

/* ---- reader setup ------------------------------------------------------ */

static int target_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	return hm_target_read(ctx, addr, buf, len) != HM_OK;
}

void hm_pyobj_reader_target(hm_pyobj_reader *r, hm_target *t)
{
	r->read = target_read;
	r->ctx = t;
}

static const char *const type_symbols[HM_PT_COUNT] = {
	[HM_PT_STR] = "PyUnicode_Type", [HM_PT_BYTES] = "PyBytes_Type",
	[HM_PT_INT] = "PyLong_Type", [HM_PT_FLOAT] = "PyFloat_Type",
	[HM_PT_BOOL] = "PyBool_Type", [HM_PT_NONE] = "_Py_NoneStruct",
	[HM_PT_TUPLE] = "PyTuple_Type", [HM_PT_LIST] = "PyList_Type",
	[HM_PT_DICT] = "PyDict_Type", [HM_PT_CELL] = "PyCell_Type",
	[HM_PT_MODULE] = "PyModule_Type",
};

int hm_pyobj_reader_init(hm_pyobj_reader *r, hm_python *py)
{
	memset(r, 0, sizeof *r);
	r->layout = py->layout;
	hm_pyobj_reader_target(r, py->t);
	if (!py->mod_path)
		return hm_error(HM_ENOTPY, "interpreter binary unknown");
	char *p = hm_target_path(py->t, py->mod_path);
	hm_elf *e = p ? hm_elf_open(p) : NULL;
	free(p);
	if (!e)
		return hm_errcode() ? hm_errcode() : HM_ENOMEM;
	for (int i = 0; i < HM_PT_COUNT; i++) {
		uint64_t a, sz;
		if (hm_elf_symbol(e, type_symbols[i], &a, &sz) == HM_OK)
			r->types[i] = a + py->mod_bias;
	}
	/* 2.7 names its str type PyString_Type and has no PyBytes_Type. */
	uint64_t a, sz;
	if (r->layout->str_kind == HM_STR_PY2 &&
	    hm_elf_symbol(e, "PyString_Type", &a, &sz) == HM_OK) {
		r->types[HM_PT_BYTES] = 0;
		r->types[HM_PT_STR] = a + py->mod_bias;
	}
	hm_elf_close(e);
	return HM_OK;
}

/* ---- type checks ------------------------------------------------------- */

static uint64_t type_of(const hm_pyobj_reader *r, uint64_t obj)
{
	uint64_t t;
	if (!obj || (obj & 7) || rd_ptr(r, obj + (uint64_t)r->layout->ob_type, &t) || !t || (t & 7))
		return 0;
	return t;
}

int hm_pyobj_kind(const hm_pyobj_reader *r, uint64_t obj)
{
	if (!obj || (obj & 7))
		return HM_PT_BAD;
	if (r->types[HM_PT_NONE] && obj == r->types[HM_PT_NONE])
		return HM_PT_NONE;
	uint64_t t = type_of(r, obj);
	if (!t)
		return HM_PT_BAD;
	for (int i = 0; i < HM_PT_COUNT; i++)
		if (i != HM_PT_NONE && r->types[i] && r->types[i] == t)
			return i;
	return HM_PT_OTHER;
}

static int is_kind(const hm_pyobj_reader *r, uint64_t obj, int kind)
{
	return r->types[kind] && type_of(r, obj) == r->types[kind];
}

/* ---- scalars ----------------------------------------------------------- */

/* A str's code points: kind (1, 2, 4), length, data address. */
static int str_data(const hm_pyobj_reader *r, uint64_t obj, int *kind, int64_t *len, uint64_t *data)
{
	const hm_pylayout *L = r->layout;
	uint8_t head[128];
	if (L->str_kind == HM_STR_PY2) {
		if ((size_t)L->bytes_sval > sizeof head || rd(r, obj, head, (size_t)L->bytes_sval))
			return -1;
		*kind = 1;
		*len = ld_i64(head, L->var_size);
		*data = obj + (uint64_t)L->bytes_sval;
		return *len < 0 || *len > MAX_LEN ? -1 : 0;
	}
	size_t need = (size_t)L->uni_compact_size + 8;
	if (need > sizeof head || rd(r, obj, head, (size_t)L->uni_ascii_size))
		return -1;
	uint32_t state;
	memcpy(&state, head + L->uni_state, 4);
	int k = (int)((state >> L->uni_kind_shift) & 7);
	int compact = (int)((state >> L->uni_compact_bit) & 1);
	int ascii = (int)((state >> L->uni_ascii_bit) & 1);
	int64_t n = ld_i64(head, L->uni_length);
	if (n < 0 || n > MAX_LEN || (k != 1 && k != 2 && k != 4) || (ascii && k != 1))
		return -1;
	if (compact) {
		*data = obj + (uint64_t)(ascii ? L->uni_ascii_size : L->uni_compact_size);
	} else {
		uint64_t p;
		if (rd_ptr(r, obj + (uint64_t)L->uni_legacy_data, &p) || !p)
			return -1;
		*data = p;
	}
	*kind = k;
	*len = n;
	return 0;
}

/* Decode up to max code points; *truncated says whether more remain. */
static int str_utf8(const hm_pyobj_reader *r, uint64_t obj, char *buf, size_t cap, int64_t max,
		    int *truncated)
{
	int kind;
	int64_t n;
	uint64_t data;
	buf[0] = 0;
	if (!is_kind(r, obj, HM_PT_STR) || str_data(r, obj, &kind, &n, &data))
		return -1;
	*truncated = n > max;
	if (n > max)
		n = max;
	size_t bytes = (size_t)n * (size_t)kind;
	uint8_t small[256];              /* (most names: no allocation) */
	uint8_t *raw = bytes <= sizeof small ? small : malloc(bytes);
	if (!raw)
		return -1;
	int rc = bytes && rd(r, data, raw, bytes) ? -1 : 0;
	if (!rc)
		hm_ucs_to_utf8(kind, raw, (size_t)n, buf, cap);
	if (raw != small)
		free(raw);
	return rc;
}

int hm_pyobj_str(const hm_pyobj_reader *r, uint64_t obj, char *buf, size_t cap)
{
	int trunc;
	if (!cap)
		return -1;
	return str_utf8(r, obj, buf, cap, MAX_STR_READ, &trunc);
}

int hm_pyobj_int(const hm_pyobj_reader *r, uint64_t obj, uint64_t *mag, int *negative)
{
	const hm_pylayout *L = r->layout;
	if (!is_kind(r, obj, HM_PT_INT) && !is_kind(r, obj, HM_PT_BOOL))
		return -1;
	if (L->long_digit < 0 || L->long_digit_bits <= 0 || L->long_digit_size <= 0)
		return -1;
	int64_t ndigits;
	int neg;
	if (L->long_tag >= 0) {
		uint64_t tag;
		if (rd_ptr(r, obj + (uint64_t)L->long_tag, &tag))
			return -1;
		int sign = (int)(tag & 3);   /* 0 positive, 1 zero, 2 negative */
		if (sign == 3)
			return -1;
		ndigits = (int64_t)(tag >> 3);
		neg = sign == 2;
		if (sign == 1)
			ndigits = 0;
	} else {
		int64_t size;
		if (rd(r, obj + (uint64_t)L->var_size, &size, 8))
			return -1;
		if (size == INT64_MIN)      /* garbage: -size would overflow */
			return -1;
		neg = size < 0;
		ndigits = size < 0 ? -size : size;
	}
	if (ndigits < 0 || ndigits > MAX_DIGITS)
		return -1;
	*negative = neg;
	*mag = 0;
	int bits = L->long_digit_bits;
	if (ndigits * bits > 64 + bits) {
		return 1;
	}
	uint8_t raw[64];
	size_t dsz = (size_t)L->long_digit_size;
	if ((size_t)ndigits * dsz > sizeof raw ||
	    (ndigits && rd(r, obj + (uint64_t)L->long_digit, raw, (size_t)ndigits * dsz)))
		return -1;
	uint64_t v = 0;
	for (int64_t i = ndigits - 1; i >= 0; i--) {
		uint32_t d = 0;
		if (dsz == 4)
			memcpy(&d, raw + i * 4, 4);
		else {
			uint16_t d16;
			memcpy(&d16, raw + i * 2, 2);
			d = d16;
		}
		if (d >> bits)
			return -1;
		if (v >> (64 - bits))
			return 1;
		v = (v << bits) | d;
	}
	*mag = v;
	return 0;
}

int hm_pyobj_uint128(const hm_pyobj_reader *r, uint64_t obj, uint64_t *hi, uint64_t *lo)
{
	const hm_pylayout *L = r->layout;
	if (!is_kind(r, obj, HM_PT_INT) || L->long_digit < 0 || L->long_digit_bits <= 0 ||
	    L->long_digit_size <= 0)
		return -1;
	int64_t ndigits;
	uint8_t raw[64 + 8];
	size_t dsz = (size_t)L->long_digit_size;
	int bits = L->long_digit_bits;
	/* One read: the header word that holds the size and up to 5 digits. */
	int head_off = L->long_tag >= 0 ? L->long_tag : L->var_size;
	if (L->long_digit - head_off < 8 || L->long_digit - head_off > 16)
		return -1;
	size_t want = (size_t)(L->long_digit - head_off) + (size_t)((128 + bits - 1) / bits) * dsz;
	if (want > sizeof raw || rd(r, obj + (uint64_t)head_off, raw, want))
		return -1;
	if (L->long_tag >= 0) {
		uint64_t tag = ld_ptr(raw, 0);
		if ((tag & 3) == 2 || (tag & 3) == 3)
			return -1;       /* negative or garbage */
		ndigits = (tag & 3) == 1 ? 0 : (int64_t)(tag >> 3);
	} else {
		ndigits = ld_i64(raw, 0);
		if (ndigits < 0)
			return -1;
	}
	if (ndigits > (128 + bits - 1) / bits)
		return -1;           /* wider than 128 bits, or garbage */
	const uint8_t *d0 = raw + (L->long_digit - head_off);
	unsigned __int128 v = 0;
	for (int64_t i = ndigits - 1; i >= 0; i--) {
		uint32_t d = 0;
		if (dsz == 4)
			memcpy(&d, d0 + i * 4, 4);
		else {
			uint16_t d16;
			memcpy(&d16, d0 + i * 2, 2);
			d = d16;
		}
		if (d >> bits || (v >> (128 - bits)))
			return -1;
		v = (v << bits) | d;
	}
	*hi = (uint64_t)(v >> 64);
	*lo = (uint64_t)v;
	return 0;
}

int hm_pyobj_float(const hm_pyobj_reader *r, uint64_t obj, double *v)
{
	if (r->layout->float_fval < 0 || !is_kind(r, obj, HM_PT_FLOAT))
		return -1;
	return rd(r, obj + (uint64_t)r->layout->float_fval, v, sizeof *v);
}

int64_t hm_pyobj_len(const hm_pyobj_reader *r, uint64_t obj)
{
	const hm_pylayout *L = r->layout;
	int kind = hm_pyobj_kind(r, obj);
	int64_t n = -1;
	if (kind == HM_PT_STR) {
		int k;
		uint64_t data;
		if (str_data(r, obj, &k, &n, &data))
			return -1;
	} else if (kind == HM_PT_BYTES || kind == HM_PT_TUPLE || kind == HM_PT_LIST) {
		if (rd(r, obj + (uint64_t)L->var_size, &n, 8))
			return -1;
	} else if (kind == HM_PT_DICT && L->dict_used >= 0) {
		if (rd(r, obj + (uint64_t)L->dict_used, &n, 8))
			return -1;
	} else {
		return -1;
	}
	return n < 0 || n > MAX_LEN ? -1 : n;
}

/* A C string at addr (tp_name): printable, NUL-terminated within cap. */
static int read_cstr(const hm_pyobj_reader *r, uint64_t addr, char *buf, size_t cap)
{
	if (!addr || cap < 2)
		return -1;
	size_t want = cap - 1;
	/* Stay within the page first: the string may end right before an
	 * unmapped one. */
	size_t in_page = 4096 - (size_t)(addr & 4095);
	size_t got = want < in_page ? want : in_page;
	if (rd(r, addr, buf, got))
		return -1;
	buf[got] = 0;
	if (strlen(buf) == got && got < want) {
		size_t more = want - got;
		if (!rd(r, addr + got, buf + got, more))
			buf[got + more] = 0;
	}
	size_t n = strnlen(buf, cap - 1);
	buf[n] = 0;
	if (!n)
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			return -1;
	return 0;
}

int hm_pyobj_type_name(const hm_pyobj_reader *r, uint64_t obj, char *buf, size_t cap)
{
	uint64_t t = type_of(r, obj), name;
	if (cap)
		buf[0] = 0;
	if (!t || r->layout->tp_name < 0 || rd_ptr(r, t + (uint64_t)r->layout->tp_name, &name))
		return -1;
	return read_cstr(r, name, buf, cap);
}

int hm_pyobj_item(const hm_pyobj_reader *r, uint64_t seq, int64_t i, uint64_t *item)
{
	const hm_pylayout *L = r->layout;
	int kind = hm_pyobj_kind(r, seq);
	int64_t n;
	if ((kind != HM_PT_TUPLE && kind != HM_PT_LIST) || i < 0 ||
	    rd(r, seq + (uint64_t)L->var_size, &n, 8) || i >= n || n > MAX_LEN)
		return -1;
	uint64_t base = seq + (uint64_t)L->tuple_item;
	if (kind == HM_PT_LIST && (L->list_item < 0 || rd_ptr(r, seq + (uint64_t)L->list_item, &base)))
		return -1;
	return rd_ptr(r, base + 8 * (uint64_t)i, item) || !*item ? -1 : 0;
}

/* ---- dicts ------------------------------------------------------------- */

/* Entries of a keys object: where they are and how they are laid out. */
struct keys_view {
	uint64_t entries;
	int64_t nentries;
	int entry_size;
	int key_off, value_off;      /* inside an entry */
};

static int keys_view(const hm_pyobj_reader *r, uint64_t keys, struct keys_view *kv)
{
	const hm_pylayout *L = r->layout;
	uint8_t head[128];
	if (!keys || (keys & 7) || L->dk_indices < 0 || (size_t)L->dk_indices > sizeof head ||
	    rd(r, keys, head, (size_t)L->dk_indices))
		return -1;
	kv->nentries = ld_i64(head, L->dk_nentries);
	uint64_t index_bytes;
	int general = 1;
	if (L->dk_size >= 0) {
		int64_t size = ld_i64(head, L->dk_size);
		if (size < 1 || size > (1ll << 40) || (size & (size - 1)))
			return -1;
		int width = size <= 0xff ? 1 : size <= 0xffff ? 2 : size <= 0xffffffffll ? 4 : 8;
		index_bytes = (uint64_t)size * (uint64_t)width;
	} else {
		int log2_size = head[L->dk_log2_size];
		int log2_ib = head[L->dk_log2_index_bytes];
		int kind = head[L->dk_kind];
		if (log2_size > 40 || log2_ib > 43 || log2_ib < log2_size || kind > 2)
			return -1;
		index_bytes = 1ull << log2_ib;
		general = kind == 0;
	}
	if (kv->nentries < 0 || kv->nentries > MAX_ENTRIES)
		return -1;
	kv->entries = keys + (uint64_t)L->dk_indices + index_bytes;
	if (general) {
		/* PyDictKeyEntry: hash, key, value */
		kv->entry_size = L->dk_entry_size;
		kv->key_off = 8;
		kv->value_off = 16;
	} else {
		/* PyDictUnicodeEntry: key, value */
		kv->entry_size = L->dk_unicode_entry_size;
		kv->key_off = 0;
		kv->value_off = 8;
	}
	return kv->entry_size >= 16 && kv->entry_size <= 64 ? 0 : -1;
}

struct find_key {
	const hm_pyobj_reader *r;
	const char *key;
	size_t klen;
	uint64_t value;
	int found;
};

static int match_key(void *ctx, uint64_t key, uint64_t value);

#define BATCH_KEY_MAX 64         /* longest key matched by batch_match */

/* A name looked up in a big dict (sys.modules: a thousand keys and more)
 * cost a read or two per key. For a reader of a live target, every key of
 * an entries batch has its head and first klen bytes read at once and is
 * compared in place: the index (in keys) of the key equal to f->key, -1
 * when none is, -2 when the batch could not be read that way (the caller
 * then matches key by key). A str of the right length that is not
 * compact ASCII is matched alone. */
static int batch_match(const struct find_key *f, const uint64_t *keys, int n)
{
	const hm_pyobj_reader *r = f->r;
	const hm_pylayout *L = r->layout;
	if (r->read != target_read || L->str_kind == HM_STR_PY2 || f->klen > BATCH_KEY_MAX ||
	    !r->types[HM_PT_STR] || L->uni_ascii_size <= 0 || L->uni_ascii_size > 64 || n < 2)
		return -2;
	size_t hs = (size_t)L->uni_ascii_size + f->klen;
	uint8_t buf[ENTRY_BATCH * (64 + BATCH_KEY_MAX)];
	hm_iov iov[ENTRY_BATCH];
	int idx[ENTRY_BATCH], m = 0;
	for (int j = 0; j < n && j < ENTRY_BATCH; j++) {
		if (!keys[j] || (keys[j] & 7) || keys[j] + hs < keys[j])
			continue;
		iov[m] = (hm_iov){keys[j], buf + (size_t)m * hs, hs};
		idx[m++] = j;
	}
	if (!m || hm_target_readv(r->ctx, iov, m) != HM_OK)
		return m ? -2 : -1;
	for (int i = 0; i < m; i++) {
		const uint8_t *h = buf + (size_t)i * hs;
		uint32_t state;
		memcpy(&state, h + L->uni_state, 4);
		if (ld_ptr(h, L->ob_type) != r->types[HM_PT_STR] ||
		    ld_i64(h, L->uni_length) != (int64_t)f->klen)
			continue;
		int compact = (int)((state >> L->uni_compact_bit) & 1);
		int ascii = (int)((state >> L->uni_ascii_bit) & 1);
		int kind = (int)((state >> L->uni_kind_shift) & 7);
		if (compact && ascii && kind == 1) {
			if (!memcmp(h + L->uni_ascii_size, f->key, f->klen))
				return idx[i];
		} else {
			/* Another form (its text elsewhere, or wider): as
			 * key-by-key reads it. */
			struct find_key one = *f;
			if (match_key(&one, keys[idx[i]], 1))
				return idx[i];
		}
	}
	return -1;
}

/* Visit (key, value) of a keys object; values from `values` (an array of
 * object pointers) when non-zero. Returns items visited or -1. */
/* The entries of keys (values: a split table's values array, or 0) through
 * fn until it returns nonzero; at, when given, is set to the address of the
 * word that held the value fn stopped at. */
static int scan_keys_at(const hm_pyobj_reader *r, uint64_t keys, uint64_t values,
			hm_pyobj_item_fn fn, void *ctx, int max, uint64_t *at)
{
	struct keys_view kv;
	if (keys_view(r, keys, &kv))
		return -1;
	uint8_t buf[ENTRY_BATCH * 64];
	uint64_t vals[ENTRY_BATCH];
	int visited = 0;
	for (int64_t i = 0; i < kv.nentries && visited < max;) {
		int64_t n = kv.nentries - i < ENTRY_BATCH ? kv.nentries - i : ENTRY_BATCH;
		if (rd(r, kv.entries + (uint64_t)i * (uint64_t)kv.entry_size, buf,
		       (size_t)n * (size_t)kv.entry_size))
			return visited ? visited : -1;
		if (values && rd(r, values + 8 * (uint64_t)i, vals, (size_t)n * 8))
			return visited ? visited : -1;
		/* Looking one name up: its key found among the batch's at once,
		 * and only that entry given to fn. */
		int hit = -2;
		if (fn == match_key) {
			uint64_t keys[ENTRY_BATCH];
			for (int64_t j = 0; j < n; j++) {
				const uint8_t *e = buf + j * kv.entry_size;
				uint64_t value = values ? vals[j] : ld_ptr(e, kv.value_off);
				keys[j] = value && !(value & 7) ? ld_ptr(e, kv.key_off) : 0;
			}
			hit = batch_match(ctx, keys, (int)n);
		}
		for (int64_t j = 0; j < n && visited < max; j++) {
			const uint8_t *e = buf + j * kv.entry_size;
			uint64_t key = ld_ptr(e, kv.key_off);
			uint64_t value = values ? vals[j] : ld_ptr(e, kv.value_off);
			if (!key || !value || (key & 7) || (value & 7))
				continue;    /* deleted or empty slot */
			visited++;
			if (hit != -2 && j != hit)
				continue;
			if (fn(ctx, key, value)) {
				if (at)
					*at = values ? values + 8 * (uint64_t)(i + j) :
					      kv.entries + (uint64_t)(i + j) * (uint64_t)kv.entry_size +
						      (uint64_t)kv.value_off;
				return visited;
			}
		}
		i += n;
	}
	return visited;
}

static int scan_keys(const hm_pyobj_reader *r, uint64_t keys, uint64_t values,
		     hm_pyobj_item_fn fn, void *ctx, int max)
{
	return scan_keys_at(r, keys, values, fn, ctx, max, NULL);
}

static int dict_items_at(const hm_pyobj_reader *r, uint64_t dict, hm_pyobj_item_fn fn,
			 void *ctx, int max, uint64_t *at);

int hm_pyobj_dict_items(const hm_pyobj_reader *r, uint64_t dict, hm_pyobj_item_fn fn,
			void *ctx, int max)
{
	return dict_items_at(r, dict, fn, ctx, max, NULL);
}

static int dict_items_at(const hm_pyobj_reader *r, uint64_t dict, hm_pyobj_item_fn fn,
			 void *ctx, int max, uint64_t *at)
{
	const hm_pylayout *L = r->layout;
	if (L->dict_keys < 0 || !is_kind(r, dict, HM_PT_DICT))
		return -1;
	uint64_t keys, values;
	if (rd_ptr(r, dict + (uint64_t)L->dict_keys, &keys) ||
	    rd_ptr(r, dict + (uint64_t)L->dict_values, &values))
		return -1;
	if (values)
		values += (uint64_t)L->dv_values;
	return scan_keys_at(r, keys, values, fn, ctx, max, at);
}

#define TPFLAGS_TUPLE_SUBCLASS (1ull << 26)
#define TPFLAGS_DICT_SUBCLASS (1ull << 29)

/* Is obj's type t, or one with the given subclass flag? */
static int is_kind_or_sub(const hm_pyobj_reader *r, uint64_t obj, int kind, uint64_t flag)
{
	uint64_t t = type_of(r, obj), flags;
	if (!t)
		return 0;
	if (r->types[kind] && t == r->types[kind])
		return 1;
	return r->layout->tp_flags >= 0 && !rd_ptr(r, t + (uint64_t)r->layout->tp_flags, &flags) &&
	       (flags & flag);
}

int hm_pyobj_dict_items_sub(const hm_pyobj_reader *r, uint64_t dict, hm_pyobj_item_fn fn,
			    void *ctx, int max)
{
	const hm_pylayout *L = r->layout;
	if (L->dict_keys < 0 || !is_kind_or_sub(r, dict, HM_PT_DICT, TPFLAGS_DICT_SUBCLASS))
		return -1;
	uint64_t kv[2];
	if (L->dict_values != L->dict_keys + 8 || rd(r, dict + (uint64_t)L->dict_keys, kv, 16))
		return -1;
	if (kv[1])
		kv[1] += (uint64_t)L->dv_values;
	return scan_keys(r, kv[0], kv[1], fn, ctx, max);
}

int hm_pyobj_tuple_head(const hm_pyobj_reader *r, uint64_t obj, uint64_t *items, int n)
{
	const hm_pylayout *L = r->layout;
	uint64_t buf[16];
	if (n < 1 || n > 8 || L->tuple_item != L->var_size + 8 ||
	    !is_kind_or_sub(r, obj, HM_PT_TUPLE, TPFLAGS_TUPLE_SUBCLASS) ||
	    rd(r, obj + (uint64_t)L->var_size, buf, (size_t)(n + 1) * 8) || (int64_t)buf[0] < n ||
	    (int64_t)buf[0] > MAX_LEN)
		return -1;
	for (int i = 0; i < n; i++) {
		if (!buf[i + 1] || (buf[i + 1] & 7))
			return -1;
		items[i] = buf[i + 1];
	}
	return 0;
}

static int match_key(void *ctx, uint64_t key, uint64_t value)
{
	struct find_key *f = ctx;
	char buf[256];
	int trunc;
	int kind;
	int64_t n;
	uint64_t data;
	if (f->klen >= sizeof buf - 1)
		return 0;
	/* Most keys differ in length: check that before reading the text. */
	if (!is_kind(f->r, key, HM_PT_STR) || str_data(f->r, key, &kind, &n, &data) ||
	    n > (int64_t)f->klen)
		return 0;
	if (str_utf8(f->r, key, buf, sizeof buf, (int64_t)f->klen + 1, &trunc) == 0 && !trunc &&
	    !strcmp(buf, f->key)) {
		f->value = value;
		f->found = 1;
		return 1;
	}
	return 0;
}

static int dict_get_at(const hm_pyobj_reader *r, uint64_t dict, const char *key,
		       uint64_t *value, uint64_t *at)
{
	struct find_key f = {r, key, strlen(key), 0, 0};
	if (dict_items_at(r, dict, match_key, &f, MAX_ENTRIES, at) < 0 || !f.found)
		return -1;
	*value = f.value;
	return 0;
}

int hm_pyobj_dict_get(const hm_pyobj_reader *r, uint64_t dict, const char *key, uint64_t *value)
{
	return dict_get_at(r, dict, key, value, NULL);
}

/* Look a name up in shared keys + a values array (instance attributes). */
static int values_get(const hm_pyobj_reader *r, uint64_t keys, uint64_t values, const char *name,
		      uint64_t *value, uint64_t *at)
{
	struct find_key f = {r, name, strlen(name), 0, 0};
	if (!values || scan_keys_at(r, keys, values + (uint64_t)r->layout->dv_values, match_key,
				    &f, MAX_ENTRIES, at) < 0 || !f.found)
		return -1;
	*value = f.value;
	return 0;
}

int hm_pyobj_getattr(const hm_pyobj_reader *r, uint64_t obj, const char *name, uint64_t *value)
{
	return hm_pyobj_getattr_at(r, obj, name, value, NULL);
}

int hm_pyobj_getattr_at(const hm_pyobj_reader *r, uint64_t obj, const char *name,
			uint64_t *value, uint64_t *at)
{
	const hm_pylayout *L = r->layout;
	uint64_t t = type_of(r, obj);
	if (!t || L->tp_flags < 0 || L->tp_dictoffset < 0)
		return -1;
	uint64_t flags;
	int64_t dictoffset, basicsize;
	if (rd_ptr(r, t + (uint64_t)L->tp_flags, &flags) ||
	    rd(r, t + (uint64_t)L->tp_dictoffset, &dictoffset, 8) ||
	    rd(r, t + (uint64_t)L->tp_basicsize, &basicsize, 8))
		return -1;
	int managed = L->tpflags_managed_dict > 0 && (flags & (uint64_t)L->tpflags_managed_dict);
	uint64_t dict = 0, slot, cached = 0;
	if (!managed || L->inst_dict_kind == HM_IDICT_OFFSET) {
		if (dictoffset <= 0 || dictoffset > 1 << 20 ||
		    rd_ptr(r, obj + (uint64_t)dictoffset, &dict) || !dict)
			return -1;
		return dict_get_at(r, dict, name, value, at);
	}
	if (rd_ptr(r, obj + (uint64_t)(int64_t)L->inst_dict_ptr, &slot))
		return -1;
	if (L->inst_dict_kind == HM_IDICT_TAGGED && (slot & 1)) {
		/* 3.12: the slot holds the values pointer minus one */
		if (L->ht_cached_keys < 0 || rd_ptr(r, t + (uint64_t)L->ht_cached_keys, &cached))
			return -1;
		return values_get(r, cached, slot + 1, name, value, at);
	}
	if (slot)
		return dict_get_at(r, slot, name, value, at);
	if (L->ht_cached_keys < 0 || rd_ptr(r, t + (uint64_t)L->ht_cached_keys, &cached))
		return -1;
	uint64_t values = 0;
	if (L->inst_dict_kind == HM_IDICT_PREHEADER) {
		if (L->inst_values_ptr == -1 ||
		    rd_ptr(r, obj + (uint64_t)(int64_t)L->inst_values_ptr, &values))
			return -1;
	} else if (L->inst_dict_kind == HM_IDICT_INLINE) {
		if (L->tpflags_inline_values <= 0 || !(flags & (uint64_t)L->tpflags_inline_values) ||
		    basicsize <= 0 || basicsize > 1 << 20)
			return -1;
		values = obj + (uint64_t)basicsize;
	}
	return values_get(r, cached, values, name, value, at);
}

/* ---- reprs ------------------------------------------------------------- */

#define REPR_CHARS 60            /* code points shown of a str */

/* Quote s (UTF-8) Python-style with escapes, cut to fit cap. */
static size_t quote(const char *prefix, const uint8_t *s, size_t n, int truncated, char *buf,
		    size_t cap)
{
	size_t k = (size_t)snprintf(buf, cap, "%s'", prefix);
	for (size_t i = 0; i < n && k + 8 < cap; i++) {
		uint8_t c = s[i];
		if (c == '\'' || c == '\\')
			k += (size_t)snprintf(buf + k, cap - k, "\\%c", c);
		else if (c == '\n')
			k += (size_t)snprintf(buf + k, cap - k, "\\n");
		else if (c == '\t')
			k += (size_t)snprintf(buf + k, cap - k, "\\t");
		else if (c < 0x20 || c == 0x7f || (c >= 0x80 && *prefix == 'b'))
			k += (size_t)snprintf(buf + k, cap - k, "\\x%02x", c);
		else
			buf[k++] = (char)c;
	}
	if (k + 5 > cap)
		k = cap > 5 ? cap - 5 : 0;
	/* Never leave half a UTF-8 sequence before the closing quote. */
	while (k > 0 && ((uint8_t)buf[k - 1] & 0xc0) == 0x80)
		k--;
	if (k > 0 && ((uint8_t)buf[k - 1] & 0xc0) == 0xc0)
		k--;
	k += (size_t)snprintf(buf + k, cap - k, "%s'", truncated ? "..." : "");
	return k < cap ? k : cap - 1;
}

/* Python's float repr: the fewest significant digits that read back as v,
 * positional when the exponent is in [-4, 16), with ".0" on integral values. */
static size_t float_repr(double v, char *buf, size_t cap)
{
	if (isnan(v))
		return (size_t)snprintf(buf, cap, "nan");
	if (isinf(v))
		return (size_t)snprintf(buf, cap, v < 0 ? "-inf" : "inf");
	char tmp[64];
	int prec = 1;
	for (; prec < 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
	int exp = atoi(strchr(tmp, 'e') + 1);
	if (exp >= -4 && exp < 16) {
		int decimals = prec - 1 - exp;
		snprintf(tmp, sizeof tmp, "%.*f", decimals > 0 ? decimals : 0, v);
		if (!strchr(tmp, '.'))
			strcat(tmp, ".0");
	}
	return (size_t)snprintf(buf, cap, "%s", tmp);
}

static size_t put(char *buf, size_t cap, const char *s)
{
	int n = snprintf(buf, cap, "%s", s);
	return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

size_t hm_pyobj_repr(const hm_pyobj_reader *r, uint64_t obj, char *buf, size_t cap)
{
	if (!cap)
		return 0;
	buf[0] = 0;
	int kind = hm_pyobj_kind(r, obj);
	char tmp[512];
	int trunc = 0;
	switch (kind) {
	case HM_PT_NONE:
		return put(buf, cap, "None");
	case HM_PT_STR:
		if (str_utf8(r, obj, tmp, sizeof tmp, REPR_CHARS, &trunc))
			break;
		return quote("", (const uint8_t *)tmp, strlen(tmp), trunc, buf, cap);
	case HM_PT_BYTES: {
		int64_t n;
		if (rd(r, obj + (uint64_t)r->layout->var_size, &n, 8) || n < 0 || n > MAX_LEN)
			break;
		size_t show = n > REPR_CHARS ? REPR_CHARS : (size_t)n;
		if (show && rd(r, obj + (uint64_t)r->layout->bytes_sval, tmp, show))
			break;
		return quote("b", (const uint8_t *)tmp, show, n > REPR_CHARS, buf, cap);
	}
	case HM_PT_BOOL:
	case HM_PT_INT: {
		uint64_t mag;
		int neg, rc = hm_pyobj_int(r, obj, &mag, &neg);
		if (rc < 0)
			break;
		if (kind == HM_PT_BOOL)
			return put(buf, cap, rc == 0 && mag ? "True" : "False");
		if (rc == 1)
			return put(buf, cap, neg ? "<int < -2**64>" : "<int >= 2**64>");
		int n = snprintf(buf, cap, "%s%llu", neg && mag ? "-" : "", (unsigned long long)mag);
		return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
	}
	case HM_PT_FLOAT: {
		double v;
		if (hm_pyobj_float(r, obj, &v))
			break;
		return float_repr(v, buf, cap) < cap ? strlen(buf) : cap - 1;
	}
	case HM_PT_TUPLE:
	case HM_PT_LIST:
	case HM_PT_DICT: {
		int64_t n = hm_pyobj_len(r, obj);
		if (n < 0)
			break;
		snprintf(tmp, sizeof tmp, "<%s of %lld>",
			 kind == HM_PT_TUPLE ? "tuple" : kind == HM_PT_LIST ? "list" : "dict",
			 (long long)n);
		return put(buf, cap, tmp);
	}
	case HM_PT_BAD:
		break;
	default: {
		char name[128];
		if (hm_pyobj_type_name(r, obj, name, sizeof name))
			break;
		snprintf(tmp, sizeof tmp, "<%s object>", name);
		return put(buf, cap, tmp);
	}
	}
	return put(buf, cap, "<?>");
}

/* ---- frame locals ------------------------------------------------------ */

#define MAX_LOCALS 512
#define CO_FAST_HIDDEN 0x10       /* 3.13: inlined comprehension variable */
#define CO_FAST_CELL 0x40
#define CO_FAST_FREE 0x80

/* The frame's fast locals: the names tuple (*names), how many (returned,
 * at most MAX_LOCALS), their kinds (3.11+, else 0) and raw values (untagged
 * on 3.14+, 0 for unbound or hidden). -1 if the frame cannot be read. */
static int locals_read(const hm_pyobj_reader *r, const hm_pyframe *f, uint64_t *names,
		       uint8_t kinds[MAX_LOCALS], uint64_t vals[MAX_LOCALS])
{
	const hm_pylayout *L = r->layout;
	if (!f || !f->code || !f->addr)
		return -1;
	uint64_t code = f->code->addr, values;
	int64_t n;
	memset(kinds, 0, MAX_LOCALS);
	if (L->fo_localsplus >= 0 && L->co_varnames >= 0 && L->co_nlocals >= 0) {
		int32_t nlocals;
		if (rd_ptr(r, code + (uint64_t)L->co_varnames, names) ||
		    rd(r, code + (uint64_t)L->co_nlocals, &nlocals, 4))
			return -1;
		n = hm_pyobj_len(r, *names);
		if (n < 0 || nlocals < 0)
			return -1;
		if (nlocals < n)
			n = nlocals;
		values = f->addr + (uint64_t)L->fo_localsplus;
	} else if (L->co_localsplusnames >= 0 && L->if_size >= 0) {
		uint64_t kb;
		if (rd_ptr(r, code + (uint64_t)L->co_localsplusnames, names))
			return -1;
		n = hm_pyobj_len(r, *names);
		if (n < 0)
			return -1;
		if (n > MAX_LOCALS)
			n = MAX_LOCALS;
		if (L->co_localspluskinds >= 0 && n &&
		    (rd_ptr(r, code + (uint64_t)L->co_localspluskinds, &kb) ||
		     !is_kind(r, kb, HM_PT_BYTES) ||
		     rd(r, kb + (uint64_t)L->bytes_sval, kinds, (size_t)n)))
			return -1;
		values = f->addr + (uint64_t)L->if_size;
	} else {
		return -1;
	}
	if (n > MAX_LOCALS)
		n = MAX_LOCALS;
	if (n && rd(r, values, vals, (size_t)n * 8))
		return -1;
	for (int64_t i = 0; i < n; i++) {
		uint64_t v = vals[i];
		if (L->executable_tagged) {
			/* 3.14+: slots are _PyStackRefs. The low bit is set
			 * on deferred or immortal references (None, small ints,
			 * True; the NULL ref is 1); both low bits set is an int
			 * tagged in place, not an object (never a local). */
			v = (v & 3) == 3 ? 0 : v & ~(uint64_t)3;
		}
		vals[i] = (kinds[i] & CO_FAST_HIDDEN) ? 0 : v;
	}
	return (int)n;
}

/* A cell variable's value: the cell's contents (0: unbound). */
static uint64_t cell_value(const hm_pyobj_reader *r, uint8_t kind, uint64_t v, int *cell)
{
	*cell = (kind & (CO_FAST_CELL | CO_FAST_FREE)) && is_kind(r, v, HM_PT_CELL);
	if (*cell && (r->layout->cell_ref < 0 || rd_ptr(r, v + (uint64_t)r->layout->cell_ref, &v)))
		return 0;
	return v;
}

int hm_pyobj_locals(const hm_pyobj_reader *r, const hm_pyframe *f, hm_pyobj_local_fn fn,
		    void *ctx)
{
	uint64_t names, vals[MAX_LOCALS];
	uint8_t kinds[MAX_LOCALS];
	int n = locals_read(r, f, &names, kinds, vals), visited = 0;
	for (int i = 0; i < n; i++) {
		uint64_t nameobj, v = vals[i];
		char name[128];
		int cell;
		if (!v || hm_pyobj_item(r, names, i, &nameobj) || hm_pyobj_str(r, nameobj, name, sizeof name))
			continue;
		if (!(v = cell_value(r, kinds[i], v, &cell)))
			continue;    /* empty cell: unbound */
		visited++;
		if (fn(ctx, name, v, cell))
			break;
	}
	return n < 0 ? -1 : visited;
}

int hm_pyobj_local_values(const hm_pyobj_reader *r, const hm_pyframe *f, uint64_t *vals, int max)
{
	uint64_t names, raw[MAX_LOCALS];
	uint8_t kinds[MAX_LOCALS];
	int n = locals_read(r, f, &names, kinds, raw);
	if (n > max)
		n = max;
	for (int i = 0; i < n; i++) {
		int cell;
		vals[i] = raw[i] ? cell_value(r, kinds[i], raw[i], &cell) : 0;
	}
	return n;
}

uint64_t hm_pyobj_local_slot(const hm_pyobj_reader *r, const hm_pyframe *f, int i)
{
	const hm_pylayout *L = r->layout;
	if (!f || !f->addr || i < 0 || i >= MAX_LOCALS || L->executable_tagged)
		return 0;
	if (L->fo_localsplus >= 0 && L->co_varnames >= 0 && L->co_nlocals >= 0)
		return f->addr + (uint64_t)L->fo_localsplus + 8 * (uint64_t)i;
	if (L->co_localsplusnames >= 0 && L->if_size >= 0)
		return f->addr + (uint64_t)L->if_size + 8 * (uint64_t)i;
	return 0;
}

/* ---- sets -------------------------------------------------------------- */

/* PySetObject is PyObject_HEAD, fill, used, mask, table (setentry *), ...
 * in every 3.x (and 2.7); a setentry is {key, hash} on 3.x and {hash, key}
 * on 2.7. tools/gen_async_layouts.sh prints these offsets from each
 * version's headers (lib/python/layouts/async_py*.c) and tests/unit/test_pyasync.c
 * checks they agree with the constants here. A deleted slot holds the dummy
 * key with hash -1, which no live key has. */
#define SET_USED 24
#define SET_MASK 32
#define SET_TABLE 40
#define SET_ENTRY 16
#define MAX_SET (1 << 20)

int hm_pyobj_set_items(const hm_pyobj_reader *r, uint64_t set, hm_pyobj_item_fn fn, void *ctx,
		       int max)
{
	uint64_t type = 0;
	return hm_pyobj_set_items_typed(r, set, &type, fn, ctx, max);
}

int hm_pyobj_set_items_typed(const hm_pyobj_reader *r, uint64_t set, uint64_t *type,
			     hm_pyobj_item_fn fn, void *ctx, int max)
{
	char tname[16];
	uint8_t head[48];
	if (*type) {
		if (rd(r, set, head, sizeof head) || ld_ptr(head, r->layout->ob_type) != *type)
			return -1;
	} else {
		if (hm_pyobj_type_name(r, set, tname, sizeof tname) ||
		    (strcmp(tname, "set") && strcmp(tname, "frozenset")) || rd(r, set, head, sizeof head))
			return -1;
		*type = ld_ptr(head, r->layout->ob_type);
	}
	int64_t used = ld_i64(head, SET_USED), mask = ld_i64(head, SET_MASK);
	uint64_t table = ld_ptr(head, SET_TABLE);
	if (used < 0 || mask < 0 || mask >= MAX_SET || ((mask + 1) & mask) || used > mask + 1 ||
	    !table || (table & 7))
		return -1;
	int key_off = r->layout->major == 2 ? 8 : 0, hash_off = 8 - key_off;
	uint8_t buf[ENTRY_BATCH * SET_ENTRY];
	int visited = 0;
	for (int64_t i = 0; i <= mask && visited < max && visited < used;) {
		int64_t n = mask + 1 - i < ENTRY_BATCH ? mask + 1 - i : ENTRY_BATCH;
		if (rd(r, table + (uint64_t)i * SET_ENTRY, buf, (size_t)n * SET_ENTRY))
			return visited ? visited : -1;
		for (int64_t j = 0; j < n && visited < max; j++) {
			uint64_t key = ld_ptr(buf + j * SET_ENTRY, key_off);
			int64_t hash = ld_i64(buf + j * SET_ENTRY, hash_off);
			if (!key || (key & 7) || hash == -1)
				continue;    /* empty or deleted slot */
			visited++;
			if (fn(ctx, key, 0))
				return visited;
		}
		i += n;
	}
	return visited;
}

int hm_pyobj_keys_index(const hm_pyobj_reader *r, uint64_t keys, const char *name, int64_t *index,
			uint64_t *key_obj)
{
	struct keys_view kv;
	if (keys_view(r, keys, &kv) || kv.nentries > 256)
		return -1;
	struct find_key f = {r, name, strlen(name), 0, 0};
	uint8_t buf[ENTRY_BATCH * 64];
	for (int64_t i = 0; i < kv.nentries;) {
		int64_t n = kv.nentries - i < ENTRY_BATCH ? kv.nentries - i : ENTRY_BATCH;
		if (rd(r, kv.entries + (uint64_t)i * (uint64_t)kv.entry_size, buf,
		       (size_t)n * (size_t)kv.entry_size))
			return -1;
		for (int64_t j = 0; j < n; j++) {
			uint64_t key = ld_ptr(buf + j * kv.entry_size, kv.key_off);
			if (key && !(key & 7) && match_key(&f, key, 1) && f.found) {
				*index = i + j;
				*key_obj = key;
				return 0;
			}
		}
		i += n;
	}
	return -1;
}
