#!/usr/bin/env python3
"""Per-sample cost of --native against plain Python sampling, per Python
version, on the same targets.

For each interpreter, two busy targets: tests/programs/native_spin.py (time
in zlib's deflate under three Python frames) and tests/programs/recursion.py
(a 20-frame Python stack). Each is recorded for DURATION seconds at RATE Hz
without and with -n; homura's --stats-json gives the time one sample took
(median, p99, max) and, with -n, its stderr summary gives how long each
sampled thread stood stopped (mean and max).

    bench/bench_native.py [--rate 200] [--duration 4] [--only 3.9,3.12]

Prints a Markdown table."""
import argparse
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

TARGETS = [("zlib", ["native_spin.py"]), ("py20", ["recursion.py", "{life}", "18"])]
STOP_RE = re.compile(r"threads stopped ([\d.]+) us on average, ([\d.]+) us max")
TORN_RE = re.compile(r"(\d+) stacks unwound, (\d+) torn")


def measure(py, target, rate, duration, native):
    prog = [a.format(life=int(duration + 30)) for a in target]
    prog[0] = benchlib.program(prog[0])
    with tempfile.TemporaryDirectory() as tmp, benchlib.Workload([py] + prog) as w:
        stats = os.path.join(tmp, "stats.json")
        args = ["-p", w.pid, "-r", rate, "-d", duration, "-f", "collapsed",
                "-o", os.path.join(tmp, "p.txt"), "--stats-json", stats]
        p = benchlib.homura_record((["-n"] if native else []) + args)
        with open(stats) as f:
            s = json.load(f)
        err = p.stderr.decode(errors="replace")
        m = STOP_RE.search(err)
        s["stop_avg"], s["stop_max"] = (float(m.group(1)), float(m.group(2))) if m else (0, 0)
        m = TORN_RE.search(err)
        s["torn"] = int(m.group(2)) if m else 0
        return s


def table(rows, rate, duration):
    out = ["| Python | target | mode | samples | sample p50 (µs) | p99 (µs) | max (µs) "
           "| thread stopped avg / max (µs) | torn |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for ident, tname, mode, s in rows:
        if isinstance(s, str):
            out.append("| %s | %s | %s | %s | | | | | |" % (ident, tname, mode, s))
            continue
        us = s["sample_us"]
        stop = "%.1f / %.1f" % (s["stop_avg"], s["stop_max"]) if mode == "-n" else "-"
        out.append("| %s | %s | %s | %d | %.1f | %.1f | %.1f | %s | %s |" % (
            ident, tname, mode, s["samples"], us["p50"], us["p99"], us["max"], stop,
            s["torn"] if mode == "-n" else "-"))
    out.append("")
    out.append("%d Hz for %g s per run; %s." % (rate, duration, benchlib.machine()))
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--duration", type=float, default=4)
    ap.add_argument("--only", help="comma-separated interpreter ids")
    a = ap.parse_args(argv)
    rows = []
    for ident, py in benchlib.interpreters(a.only and a.only.split(",")):
        for tname, target in TARGETS:
            for mode, native in (("plain", False), ("-n", True)):
                try:
                    s = measure(py, target, a.rate, a.duration, native)
                except Exception as e:  # report and go on
                    s = "error: %s" % str(e).strip().splitlines()[-1]
                rows.append((ident, tname, mode, s))
        print("  %s done" % ident, file=sys.stderr)
    text = table(rows, a.rate, a.duration)
    print(text)
    return text


if __name__ == "__main__":
    main()
