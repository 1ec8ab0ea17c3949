/* intern.c - byte-string interner (see intern.h).
 *
 * Open-addressing table of ids with linear probing, keyed by a 64-bit hash
 * kept per id so that growth never rehashes the blobs. Blobs live in chunks
 * of at least 64 KiB that are never moved. */
#include <stdlib.h>
#include <string.h>

#include "base/intern.h"

struct hm_intern_chunk {
	hm_intern_chunk *prev;
	size_t used, cap;
	uint8_t data[];
};

uint64_t hm_hash_bytes(const void *key, size_t len)
{
	/* 64-bit FNV-1a over 8-byte words, then a final avalanche. */
	const uint8_t *p = key;
	uint64_t h = 0xcbf29ce484222325ULL ^ len;
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ w) * 0x100000001b3ULL;
		h ^= h >> 29;
		p += 8;
		len -= 8;
	}
	while (len--)
		h = (h ^ *p++) * 0x100000001b3ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

void hm_intern_init(hm_intern *t)
{
	memset(t, 0, sizeof *t);
}

void hm_intern_free(hm_intern *t)
{
	hm_intern_chunk *c = t->chunk;
	while (c) {
		hm_intern_chunk *prev = c->prev;
		free(c);
		c = prev;
	}
	free(t->slots);
	free(t->ptrs);
	free(t->lens);
	free(t->hashes);
	memset(t, 0, sizeof *t);
}

static int grow_slots(hm_intern *t)
{
	uint32_t ncap = t->cap ? t->cap * 2 : 64;
	uint32_t *ns = calloc(ncap, sizeof *ns);
	if (!ns)
		return -1;
	for (uint32_t id = 0; id < t->n; id++) {
		uint32_t i = (uint32_t)t->hashes[id] & (ncap - 1);
		while (ns[i])
			i = (i + 1) & (ncap - 1);
		ns[i] = id + 1;
	}
	free(t->slots);
	t->slots = ns;
	t->cap = ncap;
	return 0;
}

/* Copy a blob into chunk storage, NUL-terminated (so interned strings are C
 * strings) and 8-byte aligned (so interned arrays of integers can be read
 * in place). */
static const uint8_t *store(hm_intern *t, const void *key, uint32_t len)
{
	size_t need = ((size_t)len + 1 + 7) & ~(size_t)7;
	hm_intern_chunk *c = t->chunk;
	if (!c || c->cap - c->used < need) {
		size_t cap = need > 65536 ? need : 65536;
		hm_intern_chunk *nc = malloc(sizeof *nc + cap);
		if (!nc)
			return NULL;
		nc->prev = c;
		nc->used = 0;
		nc->cap = cap;
		t->chunk = c = nc;
	}
	uint8_t *dst = c->data + c->used;
	if (len)
		memcpy(dst, key, len);
	dst[len] = 0;
	c->used += need;
	t->bytes += need;
	return dst;
}

static uint32_t lookup(const hm_intern *t, const void *key, uint32_t len, uint64_t h,
		       uint32_t *slot)
{
	if (!t->cap) {
		*slot = 0;
		return UINT32_MAX;
	}
	uint32_t i = (uint32_t)h & (t->cap - 1);
	for (;;) {
		uint32_t v = t->slots[i];
		if (!v) {
			*slot = i;
			return UINT32_MAX;
		}
		uint32_t id = v - 1;
		if (t->hashes[id] == h && t->lens[id] == len &&
		    (len == 0 || memcmp(t->ptrs[id], key, len) == 0)) {
			*slot = i;
			return id;
		}
		i = (i + 1) & (t->cap - 1);
	}
}

uint32_t hm_intern_find(const hm_intern *t, const void *key, uint32_t len)
{
	uint32_t slot;
	return lookup(t, key, len, hm_hash_bytes(key, len), &slot);
}

uint32_t hm_intern_put(hm_intern *t, const void *key, uint32_t len, int *added)
{
	uint64_t h = hm_hash_bytes(key, len);
	uint32_t slot;
	uint32_t id = lookup(t, key, len, h, &slot);
	if (added)
		*added = 0;
	if (id != UINT32_MAX)
		return id;
	if ((uint64_t)(t->n + 1) * 4 > (uint64_t)t->cap * 3) {
		if (grow_slots(t))
			return UINT32_MAX;
		lookup(t, key, len, h, &slot);
	}
	if (t->n == t->ids_cap) {
		uint32_t nc = t->ids_cap ? t->ids_cap * 2 : 64;
		const uint8_t **np = realloc(t->ptrs, nc * sizeof *np);
		if (!np)
			return UINT32_MAX;
		t->ptrs = np;
		uint32_t *nl = realloc(t->lens, nc * sizeof *nl);
		if (!nl)
			return UINT32_MAX;
		t->lens = nl;
		uint64_t *nh = realloc(t->hashes, nc * sizeof *nh);
		if (!nh)
			return UINT32_MAX;
		t->hashes = nh;
		t->ids_cap = nc;
	}
	const uint8_t *p = store(t, key, len);
	if (!p)
		return UINT32_MAX;
	id = t->n++;
	t->ptrs[id] = p;
	t->lens[id] = len;
	t->hashes[id] = h;
	t->slots[slot] = id + 1;
	if (added)
		*added = 1;
	return id;
}

const void *hm_intern_get(const hm_intern *t, uint32_t id, uint32_t *len)
{
	if (id >= t->n) {
		if (len)
			*len = 0;
		return NULL;
	}
	if (len)
		*len = t->lens[id];
	return t->ptrs[id];
}
