#!/usr/bin/env python3
"""record --ebpf beside the user-space sampler: what a sample costs.

For each interpreter (3.8+): tests/programs/recursion.py (a busy 20-frame
stack) pinned to one CPU is recorded at RATE Hz by `homura record --ebpf`
(samples counted per stack in the kernel, read once a second), by the same
with HOMURA_BPF_RING=1 (one ring-buffer record per sample, drained every
50 ms: the first version's design) and by `homura record` (the user-space
sampler, same on-CPU mode), with homura on another CPU, in turn, ROUNDS
times, each for DURATION seconds. The cost of a sample is what the user
pays: homura's own CPU time (rusage of the child, user + system) plus, for
--ebpf, the kernel's count of the BPF program's run time on every CPU
(bpf_enable_stats; it includes the runs that found another task on the CPU
and returned at once), divided by the samples. "Steady" leaves out
start-up (attaching; for --ebpf loading and verifying the program) and
tear-down: homura's CPU time (schedstat) over a window from 1.5 s after its
start to 1 s before its end, per second, over the samples per second, plus
the BPF part. The program's run time per run in the target is given too
(runs in tasks of other processes cost a hash lookup: their part, measured
with a sleeping target, is subtracted), and "busy target": what a sample
costs where the target has its CPU to itself (see main()).

    bench/bench_ebpf.py [--rate 1000] [--duration 5] [--rounds 3] [--only 3.9,3.12]

Prints a Markdown table (docs/benchmarks.md holds one)."""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def task_cpu_ns(pid):
    """CPU time of every thread of pid so far (schedstat, nanoseconds)."""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def recording(pid, rate, duration, tmp, ebpf, cpu, ring=False):
    """One recording of DURATION s; besides its totals, homura's own CPU time
    over a window from 1.5 s after its start to 1 s before its end (steady:
    no loading, attaching or writing)."""
    stats = os.path.join(tmp, "stats.json")
    args = ["-p", pid, "-r", rate, "-d", duration, "-f", "collapsed",
            "-o", os.path.join(tmp, "p.txt"), "--stats-json", stats]
    if ebpf:
        args = ["--ebpf"] + args
    env = dict(os.environ, HOMURA_BPF_RING="1") if ring else None
    before = child_cpu()
    p = subprocess.Popen(benchlib.pinned([benchlib.HOMURA, "record"], cpu) + [str(a) for a in args],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=env)
    steady = None
    if duration >= 4:
        time.sleep(1.5)
        c0, t0 = task_cpu_ns(p.pid), time.monotonic()
        time.sleep(duration - 2.5)
        c1, t1 = task_cpu_ns(p.pid), time.monotonic()
        steady = (c1 - c0) / 1000.0 / (t1 - t0)
    err = p.communicate(timeout=120)[1]
    used = child_cpu() - before
    if p.returncode:
        raise RuntimeError("homura record %s: %s" % (" ".join(map(str, args)), err.decode(errors="replace")))
    if ebpf and b"sampled in the kernel" not in err:
        raise RuntimeError("--ebpf fell back: " + err.decode(errors="replace").strip())
    with open(stats) as f:
        s = json.load(f)
    s["cpu_s"] = used
    s["steady_us_per_s"] = steady
    s["duration"] = duration
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
    argv = [py, benchlib.program("recursion.py"), 3 * rounds * (duration + 2) + 30, 18]
    kinds = ("ebpf", "ring", "user")
    rows = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp, \
            benchlib.Workload(benchlib.pinned(argv, target_cpu)) as w:
        for r in range(rounds):
            order = kinds[r % 3:] + kinds[:r % 3]
            for kind in order:
                ebpf, ring = kind != "user", kind == "ring"
                s = recording(w.pid, rate, duration, tmp, ebpf, other, ring)
                rows[kind].append(s)
    out = {}
    for kind, ss in rows.items():
        samples = sum(s["samples"] for s in ss)
        invalid = sum(s["invalid"] for s in ss)
        cpu_us = sum(s["cpu_s"] for s in ss) * 1e6
        bpf_us = sum(s["bpf"]["run_ns"] for s in ss) / 1000.0
        matched = sum(s["bpf"]["matched"] for s in ss)
        runs = sum(s["bpf"]["runs"] for s in ss)
        in_target = (bpf_us * 1000.0 - (runs - matched) * idle_ns) / matched / 1000.0 if matched else None
        # homura's steady CPU per second (a window inside each recording)
        # and what a sample costs on a target that has its CPU to itself
        # (here it may get only part of one, which leaves homura's
        # per-second costs to fewer samples): the program's run in the
        # target, its runs on the other CPUs (one each per period), and
        # homura's steady CPU per second spread over RATE samples.
        per_s = [s["steady_us_per_s"] for s in ss if s["steady_us_per_s"] is not None]
        user_per_s = sum(per_s) / len(per_s) if per_s else float("nan")
        full = (in_target + (len(os.sched_getaffinity(0)) - 1) * idle_ns / 1000.0 +
                user_per_s / rate) if in_target is not None else None
        out[kind] = {"full_us": full, "user_us_per_s": user_per_s,"samples": samples, "invalid": invalid,
                     "user_us": cpu_us / samples if samples else float("nan"),
                     "bpf_us": bpf_us / samples if samples else 0.0,
                     "total_us": (cpu_us + bpf_us) / samples if samples else float("nan"),
                     "steady_us": (user_per_s / (samples / sum(s["duration"] for s in ss)) +
                                   bpf_us / samples) if samples else float("nan"),
                     "start_ms": (cpu_us - user_per_s * sum(s["duration"] for s in ss)) / len(ss) / 1000.0,
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
    print("%s; %s; %d Hz, %g s x %d rounds per sampler, in turn; target on one CPU, "
          "homura on another" % (benchlib.today(), benchlib.machine(), a.rate, a.duration, a.rounds))
    print("BPF program run for a task of another process (returns at once): %.2f us\n" % (idle_ns / 1000))
    print("CPU per sample = (homura's rusage + the BPF program's run time) / samples; steady: "
          "homura's CPU per second in a window inside the recording (no start-up: attach; for "
          "--ebpf, loading and verifying the program; no tear-down) / samples per second, plus "
          "the BPF part; start-up is given apart.\n")
    print("\"busy target\": the cost per sample on a target that has a CPU to itself: the BPF "
          "run in the target, plus one run per period on each other CPU, plus homura's steady CPU "
          "per second / rate.\n")
    print("| Python | --ebpf: CPU per sample | steady | busy target | of which BPF | BPF run in the target "
          "| homura CPU per s | start-up | invalid | ring: steady | busy target | homura CPU per s "
          "| user-space: CPU per sample | steady | start-up | invalid | ratio (steady) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for ident, row in benchlib.per_interpreter(a.only, lambda py: measure(py, a.rate, a.duration,
                                                                           a.rounds, idle_ns)):
        if isinstance(row, str):
            print("| %s | %s |" % (ident, row))
            continue
        e, g, u = row["ebpf"], row["ring"], row["user"]
        fmt = lambda v: "%.2f us" % v if v is not None else "-"  # noqa: E731
        print("| %s | %.2f us | %.2f us | %s | %.2f us | %s | %.0f us | %.0f ms | %d/%d | %.2f us | %s "
              "| %.0f us | %.2f us | %.2f us | %.0f ms | %d/%d | %.1fx |" % (
                  ident, e["total_us"], e["steady_us"], fmt(e["full_us"]), e["bpf_us"],
                  fmt(e["run_in_target_us"]), e["user_us_per_s"],
                  e["start_ms"], e["invalid"], e["samples"] + e["invalid"], g["steady_us"],
                  fmt(g["full_us"]), g["user_us_per_s"], u["total_us"],
                  u["steady_us"], u["start_ms"], u["invalid"], u["samples"] + u["invalid"],
                  u["steady_us"] / e["steady_us"] if e["steady_us"] else float("nan")))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
