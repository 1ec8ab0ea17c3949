#!/usr/bin/env python3
"""Slowdown of the profiled program, per Python version.

The same fixed amount of work (tests/programs/fixed_work.py, sized to take
about SECONDS unprofiled) runs unprofiled, under `homura record -r 100` and
under `homura record -r 1000`; the three kinds of run are interleaved (their
order rotating each repeat) so that drifts in machine speed hit all alike.
The workload times its own work, so start-up is not counted.  Reported:
median time per kind, the ratio of medians vs unprofiled, and the spread of
the unprofiled runs ((max-min)/median) as the noise floor.

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
    res = os.path.join(tmp, "t")
    cmd = [py, benchlib.program("fixed_work.py"), str(rounds), res]
    if rate is None:
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
    else:
        benchlib.homura_record(["-r", rate, "-f", "collapsed", "-o", os.path.join(tmp, "p.txt"),
                                "--"] + cmd)
    with open(res) as f:
        return float(f.read())


def measure(py, repeats, seconds):
    with tempfile.TemporaryDirectory() as tmp:
        probe = run_once(py, 500, None, tmp)
        rounds = max(100, int(500 * seconds / probe))
        times = {k: [] for k, _ in KINDS}
        for rep in range(repeats):
            order = KINDS[rep % 3:] + KINDS[:rep % 3]
            for kind, rate in order:
                times[kind].append(run_once(py, rounds, rate, tmp))
    base = benchlib.median(times["none"])
    noise = (max(times["none"]) - min(times["none"])) / base
    return {k: benchlib.median(v) for k, v in times.items()}, base, noise


def table(rows, repeats):
    out = ["| Python | unprofiled (s) | 100 Hz (s) | 1000 Hz (s) | slowdown 100 Hz | "
           "slowdown 1000 Hz | noise |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for ident, r in rows:
        if isinstance(r, str):
            out.append("| %s | %s | | | | | |" % (ident, r))
            continue
        med, base, noise = r
        out.append("| %s | %.3f | %.3f | %.3f | %+.1f%% | %+.1f%% | %.1f%% |" % (
            ident, base, med["100 Hz"], med["1000 Hz"],
            100 * (med["100 Hz"] / base - 1), 100 * (med["1000 Hz"] / base - 1), 100 * noise))
    out.append("")
    out.append("Medians of %d interleaved runs each; slowdown = median profiled / median "
               "unprofiled - 1; noise = (max - min) / median of the unprofiled runs." % repeats)
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
