/* flametree.c - merged call trees for flame graphs, diffs and the server.
 *
 * Nodes are interned by the 8-byte key (parent node id, text id), so the
 * interner both finds a child in O(1) and hands out dense node ids; node
 * attributes live in a parallel array. Frame texts come from
 * hm_frame_format and are interned in the tree's own string table, which
 * makes trees from different profiles comparable. Each hm_flametree_add
 * caches the text of every profile frame it meets, walks each sample's
 * stack root to leaf adding the value to the totals (saturated at the int64
 * limits, so hostile counts cannot wrap), and finally rebuilds a children
 * index (CSR arrays, children sorted by text). */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/intern.h"
#include "format/flametree.h"

static int64_t sat_add(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

struct hm_flametree {
	hm_intern strs;         /* frame texts and names */
	hm_intern keys;         /* (parent, text) -> node id */
	hm_flame_node *nodes;
	uint32_t cap;
	uint32_t *child_start;  /* nnodes + 1 entries */
	uint32_t *child_ids;    /* nnodes - 1 entries */
	uint32_t max_depth;
};

static uint32_t intern_str(hm_flametree *t, const char *s, size_t len)
{
	int added;
	if (len > UINT32_MAX)
		len = UINT32_MAX;
	return hm_intern_put(&t->strs, s, (uint32_t)len, &added);
}

/* Id of the child of parent with this text, creating it; UINT32_MAX on OOM. */
static uint32_t node_get(hm_flametree *t, uint32_t parent, uint32_t text, uint32_t name,
			 uint8_t kind)
{
	uint32_t key[2] = { parent, text };
	int added = 0;
	if (t->keys.n >= t->cap) { /* room for a new node before interning its key */
		uint32_t ncap = t->cap ? t->cap * 2 : 256;
		hm_flame_node *nn = realloc(t->nodes, (size_t)ncap * sizeof *nn);
		if (!nn)
			return UINT32_MAX;
		t->nodes = nn;
		t->cap = ncap;
	}
	uint32_t id = hm_intern_put(&t->keys, key, sizeof key, &added);
	if (id == UINT32_MAX || !added)
		return id;
	hm_flame_node *n = &t->nodes[id];
	memset(n, 0, sizeof *n);
	n->parent = parent;
	n->depth = parent == UINT32_MAX ? 0 : t->nodes[parent].depth + 1;
	n->text = text;
	n->name = name;
	n->kind = kind;
	if (n->depth > t->max_depth)
		t->max_depth = n->depth;
	return id;
}

hm_flametree *hm_flametree_new(void)
{
	hm_flametree *t = calloc(1, sizeof *t);
	if (!t) {
		hm_error(HM_ENOMEM, "out of memory building a flame tree");
		return NULL;
	}
	hm_intern_init(&t->strs);
	hm_intern_init(&t->keys);
	uint32_t all = intern_str(t, "all", 3);
	if (all == UINT32_MAX || node_get(t, UINT32_MAX, all, all, HM_FRAME_OTHER) != 0) {
		hm_flametree_free(t);
		hm_error(HM_ENOMEM, "out of memory building a flame tree");
		return NULL;
	}
	return t;
}

void hm_flametree_free(hm_flametree *t)
{
	if (!t)
		return;
	hm_intern_free(&t->strs);
	hm_intern_free(&t->keys);
	free(t->nodes);
	free(t->child_start);
	free(t->child_ids);
	free(t);
}

static int cmp_child(const void *a, const void *b, void *ud)
{
	const hm_flametree *t = ud;
	const hm_flame_node *x = &t->nodes[*(const uint32_t *)a];
	const hm_flame_node *y = &t->nodes[*(const uint32_t *)b];
	if (x->parent != y->parent)
		return x->parent < y->parent ? -1 : 1;
	if (x->text == y->text)
		return 0;
	uint32_t lx, ly;
	const char *sx = hm_intern_get(&t->strs, x->text, &lx);
	const char *sy = hm_intern_get(&t->strs, y->text, &ly);
	int c = memcmp(sx, sy, lx < ly ? lx : ly);
	if (c)
		return c;
	return lx < ly ? -1 : lx > ly;
}

/* Rebuild the CSR children index: all non-root nodes sorted by (parent, text). */
static int index_children(hm_flametree *t)
{
	uint32_t n = t->keys.n;
	free(t->child_start);
	free(t->child_ids);
	t->child_start = calloc((size_t)n + 1, sizeof *t->child_start);
	t->child_ids = malloc(((size_t)n ? n : 1) * sizeof *t->child_ids);
	if (!t->child_start || !t->child_ids)
		return hm_error(HM_ENOMEM, "out of memory building a flame tree");
	for (uint32_t i = 1; i < n; i++)
		t->child_ids[i - 1] = i;
	qsort_r(t->child_ids, n - 1, sizeof *t->child_ids, cmp_child, t);
	/* child_start[p] = first index in child_ids whose parent is p. */
	for (uint32_t i = 1; i < n; i++)
		t->child_start[t->nodes[i].parent + 1]++;
	for (uint32_t i = 0; i < n; i++)
		t->child_start[i + 1] += t->child_start[i];
	return HM_OK;
}

/* Text and name ids of profile frame fid, cached per add call. */
static int frame_texts(hm_flametree *t, const hm_profile *p, uint32_t fid, int flags,
		       uint32_t *cache, uint32_t *text, uint32_t *name)
{
	if (cache[2 * fid] != UINT32_MAX) {
		*text = cache[2 * fid];
		*name = cache[2 * fid + 1];
		return HM_OK;
	}
	const hm_frame *f = hm_profile_frame(p, fid);
	if (!f)
		return hm_error(HM_EINVAL, "profile stack refers to missing frame %u", fid);
	hm_frame fr = *f;
	if (flags & HM_FT_BY_FUNCTION)
		fr.line = 0;
	char sbuf[512];
	char *buf = sbuf;
	size_t need = hm_frame_format(p, &fr, sbuf, sizeof sbuf);
	if (need >= sizeof sbuf) {
		buf = malloc(need + 1);
		if (!buf)
			return hm_error(HM_ENOMEM, "out of memory building a flame tree");
		hm_frame_format(p, &fr, buf, need + 1);
	}
	*text = intern_str(t, buf, need);
	if (buf != sbuf)
		free(buf);
	const char *nm = hm_profile_str(p, f->name);
	if (!nm)
		nm = "";
	*name = intern_str(t, nm, strlen(nm));
	if (*text == UINT32_MAX || *name == UINT32_MAX)
		return hm_error(HM_ENOMEM, "out of memory building a flame tree");
	cache[2 * fid] = *text;
	cache[2 * fid + 1] = *name;
	return HM_OK;
}

int hm_flametree_add(hm_flametree *t, const hm_profile *p, int slot, int flags,
		     hm_ft_filter filter, void *ud)
{
	if (!t || !p || slot < 0 || slot >= HM_FT_SLOTS)
		return hm_error(HM_EINVAL, "flame tree: bad argument");
	uint32_t nframes = hm_profile_nframes(p);
	uint32_t *cache = malloc(((size_t)nframes * 2 + 1) * sizeof *cache);
	if (!cache)
		return hm_error(HM_ENOMEM, "out of memory building a flame tree");
	memset(cache, 0xff, ((size_t)nframes * 2 + 1) * sizeof *cache);

	int rc = HM_OK;
	size_t ns = hm_profile_nsamples(p);
	for (size_t i = 0; i < ns && rc == HM_OK; i++) {
		const hm_sample *s = hm_profile_sample(p, i);
		if (!s || (filter && !filter(p, s, ud)))
			continue;
		int64_t v = (flags & HM_FT_WEIGHT) ? s->weight_ns : s->count;
		uint32_t depth = 0;
		const uint32_t *st = hm_profile_stack(p, s->stack, &depth);
		if (!st)
			depth = 0;
		uint32_t node = 0;
		t->nodes[0].total[slot] = sat_add(t->nodes[0].total[slot], v);
		for (uint32_t d = 0; d < depth; d++) {
			uint32_t text, name;
			if (st[d] >= nframes) {
				rc = hm_error(HM_EINVAL, "profile stack refers to missing frame %u",
					      st[d]);
				break;
			}
			rc = frame_texts(t, p, st[d], flags, cache, &text, &name);
			if (rc != HM_OK)
				break;
			node = node_get(t, node, text, name, hm_profile_frame(p, st[d])->kind);
			if (node == UINT32_MAX) {
				rc = hm_error(HM_ENOMEM, "out of memory building a flame tree");
				break;
			}
			t->nodes[node].total[slot] = sat_add(t->nodes[node].total[slot], v);
		}
		if (rc == HM_OK)
			t->nodes[node].self[slot] = sat_add(t->nodes[node].self[slot], v);
	}
	free(cache);
	if (rc == HM_OK)
		rc = index_children(t);
	return rc;
}

hm_flametree *hm_flametree_build(const hm_profile *p, int flags, hm_ft_filter filter,
				 void *ud)
{
	hm_flametree *t = hm_flametree_new();
	if (t && hm_flametree_add(t, p, 0, flags, filter, ud) != HM_OK) {
		hm_flametree_free(t);
		return NULL;
	}
	return t;
}

uint32_t hm_flametree_nnodes(const hm_flametree *t)
{
	return t->keys.n;
}

const hm_flame_node *hm_flametree_node(const hm_flametree *t, uint32_t id)
{
	return id < t->keys.n ? &t->nodes[id] : NULL;
}

const char *hm_flametree_str(const hm_flametree *t, uint32_t id)
{
	uint32_t len;
	const char *s = id < t->strs.n ? hm_intern_get(&t->strs, id, &len) : NULL;
	return s ? s : "";
}

const uint32_t *hm_flametree_children(const hm_flametree *t, uint32_t id, uint32_t *n)
{
	if (!t->child_start || id >= t->keys.n) {
		*n = 0;
		return NULL;
	}
	*n = t->child_start[id + 1] - t->child_start[id];
	return t->child_ids + t->child_start[id];
}

uint32_t hm_flametree_max_depth(const hm_flametree *t)
{
	return t->max_depth;
}

/* Largest total first, then shallower, then lower id. */
static int by_total(const void *a, const void *b, void *arg)
{
	const hm_flametree *t = arg;
	const hm_flame_node *x = hm_flametree_node(t, *(const uint32_t *)a);
	const hm_flame_node *y = hm_flametree_node(t, *(const uint32_t *)b);
	int64_t vx = x->total[0] + x->total[1], vy = y->total[0] + y->total[1];
	if (vx != vy)
		return vx > vy ? -1 : 1;
	if (x->depth != y->depth)
		return x->depth < y->depth ? -1 : 1;
	return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

unsigned char *hm_flametree_keep_largest(const hm_flametree *t, uint64_t max_nodes)
{
	uint32_t n = hm_flametree_nnodes(t);
	unsigned char *keep = calloc((size_t)n + 1, 1);
	if (!keep)
		return NULL;
	if (n <= max_nodes) {
		memset(keep, 1, n);
		return keep;
	}
	uint32_t *ids = malloc((size_t)n * sizeof *ids);
	if (!ids) {
		free(keep);
		return NULL;
	}
	for (uint32_t i = 0; i < n; i++)
		ids[i] = i;
	qsort_r(ids, n, sizeof *ids, by_total, (void *)t);
	keep[0] = 1;
	for (uint32_t i = 0, kept = 1; i < n && kept < max_nodes; i++) {
		const hm_flame_node *nd = hm_flametree_node(t, ids[i]);
		if (ids[i] && keep[nd->parent] && !keep[ids[i]]) {
			keep[ids[i]] = 1;
			kept++;
		}
	}
	free(ids);
	return keep;
}
