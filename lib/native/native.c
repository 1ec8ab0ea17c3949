/* native.c - native stacks with libdwfl, merged into Python stacks (see
 * native.h).
 *
 * How it works:
 * - Modules: dwfl_linux_proc_report reads /proc/PID/maps; ELF files are opened
 *   through /proc/PID/root so targets in containers work, and each module's
 *   ELF and .eh_frame are loaded right away rather than during the first
 *   unwind, while a thread stands stopped. A hash of the
 *   file-backed lines of the maps is re-checked once a second (and when a pc
 *   falls outside every known module) and the module list is reported again
 *   when it changed (dlopen, dlclose, exec).
 * - Unwinding: our own Dwfl_Thread_Callbacks. The sampled thread is stopped
 *   with PTRACE_SEIZE + PTRACE_INTERRUPT (proc/ptrace.c: at most 50 ms; a
 *   stop that comes later is detached when it does), its registers come from
 *   PTRACE_GETREGS, and memory reads go through a small per-unwind page cache
 *   filled by process_vm_readv (one syscall fetches several pages of stack),
 *   so a 30-frame unwind costs a handful of syscalls. libdw applies the CFI
 *   (.eh_frame / .debug_frame). The thread is detached right after its
 *   unwind; symbols are looked up while it runs again.
 * - Unwinding from a copy (hm_native_unwind_copy, --ebpf --native): the
 *   registers and the top of the stack come from a perf sample; memory reads
 *   inside the copy are served from it, the rest of the stack ends the
 *   unwind, other addresses are read from the process. Nothing is stopped.
 * - Symbols: a chained hash plus LRU list from pc to name (demangled through
 *   libstdc++'s __cxa_demangle when that library can be loaded), DWARF file
 *   and line, module and role. Entries are only evicted at the start of a
 *   sample, so pointers handed out stay valid until the next one.
 * - Merging: see hm_native_merge. An interpreter whose evaluation loop has
 *   no symbol (a stripped build running a compiler-made copy) has it found
 *   by size instead (see "the evaluation loop of a stripped interpreter"). */
#include <dlfcn.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <time.h>
#include <unistd.h>
#if defined(__aarch64__)
#include <elf.h>
#include <asm/ptrace.h>
#endif

#include "base/error.h"
#include "base/util.h"
#include "native/native.h"
#include "proc/ptrace.h"
#include "python/pyinternal.h"

#define PAGE_SIZE_ 4096u
#define CACHE_PAGES 64           /* stack pages kept per unwind */
#define READ_AHEAD 8             /* pages fetched per miss */
#define MAX_NATIVE_FRAMES 1024
#define STOP_TIMEOUT_NS 50000000ull   /* give up on a thread that won't stop */
#define MAPS_CHECK_NS 1000000000ull
#define RELOAD_MIN_NS 250000000ull
#define DEFAULT_CACHE 16384
#define MAX_BIG 4                /* big functions kept per interpreter */
#define EVAL_MIN_BYTES 16384     /* an evaluation loop is at least this big */

struct page {
	uint64_t addr;           /* page address, 0: empty */
	uint8_t data[PAGE_SIZE_];
};

struct symentry {
	hm_natsym pub;
	uint32_t map_gen;                /* module list it was resolved with */
	struct symentry *hnext;          /* hash chain */
	struct symentry *prev, *next;    /* LRU list, most recent first */
};

struct stopped {                 /* a thread we seized */
	pid_t tid;
	int ours;                /* 0: someone (our --blocking) already traced it */
	int signal;              /* signal to give back on detach */
	int resumed;
	uint64_t t0;
};

struct hm_native {
	hm_target *t;
	pid_t pid;
	Dwfl *dwfl;
	Dwfl_Callbacks cb;
	char *debuginfo_path;
	uint64_t maps_hash;
	uint64_t maps_checked_ns, reloaded_ns;

	/* current unwind */
	pid_t cur_tid;
	uint64_t regs[33];
	int nregs;
	uint64_t pc0;
	hm_natstack *cur;
	int ended;               /* the unwind met a zero return address */
	struct page *pages;
	int pages_used, page_victim;

	/* symbol cache */
	struct symentry **buckets;
	size_t nbuckets, nsyms, cap;
	struct symentry lru;     /* sentinel */
	uint32_t map_gen;        /* bumped when the module list is reloaded */
	int stale;               /* entries of an older map_gen remain */
	int py_major;

	/* the interpreter's biggest functions, by their unwind tables: where
	 * an unnamed evaluation loop may lie (see big_function) */
	char *interp_path;       /* its maps path (hm_python's mod_path) */
	Dwfl_Module *big_mod;    /* module the ranges below belong to */
	uint32_t big_gen;        /* ... with this map_gen */
	int nbig;
	uint64_t big_lo[MAX_BIG], big_hi[MAX_BIG];   /* file addresses */

	struct stopped *stop;    /* threads stopped in this sample */
	int nstop, stopcap;
	hm_ptrace pt;            /* and those whose stop came late */

	hm_pysample pre;
	hm_native_stats st;

	/* hm_native_unwind_copy: the stack copy memory reads come from */
	const uint8_t *copy;
	uint64_t copy_lo;
	size_t copy_len;
};

static __thread hm_native *elf_ctx;   /* for find_elf, which has no user arg */

/* ---- demangling (optional: libstdc++ loaded on first use) ------------- */

typedef char *(*demangle_fn)(const char *, char *, size_t *, int *);
static demangle_fn demangler;
static pthread_once_t demangler_once = PTHREAD_ONCE_INIT;

static void demangler_load(void)
{
	void *h = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);
	if (h)
		*(void **)&demangler = dlsym(h, "__cxa_demangle");
}

static char *demangle(const char *sym)
{
	if (sym[0] != '_' || sym[1] != 'Z')
		return NULL;
	pthread_once(&demangler_once, demangler_load);
	if (!demangler)
		return NULL;
	int status = -1;
	char *d = demangler(sym, NULL, NULL, &status);
	if (status != 0) {
		free(d);
		return NULL;
	}
	return d;
}

/* ---- roles --------------------------------------------------------------- */

static const char *const plumbing_names[] = {
	"PyEval_EvalFrame", "PyEval_EvalFrameEx", "_PyEval_Vector", "_PyEval_EvalCode",
	"_PyEval_EvalCodeWithName", "PyEval_EvalCodeEx", "_PyFunction_Vectorcall",
	"_PyFunction_FastCallDict", "_PyFunction_FastCallKeywords", "_PyFunction_FastCall",
	"function_code_fastcall", "fast_function", "call_function", "do_call_core",
	"_PyObject_VectorcallTstate", "PyObject_Vectorcall", "_PyObject_Vectorcall",
	"PyObject_VectorcallDict", "_PyObject_FastCallDictTstate", "_PyObject_FastCallDict",
	"_PyObject_FastCall", "_PyObject_FastCallKeywords", "_PyObject_FastCall_Prepend",
	"_PyObject_MakeTpCall", "_PyObject_Call", "PyObject_Call", "_PyObject_Call_Prepend",
	"PyVectorcall_Call", "_PyVectorcall_Call", "PyObject_CallObject", "PyObject_CallOneArg",
	"_PyObject_CallOneArg", "PyObject_CallNoArgs", "_PyObject_CallNoArg",
	"PyObject_CallFunctionObjArgs", "PyObject_CallMethodObjArgs", "PyObject_VectorcallMethod",
	"_PyObject_VectorcallMethod", "method_vectorcall", "vectorcall_method", "vectorcall_unbound",
	"_PyCFunction_FastCallKeywords", "_PyCFunction_FastCallDict",
	"_PyMethodDef_RawFastCallKeywords", "_PyMethodDef_RawFastCallDict", "cfunction_call",
	"cfunction_call_varargs", "slot_tp_call", "gen_send_ex", "gen_send_ex2", "gen_iternext",
	"gen_send", "_PyEval_EvalFrame", "PyEval_CallObjectWithKeywords",
	"_PyMethodDescr_FastCallKeywords", "method_vectorcall_FASTCALL",
};

static const char *const plumbing_prefixes[] = {
	"cfunction_vectorcall_", "method_vectorcall_", "_PyObject_VectorcallTstate",
};

int hm_native_role(const char *sym, int major)
{
	if (!sym)
		return HM_NAT_PLAIN;
	/* GCC clone suffixes (.cold, .isra.0, .part.1, ...) keep the role. */
	size_t len = strcspn(sym, ".");
	const char *eval = major == 2 ? "PyEval_EvalFrameEx" : "_PyEval_EvalFrameDefault";
	if (len == strlen(eval) && !strncmp(sym, eval, len))
		return HM_NAT_EVAL;
	for (size_t i = 0; i < sizeof plumbing_names / sizeof *plumbing_names; i++)
		if (strlen(plumbing_names[i]) == len && !strncmp(sym, plumbing_names[i], len))
			return HM_NAT_PLUMBING;
	for (size_t i = 0; i < sizeof plumbing_prefixes / sizeof *plumbing_prefixes; i++)
		if (!strncmp(sym, plumbing_prefixes[i], strlen(plumbing_prefixes[i])))
			return HM_NAT_PLUMBING;
	return HM_NAT_PLAIN;
}

/* ---- modules ------------------------------------------------------------- */

static int find_elf(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base,
		    char **file_name, Elf **elfp)
{
	hm_native *n = elf_ctx;
	if (n && name[0] == '/') {
		char *p = hm_target_path(n->t, name);
		int fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
		if (fd >= 0) {
			*file_name = p;
			return fd;
		}
		free(p);
	}
	return dwfl_linux_proc_find_elf(mod, userdata, name, base, file_name, elfp);
}

/* FNV-1a over the file-backed lines of /proc/PID/maps. 0 on failure. */
static uint64_t maps_hash(pid_t pid)
{
	char path[64], buf[8192];
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	uint64_t h = 1469598103934665603ull;
	int line_has_file = 0, col = 0;
	char line[512];
	size_t ll = 0;
	ssize_t r;
	while ((r = read(fd, buf, sizeof buf)) > 0) {
		for (ssize_t i = 0; i < r; i++) {
			char c = buf[i];
			if (c == '\n') {
				if (line_has_file)
					for (size_t k = 0; k < ll; k++)
						h = (h ^ (uint8_t)line[k]) * 1099511628211ull;
				ll = 0;
				line_has_file = 0;
				col = 0;
				continue;
			}
			if (c == '/' && !line_has_file && col > 20)
				line_has_file = 1;
			col++;
			if (ll < sizeof line)
				line[ll++] = c;
		}
	}
	close(fd);
	return h ? h : 1;
}

/* Open each module's ELF file and CFI now, so the first unwind (with the
 * thread stopped) does not pay for it. Already loaded ones cost nothing. */
static int preload_module(Dwfl_Module *mod, void **userdata, const char *name,
			  Dwarf_Addr start, void *arg)
{
	Dwarf_Addr bias;
	if (dwfl_module_getelf(mod, &bias))
		dwfl_module_eh_cfi(mod, &bias);
	return DWARF_CB_OK;
}

static int report_modules(hm_native *n)
{
	dwfl_report_begin(n->dwfl);
	int r = dwfl_linux_proc_report(n->dwfl, n->pid);
	dwfl_report_end(n->dwfl, NULL, NULL);
	if (r == 0)
		dwfl_getmodules(n->dwfl, preload_module, n, 0);
	n->reloaded_ns = hm_mono_ns();
	if (r != 0)
		return hm_error(r > 0 ? HM_ENOPROC : HM_ESYS, "cannot read the modules of process %d: %s",
				(int)n->pid, r > 0 ? strerror(r) : dwfl_errmsg(-1));
	return HM_OK;
}

/* Re-report the modules when the maps changed. Returns 1 if it reloaded. */
static int check_maps(hm_native *n)
{
	uint64_t now = hm_mono_ns();
	n->maps_checked_ns = now;
	uint64_t h = maps_hash(n->pid);
	if (!h || h == n->maps_hash)
		return 0;
	n->maps_hash = h;
	/* Entries of the old module list stop matching now; they are freed
	 * at the start of the next sample, as stacks may still point to them. */
	n->map_gen++;
	n->stale = 1;
	if (report_modules(n) == HM_OK)
		n->st.map_reloads++;
	return 1;
}

/* ---- remote memory: page cache for one unwind --------------------------- */

static const uint8_t *page_get(hm_native *n, uint64_t pa)
{
	for (int i = 0; i < n->pages_used; i++)
		if (n->pages[i].addr == pa)
			return n->pages[i].data;
	/* Miss: fetch this page and the ones above it that we lack (the
	 * stack grows down, so callers live above), in one syscall. */
	int k = 1;
	for (; k < READ_AHEAD; k++) {
		int held = 0;
		for (int j = 0; j < n->pages_used && !held; j++)
			held = n->pages[j].addr == pa + (uint64_t)k * PAGE_SIZE_;
		if (held)
			break;
	}
	struct iovec local[READ_AHEAD] = {{0}};
	int slots[READ_AHEAD] = {0};
	for (int j = 0; j < k; j++) {
		int s;
		if (n->pages_used < CACHE_PAGES) {
			s = n->pages_used++;
		} else {
			s = n->page_victim;
			n->page_victim = (n->page_victim + 1) % CACHE_PAGES;
		}
		n->pages[s].addr = 0;
		slots[j] = s;
		local[j] = (struct iovec){n->pages[s].data, PAGE_SIZE_};
	}
	struct iovec remote = {(void *)(uintptr_t)pa, (size_t)k * PAGE_SIZE_};
	ssize_t got = process_vm_readv(n->pid, local, (unsigned long)k, &remote, 1, 0);
	if (got < (ssize_t)PAGE_SIZE_)
		return NULL;   /* partial reads stop at the end of a mapping */
	for (int j = 0; j < k && (ssize_t)((size_t)(j + 1) * PAGE_SIZE_) <= got; j++)
		n->pages[slots[j]].addr = pa + (uint64_t)j * PAGE_SIZE_;
	return n->pages[slots[0]].data;
}

/* hm_native_unwind_copy: the thread's stack as it was is only what the copy
 * holds; the live stack around it has changed since. */
#define STACK_WINDOW_BELOW (64u << 10)
#define STACK_WINDOW_ABOVE (8u << 20)

static bool mem_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	hm_native *n = arg;
	if (n->copy) {
		if (addr >= n->copy_lo && addr - n->copy_lo <= n->copy_len &&
		    n->copy_len - (addr - n->copy_lo) >= 8) {
			memcpy(result, n->copy + (addr - n->copy_lo), 8);
			return true;
		}
		if (addr + STACK_WINDOW_BELOW >= n->copy_lo && addr < n->copy_lo + STACK_WINDOW_ABOVE)
			return false;   /* stack beyond the copy: the unwind ends here */
	}
	uint64_t pa = addr & ~(uint64_t)(PAGE_SIZE_ - 1), off = addr - pa;
	uint8_t tmp[8];
	const uint8_t *p = page_get(n, pa);
	if (!p || !pa)
		return false;
	if (off + 8 <= PAGE_SIZE_) {
		memcpy(result, p + off, 8);
		return true;
	}
	size_t first = PAGE_SIZE_ - off;
	memcpy(tmp, p + off, first);
	p = page_get(n, pa + PAGE_SIZE_);
	if (!p)
		return false;
	memcpy(tmp + first, p, 8 - first);
	memcpy(result, tmp, 8);
	return true;
}

/* ---- thread callbacks ----------------------------------------------------- */

static pid_t next_thread(Dwfl *dwfl, void *arg, void **thread_argp)
{
	hm_native *n = arg;
	if (*thread_argp)
		return 0;
	*thread_argp = n;
	return n->cur_tid;
}

static bool get_thread(Dwfl *dwfl, pid_t tid, void *arg, void **thread_argp)
{
	hm_native *n = arg;
	*thread_argp = n;
	return tid == n->cur_tid;
}

static bool set_initial_registers(Dwfl_Thread *thread, void *arg)
{
	hm_native *n = arg;
	if (!dwfl_thread_state_registers(thread, 0, (unsigned)n->nregs, n->regs))
		return false;
#if defined(__aarch64__)
	dwfl_thread_state_register_pc(thread, n->pc0);
#endif
	return true;
}

static const Dwfl_Thread_Callbacks thread_callbacks = {
	.next_thread = next_thread,
	.get_thread = get_thread,
	.memory_read = mem_read,
	.set_initial_registers = set_initial_registers,
};

/* Registers of a stopped thread in DWARF order. HM_OK or HM_ESYS. */
static int read_registers(hm_native *n, pid_t tid)
{
#if defined(__x86_64__)
	struct user_regs_struct r;
	if (ptrace(PTRACE_GETREGS, tid, 0, &r) != 0)
		return hm_error(HM_ESYS, "cannot read the registers of thread %d: %s", (int)tid,
				strerror(errno));
	uint64_t v[17] = {r.rax, r.rdx, r.rcx, r.rbx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8,
			  r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip};
	memcpy(n->regs, v, sizeof v);
	n->nregs = 17;
	n->pc0 = r.rip;
	return HM_OK;
#elif defined(__aarch64__)
	struct user_pt_regs r;
	struct iovec io = {&r, sizeof r};
	if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRSTATUS, &io) != 0)
		return hm_error(HM_ESYS, "cannot read the registers of thread %d: %s", (int)tid,
				strerror(errno));
	memcpy(n->regs, r.regs, 31 * 8);
	n->regs[31] = r.sp;
	n->nregs = 32;
	n->pc0 = r.pc;
	return HM_OK;
#else
	(void)n;
	return hm_error(HM_EINVAL, "--native is not supported on this architecture");
#endif
}

/* ---- stopping threads ----------------------------------------------------- */

/* Seize and stop tid (proc/ptrace.h). HM_OK; HM_ENOPROC gone; other errors. */
static int stop_thread(hm_native *n, pid_t tid, struct stopped *s)
{
	*s = (struct stopped){tid, 1, 0, 0, hm_mono_ns()};
	int r = hm_ptrace_stop(&n->pt, tid, &s->signal);
	if (r == HM_PTRACE_BORROWED) {
		s->ours = 0;   /* already stopped by our --blocking */
		return HM_OK;
	}
	return r;
}

static void resume_thread(hm_native *n, struct stopped *s)
{
	if (s->resumed)
		return;
	s->resumed = 1;
	uint64_t d = hm_mono_ns() - s->t0;
	n->st.stop_ns += d;
	if (d > n->st.stop_max_ns)
		n->st.stop_max_ns = d;
	if (s->ours)
		hm_ptrace_resume(&n->pt, s->tid, s->signal);
}

static void resume_all(hm_native *n)
{
	for (int i = 0; i < n->nstop; i++)
		resume_thread(n, &n->stop[i]);
	n->nstop = 0;
}

/* ---- symbol cache --------------------------------------------------------- */

static size_t hash_pc(const hm_native *n, uint64_t pc)
{
	pc ^= pc >> 29;
	pc *= 0xbf58476d1ce4e5b9ull;
	pc ^= pc >> 32;
	return (size_t)pc & (n->nbuckets - 1);
}

static void lru_unlink(struct symentry *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

static void lru_push_front(hm_native *n, struct symentry *e)
{
	e->next = n->lru.next;
	e->prev = &n->lru;
	n->lru.next->prev = e;
	n->lru.next = e;
}

static void entry_drop(hm_native *n, struct symentry *e)
{
	struct symentry **pp = &n->buckets[hash_pc(n, e->pub.pc)];
	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	lru_unlink(e);
	n->nsyms--;
	free(e);
}

/* Bound the cache (only between samples: entries handed out stay valid). */
static void cache_trim(hm_native *n)
{
	while (n->nsyms > n->cap && n->lru.prev != &n->lru)
		entry_drop(n, n->lru.prev);
}

static void cache_clear(hm_native *n)
{
	while (n->lru.prev != &n->lru)
		entry_drop(n, n->lru.prev);
	n->stale = 0;
}

/* Free the entries resolved against an older module list. */
static void cache_drop_stale(hm_native *n)
{
	for (struct symentry *e = n->lru.next, *next; e != &n->lru; e = next) {
		next = e->next;
		if (e->map_gen != n->map_gen)
			entry_drop(n, e);
	}
	n->stale = 0;
}

/* Strip GCC clone suffixes for display: "deflate_slow.isra.0" -> deflate_slow. */
static size_t display_len(const char *sym)
{
	const char *dot = strchr(sym, '.');
	if (!dot || dot == sym)
		return strlen(sym);
	static const char *const sfx[] = {".cold", ".isra", ".part", ".constprop", ".lto_priv",
					  ".localalias"};
	for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++)
		if (!strncmp(dot, sfx[i], strlen(sfx[i])))
			return (size_t)(dot - sym);
	return strlen(sym);
}

static const char *base_name(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;
	return s ? s + 1 : p ? p : "";
}

/* ---- the evaluation loop of a stripped interpreter ------------------------ */

/* Some interpreters run an unnamed copy of the evaluation loop (a stripped
 * binary whose compiler cloned _PyEval_EvalFrameDefault: only the exported,
 * unused original keeps its name). Its code is still known by its size: the
 * loop is by far the biggest function of CPython. The function starts come
 * from the binary's unwind table (.eh_frame_hdr, present even when
 * stripped), each function taken to end where the next one starts; those in
 * .text at least half as big as the biggest (and at least EVAL_MIN_BYTES)
 * are kept. Unnamed code of the interpreter inside one of them is taken for
 * the evaluation loop. Other big static functions (the AST converters) are
 * rarely on a sampled stack; if one is, its extra "evaluation loop" frame
 * makes the merge torn, and that sample keeps its Python frames only. */

static int read_enc(const uint8_t *p, const uint8_t *end, int enc, int64_t *v)
{
	switch (enc & 0x0f) {
	case 0x03: { uint32_t u; if (end - p < 4) return -1; memcpy(&u, p, 4); *v = u; return 4; }
	case 0x0b: { int32_t i; if (end - p < 4) return -1; memcpy(&i, p, 4); *v = i; return 4; }
	case 0x04:
	case 0x0c: { int64_t i; if (end - p < 8) return -1; memcpy(&i, p, 8); *v = i; return 8; }
	default: return -1;
	}
}

int hm_native_big_functions(const uint8_t *hdr, size_t len, uint64_t hdr_vaddr, uint64_t text_lo,
			    uint64_t text_hi, uint64_t *lo, uint64_t *hi, int max)
{
	const uint8_t *end = hdr + len, *p = hdr + 4;
	int64_t v, count;
	int k;
	/* version 1; eh_frame_ptr, fde_count; a table of (start, fde) pairs
	 * relative to the header, as 4-byte signed values (the only table
	 * encoding linkers write) */
	if (len < 4 || hdr[0] != 1 || hdr[3] != 0x3b)
		return 0;
	if ((k = read_enc(p, end, hdr[1], &v)) < 0)
		return 0;
	p += k;
	if ((k = read_enc(p, end, hdr[2], &count)) < 0 || count < 2 || count > (end - p - k) / 8)
		return 0;
	p += k;
	uint64_t biggest = 0;
	for (int pass = 0; pass < 2; pass++) {
		int n = 0;
		int32_t prev, cur;
		memcpy(&prev, p, 4);
		for (int64_t i = 1; i < count; i++) {
			memcpy(&cur, p + 8 * i, 4);
			if (cur <= prev) {      /* not sorted: not a table we know */
				return 0;
			}
			uint64_t size = (uint64_t)((int64_t)cur - prev);
			uint64_t at = hdr_vaddr + (uint64_t)(int64_t)prev;
			if (text_hi && (at < text_lo || at + size > text_hi)) {
				prev = cur;     /* not in .text (e.g. the PLT) */
				continue;
			}
			if (pass == 0 && size > biggest)
				biggest = size;
			if (pass == 1 && size >= EVAL_MIN_BYTES && size * 2 >= biggest && n < max) {
				lo[n] = hdr_vaddr + (uint64_t)(int64_t)prev;
				hi[n] = hdr_vaddr + (uint64_t)(int64_t)cur;
				n++;
			}
			prev = cur;
		}
		if (pass == 1)
			return n;
	}
	return 0;
}

/* Load the big functions of the interpreter's module mod (once per module
 * list). */
static void load_big(hm_native *n, Dwfl_Module *mod)
{
	n->big_mod = mod;
	n->big_gen = n->map_gen;
	n->nbig = 0;
	Dwarf_Addr bias;
	Elf *elf = dwfl_module_getelf(mod, &bias);
	size_t nph, shstrndx;
	if (!elf || elf_getphdrnum(elf, &nph) != 0)
		return;
	/* Functions are looked for in .text only, when sections are known. */
	uint64_t text_lo = 0, text_hi = 0;
	Elf_Scn *scn = NULL;
	if (elf_getshdrstrndx(elf, &shstrndx) == 0)
		while ((scn = elf_nextscn(elf, scn))) {
			GElf_Shdr sh;
			const char *nm;
			if (gelf_getshdr(scn, &sh) && (nm = elf_strptr(elf, shstrndx, sh.sh_name)) &&
			    !strcmp(nm, ".text")) {
				text_lo = sh.sh_addr;
				text_hi = sh.sh_addr + sh.sh_size;
				break;
			}
		}
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_GNU_EH_FRAME)
			continue;
		Elf_Data *d = elf_getdata_rawchunk(elf, (int64_t)ph.p_offset, ph.p_filesz, ELF_T_BYTE);
		if (d && d->d_buf)
			n->nbig = hm_native_big_functions(d->d_buf, d->d_size, ph.p_vaddr, text_lo,
							  text_hi, n->big_lo, n->big_hi, MAX_BIG);
		return;
	}
}

/* Is the unnamed pc in the interpreter (module mod, maps path modname) inside
 * one of its big functions? */
static int in_big_function(hm_native *n, Dwfl_Module *mod, const char *modname, uint64_t pc)
{
	if (!n->interp_path || !modname || strcmp(modname, n->interp_path))
		return 0;
	if (mod != n->big_mod || n->big_gen != n->map_gen)
		load_big(n, mod);
	Dwarf_Addr bias = 0;
	if (!n->nbig || !dwfl_module_getelf(mod, &bias))
		return 0;
	uint64_t a = pc - bias;
	for (int i = 0; i < n->nbig; i++)
		if (a >= n->big_lo[i] && a < n->big_hi[i])
			return 1;
	return 0;
}

static const hm_natsym *resolve(hm_native *n, uint64_t pc)
{
	size_t b = hash_pc(n, pc);
	for (struct symentry *e = n->buckets[b]; e; e = e->hnext) {
		if (e->pub.pc == pc && e->map_gen == n->map_gen) {
			lru_unlink(e);
			lru_push_front(n, e);
			n->st.sym_hits++;
			return &e->pub;
		}
	}
	n->st.sym_misses++;
	Dwfl_Module *mod = dwfl_addrmodule(n->dwfl, pc);
	if (!mod && hm_mono_ns() - n->reloaded_ns > RELOAD_MIN_NS && check_maps(n)) {
		mod = dwfl_addrmodule(n->dwfl, pc);
		b = hash_pc(n, pc);
	}
	const char *modname = NULL, *sym = NULL, *file = NULL;
	int line = 0, unnamed_eval = 0;
	if (mod) {
		modname = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
		GElf_Off off;
		GElf_Sym es;
		sym = dwfl_module_addrinfo(mod, pc, &off, &es, NULL, NULL, NULL);
		/* No symbol, or only a sizeless one somewhere below. */
		if ((!sym || !es.st_size) && in_big_function(n, mod, modname, pc)) {
			sym = NULL;
			unnamed_eval = 1;
		}
		Dwfl_Line *ln = dwfl_module_getsrc(mod, pc);
		if (ln)
			file = dwfl_lineinfo(ln, NULL, &line, NULL, NULL, NULL);
	}
	const char *mbase = base_name(modname);
	char *dem = sym ? demangle(sym) : NULL;
	char unknown[300];
	const char *name;
	size_t name_len;
	if (dem) {
		name = dem;
		name_len = strlen(dem);
	} else if (sym) {
		name = sym;
		name_len = display_len(sym);
	} else if (unnamed_eval) {
		snprintf(unknown, sizeof unknown, "[%s: evaluation loop]", mbase);
		name = unknown;
		name_len = strlen(unknown);
	} else {
		snprintf(unknown, sizeof unknown, "[%s]", *mbase ? mbase : "unknown");
		name = unknown;
		name_len = strlen(unknown);
	}
	if (!file || !*file) {
		file = *mbase ? mbase : NULL;
		line = 0;
	}
	size_t flen = file ? strlen(file) + 1 : 0, mlen = strlen(mbase) + 1;
	struct symentry *e = malloc(sizeof *e + name_len + 1 + flen + mlen);
	if (!e) {
		free(dem);
		return NULL;
	}
	char *s = (char *)(e + 1);
	memcpy(s, name, name_len);
	s[name_len] = 0;
	e->pub.name = s;
	s += name_len + 1;
	e->pub.file = NULL;
	if (file) {
		memcpy(s, file, flen);
		e->pub.file = s;
		s += flen;
	}
	memcpy(s, mbase, mlen);
	e->pub.module = s;
	e->pub.pc = pc;
	e->pub.line = line > 0 ? line : 0;
	e->pub.role = unnamed_eval ? HM_NAT_EVAL : hm_native_role(sym, n->py_major);
	e->pub.user = e->pub.user2 = e->pub.user_gen = 0;
	free(dem);
	e->map_gen = n->map_gen;
	e->hnext = n->buckets[b];
	n->buckets[b] = e;
	lru_push_front(n, e);
	n->nsyms++;
	return &e->pub;
}

/* ---- open / close ---------------------------------------------------------- */

int hm_native_open(hm_target *t, hm_native **out)
{
	*out = NULL;
#if !defined(__x86_64__) && !defined(__aarch64__)
	return hm_error(HM_EINVAL, "--native is not supported on this architecture");
#endif
	hm_native *n = calloc(1, sizeof *n);
	if (!n)
		return hm_error(HM_ENOMEM, "out of memory");
	n->t = t;
	n->pt.timeout_ns = STOP_TIMEOUT_NS;
	n->pid = hm_target_pid(t);
	n->cap = DEFAULT_CACHE;
	n->nbuckets = 8192;
	n->buckets = calloc(n->nbuckets, sizeof *n->buckets);
	n->pages = malloc(CACHE_PAGES * sizeof *n->pages);
	n->lru.next = n->lru.prev = &n->lru;
	n->py_major = 3;
	n->cb.find_elf = find_elf;
	n->cb.find_debuginfo = dwfl_standard_find_debuginfo;
	n->cb.debuginfo_path = &n->debuginfo_path;
	if (!n->buckets || !n->pages) {
		hm_native_close(n);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	n->dwfl = dwfl_begin(&n->cb);
	if (!n->dwfl) {
		hm_native_close(n);
		return hm_error(HM_ESYS, "libdwfl: %s", dwfl_errmsg(-1));
	}
	elf_ctx = n;
	n->maps_hash = maps_hash(n->pid);
	n->maps_checked_ns = hm_mono_ns();
	int r = report_modules(n);
	if (r == HM_OK && !dwfl_attach_state(n->dwfl, NULL, n->pid, &thread_callbacks, n))
		r = hm_error(HM_ESYS, "libdwfl cannot unwind process %d: %s", (int)n->pid,
			     dwfl_errmsg(-1));
	if (r != HM_OK) {
		hm_native_close(n);
		return r;
	}
	*out = n;
	return HM_OK;
}

void hm_native_close(hm_native *n)
{
	if (!n)
		return;
	resume_all(n);
	hm_ptrace_release(&n->pt);
	if (n->dwfl) {
		elf_ctx = n;
		dwfl_end(n->dwfl);
	}
	if (elf_ctx == n)
		elf_ctx = NULL;
	if (n->buckets)
		cache_clear(n);
	free(n->buckets);
	free(n->pages);
	free(n->stop);
	free(n->debuginfo_path);
	hm_pysample_free(&n->pre);
	free(n->interp_path);
	free(n);
}

const hm_native_stats *hm_native_stats_get(const hm_native *n)
{
	return &n->st;
}

void hm_natstack_free(hm_natstack *st)
{
	free(st->frames);
	free(st->pcs);
	memset(st, 0, sizeof *st);
}

void hm_natsample_free(hm_natsample *ns)
{
	for (int i = 0; i < ns->cap; i++)
		hm_natstack_free(&ns->stacks[i]);
	free(ns->stacks);
	memset(ns, 0, sizeof *ns);
}

/* ---- unwinding -------------------------------------------------------------- */

static int frame_cb(Dwfl_Frame *state, void *arg)
{
	hm_native *n = arg;
	hm_natstack *st = n->cur;
	Dwarf_Addr pc;
	bool activation;
	if (!dwfl_frame_pc(state, &pc, &activation))
		return DWARF_CB_ABORT;
	if (!pc) {
		n->ended = 1;   /* a zero return address ends the chain */
		return DWARF_CB_ABORT;
	}
	if (!activation)
		pc--;   /* the call, not the instruction after it */
	if (st->nframes >= MAX_NATIVE_FRAMES)
		return DWARF_CB_ABORT;
	if (st->nframes == st->pcs_cap) {
		int nc = st->pcs_cap ? st->pcs_cap * 2 : 64;
		uint64_t *p = realloc(st->pcs, (size_t)nc * sizeof *p);
		if (!p)
			return DWARF_CB_ABORT;
		st->pcs = p;
		st->pcs_cap = nc;
	}
	st->pcs[st->nframes++] = pc;
	return DWARF_CB_OK;
}

/* Unwind a thread that is stopped (pcs only). */
static int unwind_stopped(hm_native *n, pid_t tid, hm_natstack *st)
{
	st->tid = tid;
	st->nframes = 0;
	st->complete = 0;
	int r = read_registers(n, tid);
	if (r != HM_OK)
		return r;
	n->pages_used = 0;
	n->page_victim = 0;
	n->cur_tid = tid;
	n->cur = st;
	elf_ctx = n;
	n->ended = 0;
	int rc = dwfl_getthread_frames(n->dwfl, tid, frame_cb, n);
	n->cur = NULL;
	/* 0: libdw found the outermost frame (its CFI ends the chain). */
	st->complete = (rc == 0 || n->ended) && st->nframes > 0;
	n->st.unwinds++;
	/* Some frames is success: libdw reports the end of a stack as an
	 * error on some systems, and a partial stack still merges. */
	if (!st->nframes)
		return hm_error(HM_EIO, "cannot unwind thread %d: %s", (int)tid, dwfl_errmsg(-1));
	return HM_OK;
}

static int resolve_stack(hm_native *n, hm_natstack *st)
{
	if (st->cap < st->nframes) {
		const hm_natsym **f = realloc(st->frames, (size_t)st->nframes * sizeof *f);
		if (!f)
			return hm_error(HM_ENOMEM, "out of memory");
		st->frames = f;
		st->cap = st->nframes;
	}
	int k = 0;
	for (int i = 0; i < st->nframes; i++) {
		const hm_natsym *s = resolve(n, st->pcs[i]);
		if (s)
			st->frames[k++] = s;
	}
	st->nframes = k;
	return HM_OK;
}

/* Start of a sample: bound the cache, detach stragglers, notice dlopen. */
static void sample_begin(hm_native *n, int major)
{
	elf_ctx = n;
	if (major != n->py_major) {
		cache_clear(n);
		n->py_major = major;
	}
	if (n->stale)
		cache_drop_stale(n);
	cache_trim(n);
	if (n->pt.nlate)
		hm_ptrace_reap(&n->pt, 0);
	if (hm_mono_ns() - n->maps_checked_ns > MAPS_CHECK_NS)
		check_maps(n);
}

/* A new interpreter (exec): symbols resolved before may have missed its
 * evaluation loop. */
static void note_interpreter(hm_native *n, const hm_python *py)
{
	if (py->mod_path && (!n->interp_path || strcmp(n->interp_path, py->mod_path))) {
		free(n->interp_path);
		n->interp_path = strdup(py->mod_path);
		cache_clear(n);
	}
}

int hm_native_unwind_copy(hm_native *n, hm_python *py, pid_t tid, const uint64_t *regs, int nregs,
			  const uint8_t *stack, size_t stack_len, hm_natstack *out)
{
	out->tid = tid;
	out->state = HM_NATSTACK_FAILED;
	out->nframes = 0;
	out->complete = 0;
#if defined(__x86_64__)
	if (nregs != 17) {
		n->st.failed++;
		return hm_error(HM_EINVAL, "unwinding from a copy needs the 17 x86-64 registers");
	}
	sample_begin(n, hm_python_layout(py)->major);
	note_interpreter(n, py);
	memcpy(n->regs, regs, 17 * sizeof *regs);
	n->nregs = 17;
	n->pc0 = regs[16];
	n->copy = stack;
	n->copy_lo = regs[7];    /* rsp: where the copy starts */
	n->copy_len = stack ? stack_len : 0;
	n->pages_used = 0;
	n->page_victim = 0;
	n->cur_tid = tid;
	n->cur = out;
	n->ended = 0;
	elf_ctx = n;
	int rc = dwfl_getthread_frames(n->dwfl, tid, frame_cb, n);
	n->cur = NULL;
	n->copy = NULL;
	out->complete = (rc == 0 || n->ended) && out->nframes > 0;
	n->st.unwinds++;
	if (!out->nframes) {
		n->st.failed++;
		return hm_error(HM_EIO, "cannot unwind thread %d: %s", (int)tid, dwfl_errmsg(-1));
	}
	int r = resolve_stack(n, out);
	if (r != HM_OK) {
		n->st.failed++;
		return r;
	}
	out->state = HM_NATSTACK_OK;
	return HM_OK;
#else
	(void)py; (void)regs; (void)nregs; (void)stack; (void)stack_len;
	n->st.failed++;
	return hm_error(HM_EINVAL, "native frames from a stack copy are only supported on x86-64");
#endif
}

int hm_native_unwind(hm_native *n, pid_t tid, hm_natstack *out)
{
	sample_begin(n, n->py_major);
	out->state = HM_NATSTACK_FAILED;
	out->nframes = 0;
	if (n->nstop == n->stopcap) {
		struct stopped *p = realloc(n->stop, (size_t)(n->stopcap + 8) * sizeof *p);
		if (!p)
			return hm_error(HM_ENOMEM, "out of memory");
		n->stop = p;
		n->stopcap += 8;
	}
	struct stopped *s = &n->stop[n->nstop];
	int r = stop_thread(n, tid, s);
	if (r == HM_ENOPROC)
		return hm_error(HM_ENOPROC, "thread %d is gone", (int)tid);
	if (r != HM_OK)
		return r;
	n->nstop++;
	r = unwind_stopped(n, tid, out);
	resume_all(n);
	if (r == HM_OK)
		r = resolve_stack(n, out);
	if (r == HM_OK)
		out->state = HM_NATSTACK_OK;
	else
		n->st.failed++;
	return r;
}

static struct stopped *find_stopped(hm_native *n, pid_t tid)
{
	for (int i = 0; i < n->nstop; i++)
		if (n->stop[i].tid == tid)
			return &n->stop[i];
	return NULL;
}

int hm_native_sample(hm_native *n, hm_python *py, hm_pysample *s, hm_natsample *ns,
		     unsigned flags)
{
	sample_begin(n, hm_python_layout(py)->major);
	note_interpreter(n, py);
	int r = hm_python_sample(py, &n->pre, flags);
	if (r != HM_OK)
		return r;

	/* Stop the threads that will be recorded: those with Python frames. */
	n->nstop = 0;
	pid_t *cand = NULL;
	int ncand = 0;
	if (n->pre.nthreads) {
		cand = malloc((size_t)n->pre.nthreads * sizeof *cand);
		if (!cand)
			return hm_error(HM_ENOMEM, "out of memory");
	}
	if (n->stopcap < n->pre.nthreads) {
		struct stopped *p = realloc(n->stop, (size_t)n->pre.nthreads * sizeof *p);
		if (!p) {
			free(cand);
			return hm_error(HM_ENOMEM, "out of memory");
		}
		n->stop = p;
		n->stopcap = n->pre.nthreads;
	}
	for (int i = 0; i < n->pre.nthreads; i++) {
		const hm_pythread *th = &n->pre.threads[i];
		if (!th->valid || !th->nframes || th->tid <= 0 || th->tid == getpid())
			continue;
		cand[ncand++] = th->tid;
		if (stop_thread(n, th->tid, &n->stop[n->nstop]) == HM_OK)
			n->nstop++;
	}

	/* Re-read the Python stacks while they stand still. */
	r = hm_python_sample(py, s, flags & ~(unsigned)HM_SAMPLE_ONCPU);
	if (r != HM_OK) {
		resume_all(n);
		free(cand);
		return r;
	}
	if (ns->cap < s->nthreads) {
		hm_natstack *p = realloc(ns->stacks, (size_t)s->nthreads * sizeof *p);
		if (!p) {
			resume_all(n);
			free(cand);
			return hm_error(HM_ENOMEM, "out of memory");
		}
		memset(p + ns->cap, 0, (size_t)(s->nthreads - ns->cap) * sizeof *p);
		ns->stacks = p;
		ns->cap = s->nthreads;
	}
	ns->nstacks = s->nthreads;
	for (int i = 0; i < s->nthreads; i++) {
		hm_pythread *th = &s->threads[i];
		hm_natstack *st = &ns->stacks[i];
		st->tid = th->tid;
		st->nframes = 0;
		st->state = HM_NATSTACK_SKIP;
		int wanted = 0;
		for (int c = 0; c < ncand && !wanted; c++)
			wanted = cand[c] == th->tid;
		if (!wanted)
			continue;
		st->state = HM_NATSTACK_FAILED;
		struct stopped *sp = find_stopped(n, th->tid);
		if (!sp) {
			n->st.failed++;
			continue;
		}
		int ur = unwind_stopped(n, th->tid, st);
		resume_thread(n, sp);
		if (ur == HM_OK)
			st->state = HM_NATSTACK_OK;
		else
			n->st.failed++;
	}
	resume_all(n);
	free(cand);

	/* Symbols: the threads run again meanwhile. */
	for (int i = 0; i < ns->nstacks; i++)
		if (ns->stacks[i].state == HM_NATSTACK_OK &&
		    resolve_stack(n, &ns->stacks[i]) != HM_OK)
			ns->stacks[i].state = HM_NATSTACK_FAILED;
	return HM_OK;
}

/* ---- merging ------------------------------------------------------------------ */

int hm_native_merge(const hm_natstack *ns, const hm_pythread *th, const hm_pylayout *L,
		    hm_mframe *out, int cap)
{
	int one_per_call = L->frame_model != HM_FRAMES_INTERP;
	int pi = 0, k = 0, last_py = -1;
	for (int j = 0; j < ns->nframes; j++) {
		const hm_natsym *s = ns->frames[j];
		if (s->role == HM_NAT_PLUMBING)
			continue;
		if (s->role == HM_NAT_EVAL) {
			if (pi >= th->nframes)
				return -1;   /* more eval calls than Python frames: torn */
			for (;;) {
				if (k >= cap)
					return -1;
				const hm_pyframe *f = &th->frames[pi++];
				out[k++] = (hm_mframe){f, NULL};
				if (one_per_call || f->entry || pi >= th->nframes)
					break;
			}
			last_py = k - 1;
			continue;
		}
		/* Runs of unnamed code in one module read as one frame. */
		if (k > 0 && out[k - 1].nat && s->name[0] == '[' && !strcmp(out[k - 1].nat->name, s->name))
			continue;
		if (k >= cap)
			return -1;
		out[k++] = (hm_mframe){NULL, s};
	}
	if (pi < th->nframes) {
		/* Python frames left: if the unwind reached the thread's first
		 * frame, the stacks disagree (e.g. a frame pushed before its
		 * eval call began); else the native unwind stopped early (no
		 * CFI somewhere) and the remaining Python frames are the
		 * callers. */
		if (ns->complete)
			return -1;
		for (; pi < th->nframes; pi++) {
			if (k >= cap)
				return -1;
			out[k++] = (hm_mframe){&th->frames[pi], NULL};
		}
		return k;
	}
	/* Drop interpreter start-up / thread bootstrap below the outermost
	 * Python frame. */
	if (last_py >= 0)
		k = last_py + 1;
	return k;
}
