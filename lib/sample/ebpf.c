/* ebpf.c - the user-space half of `record --ebpf` (sample/ebpf.h): loads the
 * in-kernel Python stack walker, opens one cpu-clock perf event per CPU for
 * it, tells it how to walk the target (its layout offsets and interpreter,
 * and the thread states of threads it cannot find itself), reads the
 * per-stack counts it keeps (about once a second) and drains its ring
 * buffer (samples that did not fit in the counts), and turns each into
 * profile samples. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "base/error.h"
#include "sample/ebpf.h"

#ifndef HM_HAVE_EBPF

int hm_ebpf_built(void)
{
	return 0;
}

#define NOT_BUILT "--ebpf: this homura was built without BPF support (clang, bpftool and libbpf-dev were missing)"

int hm_ebpf_open(double rate_hz, int kernel_stacks, hm_ebpf **out)
{
	*out = NULL;
	return hm_error(HM_ESYS, NOT_BUILT);
}

int hm_ebpf_watch(hm_ebpf *e, pid_t pid, hm_python *py, void *owner)
{
	return hm_error(HM_ESYS, NOT_BUILT);
}

void hm_ebpf_unwatch(hm_ebpf *e, pid_t pid)
{
}

int hm_ebpf_poll(hm_ebpf *e, int timeout_ms, hm_ebpf_sample_fn fn, void *arg)
{
	return hm_error(HM_ESYS, NOT_BUILT);
}

void hm_ebpf_counts_get(hm_ebpf *e, hm_ebpf_counts *c)
{
	memset(c, 0, sizeof *c);
}

uint64_t hm_ebpf_invalid(const hm_ebpf *e)
{
	return 0;
}

int hm_ebpf_wake_ms(const hm_ebpf *e)
{
	return 50;
}

void hm_ebpf_close(hm_ebpf *e)
{
}

#else

#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "python/pylayout.h"
#include "sample/bpf/pystack.h"
#include "sample/pystack.skel.h"

#define MAX_CPUS 1024
#define TID_REFRESH_NS 2000000000ull     /* re-send thread states every 2 s (3.11+: the
					  * kernel side finds new threads and checks
					  * the ones it knows by their native id) */
#define TID_REFRESH_OLD_NS 50000000ull   /* <=3.10: the kernel cannot find them itself */
#define AGG_READ_NS 1000000000ull        /* read the aggregates every second, */
#define AGG_FIRST_NS 50000000ull         /* and 50 ms after a new process is watched,
					  * doubling from there: its code objects are
					  * resolved while it runs, even if it is short */

int hm_ebpf_built(void)
{
	return 1;
}

struct watched {
	pid_t pid;                  /* 0: free slot */
	hm_python *py;
	void *owner;
	struct hm_bpf_proc pi;
	int interp_sent;
	uint64_t refresh_ns;        /* how often thread states are re-sent */
	uint64_t last_threads;
};

struct hm_ebpf {
	struct hm_pystack *skel;
	struct ring_buffer *rb;
	struct bpf_link **links;
	int *fds;
	int ncpu;
	int stats_fd;
	int64_t weight_ns;
	uint64_t mono_to_real;      /* add to a CLOCK_MONOTONIC time for unix time */
	struct watched *w;
	int nw, capw;
	struct watched *last;       /* the last event's process */
	hm_ebpf_sample_fn fn;       /* during a poll */
	void *arg;
	int delivered;
	hm_ebpf_counts c;
	hm_pythread th;
	uint64_t pairs[2 * HM_BPF_MAX_FRAMES];
	/* in-kernel aggregation */
	int agg;                    /* on (the default) */
	int agg_max;                /* the aggs map's size */
	uint64_t agg_last;          /* when it was last read */
	uint64_t agg_every;         /* and how long after that it is read again */
	struct hm_bpf_agg_key *agg_keys;
	struct hm_bpf_agg *agg_vals;
	/* kernel stacks (--kernel) */
	int kstack_on;
	struct ksym *ksyms;         /* /proc/kallsyms text symbols, by address */
	size_t nksyms;
	char *ksym_names;
	int ksyms_loaded;
	const char *kf[HM_BPF_KSTACK_DEPTH];
};

struct ksym {
	uint64_t addr;
	size_t name;                /* offset in ksym_names */
};

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_WARN && getenv("HOMURA_BPF_DEBUG"))
		return vfprintf(stderr, fmt, ap);
	return 0;
}

static struct watched *find_watched(hm_ebpf *e, pid_t pid)
{
	if (e->last && e->last->pid == pid)
		return e->last;
	for (int i = 0; i < e->nw; i++)
		if (e->w[i].pid == pid)
			return e->last = &e->w[i];
	return NULL;
}

/* Deliver one record (from the ring, or an aggregate's first sample) as
 * count samples, the latest at t_ns (CLOCK_MONOTONIC). */
static void deliver(hm_ebpf *E, const struct hm_bpf_event *e, size_t len, uint64_t count,
		    uint64_t t_ns, const char *const *kframes, int nk)
{
	size_t head = offsetof(struct hm_bpf_event, frames);
	if (len < head)
		return;
	struct watched *w = find_watched(E, (pid_t)e->pid);
	if (!w)
		return;                     /* unwatched since */
	if (e->nframes > HM_BPF_MAX_FRAMES || len < head + e->nframes * sizeof e->frames[0]) {
		E->c.invalid += count;
		return;
	}
	if (e->status == HM_BPF_NO_THREAD || e->status == HM_BPF_NO_FRAME) {
		E->c.no_python += count;
		return;
	}
	if (e->status != HM_BPF_OK) {
		E->c.invalid += count;
		return;
	}
	int n = (int)e->nframes;
	for (int i = 0; i < n; i++) {
		E->pairs[2 * i] = e->frames[i].code;
		E->pairs[2 * i + 1] = e->frames[i].instr;
	}
	if (hm_python_resolve(w->py, E->pairs, n, &E->th) != 0) {
		E->c.invalid += count;
		return;
	}
	if (E->th.nframes == 0) {
		E->c.no_python += count;
		return;
	}
	E->th.tid = (pid_t)e->tid;
	E->th.tstate = e->tstate;
	E->th.truncated |= e->truncated != 0;
	E->th.name = NULL;
	E->c.samples += count;
	E->delivered += (int)count;
	E->fn(E->arg, w->owner, &E->th, (int64_t)count, E->weight_ns * (int64_t)count,
	      t_ns + E->mono_to_real, kframes, nk);
}

static int on_event(void *ctx, void *data, size_t len)
{
	hm_ebpf *E = ctx;
	const struct hm_bpf_event *e = data;
	if (len >= offsetof(struct hm_bpf_event, frames))
		deliver(E, e, len, 1, e->t_ns, NULL, 0);
	return 0;
}

/* ---- the aggregates (pystack.h): read and cleared about once a second */

#define AGG_BATCH 128

/* ---- kernel stacks (--kernel): ids into the kstacks map, symbols from
 * /proc/kallsyms (read once; text symbols only) */

static int ksym_cmp(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;
	return (x->addr > y->addr) - (x->addr < y->addr);
}

static void ksyms_load(hm_ebpf *E)
{
	E->ksyms_loaded = 1;
	FILE *f = fopen("/proc/kallsyms", "re");
	if (!f)
		return;
	size_t cap = 0, ncap = 0, nlen = 0;
	char line[512];
	while (fgets(line, sizeof line, f)) {
		unsigned long long addr;
		char type, name[256];
		if (sscanf(line, "%llx %c %255s", &addr, &type, name) != 3 || !addr ||
		    (type != 't' && type != 'T'))
			continue;
		size_t l = strlen(name) + 1;
		if (E->nksyms == cap) {
			size_t nc = cap ? cap * 2 : 65536;
			struct ksym *ns = realloc(E->ksyms, nc * sizeof *ns);
			if (!ns)
				break;
			E->ksyms = ns;
			cap = nc;
		}
		if (nlen + l > ncap) {
			size_t nc = ncap ? ncap * 2 : 1 << 20;
			char *nn = realloc(E->ksym_names, nc);
			if (!nn)
				break;
			E->ksym_names = nn;
			ncap = nc;
		}
		memcpy(E->ksym_names + nlen, name, l);
		E->ksyms[E->nksyms++] = (struct ksym){addr, nlen};
		nlen += l;
	}
	fclose(f);
	qsort(E->ksyms, E->nksyms, sizeof *E->ksyms, ksym_cmp);
}

static const char *ksym_name(hm_ebpf *E, uint64_t ip)
{
	size_t lo = 0, hi = E->nksyms;
	while (lo < hi) {   /* the last symbol at or below ip */
		size_t mid = lo + (hi - lo) / 2;
		if (E->ksyms[mid].addr <= ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? E->ksym_names + E->ksyms[lo - 1].name : "[kernel]";
}

/* The kernel frames of stack id into E->kf (leaf first); their number. */
static int kernel_frames(hm_ebpf *E, int id)
{
	if (!E->kstack_on || id < 0)
		return 0;
	if (!E->ksyms_loaded)
		ksyms_load(E);
	uint64_t ips[HM_BPF_KSTACK_DEPTH];
	uint32_t key = (uint32_t)id;
	if (bpf_map__lookup_elem(E->skel->maps.kstacks, &key, sizeof key, ips, sizeof ips, 0) != 0)
		return 0;
	int n = 0;
	while (n < HM_BPF_KSTACK_DEPTH && ips[n]) {
		E->kf[n] = ksym_name(E, ips[n]);
		n++;
	}
	return n;
}

/* Forget the kernel stacks read (the map is bounded). */
static void kstacks_clear(hm_ebpf *E)
{
	if (!E->kstack_on)
		return;
	int fd = bpf_map__fd(E->skel->maps.kstacks);
	uint32_t k;
	for (int i = 0; i < HM_BPF_KSTACKS && bpf_map_get_next_key(fd, NULL, &k) == 0; i++)
		if (bpf_map_delete_elem(fd, &k) != 0)
			break;
}

/* The same one entry at a time, for kernels without batch operations on
 * hash maps (before 5.6). */
static void agg_drain_slow(hm_ebpf *E, int fd)
{
	struct hm_bpf_agg_key k;
	for (int i = 0; i < E->agg_max && bpf_map_get_next_key(fd, NULL, &k) == 0; i++) {
		if (bpf_map_lookup_elem(fd, &k, &E->agg_vals[0]) == 0) {
			E->c.agg_entries++;
			int nk = kernel_frames(E, k.kstack);
			deliver(E, &E->agg_vals[0].ev, sizeof E->agg_vals[0].ev, E->agg_vals[0].count,
				E->agg_vals[0].last_ns, E->kf, nk);
		}
		if (bpf_map_delete_elem(fd, &k) != 0)
			break;
	}
}

/* Read and clear the aggs map, delivering each entry's samples. */
static void agg_drain(hm_ebpf *E)
{
	if (!E->agg_keys) {
		E->agg_keys = malloc(AGG_BATCH * sizeof *E->agg_keys);
		E->agg_vals = malloc(AGG_BATCH * sizeof *E->agg_vals);
		if (!E->agg_keys || !E->agg_vals)
			return;
	}
	int fd = bpf_map__fd(E->skel->maps.aggs);
	uint64_t token = 0;
	int first = 1;
	/* Bounded: the map holds at most max_entries (it may fill again
	 * while we read). */
	for (int rounds = 0; rounds < 1 + E->agg_max / AGG_BATCH + 4; rounds++) {
		uint32_t n = AGG_BATCH;
		int rc = bpf_map_lookup_and_delete_batch(fd, first ? NULL : &token, &token, E->agg_keys,
							 E->agg_vals, &n, NULL);
		int err = rc < 0 ? errno : 0;
		first = 0;
		if (rc < 0 && err != ENOENT) {
			if (rounds == 0)
				agg_drain_slow(E, fd);      /* no batch operations here */
			break;
		}
		for (uint32_t i = 0; i < n; i++) {
			const struct hm_bpf_agg *v = &E->agg_vals[i];
			E->c.agg_entries++;
			int nk = kernel_frames(E, E->agg_keys[i].kstack);
			deliver(E, &v->ev, sizeof v->ev, v->count, v->last_ns, E->kf, nk);
		}
		if (rc < 0)
			break;                      /* ENOENT: the end */
	}
	kstacks_clear(E);
}

/* The layout the BPF program walks with, from the target's hm_pylayout. */
static int proc_info(hm_python *py, struct hm_bpf_proc *pi, int same_pidns)
{
	const hm_pylayout *L = hm_python_layout(py);
	memset(pi, 0, sizeof *pi);
	if (L->major < 3 || (L->major == 3 && L->minor < 8))
		return hm_error(HM_EVERSION, "--ebpf: Python %s is not supported (3.8+)", hm_python_version(py));
	pi->is_threads_head = L->is_threads_head;
	pi->ts_next = L->ts_next;
	pi->ts_native_tid = same_pidns ? L->ts_native_thread_id : -1;
	pi->ts_cframe = L->ts_cframe;
	pi->cframe_current_frame = L->cframe_current_frame;
	pi->ts_frame = L->ts_frame;
	if (L->frame_model == HM_FRAMES_OBJECTS) {
		pi->frame_model = 0;
		pi->f_code = L->fo_code;
		pi->f_back = L->fo_back;
		pi->f_instr = L->fo_lasti;
		pi->f_owner = -1;
		pi->owner_cstack = -1;
	} else if (L->frame_model == HM_FRAMES_INTERP) {
		pi->frame_model = 1;
		pi->f_code = L->if_code;
		pi->f_back = L->if_previous;
		pi->f_instr = L->if_instr;
		pi->f_owner = L->if_owner;
		pi->owner_cstack = L->owner_cstack;
		pi->owner_max = L->owner_max;
		pi->code_tagged = L->executable_tagged;
	} else {
		return hm_error(HM_EVERSION, "--ebpf: Python %s is not supported (3.8+)", hm_python_version(py));
	}
	int hi = pi->f_code > pi->f_back ? pi->f_code : pi->f_back;
	if (pi->f_instr > hi)
		hi = pi->f_instr;
	if (pi->f_owner > hi)
		hi = pi->f_owner;
	pi->frame_min = hi + 8;
	if (pi->frame_min > 120 || pi->f_code < 0 || pi->f_back < 0 || pi->f_instr < 0)
		return hm_error(HM_EVERSION, "--ebpf: this interpreter's frame layout is not supported");
	if (pi->ts_cframe < 0 && pi->ts_frame < 0)
		return hm_error(HM_EVERSION, "--ebpf: no frame pointer in this interpreter's layout");
	return HM_OK;
}

/* Send the thread states user space knows (and the interpreter). */
static int send_threads(hm_ebpf *E, struct watched *w)
{
	pid_t tids[HM_BPF_MAX_THREADS * 4];
	uint64_t ts[HM_BPF_MAX_THREADS * 4];
	uint64_t interp = 0;
	int n = hm_python_thread_states(w->py, &interp, tids, ts, (int)(sizeof tids / sizeof *tids));
	if (n < 0)
		return -1;
	if (interp && (!w->interp_sent || w->pi.interp != interp)) {
		w->pi.interp = interp;
		uint32_t key = (uint32_t)w->pid;
		if (bpf_map__update_elem(E->skel->maps.procs, &key, sizeof key, &w->pi, sizeof w->pi,
					 BPF_ANY) != 0)
			return -1;
		w->interp_sent = 1;
	}
	for (int i = 0; i < n; i++) {
		uint32_t k = (uint32_t)tids[i];
		bpf_map__update_elem(E->skel->maps.tids, &k, sizeof k, &ts[i], sizeof ts[i], BPF_ANY);
	}
	return n;
}

static int same_pid_namespace(pid_t pid)
{
	char a[64], b[64], pa[64];
	snprintf(pa, sizeof pa, "/proc/%d/ns/pid", (int)pid);
	ssize_t la = readlink("/proc/self/ns/pid", a, sizeof a - 1);
	ssize_t lb = readlink(pa, b, sizeof b - 1);
	return la > 0 && la == lb && !memcmp(a, b, (size_t)la);
}

int hm_ebpf_open(double rate_hz, int kernel_stacks, hm_ebpf **out)
{
	*out = NULL;
	libbpf_set_print(libbpf_quiet);
	hm_ebpf *E = calloc(1, sizeof *E);
	if (!E)
		return hm_error(HM_ENOMEM, "out of memory");
	E->stats_fd = -1;
	int rc;
	/* HOMURA_BPF_RING=1 sends every sample through the ring buffer (no
	 * aggregation); HOMURA_BPF_AGG_ENTRIES sizes the aggs map (tests fill
	 * a small one to check the fallback to the ring). */
	const char *ring = getenv("HOMURA_BPF_RING");
	const char *ents = getenv("HOMURA_BPF_AGG_ENTRIES");
	E->agg = !(ring && !strcmp(ring, "1"));
	E->agg_max = HM_BPF_AGG_ENTRIES;
	if (ents && atoi(ents) > 0 && atoi(ents) <= 1 << 20)
		E->agg_max = atoi(ents);
	E->skel = hm_pystack__open();
	if (E->skel) {
		E->skel->rodata->hm_agg_on = (uint32_t)E->agg;
		E->skel->rodata->hm_kstack_on = kernel_stacks ? 1u : 0u;
		E->kstack_on = kernel_stacks != 0;
		bpf_map__set_max_entries(E->skel->maps.aggs, (uint32_t)E->agg_max);
		if (hm_pystack__load(E->skel) != 0) {
			int err = errno;
			hm_pystack__destroy(E->skel);
			E->skel = NULL;
			errno = err;
		}
	}
	if (!E->skel) {
		rc = hm_error(errno == EPERM || errno == EACCES ? HM_EPERM : HM_ESYS,
			      "--ebpf: cannot load the BPF program: %s (needs root or CAP_BPF and "
			      "CAP_PERFMON, and a kernel with BPF ring buffers)", strerror(errno));
		goto fail;
	}
	int ncpu = libbpf_num_possible_cpus();
	E->ncpu = ncpu <= 0 ? 1 : ncpu > MAX_CPUS ? MAX_CPUS : ncpu;
	E->links = calloc((size_t)E->ncpu, sizeof *E->links);
	E->fds = malloc((size_t)E->ncpu * sizeof *E->fds);
	if (!E->links || !E->fds) {
		rc = hm_error(HM_ENOMEM, "out of memory");
		goto fail;
	}
	for (int c = 0; c < E->ncpu; c++)
		E->fds[c] = -1;
	double rate = rate_hz > 0 ? rate_hz : 100;
	uint64_t period = (uint64_t)(1e9 / rate);
	if (period < 10000)
		period = 10000;
	E->weight_ns = (int64_t)period;
	int opened = 0;
	for (int c = 0; c < E->ncpu; c++) {
		struct perf_event_attr a;
		memset(&a, 0, sizeof a);
		a.size = sizeof a;
		a.type = PERF_TYPE_SOFTWARE;
		a.config = PERF_COUNT_SW_CPU_CLOCK;
		a.sample_period = period;
		int fd = (int)syscall(SYS_perf_event_open, &a, -1, c, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0) {
			if (errno == ENODEV || errno == ENOENT)
				continue;           /* CPU offline */
			rc = hm_error(errno == EACCES || errno == EPERM ? HM_EPERM : HM_ESYS,
				      "--ebpf: perf_event_open on CPU %d: %s", c, strerror(errno));
			goto fail;
		}
		E->fds[c] = fd;
		E->links[c] = bpf_program__attach_perf_event(E->skel->progs.hm_pystack, fd);
		if (!E->links[c]) {
			rc = hm_error(HM_ESYS, "--ebpf: cannot attach the BPF program to CPU %d: %s", c,
				      strerror(errno));
			goto fail;
		}
		opened++;
	}
	if (!opened) {
		rc = hm_error(HM_ESYS, "--ebpf: no CPU could be sampled");
		goto fail;
	}
	E->mono_to_real = hm_real_ns() - hm_mono_ns();
	E->agg_last = hm_mono_ns();
	E->agg_every = AGG_READ_NS;
	E->rb = ring_buffer__new(bpf_map__fd(E->skel->maps.events), on_event, E, NULL);
	if (!E->rb) {
		rc = hm_error(HM_ESYS, "--ebpf: cannot open the ring buffer: %s", strerror(errno));
		goto fail;
	}
	/* The kernel's own count of the program's run time (for the summary
	 * and the benchmarks); optional. */
	E->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	*out = E;
	return HM_OK;
fail:
	hm_ebpf_close(E);
	return rc;
}

int hm_ebpf_watch(hm_ebpf *E, pid_t pid, hm_python *py, void *owner)
{
	struct hm_bpf_proc pi;
	int rc = proc_info(py, &pi, same_pid_namespace(pid));
	if (rc != HM_OK)
		return rc;
	struct watched *w = find_watched(E, pid);
	if (!w) {
		for (int i = 0; i < E->nw && !w; i++)
			if (!E->w[i].pid)
				w = &E->w[i];
	}
	if (!w) {
		if (E->nw == E->capw) {
			if (E->capw >= HM_BPF_MAX_PROCS)
				return hm_error(HM_EINVAL, "--ebpf: more than %d processes", HM_BPF_MAX_PROCS);
			int nc = E->capw ? E->capw * 2 : 16;
			struct watched *nw = realloc(E->w, (size_t)nc * sizeof *nw);
			if (!nw)
				return hm_error(HM_ENOMEM, "out of memory");
			E->w = nw;
			E->capw = nc;
			E->last = NULL;
		}
		w = &E->w[E->nw++];
	}
	memset(w, 0, sizeof *w);
	w->pid = pid;
	w->py = py;
	w->owner = owner;
	w->pi = pi;
	w->refresh_ns = pi.ts_native_tid >= 0 ? TID_REFRESH_NS : TID_REFRESH_OLD_NS;
	hm_python_resolve_begin(py);
	if (send_threads(E, w) < 0 || !w->interp_sent) {
		hm_ebpf_unwatch(E, pid);
		return hm_error(HM_EIO, "--ebpf: cannot read the interpreter's threads of process %d", (int)pid);
	}
	w->last_threads = hm_mono_ns();
	/* Read the counts soon: resolve its code objects while it runs. */
	E->agg_last = w->last_threads;
	E->agg_every = AGG_FIRST_NS;
	return HM_OK;
}

void hm_ebpf_unwatch(hm_ebpf *E, pid_t pid)
{
	struct watched *w = find_watched(E, pid);
	if (!w)
		return;
	uint32_t key = (uint32_t)pid;
	bpf_map__delete_elem(E->skel->maps.procs, &key, sizeof key, 0);
	/* Its tids age out of the LRU map. */
	w->pid = 0;
	w->py = NULL;
	E->last = NULL;
}

int hm_ebpf_poll(hm_ebpf *E, int timeout_ms, hm_ebpf_sample_fn fn, void *arg)
{
	for (int i = 0; i < E->nw; i++)
		if (E->w[i].pid)
			hm_python_resolve_begin(E->w[i].py);
	E->fn = fn;
	E->arg = arg;
	E->delivered = 0;
	/* The program does not wake us per sample (BPF_RB_NO_WAKEUP): wait
	 * for the timeout (or a ring filling up), then take what is there. */
	int got = timeout_ms >= 0 ? ring_buffer__poll(E->rb, timeout_ms) : 0;
	if (got < 0 && got != -EINTR)
		return hm_error(HM_ESYS, "--ebpf: ring buffer: %s", strerror(-got));
	got = ring_buffer__consume(E->rb);
	if (got < 0 && got != -EINTR)
		return hm_error(HM_ESYS, "--ebpf: ring buffer: %s", strerror(-got));
	uint64_t now = hm_mono_ns();
	if (E->agg && (timeout_ms < 0 || now - E->agg_last >= E->agg_every)) {
		agg_drain(E);
		E->agg_last = now;
		E->agg_every = E->agg_every * 2 < AGG_READ_NS ? E->agg_every * 2 : AGG_READ_NS;
	}
	for (int i = 0; i < E->nw; i++) {
		struct watched *w = &E->w[i];
		if (w->pid && now - w->last_threads >= w->refresh_ns) {
			hm_python_resolve_begin(w->py);
			send_threads(E, w);
			w->last_threads = now;
		}
	}
	return E->delivered;
}

static uint64_t counter(hm_ebpf *E, uint32_t key, uint64_t *vals)
{
	uint64_t sum = 0;
	if (bpf_map__lookup_elem(E->skel->maps.counters, &key, sizeof key, vals,
				 (size_t)E->ncpu * sizeof *vals, 0) == 0)
		for (int c = 0; c < E->ncpu; c++)
			sum += vals[c];
	return sum;
}

void hm_ebpf_counts_get(hm_ebpf *E, hm_ebpf_counts *c)
{
	*c = E->c;
	struct bpf_prog_info info;
	uint32_t ilen = sizeof info;
	memset(&info, 0, sizeof info);
	if (E->stats_fd >= 0 &&
	    bpf_obj_get_info_by_fd(bpf_program__fd(E->skel->progs.hm_pystack), &info, &ilen) == 0) {
		c->runs = info.run_cnt;
		c->run_ns = info.run_time_ns;
	}
	uint64_t *vals = calloc((size_t)E->ncpu, sizeof *vals);
	if (vals) {
		c->dropped = counter(E, HM_BPFC_DROPPED, vals);
		c->matched = counter(E, HM_BPFC_MATCHED, vals);
		c->aggregated = counter(E, HM_BPFC_AGGREGATED, vals);
		c->agg_full = counter(E, HM_BPFC_AGG_FULL, vals);
		free(vals);
	}
}

int hm_ebpf_wake_ms(const hm_ebpf *E)
{
	if (!E->agg)
		return 50;
	uint64_t now = hm_mono_ns(), due = E->agg_last + E->agg_every;
	uint64_t ms = due > now ? (due - now + 999999) / 1000000 : 1;
	return ms < 200 ? (int)ms : 200;
}

uint64_t hm_ebpf_invalid(const hm_ebpf *E)
{
	return E->c.invalid;
}

void hm_ebpf_close(hm_ebpf *E)
{
	if (!E)
		return;
	if (E->rb)
		ring_buffer__free(E->rb);
	for (int c = 0; E->links && E->fds && c < E->ncpu; c++) {
		if (E->links[c])
			bpf_link__destroy(E->links[c]);
		if (E->fds[c] >= 0)
			close(E->fds[c]);
	}
	if (E->stats_fd >= 0)
		close(E->stats_fd);
	if (E->skel)
		hm_pystack__destroy(E->skel);
	free(E->th.frames);
	free(E->agg_keys);
	free(E->agg_vals);
	free(E->ksyms);
	free(E->ksym_names);
	free(E->links);
	free(E->fds);
	free(E->w);
	free(E);
}

#endif
