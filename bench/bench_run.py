#!/usr/bin/env python3
"""Slowdown of programs under `homura run`, beside Scalene when installed.

Each workload of bench/run_workloads.py (pure Python, allocation churn,
zlib + /dev/zero, numpy) runs bare (twice: the second, divided by the
first, is the noise), under `homura run --cpu` (1000 Hz, and 100 Hz), under
`homura run` (every measure) and, when `python3 -m scalene` works for the
interpreter, under `scalene --cpu` (CPU only) and `scalene --cpu --memory`, in
rotating order in each repeat. The workload times its own work (start-up
excluded) in wall-clock and in its own CPU time; each measured run is
divided by the bare run of the same repeat, and the median over repeats is
the slowdown. CPU time counts what the program itself spent (a profiler's
in-process work, and the kernel's sampling, land there); wall time also
what it waited for a CPU, which on a loaded machine is mostly noise.

    bench/bench_run.py [--repeats 5] [--python /usr/bin/python3] [--scale 1]"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "run_workloads.py")
MODES = ["python", "alloc", "native", "numpy"]


def has_scalene(py):
    return subprocess.run([py, "-c", "import scalene"], capture_output=True).returncode == 0


def has_numpy(py):
    return subprocess.run([py, "-c", "import numpy"], capture_output=True).returncode == 0


def kinds(py):
    k = [("bare", []),
         ("bare again (A/A noise)", []),
         ("homura run --cpu", [benchlib.HOMURA, "run", "--cpu", "-n", "0", "--"]),
         ("homura run --cpu -r 100", [benchlib.HOMURA, "run", "--cpu", "-r", "100", "-n", "0", "--"]),
         ("homura run", [benchlib.HOMURA, "run", "-n", "0", "--"])]
    if has_scalene(py):
        k += [("scalene --cpu", None), ("scalene --cpu --memory", None)]
    return k


def run_once(py, mode, kind, prefix, scale, tmp):
    res = os.path.join(tmp, "t")
    if os.path.exists(res):
        os.unlink(res)
    if kind.startswith("scalene"):
        # Scalene 1.5: naming any of --cpu/--memory/--gpu turns the others
        # off; --cli writes text (no web page), --outfile keeps it off stdout.
        cmd = [py, "-m", "scalene", "--cli", "--outfile", os.path.join(tmp, "s.txt")]
        cmd += kind.split()[1:]
        cmd += [WORK, "---", mode, res, str(scale)]
    else:
        cmd = prefix + [py, WORK, mode, res, str(scale)]
    p = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, timeout=600)
    if p.returncode != 0 or not os.path.exists(res):
        raise RuntimeError("%s: %s" % (" ".join(cmd), p.stderr.decode(errors="replace")[-2000:]))
    with open(res) as f:
        wall, cpu = f.read().split()
    return float(wall), float(cpu)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    py = args.python
    ks = kinds(py)
    modes = [m for m in MODES if m != "numpy" or has_numpy(py)]
    rows = []
    ratios = {name: [] for name, _ in ks[1:]}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            runs = {name: [] for name, _ in ks}
            for rep in range(args.repeats):
                order = ks[rep % len(ks):] + ks[:rep % len(ks)]
                for name, prefix in order:
                    runs[name].append(run_once(py, mode, name, prefix, args.scale, tmp))
            bare = runs["bare"]
            row = [mode, "%.2f / %.2f" % (statistics.median(w for w, _ in bare),
                                          statistics.median(c for _, c in bare))]
            for name, _ in ks[1:]:
                cpu = statistics.median(r[1] / b[1] for r, b in zip(runs[name], bare))
                wall = statistics.median(r[0] / b[0] for r, b in zip(runs[name], bare))
                row.append("%.2f× (wall %.2f×)" % (cpu, wall))
                ratios[name].append((cpu, wall))
            rows.append(row)
    rows.append(["median of workloads", ""] +
                ["%.2f× (wall %.2f×)" % (statistics.median(c for c, _ in ratios[n]),
                                         statistics.median(w for _, w in ratios[n]))
                 for n, _ in ks[1:]])
    ver = subprocess.run([py, "-c", "import sys; print(sys.version.split()[0])"],
                         capture_output=True, text=True).stdout.strip()
    print("| workload | bare wall / CPU (s) | " + " | ".join(n for n, _ in ks[1:]) + " |")
    print("|---|---:|" + "---:|" * (len(ks) - 1))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()
    print("Python %s (%s), %d repeats, rotating order; slowdown: median over repeats of the "
          "program's own CPU time (wall-clock time in brackets) divided by the bare run's of "
          "the same repeat.%s" % (ver, py, args.repeats,
                                  "" if has_scalene(py) else " Scalene: not installed for this "
                                  "interpreter."))


if __name__ == "__main__":
    main()
