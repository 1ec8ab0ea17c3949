/* flametree.h - merged call trees (the shape behind a flame graph).
 *
 * A flame tree merges the stacks of one or more profiles into a tree keyed
 * by frame text (hm_frame_format), so equal frames merge even across
 * profiles. Node 0 is the root ("all"). Every node keeps, per slot, a total
 * (its samples and its descendants') and a self value; two slots let the
 * diff command load a baseline (slot 0) and a comparison (slot 1) into one
 * tree. Children are kept sorted by text, so walks are deterministic.
 *
 *   hm_flametree *t = hm_flametree_new();
 *   hm_flametree_add(t, p, 0, HM_FT_COUNT, NULL, NULL);
 *   walk from hm_flametree_children(t, 0, &n) ...
 *   hm_flametree_free(t);
 */
#ifndef HOMURA_FLAMETREE_H
#define HOMURA_FLAMETREE_H

#include <stdint.h>
#include "base/profile.h"

#define HM_FT_SLOTS 2

enum hm_ft_flags {
	HM_FT_COUNT = 0,        /* value = sample count (default) */
	HM_FT_WEIGHT = 1 << 0,  /* value = weight_ns */
	HM_FT_BY_FUNCTION = 1 << 1, /* ignore line numbers: "name (file)" */
};

typedef struct hm_flame_node {
	uint32_t parent;        /* UINT32_MAX for the root */
	uint32_t depth;         /* root = 0 */
	uint32_t text;          /* hm_flametree_str id: "name (file:line)" */
	uint32_t name;          /* hm_flametree_str id: function name only */
	uint8_t kind;           /* enum hm_frame_kind of the first frame seen */
	int64_t total[HM_FT_SLOTS];
	int64_t self[HM_FT_SLOTS];
} hm_flame_node;

typedef struct hm_flametree hm_flametree;

/* Keep a sample (aggregate) when the callback returns nonzero. */
typedef int (*hm_ft_filter)(const hm_profile *p, const hm_sample *s, void *ud);

hm_flametree *hm_flametree_new(void);
void hm_flametree_free(hm_flametree *t);

/* Merge every sample of p (that passes filter, if given) into slot
 * (0 or 1). flags: enum hm_ft_flags. HM_OK or a negative hm_err. */
int hm_flametree_add(hm_flametree *t, const hm_profile *p, int slot, int flags,
		     hm_ft_filter filter, void *ud);

/* Shorthand: a new tree of p in slot 0, NULL (hm_errmsg set) on failure. */
hm_flametree *hm_flametree_build(const hm_profile *p, int flags, hm_ft_filter filter,
				 void *ud);

uint32_t hm_flametree_nnodes(const hm_flametree *t);
const hm_flame_node *hm_flametree_node(const hm_flametree *t, uint32_t id);
/* keep[i] (calloc'd, n + 1 bytes, free it) marks the max_nodes largest
 * nodes by total, ancestors always kept before their children, ties broken
 * by depth then id: the nodes a size-bounded answer shows (the query API,
 * the querier). NULL when out of memory. */
unsigned char *hm_flametree_keep_largest(const hm_flametree *t, uint64_t max_nodes);
const char *hm_flametree_str(const hm_flametree *t, uint32_t id);
/* Children of a node, sorted by text. Valid until the next hm_flametree_add. */
const uint32_t *hm_flametree_children(const hm_flametree *t, uint32_t id, uint32_t *n);
/* Deepest node depth (0 for a tree with only the root). */
uint32_t hm_flametree_max_depth(const hm_flametree *t);

#endif
