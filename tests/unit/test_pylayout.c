/* test_pylayout.c - checks the compiled-in CPython layouts and the
 * _Py_DebugOffsets decoder.
 *
 * The decoder is fed the real _Py_DebugOffsets bytes of the installed
 * CPython 3.13 (read from libpython3.13.so's _PyRuntime with libelf) and must
 * agree with the table generated from 3.13's headers on every field both
 * provide. A synthetic 3.14 blob, laid out by hand-counted slot numbers,
 * checks the 3.14 map independently of the mirror struct in pylayout.c.
 * Corrupt, truncated, free-threaded and unknown-version blobs must fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <gelf.h>
#include <libelf.h>
#include <cmocka.h>

#include "base/error.h"
#include "python/layouts/layouts.h"
#include "python/pylayout.h"

#define LIBPY313 "/root/.pyenv/versions/3.13.0/lib/libpython3.13.so.1.0"
#define BLOB_MAX 4096

#define NFIELDS ((int)(sizeof(hm_pylayout) / sizeof(int)))

static int field(const hm_pylayout *L, int i)
{
	int v;
	memcpy(&v, (const char *)L + (size_t)i * sizeof(int), sizeof v);
	return v;
}

/* Copy up to BLOB_MAX bytes of _PyRuntime out of the ELF file. Returns the
 * number of bytes, or 0 if the library or symbol is absent. */
static size_t read_pyruntime(const char *path, unsigned char *buf)
{
	size_t got = 0;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	elf_version(EV_CURRENT);
	Elf *e = elf_begin(fd, ELF_C_READ, NULL);
	uint64_t addr = 0;
	Elf_Scn *scn = NULL;

	/* Symbol first (.symtab, then .dynsym), section as a fallback. */
	while (e && !addr && (scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) ||
		    (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM))
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		size_t n = sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
		for (size_t i = 0; d && i < n; i++) {
			GElf_Sym sym;
			if (!gelf_getsym(d, (int)i, &sym))
				continue;
			const char *name = elf_strptr(e, sh.sh_link, sym.st_name);
			if (name && strcmp(name, "_PyRuntime") == 0) {
				addr = sym.st_value;
				break;
			}
		}
	}
	size_t shstrndx;
	if (e && elf_getshdrstrndx(e, &shstrndx) == 0) {
		for (scn = NULL; (scn = elf_nextscn(e, scn));) {
			GElf_Shdr sh;
			if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS)
				continue;
			const char *name = elf_strptr(e, shstrndx, sh.sh_name);
			if (!addr && name && strcmp(name, ".PyRuntime") == 0)
				addr = sh.sh_addr;
			if (addr < sh.sh_addr || addr >= sh.sh_addr + sh.sh_size)
				continue;
			size_t len = sh.sh_addr + sh.sh_size - addr;
			if (len > BLOB_MAX)
				len = BLOB_MAX;
			if (pread(fd, buf, len, (off_t)(sh.sh_offset + addr - sh.sh_addr)) ==
			    (ssize_t)len)
				got = len;
			break;
		}
	}
	if (e)
		elf_end(e);
	close(fd);
	return got;
}

static void test_builtin_tables(void **state)
{
	(void)state;
	for (int minor = 8; minor <= 12; minor++) {
		const hm_pylayout *L = hm_pylayout_builtin(3, minor);
		assert_non_null(L);
		assert_int_equal(L->major, 3);
		assert_int_equal(L->minor, minor);
		assert_int_equal(L->str_kind, HM_STR_PEP393);
		assert_int_equal(L->free_threaded, 0);
		assert_int_equal(L->executable_tagged, 0);
		assert_int_equal(L->frame_model,
				 minor >= 11 ? HM_FRAMES_INTERP : HM_FRAMES_OBJECTS);
		assert_int_equal(L->linetable_kind,
				 minor >= 11 ? HM_LOCATIONS :
				 minor == 10 ? HM_LINETABLE_310 : HM_LNOTAB);

		/* Runtime: interpreters.head inside _PyRuntimeState. */
		assert_in_range(L->rt_interpreters_head, 0, L->rt_size - 8);
		assert_in_range(L->is_threads_head, 0, L->is_size - 8);
		assert_in_range(L->is_next, 0, L->is_size - 8);
		assert_in_range(L->ts_next, 0, L->ts_size - 8);
		assert_in_range(L->ts_interp, 0, L->ts_size - 8);
		assert_in_range(L->ts_thread_id, 0, L->ts_size - 8);
		assert_in_range(L->co_filename, 0, L->co_size - 8);
		assert_in_range(L->co_name, 0, L->co_size - 8);
		assert_in_range(L->co_linetable, 0, L->co_size - 8);
		assert_in_range(L->co_firstlineno, 0, L->co_size - 4);
		if (minor <= 11) {
			assert_in_range(L->rt_tstate_current, 0, L->rt_size - 8);
			assert_in_range(L->rt_gil_locked, 0, L->rt_size - 4);
			assert_in_range(L->rt_gil_last_holder, 0, L->rt_size - 8);
			assert_int_equal(L->is_gil_ptr, -1);
		} else {
			assert_int_equal(L->rt_tstate_current, -1);
			assert_in_range(L->is_gil_ptr, 0, L->is_size - 8);
			assert_in_range(L->is_gil_struct, 0, L->is_size - 8);
			assert_true(L->gil_locked >= 0 && L->gil_last_holder >= 0);
		}
		if (minor <= 10) {
			assert_in_range(L->ts_frame, 0, L->ts_size - 8);
			assert_in_range(L->fo_back, 0, L->fo_size - 8);
			assert_in_range(L->fo_code, 0, L->fo_size - 8);
			assert_in_range(L->fo_lasti, 0, L->fo_size - 4);
			assert_in_range(L->co_code, 0, L->co_size - 8);
			assert_int_equal(L->if_size, -1);
			assert_int_equal(L->co_qualname, -1);
			assert_int_equal(L->ts_native_thread_id, -1);
		} else {
			assert_int_equal(L->ts_frame, -1);
			assert_in_range(L->ts_cframe, 0, L->ts_size - 8);
			assert_true(L->cframe_current_frame >= 0);
			assert_in_range(L->ts_native_thread_id, 0, L->ts_size - 8);
			assert_in_range(L->ts_datastack_chunk, 0, L->ts_size - 8);
			assert_in_range(L->if_code, 0, L->if_size - 8);
			assert_in_range(L->if_previous, 0, L->if_size - 8);
			assert_in_range(L->if_instr, 0, L->if_size - 8);
			assert_in_range(L->if_owner, 0, L->if_size - 1);
			assert_int_equal(L->if_instr_is_prev, 1);
			assert_in_range(L->co_qualname, 0, L->co_size - 8);
			assert_in_range(L->co_code_adaptive, 0, L->co_size);
			assert_int_equal(L->fo_back, -1);
			assert_int_equal(L->chunk_data, 24);
			assert_int_equal(L->owner_cstack, minor == 11 ? -1 : 3);
			assert_int_equal(L->owner_max, minor == 11 ? 2 : 3);
			assert_int_equal(L->if_is_entry >= 0, minor == 11);
		}
		assert_int_equal(L->ob_type, 8);
		assert_int_equal(L->var_size, 16);
		assert_int_equal(L->bytes_sval, 32);
		assert_int_equal(L->tp_name, 24);
		assert_true(L->uni_state > L->uni_length);
		assert_true(L->uni_ascii_size > L->uni_state);
		assert_true(L->uni_compact_size > L->uni_ascii_size);
		assert_int_equal(L->uni_kind_shift, 2);
		assert_int_equal(L->uni_compact_bit, 5);
		assert_int_equal(L->uni_ascii_bit, 6);
	}
}

static void test_builtin_old_and_missing(void **state)
{
	(void)state;
	const hm_pylayout *L = hm_pylayout_builtin(2, 7);
	assert_non_null(L);
	assert_int_equal(L->str_kind, HM_STR_PY2);
	assert_int_equal(L->linetable_kind, HM_LNOTAB_27);
	assert_int_equal(L->rt_size, -1);
	assert_int_equal(L->uni_state, -1);
	assert_true(L->bytes_sval > L->var_size);

	L = hm_pylayout_builtin(3, 6);
	assert_non_null(L);
	assert_int_equal(L->rt_interpreters_head, -1);
	assert_int_equal(L->linetable_kind, HM_LNOTAB);
	assert_true(L->fo_back >= 0 && L->ts_frame >= 0);

	L = hm_pylayout_builtin(3, 7);
	assert_non_null(L);
	assert_true(L->rt_interpreters_head >= 0);

	/* 3.13+ must come from the debug offsets. */
	assert_null(hm_pylayout_builtin(3, 13));
	assert_null(hm_pylayout_builtin(3, 5));
	assert_null(hm_pylayout_builtin(4, 0));
	assert_null(hm_pylayout_builtin(-1, -1));
}

static unsigned char blob313[BLOB_MAX];
static size_t blob313_len;

static int load_313(void **state)
{
	(void)state;
	blob313_len = read_pyruntime(LIBPY313, blob313);
	return 0;
}

#define NEED_313() do { \
	if (blob313_len == 0) { \
		print_message("skipped: no " LIBPY313 "\n"); \
		skip(); \
	} \
} while (0)

static void test_debug_offsets_313_matches_table(void **state)
{
	(void)state;
	NEED_313();
	hm_pylayout L;
	assert_int_equal(hm_pylayout_from_debug_offsets(blob313, blob313_len, &L), HM_OK);
	const hm_pylayout *ref = &hm_pylayout_py313;

	int compared = 0;
	for (int i = 0; i < NFIELDS; i++) {
		int got = field(&L, i), want = field(ref, i);
		if (got == -1)
			continue;
		if (got != want)
			fail_msg("field #%d (byte %zu): debug offsets say %d, "
				 "generated 3.13 table says %d",
				 i, (size_t)i * sizeof(int), got, want);
		compared++;
	}
	/* Nearly every field must have been provided. */
	assert_true(compared >= 55);

	/* The ones the walker cannot do without, explicitly. */
	assert_int_equal(L.minor, 13);
	assert_int_equal(L.frame_model, HM_FRAMES_INTERP);
	assert_int_equal(L.rt_interpreters_head, ref->rt_interpreters_head);
	assert_int_equal(L.is_threads_head, ref->is_threads_head);
	assert_int_equal(L.is_gil_ptr, ref->is_gil_ptr);
	assert_int_equal(L.is_gil_struct, ref->is_gil_struct);
	assert_int_equal(L.gil_locked, ref->gil_locked);
	assert_int_equal(L.gil_last_holder, ref->gil_last_holder);
	assert_int_equal(L.ts_frame, ref->ts_frame);
	assert_int_equal(L.ts_native_thread_id, ref->ts_native_thread_id);
	assert_int_equal(L.if_code, ref->if_code);
	assert_int_equal(L.if_previous, ref->if_previous);
	assert_int_equal(L.if_instr, ref->if_instr);
	assert_int_equal(L.if_owner, ref->if_owner);
	assert_int_equal(L.if_size, ref->if_size);
	assert_int_equal(L.co_code_adaptive, ref->co_code_adaptive);
	assert_int_equal(L.co_qualname, ref->co_qualname);
	assert_int_equal(L.uni_ascii_size, ref->uni_ascii_size);
	assert_int_equal(L.owner_cstack, 3);
	assert_int_equal(L.executable_tagged, 0);
	assert_int_equal(L.ts_cframe, -1);
	assert_int_equal(L.rt_tstate_current, -1);
	assert_int_equal(L.ts_prev, 0);
	assert_int_equal(L.ts_status, ref->ts_status);
	assert_int_equal(L.ts_gil_bit, 5);
}

static void test_debug_offsets_bad_cookie(void **state)
{
	(void)state;
	NEED_313();
	unsigned char b[BLOB_MAX];
	hm_pylayout L;
	memcpy(b, blob313, blob313_len);
	b[0] ^= 0x20;
	assert_int_equal(hm_pylayout_from_debug_offsets(b, blob313_len, &L), HM_EVERSION);
	assert_int_equal(hm_errcode(), HM_EVERSION);
}

static void test_debug_offsets_truncated(void **state)
{
	(void)state;
	NEED_313();
	hm_pylayout L;
	assert_int_equal(hm_pylayout_from_debug_offsets(blob313, 16, &L), HM_EINVAL);
	assert_int_equal(hm_pylayout_from_debug_offsets(blob313, 0, &L), HM_EINVAL);
	/* Header present but the sub-structs cut short. */
	assert_int_equal(hm_pylayout_from_debug_offsets(blob313, 200, &L), HM_EINVAL);
	assert_non_null(strstr(hm_errmsg(), "truncated"));
	/* 73 uint64 slots is exactly enough for 3.13. */
	assert_int_equal(hm_pylayout_from_debug_offsets(blob313, 73 * 8, &L), HM_OK);
	assert_int_equal(hm_pylayout_from_debug_offsets(blob313, 73 * 8 - 1, &L), HM_EINVAL);
	assert_int_equal(hm_pylayout_from_debug_offsets(NULL, 100, &L), HM_EINVAL);
}

static void test_debug_offsets_free_threaded(void **state)
{
	(void)state;
	NEED_313();
	unsigned char b[BLOB_MAX];
	hm_pylayout L;
	uint64_t one = 1;
	memcpy(b, blob313, blob313_len);
	memcpy(b + 16, &one, 8);
	assert_int_equal(hm_pylayout_from_debug_offsets(b, blob313_len, &L), HM_EVERSION);
	assert_non_null(strstr(hm_errmsg(), "free-threaded"));
	assert_non_null(strstr(hm_errmsg(), "3.13t"));
}

static void test_debug_offsets_unknown_version(void **state)
{
	(void)state;
	NEED_313();
	unsigned char b[BLOB_MAX];
	hm_pylayout L;
	uint64_t v = 0x030f00a1; /* 3.15.0a1 */
	memcpy(b, blob313, blob313_len);
	memcpy(b + 8, &v, 8);
	assert_int_equal(hm_pylayout_from_debug_offsets(b, blob313_len, &L), HM_EVERSION);
	assert_non_null(strstr(hm_errmsg(), "CPython 3.15: unknown _Py_DebugOffsets layout"));
	v = 0x030c01f0; /* 3.12 never had debug offsets */
	memcpy(b + 8, &v, 8);
	assert_int_equal(hm_pylayout_from_debug_offsets(b, blob313_len, &L), HM_EVERSION);
}

static void test_debug_offsets_corrupt_values(void **state)
{
	(void)state;
	NEED_313();
	unsigned char b[BLOB_MAX];
	hm_pylayout L;
	uint64_t huge = 1ull << 40;
	memcpy(b, blob313, blob313_len);
	/* slot 9: interpreter_state.threads_head -> far outside the struct */
	memcpy(b + 9 * 8, &huge, 8);
	assert_int_equal(hm_pylayout_from_debug_offsets(b, blob313_len, &L), HM_EINVAL);
	/* random garbage after a valid header must never be accepted silently
	 * with out-of-range values, nor crash */
	memcpy(b, blob313, 24);
	srand(7);
	for (int round = 0; round < 200; round++) {
		for (size_t i = 24; i < 73 * 8; i++)
			b[i] = (unsigned char)rand();
		int rc = hm_pylayout_from_debug_offsets(b, 73 * 8, &L);
		assert_true(rc == HM_EINVAL);
	}
}

/* Found by tests/fuzz/fuzz_walker: a size slot near INT_MAX made the
 * decoder add to it (co_size + 1, ...) before rejecting the blob: signed
 * overflow (UBSan abort). Every slot at every edge value: rejected or
 * decoded, never undefined. */
static void test_debug_offsets_edge_values(void **state)
{
	(void)state;
	NEED_313();
	static const uint64_t edge[] = {0x7fffffff, 0x80000000, 0xffffffff, UINT64_MAX,
					(64u << 20) + 1};
	unsigned char b[BLOB_MAX];
	for (size_t slot = 3; slot * 8 + 8 <= blob313_len && slot < 120; slot++)
		for (size_t e = 0; e < sizeof edge / sizeof edge[0]; e++) {
			hm_pylayout L;
			memcpy(b, blob313, blob313_len);
			memcpy(b + slot * 8, &edge[e], 8);
			int rc = hm_pylayout_from_debug_offsets(b, blob313_len, &L);
			assert_true(rc == HM_OK || rc == HM_EINVAL);
		}
}

/* 3.14: slot numbers counted by hand from the 3.14 _Py_DebugOffsets
 * declaration (95 uint64 slots), independently of pylayout.c's mirror. */
enum {
	S14_VERSION = 1, S14_FREE_THREADED = 2,
	S14_RT_SIZE = 3, S14_RT_INTERP_HEAD = 5,
	S14_IS_SIZE = 6, S14_IS_NEXT = 8, S14_IS_THREADS_HEAD = 9,
	S14_IS_THREADS_MAIN = 10, S14_IS_CEVAL_GIL = 15, S14_IS_GIL = 16,
	S14_IS_GIL_LOCKED = 18, S14_IS_GIL_HOLDER = 19,
	S14_TS_SIZE = 22, S14_TS_PREV = 23, S14_TS_NEXT = 24, S14_TS_INTERP = 25,
	S14_TS_CURRENT_FRAME = 26, S14_TS_THREAD_ID = 27, S14_TS_NATIVE_TID = 28,
	S14_TS_DATASTACK = 29, S14_TS_STATUS = 30,
	S14_IF_SIZE = 31, S14_IF_PREVIOUS = 32, S14_IF_EXECUTABLE = 33,
	S14_IF_INSTR_PTR = 34, S14_IF_LOCALSPLUS = 35, S14_IF_OWNER = 36,
	S14_CO_SIZE = 39, S14_CO_FILENAME = 40, S14_CO_NAME = 41,
	S14_CO_QUALNAME = 42, S14_CO_LINETABLE = 43, S14_CO_FIRSTLINENO = 44,
	S14_CO_LOCALSPLUSNAMES = 46, S14_CO_ADAPTIVE = 48,
	S14_OB_SIZE = 50, S14_OB_TYPE = 51, S14_TP_SIZE = 52, S14_TP_NAME = 53,
	S14_BY_SIZE = 74, S14_BY_OB_SIZE = 75, S14_BY_OB_SVAL = 76,
	S14_UN_SIZE = 77, S14_UN_STATE = 78, S14_UN_LENGTH = 79,
	S14_UN_ASCII_SIZE = 80,
	S14_SLOTS = 95,
};

static void put(unsigned char *b, int slot, uint64_t v)
{
	memcpy(b + (size_t)slot * 8, &v, 8);
}

static void test_debug_offsets_314(void **state)
{
	(void)state;
	unsigned char b[S14_SLOTS * 8];
	hm_pylayout L;

	/* Every slot gets a small, recognisable value that is a valid offset
	 * in any struct; the ones checked below get distinct values. */
	for (int i = 0; i < S14_SLOTS; i++)
		put(b, i, 1000 + (uint64_t)i);
	memcpy(b, "xdebugpy", 8);
	put(b, S14_VERSION, 0x030e00f0);
	put(b, S14_FREE_THREADED, 0);
	put(b, S14_RT_SIZE, 300000);
	put(b, S14_RT_INTERP_HEAD, 640);
	put(b, S14_IS_SIZE, 200000);
	put(b, S14_IS_NEXT, 7000);
	put(b, S14_IS_THREADS_HEAD, 7100);
	put(b, S14_IS_THREADS_MAIN, 7108);
	put(b, S14_IS_CEVAL_GIL, 24);
	put(b, S14_IS_GIL, 9000);
	put(b, S14_IS_GIL_LOCKED, 9016);
	put(b, S14_IS_GIL_HOLDER, 9008);
	put(b, S14_TS_SIZE, 400);
	put(b, S14_TS_PREV, 0);
	put(b, S14_TS_NEXT, 8);
	put(b, S14_TS_STATUS, 32);
	put(b, S14_TS_INTERP, 16);
	put(b, S14_TS_CURRENT_FRAME, 72);
	put(b, S14_TS_THREAD_ID, 160);
	put(b, S14_TS_NATIVE_TID, 168);
	put(b, S14_TS_DATASTACK, 240);
	put(b, S14_IF_SIZE, 88);
	put(b, S14_IF_PREVIOUS, 8);
	put(b, S14_IF_EXECUTABLE, 0);
	put(b, S14_IF_INSTR_PTR, 56);
	put(b, S14_IF_LOCALSPLUS, 80);
	put(b, S14_IF_OWNER, 74);
	put(b, S14_CO_SIZE, 224);
	put(b, S14_CO_FILENAME, 112);
	put(b, S14_CO_NAME, 120);
	put(b, S14_CO_QUALNAME, 128);
	put(b, S14_CO_LINETABLE, 136);
	put(b, S14_CO_FIRSTLINENO, 68);
	put(b, S14_CO_LOCALSPLUSNAMES, 96);
	put(b, S14_CO_ADAPTIVE, 216);
	put(b, S14_OB_SIZE, 16);
	put(b, S14_OB_TYPE, 8);
	put(b, S14_TP_SIZE, 1000);
	put(b, S14_TP_NAME, 24);
	put(b, S14_BY_SIZE, 40);
	put(b, S14_BY_OB_SIZE, 16);
	put(b, S14_BY_OB_SVAL, 32);
	put(b, S14_UN_SIZE, 64);
	put(b, S14_UN_STATE, 32);
	put(b, S14_UN_LENGTH, 16);
	put(b, S14_UN_ASCII_SIZE, 40);

	assert_int_equal(hm_pylayout_from_debug_offsets(b, sizeof b, &L), HM_OK);
	assert_int_equal(L.major, 3);
	assert_int_equal(L.minor, 14);
	assert_int_equal(L.frame_model, HM_FRAMES_INTERP);
	assert_int_equal(L.linetable_kind, HM_LOCATIONS);
	assert_int_equal(L.executable_tagged, 1);
	/* The thread list's back link; _status is known, but which of its bits
	 * means "holds the GIL" is not: the walker reads the GIL instead. */
	assert_int_equal(L.ts_prev, 0);
	assert_int_equal(L.ts_status, 32);
	assert_int_equal(L.ts_gil_bit, -1);
	/* 3.14's entry frame is FRAME_OWNED_BY_INTERPRETER (3); CSTACK (4)
	 * is the largest value but is never set. */
	assert_int_equal(L.owner_cstack, 3);
	assert_int_equal(L.owner_max, 4);
	assert_int_equal(L.rt_size, 300000);
	assert_int_equal(L.rt_interpreters_head, 640);
	assert_int_equal(L.is_size, 200000);
	assert_int_equal(L.is_next, 7000);
	assert_int_equal(L.is_threads_head, 7100);
	assert_int_equal(L.is_gil_ptr, 24);
	assert_int_equal(L.is_gil_struct, 9000);
	assert_int_equal(L.gil_locked, 16);
	assert_int_equal(L.gil_last_holder, 8);
	assert_int_equal(L.ts_size, 400);
	assert_int_equal(L.ts_next, 8);
	assert_int_equal(L.ts_interp, 16);
	assert_int_equal(L.ts_frame, 72);
	assert_int_equal(L.ts_thread_id, 160);
	assert_int_equal(L.ts_native_thread_id, 168);
	assert_int_equal(L.ts_datastack_chunk, 240);
	assert_int_equal(L.ts_datastack_top, 248);
	assert_int_equal(L.ts_datastack_limit, 256);
	assert_int_equal(L.if_size, 80);
	assert_int_equal(L.if_previous, 8);
	assert_int_equal(L.if_code, 0);
	assert_int_equal(L.if_instr, 56);
	assert_int_equal(L.if_instr_is_prev, 0);
	assert_int_equal(L.if_owner, 74);
	assert_int_equal(L.co_size, 224);
	assert_int_equal(L.co_filename, 112);
	assert_int_equal(L.co_name, 120);
	assert_int_equal(L.co_qualname, 128);
	assert_int_equal(L.co_linetable, 136);
	assert_int_equal(L.co_firstlineno, 68);
	assert_int_equal(L.co_localsplusnames, 96);
	assert_int_equal(L.co_code_adaptive, 216);
	assert_int_equal(L.ob_type, 8);
	assert_int_equal(L.tp_name, 24);
	assert_int_equal(L.var_size, 16);
	assert_int_equal(L.bytes_sval, 32);
	assert_int_equal(L.uni_state, 32);
	assert_int_equal(L.uni_length, 16);
	assert_int_equal(L.uni_ascii_size, 40);
	assert_int_equal(L.uni_compact_size, 56);
	assert_int_equal(L.uni_kind_shift, 2);
	assert_int_equal(L.chunk_data, 24);
	assert_int_equal(L.fo_back, -1);
	assert_int_equal(L.ts_cframe, -1);

	/* One slot short of the 3.14 layout. */
	assert_int_equal(hm_pylayout_from_debug_offsets(b, sizeof b - 8, &L), HM_EINVAL);
	/* Free-threaded 3.14 too. */
	put(b, S14_FREE_THREADED, 1);
	assert_int_equal(hm_pylayout_from_debug_offsets(b, sizeof b, &L), HM_EVERSION);
	assert_non_null(strstr(hm_errmsg(), "3.14t"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin_tables),
		cmocka_unit_test(test_builtin_old_and_missing),
		cmocka_unit_test(test_debug_offsets_313_matches_table),
		cmocka_unit_test(test_debug_offsets_bad_cookie),
		cmocka_unit_test(test_debug_offsets_truncated),
		cmocka_unit_test(test_debug_offsets_free_threaded),
		cmocka_unit_test(test_debug_offsets_unknown_version),
		cmocka_unit_test(test_debug_offsets_corrupt_values),
		cmocka_unit_test(test_debug_offsets_edge_values),
		cmocka_unit_test(test_debug_offsets_314),
	};
	return cmocka_run_group_tests(tests, load_313, NULL);
}
