/* encode.h - writing (and reading) profiles in other tools' formats.
 *
 * Each encoder takes a finished hm_profile and a FILE*. Formats are picked
 * by name (-f) or from an output file's suffix. */
#ifndef HOMURA_ENCODE_H
#define HOMURA_ENCODE_H

#include <stdio.h>
#include "base/profile.h"

enum hm_format {
	HM_FMT_UNKNOWN = 0,
	HM_FMT_COLLAPSED,
	HM_FMT_SPEEDSCOPE,
	HM_FMT_SVG,
	HM_FMT_PPROF,
	HM_FMT_OTLP,
	HM_FMT_OTLP_JSON,
	HM_FMT_CHROMETRACE,     /* Chrome Trace Event JSON (write only) */
};

int hm_format_parse(const char *name);        /* "svg" -> HM_FMT_SVG, else 0 */
int hm_format_from_path(const char *path);    /* by suffix, else 0 */
const char *hm_format_name(int fmt);

typedef struct hm_write_opts {
	const char *title;      /* shown in SVG / speedscope name */
	int width;              /* SVG width in px, 0 = default 1200 */
} hm_write_opts;

/* Dispatch by format. HM_OK or a negative hm_err with hm_errmsg() set. */
int hm_profile_write(const hm_profile *p, int fmt, FILE *out, const hm_write_opts *o);

int hm_write_collapsed(const hm_profile *p, FILE *out, const hm_write_opts *o);
int hm_write_speedscope(const hm_profile *p, FILE *out, const hm_write_opts *o);
int hm_write_svg(const hm_profile *p, FILE *out, const hm_write_opts *o);
/* Trace Event Format ("X" complete events per frame and thread, ts/dur in
 * microseconds) for chrome://tracing and Perfetto; see enc_chrometrace.c. */
int hm_write_chrometrace(const hm_profile *p, FILE *out, const hm_write_opts *o);

#endif
