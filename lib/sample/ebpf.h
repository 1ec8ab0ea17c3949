/* ebpf.h - `record --ebpf`: Python stacks walked in the kernel.
 *
 * A BPF program (sample/bpf/pystack.bpf.c) runs on a software cpu-clock
 * perf event of every CPU, so it fires only where and while a thread runs:
 * each run is one sample of on-CPU time, exactly, and nobody in the target
 * is woken, stopped or read from user space per sample. For a thread of a
 * watched process it walks the Python frames in the thread's own context
 * and writes (code object, instruction) pairs to a ring buffer; this side
 * drains the ring a few times a second, resolves code objects once each with
 * the walker's caches (python/python.h hm_python_resolve) and adds the
 * stacks to the profile as the user-space loop does (hm_sampler_add_thread).
 *
 * Needs root (or CAP_BPF + CAP_PERFMON) and a kernel with BPF ring
 * buffers (5.8+); hm_ebpf_run says in one line why not, before sampling
 * anything, so the caller can fall back to the user-space sampler. */
#ifndef HOMURA_SAMPLE_EBPF_H
#define HOMURA_SAMPLE_EBPF_H

#include "base/profile.h"
#include "proc/target.h"
#include "python/python.h"
#include "sample/sampler.h"

/* 1 if this build has the in-kernel sampler. */
int hm_ebpf_built(void);

/* Like hm_sampler_run, with the in-kernel walker. HM_ESYS/HM_EPERM with a
 * one-line reason (and *started 0) when BPF cannot be used here; once
 * sampling started, the same results as hm_sampler_run. Supported options:
 * rate, duration, stop, child, idle is ignored (on-CPU only), threads_root,
 * nolineno, max_depth. */
int hm_ebpf_run(hm_target *t, hm_python **py, hm_profile *p, const hm_sampler_opts *o,
		hm_sampler_stats *st, int *started);

#endif
