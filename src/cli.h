/* cli.h - what the subcommand files share: entry points and small helpers. */
#ifndef HOMURA_CLI_H
#define HOMURA_CLI_H

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

#endif
