#!/usr/bin/env python3
"""Slowdown of the profiled program, per Python version.

The same fixed amount of work (tests/programs/fixed_work.py, sized to take
about SECONDS unprofiled) runs unprofiled twice, under `homura record -r 100`
and under `homura record -r 1000` in each repeat, the order rotating each
repeat so that drifts in machine speed hit all kinds alike.  The workload
times its own work (start-up not counted), in wall-clock time and in its own
CPU time.

The comparison is paired: each profiled run is divided by the mean of the
two unprofiled runs of the same repeat, and the median of those ratios over
the repeats is the slowdown, with a 90 % bootstrap interval.  The noise is
what the same statistic gives for one unprofiled run against the other (an
A/A comparison): a slowdown inside it cannot be told apart from no slowdown.
Wall time is what a user sees; CPU time leaves out time the target waited
for a CPU while other programs ran.

    bench/bench_slowdown.py [--repeats 10] [--seconds 2] [--only 3.8,3.11,3.13]"""
import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

KINDS = [("none", None), ("100 Hz", 100), ("none2", None), ("1000 Hz", 1000)]


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
    """{kind: [(wall, cpu), ...]}, one entry per repeat."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = run_once(py, 500, None, tmp)[1]
        rounds = max(100, int(500 * seconds / probe))
        runs = {k: [] for k, _ in KINDS}
        for rep in range(repeats):
            k = rep % len(KINDS)
            for kind, rate in KINDS[k:] + KINDS[:k]:
                runs[kind].append(run_once(py, rounds, rate, tmp))
    return runs


def paired(runs, kind, which):
    """Per repeat: run of `kind` / mean of that repeat's unprofiled runs - 1
    (which: 0 wall, 1 CPU). For "none2" the baseline is "none" alone."""
    out = []
    for i in range(len(runs["none"])):
        if kind == "none2":
            base = runs["none"][i][which]
        else:
            base = (runs["none"][i][which] + runs["none2"][i][which]) / 2
        out.append(runs[kind][i][which] / base - 1)
    return out


def interval(xs, rounds=2000):
    """90 % bootstrap interval of the median of xs."""
    rng = random.Random(1)
    meds = sorted(statistics.median(rng.choice(xs) for _ in xs) for _ in range(rounds))
    return meds[int(0.05 * rounds)], meds[int(0.95 * rounds) - 1]


def summary(runs, kind, which):
    """(median, low, high) of the paired slowdown in %."""
    xs = paired(runs, kind, which)
    lo, hi = interval(xs)
    return 100 * statistics.median(xs), 100 * lo, 100 * hi


def cell(m):
    return "%+.1f%% [%+.1f, %+.1f]" % m


def noise(runs, which):
    """Median |A/A difference| in %: how far apart two unprofiled runs land."""
    return 100 * statistics.median(abs(x) for x in paired(runs, "none2", which))


def table(rows, repeats):
    out = ["| Python | unprofiled (s) | 100 Hz wall | 1000 Hz wall | A/A wall noise | "
           "100 Hz CPU | 1000 Hz CPU | A/A CPU noise |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for ident, runs in rows:
        if isinstance(runs, str):
            out.append("| %s | %s | | | | | | |" % (ident, runs))
            continue
        base = benchlib.median([w for w, _ in runs["none"] + runs["none2"]])
        out.append("| %s | %.3f | %s | %s | %.1f%% | %s | %s | %.1f%% |" % (
            ident, base, cell(summary(runs, "100 Hz", 0)), cell(summary(runs, "1000 Hz", 0)),
            noise(runs, 0), cell(summary(runs, "100 Hz", 1)), cell(summary(runs, "1000 Hz", 1)),
            noise(runs, 1)))
    out.append("")
    out.append("%d repeats, each running the workload unprofiled twice, at 100 Hz and at "
               "1000 Hz in rotating order. Slowdown: median over repeats of profiled / mean "
               "of the same repeat's two unprofiled runs - 1, with its 90 %% bootstrap "
               "interval; A/A noise: median |difference| between the two unprofiled runs "
               "of a repeat." % repeats)
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--only", help="comma-separated interpreter ids")
    a = ap.parse_args(argv)
    rows = benchlib.per_interpreter(a.only, lambda py: measure(py, a.repeats, a.seconds))
    text = table(rows, a.repeats)
    print(text)
    return text


if __name__ == "__main__":
    main()
