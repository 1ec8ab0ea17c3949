/* test_memory.c - analyze/memory.c: aggregation per line and function,
 * folding of library frames, the Python/native split, peaks, copies,
 * leak detection and the memory profiles, fed through the real shared-
 * memory ring by a producer written here (as preload/alloc.c writes it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analyze/memory.h"
#include "base/base.h"
#include "base/error.h"
#include "base/memring.h"

#define MIB (1024.0 * 1024.0)

struct producer {
	hm_memsession *s;
	hm_memring *r;
	uint8_t *data;
	size_t len;
	uint64_t t0;
};

static void open_session(struct producer *p, int profile_all)
{
	hm_memopts o = {.sample_bytes = 65536, .profile_all = profile_all, .preload = "/proc/self/exe"};
	assert_int_equal(hm_memsession_new(&o, &p->s), HM_OK);
	char *const *env = hm_memsession_env(p->s);
	const char *path = NULL;
	int has_preload = 0;
	for (int i = 0; env[i]; i++) {
		if (!strncmp(env[i], HM_MEMRING_ENV "=", strlen(HM_MEMRING_ENV) + 1))
			path = env[i] + strlen(HM_MEMRING_ENV) + 1;
		has_preload |= !strncmp(env[i], "LD_PRELOAD=", 11);
	}
	assert_true(has_preload);
	assert_non_null(path);
	int fd = open(path, O_RDWR | O_NOFOLLOW);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	p->len = (size_t)st.st_size;
	p->r = mmap(NULL, p->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	assert_true(p->r != MAP_FAILED);
	assert_true(p->r->magic == HM_MEMRING_MAGIC);
	p->data = (uint8_t *)p->r + p->r->hdr_size;
	hm_memsession_set_pid(p->s, getpid());
	p->t0 = hm_mono_ns();
}

static void close_session(struct producer *p)
{
	munmap(p->r, p->len);
	hm_memsession_free(p->s);
}

static void *put(struct producer *p, uint32_t type, size_t len)
{
	len = (len + 7) & ~(size_t)7;
	uint64_t pos = p->r->head % p->r->data_size;
	if (p->r->data_size - pos < len) {
		hm_memrec_hdr *pad = (hm_memrec_hdr *)(p->data + pos);
		pad->type = HM_MR_PAD;
		pad->len = (uint32_t)(p->r->data_size - pos);
		p->r->head += pad->len;
		pos = 0;
	}
	hm_memrec_hdr *h = (hm_memrec_hdr *)(p->data + pos);
	memset(h, 0, len);
	h->type = type;
	h->len = (uint32_t)len;
	p->r->head += len;
	return h;
}

static void put_info(struct producer *p)
{
	hm_memrec_info *r = put(p, HM_MR_INFO, sizeof *r);
	r->pid = getpid();
	r->py_version = 0x030b0200;
}

static void put_code(struct producer *p, uint32_t id, const char *name, const char *file)
{
	size_t ln = strlen(name), lf = strlen(file);
	hm_memrec_code *r = put(p, HM_MR_CODE, sizeof *r + ln + lf);
	r->id = id;
	r->firstlineno = 1;
	r->name_len = (uint32_t)ln;
	r->file_len = (uint32_t)lf;
	memcpy((char *)(r + 1), name, ln);
	memcpy((char *)(r + 1) + ln, file, lf);
}

/* frames: pairs (code id, line), leaf first */
static void put_alloc(struct producer *p, int type, double t_s, uint64_t addr, double bytes,
		      double count, uint32_t flags, int nframes, const int *frames)
{
	hm_memrec_alloc *r = put(p, (uint32_t)type, sizeof *r + (size_t)nframes * sizeof(hm_memrec_frame));
	r->t_ns = p->t0 + (uint64_t)(t_s * 1e9);
	r->addr = addr;
	r->size = (uint64_t)bytes;
	r->weight_bytes = bytes;
	r->weight_count = count;
	r->flags = flags;
	r->nframes = (uint32_t)nframes;
	hm_memrec_frame *f = (hm_memrec_frame *)(r + 1);
	for (int i = 0; i < nframes; i++) {
		f[i].code = (uint32_t)frames[2 * i];
		f[i].line = frames[2 * i + 1];
	}
}

static void put_free(struct producer *p, double t_s, uint64_t addr)
{
	hm_memrec_free *r = put(p, HM_MR_FREE, sizeof *r);
	r->t_ns = p->t0 + (uint64_t)(t_s * 1e9);
	r->addr = addr;
}

static const hm_memline *find_line(hm_memsession *s, const char *file, int line)
{
	const hm_memline *l;
	size_t n = hm_memsession_lines(s, &l);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(l[i].file, file) && l[i].line == line)
			return &l[i];
	return NULL;
}

static const hm_memline *find_func(hm_memsession *s, const char *func)
{
	const hm_memline *l;
	size_t n = hm_memsession_functions(s, &l);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(l[i].func, func))
			return &l[i];
	return NULL;
}

#define APP "/home/u/app.py"
#define LIB "/usr/lib/python3.11/json/decoder.py"
#define SITE "/usr/lib/python3/dist-packages/numpy/core/numeric.py"

static void test_lines_and_folding(void **state)
{
	(void)state;
	struct producer p;
	open_session(&p, 0);
	const char *why = NULL;
	assert_int_equal(hm_memsession_poll(p.s), 0);
	assert_false(hm_memsession_available(p.s, &why));
	assert_non_null(why);
	put_info(&p);
	put_code(&p, 1, "main", APP);
	put_code(&p, 2, "decode", LIB);
	put_code(&p, 3, "zeros", SITE);
	/* app.py:10 calls json (library): folded into app.py:10 */
	int lib_stack[] = {2, 55, 1, 10};
	put_alloc(&p, HM_MR_ALLOC, 0.01, 0x1000, 4 * MIB, 100, HM_MRF_PYTHON, 2, lib_stack);
	/* app.py:12 calls numpy: native bytes */
	int np_stack[] = {3, 7, 1, 12};
	put_alloc(&p, HM_MR_ALLOC, 0.02, 0x2000, 8 * MIB, 1, 0, 2, np_stack);
	put_alloc(&p, HM_MR_ALLOC, 0.03, 0x3000, 8 * MIB, 1, 0, 2, np_stack);
	put_free(&p, 0.04, 0x2000);
	put_free(&p, 0.05, 0x9999);              /* never sampled: ignored */
	int copy_stack[] = {1, 12};
	put_alloc(&p, HM_MR_COPY, 0.05, 0, 2 * MIB, 1, 0, 1, copy_stack);
	/* no Python frame: counted, not a line */
	put_alloc(&p, HM_MR_ALLOC, 0.06, 0x4000, 1 * MIB, 1, HM_MRF_NOSTACK, 0, NULL);
	/* code run from text belongs to whoever ran it: a .pth line run by
	 * site.py is the library's (folded into app.py:10), the program's own
	 * exec() is the program's */
	put_code(&p, 4, "<module>", "<string>");
	put_code(&p, 5, "addpackage", "/usr/lib/python3.11/site.py");
	int pth_stack[] = {4, 1, 5, 186, 1, 10};
	put_alloc(&p, HM_MR_ALLOC, 0.07, 0x5000, 1 * MIB, 1, 0, 3, pth_stack);
	int exec_stack[] = {4, 3, 1, 14};
	put_alloc(&p, HM_MR_ALLOC, 0.08, 0x6000, 1 * MIB, 1, 0, 2, exec_stack);
	assert_true(hm_memsession_poll(p.s) > 0);
	hm_memsession_finish(p.s, 0.1);
	assert_true(hm_memsession_available(p.s, &why));
	assert_int_equal(hm_memsession_samples(p.s), 6);
	const hm_memline *ex = find_line(p.s, "<string>", 3);
	assert_non_null(ex);
	assert_true(ex->alloc_bytes == 1 * MIB);
	assert_null(find_line(p.s, "<string>", 1));

	const hm_memline *l10 = find_line(p.s, APP, 10), *l12 = find_line(p.s, APP, 12);
	assert_non_null(l10);
	assert_non_null(l12);
	assert_null(find_line(p.s, LIB, 55));    /* folded */
	assert_null(find_line(p.s, SITE, 7));
	assert_true(l10->alloc_bytes == 5 * MIB);   /* 4 MiB, and the .pth line's 1 */
	assert_true(l10->live_end_bytes == 5 * MIB);
	assert_true(l10->python_bytes == 4 * MIB);
	assert_true(l10->alloc_count == 101);
	assert_true(l12->alloc_bytes == 16 * MIB);
	assert_true(l12->python_bytes == 0);
	assert_true(l12->peak_live_bytes == 16 * MIB);
	assert_true(l12->live_end_bytes == 8 * MIB);
	assert_true(l12->copy_bytes == 2 * MIB);
	assert_true(l12->leak_likelihood < 0);
	assert_string_equal(l12->func, "main");
	const hm_memline *fm = find_func(p.s, "main");
	assert_non_null(fm);
	assert_int_equal(fm->line, 1);         /* its first line, as cpu.h's functions */
	assert_true(fm->alloc_bytes == 21 * MIB);
	assert_true(fm->peak_live_bytes == 20 * MIB);  /* before the free at 0.04 */
	/* sorted by allocation, largest first */
	const hm_memline *all;
	assert_int_equal(hm_memsession_lines(p.s, &all), 3);
	assert_int_equal(all[0].line, 12);

	const hm_mempoint *pts;
	assert_true(hm_memsession_timeline(p.s, &pts) >= 2);

	hm_profile *prof = hm_profile_new(0);
	assert_int_equal(hm_memsession_profile(p.s, "alloc_space", prof), HM_OK);
	assert_true(hm_profile_total_weight(prof) == (int64_t)(23 * MIB));
	assert_int_equal(hm_profile_meta_get(prof)->time_kind, HM_TIME_ALLOC_SPACE);
	hm_profile_free(prof);
	prof = hm_profile_new(0);
	assert_int_equal(hm_memsession_profile(p.s, "inuse_space", prof), HM_OK);
	assert_true(hm_profile_total_weight(prof) == (int64_t)(15 * MIB));
	hm_profile_free(prof);
	prof = hm_profile_new(0);
	assert_int_equal(hm_memsession_profile(p.s, "alloc_objects", prof), HM_OK);
	assert_true(hm_profile_total_weight(prof) == 105);
	assert_int_not_equal(hm_memsession_profile(p.s, "heap", prof), HM_OK);
	hm_profile_free(prof);
	close_session(&p);
}

static void test_profile_all_keeps_library_lines(void **state)
{
	(void)state;
	struct producer p;
	open_session(&p, 1);
	put_info(&p);
	put_code(&p, 1, "main", APP);
	put_code(&p, 2, "decode", LIB);
	int lib_stack[] = {2, 55, 1, 10};
	put_alloc(&p, HM_MR_ALLOC, 0.01, 0x1000, 4 * MIB, 1, 0, 2, lib_stack);
	assert_true(hm_memsession_poll(p.s) > 0);
	hm_memsession_finish(p.s, 0.1);
	assert_non_null(find_line(p.s, LIB, 55));
	assert_null(find_line(p.s, APP, 10));
	close_session(&p);
}

/* A stack with no frame of the program's own (an import at start-up, a
 * library's thread) is no line, as in the CPU attribution, unless
 * profile_all; it still counts in the samples and the heap profile. */
static void test_library_only_stack_is_no_line(void **state)
{
	(void)state;
	for (int all = 0; all <= 1; all++) {
		struct producer p;
		open_session(&p, all);
		put_info(&p);
		put_code(&p, 2, "decode", LIB);
		put_code(&p, 6, "_find_and_load", "<frozen importlib._bootstrap>");
		int stack[] = {2, 55, 6, 1176};
		put_alloc(&p, HM_MR_ALLOC, 0.01, 0x1000, 4 * MIB, 1, 0, 2, stack);
		assert_true(hm_memsession_poll(p.s) > 0);
		hm_memsession_finish(p.s, 0.1);
		const hm_memline *l;
		assert_int_equal(hm_memsession_lines(p.s, &l), all ? 1 : 0);
		assert_int_equal(hm_memsession_functions(p.s, &l), all ? 1 : 0);
		assert_int_equal(hm_memsession_samples(p.s), 1);
		hm_profile *prof = hm_profile_new(0);
		assert_int_equal(hm_memsession_profile(p.s, "alloc_space", prof), HM_OK);
		assert_true(hm_profile_total_weight(prof) == (int64_t)(4 * MIB));
		hm_profile_free(prof);
		close_session(&p);
	}
}

/* Over a 3 s run: a line that keeps what it allocates (leak), one that
 * allocates and frees temporaries (many GB in all), one that allocates a
 * large buffer once and keeps it. Only the first is a leak. */
static void test_leaks(void **state)
{
	(void)state;
	struct producer p;
	open_session(&p, 0);
	put_info(&p);
	put_code(&p, 1, "main", APP);
	int leak[] = {1, 20}, churn[] = {1, 21}, once[] = {1, 22};
	put_alloc(&p, HM_MR_ALLOC, 0.001, 0x100000, 200 * MIB, 1, 0, 1, once);
	uint64_t a = 0x200000;
	for (int i = 0; i < 300; i++) {
		double t = 0.01 * i;
		put_alloc(&p, HM_MR_ALLOC, t, a + 16 * (uint64_t)i, 0.2 * MIB, 2, 0, 1, leak);
		put_alloc(&p, HM_MR_ALLOC, t + 0.002, 0x900000, 16 * MIB, 1, 0, 1, churn);
		put_free(&p, t + 0.004 + 0.004 * (i % 2), 0x900000);
		if (i % 50 == 49)
			assert_true(hm_memsession_poll(p.s) > 0);
	}
	assert_true(hm_memsession_poll(p.s) >= 0);
	hm_memsession_finish(p.s, 3.0);
	const hm_memline *lk = find_line(p.s, APP, 20), *ch = find_line(p.s, APP, 21),
			 *on = find_line(p.s, APP, 22);
	assert_non_null(lk);
	assert_non_null(ch);
	assert_non_null(on);
	assert_true(lk->leak_likelihood >= 0.7);
	/* 60 MiB over 3 s: 20 MiB/s */
	assert_true(lk->leak_bytes_per_s > 18 * MIB && lk->leak_bytes_per_s < 22 * MIB);
	assert_true(ch->alloc_bytes == 300 * 16 * MIB);
	assert_true(ch->leak_likelihood < 0);
	assert_true(ch->live_end_bytes == 0);
	assert_true(ch->peak_live_bytes == 16 * MIB);
	assert_true(on->leak_likelihood < 0);
	close_session(&p);
}

static void test_malformed_ring(void **state)
{
	(void)state;
	struct producer p;
	open_session(&p, 0);
	put_info(&p);
	hm_memrec_hdr *h = put(&p, HM_MR_CODE, 16);
	h->len = 12;                             /* not a multiple of 8 */
	assert_true(hm_memsession_poll(p.s) < 0);
	hm_memsession_finish(p.s, 0.1);
	const hm_memline *l;
	assert_int_equal(hm_memsession_lines(p.s, &l), 0);
	close_session(&p);

	open_session(&p, 0);
	put_info(&p);
	/* a frame naming a code id never sent, and an oversized frame count */
	int bad[] = {77, 1};
	put_alloc(&p, HM_MR_ALLOC, 0.01, 0x1000, MIB, 1, 0, 1, bad);
	hm_memrec_alloc *r = put(&p, HM_MR_ALLOC, sizeof *r);
	r->nframes = 1000000;
	r->weight_bytes = 1;
	hm_memsession_poll(p.s);
	hm_memsession_finish(p.s, 0.1);
	assert_int_equal(hm_memsession_lines(p.s, &l), 0);
	close_session(&p);
}

static void test_library_files(void **state)
{
	(void)state;
	assert_true(hm_memory_is_library_file("/usr/lib/python3.11/json/decoder.py"));
	assert_true(hm_memory_is_library_file("/root/.pyenv/versions/3.12.1/lib/python3.12/os.py"));
	assert_true(hm_memory_is_library_file("/usr/lib64/python3.9/threading.py"));
	assert_true(hm_memory_is_library_file("/venv/lib/python3.12/site-packages/flask/app.py"));
	assert_true(hm_memory_is_library_file("/usr/lib/python3/dist-packages/numpy/__init__.py"));
	assert_true(hm_memory_is_library_file("<frozen importlib._bootstrap>"));
	assert_false(hm_memory_is_library_file("/home/u/app.py"));
	assert_false(hm_memory_is_library_file("/home/u/python3.11/x.py"));
	assert_false(hm_memory_is_library_file("/srv/lib/pythonic/x.py"));
	assert_false(hm_memory_is_library_file("<string>"));
	assert_false(hm_memory_is_library_file("<stdin>"));
}

static void test_missing_preload(void **state)
{
	(void)state;
	hm_memopts o = {.preload = "/nonexistent/libhomura-alloc.so"};
	hm_memsession *s = NULL;
	assert_int_not_equal(hm_memsession_new(&o, &s), HM_OK);
	assert_null(s);
	assert_non_null(strstr(hm_errmsg(), "libhomura-alloc.so"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_and_folding),
		cmocka_unit_test(test_profile_all_keeps_library_lines),
		cmocka_unit_test(test_library_only_stack_is_no_line),
		cmocka_unit_test(test_leaks),
		cmocka_unit_test(test_malformed_ring),
		cmocka_unit_test(test_library_files),
		cmocka_unit_test(test_missing_preload),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
