/* target.c - reading another process: memory, maps, modules, threads.
 *
 * A target is a pid plus a directory fd on /proc/PID. Every /proc file is
 * opened relative to that fd, so once the process is gone (and even if its
 * pid is reused) opens fail instead of reading a stranger. Memory comes from
 * process_vm_readv: hm_target_readv() hands all regions to one syscall.
 * (hm_target_open_mem makes a target with no process whose memory comes from
 * a callback instead, for tests and fuzzing.)
 *
 * hm_target_open() proves access by reading a byte of a real mapping (for a
 * process caught in an exec, re-reading the maps for a little while); when
 * that is refused it explains which right is missing (root, CAP_SYS_PTRACE,
 * kernel.yama.ptrace_scope, uid, dumpability).
 *
 * The target's files are opened through /proc/PID/root (containers), else,
 * as maps paths are relative to our root rather than the target's (chroot),
 * through /proc/PID/map_files (hm_target_path).
 *
 * Thread states are polled often, so each thread's stat file (and, once
 * used, its syscall and schedstat files) stays open in a small
 * open-addressing table keyed by tid and is re-read with one pread();
 * descriptors of exited threads are closed when a read fails or when the
 * table is swept before growing. Threads of a target in another PID
 * namespace are translated with a NSpid table (innermost -> host tid),
 * rebuilt on a miss at most every HOST_TID_REBUILD_NS.
 *
 * hm_target_pause() stops every thread with proc/ptrace.c (waiting at most
 * PAUSE_TIMEOUT_NS for each); hm_target_resume() lets each of them run
 * again, whatever happened, so the target is never left stopped. Both must
 * run on the same thread (ptrace binds a tracee to the tracer thread). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/util.h"
#include "proc/elf.h"
#include "proc/ptrace.h"
#include "proc/target.h"

#define STATE_TABLE_MIN 64
#define STATE_TABLE_MAX 16384             /* most stat fds ever kept open */
#define HOST_TID_REBUILD_NS 50000000ull   /* 50 ms between NSpid rebuilds */
#define READV_STACK 128                   /* iovecs handled without malloc */
#define PAUSE_TIMEOUT_NS 1000000000ull    /* wait for one thread's stop (--blocking) */
#define CAP_SYS_PTRACE_BIT 19

struct maps_set {
	hm_map *maps;
	size_t n;
	char *text;             /* the maps file; paths point into it */
};

struct state_slot {
	pid_t tid;              /* 0 = empty */
	int fd;                 /* task/TID/stat */
	int sys_fd;             /* task/TID/syscall, -1 = not open, -2 = unusable */
	int sched_fd;           /* task/TID/schedstat, -1 = not open, -2 = unusable */
};

static void slot_close(struct state_slot *s)
{
	close(s->fd);
	if (s->sys_fd >= 0)
		close(s->sys_fd);
	if (s->sched_fd >= 0)
		close(s->sched_fd);
}

struct tid_pair {
	pid_t ns_tid, host_tid;
};

struct traced {
	pid_t tid;
	int signal;             /* to hand back on resume */
	int ours;               /* 0: stopped through another set (HM_PTRACE_BORROWED) */
};

struct hm_target {
	hm_target_read_fn memfn; /* hm_target_open_mem: memory from a callback */
	void *memctx;
	pid_t pid;
	int procfd;             /* /proc/PID */
	int statfd;             /* /proc/PID/stat, for hm_target_alive */
	struct maps_set maps;
	int maps_loaded;

	struct state_slot *states;
	size_t states_cap, states_used;
	int has_cputime;        /* hm_target_has_cputime: 0 not asked, 1 yes, -1 no */

	int same_pidns;
	struct tid_pair *tids;  /* sorted by ns_tid */
	size_t ntids;
	uint64_t tids_built_ns;

	struct traced *traced;  /* threads stopped by hm_target_pause */
	size_t ntraced, traced_cap;
	hm_ptrace pt;           /* and those whose stop came late */

	uint8_t *scratch;       /* hm_target_readv: merged regions */
	size_t scratch_cap;
	int *order;             /* hm_target_readv: iovs sorted by address, */
	int *members;           /* regions per merged group, */
	hm_iov *groups;         /* and the groups (order_cap of each) */
	size_t order_cap;
};

/* Read a whole (proc) file relative to dirfd into a NUL-terminated malloc'd
 * buffer. Returns NULL with errno set on failure. */
static char *slurp_at(int dirfd, const char *name, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	buf = malloc(cap);
	while (buf) {
		ssize_t r;

		if (n + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb) {
				free(buf);
				buf = NULL;
				errno = ENOMEM;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			free(buf);
			buf = NULL;
			break;
		}
		if (r == 0) {
			buf[n] = '\0';
			if (len)
				*len = n;
			break;
		}
		n += (size_t)r;
	}
	int saved = errno;

	close(fd);
	errno = saved;
	return buf;
}

/* ---- /proc/PID/stat --------------------------------------------------- */

/* The text after the last ')' of a stat line: " S ppid ..." (comm may hold
 * any byte, including ')' and spaces, so the last one is the real end). */
static const char *stat_after_comm(const char *buf, size_t n)
{
	const char *p = memrchr(buf, ')', n);

	if (!p || (size_t)(p - buf) + 2 >= n || p[1] != ' ')
		return NULL;
	return p + 2;
}

/* State letter and thread count from a stat fd; 0 when unreadable. */
static char stat_state(int fd, long *num_threads)
{
	char buf[512];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	const char *p;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = stat_after_comm(buf, (size_t)n);
	if (!p)
		return 0;
	if (num_threads) {
		/* Field 20 is num_threads; p is at field 3. */
		const char *q = p;
		int field = 3;

		*num_threads = 0;
		while (*q && field < 20) {
			if (*q++ == ' ')
				field++;
		}
		if (field == 20)
			*num_threads = strtol(q, NULL, 10);
	}
	return *p;
}

/* ---- permission diagnosis -------------------------------------------- */

static int read_int_file(const char *path, int *val)
{
	FILE *f = fopen(path, "re");
	int ok;

	if (!f)
		return 0;
	ok = fscanf(f, "%d", val) == 1;
	fclose(f);
	return ok;
}

static int have_cap_sys_ptrace(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	int have = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long caps;

		if (sscanf(line, "CapEff: %llx", &caps) == 1) {
			have = (caps >> CAP_SYS_PTRACE_BIT) & 1;
			break;
		}
	}
	fclose(f);
	return have;
}

/* Real uid of the target from its status file; -1 if unknown. */
static long target_uid(hm_target *t)
{
	char *s = slurp_at(t->procfd, "status", NULL);
	const char *p;
	long uid = -1;

	if (!s)
		return -1;
	p = strstr(s, "\nUid:");
	if (p)
		uid = strtol(p + 5, NULL, 10);
	free(s);
	return uid;
}

static int permission_error(hm_target *t)
{
	int scope = -1, cap = have_cap_sys_ptrace();
	long uid = target_uid(t);
	uid_t me = geteuid();
	const char *yama = "/proc/sys/kernel/yama/ptrace_scope";

	read_int_file(yama, &scope);
	if (scope == 3)
		return hm_error(HM_EPERM,
				"cannot read process %d: permission denied (kernel.yama.ptrace_scope is 3, "
				"which forbids all ptrace access until reboot)", t->pid);
	if (cap || me == 0)
		return hm_error(HM_EPERM,
				"cannot read process %d: permission denied although we have %s "
				"(the target is probably in another user namespace, or an LSM/seccomp "
				"policy such as AppArmor or SELinux forbids ptrace)",
				t->pid, me == 0 ? "root" : "CAP_SYS_PTRACE");
	if (scope == 2)
		return hm_error(HM_EPERM,
				"cannot read process %d: permission denied (run as root or grant "
				"CAP_SYS_PTRACE; kernel.yama.ptrace_scope is 2 here, which admits "
				"nothing else)", t->pid);
	if (uid >= 0 && (uid_t)uid != me)
		return hm_error(HM_EPERM,
				"cannot read process %d: permission denied (it belongs to uid %ld and "
				"we run as uid %u: run as root or grant CAP_SYS_PTRACE)",
				t->pid, uid, (unsigned)me);
	if (scope == 1)
		return hm_error(HM_EPERM,
				"cannot read process %d: permission denied (run as root, grant "
				"CAP_SYS_PTRACE, or set kernel.yama.ptrace_scope to 0; it is 1 here)",
				t->pid);
	return hm_error(HM_EPERM,
			"cannot read process %d: permission denied (it is not dumpable, e.g. "
			"setuid or PR_SET_DUMPABLE 0: run as root or grant CAP_SYS_PTRACE)",
			t->pid);
}

/* ---- maps ------------------------------------------------------------- */

static void maps_free(struct maps_set *m)
{
	free(m->maps);
	free(m->text);
	memset(m, 0, sizeof(*m));
}

/* Parse /proc/PID/maps: "start-end perms offset dev inode   path". The path
 * is the rest of the line and may contain spaces. */
static int maps_read(hm_target *t, struct maps_set *out)
{
	struct maps_set m = { 0 };
	size_t cap = 0, len;
	char *line, *next;

	m.text = slurp_at(t->procfd, "maps", &len);
	if (!m.text) {
		if (errno == EACCES || errno == EPERM)
			return permission_error(t);
		if (errno == ENOMEM)
			return hm_error(HM_ENOMEM, "out of memory reading maps of process %d", t->pid);
		return hm_error(HM_ENOPROC, "process %d has exited", t->pid);
	}
	for (line = m.text; *line; line = next) {
		unsigned long long start, end, off;
		char perms[8];
		int pos = 0;
		char *nl = strchr(line, '\n');
		hm_map *mp;

		if (nl) {
			*nl = '\0';
			next = nl + 1;
		} else {
			next = line + strlen(line);
		}
		unsigned dmaj = 0, dmin = 0;
		unsigned long long ino = 0;

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &off,
			   &dmaj, &dmin, &ino, &pos) < 7 || pos == 0)
			continue;
		if (m.n == cap) {
			size_t nc = cap ? cap * 2 : 256;
			hm_map *p = realloc(m.maps, nc * sizeof(*p));

			if (!p) {
				maps_free(&m);
				return hm_error(HM_ENOMEM, "out of memory reading maps of process %d",
						t->pid);
			}
			m.maps = p;
			cap = nc;
		}
		mp = &m.maps[m.n++];
		mp->start = start;
		mp->end = end;
		mp->offset = off;
		memcpy(mp->perms, perms, 4);
		mp->perms[4] = '\0';
		mp->path = line[pos] ? line + pos : NULL;
		mp->dev_major = dmaj;
		mp->dev_minor = dmin;
		mp->inode = ino;
	}
	*out = m;
	return HM_OK;
}

int hm_target_refresh_maps(hm_target *t)
{
	struct maps_set m;
	int rc;

	if (!t)
		return hm_error(HM_EINVAL, "no target");
	rc = maps_read(t, &m);
	if (rc < 0)
		return rc;
	maps_free(&t->maps);
	t->maps = m;
	t->maps_loaded = 1;
	return HM_OK;
}

const hm_map *hm_target_maps(hm_target *t, size_t *n)
{
	if (n)
		*n = 0;
	if (!t || (!t->maps_loaded && hm_target_refresh_maps(t) < 0))
		return NULL;
	if (n)
		*n = t->maps.n;
	return t->maps.maps;
}

/* The first mapping of the file that maps shows as path, or NULL. */
static const hm_map *map_of_path(const hm_target *t, const char *path)
{
	for (size_t i = 0; t->maps_loaded && i < t->maps.n; i++) {
		const hm_map *m = &t->maps.maps[i];

		if (m->path && m->inode && strcmp(m->path, path) == 0)
			return m;
	}
	return NULL;
}

char *hm_target_path(const hm_target *t, const char *path)
{
	char *s, *alt;
	const hm_map *m;
	struct stat st;

	if (!t || !path) {
		hm_error(HM_EINVAL, "bad argument to hm_target_path");
		return NULL;
	}
	if (asprintf(&s, "/proc/%d/root%s%s", t->pid, path[0] == '/' ? "" : "/", path) < 0) {
		hm_error(HM_ENOMEM, "out of memory");
		return NULL;
	}
	if (access(s, R_OK) == 0 || !(m = map_of_path(t, path)))
		return s;
	/* maps shows paths relative to our root, not the target's: a chrooted
	 * target's files are not under /proc/PID/root at that path. */
	if (asprintf(&alt, "/proc/%d/map_files/%llx-%llx", t->pid,
		     (unsigned long long)m->start, (unsigned long long)m->end) >= 0) {
		if (access(alt, R_OK) == 0) {
			free(s);
			return alt;
		}
		free(alt);
	}
	if (path[0] == '/' && stat(path, &st) == 0 && (uint64_t)st.st_ino == m->inode &&
	    major(st.st_dev) == m->dev_major && minor(st.st_dev) == m->dev_minor &&
	    (alt = strdup(path))) {
		free(s);
		return alt;
	}
	return s;
}

/* ---- open / close / memory ------------------------------------------- */

/* Show that memory is readable: read from the first mappings that allow it. */
static int probe_memory_once(hm_target *t)
{
	size_t i, tried = 0;
	int rc;

	maps_free(&t->maps);
	t->maps_loaded = 0;
	rc = maps_read(t, &t->maps);

	if (rc < 0)
		return rc;
	t->maps_loaded = 1;
	for (i = 0; i < t->maps.n && tried < 8; i++) {
		const hm_map *m = &t->maps.maps[i];
		unsigned char byte;
		struct iovec local = { &byte, 1 };
		struct iovec remote = { (void *)(uintptr_t)m->start, 1 };

		if (m->perms[0] != 'r' || (m->path && m->path[0] == '[' &&
					   strcmp(m->path, "[heap]") && strcmp(m->path, "[stack]")))
			continue;
		tried++;
		if (process_vm_readv(t->pid, &local, 1, &remote, 1, 0) == 1)
			return HM_OK;
		if (errno == EPERM || errno == EACCES)
			return permission_error(t);
		if (errno == ESRCH)
			return hm_error(HM_ENOPROC, "process %d has exited", t->pid);
		if (errno == ENOSYS)
			return hm_error(HM_ESYS, "process_vm_readv is not available on this kernel");
	}
	if (t->maps.n == 0) {
		/* An exited process (a zombie) has no mappings either. */
		long nthreads = 0;
		char state = t->statfd >= 0 ? stat_state(t->statfd, &nthreads) : 0;

		if (!state || ((state == 'Z' || state == 'X') && nthreads <= 1))
			return hm_error(HM_ENOPROC, "process %d has exited", t->pid);
		return hm_error(HM_ENOTPY, "process %d has no memory mappings (a kernel thread?)",
				t->pid);
	}
	return hm_error(HM_EIO, "cannot read any mapping of process %d: %s", t->pid,
			strerror(errno));
}

/* A process in the middle of an exec (e.g. launched through a wrapper that
 * execs Python) can show no mappings, or the old image's maps while its
 * memory is already the new one (EFAULT): read the maps again, for up to
 * PROBE_TRIES ms, before calling the process unreadable. */
#define PROBE_TRIES 50

static int probe_memory(hm_target *t)
{
	int rc = HM_EIO;

	for (int i = 0; i < PROBE_TRIES; i++) {
		if (i) {
			struct timespec ts = { 0, 1000000L };

			nanosleep(&ts, NULL);
		}
		rc = probe_memory_once(t);
		if (rc != HM_EIO && rc != HM_ENOTPY)
			break;
	}
	return rc;
}

static int same_pid_namespace(pid_t pid)
{
	char a[64], b[64], path[64];
	ssize_t na, nb;

	snprintf(path, sizeof(path), "/proc/%d/ns/pid", pid);
	na = readlink("/proc/self/ns/pid", a, sizeof(a));
	nb = readlink(path, b, sizeof(b));
	/* Unknown (no permission, old kernel): treat as shared. */
	if (na <= 0 || nb <= 0)
		return 1;
	return na == nb && memcmp(a, b, (size_t)na) == 0;
}

int hm_target_open(pid_t pid, hm_target **out)
{
	char path[64];
	hm_target *t;
	long nthreads = 0;
	char state;
	int rc;

	if (out)
		*out = NULL;
	if (!out || pid <= 0)
		return hm_error(HM_ENOPROC, "no such process: %d", (int)pid);
	snprintf(path, sizeof(path), "/proc/%d", pid);
	t = calloc(1, sizeof(*t));
	if (!t)
		return hm_error(HM_ENOMEM, "out of memory");
	t->pid = pid;
	t->pt.timeout_ns = PAUSE_TIMEOUT_NS;
	t->statfd = -1;
	t->procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->procfd < 0) {
		if (errno == ENOENT || errno == ESRCH)
			rc = hm_error(HM_ENOPROC, "no such process: %d", pid);
		else
			rc = hm_error(HM_ESYS, "cannot open /proc/%d: %s", pid, strerror(errno));
		goto fail;
	}
	t->statfd = openat(t->procfd, "stat", O_RDONLY | O_CLOEXEC);
	state = t->statfd >= 0 ? stat_state(t->statfd, &nthreads) : 0;
	if (!state) {
		rc = hm_error(HM_ENOPROC, "no such process: %d", pid);
		goto fail;
	}
	if ((state == 'Z' || state == 'X') && nthreads <= 1) {
		rc = hm_error(HM_ENOPROC, "process %d has exited", pid);
		goto fail;
	}
	rc = probe_memory(t);
	if (rc < 0)
		goto fail;
	t->same_pidns = same_pid_namespace(pid);
	*out = t;
	return HM_OK;
fail:
	hm_target_close(t);
	return rc;
}

void hm_target_close(hm_target *t)
{
	size_t i;

	if (!t)
		return;
	if (t->ntraced)
		hm_target_resume(t);
	hm_ptrace_release(&t->pt);
	for (i = 0; i < t->states_cap; i++)
		if (t->states[i].tid)
			slot_close(&t->states[i]);
	free(t->states);
	free(t->tids);
	free(t->traced);
	maps_free(&t->maps);
	if (t->statfd >= 0)
		close(t->statfd);
	if (t->procfd >= 0)
		close(t->procfd);
	free(t->scratch);
	free(t->order);
	free(t->members);
	free(t->groups);
	free(t);
}

pid_t hm_target_pid(const hm_target *t)
{
	return t ? t->pid : 0;
}

int hm_target_alive(hm_target *t)
{
	long nthreads = 0;
	char state;

	if (!t || t->statfd < 0)
		return 0;
	state = stat_state(t->statfd, &nthreads);
	if (!state)
		return 0;
	/* A zombie leader with live threads is still a running process. */
	return (state != 'Z' && state != 'X') || nthreads > 1;
}

int hm_target_read(hm_target *t, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = { buf, len };
	struct iovec remote = { (void *)(uintptr_t)addr, len };
	ssize_t n;

	if (len == 0)
		return HM_OK;
	if (t->memfn)
		return t->memfn(t->memctx, addr, buf, len) == 0 ? HM_OK :
		       hm_error(HM_EIO, "cannot read %zu bytes at 0x%llx", len,
				(unsigned long long)addr);
	n = process_vm_readv(t->pid, &local, 1, &remote, 1, 0);
	if (n == (ssize_t)len)
		return HM_OK;
	return hm_error(HM_EIO, "cannot read %zu bytes at 0x%llx in process %d: %s", len,
			(unsigned long long)addr, t->pid,
			n < 0 ? strerror(errno) : "short read");
}

/* Each extra region of a process_vm_readv call costs about as much as
 * reading a few KiB more (the kernel pins every remote iovec's pages
 * separately), so hm_target_readv merges regions that lie close together
 * into one read. A merged read only spans pages that one of the original
 * regions touches (or the page right after), so it never fails on a hole
 * that the separate reads would have skipped; if it fails anyway, the
 * regions are read as given. */
#define MERGE_SPAN_MAX (64u << 10)

static int readv_raw(hm_target *t, const hm_iov *iov, int n);

static int cmp_iov_addr(const void *a, const void *b, void *base)
{
	const hm_iov *iov = base;
	uint64_t x = iov[*(const int *)a].addr, y = iov[*(const int *)b].addr;
	return (x > y) - (x < y);
}

static int readv_merged(hm_target *t, const hm_iov *iov, int n)
{
	if (t->order_cap < (size_t)n) {
		size_t nc = (size_t)n < 16 ? 16 : (size_t)n;
		int *no = malloc(nc * sizeof(*no)), *nm = malloc(nc * sizeof(*nm));
		hm_iov *ngr = malloc(nc * sizeof(*ngr));
		if (!no || !nm || !ngr) {
			free(no);
			free(nm);
			free(ngr);
			return -1;
		}
		free(t->order);
		free(t->members);
		free(t->groups);
		t->order = no;
		t->members = nm;
		t->groups = ngr;
		t->order_cap = nc;
	}
	/* Sort by address: a sample hands over a handful of regions, mostly
	 * in order already, for which insertion sort is cheapest. */
	int *order = t->order;
	if (n <= 32) {
		for (int i = 0; i < n; i++) {
			int j = i;
			while (j > 0 && iov[order[j - 1]].addr > iov[i].addr) {
				order[j] = order[j - 1];
				j--;
			}
			order[j] = i;
		}
	} else {
		for (int i = 0; i < n; i++)
			order[i] = i;
		qsort_r(order, (size_t)n, sizeof(*order), cmp_iov_addr, (void *)iov);
	}

	/* Group the regions. A group of one region is read straight into
	 * that region's buffer; merged groups go through the scratch buffer. */
	hm_iov *groups = t->groups;
	int *members = t->members;
	int ng = 0;
	size_t total = 0;
	const uint64_t page = 4096;
	for (int k = 0; k < n; k++) {
		const hm_iov *v = &iov[order[k]];
		uint64_t end = v->addr + v->len;
		if (ng) {
			hm_iov *g = &groups[ng - 1];
			uint64_t gend = g->addr + g->len;
			uint64_t last_page = (gend - 1) / page;
			if (v->addr / page <= last_page + 1 &&
			    (end > gend ? end : gend) - g->addr <= MERGE_SPAN_MAX) {
				if (end > gend)
					g->len = end - g->addr;
				members[ng - 1]++;
				continue;
			}
		}
		members[ng] = 1;
		groups[ng++] = (hm_iov){v->addr, v->buf, v->len};
	}
	if (ng == n)
		return readv_raw(t, iov, n);     /* nothing to merge */
	for (int g = 0; g < ng; g++)
		if (members[g] > 1)
			total += groups[g].len;
	if (t->scratch_cap < total) {
		uint8_t *ns = realloc(t->scratch, total);
		if (!ns)
			return -1;
		t->scratch = ns;
		t->scratch_cap = total;
	}
	size_t off = 0;
	for (int g = 0; g < ng; g++) {
		if (members[g] > 1) {
			groups[g].buf = t->scratch + off;
			off += groups[g].len;
		}
	}
	if (readv_raw(t, groups, ng) != HM_OK)
		return readv_raw(t, iov, n);
	/* Copy each merged region out of its group (groups are sorted). */
	for (int k = 0, g = 0; k < n; k++) {
		const hm_iov *v = &iov[order[k]];
		while (v->addr + v->len > groups[g].addr + groups[g].len)
			g++;
		if (members[g] > 1)
			memcpy(v->buf, (uint8_t *)groups[g].buf + (v->addr - groups[g].addr), v->len);
	}
	return HM_OK;
}

int hm_target_readv(hm_target *t, const hm_iov *iov, int n)
{
	if (t->memfn) {
		for (int i = 0; i < n; i++)
			if (hm_target_read(t, iov[i].addr, iov[i].buf, iov[i].len) != HM_OK)
				return HM_EIO;
		return HM_OK;
	}
	if (n >= 2) {
		int rc = readv_merged(t, iov, n);
		if (rc != -1)
			return rc;
	}
	return readv_raw(t, iov, n);
}

static int readv_raw(hm_target *t, const hm_iov *iov, int n)
{
	struct iovec lstack[READV_STACK], rstack[READV_STACK];
	struct iovec *local = lstack, *remote = rstack;
	int chunk = n < IOV_MAX ? n : IOV_MAX, done = 0, rc = HM_OK;

	if (n <= 0)
		return n == 0 ? HM_OK : hm_error(HM_EINVAL, "negative iovec count");
	if (chunk > READV_STACK) {
		local = malloc((size_t)chunk * sizeof(*local));
		remote = malloc((size_t)chunk * sizeof(*remote));
		if (!local || !remote) {
			rc = hm_error(HM_ENOMEM, "out of memory");
			goto out;
		}
	}
	while (done < n) {
		int k = n - done < chunk ? n - done : chunk, i;
		size_t want = 0;
		ssize_t got;

		for (i = 0; i < k; i++) {
			const hm_iov *v = &iov[done + i];

			local[i].iov_base = v->buf;
			local[i].iov_len = v->len;
			remote[i].iov_base = (void *)(uintptr_t)v->addr;
			remote[i].iov_len = v->len;
			want += v->len;
		}
		got = process_vm_readv(t->pid, local, (unsigned long)k, remote,
				       (unsigned long)k, 0);
		if (got != (ssize_t)want) {
			rc = hm_error(HM_EIO, "cannot read %d regions (%zu bytes) in process %d: %s",
				      k, want, t->pid, got < 0 ? strerror(errno) : "short read");
			break;
		}
		done += k;
	}
out:
	if (local != lstack)
		free(local);
	if (remote != rstack)
		free(remote);
	return rc;
}

/* ---- modules ---------------------------------------------------------- */

static const char deleted_suffix[] = " (deleted)";

/* Length of a maps path without a " (deleted)" suffix; *deleted says if it
 * had one. */
static size_t path_len(const char *path, int *deleted)
{
	size_t n = strlen(path), s = sizeof(deleted_suffix) - 1;

	*deleted = n > s && strcmp(path + n - s, deleted_suffix) == 0;
	return *deleted ? n - s : n;
}

static hm_elf *open_module_elf(hm_target *t, const char *path, int deleted,
			       const hm_map *any)
{
	char mf[96];
	hm_elf *e = NULL;

	/* A deleted file may have been replaced by another at the same path;
	 * only map_files still shows the mapped one. */
	if (!deleted) {
		char *p = hm_target_path(t, path);

		if (p)
			e = hm_elf_open(p);
		free(p);
		if (e)
			return e;
	}
	snprintf(mf, sizeof(mf), "/proc/%d/map_files/%llx-%llx", t->pid,
		 (unsigned long long)any->start, (unsigned long long)any->end);
	e = hm_elf_open(mf);
	if (!e)
		hm_error(HM_EIO, "cannot open %s of process %d (via /proc/%d/root or map_files)",
			 path, t->pid, t->pid);
	return e;
}

/* Fill out for the file whose maps path equals name (first len bytes). */
static int module_at(hm_target *t, const struct maps_set *ms, const char *name,
		     size_t len, int deleted, hm_module *out)
{
	uint64_t lo = UINT64_MAX, hi = 0, vaddr, off;
	const hm_map *first = NULL, *load = NULL;
	hm_elf *e;
	size_t i;
	int rc;

	for (i = 0; i < ms->n; i++) {
		const hm_map *m = &ms->maps[i];

		if (!m->path || strcmp(m->path, name) != 0)
			continue;
		if (!first)
			first = m;
		if (m->start < lo)
			lo = m->start;
		if (m->end > hi)
			hi = m->end;
	}
	char *fname = strndup(name, len);

	if (!fname)
		return hm_error(HM_ENOMEM, "out of memory");
	e = open_module_elf(t, fname, deleted, first);
	free(fname);
	if (!e)
		return HM_EIO;
	rc = hm_elf_first_load(e, &vaddr, &off);
	hm_elf_close(e);
	if (rc < 0)
		return rc;
	for (i = 0; i < ms->n && !load; i++) {
		const hm_map *m = &ms->maps[i];

		if (m->path && strcmp(m->path, name) == 0 && m->offset == off)
			load = m;
	}
	if (!load)
		return hm_error(HM_EINVAL, "no mapping of %.*s at file offset 0x%llx in process %d",
				(int)len, name, (unsigned long long)off, t->pid);
	out->path = strndup(name, len);
	if (!out->path)
		return hm_error(HM_ENOMEM, "out of memory");
	out->start = lo;
	out->end = hi;
	out->bias = load->start - vaddr;
	return HM_OK;
}

int hm_target_find_module(hm_target *t, int (*match)(const char *basename, void *ctx),
			  void *ctx, hm_module *out)
{
	struct maps_set ms;
	const char *tried = NULL;
	int rc, last = 1;       /* 1: nothing matched yet */
	size_t i;

	if (!t || !match || !out)
		return hm_error(HM_EINVAL, "bad argument to hm_target_find_module");
	memset(out, 0, sizeof(*out));
	/* A private, fresh copy: the module may have been loaded since the
	 * last refresh, and callers may be iterating hm_target_maps(). */
	rc = maps_read(t, &ms);
	if (rc < 0)
		return rc;
	for (i = 0; i < ms.n; i++) {
		const char *p = ms.maps[i].path, *base;
		size_t len;
		int deleted;
		char *bname;

		if (!p || p[0] != '/' || (tried && strcmp(p, tried) == 0))
			continue;
		len = path_len(p, &deleted);
		base = memrchr(p, '/', len) + 1;
		bname = strndup(base, len - (size_t)(base - p));
		if (!bname) {
			last = hm_error(HM_ENOMEM, "out of memory");
			break;
		}
		rc = match(bname, ctx);
		free(bname);
		if (!rc)
			continue;
		tried = p;
		last = module_at(t, &ms, p, len, deleted, out);
		if (last == HM_OK)
			break;
		/* Not a usable ELF file: keep looking at the next match. */
	}
	maps_free(&ms);
	if (last <= 0)
		return last;
	return hm_error(HM_ENOTPY, "no matching module mapped in process %d", t->pid);
}

void hm_module_free(hm_module *m)
{
	if (!m)
		return;
	free(m->path);
	m->path = NULL;
}

/* ---- threads ---------------------------------------------------------- */

int hm_target_threads(hm_target *t, pid_t *tids, int max)
{
	int fd, count = 0;
	DIR *d;
	struct dirent *de;

	if (!t || (max > 0 && !tids) || max < 0)
		return hm_error(HM_EINVAL, "bad argument to hm_target_threads");
	fd = openat(t->procfd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return hm_error(HM_ENOPROC, "process %d has exited", t->pid);
	}
	while (count < max && (de = readdir(d))) {
		long v;
		char *end;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		v = strtol(de->d_name, &end, 10);
		if (*end == '\0' && v > 0)
			tids[count++] = (pid_t)v;
	}
	closedir(d);
	return count;
}

static int cmp_ns_tid(const void *a, const void *b)
{
	const struct tid_pair *x = a, *y = b;

	return (x->ns_tid > y->ns_tid) - (x->ns_tid < y->ns_tid);
}

/* Rebuild ns tid -> host tid from the NSpid lines of every thread. */
static void host_tids_rebuild(hm_target *t)
{
	int fd = openat(t->procfd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	size_t cap = 0, n = 0;
	struct tid_pair *pairs = NULL;
	struct dirent *de;
	DIR *d;

	t->tids_built_ns = hm_mono_ns();
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		char name[300], *s, *p;
		long host, inner = 0;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(name, sizeof(name), "task/%s/status", de->d_name);
		s = slurp_at(t->procfd, name, NULL);
		if (!s)
			continue;
		p = strstr(s, "\nNSpid:");
		if (p) {
			char *q = p + 7, *end;

			host = strtol(q, &end, 10);
			/* The last number on the line is the innermost namespace. */
			for (q = end; *q && *q != '\n'; q = end) {
				long v = strtol(q, &end, 10);

				if (end == q)
					break;
				inner = v;
			}
			if (!inner)
				inner = host;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct tid_pair *np = realloc(pairs, nc * sizeof(*np));

				if (!np) {
					free(s);
					break;
				}
				pairs = np;
				cap = nc;
			}
			pairs[n].ns_tid = (pid_t)inner;
			pairs[n].host_tid = (pid_t)host;
			n++;
		}
		free(s);
	}
	closedir(d);
	if (n)
		qsort(pairs, n, sizeof(*pairs), cmp_ns_tid);
	free(t->tids);
	t->tids = pairs;
	t->ntids = n;
}

static pid_t host_tid_lookup(const hm_target *t, pid_t ns_tid)
{
	struct tid_pair key = { ns_tid, 0 };
	const struct tid_pair *p;

	if (!t->ntids)
		return 0;
	p = bsearch(&key, t->tids, t->ntids, sizeof(key), cmp_ns_tid);
	return p ? p->host_tid : 0;
}

pid_t hm_target_host_tid(hm_target *t, pid_t ns_tid)
{
	pid_t host;

	if (!t || ns_tid <= 0)
		return 0;
	if (t->same_pidns)
		return ns_tid;
	host = host_tid_lookup(t, ns_tid);
	if (host)
		return host;
	if (t->tids && hm_mono_ns() - t->tids_built_ns < HOST_TID_REBUILD_NS)
		return 0;
	host_tids_rebuild(t);
	return host_tid_lookup(t, ns_tid);
}

/* Thread-state fd table: open addressing, linear probing, power-of-two
 * capacity, backward-shift deletion (no tombstones). */
static size_t slot_of(pid_t tid, size_t cap)
{
	return ((uint32_t)tid * 2654435761u) & (cap - 1);
}

static void state_remove(hm_target *t, size_t i)
{
	size_t mask = t->states_cap - 1, j = i;

	slot_close(&t->states[i]);
	t->states[i].tid = 0;
	t->states_used--;
	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (!t->states[j].tid)
			return;
		home = slot_of(t->states[j].tid, t->states_cap);
		/* Move j back into the hole unless its home lies in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			t->states[i] = t->states[j];
			t->states[j].tid = 0;
			i = j;
		}
	}
}

static struct state_slot *state_find(hm_target *t, pid_t tid)
{
	size_t i;

	if (!t->states_cap)
		return NULL;
	for (i = slot_of(tid, t->states_cap); t->states[i].tid;
	     i = (i + 1) & (t->states_cap - 1))
		if (t->states[i].tid == tid)
			return &t->states[i];
	return NULL;
}

static struct state_slot *state_put(struct state_slot *tab, size_t cap,
				    const struct state_slot *from)
{
	size_t i = slot_of(from->tid, cap);

	while (tab[i].tid)
		i = (i + 1) & (cap - 1);
	tab[i] = *from;
	return &tab[i];
}

/* Make room for one more entry: drop dead threads, then grow. Returns 0 if
 * the table is at its cap and full. */
static int state_reserve(hm_target *t)
{
	size_t i, nc;
	struct state_slot *nt;

	if (t->states_cap && (t->states_used + 1) * 2 <= t->states_cap)
		return 1;
	for (i = 0; i < t->states_cap;) {
		char c;

		if (t->states[i].tid && pread(t->states[i].fd, &c, 1, 0) != 1)
			state_remove(t, i);     /* slot i may now hold another entry */
		else
			i++;
	}
	if (t->states_cap && (t->states_used + 1) * 2 <= t->states_cap)
		return 1;
	nc = t->states_cap ? t->states_cap * 2 : STATE_TABLE_MIN;
	if (nc > STATE_TABLE_MAX)
		return 0;
	nt = calloc(nc, sizeof(*nt));
	if (!nt)
		return 0;
	for (i = 0; i < t->states_cap; i++)
		if (t->states[i].tid)
			state_put(nt, nc, &t->states[i]);
	free(t->states);
	t->states = nt;
	t->states_cap = nc;
	return 1;
}

/* A thread that has exited but is still listed ('X' dead, or 'Z': a
 * zombie, e.g. one a tracer has not reaped yet) runs nothing: it is gone. */
static char live_state(char state)
{
	return state == 'X' || state == 'Z' ? 0 : state;
}

/* The slot of tid, opening its stat file if needed (NULL if the thread is
 * gone). *state gets the state letter read while opening, else 0. */
static struct state_slot *state_slot_get(hm_target *t, pid_t tid, char *state)
{
	struct state_slot *s;
	char name[64];
	int fd;

	*state = 0;
	s = state_find(t, tid);
	if (s)
		return s;
	snprintf(name, sizeof(name), "task/%d/stat", tid);
	fd = openat(t->procfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	*state = live_state(stat_state(fd, NULL));
	if (*state && state_reserve(t)) {
		struct state_slot n = {tid, fd, -1, -1};

		s = state_put(t->states, t->states_cap, &n);
		t->states_used++;
		return s;
	}
	close(fd);
	return NULL;
}

char hm_target_thread_state(hm_target *t, pid_t tid)
{
	struct state_slot *s;
	char state;

	if (!t || tid <= 0)
		return 0;
	s = state_slot_get(t, tid, &state);
	if (!s || state)
		return state;
	state = live_state(stat_state(s->fd, NULL));
	if (!state)
		state_remove(t, (size_t)(s - t->states));
	return state;
}

char hm_target_thread_oncpu(hm_target *t, pid_t tid)
{
	struct state_slot *s;
	char state, buf[16], name[64];
	ssize_t n;

	if (!t || tid <= 0)
		return 0;
	s = state_slot_get(t, tid, &state);
	if (!s || state)
		return state;
	/* task/TID/syscall answers "running" for a runnable thread without
	 * the statistics that make the stat file several times dearer; any
	 * other answer (a syscall number, -1) means it is blocked. Kernels
	 * without it, or odd answers, fall back to the stat file. */
	if (s->sys_fd == -1) {
		snprintf(name, sizeof(name), "task/%d/syscall", tid);
		s->sys_fd = openat(t->procfd, name, O_RDONLY | O_CLOEXEC);
		if (s->sys_fd < 0)
			s->sys_fd = -2;
	}
	if (s->sys_fd >= 0 && (n = pread(s->sys_fd, buf, sizeof(buf) - 1, 0)) > 0) {
		buf[n] = 0;
		if (!strncmp(buf, "running", 7))
			return 'R';
		if (buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9'))
			return 'S';
	}
	state = live_state(stat_state(s->fd, NULL));
	if (!state)
		state_remove(t, (size_t)(s - t->states));
	return state;
}

int hm_target_thread_cputime(hm_target *t, pid_t tid, uint64_t *ns)
{
	struct state_slot *s;
	char state, buf[96], name[64], *end;
	ssize_t n;
	unsigned long long v;

	if (!t || tid <= 0)
		return -1;
	s = state_slot_get(t, tid, &state);
	if (!s)
		return -1;
	if (s->sched_fd == -1) {
		snprintf(name, sizeof(name), "task/%d/schedstat", tid);
		s->sched_fd = openat(t->procfd, name, O_RDONLY | O_CLOEXEC);
		if (s->sched_fd < 0)
			s->sched_fd = -2;
	}
	if (s->sched_fd < 0)
		return 0;
	n = pread(s->sched_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0) {
		/* ESRCH: the thread is gone (its stat file says so too). */
		if (!stat_state(s->fd, NULL)) {
			state_remove(t, (size_t)(s - t->states));
			return -1;
		}
		return 0;
	}
	buf[n] = 0;
	v = strtoull(buf, &end, 10);
	if (end == buf || *end != ' ') {
		close(s->sched_fd);
		s->sched_fd = -2;
		return 0;
	}
	/* 0: a thread that has not been charged yet (it just started), or
	 * "0 0 0" from a kernel that keeps no scheduler statistics. */
	if (!v)
		return 0;
	*ns = (uint64_t)v;
	return 1;
}

int hm_target_has_cputime(hm_target *t)
{
	uint64_t ns;

	if (!t->has_cputime)
		t->has_cputime = hm_target_thread_cputime(t, t->pid, &ns) > 0 ? 1 : -1;
	return t->has_cputime > 0;
}

/* ---- pause / resume --------------------------------------------------- */

static struct traced *traced_find(hm_target *t, pid_t tid)
{
	size_t i;

	for (i = 0; i < t->ntraced; i++)
		if (t->traced[i].tid == tid)
			return &t->traced[i];
	return NULL;
}

/* Seize and stop one thread (proc/ptrace.h). HM_OK, 1 if it vanished, or <0. */
static int pause_thread(hm_target *t, pid_t tid)
{
	struct traced *tr;
	int r;

	if (t->ntraced == t->traced_cap) {
		size_t nc = t->traced_cap ? t->traced_cap * 2 : 16;
		struct traced *p = realloc(t->traced, nc * sizeof(*p));

		if (!p)
			return hm_error(HM_ENOMEM, "out of memory");
		t->traced = p;
		t->traced_cap = nc;
	}
	tr = &t->traced[t->ntraced];
	*tr = (struct traced){ tid, 0, 1 };
	r = hm_ptrace_stop(&t->pt, tid, &tr->signal);
	if (r == HM_ENOPROC)
		return 1;
	if (r < 0)
		return hm_error(r, "cannot pause process %d: %s", t->pid, hm_errmsg());
	tr->ours = r != HM_PTRACE_BORROWED;
	t->ntraced++;
	return HM_OK;
}

int hm_target_pause(hm_target *t)
{
	pid_t stack_tids[256], *tids = stack_tids;
	int max = 256, round, rc = HM_OK;

	if (!t)
		return hm_error(HM_EINVAL, "no target");
	if (t->ntraced)
		return HM_OK;   /* already paused */
	if (t->pid == getpid())
		return hm_error(HM_EINVAL, "cannot pause our own process");
	/* Threads may be born while we stop the others: list again until a
	 * round finds nobody new. */
	for (round = 0; round < 16; round++) {
		int n, i, fresh = 0;

		n = hm_target_threads(t, tids, max);
		if (n < 0) {
			rc = n;
			break;
		}
		if (n == max) {
			pid_t *nt = malloc((size_t)max * 4 * sizeof(*nt));

			if (!nt) {
				rc = hm_error(HM_ENOMEM, "out of memory");
				break;
			}
			if (tids != stack_tids)
				free(tids);
			tids = nt;
			max *= 4;
			round--;
			continue;
		}
		for (i = 0; i < n && rc == HM_OK; i++) {
			int r;

			if (traced_find(t, tids[i]))
				continue;
			r = pause_thread(t, tids[i]);
			if (r < 0)
				rc = r;
			else if (r == HM_OK)
				fresh++;
		}
		if (rc < 0 || !fresh)
			break;
	}
	if (tids != stack_tids)
		free(tids);
	if (rc == HM_OK && t->ntraced == 0)
		rc = hm_error(HM_ENOPROC, "process %d has exited", t->pid);
	if (rc < 0) {
		hm_target_resume(t);
		return rc;
	}
	return HM_OK;
}

void hm_target_resume(hm_target *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->ntraced; i++)
		if (t->traced[i].ours)
			hm_ptrace_resume(&t->pt, t->traced[i].tid, t->traced[i].signal);
	t->ntraced = 0;
	if (t->pt.nlate)
		hm_ptrace_reap(&t->pt, 0);
}

/* ---- cmdline / environ ------------------------------------------------ */

static char *read_proc_blob(const hm_target *t, const char *name, size_t *len)
{
	char *s;

	if (len)
		*len = 0;
	if (!t) {
		hm_error(HM_EINVAL, "no target");
		return NULL;
	}
	s = slurp_at(t->procfd, name, len);
	if (!s)
		hm_error(errno == EACCES || errno == EPERM ? HM_EPERM : HM_ENOPROC,
			 "cannot read /proc/%d/%s: %s", t->pid, name, strerror(errno));
	return s;
}

char *hm_target_cmdline(const hm_target *t, size_t *len)
{
	return read_proc_blob(t, "cmdline", len);
}

char *hm_target_environ(const hm_target *t, size_t *len)
{
	return read_proc_blob(t, "environ", len);
}

/* ---- a target made of a memory callback (tests, fuzzing) --------------- */

int hm_target_open_mem(hm_target_read_fn read, void *ctx, hm_target **out)
{
	hm_target *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (!t)
		return hm_error(HM_ENOMEM, "out of memory");
	t->memfn = read;
	t->memctx = ctx;
	t->procfd = t->statfd = -1;
	t->same_pidns = 1;
	*out = t;
	return HM_OK;
}
