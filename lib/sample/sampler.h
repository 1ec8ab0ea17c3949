/* sampler.h - record's sampling loop, and the per-sample helpers others use.
 *
 * hm_sampler_run is the loop of `homura record` (`top` and the agent have
 * their own loops: top shares hm_sampler_wait_python, the agent the options
 * and hm_sampler_add_thread; native.c and pyasync_sampler.c build their
 * stacks with hm_sampler_add_thread/_root_frames/_py_frame).
 *
 * hm_sampler drives hm_python_sample at a (jittered) rate, turns each
 * thread's stack into profile frames and stacks, and keeps statistics:
 * samples, invalid samples, late ticks and the cost of one sample (a
 * fixed-size histogram, so memory stays flat however long it runs: 0.1 us
 * buckets up to 2 ms, then log buckets 2.2% wide up to ~35 min, so the
 * percentiles of slow rounds, e.g. --native's, stay right). It also
 * survives the target's exec (re-attaching) and notices its exit. */
#ifndef HOMURA_SAMPLER_H
#define HOMURA_SAMPLER_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/profile.h"
#include "native/native.h"
#include "proc/target.h"
#include "python/python.h"

typedef struct hm_sampler_opts {
	double rate_hz;          /* default 100 */
	double duration_s;       /* <= 0: until stopped or the target exits */
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
				  * each sampled thread while it is unwound */
	int async;               /* asyncio tasks as stacks (python/pyasync.h) */
	int subprocesses;        /* also sample the target's Python descendants */
	/* Set by the sampler for each process while following subprocesses:
	 * a "process PID: program" frame at the root of its stacks. */
	pid_t process_pid;
	const char *process_label;
} hm_sampler_opts;

#define HM_COST_BUCKETS 20000    /* 0.1 us buckets up to 2 ms */
#define HM_COST_LOG_STEPS 32     /* log buckets per doubling above 2 ms */
#define HM_COST_LOG_BUCKETS (20 * HM_COST_LOG_STEPS)  /* 2 ms .. 2 ms * 2^20 */

typedef struct hm_sampler_stats {
	uint64_t ticks;          /* sampling rounds */
	uint64_t samples;        /* thread stacks recorded */
	uint64_t invalid;        /* thread stacks dropped as torn/garbage */
	uint64_t late;           /* ticks that started > 1 period late */
	uint64_t errors;         /* rounds whose interpreter read failed */
	uint64_t reattached;     /* re-attaches after an exec */
	uint64_t cost_max_ns;
	uint64_t cost_sum_ns;    /* for the mean */
	uint64_t cost_over;      /* rounds slower than the histogram */
	uint32_t cost_hist[HM_COST_BUCKETS];
	uint32_t cost_log[HM_COST_LOG_BUCKETS];  /* rounds of 2 ms and more */
	int target_exited;
	int child_status;        /* wait status of a launched child */
	/* --native (0 otherwise) */
	uint64_t native_unwinds;  /* thread stacks unwound */
	uint64_t native_torn;     /* merges that did not fit: Python frames only */
	uint64_t native_no_eval;  /* stacks without a recognised frame of the
				   * evaluation loop (stripped interpreter) */
	uint64_t native_failed;   /* threads that could not be stopped/unwound */
	uint64_t native_stop_ns;  /* total time threads were stopped by us */
	uint64_t native_stop_max_ns;
} hm_sampler_stats;

void hm_sampler_opts_init(hm_sampler_opts *o);

/* Sample until the duration passes, *stop is set, or the target exits.
 * *py may be replaced (re-attach after exec). Returns HM_OK, or an error
 * when the target became impossible to read for another reason. */
int hm_sampler_run(hm_target *t, hm_python **py, hm_profile *p, const hm_sampler_opts *o,
		   hm_sampler_stats *st);

/* Add one sampled thread's stack to p (root first), honouring threads_root
 * and nolineno. */
void hm_sampler_add_thread(hm_profile *p, const hm_pythread *th, const hm_sampler_opts *o,
			   int64_t weight_ns, uint64_t t_ns);

/* The pseudo frames at the root of a thread's stacks (the process with
 * --subprocesses, the thread with --threads) written to ids; returns how many
 * (at most 2). Every stack builder starts with this. */
uint32_t hm_sampler_root_frames(hm_profile *p, const hm_sampler_opts *o, pid_t tid, uint32_t *ids);
/* The profile frame of a sampled Python frame (ids are cached in the code
 * object per profile). */
uint32_t hm_sampler_py_frame(hm_profile *p, const hm_pyframe *f, const hm_sampler_opts *o);
/* The profile thread of a sampled thread (carries the process with -s). */
uint32_t hm_sampler_thread(hm_profile *p, const hm_sampler_opts *o, pid_t tid, const char *name);

/* The --native variant of hm_sampler_add_thread: adds th merged with ns to
 * p (root first, threads_root and nolineno honoured; native frames have kind
 * HM_FRAME_NATIVE). Falls back to hm_sampler_add_thread when ns is not
 * HM_NATSTACK_OK or the merge is torn. Returns HM_SAMPLER_NATIVE_TORN if the merge
 * was torn, plus HM_SAMPLER_NATIVE_NO_EVAL if the native stack is complete yet holds
 * no frame of the evaluation loop (an interpreter whose loop is not
 * recognised: its native frames cannot be placed among the Python frames),
 * else 0. */
#define HM_SAMPLER_NATIVE_TORN 1
#define HM_SAMPLER_NATIVE_NO_EVAL 2
int hm_sampler_add_native(hm_profile *p, const hm_pythread *th, const hm_natstack *ns,
			 const hm_pylayout *L, const hm_sampler_opts *o, int64_t weight_ns,
			 uint64_t t_ns);

/* The profile span id of a sampled thread's or task's span (0: none;
 * sample/spans.c). */
uint32_t hm_sampler_span(hm_profile *p, const hm_pyspan *s);

/* Count one round that took ns in st's cost histogram. */
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

#endif
