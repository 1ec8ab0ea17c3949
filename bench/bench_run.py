#!/usr/bin/env python3
"""Slowdown of programs under `homura run`, beside Scalene when installed.

Each workload of bench/run_workloads.py (pure Python, allocation churn,
zlib + /dev/zero, numpy) runs bare (twice: the second, divided by the
first, is the A/A noise, measured exactly as the slowdowns are), under
`homura run --cpu` (1000 Hz, and 100 Hz), under `homura run` (every
measure) and, when `python3 -m scalene` works for the interpreter, under
`scalene --cpu` (CPU only) and `scalene --cpu --memory`. In each repeat
every kind runs once, in a fresh random order (seeded), so the kinds are
interleaved and no kind always follows another. The workload times its own
work (start-up excluded) in wall-clock and in its own CPU time; each
measured run is divided by the bare run of the same repeat, and the median
over repeats is the slowdown; "min" is the least CPU time of the kind over
the least of bare (interference from other processes only ever adds time,
so the least is the cleanest figure on a shared machine). CPU time counts
what the program itself spent (a profiler's in-process work, and the
kernel's sampling, land there); wall time also what it waited for a CPU,
which on a loaded machine is mostly noise. The load average before and
after the run is printed with the versions.

    bench/bench_run.py [--repeats 9] [--python /usr/bin/python3] [--scale 1]
                       [--workloads python,alloc] [--kinds cpu,all,scalene] [--seed 1]
(--kinds: any of cpu, cpu100, all, scalene; bare and its A/A always run)"""
import argparse
import os
import random
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


def kinds(py, want):
    k = [("bare", []),
         ("bare again (A/A noise)", [])]
    if "cpu" in want:
        k.append(("homura run --cpu", [benchlib.HOMURA, "run", "--cpu", "-n", "0", "--"]))
    if "cpu100" in want:
        k.append(("homura run --cpu -r 100",
                  [benchlib.HOMURA, "run", "--cpu", "-r", "100", "-n", "0", "--"]))
    if "all" in want:
        k.append(("homura run", [benchlib.HOMURA, "run", "-n", "0", "--"]))
    if "scalene" in want and has_scalene(py):
        k += [("scalene --cpu", None), ("scalene --cpu --memory", None)]
    return k


def versions(py):
    out = []
    for argv in ([benchlib.HOMURA, "--version"],
                 [py, "-c", "import sys; print('Python', sys.version.split()[0])"],
                 [py, "-m", "scalene", "--version"]):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            line = (p.stdout.strip() or p.stderr.strip()).splitlines()
            if p.returncode == 0 and line:
                out.append(line[0])
        except OSError:
            pass
    try:
        rev = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        if rev:
            out[0] += " (" + rev + ")"
    except (OSError, IndexError):
        pass
    return ", ".join(out)


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
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--workloads", default=",".join(MODES))
    ap.add_argument("--kinds", default="cpu,cpu100,all,scalene")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    py = args.python
    ks = kinds(py, args.kinds.split(","))
    modes = [m for m in args.workloads.split(",")
             if m in MODES and (m != "numpy" or has_numpy(py))]
    rng = random.Random(args.seed)
    load0 = os.getloadavg()
    rows = []
    ratios = {name: [] for name, _ in ks[1:]}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            runs = {name: [] for name, _ in ks}
            for _ in range(args.repeats):
                order = list(ks)
                rng.shuffle(order)
                for name, prefix in order:
                    runs[name].append(run_once(py, mode, name, prefix, args.scale, tmp))
            bare = runs["bare"]
            row = [mode, "%.2f / %.2f" % (statistics.median(w for w, _ in bare),
                                          statistics.median(c for _, c in bare))]
            for name, _ in ks[1:]:
                cpu = statistics.median(r[1] / b[1] for r, b in zip(runs[name], bare))
                least = min(c for _, c in runs[name]) / min(c for _, c in bare)
                wall = statistics.median(r[0] / b[0] for r, b in zip(runs[name], bare))
                row.append("%.2f× (min %.2f×, wall %.2f×)" % (cpu, least, wall))
                ratios[name].append((cpu, least, wall))
            rows.append(row)
    load1 = os.getloadavg()
    rows.append(["median of workloads", ""] +
                ["%.2f× (min %.2f×, wall %.2f×)" % tuple(statistics.median(r[i] for r in ratios[n])
                                                        for i in range(3))
                 for n, _ in ks[1:]])
    print("| workload | bare wall / CPU (s) | " + " | ".join(n for n, _ in ks[1:]) + " |")
    print("|---|---:|" + "---:|" * (len(ks) - 1))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()
    print("%s; %s; %d repeats, kinds in a random order in each repeat (seed %d); slowdown: "
          "median over repeats of the program's own CPU time divided by the bare run's of "
          "the same repeat (min: least over least; wall: the median of wall-clock "
          "ratios); load average %.1f before, %.1f after.%s"
          % (versions(py), py, args.repeats, args.seed, load0[0], load1[0],
             "" if has_scalene(py) else " Scalene: not installed for this interpreter."))


if __name__ == "__main__":
    main()
