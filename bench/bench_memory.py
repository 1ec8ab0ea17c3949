#!/usr/bin/env python3
"""bench_memory.py - slowdown of a program under the allocation sampler of
`homura run --memory` (build/libhomura-alloc.so, driven by
build/tests/memdrive), beside the same program bare, with
PYTHONMALLOC=malloc (the alternative to wrapping pymalloc: what it alone
costs), and under Scalene (`python3 -m scalene --cpu --memory`) when
Debian's python3-scalene is installed.

Workloads (bench/workloads/): an allocation-heavy pure-Python script and a
numpy script, run by /usr/bin/python3 (Debian's numpy and Scalene are
built for it). Each times its own work (start-up excluded) in wall-clock
and CPU time; the sampler runs inside the program, so its CPU time is the
program's. Modes are interleaved in each repeat, in a rotating order; the
slowdown is the median over repeats of (mode / bare of the same repeat).
On a loaded machine, read the CPU column: wall time drowns in the load.

    bench/bench_memory.py [--repeats 5] [--quick]
"""
import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import HOMURA  # noqa: E402

HERE = Path(__file__).resolve().parent
MEMDRIVE = str(Path(HOMURA).parent / "tests" / "memdrive")
PY = "/usr/bin/python3"
WORKLOADS = ["mem_churn.py", "mem_numpy.py"]


def has_module(name):
    return subprocess.run([PY, "-c", "import %s" % name], capture_output=True).returncode == 0


def run(mode, script):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", OPENBLAS_NUM_THREADS="1")
    env.pop("PYTHONMALLOC", None)
    path = str(HERE / "workloads" / script)
    if mode == "bare":
        argv = [PY, path]
    elif mode == "PYTHONMALLOC=malloc":
        argv = [PY, path]
        env["PYTHONMALLOC"] = "malloc"
    elif mode == "homura":
        argv = [MEMDRIVE, "--", PY, path]
    elif mode == "scalene":
        argv = [PY, "-m", "scalene", "--cpu", "--memory", "--cli", "--reduced-profile",
                "--outfile", os.devnull, path]
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
    for line in (p.stdout + "\n" + p.stderr).splitlines():
        if line.startswith("work "):
            _, wall, cpu = line.split()[:3]
            return float(wall), float(cpu)
    raise RuntimeError("%s %s: no result (exit %d): %s" % (mode, script, p.returncode,
                                                         (p.stderr.strip().splitlines() or [""])[-1]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="one repeat: checks the script")
    a = ap.parse_args(argv)
    repeats = 1 if a.quick else a.repeats
    modes = ["bare", "homura", "PYTHONMALLOC=malloc"]
    if has_module("scalene"):
        modes.append("scalene")
    rows = []
    for script in WORKLOADS:
        if script == "mem_numpy.py" and not has_module("numpy"):
            rows.append("| %s | numpy is not installed for %s |" % (script, PY))
            continue
        res = {m: [] for m in modes}
        for r in range(repeats):
            order = modes[r % len(modes):] + modes[:r % len(modes)]
            for m in order:
                try:
                    res[m].append(run(m, script))
                except Exception as e:          # a tool that fails is reported, not fatal
                    res[m].append(str(e))
            print("  %s repeat %d done" % (script, r + 1), file=sys.stderr)
        base = res["bare"]
        for m in modes:
            ok = [(x, b) for x, b in zip(res[m], base) if isinstance(x, tuple) and isinstance(b, tuple)]
            if not ok:
                err = next((x for x in res[m] if isinstance(x, str)), "failed")
                rows.append("| %s | %s | %s |  |  |  |" % (script, m, err.replace("|", "/")[:120]))
                continue
            wall = statistics.median(x[0] for x, _ in ok)
            cpu = statistics.median(x[1] for x, _ in ok)
            sw = statistics.median(x[0] / b[0] for x, b in ok)
            sc = statistics.median(x[1] / b[1] for x, b in ok)
            rows.append("| %s | %s | %.2f | %.2f | %.3f× | %.3f× |" % (script, m, wall, cpu, sw, sc))
    ver = subprocess.run([PY, "-c", "import sys; print(sys.version.split()[0])"],
                         capture_output=True, text=True).stdout.strip()
    extra = []
    if has_module("numpy"):
        extra.append("numpy " + subprocess.run([PY, "-c", "import numpy; print(numpy.__version__)"],
                                               capture_output=True, text=True).stdout.strip())
    if "scalene" in modes:
        extra.append("Scalene " + subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "python3-scalene"], capture_output=True,
            text=True).stdout.strip())
    head = ("%s (Python %s%s), %d repeat(s), modes interleaved; work time measured by the "
            "workload itself (start-up excluded); slowdown: median over repeats of mode / bare "
            "in the same repeat.\n\n" % (PY, ver, ", " + ", ".join(extra) if extra else "", repeats))
    table = ("| workload | mode | wall (s) | CPU (s) | wall slowdown | CPU slowdown |\n"
             "|---|---|---:|---:|---:|---:|\n" + "\n".join(rows))
    return head + table


if __name__ == "__main__":
    print(main())
