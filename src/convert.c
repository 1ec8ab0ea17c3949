/* convert.c - `homura convert IN -o OUT [-f FORMAT] [filters]`.
 *
 * Reads any profile homura understands (the format is detected from the
 * content), optionally narrows it with --focus / --hide / --thread /
 * --drop-file, and writes it in the format named by -f or implied by OUT's
 * suffix. OUT "-" (the default) is stdout; a file is written to a new
 * temporary file renamed into place, and a symbolic link, FIFO or device is
 * refused (fileio.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "base/error.h"
#include "base/fileio.h"
#include "format/codec.h"
#include "format/encode.h"
#include "format/filter.h"

static void convert_usage(FILE *f)
{
	fprintf(f,
		"usage: homura convert IN [-o OUT] [-f FORMAT] [filters]\n"
		"\n"
		"Convert a profile (collapsed, speedscope, pprof, OTLP or OTLP JSON; the\n"
		"input format is detected from the content) to another format.\n"
		"\n"
		"  -o, --output FILE   output file (default: stdout, '-')\n"
		"  -f, --format FMT    collapsed (or raw), speedscope, svg, pprof, otlp,\n"
		"                      otlp-json, chrometrace (default: from OUT's suffix)\n"
		"      --title TEXT    title for SVG / speedscope\n"
		"      --width PX      SVG width\n"
		"      --focus RE      keep only stacks with a frame matching RE\n"
		"      --hide RE       remove frames matching RE\n"
		"      --thread TID    keep one thread (id or name)\n"
		"      --drop-file RE  remove frames whose file matches RE\n"
		"      --group-by span put every stack under a 'span: NAME' root frame\n"
		"                      (the OpenTelemetry span its samples ran in)\n");
}

int cmd_convert(int argc, char **argv)
{
	cli_outopts co;
	int rc = cli_outopts_parse(argc, argv, &co, convert_usage);
	if (rc >= 0)
		return rc;
	const char *outpath = co.outpath, *fmtname = co.fmtname;
	if (optind != argc - 1) {
		convert_usage(stderr);
		return 2;
	}
	const char *inpath = argv[optind];
	int fmt = fmtname ? hm_format_parse(fmtname) : hm_format_from_path(outpath);
	if (!fmt)
		return fmtname ? cli_fail("unknown format '%s'", fmtname)
			       : cli_fail("cannot tell the output format from '%s'; use -f", outpath);

	hm_profile *p = NULL;
	if (cli_load_filtered(inpath, &co.flt, &p) < 0)
		return cli_fail_lib();
	if (co.group_span) {
		hm_profile *q;
		if (hm_profile_group_by_span(p, &q) < 0) {
			hm_profile_free(p);
			return cli_fail_lib();
		}
		hm_profile_free(p);
		p = q;
	}
	hm_outfile out;   /* never through a symlink; renamed into place */
	if (hm_output_open(&out, outpath, 0666) != HM_OK) {
		hm_profile_free(p);
		return cli_fail_lib();
	}
	rc = hm_profile_write(p, fmt, out.f, &co.wo);
	if (rc == HM_OK)
		rc = hm_output_commit(&out);
	else
		hm_output_abort(&out);
	hm_profile_free(p);
	return rc < 0 ? cli_fail_lib() : 0;
}
