/* store.c - the public face of the profile store (store.h).
 *
 * hm_store_open picks an engine (engine.h) by the location string
 * (postgres:// or postgresql:// URLs -> store_pg.c, anything else -> SQLite)
 * and sets up the state the engines share; the engine-independent write
 * path is in write.c. Here: label validation and canonical ordering before
 * a put, a request's puts (hm_store_put_many: all labels checked, then the
 * new series created all or none, then the profiles), Pyroscope-style
 * selector parsing and
 * matching (series are few, so matching happens in memory over the engine's
 * series list; regexes that glibc's regcomp would blow up on are refused
 * first). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "base/textesc.h"
#include "store/engine.h"
#include "store/store.h"

static void free_shared(hm_store *st)
{
	hm_idcache *caches[] = {&st->c_str, &st->c_frame, &st->c_stack, &st->c_series};
	for (int i = 0; i < 4; i++)
		hm_idcache_free(caches[i]);
	hm_fairlock_destroy(&st->wmu);
	free(st);
}

int hm_store_open(const char *where, const hm_store_opts *o, hm_store **out)
{
	const hm_store_engine *eng = &hm_store_sqlite_engine;
	if (!strncmp(where, "sqlite:", 7))
		where += 7;
	else if (!strncmp(where, "postgres://", 11) || !strncmp(where, "postgresql://", 13))
		eng = &hm_store_pg_engine;  /* libpq takes the whole URL */
	else if (!strncmp(where, "postgres:", 9) || !strncmp(where, "postgresql:", 11))
		return hm_error(HM_EINVAL, "store: a PostgreSQL location is a URL:"
				" postgres://[user@]host[:port]/db (or postgresql:///db?host=/socket/dir)");
	if (!*where)
		return hm_error(HM_EINVAL, "store: empty data location");
	return hm_store_open_engine(eng, where, o, out);
}

int hm_store_open_engine(const hm_store_engine *eng, const char *where,
			 const hm_store_opts *o, hm_store **out)
{
	hm_store *st = calloc(1, sizeof *st);
	if (!st)
		return hm_error(HM_ENOMEM, "out of memory");
	st->eng = eng;
	if (o)
		st->opts = *o;
	if (!st->opts.max_series)
		st->opts.max_series = 100000;
	if (st->opts.id_cache_bytes <= 0)
		st->opts.id_cache_bytes = HM_STORE_CACHE_BYTES;
	hm_fairlock_init(&st->wmu);
	hm_idcache *caches[] = {&st->c_str, &st->c_frame, &st->c_stack, &st->c_series};
	for (int i = 0; i < 4; i++)
		hm_idcache_init(caches[i], (size_t)st->opts.id_cache_bytes);
	int rc = eng->open(st, where);
	if (rc < 0) {
		free_shared(st);
		return rc;
	}
	*out = st;
	return HM_OK;
}

void hm_store_close(hm_store *st)
{
	if (!st)
		return;
	st->eng->close(st);
	free_shared(st);
}

int hm_store_label_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > HM_STORE_MAX_NAME || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.')
			return 0;
	return 1;
}

static int label_cmp(const void *a, const void *b)
{
	return strcmp(((const hm_store_label *)a)->name, ((const hm_store_label *)b)->name);
}

/* Check type and labels; sorted copy of the labels into sorted. */
static int prepare(const char *type, const hm_store_label *labels, uint32_t n,
		   hm_store_label *sorted)
{
	if (!type || !hm_store_label_name_ok(type))
		return hm_error(HM_EINVAL, "bad profile type name");
	if (n > HM_STORE_MAX_LABELS)
		return hm_error(HM_EINVAL, "too many labels (%u, at most %d)", n,
				HM_STORE_MAX_LABELS);
	for (uint32_t i = 0; i < n; i++) {
		if (!labels[i].name || !hm_store_label_name_ok(labels[i].name))
			return hm_error(HM_EINVAL, "bad label name '%.64s'",
					labels[i].name ? labels[i].name : "");
		if (!labels[i].value || strlen(labels[i].value) > HM_STORE_MAX_VALUE)
			return hm_error(HM_EINVAL, "label '%s' value too long", labels[i].name);
		/* the query API answers in JSON, which cannot carry invalid UTF-8 */
		const char *v = labels[i].value;
		for (size_t k = 0, len = strlen(v), adv; k < len; k += adv)
			if (hm_utf8_decode(v + k, len - k, &adv) == 0xFFFD && adv == 1)
				return hm_error(HM_EINVAL, "label '%s' value is not valid UTF-8",
						labels[i].name);
		sorted[i] = labels[i];
	}
	qsort(sorted, n, sizeof *sorted, label_cmp);
	for (uint32_t i = 1; i < n; i++)
		if (!strcmp(sorted[i].name, sorted[i - 1].name))
			return hm_error(HM_EINVAL, "label '%s' given twice", sorted[i].name);
	return HM_OK;
}

static int64_t put_time(int64_t t_s, const hm_profile *p)
{
	if (t_s <= 0) {
		uint64_t start = hm_profile_meta_cget(p)->start_ns;
		t_s = start ? (int64_t)(start / 1000000000u) : (int64_t)time(NULL);
	}
	return t_s;
}

int hm_store_put(hm_store *st, const char *type, const hm_store_label *labels, uint32_t n,
		 int64_t t_s, const hm_profile *p)
{
	hm_store_label sorted[HM_STORE_MAX_LABELS];
	int rc = prepare(type, labels, n, sorted);
	if (rc < 0)
		return rc;
	return hm_store_write(st, type, sorted, n, put_time(t_s, p), p);
}

int hm_store_put_many(hm_store *st, const hm_store_put_req *v, size_t n)
{
	if (!n)
		return HM_OK;
	hm_store_label *lab = malloc(n * HM_STORE_MAX_LABELS * sizeof *lab);
	hm_store_put_req *s = malloc(n * sizeof *s);
	int rc = lab && s ? HM_OK : hm_error(HM_ENOMEM, "out of memory");
	for (size_t i = 0; rc == HM_OK && i < n; i++) {
		hm_store_label *l = lab + i * HM_STORE_MAX_LABELS;
		rc = prepare(v[i].type, v[i].labels, v[i].n, l);
		s[i] = v[i];
		s[i].labels = l;
		s[i].t_s = put_time(v[i].t_s, v[i].p);
	}
	if (rc == HM_OK)
		rc = hm_store_write_series(st, s, n);
	for (size_t i = 0; rc == HM_OK && i < n; i++)
		rc = hm_store_write(st, s[i].type, s[i].labels, s[i].n, s[i].t_s, s[i].p);
	free(lab);
	free(s);
	return rc;
}

int hm_store_series(hm_store *st, hm_series_list *out)
{
	memset(out, 0, sizeof *out);
	return st->eng->list_series(st, out);
}

void hm_series_list_free(hm_series_list *l)
{
	free(l->v);
	free(l->strbuf);
	memset(l, 0, sizeof *l);
}

const char *hm_series_label(const hm_series_info *s, const char *name)
{
	for (uint32_t i = 0; i < s->nlabels; i++)
		if (!strcmp(s->labels[i].name, name))
			return s->labels[i].value;
	return NULL;
}

int hm_store_match(hm_store *st, const hm_selector *sel, int64_t t0, int64_t t1,
		   int64_t **ids, size_t *n)
{
	hm_series_list l;
	int rc = hm_store_series(st, &l);
	if (rc < 0)
		return rc;
	*ids = malloc((l.n + 1) * sizeof **ids);
	*n = 0;
	if (!*ids) {
		hm_series_list_free(&l);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < l.n; i++) {
		const hm_series_info *s = &l.v[i];
		/* data in [t0, t1): a bucket starting at last_s covers up to +60 s */
		if (s->last_s + HM_STORE_COARSE_S <= t0 || s->first_s >= t1)
			continue;
		int hit = hm_selector_match(sel, s);
		if (hit < 0) {
			free(*ids);
			*ids = NULL;
			hm_series_list_free(&l);
			return hit;
		}
		if (hit)
			(*ids)[(*n)++] = s->id;
	}
	hm_series_list_free(&l);
	return HM_OK;
}

int hm_store_select(hm_store *st, const hm_selector *sel, int64_t t0, int64_t t1,
		    hm_profile **out)
{
	int64_t *ids;
	size_t n;
	int rc = hm_store_match(st, sel, t0, t1, &ids, &n);
	if (rc < 0)
		return rc;
	hm_profile *p = hm_profile_new(0);
	if (!p) {
		free(ids);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	hm_profile_meta *m = hm_profile_meta_get(p);
	m->start_ns = (uint64_t)(t0 > 0 ? t0 : 0) * 1000000000u;
	m->duration_ns = (uint64_t)(t1 > t0 ? t1 - t0 : 0) * 1000000000u;
	m->time_kind = sel->type && !strcmp(sel->type, "wall") ? HM_TIME_WALL : HM_TIME_CPU;
	rc = n ? st->eng->merge(st, ids, n, t0, t1, p) : HM_OK;
	free(ids);
	if (rc < 0) {
		hm_profile_free(p);
		return rc;
	}
	*out = p;
	return HM_OK;
}

int hm_store_timeseries(hm_store *st, const hm_selector *sel, int64_t t0, int64_t t1,
			int64_t step, int64_t *out, size_t nout)
{
	memset(out, 0, nout * sizeof *out);
	if (step <= 0)
		return hm_error(HM_EINVAL, "step must be positive");
	int64_t *ids;
	size_t n;
	int rc = hm_store_match(st, sel, t0, t1, &ids, &n);
	if (rc < 0)
		return rc;
	if (n)
		rc = st->eng->totals(st, ids, n, t0, t1, step, sel->value_kind, out, nout);
	free(ids);
	return rc;
}

int hm_store_totals(hm_store *st, const int64_t *series, size_t n, int64_t t0, int64_t t1,
		    int64_t step, int value_kind, int64_t *out, size_t nout)
{
	memset(out, 0, nout * sizeof *out);
	if (step <= 0)
		return hm_error(HM_EINVAL, "step must be positive");
	return n ? st->eng->totals(st, series, n, t0, t1, step, value_kind, out, nout) : HM_OK;
}

int hm_store_maintain(hm_store *st, int64_t now_s)
{
	return st->eng->maintain(st, now_s);
}

int hm_store_stats_get(hm_store *st, hm_store_stats *out)
{
	memset(out, 0, sizeof *out);
	int rc = st->eng->stats(st, out);
	hm_fairlock_lock(&st->wmu);
	out->cache_bytes = (int64_t)(hm_idcache_bytes(&st->c_str) + hm_idcache_bytes(&st->c_frame) +
				     hm_idcache_bytes(&st->c_stack) +
				     hm_idcache_bytes(&st->c_series));
	hm_fairlock_unlock(&st->wmu);
	return rc;
}

/* ---- selectors ---- */

void hm_selector_free(hm_selector *sel)
{
	free(sel->type);
	for (uint32_t i = 0; i < sel->n; i++) {
		free(sel->m[i].name);
		free(sel->m[i].value);
		hm_regex_free(sel->m[i].re);
	}
	memset(sel, 0, sizeof *sel);
}

int hm_selector_add(hm_selector *sel, const char *name, int op, const char *value)
{
	if (sel->n >= HM_STORE_MAX_MATCHERS)
		return hm_error(HM_EINVAL, "selector: too many matchers (at most %d)",
				HM_STORE_MAX_MATCHERS);
	if (!hm_store_label_name_ok(name))
		return hm_error(HM_EINVAL, "selector: bad label name '%.64s'", name);
	if (strlen(value) > HM_STORE_MAX_VALUE)
		return hm_error(HM_EINVAL, "selector: value too long");
	hm_matcher *m = &sel->m[sel->n];
	memset(m, 0, sizeof *m);
	m->op = op;
	if (op == HM_MATCH_RE || op == HM_MATCH_NRE) {
		int r = hm_regex_compile(value, &m->re);
		if (r < 0) {
			char msg[256];
			snprintf(msg, sizeof msg, "%s", hm_errmsg());
			return hm_error(r, "selector: %s", msg);
		}
	}
	m->name = strdup(name);
	m->value = strdup(value);
	if (!m->name || !m->value) {
		free(m->name);
		free(m->value);
		hm_regex_free(m->re);
		m->re = NULL;
		return hm_error(HM_ENOMEM, "out of memory");
	}
	sel->n++;
	return HM_OK;
}

/* "process_cpu:cpu:nanoseconds:cpu:nanoseconds" -> type + value kind. */
static int parse_type(hm_selector *sel, const char *s, size_t len)
{
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	while (len && isspace((unsigned char)*s))
		s++, len--;
	if (!len)
		return HM_OK;
	if (len > 5 * HM_STORE_MAX_NAME)
		return hm_error(HM_EINVAL, "selector: profile type too long");
	char buf[5 * HM_STORE_MAX_NAME + 1];
	memcpy(buf, s, len);
	buf[len] = 0;
	char *parts[5] = {0};
	int np = 0;
	for (char *tok = buf, *colon; tok && np < 5; tok = colon ? colon + 1 : NULL) {
		colon = strchr(tok, ':');
		if (colon)
			*colon = 0;
		parts[np++] = tok;
	}
	if (!hm_store_label_name_ok(parts[0]))
		return hm_error(HM_EINVAL, "selector: bad profile type '%.64s'", parts[0]);
	sel->type = strdup(parts[0]);
	if (!sel->type)
		return hm_error(HM_ENOMEM, "out of memory");
	sel->value_kind = np >= 3 && !strcmp(parts[2], "count") ? HM_VALUE_COUNT : HM_VALUE_NS;
	return HM_OK;
}

int hm_selector_parse(const char *text, hm_selector *sel)
{
	memset(sel, 0, sizeof *sel);
	const char *brace = strchr(text, '{');
	int rc = parse_type(sel, text, brace ? (size_t)(brace - text) : strlen(text));
	if (rc < 0 || !brace)
		goto out;
	const char *p = brace + 1;
	char name[HM_STORE_MAX_NAME + 1];
	char *value = malloc(HM_STORE_MAX_VALUE + 1);
	if (!value) {
		rc = hm_error(HM_ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		while (isspace((unsigned char)*p) || *p == ',')
			p++;
		if (*p == '}') {
			p++;
			break;
		}
		size_t nl = 0;
		while (isalnum((unsigned char)p[nl]) || p[nl] == '_' || p[nl] == '.')
			nl++;
		if (!nl || nl > HM_STORE_MAX_NAME) {
			rc = hm_error(HM_EINVAL, "selector: expected a label name at '%.20s'", p);
			break;
		}
		memcpy(name, p, nl);
		name[nl] = 0;
		p += nl;
		while (isspace((unsigned char)*p))
			p++;
		int op;
		if (p[0] == '=' && p[1] == '~')
			op = HM_MATCH_RE, p += 2;
		else if (p[0] == '!' && p[1] == '~')
			op = HM_MATCH_NRE, p += 2;
		else if (p[0] == '!' && p[1] == '=')
			op = HM_MATCH_NE, p += 2;
		else if (p[0] == '=')
			op = HM_MATCH_EQ, p += 1;
		else {
			rc = hm_error(HM_EINVAL, "selector: expected = != =~ !~ after '%s'", name);
			break;
		}
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '"' && *p != '\'') {
			rc = hm_error(HM_EINVAL, "selector: value of '%s' must be quoted", name);
			break;
		}
		char q = *p++;
		size_t vl = 0;
		while (*p && *p != q) {
			char c = *p++;
			if (c == '\\' && *p) {
				c = *p++;
				/* keep the escape for regexes so "\\." stays a literal dot */
				if ((op == HM_MATCH_RE || op == HM_MATCH_NRE) && c != q && c != '\\' &&
				    vl < HM_STORE_MAX_VALUE)
					value[vl++] = '\\';
			}
			if (vl >= HM_STORE_MAX_VALUE) {
				vl = HM_STORE_MAX_VALUE + 1;
				break;
			}
			value[vl++] = c;
		}
		if (vl > HM_STORE_MAX_VALUE || *p != q) {
			rc = hm_error(HM_EINVAL, "selector: value of '%s' unterminated or too long",
				      name);
			break;
		}
		p++;
		value[vl] = 0;
		rc = hm_selector_add(sel, name, op, value);
		if (rc < 0)
			break;
	}
	free(value);
	if (rc == HM_OK) {
		while (isspace((unsigned char)*p))
			p++;
		if (*p)
			rc = hm_error(HM_EINVAL, "selector: trailing text '%.20s'", p);
	}
out:
	if (rc < 0)
		hm_selector_free(sel);
	return rc;
}

int hm_selector_match(const hm_selector *sel, const hm_series_info *s)
{
	if (sel->type && strcmp(sel->type, s->type))
		return 0;
	for (uint32_t i = 0; i < sel->n; i++) {
		const hm_matcher *m = &sel->m[i];
		const char *v = hm_series_label(s, m->name);
		if (!v)
			v = "";
		int hit;
		if (m->op == HM_MATCH_EQ || m->op == HM_MATCH_NE)
			hit = !strcmp(v, m->value);
		else
			if ((hit = hm_regex_match(m->re, v, strlen(v))) < 0)
				return hit;   /* the regex's work cap */
		if (m->op == HM_MATCH_NE || m->op == HM_MATCH_NRE)
			hit = !hit;
		if (!hit)
			return 0;
	}
	return 1;
}
