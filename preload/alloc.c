/* alloc.c - homura's allocation sampler, preloaded into a program that
 * `homura run --memory` launches (build/libhomura-alloc.so).
 *
 * It interposes the allocator (malloc, calloc, realloc, free,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc,
 * malloc_usable_size) and memcpy/memmove; each forwards to the next
 * definition (dlsym RTLD_NEXT; the calls dlsym itself makes while that is
 * looked up are served from a small static arena). Python's own allocators
 * (pymalloc's PyMem and PyObject domains) are wrapped with
 * PyMem_SetAllocator from the constructor (see hook_python_domains).
 *
 * Sampling is by bytes: each thread counts down a distance drawn from an
 * exponential distribution (mean HM_MEMRING sample_bytes); the allocation
 * that crosses zero is sampled, with the weights n / p and 1 / p where
 * p = 1 - exp(-n / mean) is the chance that an n-byte allocation holds a
 * sample point, so the estimates are unbiased. The fast path is a
 * thread-local subtraction. A sampled allocation records the current
 * thread's Python stack (file:line), read in-process by the same walker
 * and layout tables `record` uses (python/), through process_vm_readv on
 * this process so a stale address never faults; the thread state comes
 * from the interpreter's thread-local (PyGILState_GetThisThreadState).
 * Sampled addresses go into a hash table; free() looks at a bitmap of
 * hash buckets holding sampled blocks first (8 KiB, so it stays in the
 * cache: a larger one cost a cache miss per free), so only the frees of
 * (possibly) sampled blocks take the lock. memcpy/memmove bytes are sampled the same way.
 * Records go to the shared-memory ring of base/memring.h; a full ring drops
 * records (counted), never waits.
 *
 * Safety: a thread-local guard keeps the sampler's own allocations (and a
 * signal handler's, while the sampler runs on that thread) out of the
 * sampling; errno is preserved; nothing that takes the loader's lock
 * (dlsym) runs under the sampler's lock; a forked child stops recording
 * and never touches the lock; a process without CPython's symbols (the
 * shell of a wrapper script, a C program) never claims the ring; reads of
 * the interpreter's memory cannot fault. os._exit and signals lose
 * nothing already in the ring. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/memring.h"
#include "proc/target.h"
#include "python/python.h"

#define EXPORT __attribute__((visibility("default")))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define BIG_LEFT (INT64_C(1) << 60)

#define TABLE_BITS 20
#define TABLE_SIZE (1u << TABLE_BITS)
#define TABLE_MAX (TABLE_SIZE / 2)
#define FILTER_BITS 16             /* an 8 KiB bitmap: stays in the L1 cache */
#define FILTER_SIZE (1u << FILTER_BITS)

/* ---- the next allocator -------------------------------------------------- */

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);
static size_t (*real_usable)(void *);
static void *(*real_memcpy)(void *, const void *, size_t);
static void *(*real_memmove)(void *, const void *, size_t);

/* Per thread (initial-exec TLS: no allocation on first use). */
struct tls {
	int64_t left;            /* bytes until the next allocation sample */
	int64_t copy_left;       /* bytes until the next copy sample */
	uint64_t rng;
	int guard;               /* inside the sampler (or resolving) */
	int init;
	int resolving;
};
static __thread struct tls T __attribute__((tls_model("initial-exec")));

static struct {
	int ctor_done;
	int enabled;             /* a ring is mapped */
	volatile int child;      /* forked: stop */
	double mean, copy_mean;
	hm_memring *ring;
	uint8_t *data;
	uint64_t *table;         /* sampled addresses (0: empty) */
	uint32_t ntable;
	uint64_t *filter;        /* bit per hash: sampled blocks there */
	uint16_t *fcount;        /* how many (under lock; 65535 sticky) */
	pthread_mutex_t lock;
	pid_t owner;             /* our pid once we own the ring */
	int refused;             /* another process owns it */
	int info_sent;
	uint32_t next_code;
	/* CPython, found by its exported symbols */
	int py_state;            /* 0 not looked, 1 found, -1 not there */
	uint32_t py_tries;
	void *(*get_tstate)(void);
	int (*is_finalizing)(void);
	int finalized;           /* the interpreter finalizes: stop */
	uintptr_t seg_lo[8], seg_hi[8];
	int nseg;
	uint32_t py_version;
	uint64_t runtime, code_type, frame_type;
	hm_target *tgt;
	hm_python *py;
	int py_broken;
	hm_pythread th;
} G = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- bootstrap arena ----------------------------------------------------- */

static _Alignas(64) unsigned char boot_buf[1 << 16];
static size_t boot_used;

static int is_boot(const void *p)
{
	return (const unsigned char *)p >= boot_buf && (const unsigned char *)p < boot_buf + sizeof boot_buf;
}

static void *boot_alloc(size_t n, size_t align)
{
	if (align < 16)
		align = 16;
	for (;;) {
		size_t used = __atomic_load_n(&boot_used, __ATOMIC_RELAXED);
		size_t start = (used + 16 + align - 1) & ~(align - 1);
		if (start + n > sizeof boot_buf || start + n < start)
			return NULL;
		if (__atomic_compare_exchange_n(&boot_used, &used, start + n, 0, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED)) {
			size_t sz = n;
			__builtin_memcpy(boot_buf + start - sizeof sz, &sz, sizeof sz);
			return boot_buf + start;
		}
	}
}

static size_t boot_size(const void *p)
{
	size_t sz;
	__builtin_memcpy(&sz, (const unsigned char *)p - sizeof sz, sizeof sz);
	return sz;
}

/* Used before memcpy/memmove are found; the volatile stores keep the
 * compiler from turning the loop back into a call to memcpy. */
static void byte_copy(void *d, const void *s, size_t n)
{
	volatile unsigned char *dd = d;
	const unsigned char *ss = s;
	if (dd < ss) {
		for (size_t i = 0; i < n; i++)
			dd[i] = ss[i];
	} else {
		for (size_t i = n; i > 0; i--)
			dd[i - 1] = ss[i - 1];
	}
}

static void resolve_real(void)
{
	T.resolving = 1;
	real_free = dlsym(RTLD_NEXT, "free");
	real_calloc = dlsym(RTLD_NEXT, "calloc");
	real_realloc = dlsym(RTLD_NEXT, "realloc");
	real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
	real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
	real_memalign = dlsym(RTLD_NEXT, "memalign");
	real_valloc = dlsym(RTLD_NEXT, "valloc");
	real_pvalloc = dlsym(RTLD_NEXT, "pvalloc");
	real_usable = dlsym(RTLD_NEXT, "malloc_usable_size");
	real_memmove = dlsym(RTLD_NEXT, "memmove");
	real_memcpy = dlsym(RTLD_NEXT, "memcpy");
	void *m = dlsym(RTLD_NEXT, "malloc");
	__atomic_store_n(&real_malloc, m, __ATOMIC_RELEASE);
	T.resolving = 0;
}

static inline int ready(void)
{
	if (LIKELY(__atomic_load_n(&real_malloc, __ATOMIC_ACQUIRE) != NULL))
		return 1;
	if (T.resolving)
		return 0;
	resolve_real();
	return real_malloc != NULL;
}

/* ---- sampling ------------------------------------------------------------ */

static uint64_t rng_next(void)
{
	uint64_t x = T.rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	T.rng = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static int64_t draw(double mean)
{
	double u = ((double)(rng_next() >> 11) + 1.0) * (1.0 / 9007199254740993.0);   /* (0, 1] */
	double d = -mean * log(u);
	return d < 1 ? 1 : d > 1e15 ? (int64_t)1e15 : (int64_t)d;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint32_t hash_addr(uint64_t a, int bits)
{
	return (uint32_t)((a * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

/* Reads of this process's memory that fail instead of faulting. */
static pid_t self_pid;
static int self_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	(void)ctx;
	struct iovec l = {buf, len}, r = {(void *)(uintptr_t)addr, len};
	return syscall(SYS_process_vm_readv, self_pid, &l, 1UL, &r, 1UL, 0UL) == (ssize_t)len ? 0 : -1;
}

struct seg_ctx {
	uintptr_t base;
};

static int seg_cb(struct dl_phdr_info *info, size_t size, void *vctx)
{
	(void)size;
	struct seg_ctx *c = vctx;
	if (info->dlpi_addr != c->base)
		return 0;
	for (int i = 0; i < info->dlpi_phnum && G.nseg < 8; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			G.seg_lo[G.nseg] = info->dlpi_addr + ph->p_vaddr;
			G.seg_hi[G.nseg] = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
			G.nseg++;
		}
	}
	return 1;
}

static uint32_t parse_version(const char *s)
{
	unsigned a = 0, b = 0, c = 0;
	if (!s || sscanf(s, "%u.%u.%u", &a, &b, &c) < 2)
		return 0;
	return (a << 24) | (b << 16) | (c << 8);
}

static void find_python_once(void);

/* Look up CPython's symbols (never under G.lock: dlsym takes the loader's
 * lock). Retried now and then while absent (an embedding program may load
 * libpython later). */
static void find_python(void)
{
	static int busy;
	int idle = 0;
	if (G.py_state == 1 || (G.py_state == -1 && (++G.py_tries & 255)) ||
	    !__atomic_compare_exchange_n(&busy, &idle, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return;
	find_python_once();
	__atomic_store_n(&busy, 0, __ATOMIC_RELEASE);
}

/* One look (never two threads at once: find_python). */
static void find_python_once(void)
{
	void *gt = dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
	void *rt = dlsym(RTLD_DEFAULT, "_PyRuntime");
	if (!gt || !rt) {
		G.py_state = -1;
		return;
	}
	const unsigned long *pv = dlsym(RTLD_DEFAULT, "Py_Version");
	uint32_t ver = pv ? (uint32_t)*pv : 0;
	if (!ver) {
		const char *(*getver)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "Py_GetVersion");
		ver = getver ? parse_version(getver()) : 0;
	}
	Dl_info di;
	if (dladdr(gt, &di) && di.dli_fbase) {
		struct seg_ctx c = {0};
		/* dlpi_addr is the load bias: 0 for a non-PIE executable. */
		struct link_map *lm = NULL;
		if (dladdr1(gt, &di, (void **)&lm, RTLD_DL_LINKMAP) && lm)
			c.base = lm->l_addr;
		G.nseg = 0;
		dl_iterate_phdr(seg_cb, &c);
	}
	void *fin = dlsym(RTLD_DEFAULT, "Py_IsFinalizing");          /* 3.13+ */
	if (!fin)
		fin = dlsym(RTLD_DEFAULT, "_Py_IsFinalizing");      /* 3.8-3.12 */
	G.is_finalizing = (int (*)(void))fin;
	G.code_type = (uint64_t)(uintptr_t)dlsym(RTLD_DEFAULT, "PyCode_Type");
	G.frame_type = (uint64_t)(uintptr_t)dlsym(RTLD_DEFAULT, "PyFrame_Type");
	G.runtime = (uint64_t)(uintptr_t)rt;
	G.py_version = ver;
	__atomic_store_n(&G.get_tstate, (void *(*)(void))gt, __ATOMIC_RELEASE);
	G.py_state = 1;
}

static int finalizing(void)
{
	return G.is_finalizing && G.is_finalizing();
}

#define PY_DOMAIN ((uintptr_t)1)     /* "caller" of the Python-domain hooks */

static int from_interpreter(uintptr_t caller)
{
	if (caller == PY_DOMAIN)
		return 1;
	for (int i = 0; i < G.nseg; i++)
		if (caller >= G.seg_lo[i] && caller < G.seg_hi[i])
			return 1;
	return 0;
}

/* ---- the ring (under G.lock) -------------------------------------------- */

struct wr {
	uint64_t head;           /* local head, published on commit */
	int failed;
};

static void *ring_put(struct wr *w, uint32_t type, size_t len)
{
	hm_memring *R = G.ring;
	len = (len + 7) & ~(size_t)7;
	if (w->failed)
		return NULL;
	uint64_t size = R->data_size, tail = __atomic_load_n(&R->tail, __ATOMIC_ACQUIRE);
	uint64_t pos = w->head % size;
	uint64_t pad = size - pos < len ? size - pos : 0;
	if (len > size || w->head + pad + len - tail > size) {
		w->failed = 1;
		return NULL;
	}
	if (pad) {
		hm_memrec_hdr *h = (hm_memrec_hdr *)(G.data + pos);
		h->type = HM_MR_PAD;
		h->len = (uint32_t)pad;
		w->head += pad;
		pos = 0;
	}
	hm_memrec_hdr *h = (hm_memrec_hdr *)(G.data + pos);
	h->type = type;
	h->len = (uint32_t)len;
	w->head += len;
	return h;
}

static int ring_commit(struct wr *w)
{
	if (w->failed) {
		__atomic_fetch_add(&G.ring->dropped, 1, __ATOMIC_RELAXED);
		return -1;
	}
	__atomic_store_n(&G.ring->head, w->head, __ATOMIC_RELEASE);
	return 0;
}

/* Own the ring, once: the first process with CPython's symbols. */
static int claim(void)
{
	pid_t me = (pid_t)syscall(SYS_getpid);
	if (G.owner)
		return G.owner == me;
	if (G.refused || G.py_state != 1)
		return 0;
	int32_t zero = 0;
	if (!__atomic_compare_exchange_n(&G.ring->owner, &zero, (int32_t)me, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE) && zero != me) {
		G.refused = 1;
		return 0;
	}
	self_pid = me;
	G.owner = me;
	return 1;
}

static void table_insert(uint64_t a)
{
	if (G.ntable >= TABLE_MAX) {
		__atomic_fetch_add(&G.ring->untracked, 1, __ATOMIC_RELAXED);
		return;
	}
	uint32_t i = hash_addr(a, TABLE_BITS);
	while (G.table[i] && G.table[i] != a)
		i = (i + 1) & (TABLE_SIZE - 1);
	if (G.table[i] == a)
		return;
	G.table[i] = a;
	G.ntable++;
	uint32_t h = hash_addr(a, FILTER_BITS);
	if (G.fcount[h] < 65535 && G.fcount[h]++ == 0)
		__atomic_fetch_or(&G.filter[h >> 6], 1ull << (h & 63), __ATOMIC_RELAXED);
}

/* Remove a; 1 if it was there. Backward-shift deletion (no tombstones). */
static int table_remove(uint64_t a)
{
	uint32_t i = hash_addr(a, TABLE_BITS);
	while (G.table[i] && G.table[i] != a)
		i = (i + 1) & (TABLE_SIZE - 1);
	if (!G.table[i])
		return 0;
	uint32_t j = i;
	for (;;) {
		G.table[i] = 0;
		for (;;) {
			j = (j + 1) & (TABLE_SIZE - 1);
			if (!G.table[j])
				goto done;
			uint32_t k = hash_addr(G.table[j], TABLE_BITS);
			/* may the entry at j move to i? (k cyclically not in (i, j]) */
			if (i <= j ? (k <= i || k > j) : (k <= i && k > j))
				break;
		}
		G.table[i] = G.table[j];
		i = j;
	}
done:
	G.ntable--;
	uint32_t h = hash_addr(a, FILTER_BITS);
	if (G.fcount[h] < 65535 && G.fcount[h] > 0 && --G.fcount[h] == 0)
		__atomic_fetch_and(&G.filter[h >> 6], ~(1ull << (h & 63)), __ATOMIC_RELAXED);
	return 1;
}

/* Module teardown frees what the program held to its end: once the
 * interpreter finalizes, the run is over for the measures (live at end,
 * leaks). Under G.lock. */
static void check_fini(void)
{
	if (G.child || G.finalized || !finalizing())
		return;
	struct wr w = {G.ring->head, 0};
	hm_memrec_info *in = ring_put(&w, HM_MR_FINI, sizeof *in);
	if (in) {
		in->pid = G.owner;
		in->py_version = G.py_version;
		in->t_ns = mono_ns();
	}
	ring_commit(&w);
	G.finalized = 1;
}

/* Write the Python stack of th (codes first time seen) into the record
 * being built; returns the frames written. */
static uint32_t put_frames(struct wr *w, hm_memrec_frame *out, uint32_t max)
{
	uint32_t n = 0;
	for (int i = 0; i < G.th.nframes && n < max; i++) {
		hm_pycode *c = (hm_pycode *)G.th.frames[i].code;
		out[n].code = c->user;
		out[n].line = G.th.frames[i].line;
		n++;
	}
	(void)w;
	return n;
}

static void emit_codes(struct wr *w, uint32_t nf, uint32_t *first_new)
{
	*first_new = G.next_code;
	for (uint32_t i = 0; i < nf; i++) {
		hm_pycode *c = (hm_pycode *)G.th.frames[i].code;
		if (c->user && c->user_gen == 1)
			continue;
		const char *name = c->qualname && *c->qualname ? c->qualname : c->name;
		size_t ln = strlen(name), lf = strlen(c->filename);
		if (ln > 1024)
			ln = 1024;
		if (lf > 4096)
			lf = 4096;
		hm_memrec_code *r = ring_put(w, HM_MR_CODE, sizeof *r + ln + lf);
		if (!r)
			return;
		r->id = ++G.next_code;
		r->firstlineno = c->firstlineno;
		r->name_len = (uint32_t)ln;
		r->file_len = (uint32_t)lf;
		real_memcpy((char *)(r + 1), name, ln);
		real_memcpy((char *)(r + 1) + ln, c->filename, lf);
		c->user = r->id;
		c->user_gen = 2;     /* provisional until the commit */
	}
}

static void settle_codes(uint32_t nf, int ok, uint32_t first_new)
{
	for (uint32_t i = 0; i < nf; i++) {
		hm_pycode *c = (hm_pycode *)G.th.frames[i].code;
		if (c->user_gen == 2) {
			c->user_gen = ok ? 1 : 0;
			if (!ok)
				c->user = 0;
		}
	}
	if (!ok)
		G.next_code = first_new;
}

static void walk_current(void)
{
	G.th.nframes = 0;
	void *(*gt)(void) = __atomic_load_n(&G.get_tstate, __ATOMIC_ACQUIRE);
	if (!gt || G.py_broken)
		return;
	void *ts = gt();
	if (!ts)
		return;
	if (!G.py) {
		if (!G.tgt && hm_target_open_mem(self_read, NULL, &G.tgt) != HM_OK)
			return;
		if (hm_python_attach_symbols(G.tgt, G.runtime, G.py_version, G.code_type, G.frame_type,
					     &G.py) != HM_OK) {
			G.py_broken = 1;
			return;
		}
		hm_python_set_max_depth(G.py, HM_MEMRING_MAX_FRAMES);
		hm_python_set_trace(G.py, 0);   /* no OpenTelemetry spans in-process */
	}
	if (hm_python_walk_tstate(G.py, (uint64_t)(uintptr_t)ts, &G.th) != HM_OK)
		G.th.nframes = 0;
}

static void record(int type, void *p, size_t n, double wb, double wc, uintptr_t caller)
{
	int saved = errno;
	T.guard = 1;
	find_python();
	if (G.child || !claim())
		goto out;
	pthread_mutex_lock(&G.lock);
	check_fini();
	if (!G.child && !G.finalized) {
		walk_current();
		uint32_t nf = G.th.nframes > HM_MEMRING_MAX_FRAMES ? HM_MEMRING_MAX_FRAMES
								  : (uint32_t)G.th.nframes;
		struct wr w = {G.ring->head, 0};
		if (!G.info_sent) {
			hm_memrec_info *in = ring_put(&w, HM_MR_INFO, sizeof *in);
			if (in) {
				in->pid = G.owner;
				in->py_version = G.py_version;
				in->t_ns = mono_ns();
			}
			G.info_sent = ring_commit(&w) == 0;
			w = (struct wr){G.ring->head, 0};
		}
		uint32_t first_new;
		emit_codes(&w, nf, &first_new);
		hm_memrec_alloc *r = ring_put(&w, (uint32_t)type,
					      sizeof *r + nf * sizeof(hm_memrec_frame));
		if (r) {
			r->t_ns = mono_ns();
			r->addr = (uint64_t)(uintptr_t)p;
			r->size = n;
			r->weight_bytes = wb;
			r->weight_count = wc;
			r->flags = (from_interpreter(caller) ? HM_MRF_PYTHON : 0) | (nf ? 0 : HM_MRF_NOSTACK);
			r->nframes = put_frames(&w, (hm_memrec_frame *)(r + 1), nf);
		}
		int ok = ring_commit(&w) == 0;
		settle_codes(nf, ok, first_new);
		if (ok && type == HM_MR_ALLOC)
			table_insert((uint64_t)(uintptr_t)p);
	}
	pthread_mutex_unlock(&G.lock);
out:
	T.guard = 0;
	errno = saved;
}

static void thread_init(void)
{
	T.init = 1;
	T.rng = (uint64_t)syscall(SYS_gettid) * 0x9E3779B97F4A7C15ull ^ mono_ns() ^ (uint64_t)(uintptr_t)&T;
	if (!T.rng)
		T.rng = 1;
	T.left += draw(G.mean);
	T.copy_left += draw(G.copy_mean);
}

__attribute__((noinline)) static void alloc_slow(void *p, size_t n, uintptr_t caller)
{
	if (T.guard || T.resolving) {
		T.left += (int64_t)n;      /* the sampler's own: not counted */
		return;
	}
	if (!G.ctor_done) {
		T.left = 1 << 20;          /* look again later */
		return;
	}
	if (!G.enabled || G.child || G.refused || G.finalized) {
		T.left = BIG_LEFT;
		return;
	}
	if (!T.init) {
		thread_init();
		if (T.left >= 0)
			return;
	}
	T.left = draw(G.mean);
	if (!p)
		return;
	double pr = -expm1(-(double)n / G.mean);
	if (pr <= 0)
		return;
	record(HM_MR_ALLOC, p, n, (double)n / pr, 1.0 / pr, caller);
}

__attribute__((noinline)) static void copy_slow(size_t n, uintptr_t caller)
{
	if (T.guard || T.resolving) {
		T.copy_left += (int64_t)n;
		return;
	}
	if (!G.ctor_done) {
		T.copy_left = 1 << 20;
		return;
	}
	if (!G.enabled || G.child || G.refused || G.finalized) {
		T.copy_left = BIG_LEFT;
		return;
	}
	if (!T.init) {
		thread_init();
		if (T.copy_left >= 0)
			return;
	}
	T.copy_left = draw(G.copy_mean);
	double pr = -expm1(-(double)n / G.copy_mean);
	if (pr <= 0)
		return;
	record(HM_MR_COPY, NULL, 0, (double)n / pr, 1.0 / pr, caller);
}

__attribute__((noinline)) static void free_slow(void *p)
{
	if (T.guard || G.child || G.finalized || !G.owner || G.owner != self_pid)
		return;
	int saved = errno;
	T.guard = 1;
	pthread_mutex_lock(&G.lock);
	check_fini();
	if (!G.child && !G.finalized && table_remove((uint64_t)(uintptr_t)p)) {
		struct wr w = {G.ring->head, 0};
		hm_memrec_free *r = ring_put(&w, HM_MR_FREE, sizeof *r);
		if (r) {
			r->t_ns = mono_ns();
			r->addr = (uint64_t)(uintptr_t)p;
		}
		ring_commit(&w);
	}
	pthread_mutex_unlock(&G.lock);
	T.guard = 0;
	errno = saved;
}

static inline void note_alloc(void *p, size_t n, uintptr_t caller)
{
	T.left -= (int64_t)n;
	if (UNLIKELY(T.left < 0))
		alloc_slow(p, n, caller);
}

/* May p be a sampled block? (its filter bit is set) */
static inline int maybe_sampled(const void *p)
{
	const uint64_t *f = G.filter;
	if (LIKELY(f == NULL))
		return 0;
	uint32_t h = hash_addr((uint64_t)(uintptr_t)p, FILTER_BITS);
	return (f[h >> 6] >> (h & 63)) & 1;
}

static inline void note_free(void *p)
{
	if (UNLIKELY(maybe_sampled(p)))
		free_slow(p);
}

#define CALLER ((uintptr_t)__builtin_return_address(0))

/* ---- the interposed functions -------------------------------------------
 * The hot ones (malloc, free, memcpy, memmove and the Python-domain
 * wrappers) count an allocation's bytes before forwarding it, so that when
 * no sample is due (nearly always) they end in a tail call to the next
 * allocator: no stack frame, no second return. Everything else (a sample
 * due, a block that may be sampled, the allocator not yet resolved) goes
 * to an out-of-line slow path that does what the plain wrapper would. A
 * failed allocation counted this way only moves the next sample point. */

__attribute__((noinline)) static void *malloc_slow(size_t n, uintptr_t caller)
{
	if (UNLIKELY(!ready()))
		return boot_alloc(n, 16);
	void *p = real_malloc(n);
	note_alloc(p, n, caller);
	return p;
}

EXPORT void *malloc(size_t n)
{
	void *(*m)(size_t) = __atomic_load_n(&real_malloc, __ATOMIC_ACQUIRE);
	int64_t left = T.left - (int64_t)n;
	if (LIKELY(m != NULL && left >= 0)) {
		T.left = left;
		return m(n);
	}
	return malloc_slow(n, CALLER);
}

EXPORT void *calloc(size_t a, size_t b)
{
	if (UNLIKELY(!ready())) {
		size_t n;
		return __builtin_mul_overflow(a, b, &n) ? NULL : boot_alloc(n, 16);  /* zeroed */
	}
	void *p = real_calloc(a, b);
	if (p)
		note_alloc(p, a * b, CALLER);
	return p;
}

__attribute__((noinline)) static void free_sampled(void *p)
{
	if (!p)
		return;
	note_free(p);
	if (LIKELY(real_free != NULL))
		real_free(p);
}

EXPORT void free(void *p)
{
	if (UNLIKELY(is_boot(p)))
		return;
	void (*f)(void *) = real_free;
	if (LIKELY(f != NULL && !maybe_sampled(p))) {
		f(p);        /* free(NULL) included: a no-op there */
		return;
	}
	free_sampled(p);
}

EXPORT void *realloc(void *p, size_t n)
{
	if (UNLIKELY(!ready()) || (p && is_boot(p))) {
		void *q = ready() ? real_malloc(n) : boot_alloc(n, 16);
		if (q && p) {
			size_t old = boot_size(p);
			byte_copy(q, p, old < n ? old : n);
		}
		return q;
	}
	if (p)
		note_free(p);
	void *q = real_realloc(p, n);
	if (q)
		note_alloc(q, n, CALLER);
	return q;
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
	if (UNLIKELY(!ready())) {
		*out = boot_alloc(n, align);
		return *out ? 0 : ENOMEM;
	}
	int rc = real_posix_memalign(out, align, n);
	if (!rc)
		note_alloc(*out, n, CALLER);
	return rc;
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
	if (UNLIKELY(!ready()))
		return boot_alloc(n, align);
	void *p = real_aligned_alloc(align, n);
	if (p)
		note_alloc(p, n, CALLER);
	return p;
}

EXPORT void *memalign(size_t align, size_t n)
{
	if (UNLIKELY(!ready()))
		return boot_alloc(n, align);
	void *p = real_memalign(align, n);
	if (p)
		note_alloc(p, n, CALLER);
	return p;
}

EXPORT void *valloc(size_t n)
{
	if (UNLIKELY(!ready()))
		return boot_alloc(n, 4096);
	void *p = real_valloc(n);
	if (p)
		note_alloc(p, n, CALLER);
	return p;
}

EXPORT void *pvalloc(size_t n)
{
	if (UNLIKELY(!ready()))
		return boot_alloc(n, 4096);
	void *p = real_pvalloc(n);
	if (p)
		note_alloc(p, n, CALLER);
	return p;
}

EXPORT size_t malloc_usable_size(void *p)
{
	if (!p)
		return 0;
	if (is_boot(p))
		return boot_size(p);
	return ready() ? real_usable(p) : 0;
}

/* A copy sample due, or memcpy/memmove not yet resolved (real: the one). */
__attribute__((noinline)) static void *copy_slowpath(void *(*real)(void *, const void *, size_t),
						     void *d, const void *s, size_t n,
						     uintptr_t caller)
{
	if (UNLIKELY(!real)) {
		byte_copy(d, s, n);
		return d;
	}
	T.copy_left -= (int64_t)n;
	if (UNLIKELY(T.copy_left < 0))
		copy_slow(n, caller);
	return real(d, s, n);
}

EXPORT void *memcpy(void *d, const void *s, size_t n)
{
	void *(*f)(void *, const void *, size_t) = real_memcpy;
	int64_t left = T.copy_left - (int64_t)n;
	if (LIKELY(f != NULL && left >= 0)) {
		T.copy_left = left;
		return f(d, s, n);
	}
	return copy_slowpath(real_memcpy, d, s, n, CALLER);
}

EXPORT void *memmove(void *d, const void *s, size_t n)
{
	void *(*f)(void *, const void *, size_t) = real_memmove;
	int64_t left = T.copy_left - (int64_t)n;
	if (LIKELY(f != NULL && left >= 0)) {
		T.copy_left = left;
		return f(d, s, n);
	}
	return copy_slowpath(real_memmove, d, s, n, CALLER);
}

/* ---- Python's object and PyMem allocators ------------------------------
 * pymalloc serves most Python objects from its own arenas (mmap), unseen
 * by malloc. Its domains (PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ) are wrapped
 * with PyMem_SetAllocator from the constructor, before the interpreter
 * starts (it keeps the allocators it was built with unless PYTHONMALLOC
 * says otherwise); each wrapper forwards to the original. A large object
 * that pymalloc passes on to malloc is counted once: the countdown is
 * restored around the original call and the guard keeps malloc's slow
 * path out. */

typedef struct pyalloc {             /* PyMemAllocatorEx */
	void *ctx;
	void *(*malloc)(void *ctx, size_t n);
	void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
	void *(*realloc)(void *ctx, void *p, size_t n);
	void (*free)(void *ctx, void *p);
} pyalloc;

enum { PYMEM_DOMAIN_RAW_ = 0, PYMEM_DOMAIN_MEM_ = 1, PYMEM_DOMAIN_OBJ_ = 2 };
static pyalloc orig_dom[3];

#define PY_INNER(call)                                      \
	int64_t saved_left = T.left;                        \
	int saved_guard = T.guard;                          \
	T.guard = 1;                                        \
	call;                                               \
	T.guard = saved_guard;                              \
	T.left = saved_left

/* pymalloc serves requests up to 512 bytes itself and passes larger ones
 * to malloc: only those need the countdown restored. */
#define PY_SMALL 512

/* A sample due, or a block pymalloc passes on to malloc. */
__attribute__((noinline)) static void *py_malloc_slow(const pyalloc *o, size_t n)
{
	void *p;
	if (n <= PY_SMALL) {
		p = o->malloc(o->ctx, n);
	} else {
		PY_INNER(p = o->malloc(o->ctx, n));
	}
	if (p)
		note_alloc(p, n, PY_DOMAIN);
	return p;
}

static void *py_malloc(void *ctx, size_t n)
{
	const pyalloc *o = ctx;
	int64_t left = T.left - (int64_t)n;
	if (LIKELY(n <= PY_SMALL && left >= 0)) {
		T.left = left;
		return o->malloc(o->ctx, n);
	}
	return py_malloc_slow(o, n);
}

static void *py_calloc(void *ctx, size_t a, size_t b)
{
	const pyalloc *o = ctx;
	void *p;
	PY_INNER(p = o->calloc(o->ctx, a, b));
	if (p)
		note_alloc(p, a * b, PY_DOMAIN);
	return p;
}

static void *py_realloc(void *ctx, void *old, size_t n)
{
	const pyalloc *o = ctx;
	void *p;
	if (old)
		note_free(old);
	PY_INNER(p = o->realloc(o->ctx, old, n));
	if (p)
		note_alloc(p, n, PY_DOMAIN);
	return p;
}

/* A sampled block is forgotten before the original free (which, for a
 * large block, is free() again: it then finds nothing to forget). */
__attribute__((noinline)) static void py_free_sampled(const pyalloc *o, void *p)
{
	if (p)
		free_slow(p);
	o->free(o->ctx, p);
}

static void py_free(void *ctx, void *p)
{
	const pyalloc *o = ctx;
	if (LIKELY(!maybe_sampled(p))) {
		o->free(o->ctx, p);
		return;
	}
	py_free_sampled(o, p);
}

static void hook_python_domains(void)
{
	void (*get)(int, pyalloc *) = (void (*)(int, pyalloc *))dlsym(RTLD_DEFAULT, "PyMem_GetAllocator");
	void (*set)(int, pyalloc *) = (void (*)(int, pyalloc *))dlsym(RTLD_DEFAULT, "PyMem_SetAllocator");
	if (!get || !set)
		return;
	for (int d = PYMEM_DOMAIN_MEM_; d <= PYMEM_DOMAIN_OBJ_; d++) {
		get(d, &orig_dom[d]);
		if (!orig_dom[d].malloc || !orig_dom[d].free)
			continue;
		pyalloc mine = {&orig_dom[d], py_malloc, py_calloc, py_realloc, py_free};
		set(d, &mine);
	}
}

/* ---- set-up -------------------------------------------------------------- */

static void after_fork_child(void)
{
	G.child = 1;
}

static int map_ring(const char *path)
{
	int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	void *m = MAP_FAILED;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
	    (size_t)st.st_size > sizeof(hm_memring))
		m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return -1;
	hm_memring *R = m;
	if (R->magic != HM_MEMRING_MAGIC || R->hdr_size != sizeof *R ||
	    R->data_size + sizeof *R > (uint64_t)st.st_size || R->data_size < 4096 ||
	    (R->data_size & 7) || !(R->sample_bytes >= 1) || !(R->copy_bytes >= 1)) {
		munmap(m, (size_t)st.st_size);
		return -1;
	}
	G.ring = R;
	G.data = (uint8_t *)m + sizeof *R;
	G.mean = R->sample_bytes;
	G.copy_mean = R->copy_bytes;
	return 0;
}

__attribute__((constructor)) static void alloc_init(void)
{
	ready();
	const char *path = getenv(HM_MEMRING_ENV);
	if (path && *path && map_ring(path) == 0) {
		void *t = mmap(NULL, TABLE_SIZE * sizeof(uint64_t), PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		void *f = mmap(NULL, FILTER_SIZE / 8 + FILTER_SIZE * sizeof(uint16_t),
			       PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (t != MAP_FAILED && f != MAP_FAILED) {
			G.table = t;
			G.fcount = (uint16_t *)((uint8_t *)f + FILTER_SIZE / 8);
			pthread_atfork(NULL, NULL, after_fork_child);
			G.enabled = 1;
			__atomic_store_n(&G.filter, (uint64_t *)f, __ATOMIC_RELEASE);
			/* A CPython process owns the ring from the start. */
			T.guard = 1;
			find_python();
			if (claim())
				hook_python_domains();
			T.guard = 0;
		}
	}
	__atomic_store_n(&G.ctor_done, 1, __ATOMIC_RELEASE);
}
