/* sampler.h - the one sampling loop, driven by `homura record`, `homura top`
 * and the agent.
 *
 * A hm_sampler holds a set of processes (hm_sproc): those its front end adds
 * (record's and top's target, the agent's targets) and, with --subprocesses,
 * the Python descendants of the first one (sample/follow.h, rescanned every
 * 250 ms). hm_sampler_run ticks at a (jittered) rate and, each round, reads
 * every process's threads (hm_python_sample; hm_native_sample with --native;
 * paused around the read with --blocking; asyncio tasks with --async) and
 * records each thread's stack: into the process's hm_profile when it has one
 * (the stack builders of stacks.c below, the one place where a sample becomes
 * a profile stack), and to the front end's `stack` event. It keeps the
 * statistics (rounds, samples, invalid, late, errors, re-attaches, the cost
 * of one read as a fixed-size histogram, the --native counters), survives a
 * target's exec (re-attaching), reaps a launched child, and notices exits.
 *
 * What is the front end's own comes through hm_sampler_events: record only
 * writes the profile out afterwards; top aggregates the stacks into its
 * topview (sample/topview.h), ends a window every second and waits for keys
 * between rounds; the agent discovers targets, cuts each target's profile
 * into windows and exports them from the `round` event. The stack producers
 * below the loop (native/, python/pyasync.h through sample/async.h) return
 * frames and never call back into it.
 *
 * The cost histogram: 0.1 us buckets up to 2 ms, then log buckets 2.2% wide
 * up to ~35 min, so memory stays flat however long it runs and the
 * percentiles of slow rounds (e.g. --native's) stay right. */
#ifndef HOMURA_SAMPLER_H
#define HOMURA_SAMPLER_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/profile.h"
#include "native/native.h"
#include "proc/target.h"
#include "python/pyasync.h"
#include "python/python.h"

typedef struct hm_sampler_opts {
	double rate_hz;          /* default 100 */
	double duration_s;       /* <= 0: until stopped or the targets exit */
	int jitter;              /* randomise intervals (default on) */
	int idle;                /* include threads not on CPU */
	int gil_only;            /* only the thread holding the GIL */
	int threads_root;        /* a "thread <tid>" frame at the root */
	int nolineno;            /* aggregate by function */
	int blocking;            /* pause the target around each sample */
	int max_depth;           /* frames kept per stack (default 4096) */
	pid_t child;             /* launched child to reap, 0 if attached */
	volatile sig_atomic_t *stop;  /* set asynchronously to stop */
	int native;              /* merge native frames (native/native.h); stops
				  * each sampled thread while it is unwound,
				  * except with ebpf: unwound from the perf
				  * sample's copy of its stack (sample/ebpf.h) */
	int async;               /* asyncio tasks as stacks (sample/async.h) */
	int subprocesses;        /* also sample the first process's Python
				  * descendants */
	unsigned sample_flags;   /* more HM_SAMPLE_* flags for every read (top:
				  * thread states and the GIL holder) */
	double alive_check_s;    /* how often a process is checked for its exit
				  * (default 0.05; at once after a failed read) */
	int keep_going;          /* run on when no process is left (the agent
				  * while it discovers new ones) */
	int ebpf;                /* walk the stacks in the kernel (sample/ebpf.h)
				  * where possible: see hm_sampler_ebpf_why */
	int ebpf_kernel;         /* with ebpf: kernel frames under the Python
				  * leaf of samples taken in kernel mode */
	/* Set by the loop for each process while following subprocesses:
	 * a "process PID: program" frame at the root of its stacks. */
	pid_t process_pid;
	const char *process_label;
} hm_sampler_opts;

#define HM_COST_BUCKETS 20000    /* 0.1 us buckets up to 2 ms */
#define HM_COST_LOG_STEPS 32     /* log buckets per doubling above 2 ms */
#define HM_COST_LOG_BUCKETS (20 * HM_COST_LOG_STEPS)  /* 2 ms .. 2 ms * 2^20 */

typedef struct hm_sampler_stats {
	uint64_t rounds;         /* sampling rounds (ticks of the loop) */
	uint64_t ticks;          /* process reads (one per process per round) */
	uint64_t samples;        /* thread stacks recorded */
	uint64_t invalid;        /* thread stacks dropped as torn/garbage */
	uint64_t span_torn;      /* stacks recorded without their span: it
				  * changed while they were read (python/otel.h) */
	uint64_t late;           /* rounds that started > 1 period late */
	uint64_t errors;         /* reads of an interpreter that failed */
	uint64_t reattached;     /* re-attaches after an exec */
	uint64_t cost_max_ns;
	uint64_t cost_sum_ns;    /* for the mean */
	uint64_t cost_over;      /* reads slower than the histogram */
	uint32_t cost_hist[HM_COST_BUCKETS];
	uint32_t cost_log[HM_COST_LOG_BUCKETS];  /* reads of 2 ms and more */
	int target_exited;       /* every process exited */
	int child_reaped;        /* the launched child was reaped ... */
	int child_status;        /* ... with this wait status */
	/* --native (0 otherwise) */
	uint64_t native_unwinds;  /* thread stacks unwound */
	uint64_t native_torn;     /* merges that did not fit: Python frames only */
	uint64_t native_no_eval;  /* stacks without a recognised frame of the
				   * evaluation loop (stripped interpreter) */
	uint64_t native_failed;   /* threads that could not be stopped/unwound */
	uint64_t native_stop_ns;  /* total time threads were stopped by us */
	uint64_t native_stop_max_ns;
	/* --ebpf (0 otherwise): the kernel's count of the BPF program's runs
	 * (on every CPU, for any task) and their total run time, runs in the
	 * target, events lost to a full ring buffer, and samples of the target
	 * that ran no Python (a thread without a thread state or frame). */
	uint64_t bpf_runs, bpf_run_ns, bpf_matched, bpf_dropped, bpf_no_python;
	/* --ebpf --native: records joined with their perf sample, records
	 * without one (Python frames only), perf samples lost or alone */
	uint64_t bpf_native_joined, bpf_native_unjoined, bpf_native_lost;
	/* --ebpf: samples counted per stack in the kernel, those sent to the
	 * ring as its map was full, the map entries read, and the stacks sent
	 * at their first count (their code objects read at once). */
	uint64_t bpf_aggregated, bpf_agg_full, bpf_agg_entries, bpf_new_stacks;
	/* --ebpf: traces whose local root span was looked for among a
	 * thread's locals, found, found at the frame the kernel named; and
	 * roots the kernel read itself (hm_ebpf_counts.root_scans) */
	uint64_t bpf_root_scans, bpf_roots_found, bpf_roots_at_frame, bpf_root_scan_ns;
	uint64_t bpf_roots_in_kernel;
	/* --ebpf: 1 when each sample's CPU time is the kernel's runtime of
	 * its thread since the previous sample, 0 when it is the period
	 * (sample/ebpf.h, cpu_from_kernel). */
	int bpf_cpu_from_kernel;
} hm_sampler_stats;

void hm_sampler_opts_init(hm_sampler_opts *o);

/* ---- the loop */

typedef struct hm_sampler hm_sampler;

/* One process of the loop, as its front end sees it. */
typedef struct hm_sproc {
	pid_t pid;
	hm_target *t;
	hm_python *py;           /* NULL while lost (after an exec, or reads
				  * kept failing): re-attached by the loop */
	hm_profile *profile;     /* where its stacks go (the front end may swap
				  * it between rounds); NULL: the stack event only */
	const char *label;       /* "process PID: program" with --subprocesses */
	int followed;            /* a descendant found by --subprocesses */
	void *user;              /* the front end's */
} hm_sproc;

/* The front end's part. Every member may be NULL. The loop is not
 * re-entered from them, but `round` may add processes (hm_sampler_add). */
typedef struct hm_sampler_events {
	void *ctx;
	/* Before each round, at monotonic time now. Nonzero stops the loop. */
	int (*round)(void *ctx, hm_sampler *s, uint64_t now);
	/* One process was read (s: every thread; ns: their native stacks with
	 * --native, else NULL), before its stacks are recorded. */
	void (*proc_sample)(void *ctx, hm_sproc *p, const hm_pysample *s, const hm_natsample *ns);
	/* One thread's stack was recorded: th (valid, with frames) and with
	 * --native its native stack (HM_NATSTACK_OK or _FAILED), else NULL. */
	void (*stack)(void *ctx, hm_sproc *p, const hm_pythread *th, const hm_natstack *ns);
	/* After each round, at monotonic time now. Nonzero stops the loop. */
	int (*round_done)(void *ctx, hm_sampler *s, uint64_t now);
	/* A process joined (a descendant found by --subprocesses), or its
	 * interpreter was re-attached after an exec (p->py is the new one). */
	void (*attach)(void *ctx, hm_sproc *p);
	/* A process exited; it leaves the set when this returns (with its
	 * target and interpreter). Nonzero stops the loop. */
	int (*exit)(void *ctx, hm_sproc *p);
	/* Wait until monotonic time `until` (default: sleep, woken early by a
	 * signal). Nonzero stops the loop. */
	int (*wait)(void *ctx, uint64_t until);
	/* --ebpf: process p is sampled from user space instead, for `why`. */
	void (*ebpf_skip)(void *ctx, hm_sproc *p, const char *why);
} hm_sampler_events;

/* A loop with no processes yet. ev may be NULL. */
int hm_sampler_new(const hm_sampler_opts *o, const hm_sampler_events *ev, hm_sampler **out);
/* Closes every process left (their targets and interpreters). */
void hm_sampler_free(hm_sampler *s);
/* Add a process: the loop takes t and py (py may be NULL: attached when
 * Python runs there). With --native a process whose native session cannot
 * start is an error for the first one, and sampled without native frames
 * otherwise. With --subprocesses the first process is the root whose
 * descendants are followed, their stacks going into the root's profile (as
 * given here). *out (may be NULL) gets the process. */
int hm_sampler_add(hm_sampler *s, hm_target *t, hm_python *py, hm_profile *profile, void *user,
		   hm_sproc **out);
/* Sample until the duration passes, *stop is set, an event says stop, or
 * (unless keep_going) every process has exited (stats target_exited).
 * Returns HM_OK: failed reads are counted, not returned. */
int hm_sampler_run(hm_sampler *s);
/* With opts.ebpf: NULL when the loop samples in the kernel, else the
 * one-line reason it does not (BPF refused, an option it does not combine
 * with) and every process is sampled from user space. A process whose
 * interpreter the kernel walker cannot walk (before 3.8) is sampled from
 * user space on its own. */
const char *hm_sampler_ebpf_why(const hm_sampler *s);
/* The launched child to reap (opts.child), for a sampler made before the
 * launch: with --ebpf, loading the BPF program takes the kernel's verifier
 * 50-200 ms, which a short program would spend running unsampled. */
void hm_sampler_set_child(hm_sampler *s, pid_t child);
/* Processes sampled now: those added and still there, and the followed. */
int hm_sampler_count(const hm_sampler *s);
/* The statistics so far (the --native counters are brought up to date by
 * each call). */
hm_sampler_stats *hm_sampler_stats_of(hm_sampler *s);

/* The profile span id of a sampled thread's or task's span (0: none;
 * sample/spans.c). */
uint32_t hm_sampler_span(hm_profile *p, const hm_pyspan *s);

/* ---- the statistics */

/* Count one read that took ns in st's cost histogram. */
void hm_sampler_record_cost(hm_sampler_stats *st, uint64_t ns);
/* Percentile (0-100) of the per-sample cost in microseconds: within 0.1 us
 * below 2 ms, within 2.2% above, never above the maximum. */
double hm_sampler_cost_us(const hm_sampler_stats *st, double pct);
/* Mean per-sample cost in microseconds. */
double hm_sampler_cost_mean_us(const hm_sampler_stats *st);

/* Wait for a launched command to become a Python process that is ready to
 * sample (exec done, interpreter initialised). HM_OK with *py set; HM_ENOTPY
 * after timeout_s; HM_ENOPROC if it exited first. */
int hm_sampler_wait_python(hm_target *t, pid_t child, double timeout_s, hm_python **py,
			   volatile sig_atomic_t *stop, int *child_status);

/* ---- stack building (stacks.c): a sampled thread as a profile stack, root
 * first, honouring threads_root, nolineno and the process frame. */

/* The profile frame of one sampled Python frame (nolineno honoured), as the
 * stacks below build them (homura run's line attribution uses it too). */
uint32_t hm_sampler_py_frame(hm_profile *p, const hm_pyframe *f, const hm_sampler_opts *o);

void hm_sampler_add_thread(hm_profile *p, const hm_pythread *th, const hm_sampler_opts *o,
			   int64_t weight_ns, uint64_t t_ns);
/* count samples of the same stack at once (weight_ns in all; --ebpf's
 * per-stack counts), with nk kernel frames (leaf first, symbol names; the
 * sample interrupted the kernel: --kernel) under the Python leaf. */
void hm_sampler_add_thread_n(hm_profile *p, const hm_pythread *th, const hm_sampler_opts *o,
			     int64_t count, int64_t weight_ns, uint64_t t_ns,
			     const char *const *kframes, int nk);

/* The --native variant: th merged with ns (native frames have kind
 * HM_FRAME_NATIVE). Falls back to hm_sampler_add_thread when ns is not
 * HM_NATSTACK_OK or the merge is torn. Returns HM_SAMPLER_NATIVE_TORN if the
 * merge was torn, plus HM_SAMPLER_NATIVE_NO_EVAL if the native stack is
 * complete yet holds no frame of the evaluation loop (an interpreter whose
 * loop is not recognised: its native frames cannot be placed among the
 * Python frames), else 0. */
#define HM_SAMPLER_NATIVE_TORN 1
#define HM_SAMPLER_NATIVE_NO_EVAL 2
int hm_sampler_add_native(hm_profile *p, const hm_pythread *th, const hm_natstack *ns,
			  const hm_pylayout *L, const hm_sampler_opts *o, int64_t weight_ns,
			  uint64_t t_ns);
/* The same with nk kernel frames (leaf first) under the native leaf
 * (record --ebpf --native --kernel). */
int hm_sampler_add_native_k(hm_profile *p, const hm_pythread *th, const hm_natstack *ns,
			    const hm_pylayout *L, const hm_sampler_opts *o, int64_t weight_ns,
			    uint64_t t_ns, const char *const *kframes, int nk);

/* --async: a "Task <name>" stack. With th, the thread running task: its
 * root frames, the task, then th's frames from index coro (the task's
 * coroutine) to the leaf. Without th, a waiting task: the task, then its
 * await chain, on the pseudo thread "asyncio". */
void hm_sampler_add_task(hm_profile *p, const hm_pytask *task, const hm_pythread *th, int coro,
			 const hm_sampler_opts *o, int64_t weight_ns, uint64_t t_ns);

#endif
