#!/usr/bin/env python3
"""Cost of one sample and invalid-sample rate, per Python version.

For each interpreter: a busy target whose stack is 20 frames deep
(tests/programs/recursion.py with 18 levels of recursion under <module> and
above leaf_work) is recorded for DURATION seconds at RATE Hz without pausing
it; homura's --stats-json gives the time one sample took (median, p99, max)
and how many samples were dropped as invalid or were late.

    bench/bench_sample_cost.py [--rate 1000] [--duration 5] [--only 3.9,3.12]

Prints a Markdown table (the same one docs/benchmarks.md holds)."""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def measure(py, rate, duration):
    with tempfile.TemporaryDirectory() as tmp, \
            benchlib.Workload([py, benchlib.program("recursion.py"), duration + 30, 18]) as w:
        stats = os.path.join(tmp, "stats.json")
        benchlib.homura_record(["-p", w.pid, "-r", rate, "-d", duration, "-f", "collapsed",
                                "-o", os.path.join(tmp, "p.txt"), "--stats-json", stats])
        with open(os.path.join(tmp, "p.txt")) as f:
            depths = [len(l.rpartition(" ")[0].split(";")) for l in f if l.strip()]
        with open(stats) as f:
            s = json.load(f)
        s["depth"] = max(depths) if depths else 0
        return s


def table(rows, rate, duration):
    out = ["| Python | samples | sample p50 (µs) | p99 (µs) | max (µs) | invalid | late | depth |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for ident, s in rows:
        if isinstance(s, str):
            out.append("| %s | %s | | | | | | |" % (ident, s))
            continue
        n = s["samples"]
        inv = 100.0 * s["invalid"] / n if n else float("nan")
        us = s["sample_us"]
        out.append("| %s | %d | %.1f | %.1f | %.1f | %.2f%% | %d | %d |" % (
            ident, n, us["p50"], us["p99"], us["max"], inv, s["late"], s["depth"]))
    out.append("")
    out.append("%d Hz for %g s per version, target not paused, 20-frame stack." % (rate, duration))
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--only", help="comma-separated interpreter ids")
    a = ap.parse_args(argv)
    rows = []
    for ident, py in benchlib.interpreters(a.only and a.only.split(",")):
        try:
            rows.append((ident, measure(py, a.rate, a.duration)))
        except Exception as e:  # report and go on with the other versions
            rows.append((ident, "error: %s" % str(e).strip().splitlines()[-1]))
        print("  %s done" % ident, file=sys.stderr)
    text = table(rows, a.rate, a.duration)
    print(text)
    return text


if __name__ == "__main__":
    main()
