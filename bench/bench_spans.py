#!/usr/bin/env python3
"""Added cost per sample of reading OpenTelemetry spans (issue 14).

For each interpreter the SDK runs on (3.10+ and Debian's static 3.11), a
busy thread inside SDK spans (tests/programs/otel_busy.py) is recorded with
span reading on and off (--no-trace), alternating, ROUNDS times each, at
RATE Hz with --idle (every round walks the thread and reads its span) for
DURATION seconds; homura's --stats-json gives each recording's median
sample cost. The table gives the median of the per-round medians with spans
on and off and the median of the paired differences (on minus off, same
round), for `steady` spans (each open ~0.2 s: the answer is re-checked in
one system call) and `churn` (a new span every ~1 ms: the chain is often
read again), plus the share of samples that carried a span.

With --ebpf the recordings are `record --ebpf` (the BPF program reads the
span itself at sample time) and the cost is the kernel's count of
the program's run time per run in the target (bpf_enable_stats: run time
over the runs that found the target, less the runs for other tasks at the
cost measured first with a sleeping target).

    bench/bench_spans.py [--rate 1000] [--duration 3] [--rounds 5] [--only 3.11,3.12] [--ebpf]
                         [--modes steady,churn]"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

SITE = os.environ.get("HOMURA_OTEL_SITE", "")
for cand in [SITE, str(benchlib.REPO / "shared/third_party/otel-python/site"),
             str(benchlib.REPO.parent / "shared/third_party/otel-python/site"),
             "/work/shared/third_party/otel-python/site"]:
    if cand and os.path.isdir(os.path.join(cand, "opentelemetry")):
        SITE = cand
        break


EBPF = False
IDLE_NS = 0.0       # --ebpf: a run of the program for a task of another process


def idle_run_ns(rate, tmp):
    argv = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(600)"]
    with benchlib.Workload(argv) as w:
        stats = os.path.join(tmp, "idle.json")
        benchlib.homura_record(["--ebpf", "-p", w.pid, "-r", rate, "-d", 2, "-f", "collapsed",
                                "-o", os.path.join(tmp, "idle.txt"), "--stats-json", stats])
        with open(stats) as f:
            b = json.load(f)["bpf"]
    return b["run_ns"] / b["runs"] if b["runs"] else 0.0


def one(pid, rate, duration, tmp, trace):
    stats, out = os.path.join(tmp, "s.json"), os.path.join(tmp, "p.txt")
    args = ["-p", pid, "-r", rate, "-d", duration, "--group-by", "span", "-f", "collapsed",
            "-o", out, "--stats-json", stats] + ([] if trace else ["--no-trace"])
    args = (["--ebpf"] if EBPF else ["-i"]) + args
    p = benchlib.homura_record(args)
    if EBPF and b"sampled in the kernel" not in p.stderr:
        raise RuntimeError("--ebpf fell back: " + p.stderr.decode(errors="replace").strip())
    with open(stats) as f:
        st = json.load(f)
    if EBPF:
        b = st["bpf"]
        in_target = b["run_ns"] - IDLE_NS * (b["runs"] - b["matched"])
        p50 = in_target / 1000.0 / b["matched"] if b["matched"] else float("nan")
    else:
        p50 = st["sample_us"]["p50"]
    inside = total = 0
    with open(out) as f:
        for line in f:
            stack, _, n = line.rpartition(" ")
            total += int(n)
            if not stack.startswith("span: <none>"):
                inside += int(n)
    return p50, inside / total if total else 0.0


def measure(py, mode, rate, duration, rounds):
    on, off, diff, share = [], [], [], []
    argv = [py, benchlib.program("otel_busy.py"), SITE, rounds * 2 * (duration + 2) + 20, mode]
    with tempfile.TemporaryDirectory() as tmp, benchlib.Workload(argv) as w:
        for k in range(rounds):
            first = k % 2 == 0
            a = one(w.pid, rate, duration, tmp, first)
            b = one(w.pid, rate, duration, tmp, not first)
            t_on, t_off = (a, b) if first else (b, a)
            on.append(t_on[0])
            off.append(t_off[0])
            diff.append(t_on[0] - t_off[0])
            share.append(t_on[1])
    m = benchlib.median
    return "%.1f | %.1f | %+.1f | %.0f%%" % (m(on), m(off), m(diff), 100 * m(share))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only")
    ap.add_argument("--ebpf", action="store_true")
    ap.add_argument("--modes", default="steady,churn")
    a = ap.parse_args()
    global EBPF, IDLE_NS
    EBPF = a.ebpf
    if EBPF:
        with tempfile.TemporaryDirectory() as tmp:
            IDLE_NS = idle_run_ns(a.rate, tmp)
    if not SITE:
        sys.exit("bench_spans: the OpenTelemetry SDK (shared/third_party/otel-python) is missing")
    low = (3, 10)
    only = a.only or ",".join(i for i, _ in benchlib.interpreters()
                              if i == "3.11-static" or tuple(map(int, i.split("."))) >= low)
    what = "BPF run per sample in the target" if a.ebpf else "sample p50"
    print("| Python | spans | %s, spans on (µs) | off (µs) | added, paired median (µs) "
          "| samples in a span |" % what)
    print("|---|---|---:|---:|---:|---:|")
    for mode in a.modes.split(","):
        for ident, row in benchlib.per_interpreter(
                only, lambda py: measure(py, mode, a.rate, a.duration, a.rounds)):
            print("| %s | %s | %s |" % (ident, mode, row))
    print()
    print("%d rounds per version, each one recording with span reading on and one off "
          "(--no-trace), alternating, %d Hz %s for %d s; %s" %
          (a.rounds, a.rate, "with --ebpf" if a.ebpf else "with --idle", a.duration,
           benchlib.machine()))


if __name__ == "__main__":
    main()
