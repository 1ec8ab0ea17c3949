/* perf.c - per-thread cpu-clock samples through perf_event_open (perf.h).
 *
 * Ring protocol: the kernel writes records at data_head (read with acquire
 * semantics), we consume up to it and publish data_tail (release). A record
 * that wraps around the end of the ring is copied out first. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "proc/perf.h"

#define MAX_THREADS 4096
#define MAX_CPUS 1024

struct ring {
	int fd;
	void *base;              /* metadata page + data */
	const char *data;
	size_t data_size;        /* power of two */
};

struct hm_perf {
	struct ring *rings;      /* one per CPU */
	int nrings;
	int *fds;                /* the other events (writing to those rings) */
	int nfds, fds_cap;
	int kernel;
	int switches;            /* context switch records asked for */
	int *swfds;              /* their events */
	int nswfds;
	uint64_t lost;
	size_t page;
};

static long perf_open(struct perf_event_attr *a, pid_t tid, int cpu)
{
	return syscall(SYS_perf_event_open, a, tid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
}

static void fill_attr(struct perf_event_attr *a, double rate_hz, int kernel, int from_exec)
{
	memset(a, 0, sizeof *a);
	a->size = sizeof *a;
	a->type = PERF_TYPE_SOFTWARE;
	a->config = PERF_COUNT_SW_CPU_CLOCK;
	uint64_t period = (uint64_t)(1e9 / rate_hz);
	a->sample_period = period ? period : 1;
	a->sample_type = PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME;
	a->inherit = 1;
	a->exclude_kernel = !kernel;
	a->exclude_hv = 1;
	a->use_clockid = 1;
	a->clockid = CLOCK_MONOTONIC;
	/* a launched program held before its exec: counted from the exec */
	a->disabled = !!from_exec;
	a->enable_on_exec = !!from_exec;
	/* wake a poller at each sample (hm_perf_wait): homura walks the
	 * program's stacks right after it, while a short burst of CPU is
	 * still where the sample was taken */
	a->wakeup_events = 1;
}

/* The context switches come from a second event per (thread, CPU), a
 * dummy one that only reports them (with the samples' pid/tid and time),
 * so that they can be turned off alone. */
static void fill_switch_attr(struct perf_event_attr *a, double rate_hz, int kernel, int from_exec)
{
	fill_attr(a, rate_hz, kernel, from_exec);
	a->config = PERF_COUNT_SW_DUMMY;
	a->wakeup_events = 0;
	a->context_switch = 1;
	a->sample_id_all = 1;
}

static int list_tids(pid_t pid, pid_t *tids, int max)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < max) {
		char *end;
		long v = strtol(e->d_name, &end, 10);
		if (*end || v <= 0)
			continue;
		tids[n++] = (pid_t)v;
	}
	closedir(d);
	return n;
}

static int add_ring(hm_perf *p, int fd, size_t pages)
{
	size_t len = (pages + 1) * p->page;
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED && pages > 8) {
		pages = 8;
		len = (pages + 1) * p->page;
		m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	}
	if (m == MAP_FAILED)
		return -1;
	struct ring *r = &p->rings[p->nrings++];
	r->fd = fd;
	r->base = m;
	r->data_size = pages * p->page;
	struct perf_event_mmap_page *meta = m;
	r->data = (const char *)m + (meta->data_offset ? meta->data_offset : p->page);
	return 0;
}

/* CPUs that can be online (perf's per-CPU events need a CPU number). */
static int ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_CONF);
	return n < 1 ? 1 : n > MAX_CPUS ? MAX_CPUS : (int)n;
}

static int perf_open_all(pid_t pid, double rate_hz, int from_exec, hm_perf **out)
{
	*out = NULL;
	if (!(rate_hz >= 1))
		return hm_error(HM_EINVAL, "perf: invalid rate");
	hm_perf *p = calloc(1, sizeof *p);
	pid_t *tids = malloc(MAX_THREADS * sizeof *tids);
	int ncpu = ncpus();
	if (!p || !tids || !(p->rings = calloc((size_t)ncpu, sizeof *p->rings)) ||
	    !(p->fds = malloc(sizeof *p->fds * 1024))) {
		free(tids);
		if (p) {
			free(p->rings);
			free(p->fds);
		}
		free(p);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	p->fds_cap = 1024;
	p->page = (size_t)sysconf(_SC_PAGESIZE);
	p->kernel = 1;
	/* Context switches: off. Measured, their records cost a program that
	 * switches a lot far more than the records themselves (a two-thread
	 * pipe ping-pong of 200000 switches: 0.38 s of CPU bare and with
	 * samples alone, 0.66-1.10 s with switches, even when they were
	 * closed after its first 100 ms). The join that uses them
	 * (analyze/cpu.h) is kept for when a cheap source is found. */
	p->switches = 0;
	int n = list_tids(pid, tids, MAX_THREADS);
	if (n <= 0) {
		free(tids);
		hm_perf_close(p);
		return hm_error(HM_ENOPROC, "perf: process %d is gone", (int)pid);
	}
	/* Room for an event per thread and CPU. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* Events per (thread, CPU) with inherit: the kernel lets inherited
	 * events be mmap'd only when bound to a CPU. All events of one CPU
	 * write to one ring (PERF_EVENT_IOC_SET_OUTPUT). */
	int *ring_of_cpu = malloc((size_t)ncpu * sizeof *ring_of_cpu);
	if (!ring_of_cpu) {
		free(tids);
		hm_perf_close(p);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	for (int c = 0; c < ncpu; c++)
		ring_of_cpu[c] = -1;
	int first_err = 0, opened = 0;
	/* Drained every millisecond or so: 256 KiB (8000 samples) per CPU is
	 * plenty; less on big machines, as locked memory is limited. */
	size_t ring_pages = ncpu <= 4 ? 64 : ncpu <= 16 ? 16 : 8;
	for (int i = 0; i < n; i++) {
		for (int c = 0; c < ncpu; c++) {
			struct perf_event_attr a;
			fill_attr(&a, rate_hz, p->kernel, from_exec);
			long fd = perf_open(&a, tids[i], c);
			if (fd < 0 && (errno == EACCES || errno == EPERM) && p->kernel && !opened) {
				/* kernel IPs refused: user IPs only, for every event */
				p->kernel = 0;
				fill_attr(&a, rate_hz, 0, from_exec);
				fd = perf_open(&a, tids[i], c);
			}
			if (fd < 0) {
				if (!first_err && errno != ENODEV)
					first_err = errno;
				continue;    /* offline CPU, or the thread just exited */
			}
			int ok;
			if (ring_of_cpu[c] >= 0)
				ok = ioctl((int)fd, PERF_EVENT_IOC_SET_OUTPUT, p->rings[ring_of_cpu[c]].fd) == 0;
			else if ((ok = add_ring(p, (int)fd, ring_pages) == 0))
				ring_of_cpu[c] = p->nrings - 1;
			if (!ok) {
				if (!first_err)
					first_err = errno;
				close((int)fd);
				continue;
			}
			opened++;
			if (p->switches) {
				struct perf_event_attr sa;
				fill_switch_attr(&sa, rate_hz, p->kernel, from_exec);
				long sfd = perf_open(&sa, tids[i], c);
				int *nf = sfd >= 0 ? realloc(p->swfds, sizeof *nf * (size_t)(p->nswfds + 1)) : NULL;
				if (nf)
					p->swfds = nf;
				if (sfd >= 0 && nf &&
				    ioctl((int)sfd, PERF_EVENT_IOC_SET_OUTPUT, p->rings[ring_of_cpu[c]].fd) == 0) {
					p->swfds[p->nswfds++] = (int)sfd;
				} else {
					/* a kernel before 4.3: no switch records (none
					 * at all, rather than for some threads only) */
					if (sfd >= 0)
						close((int)sfd);
					hm_perf_switches_off(p);
					p->switches = 0;
				}
			}
			if (ring_of_cpu[c] >= 0 && p->rings[ring_of_cpu[c]].fd == (int)fd)
				continue;    /* closed with its ring */
			if (p->nfds == p->fds_cap) {
				int *f = realloc(p->fds, sizeof *f * (size_t)p->fds_cap * 2);
				if (!f) {
					close((int)fd);
					continue;
				}
				p->fds = f;
				p->fds_cap *= 2;
			}
			p->fds[p->nfds++] = (int)fd;
		}
	}
	free(ring_of_cpu);
	free(tids);
	if (p->nrings == 0) {
		int e = first_err;
		hm_perf_close(p);
		if (e == EACCES || e == EPERM)
			return hm_error(HM_EPERM,
					"perf events refused (%s): run as root, or with CAP_PERFMON, "
					"or lower kernel.perf_event_paranoid",
					strerror(e));
		if (e == ESRCH)
			return hm_error(HM_ENOPROC, "perf: process %d is gone", (int)pid);
		return hm_error(HM_EINVAL, "perf events unavailable: %s", strerror(e ? e : EINVAL));
	}
	*out = p;
	return HM_OK;
}

int hm_perf_open(pid_t pid, double rate_hz, hm_perf **out)
{
	return perf_open_all(pid, rate_hz, 0, out);
}

int hm_perf_open_exec(pid_t pid, double rate_hz, hm_perf **out)
{
	return perf_open_all(pid, rate_hz, 1, out);
}

void hm_perf_close(hm_perf *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->nrings; i++) {
		munmap(p->rings[i].base, p->rings[i].data_size + p->page);
		close(p->rings[i].fd);
	}
	for (int i = 0; i < p->nfds; i++)
		close(p->fds[i]);
	for (int i = 0; i < p->nswfds; i++)
		close(p->swfds[i]);
	free(p->swfds);
	free(p->rings);
	free(p->fds);
	free(p);
}

int hm_perf_kernel_ips(const hm_perf *p)
{
	return p->kernel;
}

int hm_perf_wait(hm_perf *p, int extra_fd, uint64_t timeout_ns)
{
	struct pollfd fds[MAX_CPUS + 1];
	int n = 0;
	for (int i = 0; i < p->nrings && n < MAX_CPUS; i++)
		fds[n++] = (struct pollfd){.fd = p->rings[i].fd, .events = POLLIN};
	if (extra_fd >= 0)
		fds[n++] = (struct pollfd){.fd = extra_fd, .events = POLLIN};
	struct timespec ts = {(time_t)(timeout_ns / 1000000000ull), (long)(timeout_ns % 1000000000ull)};
	int r = ppoll(fds, (nfds_t)n, &ts, NULL);
	if (r <= 0)
		return 0;
	if (extra_fd >= 0 && (fds[n - 1].revents & (POLLIN | POLLERR | POLLHUP)))
		return 2;
	return 1;
}

int hm_perf_switches(const hm_perf *p)
{
	return p->switches;
}

void hm_perf_switches_off(hm_perf *p)
{
	/* closed, with the events inherited from them: a disabled event
	 * still costs each context switch its turn in the thread's list */
	for (int i = 0; i < p->nswfds; i++)
		close(p->swfds[i]);
	p->nswfds = 0;
	p->switches = 0;
}

uint64_t hm_perf_lost(const hm_perf *p)
{
	return p->lost;
}

/* Copy len bytes at ring offset off (wrapping). */
static void ring_copy(const struct ring *r, uint64_t off, void *dst, size_t len)
{
	const char *data = r->data;
	size_t pos = (size_t)(off & (r->data_size - 1));
	size_t first = r->data_size - pos < len ? r->data_size - pos : len;
	memcpy(dst, data + pos, first);
	if (first < len)
		memcpy((char *)dst + first, data, len - first);
}

static size_t drain_ring(hm_perf *p, struct ring *r, hm_perf_fn fn, void *ctx)
{
	struct perf_event_mmap_page *meta = r->base;
	uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
	uint64_t tail = meta->data_tail;
	size_t n = 0;
	unsigned char buf[256];
	while (tail < head) {
		struct perf_event_header h;
		ring_copy(r, tail, &h, sizeof h);
		if (h.size < sizeof h || h.size > r->data_size || tail + h.size > head)
			break;
		if (h.type == PERF_RECORD_SAMPLE && h.size >= sizeof h + 24 && h.size <= sizeof buf) {
			ring_copy(r, tail, buf, h.size);
			hm_perf_sample s;
			uint32_t pt[2];
			memcpy(&s.ip, buf + sizeof h, 8);
			memcpy(pt, buf + sizeof h + 8, 8);
			memcpy(&s.t_ns, buf + sizeof h + 16, 8);
			s.pid = (pid_t)pt[0];
			s.tid = (pid_t)pt[1];
			uint16_t cpumode = h.misc & PERF_RECORD_MISC_CPUMODE_MASK;
			s.kernel = cpumode == PERF_RECORD_MISC_KERNEL;
			s.kind = HM_PERF_SAMPLE;
			fn(ctx, &s);
			n++;
		} else if (h.type == PERF_RECORD_SWITCH && h.size >= sizeof h + 16) {
			/* sample_id: pid, tid, time (the sample_type's TID|TIME) */
			hm_perf_sample s;
			uint32_t pt[2];
			ring_copy(r, tail + sizeof h, pt, 8);
			ring_copy(r, tail + sizeof h + 8, &s.t_ns, 8);
			s.ip = 0;
			s.pid = (pid_t)pt[0];
			s.tid = (pid_t)pt[1];
			s.kernel = 0;
			s.kind = !(h.misc & PERF_RECORD_MISC_SWITCH_OUT) ? HM_PERF_SWITCH_IN
				 : (h.misc & PERF_RECORD_MISC_SWITCH_OUT_PREEMPT) ? HM_PERF_SWITCH_PREEMPT
				 : HM_PERF_SWITCH_OUT;
			fn(ctx, &s);
		} else if (h.type == PERF_RECORD_LOST && h.size >= sizeof h + 16) {
			uint64_t lost;
			ring_copy(r, tail + sizeof h + 8, &lost, 8);
			p->lost += lost;
		}
		tail += h.size;
	}
	__atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
	return n;
}

size_t hm_perf_drain(hm_perf *p, hm_perf_fn fn, void *ctx)
{
	size_t n = 0;
	for (int i = 0; i < p->nrings; i++)
		n += drain_ring(p, &p->rings[i], fn, ctx);
	return n;
}
