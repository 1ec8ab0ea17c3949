/* homura.c - the `homura` command: dispatches to one file per subcommand
 * (cmd_<name> in src/<name>.c), like git's builtins. `homura help CMD` is
 * `homura CMD --help`; -V/--version/version print the version. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "base/error.h"

#ifndef HOMURA_VERSION
#define HOMURA_VERSION "0.1.0"
#endif

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} commands[] = {
	{"record", cmd_record, "sample a Python process and write a profile"},
	{"run", cmd_run, "run a program: CPU, memory and GPU per line, with reports"},
	{"top", cmd_top, "live view of the functions using the most time"},
	{"dump", cmd_dump, "print every thread's current stack"},
	{"convert", cmd_convert, "convert a profile between formats"},
	{"diff", cmd_diff, "compare two profiles (differential flame graph)"},
	{"agent", cmd_agent, "profile processes continuously and ship profiles"},
	{"server", cmd_server, "store profiles and serve the query API"},
};

int cli_fail(const char *fmt, ...)
{
	va_list ap;
	fputs("homura: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int cli_fail_lib(void)
{
	return cli_fail("%s", hm_errmsg());
}

static void usage(FILE *f)
{
	fprintf(f, "usage: homura <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nRun `homura <command> --help` (or `homura help <command>`) for a command's\n"
		   "options; `homura --version` (-V) prints the version.\n");
}

static int find_command(const char *name)
{
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(name, commands[i].name))
			return (int)i;
	return -1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "help") && argc > 2) {
		/* `homura help record` = `homura record --help` */
		int i = find_command(argv[2]);
		if (i < 0) {
			fprintf(stderr, "homura: no help for '%s': not a homura command (see homura --help)\n",
				argv[2]);
			return 2;
		}
		char *hargv[] = {argv[2], "--help", NULL};
		return commands[i].fn(2, hargv);
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("homura %s\n", HOMURA_VERSION);
		return 0;
	}
	int i = find_command(argv[1]);
	if (i >= 0)
		return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "homura: '%s' is not a homura command (see homura --help)\n", argv[1]);
	return 2;
}
