/* test_fileio.c - creating files without following links: a planted
 * symbolic link (dangling or not) is never written through, outputs that are
 * links, FIFOs or devices are refused (/dev/null and stdout are not), a
 * committed output replaces the name (not a hard link's inode), an aborted
 * one leaves nothing behind. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fileio.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/homura-test-fileio-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd);
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void expect(const char *path, const char *text)
{
	char buf[256] = {0};
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	assert_string_equal(buf, text);
}

static int entries(void)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

static void test_create_never_follows(void **state)
{
	(void)state;
	char victim[128], link[128], dangling[128];
	snprintf(victim, sizeof victim, "%s/victim", dir);
	snprintf(link, sizeof link, "%s/link", dir);
	snprintf(dangling, sizeof dangling, "%s/dangling", dir);
	put(victim, "precious");
	assert_int_equal(symlink(victim, link), 0);
	assert_int_equal(symlink("nowhere-yet", dangling), 0);
	assert_int_equal(hm_create_file(AT_FDCWD, link, 0600), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(hm_create_file(AT_FDCWD, dangling, 0600), -1);
	char nowhere[128];
	snprintf(nowhere, sizeof nowhere, "%s/nowhere-yet", dir);
	assert_int_equal(access(nowhere, F_OK), -1);
	expect(victim, "precious");

	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	char a[64], b[64];
	int fa = hm_create_tmp(dfd, "x", 0600, a, sizeof a);
	int fb = hm_create_tmp(dfd, "x", 0600, b, sizeof b);
	assert_true(fa >= 0 && fb >= 0);
	assert_string_not_equal(a, b);           /* unpredictable, distinct */
	assert_int_equal(strncmp(a, ".x.", 3), 0);
	close(fa);
	close(fb);
	unlinkat(dfd, a, 0);
	unlinkat(dfd, b, 0);
	close(dfd);
	unlink(link);
	unlink(dangling);
	unlink(victim);
}

static void test_output_refuses_links_fifos_devices(void **state)
{
	(void)state;
	char victim[128], link[128], fifo[128];
	snprintf(victim, sizeof victim, "%s/victim", dir);
	snprintf(link, sizeof link, "%s/out.txt", dir);
	snprintf(fifo, sizeof fifo, "%s/fifo", dir);
	put(victim, "precious");
	assert_int_equal(symlink(victim, link), 0);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	hm_outfile o;
	assert_int_equal(hm_output_open(&o, link, 0666), HM_EINVAL);
	assert_non_null(strstr(hm_errmsg(), "symbolic link"));
	assert_int_equal(hm_output_check(link), HM_EINVAL);
	assert_int_equal(hm_output_open(&o, fifo, 0666), HM_EINVAL);
	assert_non_null(strstr(hm_errmsg(), "FIFO"));
	assert_int_equal(hm_output_open(&o, "/dev/zero", 0666), HM_EINVAL);
	assert_non_null(strstr(hm_errmsg(), "device"));
	assert_int_equal(hm_output_open(&o, dir, 0666), HM_EINVAL);
	expect(victim, "precious");
	assert_int_equal(entries(), 3);          /* no temporary file left */

	assert_int_equal(hm_output_check("/dev/null"), HM_OK);
	assert_int_equal(hm_output_open(&o, "/dev/null", 0666), HM_OK);
	fputs("x", o.f);
	assert_int_equal(hm_output_commit(&o), HM_OK);
	assert_int_equal(hm_output_check("-"), HM_OK);
	unlink(link);
	unlink(fifo);
	unlink(victim);
}

static void test_output_commit_and_abort(void **state)
{
	(void)state;
	char out[128], other[128];
	snprintf(out, sizeof out, "%s/out.txt", dir);
	snprintf(other, sizeof other, "%s/other.txt", dir);
	put(other, "precious");
	assert_int_equal(link(other, out), 0);   /* out shares other's inode */
	hm_outfile o;
	assert_int_equal(hm_output_open(&o, out, 0666), HM_OK);
	fputs("new", o.f);
	expect(out, "precious");                 /* nothing visible before commit */
	assert_int_equal(hm_output_commit(&o), HM_OK);
	expect(out, "new");
	expect(other, "precious");
	assert_int_equal(entries(), 2);

	assert_int_equal(hm_output_open(&o, out, 0666), HM_OK);
	fputs("half", o.f);
	hm_output_abort(&o);
	expect(out, "new");
	assert_int_equal(entries(), 2);
	unlink(out);
	unlink(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_never_follows),
		cmocka_unit_test(test_output_refuses_links_fifos_devices),
		cmocka_unit_test(test_output_commit_and_abort),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
