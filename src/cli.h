/* cli.h - what the subcommand files share: entry points and small helpers. */
#ifndef HOMURA_CLI_H
#define HOMURA_CLI_H

#include <stdio.h>

#include "base/profile.h"
#include "format/encode.h"
#include "format/filter.h"

int cmd_record(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_agent(int argc, char **argv);
int cmd_server(int argc, char **argv);

/* Print "homura: <msg>" on stderr; returns the exit status to use (1). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print hm_errmsg() as one line; returns an exit status (1). */
int cli_fail_lib(void);

/* The options convert and diff share: -o/--output, -f/--format, --title,
 * --width, the filters (--focus, --hide, --thread, --drop-file) and
 * --group-by span. */
typedef struct cli_outopts {
	const char *outpath;     /* "-" (stdout) unless -o */
	const char *fmtname;     /* -f, or NULL */
	hm_write_opts wo;
	hm_filter flt;
	int group_span;          /* --group-by span */
} cli_outopts;
/* Parse argv into o (getopt_long from the first argument). -1: go on, the
 * operands start at optind; else the exit status to return (0 after
 * --help, 2 after a bad option, with usage printed). */
int cli_outopts_parse(int argc, char **argv, cli_outopts *o, void (*usage)(FILE *));
/* Read a profile in any format and apply flt. 0, or -1 (hm_errmsg). */
int cli_load_filtered(const char *path, const hm_filter *flt, hm_profile **out);

#endif
