/* follow.h - following the Python descendants of a process (--subprocesses).
 *
 * hm_follow keeps the set of descendants of a root pid that run CPython:
 * multiprocessing workers, gunicorn/uwsgi workers, subprocess.run of Python
 * scripts. hm_follow_scan rescans /proc (parent links), attaches to new
 * Python descendants once their interpreter is ready, and drops those that
 * exited; processes are identified by (pid, start time) so a recycled pid is
 * a new process. The root itself is not part of the set. */
#ifndef HOMURA_FOLLOW_H
#define HOMURA_FOLLOW_H

#include <stdint.h>
#include <sys/types.h>

#include "proc/target.h"
#include "python/python.h"

typedef struct hm_followed {
	pid_t pid;
	uint64_t start;         /* start time, ticks since boot */
	hm_target *t;
	hm_python *py;          /* NULL until the interpreter is ready */
	char label[160];        /* "process PID: program" */
	int tries;              /* failed attach attempts */
} hm_followed;

typedef struct hm_follow hm_follow;

hm_follow *hm_follow_new(pid_t root);
void hm_follow_free(hm_follow *f);
/* Rescan; returns the number of followed processes. */
int hm_follow_scan(hm_follow *f);
int hm_follow_count(const hm_follow *f);
hm_followed *hm_follow_get(hm_follow *f, int i);
/* Called with each entry just before it is dropped (its target and
 * interpreter are still open), so owners of per-process state can let go. */
void hm_follow_on_drop(hm_follow *f, void (*fn)(void *ctx, hm_followed *it), void *ctx);
/* Drop entry i now (its process exited or cannot be read any more). */
void hm_follow_drop(hm_follow *f, int i);
/* "process PID: program" for any pid (the root's label, for instance). */
void hm_follow_label(pid_t pid, char *buf, size_t cap);

#endif
