/* parse.c - the time, duration and size parsers of the command line and
 * the server (parse.h): "now-1h", "15m", "1.5G". */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/parse.h"

static int unit_seconds(char c, int64_t *mul)
{
	switch (c) {
	case 0: case 's': *mul = 1; return 1;
	case 'm': *mul = 60; return 1;
	case 'h': *mul = 3600; return 1;
	case 'd': *mul = 86400; return 1;
	case 'w': *mul = 7 * 86400; return 1;
	default: return 0;
	}
}

int hm_parse_duration(const char *text, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	int64_t mul;
	if (end == text || errno || v < 0 || v > (1LL << 40) || !unit_seconds(*end, &mul) ||
	    (*end && end[1]))
		return hm_error(HM_EINVAL, "bad duration '%.32s' (e.g. 30s, 15m, 7d)", text);
	*out = v * mul;
	return HM_OK;
}

int hm_parse_time(const char *text, int64_t now_s, int64_t *out)
{
	if (!strncmp(text, "now", 3)) {
		const char *r = text + 3;
		int64_t d = 0;
		if (!*r) {
			*out = now_s;
			return HM_OK;
		}
		if ((*r == '-' || *r == '+') && hm_parse_duration(r + 1, &d) == HM_OK) {
			*out = *r == '-' ? now_s - d : now_s + d;
			return HM_OK;
		}
		return hm_error(HM_EINVAL, "bad time '%.32s' (e.g. now-1h)", text);
	}
	char *end;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (end == text || *end || errno || v < 0)
		return hm_error(HM_EINVAL, "bad time '%.32s' (unix seconds or now-1h)", text);
	if (v > 100000000000LL)     /* milliseconds (Grafana sends these) */
		v /= 1000;
	*out = v;
	return HM_OK;
}

int hm_parse_size(const char *text, int64_t *out)
{
	/* digits[.digits][K|M|G|T[i]][B]; the multipliers are powers of 1024. */
	const char *p = text;
	int64_t whole = 0;
	double frac = 0, scale = 1;
	int ndig = 0;
	for (; *p >= '0' && *p <= '9'; p++, ndig++) {
		if (whole > ((INT64_C(1) << 50) - (*p - '0')) / 10)
			goto bad;
		whole = whole * 10 + (*p - '0');
	}
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, ndig++)
			if (scale > 1e-15)
				frac += (*p - '0') * (scale /= 10);
	if (!ndig)
		goto bad;
	int64_t mul = 1;
	switch (*p) {
	case 'k': case 'K': mul = INT64_C(1) << 10; p++; break;
	case 'm': case 'M': mul = INT64_C(1) << 20; p++; break;
	case 'g': case 'G': mul = INT64_C(1) << 30; p++; break;
	case 't': case 'T': mul = INT64_C(1) << 40; p++; break;
	}
	if (mul > 1 && *p == 'i')
		p++;
	if (*p == 'B')
		p++;
	if (*p || whole > (INT64_C(1) << 50) / mul)
		goto bad;
	int64_t v = whole * mul + (int64_t)(frac * (double)mul);
	if (v > INT64_C(1) << 50)
		goto bad;
	*out = v;
	return HM_OK;
bad:
	return hm_error(HM_EINVAL, "bad size '%.32s' (bytes, or with a K/M/G/T suffix: 500M, 1.5G)",
			text);
}
