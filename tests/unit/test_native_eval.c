/* test_native_eval.c - finding the evaluation loop of a stripped interpreter
 * by size (hm_native_big_functions on .eh_frame_hdr tables, synthetic and
 * from real interpreters whose loop is named, so the answer is known), and
 * the report of a native stack with no evaluation-loop frame at all
 * (hm_sampler_add_native says HM_SAMPLER_NATIVE_NO_EVAL: the summary says why native
 * frames are missing). */
#include <fcntl.h>
#include <gelf.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "native/native.h"
#include "sample/sampler.h"

/* An .eh_frame_hdr with function starts (relative to the header). */
static size_t make_hdr(uint8_t *buf, const int32_t *starts, int n, uint8_t table_enc)
{
	buf[0] = 1;
	buf[1] = 0x1b;          /* eh_frame_ptr: pcrel sdata4 */
	buf[2] = 0x03;          /* fde_count: udata4 */
	buf[3] = table_enc;
	int32_t ptr = 0x100;
	uint32_t count = (uint32_t)n;
	memcpy(buf + 4, &ptr, 4);
	memcpy(buf + 8, &count, 4);
	for (int i = 0; i < n; i++) {
		int32_t fde = 0x200 + 8 * i;
		memcpy(buf + 12 + 8 * i, &starts[i], 4);
		memcpy(buf + 16 + 8 * i, &fde, 4);
	}
	return 12 + 8 * (size_t)n;
}

static void test_big_synthetic(void **state)
{
	(void)state;
	uint8_t buf[256];
	/* sizes: 0x100, 64 KiB, 0x300, 36 KiB, 16 KiB, (last: unknown) */
	const int32_t starts[] = {-0x8000, -0x7f00, 0x8100, 0x8400, 0x11400, 0x15400};
	size_t len = make_hdr(buf, starts, 6, 0x3b);
	uint64_t lo[4], hi[4], base = 0x400000;
	int n = hm_native_big_functions(buf, len, base, 0, 0, lo, hi, 4);
	assert_int_equal(n, 2);
	assert_true(lo[0] == base - 0x7f00 && hi[0] == base + 0x8100);
	assert_true(lo[1] == base + 0x8400 && hi[1] == base + 0x11400);
	/* max honoured */
	assert_int_equal(hm_native_big_functions(buf, len, base, 0, 0, lo, hi, 1), 1);
	/* only functions inside .text count */
	n = hm_native_big_functions(buf, len, base, base + 0x8100, base + 0x20000, lo, hi, 4);
	assert_int_equal(n, 1);
	assert_true(lo[0] == base + 0x8400 && hi[0] == base + 0x11400);
	n = hm_native_big_functions(buf, len, base, base - 0x7f00, base + 0x8100, lo, hi, 4);
	assert_int_equal(n, 1);
	assert_true(lo[0] == base - 0x7f00);

	/* What is not a table we know gives nothing. */
	assert_int_equal(hm_native_big_functions(buf, len - 1, base, 0, 0, lo, hi, 4), 0);
	assert_int_equal(hm_native_big_functions(buf, 3, base, 0, 0, lo, hi, 4), 0);
	len = make_hdr(buf, starts, 6, 0x1b);
	assert_int_equal(hm_native_big_functions(buf, len, base, 0, 0, lo, hi, 4), 0);
	const int32_t unsorted[] = {0, 0x20000, 0x10000, 0x30000};
	len = make_hdr(buf, unsorted, 4, 0x3b);
	assert_int_equal(hm_native_big_functions(buf, len, base, 0, 0, lo, hi, 4), 0);
	buf[0] = 2;
	assert_int_equal(hm_native_big_functions(buf, len, base, 0, 0, lo, hi, 4), 0);
	/* no function big enough */
	const int32_t small[] = {0, 0x100, 0x200, 0x2000};
	len = make_hdr(buf, small, 4, 0x3b);
	assert_int_equal(hm_native_big_functions(buf, len, base, 0, 0, lo, hi, 4), 0);
}

/* For an interpreter whose _PyEval_EvalFrameDefault is named: the loop's
 * entry lies in one of the big functions found. 1 checked, 0 file absent. */
static int check_binary(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	elf_version(EV_CURRENT);
	Elf *e = elf_begin(fd, ELF_C_READ, NULL);
	assert_non_null(e);
	uint64_t eval = 0;
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		gelf_getshdr(scn, &sh);
		if (sh.sh_type != SHT_DYNSYM)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		for (size_t i = 0; d && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym s;
			gelf_getsym(d, (int)i, &s);
			const char *nm = elf_strptr(e, sh.sh_link, s.st_name);
			if (nm && !strcmp(nm, "_PyEval_EvalFrameDefault") && s.st_value)
				eval = s.st_value;
		}
	}
	assert_true(eval != 0);
	uint64_t text_lo = 0, text_hi = 0;
	size_t shstrndx;
	assert_int_equal(elf_getshdrstrndx(e, &shstrndx), 0);
	scn = NULL;
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		gelf_getshdr(scn, &sh);
		const char *nm = elf_strptr(e, shstrndx, sh.sh_name);
		if (nm && !strcmp(nm, ".text")) {
			text_lo = sh.sh_addr;
			text_hi = sh.sh_addr + sh.sh_size;
		}
	}
	assert_true(text_hi > text_lo);
	size_t nph;
	int found = 0;
	assert_int_equal(elf_getphdrnum(e, &nph), 0);
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;
		gelf_getphdr(e, (int)i, &ph);
		if (ph.p_type != PT_GNU_EH_FRAME)
			continue;
		Elf_Data *d = elf_getdata_rawchunk(e, (int64_t)ph.p_offset, ph.p_filesz, ELF_T_BYTE);
		uint64_t lo[4], hi[4];
		int n = hm_native_big_functions(d->d_buf, d->d_size, ph.p_vaddr, text_lo, text_hi,
						lo, hi, 4);
		assert_true(n >= 1);
		for (int k = 0; k < n; k++)
			found |= eval >= lo[k] && eval < hi[k];
		print_message("%s: %d big function(s), the first %llu KiB\n", path, n,
			      (unsigned long long)(hi[0] - lo[0]) / 1024);
	}
	if (!found)
		fail_msg("%s: _PyEval_EvalFrameDefault at %#llx is not among its big functions",
			 path, (unsigned long long)eval);
	elf_end(e);
	close(fd);
	return 1;
}

static void test_big_real_interpreters(void **state)
{
	(void)state;
	static const char *const paths[] = {
		"/usr/bin/python3.11",      /* Debian's: static and stripped */
		"/root/.pyenv/versions/3.12.1/lib/libpython3.12.so.1.0",
		"/root/.pyenv/versions/3.13.0/lib/libpython3.13.so.1.0",
		"/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0",
	};
	int checked = 0;
	for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
		checked += check_binary(paths[i]);
	if (!checked)
		skip();
}

/* A native stack without any frame of the evaluation loop. */
static void test_add_thread_no_eval(void **state)
{
	(void)state;
	hm_natsym syms[3];
	const hm_natsym *ptrs[3];
	static const char *const names[] = {"deflate", "[python3.14]", "main"};
	for (int i = 0; i < 3; i++) {
		memset(&syms[i], 0, sizeof syms[i]);
		syms[i].name = names[i];
		syms[i].module = "x";
		syms[i].role = hm_native_role(names[i], 3);
		ptrs[i] = &syms[i];
	}
	hm_natstack ns;
	memset(&ns, 0, sizeof ns);
	ns.state = HM_NATSTACK_OK;
	ns.nframes = 3;
	ns.frames = ptrs;
	ns.complete = 1;
	hm_pycode code;
	memset(&code, 0, sizeof code);
	code.name = code.qualname = "work";
	code.filename = "prog.py";
	hm_pyframe fr = {&code, 3, 0x1000, 1};
	hm_pythread th;
	memset(&th, 0, sizeof th);
	th.valid = 1;
	th.tid = 99;
	th.nframes = 1;
	th.frames = &fr;
	hm_pylayout L;
	memset(&L, 0, sizeof L);
	L.major = 3;
	L.minor = 12;
	L.frame_model = HM_FRAMES_INTERP;
	hm_sampler_opts o;
	hm_sampler_opts_init(&o);
	hm_profile *p = hm_profile_new(0);
	assert_non_null(p);
	assert_int_equal(hm_sampler_add_native(p, &th, &ns, &L, &o, 10, 0),
			 HM_SAMPLER_NATIVE_TORN | HM_SAMPLER_NATIVE_NO_EVAL);
	uint32_t n;
	const uint32_t *ids = hm_profile_stack(p, 0, &n);
	assert_int_equal(n, 1);   /* Python frames only */
	assert_string_equal(hm_profile_str(p, hm_profile_frame(p, ids[0])->name), "work");
	/* The unwind stopped early: the loop may lie beyond; not torn. */
	ns.complete = 0;
	assert_int_equal(hm_sampler_add_native(p, &th, &ns, &L, &o, 10, 0), 0);
	/* With the loop recognised (role EVAL) it merges. */
	ns.complete = 1;
	syms[1].role = HM_NAT_EVAL;
	assert_int_equal(hm_sampler_add_native(p, &th, &ns, &L, &o, 10, 0), 0);
	hm_profile_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_big_synthetic),
		cmocka_unit_test(test_big_real_interpreters),
		cmocka_unit_test(test_add_thread_no_eval),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
