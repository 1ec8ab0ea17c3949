#!/usr/bin/env python3
"""Accuracy: how close the profile's shares are to the known truth.

tests/programs/shares.py spends 60 / 30 / 10 % of its CPU time in three
functions (by the clock, not by work).  Each interpreter's run is recorded
at RATE Hz for DURATION seconds; reported are the measured shares and the
largest error in percentage points.

    bench/bench_accuracy.py [--rate 100] [--duration 10] [--only 3.9]"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

TRUTH = [("spend_sixty", 60.0), ("spend_thirty", 30.0), ("spend_ten", 10.0)]


def measure(py, rate, duration):
    with tempfile.TemporaryDirectory() as tmp, \
            benchlib.Workload([py, benchlib.program("shares.py"), duration + 30]) as w:
        out = os.path.join(tmp, "p.txt")
        benchlib.homura_record(["-p", w.pid, "-r", rate, "-d", duration, "-o", out])
        counts = {fn: 0 for fn, _ in TRUTH}
        with open(out, encoding="utf-8") as f:
            for line in f:
                stack, _, n = line.rstrip("\n").rpartition(" ")
                names = {fr.split(" (")[0] for fr in stack.split(";")}
                for fn in counts:
                    if fn in names:
                        counts[fn] += int(n)
    total = sum(counts.values())
    shares = {fn: 100.0 * c / total for fn, c in counts.items()} if total else {}
    return total, shares


def table(rows, rate, duration):
    out = ["| Python | samples | spend_sixty (60%) | spend_thirty (30%) | spend_ten (10%) | "
           "max error |", "|---|---:|---:|---:|---:|---:|"]
    for ident, r in rows:
        if isinstance(r, str) or not r[1]:
            out.append("| %s | %s | | | | |" % (ident, r if isinstance(r, str) else "no samples"))
            continue
        total, shares = r
        err = max(abs(shares[fn] - want) for fn, want in TRUTH)
        out.append("| %s | %d | %.1f%% | %.1f%% | %.1f%% | %.1f pt |" % (
            ident, total, shares["spend_sixty"], shares["spend_thirty"], shares["spend_ten"], err))
    out.append("")
    out.append("%d Hz for %g s per version." % (rate, duration))
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--only", help="comma-separated interpreter ids")
    a = ap.parse_args(argv)
    rows = benchlib.per_interpreter(a.only, lambda py: measure(py, a.rate, a.duration))
    text = table(rows, a.rate, a.duration)
    print(text)
    return text


if __name__ == "__main__":
    main()
