/* homura.c - the `homura` command: dispatches to one file per subcommand
 * (cmd_<name> in src/<name>.c), like git's builtins. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "homura/error.h"

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} commands[] = {
	{"record", cmd_record, "sample a Python process and write a profile"},
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
	fprintf(f, "\nRun `homura <command> --help` for a command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("homura 0.1.0\n");
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "homura: '%s' is not a homura command (see homura --help)\n", argv[1]);
	return 2;
}
