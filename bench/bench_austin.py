#!/usr/bin/env python3
"""homura side by side with Austin (for comparison only; Austin is not a
dependency and is never installed by this repository).

Build Austin from source in a scratch folder outside the repository and
point AUSTIN at the binary (default: `austin` on PATH, else
/tmp/austin/src/austin); without it this benchmark prints why and exits 0.

For each interpreter, with the same targets as the other benchmarks:
- cost of one sample and invalid samples: tests/programs/recursion.py (a
  20-frame stack, busy, not paused) at 1000 Hz for DURATION seconds, by
  Austin in wall-clock mode (its default: every thread, running or not) and by
  `homura record -i` (the same mode), each reporting its own mean time per
  sample and its invalid samples;
- slowdown: tests/programs/fixed_work.py unprofiled, under Austin at 1 ms
  and under `homura record -r 1000`, interleaved, REPEATS times; the median
  of the paired ratios of the target's wall and CPU time.

    bench/bench_austin.py [--duration 5] [--repeats 5] [--only 3.9,3.12]"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def find_austin():
    exe = os.environ.get("AUSTIN") or shutil.which("austin") or "/tmp/austin/src/austin"
    return exe if os.path.isfile(exe) and os.access(exe, os.X_OK) else None


def austin_cost(austin, pid, duration):
    """(mean us, invalid %, samples) from Austin's own summary."""
    p = subprocess.run([austin, "-i", "1ms", "-x", str(max(1, int(duration))), "-p", str(pid), "-o", os.devnull],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=duration + 60)
    text = re.sub(r"\x1b\[[0-9;]*m", "", p.stderr.decode(errors="replace"))
    m = re.search(r"Frame sampling \(min/avg/max\)\s*:\s*(\d+)/(\d+)/(\d+)", text)
    e = re.search(r"Error rate\s*:\s*(\d+)/(\d+)", text)
    if not m or not e:
        raise RuntimeError("austin gave no summary: %s" % text.strip()[-200:])
    bad, total = int(e.group(1)), int(e.group(2))
    return float(m.group(2)), 100.0 * bad / total if total else float("nan"), total


def homura_cost(pid, duration, tmp):
    stats = os.path.join(tmp, "stats.json")
    benchlib.homura_record(["-p", pid, "-i", "-r", 1000, "-d", duration, "-f", "collapsed",
                            "-o", os.path.join(tmp, "p.txt"), "--stats-json", stats])
    with open(stats) as f:
        s = json.load(f)
    n = s["samples"] + s["invalid"]
    return s["sample_us"]["mean"], 100.0 * s["invalid"] / n if n else float("nan"), n


def run_work(py, rounds, how, austin, tmp):
    res = os.path.join(tmp, "t")
    cmd = [py, benchlib.program("fixed_work.py"), str(rounds), res]
    if how == "austin":
        # Austin sometimes fails to find the interpreter of a process it has
        # just started (exit status 32, seen on a loaded machine): one retry.
        for attempt in (0, 1):
            r = subprocess.run([austin, "-i", "1ms", "-o", os.devnull] + cmd,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=600)
            if r.returncode == 0:
                break
            if attempt:
                raise subprocess.CalledProcessError(r.returncode, [austin] + cmd)
    elif how == "homura":
        benchlib.homura_record(["-r", 1000, "-f", "collapsed", "-o", os.path.join(tmp, "p.txt"),
                                "--"] + cmd)
    else:
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
    with open(res) as f:
        wall, cpu = f.read().split()
    return float(wall), float(cpu)


def measure(py, austin, duration, repeats, seconds):
    row = {}
    with tempfile.TemporaryDirectory() as tmp:
        with benchlib.Workload([py, benchlib.program("recursion.py"),
                                2 * duration + 60, 18]) as w:
            row["austin_cost"] = austin_cost(austin, w.pid, duration)
            row["homura_cost"] = homura_cost(w.pid, duration, tmp)
        probe = run_work(py, 500, "none", austin, tmp)[1]
        rounds = max(100, int(500 * seconds / probe))
        kinds = ["none", "homura", "austin"]
        runs = {k: [] for k in kinds}
        for rep in range(repeats):
            k = rep % len(kinds)
            for how in kinds[k:] + kinds[:k]:
                runs[how].append(run_work(py, rounds, how, austin, tmp))
        for how in ("homura", "austin"):
            for which, name in ((0, "wall"), (1, "cpu")):
                ratios = [runs[how][i][which] / runs["none"][i][which] - 1 for i in range(repeats)]
                row["%s_%s" % (how, name)] = 100 * statistics.median(ratios)
    return row


def table(rows, duration, repeats):
    out = ["| Python | Austin µs/sample (mean) | homura µs/sample (mean) | Austin invalid | "
           "homura invalid | Austin slowdown wall / CPU | homura slowdown wall / CPU |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for ident, r in rows:
        if isinstance(r, str):
            out.append("| %s | %s | | | | | |" % (ident, r))
            continue
        a, h = r["austin_cost"], r["homura_cost"]
        out.append("| %s | %.1f | %.1f | %.2f%% | %.2f%% | %+.1f%% / %+.1f%% | %+.1f%% / %+.1f%% |" % (
            ident, a[0], h[0], a[1], h[1], r["austin_wall"], r["austin_cpu"],
            r["homura_wall"], r["homura_cpu"]))
    out.append("")
    out.append("Cost: wall-clock mode (every thread) at 1000 Hz for %g s on a busy 20-frame "
               "stack, each tool's own mean. Slowdown: median over %d interleaved repeats of "
               "profiled / unprofiled - 1 at 1000 Hz." % (duration, repeats))
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--only", help="comma-separated interpreter ids")
    a = ap.parse_args(argv)
    austin = find_austin()
    if not austin:
        print("bench_austin: no Austin binary (set AUSTIN=/path/to/austin); skipped")
        return ""
    rows = benchlib.per_interpreter(
        a.only, lambda py: measure(py, austin, a.duration, a.repeats, a.seconds))
    ver = subprocess.run([austin, "--version"], stdout=subprocess.PIPE,
                         universal_newlines=True).stdout.strip()
    text = table(rows, a.duration, a.repeats) + "\n\n" + ver + "."
    print(text)
    return text


if __name__ == "__main__":
    main()
