/* format.c - output format names, suffixes and the hm_profile_write dispatch.
 *
 * Names and suffixes map to enum hm_format through one table; suffixes are
 * matched longest first so "x.otlp.json" is OTLP JSON, not speedscope.
 * The binary encoders (pprof, OTLP) are declared in codec.h. They are
 * referenced strongly on purpose: a weak reference does not pull an object
 * out of a static library, so with libhomura.a it would always be NULL. */
#include <string.h>
#include <strings.h>

#include "base/error.h"
#include "format/codec.h"
#include "format/encode.h"

static const struct {
	const char *name;
	int fmt;
} names[] = {
	{ "collapsed", HM_FMT_COLLAPSED },  { "folded", HM_FMT_COLLAPSED },
	{ "flamegraph", HM_FMT_SVG },       { "svg", HM_FMT_SVG },
	{ "speedscope", HM_FMT_SPEEDSCOPE }, { "pprof", HM_FMT_PPROF },
	{ "otlp", HM_FMT_OTLP },            { "otlp-json", HM_FMT_OTLP_JSON },
	{ "otlp_json", HM_FMT_OTLP_JSON },
	/* py-spy's names: raw is its collapsed output */
	{ "raw", HM_FMT_COLLAPSED },        { "chrometrace", HM_FMT_CHROMETRACE },
};

/* Longest suffixes first: the first match wins. */
static const struct {
	const char *suffix;
	int fmt;
} suffixes[] = {
	{ ".chrometrace.json", HM_FMT_CHROMETRACE },
	{ ".speedscope.json", HM_FMT_SPEEDSCOPE }, { ".otlp.json", HM_FMT_OTLP_JSON },
	{ ".trace.json", HM_FMT_CHROMETRACE },
	{ ".speedscope", HM_FMT_SPEEDSCOPE },
	{ ".pprof.gz", HM_FMT_PPROF },  { ".otlp.pb", HM_FMT_OTLP },
	{ ".collapsed", HM_FMT_COLLAPSED }, { ".folded", HM_FMT_COLLAPSED },
	{ ".pb.gz", HM_FMT_PPROF },     { ".pprof", HM_FMT_PPROF },
	{ ".json", HM_FMT_SPEEDSCOPE }, { ".otlp", HM_FMT_OTLP },
	{ ".svg", HM_FMT_SVG },         { ".txt", HM_FMT_COLLAPSED },
	{ ".pb", HM_FMT_PPROF },
};

int hm_format_parse(const char *name)
{
	if (!name)
		return HM_FMT_UNKNOWN;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcasecmp(name, names[i].name))
			return names[i].fmt;
	return HM_FMT_UNKNOWN;
}

int hm_format_from_path(const char *path)
{
	if (!path)
		return HM_FMT_UNKNOWN;
	size_t len = strlen(path);
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		size_t sl = strlen(suffixes[i].suffix);
		if (len > sl && !strcasecmp(path + len - sl, suffixes[i].suffix))
			return suffixes[i].fmt;
	}
	return HM_FMT_UNKNOWN;
}

const char *hm_format_name(int fmt)
{
	switch (fmt) {
	case HM_FMT_COLLAPSED: return "collapsed";
	case HM_FMT_SPEEDSCOPE: return "speedscope";
	case HM_FMT_SVG: return "svg";
	case HM_FMT_PPROF: return "pprof";
	case HM_FMT_OTLP: return "otlp";
	case HM_FMT_OTLP_JSON: return "otlp-json";
	case HM_FMT_CHROMETRACE: return "chrometrace";
	default: return "unknown";
	}
}

int hm_profile_write(const hm_profile *p, int fmt, FILE *out, const hm_write_opts *o)
{
	static const hm_write_opts defaults;
	int (*fn)(const hm_profile *, FILE *, const hm_write_opts *);
	if (!p || !out)
		return hm_error(HM_EINVAL, "no profile or output to write");
	if (!o)
		o = &defaults;
	switch (fmt) {
	case HM_FMT_COLLAPSED: fn = hm_write_collapsed; break;
	case HM_FMT_SPEEDSCOPE: fn = hm_write_speedscope; break;
	case HM_FMT_SVG: fn = hm_write_svg; break;
	case HM_FMT_PPROF: fn = hm_write_pprof; break;
	case HM_FMT_OTLP: fn = hm_write_otlp; break;
	case HM_FMT_OTLP_JSON: fn = hm_write_otlp_json; break;
	case HM_FMT_CHROMETRACE: fn = hm_write_chrometrace; break;
	default:
		return hm_error(HM_EINVAL, "unknown output format %d", fmt);
	}
	return fn(p, out, o);
}
