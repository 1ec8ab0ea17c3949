/* cli.c - what convert and diff share (cli.h): their output and filter
 * options, and reading a profile through the filters. (cli_fail and
 * cli_fail_lib live in homura.c.) */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "format/codec.h"

int cli_outopts_parse(int argc, char **argv, cli_outopts *o, void (*usage)(FILE *))
{
	static const struct option opts[] = {
		{"output", required_argument, 0, 'o'}, {"format", required_argument, 0, 'f'},
		{"title", required_argument, 0, 'T'},  {"width", required_argument, 0, 'W'},
		{"focus", required_argument, 0, 'F'},  {"hide", required_argument, 0, 'H'},
		{"thread", required_argument, 0, 't'}, {"drop-file", required_argument, 0, 'D'},
		{"group-by", required_argument, 0, 'G'},
		{"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
	};
	int c;
	memset(o, 0, sizeof *o);
	o->outpath = "-";
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': o->outpath = optarg; break;
		case 'f': o->fmtname = optarg; break;
		case 'T': o->wo.title = optarg; break;
		case 'W': o->wo.width = atoi(optarg); break;
		case 'F': o->flt.focus = optarg; break;
		case 'H': o->flt.hide = optarg; break;
		case 't': o->flt.thread = optarg; break;
		case 'D': o->flt.drop_file = optarg; break;
		case 'G':
			if (strcmp(optarg, "span"))
				return cli_fail("invalid --group-by '%s' (only 'span')", optarg);
			o->group_span = 1;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	return -1;
}

int cli_load_filtered(const char *path, const hm_filter *flt, hm_profile **out)
{
	if (hm_profile_read_file(path, out) < 0)
		return -1;
	if (hm_filter_active(flt)) {
		hm_profile *q;
		int rc = hm_filter_apply(*out, flt, &q);
		hm_profile_free(*out);
		*out = rc < 0 ? NULL : q;
		return rc < 0 ? -1 : 0;
	}
	return 0;
}
