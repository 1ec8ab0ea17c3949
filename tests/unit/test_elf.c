/* test_elf.c - hm_elf on real files: a shared libpython with .symtab, the
 * stripped Debian python3.11 (.dynsym only), and files that are not ELF;
 * the cache of parsed files (same file: not parsed again; another file at
 * the same path, a changed one, a just-written one or one pushed out: parsed;
 * one unused longer than the age limit: dropped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

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

#define LIBZ "/lib/x86_64-linux-gnu/libz.so.1"

/* Copy LIBZ to path (a new file: a new inode); its mtime set age seconds
 * back when age > 0. */
static void copy_libz(const char *path, int age)
{
	FILE *in = fopen(LIBZ, "rb");
	char tmp[256], buf[65536];
	size_t n;

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	FILE *out = fopen(tmp, "wb");
	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
	if (age > 0) {
		struct timespec ts[2];
		clock_gettime(CLOCK_REALTIME, &ts[0]);
		ts[0].tv_sec -= age;
		ts[1] = ts[0];
		assert_int_equal(utimensat(AT_FDCWD, tmp, ts, 0), 0);
	}
	assert_int_equal(rename(tmp, path), 0);
}

static void open_close(const char *path)
{
	hm_elf *e = hm_elf_open(path);
	uint64_t addr = 0;

	assert_non_null(e);
	assert_int_equal(hm_elf_symbol(e, "zlibVersion", &addr, NULL), HM_OK);
	assert_true(addr != 0);
	hm_elf_close(e);
}

static void test_cache(void **state)
{
	char dir[] = "/tmp/hm_test_elfc_XXXXXX", a[128], b[128], many[9][128];
	unsigned long n;
	int i;

	assert_non_null(mkdtemp(dir));
	snprintf(a, sizeof(a), "%s/liba.so", dir);
	snprintf(b, sizeof(b), "%s/libb.so", dir);

	/* the same file, by its path or another name: parsed once */
	copy_libz(a, 60);
	assert_int_equal(link(a, b), 0);
	n = hm_elf_parses();
	open_close(a);
	open_close(a);
	open_close(b);
	assert_int_equal(hm_elf_parses(), n + 1);

	/* another file at the same path, same size and mtime: parsed again */
	copy_libz(a, 60);
	open_close(a);
	assert_int_equal(hm_elf_parses(), n + 2);

	/* the same file with another mtime: parsed again */
	struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};
	assert_int_equal(utimensat(AT_FDCWD, a, ts, 0), 0);
	open_close(a);
	open_close(a);
	assert_int_equal(hm_elf_parses(), n + 3);

	/* written just now (timestamps too coarse to tell rewrites apart): never kept */
	copy_libz(b, 0);
	open_close(b);
	open_close(b);
	assert_int_equal(hm_elf_parses(), n + 5);

	/* bounded: nine other files push the first one out */
	for (i = 0; i < 9; i++) {
		snprintf(many[i], sizeof(many[i]), "%s/lib%d.so", dir, i);
		copy_libz(many[i], 60);
		open_close(many[i]);
	}
	assert_int_equal(hm_elf_parses(), n + 14);
	open_close(a);
	assert_int_equal(hm_elf_parses(), n + 15);
	open_close(many[8]);
	assert_int_equal(hm_elf_parses(), n + 15);

	for (i = 0; i < 9; i++)
		unlink(many[i]);
	unlink(a);
	unlink(b);
	rmdir(dir);
}

/* Entries unused for longer than the age limit leave the cache (at the
 * next open or close, or a trim), so that memory stays flat in a process
 * that runs for days; younger ones stay. The limit is lowered for the
 * test: a sleep of twice the limit guarantees the age. */
static void test_cache_age(void **state)
{
	char dir[] = "/tmp/hm_test_elfa_XXXXXX", a[128], b[128];
	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(a, sizeof(a), "%s/liba.so", dir);
	snprintf(b, sizeof(b), "%s/libb.so", dir);
	copy_libz(a, 60);
	copy_libz(b, 60);
	uint64_t old = hm_elf_cache_max_age(50000000ull);   /* 50 ms */

	/* young: kept, not parsed again */
	unsigned long n = hm_elf_parses();
	open_close(a);
	int cached = hm_elf_cached();
	assert_true(cached >= 1);
	open_close(a);
	assert_int_equal(hm_elf_parses(), n + 1);

	/* old: gone at the next open of another file, parsed again */
	struct timespec nap = {0, 100000000};
	nanosleep(&nap, NULL);
	open_close(b);
	assert_int_equal(hm_elf_cached(), 1);                /* b alone */
	open_close(a);
	assert_int_equal(hm_elf_parses(), n + 3);

	/* a trim alone empties it once everything is old */
	nanosleep(&nap, NULL);
	hm_elf_cache_trim();
	assert_int_equal(hm_elf_cached(), 0);

	/* the limit back: a closed file stays */
	hm_elf_cache_max_age(old);
	open_close(a);
	hm_elf_cache_trim();
	assert_int_equal(hm_elf_cached(), 1);
	unlink(a);
	unlink(b);
	rmdir(dir);
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
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_cache_age),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
