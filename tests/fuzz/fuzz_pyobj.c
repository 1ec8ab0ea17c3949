/* fuzz_pyobj.c - the remote object reader (lib/python/pyobj.c: dump --locals,
 * thread names) fed random "remote" memory.
 *
 * Input: a layout byte (2.7 .. 3.13 tables), then the memory, served at
 * BASE (zeros after it up to 1 MiB, the rest unmapped). The type objects
 * sit at fixed addresses outside it (compared, never read), None at TYPES +
 * 0x100. The object at BASE + 16 is read every way the reader offers:
 * kind, repr, length, str, int, float, items, dict and set iteration,
 * attribute and key lookups (each also through a reader of a target over
 * the same memory, whose name lookups read many keys at once: the same
 * answers). Seeds (FUZZ_PYOBJ_SEEDS=DIR): a str, an int
 * or a tuple (str, int, None), one per layout, and a dict of six str keys
 * (3.x layouts). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "python/layouts/layouts.h"
#include "python/pyobj.h"

#define BASE 0x10000ull
#define VIRT (1u << 20)
#define TYPES 0x7000ull
#define ROOT (BASE + 16)

static const hm_pylayout *const layouts[] = {
	&hm_pylayout_py27, &hm_pylayout_py36, &hm_pylayout_py37, &hm_pylayout_py38,
	&hm_pylayout_py39, &hm_pylayout_py310, &hm_pylayout_py311, &hm_pylayout_py312,
	&hm_pylayout_py313,
};
#define NLAYOUTS (sizeof layouts / sizeof layouts[0])

static int visit(void *ctx, uint64_t key, uint64_t value)
{
	const hm_pyobj_reader *r = ctx;
	char buf[256];
	hm_pyobj_repr(r, key, buf, sizeof buf);
	FUZZ_ASSERT(strlen(buf) < sizeof buf);
	hm_pyobj_repr(r, value, buf, sizeof buf);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct fuzz_mem m = {data + 1, size - 1, BASE, VIRT};
	hm_pyobj_reader r;
	memset(&r, 0, sizeof r);
	r.layout = layouts[data[0] % NLAYOUTS];
	r.read = fuzz_mem_read;
	r.ctx = &m;
	for (int i = 0; i < HM_PT_COUNT; i++)
		r.types[i] = TYPES + 0x10 * (uint64_t)i;
	r.types[HM_PT_NONE] = TYPES + 0x100;
	char buf[512];
	uint64_t v, mag;
	int neg;
	double d;
	FUZZ_ASSERT(hm_pyobj_repr(&r, ROOT, buf, sizeof buf) < sizeof buf);
	FUZZ_ASSERT(strlen(buf) < sizeof buf);
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "%d.%d: %s\n", r.layout->major, r.layout->minor, buf);
	hm_pyobj_kind(&r, ROOT);
	hm_pyobj_len(&r, ROOT);
	if (hm_pyobj_str(&r, ROOT, buf, sizeof buf) == 0)
		FUZZ_ASSERT(strlen(buf) < sizeof buf);
	hm_pyobj_int(&r, ROOT, &mag, &neg);
	hm_pyobj_float(&r, ROOT, &d);
	hm_pyobj_type_name(&r, ROOT, buf, sizeof buf);
	for (int64_t i = -1; i < 4; i++)
		if (hm_pyobj_item(&r, ROOT, i, &v) == 0)
			hm_pyobj_repr(&r, v, buf, sizeof buf);
	hm_pyobj_dict_items(&r, ROOT, visit, &r, 64);
	hm_pyobj_set_items(&r, ROOT, visit, &r, 64);
	/* the type learnt by a first call, checked by the second */
	uint64_t set_type = 0;
	int n1 = hm_pyobj_set_items_typed(&r, ROOT, &set_type, visit, &r, 64);
	FUZZ_ASSERT(n1 >= 0 || !set_type);
	if (set_type)
		FUZZ_ASSERT(hm_pyobj_set_items_typed(&r, ROOT, &set_type, visit, &r, 64) == n1);
	/* A reader of a target (over the same memory) looks names up many
	 * keys a read: it finds what key-by-key finds. */
	hm_target *t;
	FUZZ_ASSERT(hm_target_open_mem(fuzz_mem_read, &m, &t) == HM_OK);
	hm_pyobj_reader rt = r;
	hm_pyobj_reader_target(&rt, t);
	static const char *const names[] = {"name", "_name", "opentelemetry.context"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		uint64_t v1 = 0, v2 = 0;
		int r1 = hm_pyobj_dict_get(&r, ROOT, names[i], &v1);
		int r2 = hm_pyobj_dict_get(&rt, ROOT, names[i], &v2);
		FUZZ_ASSERT(r1 == r2 && v1 == v2);
		r1 = hm_pyobj_getattr(&r, ROOT, names[i], &v1);
		r2 = hm_pyobj_getattr(&rt, ROOT, names[i], &v2);
		FUZZ_ASSERT(r1 == r2 && v1 == v2);
	}
	hm_target_close(t);
	return 0;
}

/* ---- seeds ---- */

static uint8_t img[4096];
static size_t used;

static uint64_t alloc(size_t n)
{
	used = (used + 15) & ~(size_t)15;
	uint64_t a = BASE + used;
	used += n;
	FUZZ_ASSERT(used <= sizeof img);
	return a;
}

static void put(uint64_t a, int off, const void *v, size_t n)
{
	if (off >= 0 && a - BASE + (uint64_t)off + n <= sizeof img)
		memcpy(img + (a - BASE) + off, v, n);
}

static void w64(uint64_t a, int off, uint64_t v) { put(a, off, &v, 8); }
static void w32(uint64_t a, int off, uint32_t v) { put(a, off, &v, 4); }

static uint64_t mkstr(const hm_pylayout *L, uint64_t at, const char *s)
{
	size_t n = strlen(s);
	if (!at)
		at = alloc((size_t)(L->str_kind == HM_STR_PY2 ? L->bytes_sval : L->uni_ascii_size) +
			   n + 1);
	w64(at, L->ob_type, TYPES + 0x10 * HM_PT_STR);
	if (L->str_kind == HM_STR_PY2) {
		w64(at, L->var_size, n);
		put(at, L->bytes_sval, s, n);
	} else {
		w64(at, L->uni_length, n);
		w32(at, L->uni_state, (1u << L->uni_kind_shift) | (1u << L->uni_compact_bit) |
		    (1u << L->uni_ascii_bit));
		put(at, L->uni_ascii_size, s, n);
	}
	return at;
}

static uint64_t mkint(const hm_pylayout *L, uint64_t at, uint32_t v)
{
	if (!at)
		at = alloc((size_t)L->long_digit + 8);
	w64(at, L->ob_type, TYPES + 0x10 * HM_PT_INT);
	if (L->long_tag >= 0)
		w64(at, L->long_tag, 1u << 3);       /* one digit, positive */
	else
		w64(at, L->var_size, 1);
	put(at, L->long_digit, &v, (size_t)L->long_digit_size);
	return at;
}

static void seed(const char *dir, int li, int what)
{
	const hm_pylayout *L = layouts[li];
	memset(img, 0, sizeof img);
	used = 16 + 256;        /* ROOT first */
	if (what == 0) {
		mkstr(L, ROOT, "hello");
	} else if (what == 1) {
		mkint(L, ROOT, 42);
	} else if (what == 3) {
		/* A dict of str keys (a module's, sys.modules): the names
		 * looked up among others of their length. */
		static const char *const keys[] = {"game", "name", "_name", "_nama",
						   "opentelemetry.contexT", "opentelemetry.context"};
		enum { N = 6 };
		uint64_t k = alloc((size_t)L->dk_indices + 8 + 24 * N);
		int esize = L->dk_size >= 0 ? L->dk_entry_size : L->dk_unicode_entry_size;
		int koff = L->dk_size >= 0 ? 8 : 0;
		if (L->dk_size >= 0) {
			w64(k, L->dk_size, 8);
		} else {
			uint8_t three = 3, one = 1;
			put(k, L->dk_log2_size, &three, 1);
			put(k, L->dk_log2_index_bytes, &three, 1);
			put(k, L->dk_kind, &one, 1);
		}
		w64(k, L->dk_nentries, N);
		uint64_t entries = k + (uint64_t)L->dk_indices + 8;
		for (int i = 0; i < N; i++) {
			w64(entries, esize * i + koff, mkstr(L, 0, keys[i]));
			w64(entries, esize * i + koff + 8, mkint(L, 0, (uint32_t)i + 1));
		}
		w64(ROOT, L->ob_type, TYPES + 0x10 * HM_PT_DICT);
		w64(ROOT, L->dict_used, N);
		w64(ROOT, L->dict_keys, k);
		w64(ROOT, L->dict_values, 0);
	} else {
		w64(ROOT, L->ob_type, TYPES + 0x10 * HM_PT_TUPLE);
		w64(ROOT, L->var_size, 3);
		w64(ROOT, L->tuple_item, mkstr(L, 0, "a"));
		w64(ROOT, L->tuple_item + 8, mkint(L, 0, 7));
		w64(ROOT, L->tuple_item + 16, TYPES + 0x100);
	}
	char path[4096];
	static const char *const names[] = {"str", "int", "tuple", "dict"};
	snprintf(path, sizeof path, "%s/seed-%d.%d-%s", dir, L->major, L->minor, names[what]);
	FILE *f = fopen(path, "wb");
	if (!f) {
		fprintf(stderr, "fuzz_pyobj: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	uint8_t hdr = (uint8_t)li;
	fwrite(&hdr, 1, 1, f);
	fwrite(img, 1, used, f);
	fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *dir = getenv("FUZZ_PYOBJ_SEEDS");
	if (!dir)
		return 0;
	for (size_t i = 0; i < NLAYOUTS; i++) {
		for (int w = 0; w < 3; w++)
			if (i % 3 == (size_t)w)   /* one per layout: keep the corpus small */
				seed(dir, (int)i, w);
		if (layouts[i]->str_kind != HM_STR_PY2)
			seed(dir, (int)i, 3);     /* and a dict of str keys */
	}
	exit(0);
}
