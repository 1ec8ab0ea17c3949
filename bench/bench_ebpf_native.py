#!/usr/bin/env python3
"""Native frames with and without stopping the target: `record --ebpf
--native` (unwound from the perf sample's copy of the registers and the top
of the stack) beside `record --native` (ptrace: each sampled thread is
seized, interrupted and unwound).

For each interpreter: a zlib workload (deflate under three Python frames)
pinned to one CPU, homura pinned to another, at RATE Hz.

- CPU per sample: tests/programs/native_spin.py recorded for DURATION
  seconds and for a quarter of that, by each mode, alternating, ROUNDS
  times; (homura's rusage + the BPF program's run time from the kernel's
  statistics) / samples, and "steady": the differences between the long and
  the short recordings (start-up, i.e. attaching and loading the modules'
  unwind tables and, for --ebpf, the BPF program, drops out).
- Slowdown: a fixed amount of the same work (WORK compressions of 1 MiB),
  timed by the target itself (wall and its own CPU time, which includes
  the kernel's work in its interrupts), unprofiled and under each mode, in
  rotating order, REPEATS times; median of (profiled / mean unprofiled of
  the same repeat) - 1. On a shared machine the wall figure also moves with
  how much of its CPU the target gets from other work.

    bench/bench_ebpf_native.py [--rate 1000] [--duration 4] [--rounds 2]
                               [--repeats 3] [--work 40] [--only 3.9,3.12]

HOMURA_EBPF_STACK_BYTES sets the size of the stack copy (default 16384).
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

MODES = {"ebpf": ["--ebpf", "--native"], "ptrace": ["--native"]}

FIXED = """import os, sys, time, zlib
d = os.urandom(1 << 20)
def compress_loop(n):
    for _ in range(n):
        zlib.compress(d, 9)
def outer(n):
    compress_loop(n)
print("ready", os.getpid(), flush=True)
sys.stdin.readline()
t0, c0 = time.perf_counter(), time.process_time()
outer(int(sys.argv[1]))
print("%.6f %.6f" % (time.perf_counter() - t0, time.process_time() - c0), flush=True)
"""


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def recording(pid, mode, rate, duration, tmp, cpu):
    stats = os.path.join(tmp, "stats.json")
    args = MODES[mode] + ["-p", pid, "-r", rate, "-d", duration, "-f", "collapsed",
                          "-o", os.path.join(tmp, "p.txt"), "--stats-json", stats]
    before = child_cpu()
    p = benchlib.homura_record(args, cpu=cpu)
    used = child_cpu() - before
    if mode == "ebpf" and b"sampled in the kernel" not in p.stderr:
        raise RuntimeError("--ebpf fell back: " + p.stderr.decode(errors="replace").strip())
    with open(stats) as f:
        s = json.load(f)
    s["cpu_s"] = used
    return s


def cost(py, rate, duration, rounds, cpus):
    target_cpu, other = cpus
    argv = [py, benchlib.program("native_spin.py")]
    long_, short = {m: [] for m in MODES}, {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as tmp, \
            benchlib.Workload(benchlib.pinned(argv, target_cpu)) as w:
        for r in range(rounds):
            for mode in (list(MODES) if r % 2 == 0 else list(MODES)[::-1]):
                long_[mode].append(recording(w.pid, mode, rate, duration, tmp, other))
                short[mode].append(recording(w.pid, mode, rate, duration / 4, tmp, other))
    out = {}
    for mode in MODES:
        ll, ss = long_[mode], short[mode]
        n = sum(s["samples"] for s in ll)
        cpu_us = sum(s["cpu_s"] for s in ll) * 1e6
        bpf_us = sum(s["bpf"]["run_ns"] for s in ll) / 1000.0
        d_cpu = cpu_us - sum(s["cpu_s"] for s in ss) * 1e6
        d_bpf = bpf_us - sum(s["bpf"]["run_ns"] for s in ss) / 1000.0
        d_n = n - sum(s["samples"] for s in ss)
        nat = [s["native"] for s in ll]
        unw = sum(x["unwinds"] for x in nat)
        out[mode] = {
            "samples": n,
            "total_us": (cpu_us + bpf_us) / n if n else float("nan"),
            "steady_us": (d_cpu + d_bpf) / d_n if d_n > 0 else float("nan"),
            "bpf_us": bpf_us / n if n else 0.0,
            "torn": sum(x["torn"] for x in nat), "unwinds": unw,
            "stop_us": sum(x["stop_ns"] for x in nat) / 1000.0 / unw if unw else 0.0,
            "unjoined": sum(s["bpf"]["native_unjoined"] for s in ll),
        }
    return out


def fixed_run(py, work, mode, rate, cpus):
    """(wall, CPU) seconds the fixed work took in the target (mode None:
    unprofiled). Its CPU time includes what the kernel does in its
    interrupts (the BPF program, the copy of registers and stack)."""
    target_cpu, other = cpus
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "fixed.py")
        with open(script, "w") as f:
            f.write(FIXED)
        t = subprocess.Popen(benchlib.pinned([py, script, str(work)], target_cpu),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        t.stdout.readline()
        rec = None
        if mode:
            rec = subprocess.Popen(benchlib.pinned([benchlib.HOMURA, "record"], other) + MODES[mode]
                                   + ["-p", str(t.pid), "-r", str(rate), "-f", "collapsed",
                                      "-o", os.path.join(tmp, "p.txt")],
                                   stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            time.sleep(1.5)          # attached and sampling
        t.stdin.write("go\n")
        t.stdin.flush()
        secs = tuple(float(x) for x in t.stdout.readline().split())
        t.wait()
        if rec:
            rec.communicate(timeout=60)
        return secs


def slowdown(py, work, rate, repeats, cpus):
    """{mode: (wall slowdown, CPU slowdown)}: medians over the repeats of
    profiled / mean of the same repeat's two unprofiled runs - 1."""
    rel = {m: ([], []) for m in MODES}
    modes = [None] + list(MODES)
    for r in range(repeats):
        order = modes[r % len(modes):] + modes[:r % len(modes)]
        secs = {m: fixed_run(py, work, m, rate, cpus) for m in order}
        again = fixed_run(py, work, None, rate, cpus)
        for m in MODES:
            for k in (0, 1):
                rel[m][k].append(secs[m][k] / ((secs[None][k] + again[k]) / 2) - 1)
    return {m: (benchlib.median(v[0]), benchlib.median(v[1])) for m, v in rel.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", type=int, default=40)
    ap.add_argument("--only")
    a = ap.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    pair = (cpus[0], cpus[1]) if len(cpus) > 1 else (None, None)
    print("%s; %s; %d Hz; target (zlib under three Python frames) on one CPU, homura on "
          "another; stack copy %s bytes\n" % (benchlib.today(), benchlib.machine(), a.rate,
                                                os.environ.get("HOMURA_EBPF_STACK_BYTES", "16384")))
    print("| Python | --ebpf --native: CPU per sample | steady | of which BPF | torn | without copy "
          "| slowdown wall / CPU | --native (ptrace): CPU per sample | steady | thread stopped | torn "
          "| slowdown wall / CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")

    def measure(py):
        c = cost(py, a.rate, a.duration, a.rounds, pair)
        c["slow"] = slowdown(py, a.work, a.rate, a.repeats, pair)
        return c

    for ident, row in benchlib.per_interpreter(a.only, measure):
        if isinstance(row, str):
            print("| %s | %s |" % (ident, row))
            continue
        e, p, sl = row["ebpf"], row["ptrace"], row["slow"]
        print("| %s | %.1f us | %.1f us | %.1f us | %d/%d | %d | %+.1f%% / %+.1f%% | %.1f us "
              "| %.1f us | %.1f us | %d/%d | %+.1f%% / %+.1f%% |" % (
                  ident, e["total_us"], e["steady_us"], e["bpf_us"], e["torn"], e["unwinds"],
                  e["unjoined"], 100 * sl["ebpf"][0], 100 * sl["ebpf"][1], p["total_us"],
                  p["steady_us"], p["stop_us"], p["torn"], p["unwinds"], 100 * sl["ptrace"][0],
                  100 * sl["ptrace"][1]))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
