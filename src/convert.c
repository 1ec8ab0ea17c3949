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
	static const struct option opts[] = {
		{"output", required_argument, 0, 'o'}, {"format", required_argument, 0, 'f'},
		{"title", required_argument, 0, 'T'},  {"width", required_argument, 0, 'W'},
		{"focus", required_argument, 0, 'F'},  {"hide", required_argument, 0, 'H'},
		{"thread", required_argument, 0, 't'}, {"drop-file", required_argument, 0, 'D'},
		{"group-by", required_argument, 0, 'G'},
		{"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
	};
	const char *outpath = "-", *fmtname = NULL;
	hm_write_opts wo = {0};
	hm_filter flt = {0};
	int c, group_span = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': outpath = optarg; break;
		case 'f': fmtname = optarg; break;
		case 'T': wo.title = optarg; break;
		case 'W': wo.width = atoi(optarg); break;
		case 'F': flt.focus = optarg; break;
		case 'H': flt.hide = optarg; break;
		case 't': flt.thread = optarg; break;
		case 'D': flt.drop_file = optarg; break;
		case 'G':
			if (strcmp(optarg, "span"))
				return cli_fail("invalid --group-by '%s' (only 'span')", optarg);
			group_span = 1;
			break;
		case 'h': convert_usage(stdout); return 0;
		default: convert_usage(stderr); return 2;
		}
	}
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
	if (hm_profile_read_file(inpath, &p) < 0)
		return cli_fail_lib();
	if (hm_filter_active(&flt)) {
		hm_profile *q;
		if (hm_filter_apply(p, &flt, &q) < 0) {
			hm_profile_free(p);
			return cli_fail_lib();
		}
		hm_profile_free(p);
		p = q;
	}
	if (group_span) {
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
	int rc = hm_profile_write(p, fmt, out.f, &wo);
	if (rc == HM_OK)
		rc = hm_output_commit(&out);
	else
		hm_output_abort(&out);
	hm_profile_free(p);
	return rc < 0 ? cli_fail_lib() : 0;
}
