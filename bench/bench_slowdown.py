#!/usr/bin/env python3
"""Slowdown of the profiled program, per Python version.

The same fixed amount of work (tests/programs/fixed_work.py, sized to take
about SECONDS unprofiled) runs unprofiled, under `homura record -r 100` and
under `homura record -r 1000`; the three kinds of run are interleaved (their
order rotating each repeat) so that drifts in machine speed hit all alike.
The workload times its own work (start-up not counted), in wall-clock time
and in its own CPU time.  Reported per rate: the slowdown of the median wall
time, of the fastest wall time (least disturbed by other load) and of the
median CPU time (which leaves out time the target spent waiting for a CPU),
each vs the unprofiled runs; and the spread of the unprofiled wall times
((max-min)/median) as the noise floor.

    bench/bench_slowdown.py [--repeats 7] [--seconds 2] [--only 3.8,3.11,3.13]"""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

KINDS = [("none", None), ("100 Hz", 100), ("1000 Hz", 1000)]


def run_once(py, rounds, rate, tmp):
    """(wall, cpu) seconds of one run."""
    res = os.path.join(tmp, "t")
    cmd = [py, benchlib.program("fixed_work.py"), str(rounds), res]
    if rate is None:
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
    else:
        benchlib.homura_record(["-r", rate, "-f", "collapsed", "-o", os.path.join(tmp, "p.txt"),
                                "--"] + cmd)
    with open(res) as f:
        wall, cpu = f.read().split()
    return float(wall), float(cpu)


def measure(py, repeats, seconds):
    """{kind: [(wall, cpu), ...]}"""
    with tempfile.TemporaryDirectory() as tmp:
        probe = run_once(py, 500, None, tmp)[1]
        rounds = max(100, int(500 * seconds / probe))
        runs = {k: [] for k, _ in KINDS}
        for rep in range(repeats):
            order = KINDS[rep % 3:] + KINDS[:rep % 3]
            for kind, rate in order:
                runs[kind].append(run_once(py, rounds, rate, tmp))
    return runs


def slowdowns(runs, kind):
    """(median wall, min wall, median cpu) slowdown of `kind` vs unprofiled, in %."""
    med = benchlib.median
    base, prof = runs["none"], runs[kind]
    return (100 * (med([w for w, _ in prof]) / med([w for w, _ in base]) - 1),
            100 * (min(w for w, _ in prof) / min(w for w, _ in base) - 1),
            100 * (med([c for _, c in prof]) / med([c for _, c in base]) - 1))


def table(rows, repeats):
    out = ["| Python | unprofiled (s) | 100 Hz: median | min | CPU | 1000 Hz: median | min | "
           "CPU | noise |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for ident, runs in rows:
        if isinstance(runs, str):
            out.append("| %s | %s | | | | | | | |" % (ident, runs))
            continue
        walls = [w for w, _ in runs["none"]]
        base = benchlib.median(walls)
        cells = ["%+.1f%%" % x for kind in ("100 Hz", "1000 Hz") for x in slowdowns(runs, kind)]
        out.append("| %s | %.3f | %s | %.1f%% |" % (
            ident, base, " | ".join(cells), 100 * (max(walls) - min(walls)) / base))
    out.append("")
    out.append("%d interleaved runs of each kind. Slowdown = profiled / unprofiled - 1 for the "
               "median wall time, the fastest wall time and the median CPU time of the target; "
               "noise = (max - min) / median of the unprofiled wall times." % repeats)
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--only", help="comma-separated interpreter ids")
    a = ap.parse_args(argv)
    rows = []
    for ident, py in benchlib.interpreters(a.only and a.only.split(",")):
        try:
            rows.append((ident, measure(py, a.repeats, a.seconds)))
        except Exception as e:
            rows.append((ident, "error: %s" % str(e).strip().splitlines()[-1]))
        print("  %s done" % ident, file=sys.stderr)
    text = table(rows, a.repeats)
    print(text)
    return text


if __name__ == "__main__":
    main()
