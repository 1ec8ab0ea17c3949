/* memory.c - `homura run --memory`: the reading side of the allocation
 * sampler (preload/alloc.c). See memory.h for the contract.
 *
 * The session creates the shared-memory ring (base/memring.h) as a file in
 * /dev/shm (O_EXCL|O_NOFOLLOW, 0600, removed by hm_memsession_free) and
 * gives the child LD_PRELOAD and the ring's name (the sampler wraps
 * Python's object allocator itself: PYTHONMALLOC=malloc would cost the
 * program more than twice the time in allocation-heavy code). Each poll drains the ring:
 *  - CODE records map the sampler's code ids to (function, file, first line);
 *  - ALLOC records (sampled allocations with unbiased weights and their
 *    Python stack) are interned as stacks of an hm_profile and charged to
 *    one line: the nearest frame, from the leaf, in the program's own files
 *    (not the interpreter's standard library, site-packages or
 *    dist-packages, nor <frozen ...> modules; code run from text, such as
 *    "<string>", belongs to whoever ran it: the program's for `python -c`
 *    or its own exec(), the library's for a .pth file run by site.py), or
 *    the leaf frame with profile_all; with no frame of the program's own
 *    (imports at start-up, a library's threads) no line, as cpu.h does
 *    (still in the totals and the heap profiles). The block stays live
 *    (a table by address) until its FREE record;
 *  - COPY records add memcpy/memmove volume to a line.
 * Every line and function keeps its live estimate, its peak, and the live
 * value at the end of each of at most HIST windows of the run (the window
 * doubles when the run outgrows them), from which hm_memsession_finish
 * tells leaks: a line is a leak when its live memory grew in most windows
 * since it first allocated (likelihood: Laplace's estimate of a window
 * growing rather than shrinking, scaled down when it grew in less than a
 * quarter of them), grew by more than LEAK_MIN_BYTES (and 4 sampling
 * intervals) overall and by a quarter of that in the second half of its
 * span (memory taken once at start-up, by imports, and kept is not a
 * leak), and still holds at least half of its peak at the end; its rate
 * is the least-squares slope of those values. A line that allocates and
 * frees temporaries rises and falls about as often and holds little at the
 * end, so it is not listed. The timeline takes one point per poll: live
 * sampled bytes and the child's RSS (/proc/PID/statm). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analyze/memory.h"
#include "base/base.h"
#include "base/error.h"
#include "base/memring.h"

#define RING_DATA (16u << 20)
#define HIST 64
#define FIRST_WINDOW_S 0.05
#define MAX_POINTS 4096
#define LEAK_MIN_BYTES (1024.0 * 1024.0)
#define LEAK_THRESHOLD 0.7

struct code {
	uint32_t name, file;       /* profile string ids */
	int32_t firstline;
	int own;                   /* in the program's own files */
	int pseudo;                /* "<string>", "<stdin>"...: code exec'd
				    * from text, as much the program's own as
				    * the code that ran it */
	int known;
};

struct stat_entry {                /* one line or function */
	hm_memline m;
	uint32_t frame;            /* profile frame id (line 0 for functions) */
	int is_func;
	double live;
	int filled;                /* hist[0..filled-1] are set */
	double hist[HIST];
	int first_window;          /* window of its first allocation, -1 none */
};

struct block {                     /* a live sampled allocation */
	uint64_t addr;             /* 0: empty */
	uint32_t stack;
	int32_t line, func;        /* stat indices, -1 none */
	double bytes;
};

struct stack_info {
	double alloc_bytes, alloc_count, live;
	int32_t line, func;        /* stat indices, -1 none (no Python frame) */
};

struct hm_memsession {
	hm_memopts o;
	char *path;                /* the ring file */
	char *preload;
	hm_memring *ring;
	size_t map_len;
	uint8_t *data;
	char *env[4];
	pid_t pid;
	uint64_t t0_ns;
	int got_info;
	int finalized;             /* the interpreter finalizes (FINI) */
	uint32_t py_version;
	uint64_t nalloc, nfree, ncopy;
	int corrupt;

	hm_profile *prof;          /* strings, frames, stacks of sampled allocations */
	struct code *codes;
	uint32_t ncodes_cap;

	struct stack_info *stacks;
	uint32_t nstacks_cap;

	struct stat_entry *stats;
	size_t nstats, stats_cap;
	int32_t *stat_by_frame;    /* profile frame id -> stat index + 1 */
	uint32_t sbf_cap;

	struct block *blocks;
	size_t nblocks, blocks_cap;

	double window_s;
	double live_total;
	double nostack_bytes;

	hm_mempoint *points;
	size_t npoints, points_cap;

	hm_memline *lines_out, *funcs_out;
	size_t nlines_out, nfuncs_out;
	int finished;
};

/* ---- file classification ------------------------------------------------ */

/* Library code: the interpreter's standard library (.../lib/pythonX.Y/),
 * site-packages, dist-packages and frozen modules. */
static int is_library(const char *f)
{
	if (f[0] == '<')
		return !strncmp(f, "<frozen", 7);
	if (strstr(f, "/site-packages/") || strstr(f, "/dist-packages/"))
		return 1;
	for (const char *p = strstr(f, "python"); p; p = strstr(p + 1, "python")) {
		if (p - f < 4 || (strncmp(p - 4, "lib/", 4) && (p - f < 6 || strncmp(p - 6, "lib64/", 6))))
			continue;
		const char *q = p + 6;
		if (*q < '0' || *q > '9')
			continue;
		while ((*q >= '0' && *q <= '9') || *q == '.')
			q++;
		if (*q == '/')
			return 1;
	}
	return 0;
}

int hm_memory_is_library_file(const char *path)
{
	return path && is_library(path);
}

/* ---- session ----------------------------------------------------------- */

static char *find_preload(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return NULL;
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = 0;
	const char *rel[] = {"/libhomura-alloc.so", "/../lib/homura/libhomura-alloc.so",
			     "/../libhomura-alloc.so" /* build/tests/, build/bench/ */};
	for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
		char *p = NULL;
		if (asprintf(&p, "%s%s", exe, rel[i]) < 0)
			return NULL;
		if (access(p, R_OK) == 0) {
			char *r = realpath(p, NULL);
			free(p);
			return r;
		}
		free(p);
	}
	return NULL;
}

int hm_memsession_new(const hm_memopts *o, hm_memsession **out)
{
	*out = NULL;
	hm_memsession *s = calloc(1, sizeof *s);
	if (!s)
		return hm_error(HM_ENOMEM, "out of memory");
	if (o)
		s->o = *o;
	if (!(s->o.sample_bytes >= 1))
		s->o.sample_bytes = 1024.0 * 1024.0 / 8;
	s->o.preload = NULL;
	int rc;
	s->preload = o && o->preload ? realpath(o->preload, NULL) : find_preload();
	if (!s->preload) {
		rc = hm_error(HM_EINVAL, "cannot find the allocation sampler libhomura-alloc.so%s%s",
			      o && o->preload ? " at " : " next to the homura binary",
			      o && o->preload ? o->preload : "");
		goto fail;
	}
	if (strchr(s->preload, ' ') || strchr(s->preload, ':')) {
		rc = hm_error(HM_EINVAL, "the sampler's path %s holds a space or a colon (LD_PRELOAD "
			      "cannot name it)", s->preload);
		goto fail;
	}
	uint64_t r = hm_real_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)s;
	int fd = -1;
	for (int tries = 0; tries < 8 && fd < 0; tries++) {
		free(s->path);
		s->path = NULL;
		if (asprintf(&s->path, "/dev/shm/homura-mem.%d.%016llx", (int)getpid(),
			     (unsigned long long)hm_rng_next(&r)) < 0) {
			rc = hm_error(HM_ENOMEM, "out of memory");
			goto fail;
		}
		fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		rc = hm_error(HM_ESYS, "cannot create the memory ring %s: %s", s->path, strerror(errno));
		free(s->path);
		s->path = NULL;
		goto fail;
	}
	s->map_len = sizeof(hm_memring) + RING_DATA;
	void *m = MAP_FAILED;
	if (ftruncate(fd, (off_t)s->map_len) == 0)
		m = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int err = errno;
	close(fd);
	if (m == MAP_FAILED) {
		rc = hm_error(HM_ESYS, "cannot map the memory ring %s: %s", s->path, strerror(err));
		goto fail;
	}
	s->ring = m;
	s->data = (uint8_t *)m + sizeof(hm_memring);
	s->ring->hdr_size = sizeof(hm_memring);
	s->ring->data_size = RING_DATA;
	s->ring->sample_bytes = s->o.sample_bytes;
	s->ring->copy_bytes = s->o.sample_bytes * 8;
	__atomic_store_n(&s->ring->magic, HM_MEMRING_MAGIC, __ATOMIC_RELEASE);

	const char *old = getenv("LD_PRELOAD");
	if (asprintf(&s->env[0], "LD_PRELOAD=%s%s%s", s->preload, old && *old ? ":" : "",
		     old && *old ? old : "") < 0 ||
	    asprintf(&s->env[1], "%s=%s", HM_MEMRING_ENV, s->path) < 0) {
		rc = hm_error(HM_ENOMEM, "out of memory");
		goto fail;
	}
	s->prof = hm_profile_new(0);
	if (!s->prof) {
		rc = hm_error(HM_ENOMEM, "out of memory");
		goto fail;
	}
	hm_profile_meta_get(s->prof)->time_kind = HM_TIME_ALLOC_SPACE;
	s->window_s = FIRST_WINDOW_S;
	s->t0_ns = hm_mono_ns();
	*out = s;
	return HM_OK;
fail:
	hm_memsession_free(s);
	return rc;
}

void hm_memsession_free(hm_memsession *s)
{
	if (!s)
		return;
	if (s->ring)
		munmap(s->ring, s->map_len);
	if (s->path)
		unlink(s->path);
	free(s->path);
	free(s->preload);
	for (int i = 0; i < 4; i++)
		free(s->env[i]);
	if (s->prof)
		hm_profile_free(s->prof);
	free(s->codes);
	free(s->stacks);
	free(s->stats);
	free(s->stat_by_frame);
	free(s->blocks);
	free(s->points);
	free(s->lines_out);
	free(s->funcs_out);
	free(s);
}

char *const *hm_memsession_env(hm_memsession *s) { return s->env; }

void hm_memsession_set_pid(hm_memsession *s, pid_t pid)
{
	s->pid = pid;
	s->t0_ns = hm_mono_ns();
}

int hm_memsession_available(const hm_memsession *s, const char **why_not)
{
	if (s->got_info)
		return 1;
	if (why_not)
		*why_not = s->corrupt ? "the memory ring held a malformed record"
				      : "no allocation was recorded: the program ran no CPython "
					"under the allocation sampler (a static binary without "
					"LD_PRELOAD support, or not Python)";
	return 0;
}

uint64_t hm_memsession_samples(const hm_memsession *s) { return s->nalloc; }

uint64_t hm_memsession_dropped(const hm_memsession *s)
{
	return __atomic_load_n(&s->ring->dropped, __ATOMIC_RELAXED);
}

/* ---- aggregation ------------------------------------------------------- */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap ? *cap : 64;
	while (nc < need)
		nc *= 2;
	void *np = realloc(*p, nc * elem);
	if (!np)
		return -1;
	memset((char *)np + *cap * elem, 0, (nc - *cap) * elem);
	*p = np;
	*cap = nc;
	return 0;
}

static int window_of(const hm_memsession *s, double t)
{
	if (t < 0)
		t = 0;
	double w = t / s->window_s;
	return w > 1e9 ? 1000000000 : (int)w;
}

/* The run outgrew HIST windows: double the window. */
static void merge_windows(hm_memsession *s)
{
	s->window_s *= 2;
	for (size_t i = 0; i < s->nstats; i++) {
		struct stat_entry *e = &s->stats[i];
		int nf = e->filled / 2;
		for (int k = 0; k < nf; k++)
			e->hist[k] = e->hist[2 * k + 1];
		e->filled = nf;
		if (e->first_window >= 0)
			e->first_window /= 2;
	}
}

/* Bring e's window values up to (not including) window w. */
static void fill_to(struct stat_entry *e, int w)
{
	if (w > HIST)
		w = HIST;
	while (e->filled < w)
		e->hist[e->filled++] = e->live;
}

static int stat_for_frame(hm_memsession *s, uint32_t frame, int is_func)
{
	size_t cap = s->sbf_cap;
	if (grow((void **)&s->stat_by_frame, &cap, (size_t)frame + 1, sizeof *s->stat_by_frame))
		return -1;
	s->sbf_cap = (uint32_t)cap;
	if (s->stat_by_frame[frame])
		return s->stat_by_frame[frame] - 1;
	if (grow((void **)&s->stats, &s->stats_cap, s->nstats + 1, sizeof *s->stats))
		return -1;
	struct stat_entry *e = &s->stats[s->nstats];
	memset(e, 0, sizeof *e);
	const hm_frame *f = hm_profile_frame(s->prof, frame);
	e->frame = frame;
	e->is_func = is_func;
	e->m.file = hm_profile_str(s->prof, f->file);
	e->m.func = hm_profile_str(s->prof, f->name);
	e->m.line = is_func ? f->start_line : f->line;   /* a function: its first line, as cpu.h's */
	e->m.leak_likelihood = -1;
	e->first_window = -1;
	s->stat_by_frame[frame] = (int32_t)++s->nstats;
	return (int)s->nstats - 1;
}

/* Live bytes of stat i change by d at window w. */
static void stat_live(hm_memsession *s, int i, double d, int w)
{
	if (i < 0)
		return;
	struct stat_entry *e = &s->stats[i];
	fill_to(e, w);
	if (d > 0 && e->first_window < 0)
		e->first_window = w;
	e->live += d;
	if (e->live < 0.5)
		e->live = e->live < -0.5 ? e->live : 0;
	if (e->live > e->m.peak_live_bytes)
		e->m.peak_live_bytes = e->live;
}

static uint32_t intern_code_frame(hm_memsession *s, const struct code *c, int line)
{
	hm_frame f = {.name = c->name, .file = c->file, .line = line, .start_line = c->firstline,
		      .kind = HM_FRAME_PYTHON};
	return hm_profile_frame_id(s->prof, &f);
}

/* Stack id of a record's frames (leaf first in the record, root first in
 * the profile), with its line and function stats. */
static int intern_stack(hm_memsession *s, const hm_memrec_frame *fr, uint32_t n, uint32_t *stack)
{
	uint32_t ids[HM_MEMRING_MAX_FRAMES];
	int attributed = -1;
	if (n > HM_MEMRING_MAX_FRAMES)
		n = HM_MEMRING_MAX_FRAMES;
	uint32_t nf = n;
	uint8_t own[HM_MEMRING_MAX_FRAMES];
	for (uint32_t k = n; k-- > 0;) {           /* root first */
		uint32_t cid = fr[k].code;
		if (cid == 0 || cid >= s->ncodes_cap || !s->codes[cid].known)
			return -1;
		const struct code *c = &s->codes[cid];
		own[k] = c->pseudo ? (k == n - 1 || own[k + 1]) : (uint8_t)c->own;
	}
	for (uint32_t i = 0; i < n; i++) {
		ids[n - 1 - i] = intern_code_frame(s, &s->codes[fr[i].code], fr[i].line);
		if (attributed < 0 && (s->o.profile_all || own[i]))
			attributed = (int)i;
	}
	if (n == 0) {
		hm_frame f = {.name = hm_profile_intern_cstr(s->prof, "[no Python frame]"),
			      .kind = HM_FRAME_OTHER};
		ids[0] = hm_profile_frame_id(s->prof, &f);
		n = 1;
	}
	uint32_t st = hm_profile_stack_id(s->prof, ids, n);
	size_t cap = s->nstacks_cap;
	if (grow((void **)&s->stacks, &cap, (size_t)st + 1, sizeof *s->stacks))
		return -1;
	if (cap > s->nstacks_cap) {
		for (size_t k = s->nstacks_cap; k < cap; k++)
			s->stacks[k].line = s->stacks[k].func = -2;   /* not decided */
		s->nstacks_cap = (uint32_t)cap;
	}
	struct stack_info *si = &s->stacks[st];
	if (si->line == -2) {
		si->line = si->func = -1;
		if (nf > 0 && attributed >= 0) {
			const struct code *c = &s->codes[fr[attributed].code];
			si->line = stat_for_frame(s, intern_code_frame(s, c, fr[attributed].line), 0);
			si->func = stat_for_frame(s, intern_code_frame(s, c, 0), 1);
		}
	}
	*stack = st;
	return 0;
}

static struct block *block_slot(hm_memsession *s, uint64_t addr)
{
	size_t mask = s->blocks_cap - 1;
	size_t i = (size_t)((addr * 0x9E3779B97F4A7C15ull) >> 20) & mask;
	while (s->blocks[i].addr && s->blocks[i].addr != addr)
		i = (i + 1) & mask;
	return &s->blocks[i];
}

static int block_put(hm_memsession *s, const struct block *b)
{
	if ((s->nblocks + 1) * 2 > s->blocks_cap) {
		size_t nc = s->blocks_cap ? s->blocks_cap * 2 : 1024;
		struct block *old = s->blocks;
		size_t oc = s->blocks_cap;
		s->blocks = calloc(nc, sizeof *s->blocks);
		if (!s->blocks) {
			s->blocks = old;
			return -1;
		}
		s->blocks_cap = nc;
		for (size_t i = 0; i < oc; i++)
			if (old[i].addr)
				*block_slot(s, old[i].addr) = old[i];
		free(old);
	}
	struct block *slot = block_slot(s, b->addr);
	if (!slot->addr)
		s->nblocks++;
	*slot = *b;
	return 0;
}

/* Remove addr (backward-shift); the block it was, or addr 0. */
static struct block block_take(hm_memsession *s, uint64_t addr)
{
	struct block out = {0};
	if (!s->blocks_cap)
		return out;
	struct block *slot = block_slot(s, addr);
	if (!slot->addr)
		return out;
	out = *slot;
	size_t mask = s->blocks_cap - 1;
	size_t i = (size_t)(slot - s->blocks), j = i;
	for (;;) {
		s->blocks[i].addr = 0;
		for (;;) {
			j = (j + 1) & mask;
			if (!s->blocks[j].addr)
				goto done;
			size_t k = (size_t)((s->blocks[j].addr * 0x9E3779B97F4A7C15ull) >> 20) & mask;
			if (i <= j ? (k <= i || k > j) : (k <= i && k > j))
				break;
		}
		s->blocks[i] = s->blocks[j];
		i = j;
	}
done:
	s->nblocks--;
	return out;
}

static double rec_time(const hm_memsession *s, uint64_t t_ns)
{
	return t_ns > s->t0_ns ? (double)(t_ns - s->t0_ns) / 1e9 : 0;
}

static int window_at(hm_memsession *s, double t)
{
	int w = window_of(s, t);
	while (w >= HIST) {
		merge_windows(s);
		w = window_of(s, t);
	}
	return w;
}

static void on_code(hm_memsession *s, const hm_memrec_code *r)
{
	if (sizeof *r + (size_t)r->name_len + r->file_len > r->h.len || r->id == 0 || r->id > (1u << 26)) {
		s->corrupt = 1;
		return;
	}
	size_t cap = s->ncodes_cap;
	if (grow((void **)&s->codes, &cap, (size_t)r->id + 1, sizeof *s->codes))
		return;
	s->ncodes_cap = (uint32_t)cap;
	const char *text = (const char *)(r + 1);
	struct code *c = &s->codes[r->id];
	c->name = hm_profile_intern(s->prof, text, r->name_len);
	c->file = hm_profile_intern(s->prof, text + r->name_len, r->file_len);
	c->firstline = r->firstlineno;
	const char *fname = hm_profile_str(s->prof, c->file);
	c->own = !is_library(fname);
	c->pseudo = fname[0] == '<' && c->own;
	c->known = 1;
}

static void on_alloc(hm_memsession *s, const hm_memrec_alloc *r)
{
	if (sizeof *r + (size_t)r->nframes * sizeof(hm_memrec_frame) > r->h.len ||
	    !(r->weight_bytes >= 0) || !(r->weight_count >= 0) || r->weight_bytes > 1e18) {
		s->corrupt = 1;
		return;
	}
	uint32_t st;
	if (intern_stack(s, (const hm_memrec_frame *)(r + 1), r->nframes, &st))
		return;
	struct stack_info *si = &s->stacks[st];
	double t = rec_time(s, r->t_ns);
	int w = window_at(s, t);
	int ids[2] = {si->line, si->func};
	if (r->h.type == HM_MR_COPY) {
		s->ncopy++;
		for (int k = 0; k < 2; k++)
			if (ids[k] >= 0)
				s->stats[ids[k]].m.copy_bytes += r->weight_bytes;
		return;
	}
	s->nalloc++;
	si->alloc_bytes += r->weight_bytes;
	si->alloc_count += r->weight_count;
	si->live += r->weight_bytes;
	s->live_total += r->weight_bytes;
	if (r->flags & HM_MRF_NOSTACK)
		s->nostack_bytes += r->weight_bytes;
	for (int k = 0; k < 2; k++) {
		if (ids[k] < 0)
			continue;
		hm_memline *m = &s->stats[ids[k]].m;
		m->alloc_bytes += r->weight_bytes;
		m->alloc_count += r->weight_count;
		if (r->flags & HM_MRF_PYTHON)
			m->python_bytes += r->weight_bytes;
		stat_live(s, ids[k], r->weight_bytes, w);
	}
	/* A block at an address still live was freed without our seeing it
	 * (the guard, a fork): forget the old one. */
	struct block old = block_take(s, r->addr);
	if (old.addr) {
		s->stacks[old.stack].live -= old.bytes;
		s->live_total -= old.bytes;
		stat_live(s, old.line, -old.bytes, w);
		stat_live(s, old.func, -old.bytes, w);
	}
	struct block b = {r->addr, st, si->line, si->func, r->weight_bytes};
	if (r->addr)
		block_put(s, &b);
}

static void on_free(hm_memsession *s, const hm_memrec_free *r)
{
	struct block b = block_take(s, r->addr);
	if (!b.addr)
		return;
	s->nfree++;
	int w = window_at(s, rec_time(s, r->t_ns));
	s->stacks[b.stack].live -= b.bytes;
	s->live_total -= b.bytes;
	stat_live(s, b.line, -b.bytes, w);
	stat_live(s, b.func, -b.bytes, w);
}

static double read_rss(pid_t pid)
{
	if (pid <= 0)
		return -1;
	char path[64], buf[128];
	snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	unsigned long long size, res;
	if (sscanf(buf, "%llu %llu", &size, &res) != 2)
		return -1;
	return (double)res * (double)sysconf(_SC_PAGESIZE);
}

static void add_point(hm_memsession *s, double t, double rss)
{
	if (s->npoints == MAX_POINTS) {
		/* keep every other point */
		for (size_t i = 0; i < MAX_POINTS / 2; i++)
			s->points[i] = s->points[2 * i + 1];
		s->npoints = MAX_POINTS / 2;
	}
	if (grow((void **)&s->points, &s->points_cap, s->npoints + 1, sizeof *s->points))
		return;
	s->points[s->npoints++] = (hm_mempoint){t, s->live_total > 0 ? s->live_total : 0, rss};
}

int hm_memsession_poll(hm_memsession *s)
{
	hm_memring *R = s->ring;
	uint64_t head = __atomic_load_n(&R->head, __ATOMIC_ACQUIRE);
	uint64_t tail = R->tail, size = R->data_size;
	int n = 0;
	if (head - tail > size) {
		s->corrupt = 1;
		return hm_error(HM_EINVAL, "the memory ring's head is implausible");
	}
	while (tail < head && !s->corrupt) {
		uint64_t pos = tail % size;
		const hm_memrec_hdr *h = (const hm_memrec_hdr *)(s->data + pos);
		uint32_t len = h->len;
		if (len < sizeof *h || (len & 7) || len > size - pos || len > head - tail) {
			s->corrupt = 1;
			break;
		}
		switch (h->type) {
		case HM_MR_PAD:
			break;
		case HM_MR_INFO:
			if (len >= sizeof(hm_memrec_info)) {
				s->got_info = 1;
				s->py_version = ((const hm_memrec_info *)h)->py_version;
			}
			break;
		case HM_MR_FINI:
			s->finalized = 1;
			break;
		case HM_MR_CODE:
			if (len >= sizeof(hm_memrec_code))
				on_code(s, (const hm_memrec_code *)h);
			break;
		case HM_MR_ALLOC:
		case HM_MR_COPY:
			if (len >= sizeof(hm_memrec_alloc))
				on_alloc(s, (const hm_memrec_alloc *)h);
			break;
		case HM_MR_FREE:
			if (len >= sizeof(hm_memrec_free))
				on_free(s, (const hm_memrec_free *)h);
			break;
		default:
			break;
		}
		tail += len;
		n++;
	}
	__atomic_store_n(&R->tail, tail, __ATOMIC_RELEASE);
	if (s->corrupt)
		return hm_error(HM_EINVAL, "the memory ring held a malformed record");
	add_point(s, rec_time(s, hm_mono_ns()), read_rss(s->pid));
	return n;
}

/* ---- results ------------------------------------------------------------ */

static void judge_leak(hm_memsession *s, struct stat_entry *e, int nw)
{
	e->m.leak_likelihood = -1;
	e->m.leak_bytes_per_s = 0;
	int s0 = e->first_window;
	if (s0 < 0 || nw - s0 < 4)
		return;
	int ups = 0, downs = 0, nint = nw - 1 - s0;
	double eps = s->o.sample_bytes * 0.01;
	for (int i = s0 + 1; i < nw; i++) {
		double d = e->hist[i] - e->hist[i - 1];
		ups += d > eps;
		downs += d < -eps;
	}
	/* least-squares slope of live over window ends */
	double sx = 0, sy = 0, sxx = 0, sxy = 0;
	int m = 0;
	for (int i = s0; i < nw; i++) {
		double x = (i + 1) * s->window_s, y = e->hist[i];
		sx += x;
		sy += y;
		sxx += x * x;
		sxy += x * y;
		m++;
	}
	double den = m * sxx - sx * sx;
	double slope = den > 0 ? (m * sxy - sx * sy) / den : 0;
	double growth = e->hist[nw - 1] - e->hist[s0];
	double like = (ups + 1.0) / (ups + downs + 2.0);
	double steady = (ups + 1.0) / (nint + 2.0);
	if (steady < 0.25)
		like *= steady * 4;
	/* still growing in the second half of its span (not memory taken
	 * once at start-up, by imports, and kept) */
	int mid = s0 + (nw - 1 - s0) / 2;
	double late = e->hist[nw - 1] - e->hist[mid];
	if (growth > LEAK_MIN_BYTES && growth > 4 * s->o.sample_bytes && slope > 0 &&
	    late > 0.25 * growth &&
	    e->m.live_end_bytes >= 0.5 * e->m.peak_live_bytes && like >= LEAK_THRESHOLD) {
		e->m.leak_likelihood = like;
		e->m.leak_bytes_per_s = slope;
	}
}

static int by_alloc_desc(const void *a, const void *b)
{
	const hm_memline *x = a, *y = b;
	if (x->alloc_bytes != y->alloc_bytes)
		return x->alloc_bytes < y->alloc_bytes ? 1 : -1;
	int c = strcmp(x->file, y->file);
	return c ? c : x->line - y->line;
}

void hm_memsession_finish(hm_memsession *s, double elapsed_s)
{
	double end = elapsed_s > 0 ? elapsed_s : rec_time(s, hm_mono_ns());
	int w = window_at(s, end);
	int nw = w + 1;
	free(s->lines_out);
	free(s->funcs_out);
	s->lines_out = calloc(s->nstats + 1, sizeof *s->lines_out);
	s->funcs_out = calloc(s->nstats + 1, sizeof *s->funcs_out);
	s->nlines_out = s->nfuncs_out = 0;
	for (size_t i = 0; i < s->nstats; i++) {
		struct stat_entry *e = &s->stats[i];
		fill_to(e, nw);
		e->m.live_end_bytes = e->live > 0 ? e->live : 0;
		if (!e->is_func)
			judge_leak(s, e, nw);
		if (!s->lines_out || !s->funcs_out)
			continue;
		if (e->is_func)
			s->funcs_out[s->nfuncs_out++] = e->m;
		else
			s->lines_out[s->nlines_out++] = e->m;
	}
	if (s->lines_out)
		qsort(s->lines_out, s->nlines_out, sizeof *s->lines_out, by_alloc_desc);
	if (s->funcs_out)
		qsort(s->funcs_out, s->nfuncs_out, sizeof *s->funcs_out, by_alloc_desc);
	hm_profile_meta *meta = hm_profile_meta_get(s->prof);
	meta->duration_ns = (uint64_t)(end * 1e9);
	meta->period_ns = (uint64_t)s->o.sample_bytes;
	s->finished = 1;
}

size_t hm_memsession_lines(const hm_memsession *s, const hm_memline **lines)
{
	*lines = s->lines_out;
	return s->lines_out ? s->nlines_out : 0;
}

size_t hm_memsession_functions(const hm_memsession *s, const hm_memline **funcs)
{
	*funcs = s->funcs_out;
	return s->funcs_out ? s->nfuncs_out : 0;
}

size_t hm_memsession_timeline(const hm_memsession *s, const hm_mempoint **points)
{
	*points = s->points;
	return s->npoints;
}

int hm_memsession_profile(const hm_memsession *s, const char *kind, hm_profile *out)
{
	int k;
	if (!kind || !strcmp(kind, "alloc_space"))
		k = HM_TIME_ALLOC_SPACE;
	else if (!strcmp(kind, "alloc_objects"))
		k = HM_TIME_ALLOC_OBJECTS;
	else if (!strcmp(kind, "inuse_space"))
		k = HM_TIME_INUSE_SPACE;
	else
		return hm_error(HM_EINVAL, "unknown memory profile kind '%s' (alloc_space, "
				"alloc_objects or inuse_space)", kind);
	const hm_profile *p = s->prof;
	uint32_t nstack = hm_profile_nstacks(p);
	uint32_t th = hm_profile_thread_id(out, (uint64_t)(s->pid > 0 ? s->pid : 0),
					   (uint32_t)(s->pid > 0 ? s->pid : 0), NULL);
	uint32_t *ids = NULL;
	size_t cap = 0;
	for (uint32_t st = 0; st < nstack && st < s->nstacks_cap; st++) {
		const struct stack_info *si = &s->stacks[st];
		if (si->line == -2)
			continue;
		double v = k == HM_TIME_ALLOC_SPACE ? si->alloc_bytes
			 : k == HM_TIME_ALLOC_OBJECTS ? si->alloc_count : si->live;
		if (!(v >= 0.5))
			continue;
		uint32_t n;
		const uint32_t *fr = hm_profile_stack(p, st, &n);
		if (grow((void **)&ids, &cap, n + 1, sizeof *ids)) {
			free(ids);
			return hm_error(HM_ENOMEM, "out of memory");
		}
		for (uint32_t i = 0; i < n; i++) {
			const hm_frame *f = hm_profile_frame(p, fr[i]);
			hm_frame g = *f;
			g.name = hm_profile_intern_cstr(out, hm_profile_str(p, f->name));
			g.file = hm_profile_intern_cstr(out, hm_profile_str(p, f->file));
			ids[i] = hm_profile_frame_id(out, &g);
		}
		int64_t count = (int64_t)llround(si->alloc_count);
		hm_profile_add(out, hm_profile_stack_id(out, ids, n), th, count > 0 ? count : 1,
			       (int64_t)llround(v), 0);
	}
	free(ids);
	hm_profile_meta *m = hm_profile_meta_get(out);
	const hm_profile_meta *src = hm_profile_meta_cget(p);
	m->time_kind = k;
	m->duration_ns = src->duration_ns;
	m->period_ns = src->period_ns;
	m->start_ns = src->start_ns;
	return HM_OK;
}
