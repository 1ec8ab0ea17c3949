/* elf.c - symbols, sections and file bytes of an ELF image (libelf/gelf).
 *
 * hm_elf_open() maps the file read-only and builds two sorted arrays once:
 *  - every defined, named symbol of .symtab and then .dynsym, sorted by name
 *    (ties keep .symtab first), so hm_elf_symbol() is a binary search even
 *    for a libpython with tens of thousands of symbols;
 *  - the function symbols sorted by address for hm_elf_addr2sym().
 * Names point into the mapped string tables; nothing is copied. Reads at a
 * vaddr go through the PT_LOAD segment (or allocated section, for files
 * without program headers) that contains it; bytes that exist only in
 * memory (.bss, the tail of a segment past p_filesz) are an error.
 *
 * Closed handles are kept (a few, ELF_CACHE of them, least recently closed
 * dropped first, and none unused for a minute) and handed again to the next hm_elf_open() of the same
 * file: same device, inode, size and modification time, whatever the path
 * (/proc/PID/root/..., map_files). Attaching to a child process of the same
 * interpreter then costs a stat() instead of re-reading and re-sorting a
 * libpython's tens of thousands of symbols (8 ms each time for pyenv's
 * 3.12). A file modified less than two seconds ago is never kept: the
 * kernel's coarse timestamps could not tell a rewrite of the same size
 * within the same tick from the file kept. A handle has one user at a time
 * (the cache holds only closed ones), so nothing else changes for callers. */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "proc/elf.h"

struct elf_sym {
	const char *name;
	uint64_t value, size;
	uint32_t order;         /* preference: global before local, then
				 * .symtab before .dynsym, then file order */
};

struct hm_elf {
	int fd;
	Elf *elf;
	char *path;
	const char *image;      /* raw file bytes (mapped by libelf) */
	size_t image_size;
	struct elf_sym *syms;   /* sorted by name */
	size_t nsyms;
	struct elf_sym *funcs;  /* function symbols, sorted by address */
	size_t nfuncs;
	int keep;               /* may go to the cache on close */
	dev_t dev;              /* the file's identity, for the cache */
	ino_t ino;
	off_t size;
	struct timespec mtime;
	uint64_t closed_ns;     /* when it went to the cache (CLOCK_MONOTONIC) */
};

#define ELF_CACHE 8
/* A handle unused this long leaves the cache (checked at every open and
 * close, and by hm_elf_cache_trim): a long-running agent that attached to
 * an interpreter once keeps neither its parsed symbols nor its mapping (a
 * deleted file's disk space, after an upgrade) for ever. */
#define ELF_CACHE_AGE_NS 60000000000ull

static uint64_t max_age_ns = ELF_CACHE_AGE_NS;

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static hm_elf *cache[ELF_CACHE];   /* closed handles, oldest first */
static int ncache;
static unsigned long nparses;

unsigned long hm_elf_parses(void)
{
	pthread_mutex_lock(&cache_mu);
	unsigned long n = nparses;
	pthread_mutex_unlock(&cache_mu);
	return n;
}

static void elf_free(hm_elf *e);

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Take the entries older than max_age_ns out of the cache (caller holds
 * cache_mu); they are put in out (ELF_CACHE long) to be freed unlocked. */
static int cache_expire(uint64_t now, hm_elf **out)
{
	int n = 0, k = 0;
	for (int i = 0; i < ncache; i++) {
		if (now - cache[i]->closed_ns >= max_age_ns)
			out[n++] = cache[i];
		else
			cache[k++] = cache[i];
	}
	ncache = k;
	return n;
}

static void free_all(hm_elf **v, int n)
{
	for (int i = 0; i < n; i++)
		elf_free(v[i]);
}

void hm_elf_cache_trim(void)
{
	hm_elf *old[ELF_CACHE];
	pthread_mutex_lock(&cache_mu);
	int n = cache_expire(mono_ns(), old);
	pthread_mutex_unlock(&cache_mu);
	free_all(old, n);
}

int hm_elf_cached(void)
{
	pthread_mutex_lock(&cache_mu);
	int n = ncache;
	pthread_mutex_unlock(&cache_mu);
	return n;
}

uint64_t hm_elf_cache_max_age(uint64_t ns)
{
	pthread_mutex_lock(&cache_mu);
	uint64_t old = max_age_ns;
	if (ns)
		max_age_ns = ns;
	pthread_mutex_unlock(&cache_mu);
	return old;
}

/* Whether a file with this status may be cached: a regular file last
 * modified at least two seconds ago (and not in the future). */
static int cacheable(const struct stat *st)
{
	struct timespec now;

	if (!S_ISREG(st->st_mode) || clock_gettime(CLOCK_REALTIME, &now) != 0)
		return 0;
	return st->st_mtim.tv_sec + 2 <= now.tv_sec;
}

static int same_file(const hm_elf *e, const struct stat *st)
{
	return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
	       e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* A cached handle of the file at path, taken out of the cache; NULL if none. */
static hm_elf *cache_take(const char *path)
{
	struct stat st;
	hm_elf *e = NULL;
	char *p;
	int i;

	hm_elf *old[ELF_CACHE];
	int nold;

	if (stat(path, &st) != 0 || !cacheable(&st)) {
		hm_elf_cache_trim();
		return NULL;
	}
	pthread_mutex_lock(&cache_mu);
	nold = cache_expire(mono_ns(), old);
	for (i = ncache - 1; i >= 0; i--) {
		if (same_file(cache[i], &st)) {
			e = cache[i];
			memmove(cache + i, cache + i + 1, (size_t)(ncache - i - 1) * sizeof(*cache));
			ncache--;
			break;
		}
	}
	pthread_mutex_unlock(&cache_mu);
	free_all(old, nold);
	if (e && (p = strdup(path))) {      /* its messages name the path asked for */
		free(e->path);
		e->path = p;
	}
	return e;
}

static uint64_t page_size(void)
{
	long ps = sysconf(_SC_PAGESIZE);

	return ps > 0 ? (uint64_t)ps : 4096;
}

static int cmp_name(const void *a, const void *b)
{
	const struct elf_sym *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int cmp_addr(const void *a, const void *b)
{
	const struct elf_sym *x = a, *y = b;

	if (x->value != y->value)
		return x->value < y->value ? -1 : 1;
	/* Prefer the sized symbol, then the first one found. */
	if ((x->size == 0) != (y->size == 0))
		return x->size == 0 ? 1 : -1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Append the defined symbols of one symbol table section. */
static int collect_symbols(hm_elf *e, Elf_Scn *scn, const GElf_Shdr *sh,
			   size_t *cap_syms, size_t *cap_funcs)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	size_t count, i;

	if (!data || sh->sh_entsize == 0)
		return HM_OK;
	count = sh->sh_size / sh->sh_entsize;
	for (i = 1; i < count; i++) {
		GElf_Sym sym;
		const char *name;
		int type;

		if (!gelf_getsym(data, (int)i, &sym))
			break;
		if (sym.st_shndx == SHN_UNDEF || sym.st_name == 0)
			continue;
		type = GELF_ST_TYPE(sym.st_info);
		if (type == STT_SECTION || type == STT_FILE)
			continue;
		name = elf_strptr(e->elf, sh->sh_link, sym.st_name);
		if (!name || !name[0])
			continue;
		if (e->nsyms == *cap_syms) {
			size_t nc = *cap_syms ? *cap_syms * 2 : 1024;
			struct elf_sym *p = realloc(e->syms, nc * sizeof(*p));

			if (!p)
				return hm_error(HM_ENOMEM, "out of memory reading symbols of %s", e->path);
			e->syms = p;
			*cap_syms = nc;
		}
		e->syms[e->nsyms] = (struct elf_sym){
			name, sym.st_value, sym.st_size,
			(GELF_ST_BIND(sym.st_info) == STB_LOCAL ? 0x80000000u : 0) |
				(uint32_t)(e->nsyms & 0x7fffffff) };
		e->nsyms++;
		if ((type == STT_FUNC || type == STT_GNU_IFUNC) && sym.st_value) {
			if (e->nfuncs == *cap_funcs) {
				size_t nc = *cap_funcs ? *cap_funcs * 2 : 1024;
				struct elf_sym *p = realloc(e->funcs, nc * sizeof(*p));

				if (!p)
					return hm_error(HM_ENOMEM, "out of memory reading symbols of %s",
							e->path);
				e->funcs = p;
				*cap_funcs = nc;
			}
			e->funcs[e->nfuncs] = e->syms[e->nsyms - 1];
			e->nfuncs++;
		}
	}
	return HM_OK;
}

static int load_symbols(hm_elf *e)
{
	static const Elf64_Word kinds[] = { SHT_SYMTAB, SHT_DYNSYM };
	size_t cap_syms = 0, cap_funcs = 0, k, i, w;

	for (k = 0; k < 2; k++) {
		Elf_Scn *scn = NULL;

		while ((scn = elf_nextscn(e->elf, scn))) {
			GElf_Shdr sh;

			if (!gelf_getshdr(scn, &sh) || sh.sh_type != kinds[k])
				continue;
			if (collect_symbols(e, scn, &sh, &cap_syms, &cap_funcs) < 0)
				return HM_ENOMEM;
		}
	}
	if (e->nsyms)
		qsort(e->syms, e->nsyms, sizeof(*e->syms), cmp_name);
	if (e->nfuncs) {
		qsort(e->funcs, e->nfuncs, sizeof(*e->funcs), cmp_addr);
		/* One entry per address (the same function is usually in both
		 * tables); cmp_addr put the preferred one first. */
		for (i = 1, w = 1; i < e->nfuncs; i++)
			if (e->funcs[i].value != e->funcs[w - 1].value)
				e->funcs[w++] = e->funcs[i];
		e->nfuncs = w;
	}
	return HM_OK;
}

hm_elf *hm_elf_open(const char *path)
{
	hm_elf *e;

	if (!path) {
		hm_error(HM_EINVAL, "no ELF path given");
		return NULL;
	}
	if ((e = cache_take(path)))
		return e;
	if (elf_version(EV_CURRENT) == EV_NONE) {
		hm_error(HM_ESYS, "libelf initialisation failed: %s", elf_errmsg(-1));
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e || !(e->path = strdup(path))) {
		free(e);
		hm_error(HM_ENOMEM, "out of memory opening %s", path);
		return NULL;
	}
	e->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (e->fd < 0) {
		hm_error(errno == ENOENT ? HM_EINVAL : HM_ESYS, "cannot open %s: %s", path,
			 strerror(errno));
		goto fail;
	}
	e->elf = elf_begin(e->fd, ELF_C_READ_MMAP, NULL);
	if (!e->elf || elf_kind(e->elf) != ELF_K_ELF) {
		hm_error(HM_EINVAL, "%s is not an ELF file", path);
		goto fail;
	}
	e->image = elf_rawfile(e->elf, &e->image_size);
	if (!e->image) {
		hm_error(HM_EINVAL, "cannot read ELF image of %s: %s", path, elf_errmsg(-1));
		goto fail;
	}
	if (load_symbols(e) < 0)
		goto fail;
	pthread_mutex_lock(&cache_mu);
	nparses++;
	pthread_mutex_unlock(&cache_mu);
	struct stat st;
	if (fstat(e->fd, &st) == 0 && cacheable(&st)) {
		e->keep = 1;
		e->dev = st.st_dev;
		e->ino = st.st_ino;
		e->size = st.st_size;
		e->mtime = st.st_mtim;
	}
	return e;
fail:
	elf_free(e);
	return NULL;
}

void hm_elf_close(hm_elf *e)
{
	hm_elf *old = NULL;

	if (!e)
		return;
	if (!e->keep) {
		elf_free(e);
		return;
	}
	hm_elf *expired[ELF_CACHE];
	uint64_t now = mono_ns();
	pthread_mutex_lock(&cache_mu);
	int nexp = cache_expire(now, expired);
	if (ncache == ELF_CACHE) {
		old = cache[0];
		memmove(cache, cache + 1, (ELF_CACHE - 1) * sizeof(*cache));
		ncache--;
	}
	e->closed_ns = now;
	cache[ncache++] = e;
	pthread_mutex_unlock(&cache_mu);
	elf_free(old);
	free_all(expired, nexp);
}

static void elf_free(hm_elf *e)
{
	if (!e)
		return;
	if (e->elf)
		elf_end(e->elf);
	if (e->fd >= 0)
		close(e->fd);
	free(e->syms);
	free(e->funcs);
	free(e->path);
	free(e);
}

int hm_elf_symbol(hm_elf *e, const char *name, uint64_t *addr, uint64_t *size)
{
	size_t lo = 0, hi;

	if (!e || !name)
		return hm_error(HM_EINVAL, "bad argument to hm_elf_symbol");
	/* Lower bound: the first entry with this name is the preferred one. */
	hi = e->nsyms;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(e->syms[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == e->nsyms || strcmp(e->syms[lo].name, name) != 0)
		return hm_error(HM_EINVAL, "symbol %s not found in %s", name, e->path);
	if (addr)
		*addr = e->syms[lo].value;
	if (size)
		*size = e->syms[lo].size;
	return HM_OK;
}

int hm_elf_section(hm_elf *e, const char *name, uint64_t *addr, uint64_t *size)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	if (!e || !name)
		return hm_error(HM_EINVAL, "bad argument to hm_elf_section");
	if (elf_getshdrstrndx(e->elf, &shstrndx) != 0)
		return hm_error(HM_EINVAL, "%s has no section name table", e->path);
	while ((scn = elf_nextscn(e->elf, scn))) {
		GElf_Shdr sh;
		const char *sname;

		if (!gelf_getshdr(scn, &sh))
			continue;
		sname = elf_strptr(e->elf, shstrndx, sh.sh_name);
		if (sname && strcmp(sname, name) == 0) {
			if (addr)
				*addr = sh.sh_addr;
			if (size)
				*size = sh.sh_size;
			return HM_OK;
		}
	}
	return hm_error(HM_EINVAL, "section %s not found in %s", name, e->path);
}

int hm_elf_first_load(hm_elf *e, uint64_t *vaddr, uint64_t *offset)
{
	size_t n, i;
	uint64_t mask = ~(page_size() - 1);

	if (!e)
		return hm_error(HM_EINVAL, "bad argument to hm_elf_first_load");
	if (elf_getphdrnum(e->elf, &n) != 0)
		return hm_error(HM_EINVAL, "%s has no program headers", e->path);
	for (i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(e->elf, (int)i, &ph) && ph.p_type == PT_LOAD) {
			if (vaddr)
				*vaddr = ph.p_vaddr & mask;
			if (offset)
				*offset = ph.p_offset & mask;
			return HM_OK;
		}
	}
	return hm_error(HM_EINVAL, "%s has no PT_LOAD segment", e->path);
}

/* Copy [vaddr, vaddr+len) from file bytes [off, off+filesz) mapped at base. */
static int copy_from(hm_elf *e, uint64_t base, uint64_t off, uint64_t filesz,
		     uint64_t memsz, uint64_t vaddr, void *buf, size_t len)
{
	uint64_t rel = vaddr - base;

	if (rel > memsz || len > memsz - rel)
		return hm_error(HM_EINVAL, "0x%lx+%zu crosses the end of its segment in %s",
				(unsigned long)vaddr, len, e->path);
	if (rel > filesz || len > filesz - rel)
		return hm_error(HM_EINVAL, "0x%lx is in .bss of %s (not stored in the file)",
				(unsigned long)vaddr, e->path);
	if (off > e->image_size || rel + len > e->image_size - off)
		return hm_error(HM_EINVAL, "0x%lx lies past the end of %s (truncated file?)",
				(unsigned long)vaddr, e->path);
	memcpy(buf, e->image + off + rel, len);
	return HM_OK;
}

int hm_elf_read_vaddr(hm_elf *e, uint64_t vaddr, void *buf, size_t len)
{
	Elf_Scn *scn = NULL;
	size_t n = 0, i;

	if (!e || (!buf && len))
		return hm_error(HM_EINVAL, "bad argument to hm_elf_read_vaddr");
	if (elf_getphdrnum(e->elf, &n) == 0 && n > 0) {
		for (i = 0; i < n; i++) {
			GElf_Phdr ph;

			if (!gelf_getphdr(e->elf, (int)i, &ph) || ph.p_type != PT_LOAD)
				continue;
			if (vaddr >= ph.p_vaddr && vaddr - ph.p_vaddr < ph.p_memsz)
				return copy_from(e, ph.p_vaddr, ph.p_offset, ph.p_filesz,
						 ph.p_memsz, vaddr, buf, len);
		}
		return hm_error(HM_EINVAL, "0x%lx is not inside any segment of %s",
				(unsigned long)vaddr, e->path);
	}
	/* No program headers (relocatable object): use allocated sections. */
	while ((scn = elf_nextscn(e->elf, scn))) {
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh) || !(sh.sh_flags & SHF_ALLOC))
			continue;
		if (vaddr >= sh.sh_addr && vaddr - sh.sh_addr < sh.sh_size)
			return copy_from(e, sh.sh_addr, sh.sh_offset,
					 sh.sh_type == SHT_NOBITS ? 0 : sh.sh_size, sh.sh_size,
					 vaddr, buf, len);
	}
	return hm_error(HM_EINVAL, "0x%lx is not inside any section of %s",
			(unsigned long)vaddr, e->path);
}

int hm_elf_addr2sym(hm_elf *e, uint64_t addr, const char **name, uint64_t *sym_start)
{
	size_t lo = 0, hi;
	const struct elf_sym *s;

	if (!e)
		return hm_error(HM_EINVAL, "bad argument to hm_elf_addr2sym");
	/* Find the last function starting at or below addr. */
	hi = e->nfuncs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (e->funcs[mid].value <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return hm_error(HM_EINVAL, "no function at 0x%lx in %s", (unsigned long)addr,
				e->path);
	s = &e->funcs[lo - 1];
	/* A sized symbol that ends below addr means addr is in code we have no
	 * symbol for (a static function of a stripped file): say so rather
	 * than blame its neighbour. */
	if (s->size && addr - s->value >= s->size)
		return hm_error(HM_EINVAL, "no function at 0x%lx in %s (after %s)",
				(unsigned long)addr, e->path, s->name);
	if (name)
		*name = s->name;
	if (sym_start)
		*sym_start = s->value;
	return HM_OK;
}
