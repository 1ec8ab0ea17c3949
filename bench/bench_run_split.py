#!/usr/bin/env python3
"""Accuracy of `homura run`'s CPU split, per Python version.

tests/programs/run_split.py has three lines that each do one kind of work
(a Python loop, zlib compression, reads from /dev/zero) and measures each
line's user and system time itself (getrusage RUSAGE_THREAD). For each
interpreter it runs under `homura run --cpu`; the table gives, per line,
the measured share of the program's CPU time and its Python / native /
system parts against that truth (the loop's user time is Python, zlib's
native, /dev/zero's system), and the largest error in percentage points.

    bench/bench_run_split.py [--only 3.8,3.11-static] [--scale 1]"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

SPLIT = benchlib.program("run_split.py")


def marker(name):
    with open(SPLIT) as f:
        for n, line in enumerate(f, 1):
            if "# LINE " + name in line:
                return n
    raise RuntimeError(name)


def measure(py, scale):
    with tempfile.TemporaryDirectory() as tmp:
        tj, rj = os.path.join(tmp, "t.json"), os.path.join(tmp, "r.json")
        p = subprocess.run([benchlib.HOMURA, "run", "--cpu", "-n", "0", "--json", rj, "--", py,
                            SPLIT, tj, str(scale)], capture_output=True, timeout=600)
        if p.returncode:
            raise RuntimeError(p.stderr.decode(errors="replace"))
        truth, rep = json.load(open(tj)), json.load(open(rj))
    total = sum(truth["process"])
    lines = {l["line"]: l for f in rep["files"] if os.path.realpath(f["path"]) == SPLIT
             for l in f["lines"]}
    cells, worst = [], 0.0
    for kind, main in (("python", "cpu_python"), ("native", "cpu_native"), ("system", "cpu_system")):
        l = lines[marker(kind)]
        u, s = truth[kind]
        share = l["cpu_python"] + l["cpu_native"] + l["cpu_system"]
        want = {"share": 100 * (u + s) / total, "cpu_system": 100 * s / total,
                main: 100 * (s if kind == "system" else u) / total}
        got = {"share": share, "cpu_system": l["cpu_system"], main: l[main]}
        worst = max([worst] + [abs(got[k] - want[k]) for k in want])
        cells.append("%.1f%% (%.1f%%); %s %.1f (%.1f)" % (share, want["share"], main[4:],
                                                         l[main], want[main]))
    return rep["cpu_samples"], cells, worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only")
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    rows = benchlib.per_interpreter(args.only, lambda py: measure(py, args.scale))
    print("| Python | samples | loop line: share (truth); Python | zlib line: share (truth); native "
          "| /dev/zero line: share (truth); system | max error |")
    print("|---|---:|---|---|---|---:|")
    for ident, r in rows:
        if isinstance(r, str):
            print("| %s | %s | | | | |" % (ident, r))
            continue
        n, cells, worst = r
        print("| %s | %d | %s | %.1f pt |" % (ident, n, " | ".join(cells), worst))
    print()
    print("Percentages of the program's CPU time; truth in brackets, from the program's own "
          "getrusage(RUSAGE_THREAD) per line. `homura run --cpu` at its default 1000 Hz.")


if __name__ == "__main__":
    main()
