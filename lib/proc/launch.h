/* launch.h - starting the command a front end profiles from its start
 * (`homura record -- python app.py`, `homura top -- ...`) and stopping it. */
#ifndef HOMURA_LAUNCH_H
#define HOMURA_LAUNCH_H

#include <sys/types.h>

/* Fork and exec cmd, returning once the exec has happened, so the caller
 * never reads the child's memory in the middle of it. quiet: the child's
 * stdin/stdout/stderr go to /dev/null (top keeps the terminal). Returns the
 * pid, or -1 with errno set (the exec's own errno when the program cannot
 * be run; that child is already reaped). */
pid_t hm_launch(char **cmd, int quiet);

/* Stop a launched child that is still running: SIGTERM, up to a second to
 * exit, then SIGKILL; always reaps it. */
void hm_launch_stop(pid_t child);

#endif
