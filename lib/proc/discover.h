/* discover.h - finding CPython processes on the host by scanning /proc.
 *
 * Cheap checks only (no ptrace, no memory reads): the caller confirms a
 * candidate with hm_target_open + hm_python_attach. Processes are identified
 * by (pid, start time) so a recycled pid is a new process. */
#ifndef HOMURA_DISCOVER_H
#define HOMURA_DISCOVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* pids of every process in /proc (not threads). Returns the count stored
 * (<= max), or -1 when /proc cannot be read. */
int hm_discover_pids(pid_t *out, int max);
/* The same with each /proc/PID directory's inode number (ino[i]; 0 if
 * unknown). procfs keeps a live process's directory, so an unchanged number
 * is the same process (a recycled pid gets a new one): a scan can skip
 * reading the start time of processes it has seen. */
int hm_discover_pids_ino(pid_t *out, uint64_t *ino, int max);
/* Parent pid (/proc/PID/stat field 4); 0 if gone. */
pid_t hm_proc_ppid(pid_t pid);
/* Start time (clock ticks since boot, /proc/PID/stat field 22); 0 if gone. */
uint64_t hm_proc_starttime(pid_t pid);
/* 1 if pid looks like CPython: its executable's name starts with "python",
 * or it maps a libpython. 0 otherwise (also for kernel threads). */
int hm_proc_looks_python(pid_t pid);
/* The identity of the program pid runs (its executable's device and
 * inode, through /proc/PID/exe): it changes when the process execs another
 * program. 0, or -1 (gone, a kernel thread, not ours to see). */
int hm_proc_exe_id(pid_t pid, uint64_t *dev, uint64_t *ino);
/* The command line with arguments joined by single spaces (malloc'd, at most
 * max bytes); NULL for kernel threads and vanished processes. */
char *hm_proc_cmdline(pid_t pid, size_t max);
/* The name a person would give the program: the script's basename without
 * .py (or the module after -m), else the executable's basename. cmdline is
 * NUL-separated as in /proc/PID/cmdline. Writes at most cap bytes. */
void hm_proc_program_name(const char *cmdline, size_t len, char *buf, size_t cap);

#endif
