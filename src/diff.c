/* diff.c - `homura diff BEFORE AFTER [-o OUT] [-f svg|collapsed|pprof]`.
 *
 * Reads both profiles (any supported format), applies the same filters to
 * each, and writes a differential view normalised by totals: an SVG flame
 * graph (widths from AFTER, red = a frame's share grew, green = shrank),
 * collapsed stacks with signed deltas, or a pprof of the deltas (which
 * `go tool pprof` shows like its own -diff_base output). OUT is written as
 * convert writes it: never through a symbolic link (fileio.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "base/error.h"
#include "base/fileio.h"
#include "format/codec.h"
#include "format/diff.h"
#include "format/encode.h"
#include "format/filter.h"

static void diff_usage(FILE *f)
{
	fprintf(f,
		"usage: homura diff BEFORE AFTER [-o OUT] [-f FORMAT] [filters]\n"
		"\n"
		"Compare two profiles. Values are normalised by each profile's total.\n"
		"\n"
		"  -o, --output FILE   output file (default: stdout, '-')\n"
		"  -f, --format FMT    svg, collapsed (signed deltas) or pprof\n"
		"                      (default: from OUT's suffix; collapsed on stdout)\n"
		"      --title TEXT    SVG title\n"
		"      --width PX      SVG width\n"
		"      --focus RE / --hide RE / --thread TID / --drop-file RE\n"
		"                      filters, applied to both profiles\n");
}

int cmd_diff(int argc, char **argv)
{
	cli_outopts co;
	int rc = cli_outopts_parse(argc, argv, &co, diff_usage);
	if (rc >= 0)
		return rc;
	const char *outpath = co.outpath, *fmtname = co.fmtname;
	if (optind != argc - 2) {
		diff_usage(stderr);
		return 2;
	}
	int fmt = fmtname ? hm_format_parse(fmtname) : hm_format_from_path(outpath);
	if (!fmtname && !strcmp(outpath, "-"))
		fmt = HM_FMT_COLLAPSED;
	if (fmt != HM_FMT_SVG && fmt != HM_FMT_COLLAPSED && fmt != HM_FMT_PPROF)
		return cli_fail("diff writes svg, collapsed or pprof%s%s%s",
				fmtname ? " (not '" : "", fmtname ? fmtname : "", fmtname ? "')" : "");

	hm_profile *before = NULL, *after = NULL;
	if (cli_load_filtered(argv[optind], &co.flt, &before) < 0)
		return cli_fail_lib();
	if (cli_load_filtered(argv[optind + 1], &co.flt, &after) < 0) {
		hm_profile_free(before);
		return cli_fail_lib();
	}
	hm_outfile of;   /* never through a symlink; renamed into place */
	rc = hm_output_open(&of, outpath, 0666);
	FILE *out = of.f;
	if (rc != HM_OK) {
		out = NULL;
	} else if (fmt == HM_FMT_SVG) {
		rc = hm_write_diff_svg(before, after, out, &co.wo);
	} else if (fmt == HM_FMT_COLLAPSED) {
		rc = hm_write_diff_collapsed(before, after, out);
	} else {
		hm_profile *d;
		rc = hm_diff_profile(before, after, &d);
		if (rc == HM_OK) {
			rc = hm_write_pprof(d, out, &co.wo);
			hm_profile_free(d);
		}
	}
	if (out && rc == HM_OK)
		rc = hm_output_commit(&of);
	else if (out)
		hm_output_abort(&of);
	hm_profile_free(before);
	hm_profile_free(after);
	return rc < 0 ? cli_fail_lib() : 0;
}
