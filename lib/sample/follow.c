/* follow.c - the Python descendants of a process (see follow.h).
 *
 * A scan reads every /proc/PID/stat once for the parent links, computes the
 * descendants of the root (transitively, so a worker started by a shell
 * started by the root counts), and reconciles them with the followed set.
 * New ones are attached only if they look like CPython (cheap /proc check)
 * and after their interpreter is ready; a process that never becomes Python
 * is given up after a few scans. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "proc/discover.h"
#include "sample/follow.h"

#define MAX_PROCS 65536
#define MAX_FOLLOWED 1024
#define MAX_TRIES 40           /* scans before giving up on a non-Python child */

struct hm_follow {
	pid_t root;
	hm_followed items[MAX_FOLLOWED];
	int n;
	pid_t *pids, *ppids;       /* scratch for scans */
	struct { pid_t pid; uint64_t start; } ignored[256];
	int nignored;
	void (*on_drop)(void *ctx, hm_followed *it);
	void *on_drop_ctx;
};

void hm_follow_on_drop(hm_follow *f, void (*fn)(void *ctx, hm_followed *it), void *ctx)
{
	f->on_drop = fn;
	f->on_drop_ctx = ctx;
}

hm_follow *hm_follow_new(pid_t root)
{
	hm_follow *f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->root = root;
	f->pids = malloc(MAX_PROCS * sizeof *f->pids);
	f->ppids = malloc(MAX_PROCS * sizeof *f->ppids);
	if (!f->pids || !f->ppids) {
		hm_follow_free(f);
		return NULL;
	}
	return f;
}

static void release(hm_followed *it)
{
	hm_python_detach(it->py);
	hm_target_close(it->t);
	it->py = NULL;
	it->t = NULL;
}

void hm_follow_free(hm_follow *f)
{
	if (!f)
		return;
	while (f->n)
		hm_follow_drop(f, f->n - 1);
	free(f->pids);
	free(f->ppids);
	free(f);
}

int hm_follow_count(const hm_follow *f) { return f->n; }
hm_followed *hm_follow_get(hm_follow *f, int i) { return i < f->n ? &f->items[i] : NULL; }

void hm_follow_drop(hm_follow *f, int i)
{
	if (i < 0 || i >= f->n)
		return;
	if (f->on_drop)
		f->on_drop(f->on_drop_ctx, &f->items[i]);
	release(&f->items[i]);
	f->items[i] = f->items[--f->n];
}

void hm_follow_label(pid_t pid, char *buf, size_t cap)
{
	char name[128] = "?";
	char *cmd = hm_proc_cmdline(pid, 4096);
	if (cmd) {
		/* hm_proc_cmdline joins with spaces; the program name wants the
		 * NUL-separated form. */
		size_t len = strlen(cmd);
		for (size_t i = 0; i < len; i++)
			if (cmd[i] == ' ')
				cmd[i] = 0;
		hm_proc_program_name(cmd, len + 1, name, sizeof name);
		free(cmd);
	}
	snprintf(buf, cap, "process %d: %s", (int)pid, name);
}

static int is_ignored(const hm_follow *f, pid_t pid, uint64_t start)
{
	for (int i = 0; i < f->nignored; i++)
		if (f->ignored[i].pid == pid && f->ignored[i].start == start)
			return 1;
	return 0;
}

static void ignore(hm_follow *f, pid_t pid, uint64_t start)
{
	int i = f->nignored < (int)(sizeof f->ignored / sizeof f->ignored[0]) ? f->nignored++
		: (int)(start % (sizeof f->ignored / sizeof f->ignored[0]));
	f->ignored[i].pid = pid;
	f->ignored[i].start = start;
}

/* Parent of pid in this scan (pids are sorted), 0 if unknown. */
static pid_t parent_of(const hm_follow *f, int n, pid_t pid)
{
	int lo = 0, hi = n - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		if (f->pids[mid] == pid)
			return f->ppids[mid];
		if (f->pids[mid] < pid)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return 0;
}

/* Is pid a descendant of root, following the parent links of this scan? */
static int descends(const hm_follow *f, int n, pid_t pid)
{
	for (int depth = 0; depth < 64 && pid > 1; depth++) {
		pid_t parent = parent_of(f, n, pid);
		if (parent == f->root)
			return 1;
		pid = parent;
	}
	return 0;
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return (x > y) - (x < y);
}

static void try_attach(hm_followed *it)
{
	if (!it->t && hm_target_open(it->pid, &it->t) != HM_OK) {
		it->tries = MAX_TRIES;
		return;
	}
	hm_python *py = NULL;
	int rc = hm_python_attach(it->t, &py);
	if (rc == HM_OK && hm_python_ready(py)) {
		it->py = py;
		hm_follow_label(it->pid, it->label, sizeof it->label);
		return;
	}
	hm_python_detach(py);
	it->tries = rc == HM_EVERSION ? MAX_TRIES : it->tries + 1;
}

int hm_follow_scan(hm_follow *f)
{
	int n = hm_discover_pids(f->pids, MAX_PROCS);
	if (n < 0)
		return f->n;
	qsort(f->pids, (size_t)n, sizeof *f->pids, cmp_pid);
	for (int i = 0; i < n; i++)
		f->ppids[i] = hm_proc_ppid(f->pids[i]);

	/* Drop the followed processes that are gone (or whose pid was reused). */
	for (int i = 0; i < f->n;) {
		hm_followed *it = &f->items[i];
		if (hm_proc_starttime(it->pid) != it->start || (it->t && !hm_target_alive(it->t)))
			hm_follow_drop(f, i);
		else
			i++;
	}
	/* Add new Python descendants. */
	for (int i = 0; i < n && f->n < MAX_FOLLOWED; i++) {
		pid_t pid = f->pids[i];
		if (pid == f->root || !descends(f, n, pid))
			continue;
		uint64_t start = hm_proc_starttime(pid);
		int known = 0;
		for (int k = 0; k < f->n; k++)
			if (f->items[k].pid == pid && f->items[k].start == start)
				known = 1;
		if (known || !start || is_ignored(f, pid, start))
			continue;
		if (!hm_proc_looks_python(pid)) {
			/* A shell or a not-yet-exec'd fork: look again next
			 * scan; it may exec Python. */
			continue;
		}
		hm_followed *it = &f->items[f->n++];
		memset(it, 0, sizeof *it);
		it->pid = pid;
		it->start = start;
	}
	/* Attach those not ready yet; give up on ones that never get there. */
	for (int i = 0; i < f->n;) {
		hm_followed *it = &f->items[i];
		if (!it->py)
			try_attach(it);
		if (!it->py && it->tries >= MAX_TRIES) {
			ignore(f, it->pid, it->start);
			hm_follow_drop(f, i);
			continue;
		}
		i++;
	}
	return f->n;
}
