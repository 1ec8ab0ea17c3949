/* intern.h - a byte-string interner: maps byte blobs to dense ids 0..n-1.
 *
 * Used for strings, frames, stacks and sample keys in the profile model and by
 * caches elsewhere. Blobs are copied into chunked storage, so pointers
 * returned by hm_intern_get stay valid until hm_intern_free. */
#ifndef HOMURA_INTERN_H
#define HOMURA_INTERN_H

#include <stddef.h>
#include <stdint.h>

typedef struct hm_intern_chunk hm_intern_chunk;

typedef struct hm_intern {
	uint32_t *slots;         /* open addressing: id + 1, 0 = empty */
	uint32_t cap;            /* power of two */
	uint32_t n;              /* number of ids */
	uint32_t ids_cap;
	const uint8_t **ptrs;    /* id -> blob */
	uint32_t *lens;          /* id -> length */
	uint64_t *hashes;        /* id -> hash */
	hm_intern_chunk *chunk;  /* newest storage chunk */
	size_t bytes;            /* total storage in use */
} hm_intern;

void hm_intern_init(hm_intern *t);
void hm_intern_free(hm_intern *t);
/* Id of the blob, adding it if new (*added set to 1). UINT32_MAX on OOM. */
uint32_t hm_intern_put(hm_intern *t, const void *key, uint32_t len, int *added);
/* Id of the blob or UINT32_MAX if absent. */
uint32_t hm_intern_find(const hm_intern *t, const void *key, uint32_t len);
const void *hm_intern_get(const hm_intern *t, uint32_t id, uint32_t *len);
uint64_t hm_hash_bytes(const void *key, size_t len);

#endif
