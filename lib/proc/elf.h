/* elf.h - symbol and section lookup in ELF files (libelf).
 *
 * Looks in .symtab first and falls back to .dynsym, so stripped executables
 * (Debian's static python3.11) still resolve exported symbols. */
#ifndef HOMURA_ELF_H
#define HOMURA_ELF_H

#include <stddef.h>
#include <stdint.h>

typedef struct hm_elf hm_elf;

hm_elf *hm_elf_open(const char *path);             /* NULL + hm_error on failure */
/* Closes e; the parsed file stays cached for the next hm_elf_open() of the
 * same file (device, inode, size, mtime; a few files at most, for a minute
 * at most). */
void hm_elf_close(hm_elf *e);
/* How many files hm_elf_open has read and parsed so far (the cache's
 * misses), for tests and benchmarks. */
unsigned long hm_elf_parses(void);
/* Free the cached files unused for a minute (also done at every open and
 * close); how many files are cached; the age limit, set to ns unless 0
 * (tests), the previous one returned. */
void hm_elf_cache_trim(void);
int hm_elf_cached(void);
uint64_t hm_elf_cache_max_age(uint64_t ns);
/* Symbol address (st_value) and size; HM_OK or HM_EINVAL if absent. */
int hm_elf_symbol(hm_elf *e, const char *name, uint64_t *addr, uint64_t *size);
/* Section address (sh_addr) and size by name. */
int hm_elf_section(hm_elf *e, const char *name, uint64_t *addr, uint64_t *size);
/* Page-aligned p_vaddr and p_offset of the first PT_LOAD segment. */
int hm_elf_first_load(hm_elf *e, uint64_t *vaddr, uint64_t *offset);
/* Read bytes at a vaddr from the file image (e.g. a string in .rodata). */
int hm_elf_read_vaddr(hm_elf *e, uint64_t vaddr, void *buf, size_t len);
/* Nearest function symbol at or below addr (for native frames); name points
 * into e's storage. Returns HM_OK or HM_EINVAL. */
int hm_elf_addr2sym(hm_elf *e, uint64_t addr, const char **name, uint64_t *sym_start);

#endif
