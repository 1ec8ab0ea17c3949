/* test_elf.c - hm_elf on real files: a shared libpython with .symtab, the
 * stripped Debian python3.11 (.dynsym only), and files that are not ELF. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "proc/elf.h"

#define LIBPY312 "/root/.pyenv/versions/3.12.1/lib/libpython3.12.so.1.0"
#define PY311_STATIC "/usr/bin/python3.11"

static void test_libpython_runtime(void **state)
{
	hm_elf *e = hm_elf_open(LIBPY312);
	uint64_t addr = 0, size = 0, sec = 0, secsize = 0, vaddr = 1, off = 1;

	assert_non_null(e);
	assert_int_equal(hm_elf_symbol(e, "_PyRuntime", &addr, &size), HM_OK);
	assert_true(addr != 0);
	assert_true(size > 0);
	assert_int_equal(hm_elf_section(e, ".PyRuntime", &sec, &secsize), HM_OK);
	assert_true(addr >= sec && addr + size <= sec + secsize);
	assert_int_equal(hm_elf_first_load(e, &vaddr, &off), HM_OK);
	assert_int_equal(vaddr, 0);
	assert_int_equal(off, 0);
	hm_elf_close(e);
}

static void test_libpython_version(void **state)
{
	hm_elf *e = hm_elf_open(LIBPY312);
	uint64_t addr = 0;
	uint32_t version = 0;

	assert_non_null(e);
	assert_int_equal(hm_elf_symbol(e, "Py_Version", &addr, NULL), HM_OK);
	assert_int_equal(hm_elf_read_vaddr(e, addr, &version, sizeof(version)), HM_OK);
	/* 3.12.1 final: 0x030c01f0 */
	assert_int_equal(version >> 8, 0x030c01);
	hm_elf_close(e);
}

static void test_bss_and_outside(void **state)
{
	hm_elf *e = hm_elf_open(LIBPY312);
	uint64_t bss = 0, bss_size = 0;
	char buf[8];

	assert_non_null(e);
	assert_int_equal(hm_elf_section(e, ".bss", &bss, &bss_size), HM_OK);
	assert_int_equal(hm_elf_read_vaddr(e, bss, buf, sizeof(buf)), HM_EINVAL);
	assert_non_null(strstr(hm_errmsg(), ".bss"));
	assert_int_equal(hm_elf_read_vaddr(e, 0x7fffffff0000ull, buf, sizeof(buf)), HM_EINVAL);
	assert_int_equal(hm_elf_section(e, ".no_such_section", NULL, NULL), HM_EINVAL);
	hm_elf_close(e);
}

static void test_missing_symbol(void **state)
{
	hm_elf *e = hm_elf_open(LIBPY312);
	uint64_t addr = 42;

	assert_non_null(e);
	assert_int_equal(hm_elf_symbol(e, "no_such_symbol_hm", &addr, NULL), HM_EINVAL);
	assert_int_equal(hm_errcode(), HM_EINVAL);
	assert_non_null(strstr(hm_errmsg(), "no_such_symbol_hm"));
	assert_int_equal(addr, 42);
	/* Prefix and empty names must not match anything. */
	assert_int_equal(hm_elf_symbol(e, "_PyRunti", NULL, NULL), HM_EINVAL);
	assert_int_equal(hm_elf_symbol(e, "", NULL, NULL), HM_EINVAL);
	hm_elf_close(e);
}

static void test_addr2sym(void **state)
{
	hm_elf *e = hm_elf_open(LIBPY312);
	uint64_t addr = 0, size = 0, start = 0, back = 0;
	const char *name = NULL;

	assert_non_null(e);
	assert_int_equal(hm_elf_symbol(e, "PyObject_GetAttr", &addr, &size), HM_OK);
	assert_true(size > 8);
	assert_int_equal(hm_elf_addr2sym(e, addr + 4, &name, &start), HM_OK);
	assert_int_equal(start, addr);
	/* Whatever alias was chosen, it names the same function. */
	assert_int_equal(hm_elf_symbol(e, name, &back, NULL), HM_OK);
	assert_int_equal(back, addr);
	assert_int_equal(hm_elf_addr2sym(e, addr, &name, &start), HM_OK);
	assert_int_equal(start, addr);
	assert_int_equal(hm_elf_addr2sym(e, 0, &name, &start), HM_EINVAL);
	hm_elf_close(e);
}

static void test_stripped_python311(void **state)
{
	hm_elf *e = hm_elf_open(PY311_STATIC);
	uint64_t rt = 0, ver = 0, size = 0;
	uint32_t version = 0;

	assert_non_null(e);
	assert_int_equal(hm_elf_symbol(e, "_PyRuntime", &rt, &size), HM_OK);
	assert_true(rt != 0 && size > 0);
	assert_int_equal(hm_elf_symbol(e, "Py_Version", &ver, NULL), HM_OK);
	assert_int_equal(hm_elf_read_vaddr(e, ver, &version, sizeof(version)), HM_OK);
	assert_int_equal(version >> 16, 0x030b);
	hm_elf_close(e);
}

static void test_not_elf(void **state)
{
	char path[] = "/tmp/hm_test_elf_XXXXXX";
	int fd = mkstemp(path);
	hm_elf *e;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "#!/bin/sh\necho hi\n", 18), 18);
	close(fd);
	e = hm_elf_open(path);
	assert_null(e);
	assert_int_equal(hm_errcode(), HM_EINVAL);
	assert_non_null(strstr(hm_errmsg(), "not an ELF file"));
	unlink(path);

	/* Empty file and missing file: NULL with a message, no crash. */
	strcpy(path, "/tmp/hm_test_elf_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_null(hm_elf_open(path));
	unlink(path);
	assert_null(hm_elf_open("/nonexistent/hm/libfoo.so"));
	assert_non_null(strstr(hm_errmsg(), "/nonexistent/hm/libfoo.so"));
	assert_null(hm_elf_open(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_libpython_runtime),
		cmocka_unit_test(test_libpython_version),
		cmocka_unit_test(test_bss_and_outside),
		cmocka_unit_test(test_missing_symbol),
		cmocka_unit_test(test_addr2sym),
		cmocka_unit_test(test_stripped_python311),
		cmocka_unit_test(test_not_elf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
