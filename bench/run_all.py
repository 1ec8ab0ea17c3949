#!/usr/bin/env python3
"""Run every homura benchmark and write docs/benchmarks.md (machine, date,
the exact commands, and one table per benchmark).

    bench/run_all.py [--only 3.8,3.11] [--quick] [--out docs/benchmarks.md]

--quick shortens every run (for checking the scripts, not for numbers).
The comparison with Austin runs when an Austin binary is found (see
bench_austin.py). Everything from the heading "## Other measurements" on in
the existing file (figures from benchmarks that run for hours or need other
set-ups) is kept."""
import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_accuracy  # noqa: E402
import bench_austin  # noqa: E402
import bench_sample_cost  # noqa: E402
import bench_slowdown  # noqa: E402
import benchlib  # noqa: E402

HEADER = """# homura benchmarks

Measured {date} on {machine} (load average {load} at the start), with `bench/run_all.py{args}` (homura
{commit}, built by `make`, -O2). Targets are the interpreters under /root/.pyenv/versions and
Debian's static /usr/bin/python3.11. How each number is made is described in
[bench/README.md](../bench/README.md); rerun to refresh.

Goals (issue 2): sample cost median ≤ 5 µs on 3.11+ and ≤ 20 µs on
3.8–3.10; invalid samples < 0.5 % without pausing; slowdown below noise at
100 Hz and ≤ 2 % at 1000 Hz; shares within 2 percentage points.
"""


def commit():
    """The commit measured, marked when the tree had uncommitted changes."""
    git = ["git", "-C", str(benchlib.REPO)]
    try:
        rev = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(git + ["status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "from an unknown commit"
    return "at commit %s%s" % (rev, " with local changes" if dirty else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--baseline", help="another homura binary for the sample-cost table")
    ap.add_argument("--out", default=str(benchlib.REPO / "docs" / "benchmarks.md"))
    a = ap.parse_args()
    only = ["--only", a.only] if a.only else []
    q = a.quick
    cost_args = only + (["--duration", "1", "--rounds", "1"] if q else []) + \
        (["--baseline", a.baseline] if a.baseline else [])
    slow_args = only + (["--repeats", "3", "--seconds", "0.5"] if q else [])
    acc_args = only + (["--duration", "2"] if q else [])
    shown = "".join(" " + x for x in only + (["--quick"] if q else []))
    parts = [HEADER.format(date=benchlib.today(), machine=benchlib.machine(),
                           commit=commit(), args=shown,
                           load="%.2f" % os.getloadavg()[0])]
    parts.append("## Cost of one sample and invalid samples\n\n`bench/bench_sample_cost.py %s`\n\n%s\n"
                 % (" ".join(cost_args), bench_sample_cost.main(cost_args)))
    parts.append("## Slowdown of the target\n\n`bench/bench_slowdown.py %s`\n\n%s\n"
                 % (" ".join(slow_args), bench_slowdown.main(slow_args)))
    parts.append("## Accuracy of known shares\n\n`bench/bench_accuracy.py %s`\n\n%s\n"
                 % (" ".join(acc_args), bench_accuracy.main(acc_args)))
    if bench_austin.find_austin():
        austin_args = only + (["--duration", "1", "--repeats", "2", "--seconds", "0.5"]
                              if q else [])
        parts.append("## Beside Austin\n\n`bench/bench_austin.py %s`\n\n%s\n"
                     % (" ".join(austin_args), bench_austin.main(austin_args)))
    kept = ""
    try:
        with open(a.out, encoding="utf-8") as f:
            old = f.read()
        at = old.find("\n## Other measurements")
        if at >= 0:
            kept = old[at + 1:]
    except OSError:
        pass
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(parts) + ("\n" + kept if kept else ""))
    print("wrote %s" % a.out, file=sys.stderr)


if __name__ == "__main__":
    main()
