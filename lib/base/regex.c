/* regex.c - bounded regular-expression matching (see regex.h).
 *
 * Three stages. The parser turns the pattern (UTF-8; an invalid byte b is
 * the character 0x110000+b) into a small tree whose character sets are
 * sorted, merged rune ranges. The compiler checks the size the program
 * would have once {n,m} repetitions are copied out (refusing it past
 * HM_REGEX_MAX_INSTS) and then emits a Thompson NFA: CLASS (consume one
 * character of a set), SPLIT, JMP, BOL, EOL, MATCH. The matcher runs that
 * NFA as a lazily built DFA: a DFA state is the sorted set of NFA threads
 * waiting on a character (or on the end, for EOL), transitions on ASCII
 * characters are cached in the state, other characters are stepped without
 * caching. The cache holds at most DFA_MAX_STATES states and DFA_MAX_POOL
 * thread entries and is flushed when full, so memory is bounded and each
 * character costs at most one NFA step (O(program size)). Those uncached
 * steps are counted over the regex's life and capped (HM_REGEX_MAX_WORK), so
 * the total work of one compiled regex (one request) is bounded too, and
 * they stop early when the thread's work is cancelled (cancel.h: the
 * request's client went away). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/cancel.h"
#include "base/error.h"
#include "base/regex.h"

#define MAXRUNE 0x1100FFu          /* 0x110000 + 255: invalid bytes */
#define MAX_DEPTH 200              /* group nesting */
#define DFA_MAX_STATES 1024
#define DFA_MAX_POOL 65536u        /* thread entries over all cached states */
#define HTAB 4096                  /* > 2 x DFA_MAX_STATES, power of two */

/* ---- character sets ---- */

typedef struct rset {
	uint32_t *r;                   /* lo, hi pairs, sorted and merged */
	size_t n, cap;                 /* pairs */
} rset;

static int rs_add(rset *s, uint32_t lo, uint32_t hi)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 4;
		uint32_t *nr = realloc(s->r, nc * 2 * sizeof *nr);
		if (!nr)
			return HM_ENOMEM;
		s->r = nr;
		s->cap = nc;
	}
	s->r[2 * s->n] = lo;
	s->r[2 * s->n + 1] = hi;
	s->n++;
	return HM_OK;
}

static int cmp_pair(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static void rs_norm(rset *s)
{
	if (!s->n)
		return;
	qsort(s->r, s->n, 2 * sizeof *s->r, cmp_pair);
	size_t o = 0;
	for (size_t i = 1; i < s->n; i++) {
		if (s->r[2 * i] <= s->r[2 * o + 1] + 1) {
			if (s->r[2 * i + 1] > s->r[2 * o + 1])
				s->r[2 * o + 1] = s->r[2 * i + 1];
		} else {
			o++;
			s->r[2 * o] = s->r[2 * i];
			s->r[2 * o + 1] = s->r[2 * i + 1];
		}
	}
	s->n = o + 1;
}

/* Complement over [0, MAXRUNE]; s must be normalised. */
static int rs_negate(rset *s)
{
	rset t = {0};
	uint32_t next = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (s->r[2 * i] > next && rs_add(&t, next, s->r[2 * i] - 1))
			goto oom;
		next = s->r[2 * i + 1] + 1;
	}
	if (next <= MAXRUNE && rs_add(&t, next, MAXRUNE))
		goto oom;
	free(s->r);
	*s = t;
	return HM_OK;
oom:
	free(t.r);
	return HM_ENOMEM;
}

/* Add the other ASCII case of every letter in s. */
static int rs_fold(rset *s)
{
	size_t n = s->n;
	for (size_t i = 0; i < n; i++) {
		uint32_t lo = s->r[2 * i], hi = s->r[2 * i + 1];
		uint32_t a = lo > 'a' ? lo : 'a', b = hi < 'z' ? hi : 'z';
		if (a <= b && rs_add(s, a - 32, b - 32))
			return HM_ENOMEM;
		a = lo > 'A' ? lo : 'A', b = hi < 'Z' ? hi : 'Z';
		if (a <= b && rs_add(s, a + 32, b + 32))
			return HM_ENOMEM;
	}
	rs_norm(s);
	return HM_OK;
}

/* ---- parse tree ---- */

enum { N_EMPTY, N_SET, N_CAT, N_ALT, N_REP, N_BOL, N_EOL };

typedef struct node {
	int type;
	int kid, next;                 /* first child, next sibling (-1 = none) */
	int min, max;                  /* N_REP; max -1 = unbounded */
	int set;                       /* N_SET: index into sets */
} node;

typedef struct parser {
	const unsigned char *p, *end;
	node *n;
	size_t nn, capn;
	rset *sets;
	size_t nsets, capsets;
	int depth;
	const char *err;               /* static message */
} parser;

static int new_node(parser *ps, int type)
{
	if (ps->nn == ps->capn) {
		size_t nc = ps->capn ? ps->capn * 2 : 32;
		node *nn = realloc(ps->n, nc * sizeof *nn);
		if (!nn) {
			ps->err = "out of memory";
			return -1;
		}
		ps->n = nn;
		ps->capn = nc;
	}
	node *x = &ps->n[ps->nn];
	memset(x, 0, sizeof *x);
	x->type = type;
	x->kid = x->next = -1;
	return (int)ps->nn++;
}

/* A set node taking ownership of *s. */
static int set_node(parser *ps, rset *s, int fold)
{
	if (fold && rs_fold(s))
		goto oom;
	if (ps->nsets == ps->capsets) {
		size_t nc = ps->capsets ? ps->capsets * 2 : 16;
		rset *ns = realloc(ps->sets, nc * sizeof *ns);
		if (!ns)
			goto oom;
		ps->sets = ns;
		ps->capsets = nc;
	}
	int id = new_node(ps, N_SET);
	if (id < 0)
		goto oom;
	ps->n[id].set = (int)ps->nsets;
	ps->sets[ps->nsets++] = *s;
	return id;
oom:
	free(s->r);
	ps->err = "out of memory";
	return -1;
}

/* One UTF-8 character from p (an invalid byte is 0x110000 + byte). */
static size_t utf8(const unsigned char *p, const unsigned char *end, uint32_t *r)
{
	unsigned c = p[0];
	size_t need;
	uint32_t v, min;
	if (c < 0x80) {
		*r = c;
		return 1;
	} else if (c >= 0xC2 && c <= 0xDF) {
		need = 1, v = c & 0x1F, min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 2, v = c & 0x0F, min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 3, v = c & 0x07, min = 0x10000;
	} else {
		goto bad;
	}
	if ((size_t)(end - p) <= need)
		goto bad;
	for (size_t i = 1; i <= need; i++) {
		if ((p[i] & 0xC0) != 0x80)
			goto bad;
		v = v << 6 | (p[i] & 0x3F);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		goto bad;
	*r = v;
	return need + 1;
bad:
	*r = 0x110000u + c;
	return 1;
}

static int add_named(rset *s, char name, int *neg)
{
	int rc = 0;
	*neg = name == 'D' || name == 'W' || name == 'S';
	switch (name | 0x20) {
	case 'd': rc = rs_add(s, '0', '9'); break;
	case 'w':
		rc = rs_add(s, '0', '9') | rs_add(s, 'A', 'Z') | rs_add(s, 'a', 'z') |
		     rs_add(s, '_', '_');
		break;
	case 's':
		rc = rs_add(s, '\t', '\n') | rs_add(s, '\f', '\r') | rs_add(s, ' ', ' ');
		break;
	}
	return rc;
}

/* The character after a backslash that stands for one character, or -1. */
static int64_t escape_char(parser *ps)
{
	unsigned c = *ps->p;
	switch (c) {
	case 't': ps->p++; return '\t';
	case 'n': ps->p++; return '\n';
	case 'r': ps->p++; return '\r';
	case 'f': ps->p++; return '\f';
	case 'v': ps->p++; return '\v';
	case 'x': {
		uint32_t v = 0;
		int k = 0;
		ps->p++;
		while (k < 2 && ps->p < ps->end) {
			unsigned h = *ps->p;
			int d = h >= '0' && h <= '9' ? (int)h - '0' :
				(h | 0x20) >= 'a' && (h | 0x20) <= 'f' ? (int)(h | 0x20) - 'a' + 10 : -1;
			if (d < 0)
				break;
			v = v * 16 + (uint32_t)d;
			ps->p++, k++;
		}
		if (k != 2) {
			ps->err = "\\x needs two hex digits";
			return -2;
		}
		return v;
	}
	}
	if (c < 0x80 && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && !(c >= '0' && c <= '9')) {
		ps->p++;
		return c;
	}
	return -1;
}

static const struct {
	const char *name;
	uint32_t r[8];                 /* up to 4 ranges, 0-terminated pairs */
} posix_classes[] = {
	{"alnum", {'0', '9', 'A', 'Z', 'a', 'z'}},
	{"alpha", {'A', 'Z', 'a', 'z'}},
	{"ascii", {1, 0x7F}},          /* 0 added below */
	{"blank", {'\t', '\t', ' ', ' '}},
	{"cntrl", {1, 0x1F, 0x7F, 0x7F}},
	{"digit", {'0', '9'}},
	{"graph", {'!', '~'}},
	{"lower", {'a', 'z'}},
	{"print", {' ', '~'}},
	{"punct", {'!', '/', ':', '@', '[', '`', '{', '~'}},
	{"space", {'\t', '\r', ' ', ' '}},
	{"upper", {'A', 'Z'}},
	{"word", {'0', '9', 'A', 'Z', 'a', 'z', '_', '_'}},
	{"xdigit", {'0', '9', 'A', 'F', 'a', 'f'}},
};

static int parse_class(parser *ps, int fold)
{
	rset s = {0};
	int neg = 0, first = 1;
	if (ps->p < ps->end && *ps->p == '^')
		neg = 1, ps->p++;
	for (;;) {
		if (ps->p >= ps->end) {
			ps->err = "missing ]";
			goto fail;
		}
		if (*ps->p == ']' && !first)
			break;
		first = 0;
		if (ps->p + 1 < ps->end && ps->p[0] == '[' && ps->p[1] == ':') {
			const unsigned char *q = ps->p + 2;
			int cneg = q < ps->end && *q == '^';
			q += cneg;
			const unsigned char *e = q;
			while (e + 1 < ps->end && !(e[0] == ':' && e[1] == ']'))
				e++;
			if (e + 1 >= ps->end) {
				ps->err = "bad [:class:]";
				goto fail;
			}
			size_t i, k = (size_t)(e - q);
			for (i = 0; i < sizeof posix_classes / sizeof *posix_classes; i++)
				if (strlen(posix_classes[i].name) == k &&
				    !memcmp(posix_classes[i].name, q, k))
					break;
			if (i == sizeof posix_classes / sizeof *posix_classes) {
				ps->err = "unknown [:class:] name";
				goto fail;
			}
			rset t = {0};
			int rc = i == 2 ? rs_add(&t, 0, 0) : 0;
			for (int j = 0; j < 8 && posix_classes[i].r[j + 1]; j += 2)
				rc |= rs_add(&t, posix_classes[i].r[j], posix_classes[i].r[j + 1]);
			rs_norm(&t);
			if (rc || (cneg && rs_negate(&t))) {
				free(t.r);
				goto oom;
			}
			for (size_t j = 0; j < t.n; j++)
				rc |= rs_add(&s, t.r[2 * j], t.r[2 * j + 1]);
			free(t.r);
			if (rc)
				goto oom;
			ps->p = e + 2;
			if (ps->p + 1 < ps->end && ps->p[0] == '-' && ps->p[1] != ']') {
				ps->err = "bad character range in [...]";
				goto fail;
			}
			continue;
		}
		uint32_t lo;
		if (*ps->p == '\\') {
			ps->p++;
			if (ps->p >= ps->end) {
				ps->err = "trailing \\";
				goto fail;
			}
			unsigned c = *ps->p;
			if (c == 'd' || c == 'w' || c == 's' || c == 'D' || c == 'W' || c == 'S') {
				rset t = {0};
				int tneg, rc = add_named(&t, (char)c, &tneg);
				rs_norm(&t);
				if (rc || (tneg && rs_negate(&t))) {
					free(t.r);
					goto oom;
				}
				for (size_t j = 0; j < t.n; j++)
					rc |= rs_add(&s, t.r[2 * j], t.r[2 * j + 1]);
				free(t.r);
				if (rc)
					goto oom;
				ps->p++;
				if (ps->p + 1 < ps->end && ps->p[0] == '-' && ps->p[1] != ']') {
					ps->err = "bad character range in [...]";
					goto fail;
				}
				continue;
			}
			int64_t e = escape_char(ps);
			if (e == -2)
				goto fail;
			if (e < 0) {
				ps->err = "unsupported escape in [...]";
				goto fail;
			}
			lo = (uint32_t)e;
		} else {
			ps->p += utf8(ps->p, ps->end, &lo);
		}
		uint32_t hi = lo;
		if (ps->p + 1 < ps->end && ps->p[0] == '-' && ps->p[1] != ']') {
			ps->p++;
			if (*ps->p == '\\') {
				ps->p++;
				int64_t e = ps->p < ps->end ? escape_char(ps) : -1;
				if (e == -2)
					goto fail;
				if (e < 0) {
					ps->err = "bad range end in [...]";
					goto fail;
				}
				hi = (uint32_t)e;
			} else if (*ps->p == '[' && ps->p + 1 < ps->end && ps->p[1] == ':') {
				ps->err = "bad range end in [...]";
				goto fail;
			} else {
				ps->p += utf8(ps->p, ps->end, &hi);
			}
			if (hi < lo) {
				ps->err = "bad character range in [...]";
				goto fail;
			}
		}
		if (rs_add(&s, lo, hi))
			goto oom;
	}
	ps->p++;   /* ] */
	rs_norm(&s);
	if (fold && rs_fold(&s))
		goto oom;
	if (neg && rs_negate(&s))
		goto oom;
	return set_node(ps, &s, 0);
oom:
	ps->err = "out of memory";
fail:
	free(s.r);
	return -1;
}

static int parse_alt(parser *ps, int fold);

/* {n}, {n,}, {n,m} at p: 1 and the counts, 0 when not a repetition (then
 * '{' is a literal), -1 on a count over the limit. */
static int parse_braces(parser *ps, int *min, int *max)
{
	const unsigned char *q = ps->p + 1;
	long a = 0, b;
	if (q >= ps->end || *q < '0' || *q > '9')
		return 0;
	for (; q < ps->end && *q >= '0' && *q <= '9'; q++)
		if (a < 100000)
			a = a * 10 + (*q - '0');
	b = a;
	if (q < ps->end && *q == ',') {
		q++;
		if (q < ps->end && *q >= '0' && *q <= '9') {
			b = 0;
			for (; q < ps->end && *q >= '0' && *q <= '9'; q++)
				if (b < 100000)
					b = b * 10 + (*q - '0');
		} else {
			b = -1;
		}
	}
	if (q >= ps->end || *q != '}')
		return 0;
	if (a > HM_REGEX_MAX_REPEAT || b > HM_REGEX_MAX_REPEAT) {
		ps->err = "repetition count over 1000";
		return -1;
	}
	if (b >= 0 && b < a) {
		ps->err = "bad repetition {n,m} with m < n";
		return -1;
	}
	*min = (int)a;
	*max = (int)b;
	ps->p = q + 1;
	return 1;
}

static int parse_atom(parser *ps, int *fold)
{
	unsigned c = *ps->p;
	rset s = {0};
	if (c == '(') {
		ps->p++;
		int gfold = *fold;
		if (ps->p < ps->end && *ps->p == '?') {
			/* (?:...), (?flags), (?flags:...) with flags from "is-" */
			ps->p++;
			int on = 1, f = gfold;
			while (ps->p < ps->end && *ps->p != ')' && *ps->p != ':') {
				if (*ps->p == 'i')
					f = on;
				else if (*ps->p == '-')
					on = 0;
				else if (*ps->p != 's') {
					ps->err = "unsupported (?...) group";
					return -1;
				}
				ps->p++;
			}
			if (ps->p >= ps->end) {
				ps->err = "missing )";
				return -1;
			}
			if (*ps->p++ == ')') {
				*fold = f;   /* for the rest of the enclosing group */
				return new_node(ps, N_EMPTY);
			}
			gfold = f;
		}
		if (++ps->depth > MAX_DEPTH) {
			ps->err = "groups nested too deeply";
			return -1;
		}
		int id = parse_alt(ps, gfold);
		ps->depth--;
		if (id < 0)
			return -1;
		if (ps->p >= ps->end || *ps->p != ')') {
			ps->err = "missing )";
			return -1;
		}
		ps->p++;
		return id;
	}
	if (c == '[') {
		ps->p++;
		return parse_class(ps, *fold);
	}
	if (c == '.') {
		ps->p++;
		if (rs_add(&s, 0, MAXRUNE)) {
			ps->err = "out of memory";
			return -1;
		}
		return set_node(ps, &s, 0);
	}
	if (c == '^' || c == '$') {
		ps->p++;
		return new_node(ps, c == '^' ? N_BOL : N_EOL);
	}
	if (c == '*' || c == '+' || c == '?') {
		ps->err = "repetition operator without an operand";
		return -1;
	}
	if (c == ')') {
		ps->err = "unmatched )";
		return -1;
	}
	uint32_t r;
	if (c == '\\') {
		ps->p++;
		if (ps->p >= ps->end) {
			ps->err = "trailing \\";
			return -1;
		}
		unsigned e = *ps->p;
		if (e == 'd' || e == 'w' || e == 's' || e == 'D' || e == 'W' || e == 'S') {
			int neg;
			ps->p++;
			if (add_named(&s, (char)e, &neg)) {
				free(s.r);
				ps->err = "out of memory";
				return -1;
			}
			rs_norm(&s);
			if (neg && rs_negate(&s)) {
				free(s.r);
				ps->err = "out of memory";
				return -1;
			}
			return set_node(ps, &s, 0);
		}
		int64_t v = escape_char(ps);
		if (v == -2)
			return -1;
		if (v < 0) {
			ps->err = "unsupported escape (backreferences, \\b and the like are not "
				  "supported)";
			return -1;
		}
		r = (uint32_t)v;
	} else {
		ps->p += utf8(ps->p, ps->end, &r);
	}
	if (rs_add(&s, r, r)) {
		ps->err = "out of memory";
		return -1;
	}
	return set_node(ps, &s, *fold);
}

static int parse_cat(parser *ps, int *fold)
{
	int cat = new_node(ps, N_CAT), last = -1;
	if (cat < 0)
		return -1;
	while (ps->p < ps->end && *ps->p != '|' && *ps->p != ')') {
		int a = parse_atom(ps, fold);
		if (a < 0)
			return -1;
		int quantified = 0;
		for (;;) {
			int min, max;
			if (ps->p >= ps->end)
				break;
			unsigned q = *ps->p;
			if (q == '*' || q == '+' || q == '?') {
				min = q == '+';
				max = q == '?' ? 1 : -1;
				ps->p++;
			} else if (q == '{') {
				int r = parse_braces(ps, &min, &max);
				if (r < 0)
					return -1;
				if (!r)
					break;
			} else {
				break;
			}
			if (quantified) {
				ps->err = "repeated repetition operator (use a group)";
				return -1;
			}
			quantified = 1;
			if (ps->p < ps->end && *ps->p == '?')   /* lazy: same set of matches */
				ps->p++;
			int rep = new_node(ps, N_REP);
			if (rep < 0)
				return -1;
			ps->n[rep].kid = a;
			ps->n[rep].min = min;
			ps->n[rep].max = max;
			a = rep;
		}
		if (last < 0)
			ps->n[cat].kid = a;
		else
			ps->n[last].next = a;
		last = a;
	}
	return cat;
}

static int parse_alt(parser *ps, int fold)
{
	int alt = new_node(ps, N_ALT), last = -1;
	if (alt < 0)
		return -1;
	for (;;) {
		int c = parse_cat(ps, &fold);
		if (c < 0)
			return -1;
		if (last < 0)
			ps->n[alt].kid = c;
		else
			ps->n[last].next = c;
		last = c;
		if (ps->p < ps->end && *ps->p == '|')
			ps->p++;
		else
			return alt;
	}
}

/* ---- program ---- */

enum { I_SET, I_MATCH, I_JMP, I_SPLIT, I_BOL, I_EOL };

typedef struct inst {
	uint32_t op, x, y;
} inst;

typedef struct cset {
	uint64_t ascii[2];
	const uint32_t *r;             /* ranges (in the regex's range pool) */
	size_t n;
} cset;

typedef struct dstate {
	uint32_t off, n;               /* threads: pool[off .. off+n) */
	int32_t next[128];             /* cached transition on ASCII, -1 unknown */
	int8_t acc;                    /* accepting at the end (not at start), -1 unknown */
} dstate;

struct hm_regex {
	inst *prog;
	uint32_t ninst;
	cset *sets;
	uint32_t *ranges;
	/* DFA cache */
	dstate *st;
	uint32_t nst, capst;
	uint32_t *pool;
	size_t npool, cappool;
	int32_t htab[HTAB];
	int32_t start;
	uint32_t flushes;
	uint64_t work;                 /* NFA threads stepped outside the cache */
	/* scratch, ninst entries each (stack 2 x ninst + 2) */
	uint32_t *mark, gen, *stack, *t1, *t2;
};

#define SIZE_CAP (1u << 30)

static uint64_t sat(uint64_t v)
{
	return v > SIZE_CAP ? SIZE_CAP : v;
}

/* Instructions node i compiles to (saturating). */
static uint64_t prog_size(const parser *ps, int i)
{
	const node *x = &ps->n[i];
	uint64_t s = 0, k = 0;
	switch (x->type) {
	case N_EMPTY: return 0;
	case N_SET: case N_BOL: case N_EOL: return 1;
	case N_CAT:
		for (int c = x->kid; c >= 0; c = ps->n[c].next)
			s = sat(s + prog_size(ps, c));
		return s;
	case N_ALT:
		for (int c = x->kid; c >= 0; c = ps->n[c].next, k++)
			s = sat(s + prog_size(ps, c));
		return sat(s + 2 * (k - 1));
	case N_REP:
		s = prog_size(ps, x->kid);
		if (x->max < 0)
			return sat(sat(s * (uint64_t)x->min) + s + 2);
		return sat(sat(s * (uint64_t)x->min) + (s + 1) * (uint64_t)(x->max - x->min));
	}
	return 0;
}

static void emit(const parser *ps, int i, inst *p, uint32_t *pc)
{
	const node *x = &ps->n[i];
	switch (x->type) {
	case N_EMPTY: return;
	case N_SET: p[(*pc)++] = (inst){I_SET, (uint32_t)x->set, 0}; return;
	case N_BOL: p[(*pc)++] = (inst){I_BOL, 0, 0}; return;
	case N_EOL: p[(*pc)++] = (inst){I_EOL, 0, 0}; return;
	case N_CAT:
		for (int c = x->kid; c >= 0; c = ps->n[c].next)
			emit(ps, c, p, pc);
		return;
	case N_ALT: {
		/* SPLIT a, L1; a; JMP end; L1: SPLIT b, L2; b; JMP end; L2: c; end: */
		uint32_t jmps = UINT32_MAX;   /* chain of JMPs to patch, through .x */
		for (int c = x->kid; c >= 0; c = ps->n[c].next) {
			if (ps->n[c].next < 0) {
				emit(ps, c, p, pc);
				break;
			}
			uint32_t sp = (*pc)++;
			emit(ps, c, p, pc);
			p[*pc] = (inst){I_JMP, jmps, 0};
			jmps = (*pc)++;
			p[sp] = (inst){I_SPLIT, sp + 1, *pc};
		}
		while (jmps != UINT32_MAX) {
			uint32_t nx = p[jmps].x;
			p[jmps].x = *pc;
			jmps = nx;
		}
		return;
	}
	case N_REP: {
		for (int k = 0; k < x->min; k++)
			emit(ps, x->kid, p, pc);
		if (x->max < 0) {
			uint32_t sp = (*pc)++;
			emit(ps, x->kid, p, pc);
			p[*pc] = (inst){I_JMP, sp, 0};
			(*pc)++;
			p[sp] = (inst){I_SPLIT, sp + 1, *pc};
			return;
		}
		uint32_t splits = UINT32_MAX;   /* chain through .y */
		for (int k = x->min; k < x->max; k++) {
			uint32_t sp = (*pc)++;
			p[sp] = (inst){I_SPLIT, sp + 1, splits};
			splits = sp;
			emit(ps, x->kid, p, pc);
		}
		while (splits != UINT32_MAX) {
			uint32_t nx = p[splits].y;
			p[splits].y = *pc;
			splits = nx;
		}
		return;
	}
	}
}

void hm_regex_free(hm_regex *re)
{
	if (!re)
		return;
	free(re->prog);
	free(re->sets);
	free(re->ranges);
	free(re->st);
	free(re->pool);
	free(re->mark);
	free(re->stack);
	free(re->t1);
	free(re->t2);
	free(re);
}

static void dfa_flush(hm_regex *re)
{
	re->nst = 0;
	re->npool = 0;
	re->start = -1;
	re->flushes++;
	memset(re->htab, 0xFF, sizeof re->htab);
}

int hm_regex_compile(const char *pattern, hm_regex **out)
{
	*out = NULL;
	size_t plen = strlen(pattern);
	if (plen > HM_REGEX_MAX_PATTERN)
		return hm_error(HM_EINVAL, "regex longer than %d bytes", HM_REGEX_MAX_PATTERN);
	parser ps = {.p = (const unsigned char *)pattern,
		     .end = (const unsigned char *)pattern + plen};
	hm_regex *re = NULL;
	int rc, root = parse_alt(&ps, 0);
	if (root >= 0 && ps.p < ps.end) {
		ps.err = "unmatched )";
		root = -1;
	}
	if (root < 0) {
		rc = strcmp(ps.err, "out of memory") ?
			hm_error(HM_EINVAL, "bad regex '%.64s': %s", pattern, ps.err) :
			hm_error(HM_ENOMEM, "out of memory");
		goto done;
	}
	uint64_t size = prog_size(&ps, root) + 1;
	if (size > HM_REGEX_MAX_INSTS) {
		rc = hm_error(HM_EINVAL, "regex too complex: '%.64s' expands to %s%llu "
			      "instructions (at most %d)", pattern, size >= SIZE_CAP ? "over " : "",
			      (unsigned long long)size, HM_REGEX_MAX_INSTS);
		goto done;
	}
	size_t nr = 0;
	for (size_t i = 0; i < ps.nsets; i++)
		nr += ps.sets[i].n;
	re = calloc(1, sizeof *re);
	if (!re)
		goto oom;
	re->ninst = (uint32_t)size;
	re->prog = calloc(size, sizeof *re->prog);
	re->sets = calloc(ps.nsets + 1, sizeof *re->sets);
	re->ranges = malloc((2 * nr + 1) * sizeof *re->ranges);
	re->mark = calloc(size, sizeof *re->mark);
	re->stack = malloc((2 * size + 2) * sizeof *re->stack);
	re->t1 = malloc(size * sizeof *re->t1);
	re->t2 = malloc(size * sizeof *re->t2);
	re->cappool = DFA_MAX_POOL > 4 * size ? DFA_MAX_POOL : 4 * size;
	re->pool = malloc(re->cappool * sizeof *re->pool);
	if (!re->prog || !re->sets || !re->ranges || !re->mark || !re->stack || !re->t1 ||
	    !re->t2 || !re->pool)
		goto oom;
	size_t ro = 0;
	for (size_t i = 0; i < ps.nsets; i++) {
		cset *c = &re->sets[i];
		c->r = re->ranges + ro;
		c->n = ps.sets[i].n;
		for (size_t j = 0; j < c->n; j++) {
			uint32_t lo = ps.sets[i].r[2 * j], hi = ps.sets[i].r[2 * j + 1];
			re->ranges[ro++] = lo;
			re->ranges[ro++] = hi;
			for (uint32_t ch = lo; ch <= hi && ch < 128; ch++)
				c->ascii[ch >> 6] |= 1ull << (ch & 63);
		}
	}
	uint32_t pc = 0;
	emit(&ps, root, re->prog, &pc);
	re->prog[pc++] = (inst){I_MATCH, 0, 0};
	re->ninst = pc;
	dfa_flush(re);
	*out = re;
	re = NULL;
	rc = HM_OK;
	goto done;
oom:
	rc = hm_error(HM_ENOMEM, "out of memory");
done:
	hm_regex_free(re);
	for (size_t i = 0; i < ps.nsets; i++)
		free(ps.sets[i].r);
	free(ps.sets);
	free(ps.n);
	return rc;
}

/* ---- matching ---- */

static int set_has(const cset *c, uint32_t ch)
{
	if (ch < 128)
		return (c->ascii[ch >> 6] >> (ch & 63)) & 1;
	size_t lo = 0, hi = c->n;
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (ch < c->r[2 * m])
			hi = m;
		else if (ch > c->r[2 * m + 1])
			lo = m + 1;
		else
			return 1;
	}
	return 0;
}

static void new_gen(hm_regex *re)
{
	if (++re->gen == 0) {
		memset(re->mark, 0, re->ninst * sizeof *re->mark);
		re->gen = 1;
	}
}

/* Add the threads reachable from pc without consuming to out[*n]. */
static void closure(hm_regex *re, uint32_t pc, int at_begin, int at_end, uint32_t *out,
		    uint32_t *n)
{
	size_t sp = 0;
	re->stack[sp++] = pc;
	while (sp) {
		pc = re->stack[--sp];
		if (re->mark[pc] == re->gen)
			continue;
		re->mark[pc] = re->gen;
		const inst *in = &re->prog[pc];
		switch (in->op) {
		case I_JMP: re->stack[sp++] = in->x; break;
		case I_SPLIT:
			re->stack[sp++] = in->y;
			re->stack[sp++] = in->x;
			break;
		case I_BOL:
			if (at_begin)
				re->stack[sp++] = pc + 1;
			break;
		case I_EOL:
			if (at_end)
				re->stack[sp++] = pc + 1;
			else
				out[(*n)++] = pc;
			break;
		default:
			out[(*n)++] = pc;
		}
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The cached state for threads t[0..n) (sorted), added when new. */
static int32_t dfa_state(hm_regex *re, const uint32_t *t, uint32_t n)
{
	uint32_t h = 2166136261u;
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ t[i]) * 16777619u;
	uint32_t slot = h & (HTAB - 1);
	for (;; slot = (slot + 1) & (HTAB - 1)) {
		int32_t id = re->htab[slot];
		if (id < 0)
			break;
		const dstate *d = &re->st[id];
		if (d->n == n && !memcmp(re->pool + d->off, t, n * sizeof *t))
			return id;
	}
	if (re->nst == DFA_MAX_STATES || re->npool + n > re->cappool) {
		dfa_flush(re);
		slot = h & (HTAB - 1);   /* the table is empty now */
	}
	if (re->nst == re->capst) {
		uint32_t nc = re->capst ? re->capst * 2 : 8;
		dstate *ns = realloc(re->st, nc * sizeof *ns);
		if (!ns)
			return -1;
		re->st = ns;
		re->capst = nc;
	}
	dstate *d = &re->st[re->nst];
	d->off = (uint32_t)re->npool;
	d->n = n;
	memcpy(re->pool + re->npool, t, n * sizeof *t);
	re->npool += n;
	memset(d->next, 0xFF, sizeof d->next);
	d->acc = -1;
	re->htab[slot] = (int32_t)re->nst;
	return (int32_t)re->nst++;
}

/* Whether threads t[0..n) reach MATCH at the end of the text. */
static int accepts(hm_regex *re, const uint32_t *t, uint32_t n, int at_begin)
{
	new_gen(re);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t op = re->prog[t[i]].op;
		if (op == I_MATCH)
			return 1;
		if (op == I_EOL) {
			uint32_t k = 0;
			closure(re, t[i] + 1, at_begin, 1, re->t2, &k);
			for (uint32_t j = 0; j < k; j++)
				if (re->prog[re->t2[j]].op == I_MATCH)
					return 1;
		}
	}
	return 0;
}

int hm_regex_match(hm_regex *re, const char *text, size_t len)
{
	const unsigned char *p = (const unsigned char *)text, *end = p + len;
	uint32_t n = 0;
	if (!len) {
		new_gen(re);
		closure(re, 0, 1, 0, re->t1, &n);
		return accepts(re, re->t1, n, 1);
	}
	if (re->start < 0) {
		new_gen(re);
		closure(re, 0, 1, 0, re->t1, &n);
		qsort(re->t1, n, sizeof *re->t1, cmp_u32);
		re->start = dfa_state(re, re->t1, n);
		if (re->start < 0)
			return 0;   /* out of memory: no match */
	}
	int32_t cur = re->start;
	while (p < end) {
		if (!re->st[cur].n)
			return 0;
		uint32_t ch;
		if (*p < 0x80 && re->st[cur].next[*p] >= 0) {
			cur = re->st[cur].next[*p++];
			continue;
		}
		p += utf8(p, end, &ch);
		/* step: threads of cur that take ch, closed (copied out first: the
		 * cache may be flushed when the new state is added) */
		const dstate *d = &re->st[cur];
		n = 0;
		new_gen(re);
		for (uint32_t i = 0; i < d->n; i++) {
			uint32_t pc = re->pool[d->off + i];
			const inst *in = &re->prog[pc];
			if (in->op == I_SET && set_has(&re->sets[in->x], ch))
				closure(re, pc + 1, 0, 0, re->t1, &n);
		}
		uint64_t before = re->work;
		re->work += d->n + n + 8;   /* threads in and out, plus the lookup */
		if ((re->work >> 16) != (before >> 16) && hm_cancelled())
			return hm_error(HM_EINVAL, "request cancelled (the client went away)");
		if (re->work > HM_REGEX_MAX_WORK)
			return hm_error(HM_EINVAL, "regex too expensive over these label values "
					"(simplify it or narrow the selection)");
		qsort(re->t1, n, sizeof *re->t1, cmp_u32);
		uint32_t fl = re->flushes;
		int32_t nx = dfa_state(re, re->t1, n);
		if (nx < 0)
			return 0;
		if (ch < 0x80 && fl == re->flushes)
			re->st[cur].next[ch] = nx;
		cur = nx;
	}
	dstate *d = &re->st[cur];
	if (d->acc < 0)
		d->acc = (int8_t)accepts(re, re->pool + d->off, d->n, 0);
	return d->acc;
}
