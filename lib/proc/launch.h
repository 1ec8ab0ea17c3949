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

/* The same in two steps, for a caller that must set something up on the
 * child before it runs any of the program (`homura run` opens its perf
 * events there, so that the program's first thread is counted from its
 * first instruction): hm_launch_held forks a child that waits before its
 * exec (0, or -1 with errno); h->pid is its pid. hm_launch_go lets it exec
 * and returns as hm_launch does (its pid, or -1 with errno, the child
 * reaped). hm_launch_cancel ends a held child without running anything.
 * A held child whose parent dies exits (127) without exec'ing. */
typedef struct hm_held {
	pid_t pid;
	int go, err;             /* our ends of the two pipes */
} hm_held;
int hm_launch_held(char **cmd, int quiet, hm_held *h);
pid_t hm_launch_go(hm_held *h);
void hm_launch_cancel(hm_held *h);

/* Stop a launched child that is still running: SIGTERM, up to a second to
 * exit, then SIGKILL; always reaps it. */
void hm_launch_stop(pid_t child);

#endif
