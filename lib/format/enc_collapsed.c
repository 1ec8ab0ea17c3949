/* enc_collapsed.c - the collapsed ("folded") stack format.
 *
 * One line per distinct stack: frame texts (hm_frame_format) root to leaf
 * joined by ';', a space and the sample count, as read by flamegraph.pl,
 * inferno, speedscope and Pyroscope. Samples of all threads are merged (a
 * --threads profile keeps its thread pseudo frames as ordinary frames).
 * The stacks come from a flame tree walked depth first with children in
 * text order, so the output is deterministic; a line is written for every
 * node with self samples. Inside a frame text ';' becomes ':' and line
 * breaks become spaces, so every line stays parseable. Samples with an
 * empty stack have no frames to print and are left out. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "format/encode.h"
#include "format/flametree.h"

/* Append frame text to buf at *len (growing it), sanitised for folding. */
static int path_push(char **buf, size_t *cap, size_t *len, const char *text)
{
	size_t tl = strlen(text);
	if (*len + tl + 2 > *cap) {
		size_t nc = (*cap ? *cap * 2 : 1024);
		while (nc < *len + tl + 2)
			nc *= 2;
		char *nb = realloc(*buf, nc);
		if (!nb)
			return -1;
		*buf = nb;
		*cap = nc;
	}
	char *d = *buf + *len;
	if (*len)
		*d++ = ';';
	for (size_t i = 0; i < tl; i++) {
		char c = text[i];
		*d++ = c == ';' ? ':' : (c == '\n' || c == '\r') ? ' ' : c;
	}
	*len = (size_t)(d - *buf);
	return 0;
}

int hm_write_collapsed(const hm_profile *p, FILE *out, const hm_write_opts *o)
{
	hm_flametree *t = hm_flametree_build(p, HM_FT_COUNT, NULL, NULL);
	if (!t)
		return hm_errcode();
	uint32_t maxd = hm_flametree_max_depth(t) + 1;
	/* DFS state per depth: the node's children, the next child to visit
	 * and the path length before the node's text. */
	struct level { const uint32_t *kids; uint32_t n, next; size_t len; } *st;
	st = calloc(maxd + 1, sizeof *st);
	char *path = NULL;
	size_t cap = 0, len = 0;
	int rc = HM_OK;
	if (!st) {
		rc = hm_error(HM_ENOMEM, "out of memory writing collapsed stacks");
		goto out;
	}
	uint32_t depth = 0;
	st[0].kids = hm_flametree_children(t, 0, &st[0].n);
	while (1) {
		struct level *lv = &st[depth];
		if (lv->next == lv->n) {
			if (depth == 0)
				break;
			depth--;
			len = st[depth + 1].len;
			continue;
		}
		uint32_t id = lv->kids[lv->next++];
		const hm_flame_node *nd = hm_flametree_node(t, id);
		struct level *child = &st[depth + 1];
		child->len = len;
		if (path_push(&path, &cap, &len, hm_flametree_str(t, nd->text))) {
			rc = hm_error(HM_ENOMEM, "out of memory writing collapsed stacks");
			goto out;
		}
		if (nd->self[0] > 0) {
			fwrite(path, 1, len, out);
			fprintf(out, " %lld\n", (long long)nd->self[0]);
		}
		child->kids = hm_flametree_children(t, id, &child->n);
		child->next = 0;
		depth++;
	}
	if (ferror(out))
		rc = hm_error(HM_EIO, "writing collapsed stacks failed");
out:
	free(path);
	free(st);
	hm_flametree_free(t);
	return rc;
}
