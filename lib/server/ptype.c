/* ptype.c - profile type ids <-> store types; the ingest plan (ptype.h).
 *
 * The plan of a pprof: "cpu"/"wall" nanosecond values become "process_cpu"
 * and "wall" with the "samples" count beside them; every other sample type
 * becomes its own five-part type: the name from the sample type (memory for
 * alloc_* / inuse_* and Node's objects / space, which are in-use values,
 * goroutine, mutex or block for contentions / delay) or from the
 * application name's suffix, the period type from the pprof (space:bytes
 * for memory, whatever the pprof says). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "server/ptype.h"

static int legacy2(const char *t)
{
	return !strcmp(t, "process_cpu") || !strcmp(t, "wall");
}

static void setp(char *dst, const char *s, size_t n)
{
	if (n > HM_STORE_MAX_NAME)
		n = HM_STORE_MAX_NAME;
	memcpy(dst, s, n);
	dst[n] = 0;
}

static void fill(hm_ptype *p, const char *name, const char *st, const char *su, const char *pt,
		 const char *pu)
{
	setp(p->name, name, strlen(name));
	setp(p->sample_type, st, strlen(st));
	setp(p->sample_unit, su, strlen(su));
	setp(p->period_type, pt, strlen(pt));
	setp(p->period_unit, pu, strlen(pu));
	snprintf(p->id, sizeof p->id, "%s:%s:%s:%s:%s", p->name, p->sample_type, p->sample_unit,
		 p->period_type, p->period_unit);
	p->value_kind = !strcmp(su, "count") ? HM_VALUE_COUNT : HM_VALUE_NS;
}

int hm_ptype_ids(const char *t, hm_ptype out[2])
{
	const char *d[5];
	size_t l[5];
	int np = 0;
	for (const char *s = t; np < 5;) {
		const char *dot = strchr(s, '.');
		d[np] = s;
		l[np++] = dot ? (size_t)(dot - s) : strlen(s);
		if (!dot)
			break;
		s = dot + 1;
	}
	if (np == 5 && !strchr(d[4], '.') && !legacy2(t)) {
		char b[5][HM_STORE_MAX_NAME + 1];
		for (int i = 0; i < 5; i++)
			setp(b[i], d[i], l[i]);
		fill(&out[0], b[0], b[1], b[2], b[3], b[4]);
		return 1;
	}
	const char *st = !strcmp(t, "process_cpu") ? "cpu" : t;
	fill(&out[0], t, st, "nanoseconds", st, "nanoseconds");
	fill(&out[1], t, "samples", "count", st, "nanoseconds");
	return 2;
}

/* A part of a five-part store type: [A-Za-z0-9_] only. */
static void part(char *dst, size_t cap, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < cap; i++)
		dst[o++] = isalnum((unsigned char)s[i]) || s[i] == '_' ? s[i] : '_';
	if (!o && cap > 7)
		o = (size_t)snprintf(dst, cap, "unknown");
	dst[o] = 0;
}

static void join5(char *out, size_t cap, const char *const v[5])
{
	char b[5][HM_STORE_MAX_NAME / 5 + 1];
	for (int i = 0; i < 5; i++)
		part(b[i], sizeof b[i], v[i], strlen(v[i]));
	snprintf(out, cap, "%s%s.%s.%s.%s.%s", isdigit((unsigned char)b[0][0]) ? "_" : "", b[0],
		 b[1], b[2], b[3], b[4]);
}

int hm_ptype_from_id(const char *id, size_t len, char *out, size_t cap, int *vk)
{
	while (len && isspace((unsigned char)id[len - 1]))
		len--;
	while (len && isspace((unsigned char)*id))
		id++, len--;
	char buf[HM_PTYPE_ID_MAX];
	if (len >= sizeof buf)
		return hm_error(HM_EINVAL, "profile type id too long");
	memcpy(buf, id, len);
	buf[len] = 0;
	int colons = 0;
	for (char *x = buf; *x; x++)
		colons += *x == ':';
	if (colons && colons != 4)
		return hm_error(HM_EINVAL, "profile type '%.64s' is not "
				"name:sample_type:sample_unit:period_type:period_unit", buf);
	char *v[5] = {0};
	int np = 0;
	for (char *tok = buf, *c; tok && np < 5; tok = c ? c + 1 : NULL) {
		c = strchr(tok, ':');
		if (c)
			*c = 0;
		v[np++] = tok;
	}
	*vk = HM_VALUE_NS;
	if (np == 1) {
		snprintf(out, cap, "%s", buf);
		return HM_OK;
	}
	if (np != 5 || strchr(v[4], ':'))
		return hm_error(HM_EINVAL, "profile type '%.64s' is not "
				"name:sample_type:sample_unit:period_type:period_unit", buf);
	*vk = !strcmp(v[2], "count") ? HM_VALUE_COUNT : HM_VALUE_NS;
	/* the two-valued types, old and new names alike */
	const char *pst = !strcmp(v[0], "process_cpu") ? "cpu" : v[0];
	if ((!strcmp(v[1], pst) && !strcmp(v[2], "nanoseconds")) ||
	    (!strcmp(v[1], "samples") && !strcmp(v[2], "count") && !strcmp(v[3], pst)) ||
	    (legacy2(v[0]) && (!strcmp(v[1], "samples") || !strcmp(v[2], "nanoseconds")))) {
		snprintf(out, cap, "%s", v[0]);
		return HM_OK;
	}
	join5(out, cap, (const char *const *)v);
	return HM_OK;
}

int hm_ptype_fix_selector(const char *text, hm_selector *sel)
{
	if (!text || !sel->type)
		return HM_OK;
	const char *brace = strchr(text, '{');
	size_t len = brace ? (size_t)(brace - text) : strlen(text);
	if (!memchr(text, ':', len))
		return HM_OK;
	char t[HM_STORE_MAX_NAME + 1];
	int vk;
	int rc = hm_ptype_from_id(text, len, t, sizeof t, &vk);
	if (rc < 0)
		return rc;
	char *nt = strdup(t);
	if (!nt)
		return hm_error(HM_ENOMEM, "out of memory");
	free(sel->type);
	sel->type = nt;
	sel->value_kind = vk;
	return HM_OK;
}

static int is(const char *a, const char *b)
{
	return !strcmp(a, b);
}

int hm_ptype_plan_fn(void *arg, const hm_pprof_vt *st, size_t n, hm_pprof_vt period,
		     int (*pairs)[2], int max)
{
	hm_ptype_plan *pl = arg;
	int np = 0, samples = -1, timed = 0;
	for (size_t i = 0; i < n; i++) {
		if ((is(st[i].type, "samples") || is(st[i].type, "sample")) &&
		    is(st[i].unit, "count") && samples < 0)
			samples = (int)i;
		if ((is(st[i].type, "cpu") || is(st[i].type, "wall")) &&
		    is(st[i].unit, "nanoseconds"))
			timed = 1;
	}
	const char *fb = pl->fallback ? pl->fallback : "process_cpu";
	if (!n || (n == 1 && samples == 0)) {
		/* the pprof says nothing useful: the name suffix decides */
		pairs[0][0] = samples >= 0 ? samples : (n ? 0 : -1);
		pairs[0][1] = -1;
		snprintf(pl->types[0], sizeof pl->types[0], "%s", fb);
		return 1;
	}
	for (size_t i = 0; i < n && np < max; i++) {
		const char *t = st[i].type, *u = st[i].unit;
		if ((int)i == samples && timed)
			continue;              /* the count beside cpu / wall */
		if (is(u, "nanoseconds") && (is(t, "cpu") || is(t, "wall"))) {
			pairs[np][0] = samples;
			pairs[np][1] = (int)i;
			snprintf(pl->types[np++], sizeof pl->types[0], "%s",
				 is(t, "cpu") ? "process_cpu" : "wall");
			continue;
		}
		const char *name = NULL, *stype = t;
		if (!strncmp(t, "alloc_", 6) || !strncmp(t, "inuse_", 6) ||
		    is(period.type, "space"))
			name = "memory";
		if (is(t, "objects"))
			name = "memory", stype = "inuse_objects";
		else if (is(t, "space"))
			name = "memory", stype = "inuse_space";
		else if (is(t, "goroutine") || is(t, "goroutines"))
			name = "goroutine";
		else if (is(t, "contentions") || is(t, "delay"))
			name = strncmp(fb, "block", 5) ? "mutex" : "block";
		char fbname[HM_STORE_MAX_NAME + 1];
		setp(fbname, fb, strcspn(fb, "."));
		if (!name)
			name = legacy2(fb) ? t : fbname;
		const char *v[5] = {name, stype, u, *period.type ? period.type : stype,
				    *period.unit ? period.unit : u};
		if (is(name, "memory"))
			v[3] = "space", v[4] = "bytes";   /* as Pyroscope names them */
		pairs[np][0] = (int)i;
		pairs[np][1] = (int)i;
		join5(pl->types[np++], sizeof pl->types[0], v);
	}
	return np;
}
