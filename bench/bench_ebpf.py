#!/usr/bin/env python3
"""record --ebpf beside the user-space sampler: what a sample costs.

For each interpreter (3.8+): tests/programs/recursion.py (a busy 20-frame
stack) pinned to one CPU is recorded at RATE Hz by `homura record --ebpf`
(samples counted per stack in the kernel, read once a second), by the same
with HOMURA_BPF_RING=1 (one ring-buffer record per sample, drained every
50 ms: the first version's design) and by `homura record` (the user-space
sampler, same on-CPU mode), with homura on another CPU, in turn, ROUNDS
times, each for DURATION seconds and again for a quarter of it. The cost of a sample is what the user pays:
homura's own CPU time (rusage of the child, user + system) plus, for
--ebpf, the kernel's count of the BPF program's run time on every CPU
(bpf_enable_stats; it includes the runs that found another task on the CPU
and returned at once), divided by the samples. "Steady" is the marginal
cost: the differences in CPU time and in samples between the long and the
short recordings, so that start-up (attaching; for --ebpf loading and
verifying the program) and tear-down drop out. The program's run time per
run in the target is given too (runs in tasks of other processes cost a
hash lookup: their part, measured with a sleeping target, is subtracted).

    bench/bench_ebpf.py [--rate 1000] [--duration 5] [--rounds 3] [--only 3.9,3.12]

Prints a Markdown table (docs/benchmarks.md holds one)."""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def recording(pid, rate, duration, tmp, ebpf, cpu, ring=False):
    stats = os.path.join(tmp, "stats.json")
    args = ["-p", pid, "-r", rate, "-d", duration, "-f", "collapsed",
            "-o", os.path.join(tmp, "p.txt"), "--stats-json", stats]
    if ebpf:
        args = ["--ebpf"] + args
    before = child_cpu()
    p = benchlib.homura_record(args, cpu=cpu, env={"HOMURA_BPF_RING": "1"} if ring else None)
    used = child_cpu() - before
    if ebpf and b"sampled in the kernel" not in p.stderr:
        raise RuntimeError("--ebpf fell back: " + p.stderr.decode(errors="replace").strip())
    with open(stats) as f:
        s = json.load(f)
    s["cpu_s"] = used
    return s


def idle_run_cost(rate, duration, tmp):
    """ns per run of the BPF program when the task on the CPU is not watched."""
    argv = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(600)"]
    with benchlib.Workload(argv) as w:
        s = recording(w.pid, rate, duration, tmp, True, None)
    b = s["bpf"]
    return b["run_ns"] / b["runs"] if b["runs"] else 0.0


def measure(py, rate, duration, rounds, idle_ns):
    cpus = sorted(os.sched_getaffinity(0))
    target_cpu = cpus[0] if len(cpus) > 1 else None
    other = cpus[1] if len(cpus) > 1 else None
    argv = [py, benchlib.program("recursion.py"), 3 * rounds * duration + 30, 18]
    kinds = ("ebpf", "ring", "user")
    rows = {k: [] for k in kinds}
    short = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp, \
            benchlib.Workload(benchlib.pinned(argv, target_cpu)) as w:
        for r in range(rounds):
            order = kinds[r % 3:] + kinds[:r % 3]
            for kind in order:
                ebpf, ring = kind != "user", kind == "ring"
                s = recording(w.pid, rate, duration, tmp, ebpf, other, ring)
                rows[kind].append(s)
                # a quarter as long: the difference is the marginal cost
                # of samples, without start-up and tear-down
                s = recording(w.pid, rate, duration / 4, tmp, ebpf, other, ring)
                short[kind].append(s)
    out = {}
    for kind, ss in rows.items():
        samples = sum(s["samples"] for s in ss)
        invalid = sum(s["invalid"] for s in ss)
        cpu_us = sum(s["cpu_s"] for s in ss) * 1e6
        sh = short[kind]
        d_cpu = (sum(s["cpu_s"] for s in ss) - sum(s["cpu_s"] for s in sh)) * 1e6
        d_bpf = (sum(s["bpf"]["run_ns"] for s in ss) - sum(s["bpf"]["run_ns"] for s in sh)) / 1000.0
        d_n = sum(s["samples"] for s in ss) - sum(s["samples"] for s in sh)
        start_ms = (sum(s["cpu_s"] for s in sh) * 1e6 - d_cpu / 3) / len(sh) / 1000.0
        bpf_us = sum(s["bpf"]["run_ns"] for s in ss) / 1000.0
        matched = sum(s["bpf"]["matched"] for s in ss)
        runs = sum(s["bpf"]["runs"] for s in ss)
        in_target = (bpf_us * 1000.0 - (runs - matched) * idle_ns) / matched / 1000.0 if matched else None
        out[kind] = {"samples": samples, "invalid": invalid,
                     "user_us": cpu_us / samples if samples else float("nan"),
                     "bpf_us": bpf_us / samples if samples else 0.0,
                     "total_us": (cpu_us + bpf_us) / samples if samples else float("nan"),
                     "steady_us": (d_cpu + d_bpf) / d_n if d_n > 0 else float("nan"),
                     "start_ms": start_ms,
                     "run_in_target_us": in_target}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        idle_ns = idle_run_cost(a.rate, 2, tmp)
    print("%s; %s; %d Hz, %g s x %d rounds per sampler, alternating; target on one CPU, "
          "homura on another" % (benchlib.today(), benchlib.machine(), a.rate, a.duration, a.rounds))
    print("BPF program run for a task of another process (returns at once): %.2f us\n" % (idle_ns / 1000))
    print("CPU per sample = (homura's rusage + the BPF program's run time) / samples; steady: "
          "the marginal cost, from a recording and one a quarter as long (their differences in "
          "CPU time and samples), so start-up (attach; for --ebpf, loading and verifying the "
          "program) and tear-down drop out; start-up is given apart.\n")
    print("| Python | --ebpf: CPU per sample | steady | of which BPF | BPF run in the target "
          "| start-up | invalid | ring per sample: steady | of which BPF "
          "| user-space: CPU per sample | steady | start-up | invalid | ratio (steady) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for ident, row in benchlib.per_interpreter(a.only, lambda py: measure(py, a.rate, a.duration,
                                                                           a.rounds, idle_ns)):
        if isinstance(row, str):
            print("| %s | %s |" % (ident, row))
            continue
        e, g, u = row["ebpf"], row["ring"], row["user"]
        print("| %s | %.2f us | %.2f us | %.2f us | %s | %.0f ms | %d/%d | %.2f us | %.2f us "
              "| %.2f us | %.2f us | %.0f ms | %d/%d | %.1fx |" % (
                  ident, e["total_us"], e["steady_us"], e["bpf_us"],
                  "%.2f us" % e["run_in_target_us"] if e["run_in_target_us"] is not None else "-",
                  e["start_ms"], e["invalid"], e["samples"] + e["invalid"], g["steady_us"],
                  g["bpf_us"], u["total_us"],
                  u["steady_us"], u["start_ms"], u["invalid"], u["samples"] + u["invalid"],
                  u["steady_us"] / e["steady_us"] if e["steady_us"] else float("nan")))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
