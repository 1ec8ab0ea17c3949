/* ebpf.c - the user-space half of `record --ebpf` (sample/ebpf.h): loads the
 * in-kernel Python stack walker, opens one cpu-clock perf event per CPU for
 * it, tells it how to walk the target (its layout offsets and interpreter,
 * and the thread states of threads it cannot find itself), drains its ring
 * buffer, and turns each record into a profile sample. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "base/error.h"
#include "sample/ebpf.h"

#ifndef HM_HAVE_EBPF

int hm_ebpf_built(void)
{
	return 0;
}

int hm_ebpf_run(hm_target *t, hm_python **py, hm_profile *p, const hm_sampler_opts *o,
		hm_sampler_stats *st, int *started)
{
	*started = 0;
	return hm_error(HM_ESYS, "this homura was built without BPF support (clang, bpftool and libbpf-dev were missing)");
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
#define TID_REFRESH_NS 200000000ull      /* re-send thread states every 200 ms */
#define TID_REFRESH_OLD_NS 50000000ull   /* <=3.10: the kernel cannot find them itself */

int hm_ebpf_built(void)
{
	return 1;
}

struct run {
	hm_python *py;
	hm_profile *p;
	const hm_sampler_opts *o;
	hm_sampler_stats *st;
	pid_t pid;
	int64_t weight_ns;
	uint64_t mono_to_real;      /* add to a CLOCK_MONOTONIC time for unix time */
	hm_pythread th;
	uint64_t pairs[2 * HM_BPF_MAX_FRAMES];
	uint64_t no_thread, no_frame;
};

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_WARN && getenv("HOMURA_BPF_DEBUG"))
		return vfprintf(stderr, fmt, ap);
	return 0;
}

static int on_event(void *ctx, void *data, size_t len)
{
	struct run *r = ctx;
	const struct hm_bpf_event *e = data;
	size_t head = offsetof(struct hm_bpf_event, frames);
	if (len < head || e->pid != (unsigned)r->pid)
		return 0;
	if (e->nframes > HM_BPF_MAX_FRAMES || len < head + e->nframes * sizeof e->frames[0]) {
		r->st->invalid++;
		return 0;
	}
	if (e->status == HM_BPF_NO_THREAD) {
		r->no_thread++;             /* a thread without Python (yet) */
		return 0;
	}
	if (e->status == HM_BPF_NO_FRAME) {
		r->no_frame++;              /* running C code with no Python frame */
		return 0;
	}
	if (e->status != HM_BPF_OK || e->nframes > HM_BPF_MAX_FRAMES) {
		r->st->invalid++;
		return 0;
	}
	int n = (int)e->nframes;
	for (int i = 0; i < n; i++) {
		r->pairs[2 * i] = e->frames[i].code;
		r->pairs[2 * i + 1] = e->frames[i].instr;
	}
	if (hm_python_resolve(r->py, r->pairs, n, &r->th) != 0) {
		r->st->invalid++;
		return 0;
	}
	if (r->th.nframes == 0) {
		r->no_frame++;
		return 0;
	}
	r->th.tid = (pid_t)e->tid;
	r->th.tstate = e->tstate;
	r->th.truncated |= e->truncated != 0;
	r->th.name = NULL;
	hm_sampler_add_thread(r->p, &r->th, r->o, r->weight_ns, e->t_ns + r->mono_to_real);
	r->st->samples++;
	return 0;
}

/* The layout the BPF program walks with, from the target's hm_pylayout. */
static int proc_info(hm_python *py, struct hm_bpf_proc *pi, int same_pidns)
{
	const hm_pylayout *L = hm_python_layout(py);
	memset(pi, 0, sizeof *pi);
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
	if (L->major < 3 || (L->major == 3 && L->minor < 8))
		return hm_error(HM_EVERSION, "--ebpf: Python %s is not supported (3.8+)", hm_python_version(py));
	int hi = pi->f_code > pi->f_back ? pi->f_code : pi->f_back;
	if (pi->f_instr > hi)
		hi = pi->f_instr;
	if (pi->f_owner > hi)
		hi = pi->f_owner;
	pi->frame_min = hi + 8;
	if (pi->frame_min > 120)
		return hm_error(HM_EVERSION, "--ebpf: this interpreter's frame layout is not supported "
				"(fields past 120 bytes)");
	if (pi->ts_cframe < 0 && pi->ts_frame < 0)
		return hm_error(HM_EVERSION, "--ebpf: no frame pointer in this interpreter's layout");
	return HM_OK;
}

/* Send the thread states user space knows (and the interpreter). */
static int send_threads(struct hm_pystack *skel, hm_python *py, pid_t pid, struct hm_bpf_proc *pi,
			int *interp_sent)
{
	pid_t tids[HM_BPF_MAX_THREADS * 4];
	uint64_t ts[HM_BPF_MAX_THREADS * 4];
	uint64_t interp = 0;
	int n = hm_python_thread_states(py, &interp, tids, ts, (int)(sizeof tids / sizeof *tids));
	if (n < 0)
		return -1;
	if (interp && (!*interp_sent || pi->interp != interp)) {
		pi->interp = interp;
		uint32_t key = (uint32_t)pid;
		if (bpf_map__update_elem(skel->maps.procs, &key, sizeof key, pi, sizeof *pi, BPF_ANY) != 0)
			return -1;
		*interp_sent = 1;
	}
	for (int i = 0; i < n; i++) {
		uint32_t k = (uint32_t)tids[i];
		bpf_map__update_elem(skel->maps.tids, &k, sizeof k, &ts[i], sizeof ts[i], BPF_ANY);
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

static int target_gone(hm_target *t, const hm_sampler_opts *o, hm_sampler_stats *st)
{
	if (o->child > 0) {
		int status;
		pid_t w = waitpid(o->child, &status, WNOHANG);
		if (w == o->child) {
			st->child_status = status;
			return 1;
		}
	}
	return !hm_target_alive(t);
}

int hm_ebpf_run(hm_target *t, hm_python **pyp, hm_profile *p, const hm_sampler_opts *o,
		hm_sampler_stats *st, int *started)
{
	*started = 0;
	hm_python *py = *pyp;
	pid_t pid = hm_target_pid(t);
	int same_ns = same_pid_namespace(pid);
	struct hm_bpf_proc pi;
	int rc = proc_info(py, &pi, same_ns);
	if (rc != HM_OK)
		return rc;
	libbpf_set_print(libbpf_quiet);

	struct hm_pystack *skel = hm_pystack__open_and_load();
	if (!skel)
		return hm_error(errno == EPERM || errno == EACCES ? HM_EPERM : HM_ESYS,
				"--ebpf: cannot load the BPF program: %s (needs root or CAP_BPF and CAP_PERFMON, "
				"and a kernel with BPF ring buffers)", strerror(errno));
	int ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0 || ncpu > MAX_CPUS)
		ncpu = ncpu <= 0 ? 1 : MAX_CPUS;
	struct bpf_link **links = calloc((size_t)ncpu, sizeof *links);
	int *fds = malloc((size_t)ncpu * sizeof *fds);
	struct ring_buffer *rb = NULL;
	struct run *r = calloc(1, sizeof *r);
	int stats_fd = -1;
	if (!links || !fds || !r) {
		rc = hm_error(HM_ENOMEM, "out of memory");
		goto out;
	}
	for (int c = 0; c < ncpu; c++)
		fds[c] = -1;
	double rate = o->rate_hz > 0 ? o->rate_hz : 100;
	uint64_t period = (uint64_t)(1e9 / rate);
	if (period < 10000)
		period = 10000;
	int opened = 0;
	for (int c = 0; c < ncpu; c++) {
		struct perf_event_attr a;
		memset(&a, 0, sizeof a);
		a.size = sizeof a;
		a.type = PERF_TYPE_SOFTWARE;
		a.config = PERF_COUNT_SW_CPU_CLOCK;
		a.sample_period = period;
		a.disabled = 0;
		int fd = (int)syscall(SYS_perf_event_open, &a, -1, c, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0) {
			if (errno == ENODEV || errno == ENOENT)
				continue;           /* CPU offline */
			rc = hm_error(errno == EACCES || errno == EPERM ? HM_EPERM : HM_ESYS,
				      "--ebpf: perf_event_open on CPU %d: %s", c, strerror(errno));
			goto out;
		}
		fds[c] = fd;
		links[c] = bpf_program__attach_perf_event(skel->progs.hm_pystack, fd);
		if (!links[c]) {
			rc = hm_error(HM_ESYS, "--ebpf: cannot attach the BPF program to CPU %d: %s", c,
				      strerror(errno));
			goto out;
		}
		opened++;
	}
	if (!opened) {
		rc = hm_error(HM_ESYS, "--ebpf: no CPU could be sampled");
		goto out;
	}
	r->py = py;
	r->p = p;
	r->o = o;
	r->st = st;
	r->pid = pid;
	r->weight_ns = (int64_t)period;
	r->mono_to_real = hm_real_ns() - hm_mono_ns();
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, r, NULL);
	if (!rb) {
		rc = hm_error(HM_ESYS, "--ebpf: cannot open the ring buffer: %s", strerror(errno));
		goto out;
	}
	/* The kernel's own count of the program's run time (for the summary
	 * and the benchmarks); optional. */
	stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);

	int interp_sent = 0;
	hm_python_resolve_begin(py);
	if (send_threads(skel, py, pid, &pi, &interp_sent) < 0 || !interp_sent) {
		rc = hm_error(HM_EIO, "--ebpf: cannot read the interpreter's threads");
		goto out;
	}
	*started = 1;
	uint64_t t0 = hm_mono_ns(), last_threads = t0;
	uint64_t refresh = pi.ts_native_tid >= 0 ? TID_REFRESH_NS : TID_REFRESH_OLD_NS;
	uint64_t end = o->duration_s > 0 ? t0 + (uint64_t)(o->duration_s * 1e9) : 0;
	rc = HM_OK;
	for (;;) {
		hm_python_resolve_begin(py);
		int got = ring_buffer__poll(rb, 50);
		if (got < 0 && got != -EINTR) {
			rc = hm_error(HM_ESYS, "--ebpf: ring buffer: %s", strerror(-got));
			break;
		}
		st->ticks++;
		uint64_t now = hm_mono_ns();
		if ((o->stop && *o->stop) || (end && now >= end))
			break;
		if (target_gone(t, o, st)) {
			st->target_exited = 1;
			break;
		}
		if (now - last_threads >= refresh) {
			send_threads(skel, py, pid, &pi, &interp_sent);
			last_threads = now;
		}
	}
	/* What is still in the ring. */
	hm_python_resolve_begin(py);
	ring_buffer__consume(rb);

	struct bpf_prog_info info;
	uint32_t ilen = sizeof info;
	memset(&info, 0, sizeof info);
	if (stats_fd >= 0 &&
	    bpf_obj_get_info_by_fd(bpf_program__fd(skel->progs.hm_pystack), &info, &ilen) == 0) {
		st->bpf_runs = info.run_cnt;
		st->bpf_run_ns = info.run_time_ns;
	}
	uint32_t key = HM_BPFC_DROPPED;
	uint64_t *vals = calloc((size_t)ncpu, sizeof *vals);
	if (vals && bpf_map__lookup_elem(skel->maps.counters, &key, sizeof key, vals,
					 (size_t)ncpu * sizeof *vals, 0) == 0)
		for (int c = 0; c < ncpu; c++)
			st->bpf_dropped += vals[c];
	key = HM_BPFC_MATCHED;
	if (vals && bpf_map__lookup_elem(skel->maps.counters, &key, sizeof key, vals,
					 (size_t)ncpu * sizeof *vals, 0) == 0)
		for (int c = 0; c < ncpu; c++)
			st->bpf_matched += vals[c];
	free(vals);
	st->bpf_no_python = r->no_thread + r->no_frame;
out:
	if (rb)
		ring_buffer__free(rb);
	for (int c = 0; links && fds && c < ncpu; c++) {
		if (links[c])
			bpf_link__destroy(links[c]);
		if (fds[c] >= 0)
			close(fds[c]);
	}
	if (stats_fd >= 0)
		close(stats_fd);
	hm_pystack__destroy(skel);
	if (r)
		free(r->th.frames);
	free(r);
	free(links);
	free(fds);
	return rc;
}

#endif
