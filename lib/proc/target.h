/* target.h - access to another (or this) process: memory, maps, threads.
 *
 * A hm_target wraps a pid. Memory is read with process_vm_readv (one syscall
 * for many regions with hm_target_readv). Files mapped by the target are
 * opened through /proc/PID/root so containers (other mount namespaces) work.
 * Thread ids are host tids; hm_target_host_tid() maps a tid as seen inside
 * the target's PID namespace to the host tid (NSpid). */
#ifndef HOMURA_TARGET_H
#define HOMURA_TARGET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct hm_target hm_target;

typedef struct hm_map {
	uint64_t start, end, offset;
	char perms[5];          /* "r-xp" */
	char *path;             /* as printed in maps, or NULL for anonymous */
	unsigned dev_major, dev_minor;
	uint64_t inode;         /* of the mapped file, 0 for anonymous */
} hm_map;

typedef struct hm_iov {         /* one remote region -> local buffer */
	uint64_t addr;
	void *buf;
	size_t len;
} hm_iov;

/* Open pid. Fails with HM_ENOPROC (no such process) or HM_EPERM (no ptrace
 * rights; the message names what is missing: root, CAP_SYS_PTRACE or
 * kernel.yama.ptrace_scope). Checks access by actually reading memory. */
int hm_target_open(pid_t pid, hm_target **out);
void hm_target_close(hm_target *t);
/* A target with no process behind it whose memory is read(ctx, addr, buf,
 * len) (0: all len bytes copied, else unreadable): what the walker reads in
 * tests and fuzzing (tests/fuzz/fuzz_walker.c). Its /proc lookups fail
 * (no threads, maps or states) and thread ids map to themselves. */
typedef int (*hm_target_read_fn)(void *ctx, uint64_t addr, void *buf, size_t len);
int hm_target_open_mem(hm_target_read_fn read, void *ctx, hm_target **out);
pid_t hm_target_pid(const hm_target *t);
int hm_target_alive(hm_target *t);                 /* 1 if still running (not zombie) */

/* Read len bytes at addr; HM_OK or HM_EIO (no partial success). */
int hm_target_read(hm_target *t, uint64_t addr, void *buf, size_t len);
/* Read n regions in one syscall. Returns HM_OK only if every byte arrived. */
int hm_target_readv(hm_target *t, const hm_iov *iov, int n);

/* (Re)read /proc/PID/maps. The array stays valid until the next refresh. */
int hm_target_refresh_maps(hm_target *t);
const hm_map *hm_target_maps(hm_target *t, size_t *n);
/* Where this process can open the target's file `path` (as its maps show
 * it), malloc'd: "/proc/PID/root" + path when that exists (containers);
 * else, for a path that the maps show (relative to this process's root, e.g.
 * a chrooted target's files, or those in a mount namespace that is not
 * reachable from here), /proc/PID/map_files/START-END of one of its
 * mappings, or path itself when it is the same file (device and inode);
 * else "/proc/PID/root" + path. */
char *hm_target_path(const hm_target *t, const char *path);

/* A mapped ELF file: where it is and how to turn its vaddrs into addresses. */
typedef struct hm_module {
	char *path;             /* path in the target's namespace (from maps) */
	uint64_t start, end;    /* lowest start / highest end of its mappings */
	uint64_t bias;          /* runtime address = ELF vaddr + bias */
} hm_module;
/* Find the first mapped file whose basename satisfies match(); computes bias
 * from the ELF program headers. HM_OK, or HM_ENOTPY when nothing matches. */
int hm_target_find_module(hm_target *t, int (*match)(const char *basename, void *ctx),
			  void *ctx, hm_module *out);
void hm_module_free(hm_module *m);

/* Threads: host tids of /proc/PID/task. Returns count (<= max) or <0. A
 * thread that has just exited (even one already joined) can still be listed
 * for a moment: callers treat a listed thread that is gone as normal. */
int hm_target_threads(hm_target *t, pid_t *tids, int max);
/* Map a tid in the target's innermost PID namespace to the host tid; returns
 * the tid unchanged when the target shares our namespace, 0 if unknown. */
pid_t hm_target_host_tid(hm_target *t, pid_t ns_tid);
/* Scheduler state letter of a thread from /proc/PID/task/TID/stat ('R', 'S',
 * 'D', ...), 0 if the thread is gone (an exited thread still listed as dead
 * 'X' or zombie 'Z' counts as gone). Keeps the file open between calls. */
char hm_target_thread_state(hm_target *t, pid_t tid);
/* 'R' if the thread is runnable (on a CPU or waiting for one), 'S' if it is
 * blocked, 0 if gone: what the on-CPU filter needs, from the cheaper
 * /proc/PID/task/TID/syscall where the kernel has it (else the stat file). */
char hm_target_thread_oncpu(hm_target *t, pid_t tid);
/* CPU time the kernel has charged to a thread so far, in ns (the first field
 * of /proc/PID/task/TID/schedstat, sum_exec_runtime; kept open between
 * calls). 1 with *ns set; 0 if the kernel does not say (no such file,
 * scheduler statistics off, or nothing charged yet); -1 if the thread is
 * gone (or not the target's). */
int hm_target_thread_cputime(hm_target *t, pid_t tid, uint64_t *ns);
/* 1 if the kernel gives the target's threads' CPU time (asked once). */
int hm_target_has_cputime(hm_target *t);

/* Pause / resume every thread (ptrace seize + interrupt) for --blocking. */
int hm_target_pause(hm_target *t);
void hm_target_resume(hm_target *t);

/* Command line / environment of the target, NUL-separated, malloc'd. */
char *hm_target_cmdline(const hm_target *t, size_t *len);
char *hm_target_environ(const hm_target *t, size_t *len);

#endif
