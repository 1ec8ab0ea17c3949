/* write.c - the store's engine-independent write path (engine.h).
 *
 * A put goes in chunks of HM_STORE_PUT_CHUNK samples, each one write unit
 * of the engine (begin, rows, end) under the write lock, which is let go
 * between chunks so that one large profile does not hold up other writers.
 * In a chunk: the series is found or created (series limit), each frame of
 * the profile is interned once (its name and file as strings, then the
 * frame key), each sample's stack becomes a varint blob of frame ids,
 * clamped to HM_STORE_MAX_DEPTH frames, and is interned; for an engine
 * that wants it (fold_rows) the samples are folded per stack and sorted by
 * stack id for its upserts.
 * Interning goes through the bounded id caches of struct hm_store; a miss
 * asks the engine. Cached ids are dropped when the engine says they may be
 * gone (st->gen), and the per-put frame map with them.
 *
 * The helpers the engines share on the read side (id map, stack blob
 * decoder, series list, hour split) and in maintenance (the downsampling
 * range and steps, the size cap's cut) live here too. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "store/engine.h"

/* ---- id caches ---- */

void hm_idcache_init(hm_idcache *c, size_t max)
{
	memset(c, 0, sizeof *c);
	hm_intern_init(&c->keys);
	c->max = max;
}

void hm_idcache_free(hm_idcache *c)
{
	hm_intern_free(&c->keys);
	free(c->ids);
	c->ids = NULL;
	c->cap = 0;
}

void hm_idcache_clear(hm_idcache *c)
{
	hm_idcache_free(c);
	hm_intern_init(&c->keys);
}

/* Memory held: the keys' storage plus the intern index and the id array. */
size_t hm_idcache_bytes(const hm_idcache *c)
{
	const hm_intern *k = &c->keys;
	return k->bytes + (size_t)k->cap * sizeof *k->slots +
	       (size_t)k->ids_cap * (sizeof *k->ptrs + sizeof *k->lens + sizeof *k->hashes) +
	       (size_t)c->cap * sizeof *c->ids;
}

int64_t hm_idcache_get(const hm_idcache *c, const void *k, size_t len)
{
	if (len > UINT32_MAX)
		return -1;
	uint32_t i = hm_intern_find(&c->keys, k, (uint32_t)len);
	return i == UINT32_MAX ? -1 : c->ids[i];
}

int hm_idcache_put(hm_idcache *c, const void *k, size_t len, int64_t id)
{
	size_t entry = (len + 8) & ~(size_t)7;
	if (entry > c->max / 4)
		return HM_OK;           /* too large to cache: looked up each time */
	if (hm_idcache_bytes(c) + entry > c->max)
		hm_idcache_clear(c);
	int added;
	uint32_t i = hm_intern_put(&c->keys, k, (uint32_t)len, &added);
	if (i == UINT32_MAX)
		return hm_error(HM_ENOMEM, "store: out of memory (id cache)");
	if (i >= c->cap) {
		uint32_t nc = c->cap ? c->cap * 2 : 64;
		int64_t *n = realloc(c->ids, nc * sizeof *n);
		if (!n)
			return hm_error(HM_ENOMEM, "store: out of memory (id cache)");
		c->ids = n;
		c->cap = nc;
	}
	c->ids[i] = id;
	if (hm_idcache_bytes(c) > c->max)   /* the index doubled past the bound */
		hm_idcache_clear(c);
	return HM_OK;
}

void hm_store_forget_ids(hm_store *st)
{
	hm_idcache_clear(&st->c_str);
	hm_idcache_clear(&st->c_frame);
	hm_idcache_clear(&st->c_stack);
	st->gen++;
}

void hm_store_forget_series(hm_store *st)
{
	hm_idcache_clear(&st->c_series);
}

/* ---- interning ---- */

static int cache_put(hm_store *st, hm_idcache *c, const void *key, size_t len, int64_t id)
{
	if (st->opts.cache_fail && st->opts.cache_fail(st->opts.cache_fail_arg))
		return hm_error(HM_ENOMEM, "store: out of memory (id cache)");
	return hm_idcache_put(c, key, len, id);
}

static int64_t dict_id(hm_store *st, hm_idcache *c, int kind, const void *key, size_t len)
{
	int64_t id = hm_idcache_get(c, key, len);
	if (id >= 0)
		return id;
	id = st->eng->dict_id(st, kind, key, len);
	if (id < 0)
		return id;
	int rc = cache_put(st, c, key, len, id);
	return rc < 0 ? rc : id;
}

static int64_t frame_id(hm_store *st, const hm_profile *p, const hm_frame *f)
{
	const char *name = hm_profile_str(p, f->name), *file = hm_profile_str(p, f->file);
	int64_t nid = dict_id(st, &st->c_str, HM_DICT_STRING, name, strlen(name));
	if (nid < 0)
		return nid;
	int64_t fid = dict_id(st, &st->c_str, HM_DICT_STRING, file, strlen(file));
	if (fid < 0)
		return fid;
	hm_store_frame_key k = {{nid, fid, f->line, f->start_line, f->kind}};
	return dict_id(st, &st->c_frame, HM_DICT_FRAME, &k, sizeof k);
}

static size_t put_varint(uint8_t *b, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		b[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b[n++] = (uint8_t)v;
	return n;
}

/* type\0name\0value\0... of a series (malloc'd), NULL when out of memory. */
static uint8_t *series_key(const char *type, const hm_store_label *l, uint32_t n, size_t *len)
{
	*len = strlen(type) + 1;
	for (uint32_t i = 0; i < n; i++)
		*len += strlen(l[i].name) + strlen(l[i].value) + 2;
	uint8_t *key = malloc(*len), *k = key;
	if (!key)
		return NULL;
	k = (uint8_t *)stpcpy((char *)k, type) + 1;
	for (uint32_t i = 0; i < n; i++) {
		k = (uint8_t *)stpcpy((char *)k, l[i].name) + 1;
		k = (uint8_t *)stpcpy((char *)k, l[i].value) + 1;
	}
	return key;
}

/* Id of the series with this key; -1 when it does not exist and create is
 * 0; else created with first = last = t (under the series limit). */
static int64_t series_id(hm_store *st, const uint8_t *key, size_t len, const char *type,
			 const hm_store_label *l, uint32_t n, int64_t t, int create)
{
	int64_t id = hm_idcache_get(&st->c_series, key, len);
	if (id >= 0)
		return id;
	id = st->eng->series_find(st, key, len);
	if (id == -1 && create) {
		int64_t have = st->eng->series_count(st);
		if (have < 0)
			return have;
		if (have >= st->opts.max_series)
			return hm_error(HM_EINVAL, "store: series limit (%u) reached",
					st->opts.max_series);
		id = st->eng->series_add(st, key, len, type, l, n, t);
	}
	if (id >= 0) {
		int rc = cache_put(st, &st->c_series, key, len, id);
		if (rc < 0)
			return rc;
	}
	return id;
}

/* ---- series of a request ---- */

int hm_store_write_series(hm_store *st, const hm_store_put_req *v, size_t n)
{
	hm_intern fresh;          /* distinct new series keys of the request */
	hm_intern_init(&fresh);
	int rc = HM_OK, began = 0;
	hm_fairlock_lock(&st->wmu);
	for (size_t i = 0; rc == HM_OK && i < n; i++) {
		size_t len;
		uint8_t *key = series_key(v[i].type, v[i].labels, v[i].n, &len);
		if (!key) {
			rc = hm_error(HM_ENOMEM, "out of memory");
			break;
		}
		int64_t id = series_id(st, key, len, NULL, NULL, 0, 0, 0);
		if (id < -1)
			rc = (int)id;
		else if (id == -1 && hm_intern_put(&fresh, key, (uint32_t)len, NULL) == UINT32_MAX)
			rc = hm_error(HM_ENOMEM, "out of memory");
		free(key);
	}
	if (rc == HM_OK && fresh.n) {
		int64_t have = st->eng->series_count(st);
		if (have < 0)
			rc = (int)have;
		else if (have + fresh.n > st->opts.max_series)
			rc = hm_error(HM_EINVAL, "store: series limit (%u) reached: the request "
				      "needs %u new series and %lld are in use", st->opts.max_series,
				      fresh.n, (long long)have);
		else
			began = (rc = st->eng->begin(st)) == HM_OK;
		if (began) {
			for (size_t i = 0; rc == HM_OK && i < n; i++) {
				size_t len;
				uint8_t *key = series_key(v[i].type, v[i].labels, v[i].n, &len);
				if (!key) {
					rc = hm_error(HM_ENOMEM, "out of memory");
					break;
				}
				int64_t b = v[i].t_s - v[i].t_s % HM_STORE_BUCKET_S;
				int64_t id = series_id(st, key, len, v[i].type, v[i].labels, v[i].n,
						       b, 1);
				if (id < 0)
					rc = (int)id;
				free(key);
			}
		}
	}
	/* a failed lookup too (not the limit): the engine may have to recover */
	if (began || (rc < 0 && rc != HM_EINVAL))
		rc = st->eng->end(st, rc);
	hm_fairlock_unlock(&st->wmu);
	hm_intern_free(&fresh);
	return rc;
}

/* ---- a put ---- */

static int by_stack(const void *a, const void *b)
{
	int64_t x = ((const hm_store_row *)a)->stack, y = ((const hm_store_row *)b)->stack;
	return x < y ? -1 : x > y;
}

/* Fold rows of the same stack (sorted first); their new number. */
static size_t fold_rows(hm_store_row *rows, size_t n)
{
	qsort(rows, n, sizeof *rows, by_stack);
	size_t m = 0;
	for (size_t k = 0; k < n; k++) {
		if (m && rows[m - 1].stack == rows[k].stack) {
			rows[m - 1].count = hm_sat_add(rows[m - 1].count, rows[k].count);
			rows[m - 1].ns = hm_sat_add(rows[m - 1].ns, rows[k].ns);
		} else {
			rows[m++] = rows[k];
		}
	}
	return m;
}

int hm_store_write(hm_store *st, const char *type, const hm_store_label *labels, uint32_t n,
		   int64_t t_s, const hm_profile *p)
{
	if (st->eng->inspect)
		st->eng->inspect(st, type, labels, n, p);
	int64_t bucket = t_s - t_s % HM_STORE_BUCKET_S;
	uint32_t nframes = hm_profile_nframes(p);
	size_t nsamp = hm_profile_nsamples(p), klen;
	int64_t *fmap = malloc((nframes + 1) * sizeof *fmap);
	uint8_t *blob = malloc((size_t)10 * HM_STORE_MAX_DEPTH + 16);
	size_t maxrows = nsamp < HM_STORE_PUT_CHUNK ? nsamp : HM_STORE_PUT_CHUNK;
	hm_store_row *rows = malloc((maxrows + 1) * sizeof *rows);
	uint8_t *key = series_key(type, labels, n, &klen);
	if (!fmap || !blob || !rows || !key) {
		free(fmap);
		free(blob);
		free(rows);
		free(key);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	uint64_t gen = 0;
	int rc = HM_OK, first = 1;
	size_t i = 0;
	while (rc == HM_OK && (first || i < nsamp)) {
		hm_fairlock_lock(&st->wmu);
		if (first || gen != st->gen)   /* ids cached before may be gone */
			for (uint32_t f = 0; f < nframes; f++)
				fmap[f] = -1;
		gen = st->gen;
		first = 0;
		rc = st->eng->begin(st);
		int64_t sid = rc < 0 ? rc : series_id(st, key, klen, type, labels, n, bucket, 1);
		if (sid < 0)
			rc = (int)sid;
		size_t nrows = 0;
		int64_t sum_count = 0, sum_ns = 0;
		for (size_t end = i + HM_STORE_PUT_CHUNK; rc == HM_OK && i < nsamp && i < end; i++) {
			const hm_sample *s = hm_profile_sample(p, i);
			if (!s->count && !s->weight_ns)
				continue;
			uint32_t depth;
			const uint32_t *fr = hm_profile_stack(p, s->stack, &depth);
			if (depth > HM_STORE_MAX_DEPTH)
				depth = HM_STORE_MAX_DEPTH;
			size_t bl = 0;
			for (uint32_t d = 0; d < depth; d++) {
				uint32_t f = fr[d];
				if (f >= nframes) {
					rc = hm_error(HM_EINVAL, "store: frame id out of range");
					break;
				}
				if (fmap[f] < 0) {
					int64_t id = frame_id(st, p, hm_profile_frame(p, f));
					if (id < 0) {
						rc = (int)id;
						break;
					}
					fmap[f] = id;
				}
				bl += put_varint(blob + bl, (uint64_t)fmap[f]);
			}
			if (rc < 0)
				break;
			int64_t stk = dict_id(st, &st->c_stack, HM_DICT_STACK, blob, bl);
			if (stk < 0) {
				rc = (int)stk;
				break;
			}
			rows[nrows++] = (hm_store_row){stk, s->count, s->weight_ns};
			sum_count = hm_sat_add(sum_count, s->count);
			sum_ns = hm_sat_add(sum_ns, s->weight_ns);
		}
		if (rc == HM_OK && st->eng->fold_rows)
			nrows = fold_rows(rows, nrows);
		if (rc == HM_OK)
			rc = st->eng->rows(st, sid, bucket, rows, nrows, sum_count, sum_ns);
		rc = st->eng->end(st, rc);
		hm_fairlock_unlock(&st->wmu);
		if (rc == HM_OK && i < nsamp && st->opts.put_pause)
			st->opts.put_pause(st->opts.put_pause_arg);
	}
	free(fmap);
	free(blob);
	free(rows);
	free(key);
	return rc;
}

/* ---- read-side helpers ---- */

void hm_idmap_init(hm_idmap *m)
{
	memset(m, 0, sizeof *m);
	hm_intern_init(&m->keys);
}

void hm_idmap_free(hm_idmap *m)
{
	hm_intern_free(&m->keys);
	free(m->vals);
	memset(m, 0, sizeof *m);
}

int hm_idmap_get(const hm_idmap *m, int64_t id, uint32_t *val)
{
	uint32_t i = hm_intern_find(&m->keys, &id, sizeof id);
	if (i == UINT32_MAX)
		return 0;
	*val = m->vals[i];
	return 1;
}

int hm_idmap_set(hm_idmap *m, int64_t id, uint32_t val)
{
	int added;
	uint32_t i = hm_intern_put(&m->keys, &id, sizeof id, &added);
	if (i == UINT32_MAX)
		return hm_error(HM_ENOMEM, "out of memory");
	if (i >= m->cap) {
		uint32_t nc = m->cap ? m->cap * 2 : 256;
		uint32_t *nv = realloc(m->vals, nc * sizeof *nv);
		if (!nv)
			return hm_error(HM_ENOMEM, "out of memory");
		m->vals = nv;
		m->cap = nc;
	}
	m->vals[i] = val;
	return HM_OK;
}

size_t hm_store_stack_decode(const uint8_t *b, size_t len, int64_t *out, size_t max)
{
	size_t n = 0;
	for (size_t at = 0; at < len && n < max;) {
		uint64_t v = 0;
		for (int sh = 0; at < len && sh < 63; sh += 7) {
			uint8_t c = b[at++];
			v |= (uint64_t)(c & 0x7f) << sh;
			if (!(c & 0x80))
				break;
		}
		out[n++] = (int64_t)v;
	}
	return n;
}

int hm_store_list_alloc(hm_series_list *out, size_t n, size_t keybytes)
{
	out->v = calloc(n + 1, sizeof *out->v);
	out->strbuf = malloc(keybytes + n + 1);
	out->n = 0;
	if (!out->v || !out->strbuf) {
		hm_series_list_free(out);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	return HM_OK;
}

char *hm_store_list_add(hm_series_list *out, char *b, int64_t id, const void *key,
			size_t keylen, int64_t first, int64_t last)
{
	hm_series_info *s = &out->v[out->n++];
	s->id = id;
	s->first_s = first;
	s->last_s = last;
	memcpy(b, key, keylen);
	b[keylen] = 0;      /* a key always ends in \0; this guards a damaged one */
	char *end = b + keylen;
	s->type = b;
	b += strlen(b) + 1;
	while (b < end && s->nlabels < HM_STORE_MAX_LABELS) {
		s->labels[s->nlabels].name = b;
		b += strlen(b) + 1;
		s->labels[s->nlabels++].value = b < end ? b : "";
		if (b < end)
			b += strlen(b) + 1;
	}
	return end + 1;
}

void hm_store_hours(int64_t t0, int64_t t1, int64_t *h0, int64_t *h1)
{
	*h0 = t0 <= 0 ? 0 : (t0 + HM_STORE_HOUR - 1) / HM_STORE_HOUR * HM_STORE_HOUR;
	*h1 = t1 - t1 % HM_STORE_HOUR;
	if (*h0 >= *h1)
		*h0 = *h1 = t1;
}

/* ---- maintenance arithmetic ---- */

void hm_store_fold_range(int64_t now, int64_t after, int64_t done_until, int64_t lo,
			 int64_t *from, int64_t *cutoff)
{
	*cutoff = now - after;
	*cutoff -= *cutoff % HM_STORE_COARSE_S;
	*from = done_until < 0 ? 0 : done_until - done_until % HM_STORE_COARSE_S;
	if (lo >= 0 && lo - lo % HM_STORE_COARSE_S > *from)
		*from = lo - lo % HM_STORE_COARSE_S;
	if (lo < 0)          /* no data: nothing to fold */
		*from = *cutoff;
}

int64_t hm_store_fold_step(int64_t from, int64_t cutoff)
{
	int64_t to = from - from % HM_STORE_HOUR + HM_STORE_HOUR;
	return to > cutoff ? cutoff : to;
}

int64_t hm_store_cap_cut(int64_t lo, int64_t hi)
{
	int64_t span = (hi - lo) / 10;
	return lo + (span > HM_STORE_COARSE_S ? span : HM_STORE_COARSE_S);
}
