#!/usr/bin/env python3
"""record --ebpf on launched programs that end: how many samples are lost.

The kernel counts each stack and homura reads the counts up to a second
later, when a short program may have exited, torn its interpreter down or
dropped the code objects the frames ran. For each interpreter, each
program below is launched under `homura record --ebpf -r RATE` by each
build given (side by side: the builds take turns within each round), and
the summary's invalid samples are counted (a share of all samples taken):

- `busy.py`, `threads.py`, `recursion.py`, `gil.py`, `gc_heavy.py`,
  `thread_churn.py` run DURATION seconds and exit;
- `codechurn.py` compiles and drops a function every few milliseconds;
- `two_halves.py 1.2 0.6`: two functions of 1.2 s of CPU time each, then a
  teardown of 0.6 s (an object's __del__ after the functions were freed).
  Its column is the second half's samples over the first's (1.00 when
  nothing is lost).

    bench/bench_ebpf_invalid.py [--build NAME=PATH ...] [--rounds 2]
                                [--rate 500] [--duration 2] [--only 3.12,3.11-static]

Prints a Markdown table per build (docs/benchmarks.md holds one)."""
import argparse
import collections
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

ORDINARY = ["busy.py", "threads.py", "recursion.py", "gil.py", "gc_heavy.py", "thread_churn.py"]


def summary(stderr):
    m = re.search(r"(\d+) samples, (\d+) invalid", stderr)
    if not m:
        raise RuntimeError("no summary line: " + stderr[-300:])
    return int(m.group(1)), int(m.group(2))


def invalid_pct(exe, py, prog, args, rate):
    p = benchlib.homura_record(["--ebpf", "-r", rate, "-f", "collapsed", "-o", os.devnull, "--",
                                py, benchlib.program(prog)] + list(args), exe=exe)
    samples, invalid = summary(p.stderr.decode(errors="replace"))
    # The summary's samples are the valid ones.
    return 100.0 * invalid / max(1, samples + invalid)


def halves_ratio(exe, py, rate):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "h.txt")
        benchlib.homura_record(["--ebpf", "-r", rate, "-f", "collapsed", "-o", out, "--",
                                py, benchlib.program("two_halves.py"), "1.2", "0.6"], exe=exe)
        n = collections.Counter()
        with open(out, encoding="utf-8") as f:
            for line in f:
                stack, count = line.rsplit(" ", 1)
                for fn in ("first_half", "second_half"):
                    if re.search(r"(^|;)%s \(" % fn, stack):
                        n[fn] += int(count)
        return n["second_half"] / max(1, n["first_half"])


def span(xs, fmt):
    lo, hi = fmt % min(xs), fmt % max(xs)
    return lo if lo == hi else lo + "-" + hi


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", action="append", default=[],
                    help="NAME=PATH of a homura binary (default: this tree's build/homura)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--duration", type=float, default=2)
    ap.add_argument("--only", default="3.12,3.13,3.11-static")
    a = ap.parse_args()
    builds = [b.split("=", 1) for b in a.build] or [["this", benchlib.HOMURA]]
    res = collections.defaultdict(list)   # (build, py, column) -> values
    pys = benchlib.interpreters(a.only.split(",") if a.only else None)
    for r in range(a.rounds):
        for ident, py in pys:
            for name, exe in builds:
                for prog in ORDINARY:
                    res[(name, ident, "ordinary")].append(
                        invalid_pct(exe, py, prog, [a.duration], a.rate))
                res[(name, ident, "codechurn")].append(
                    invalid_pct(exe, py, "codechurn.py", [a.duration], a.rate))
                res[(name, ident, "halves")].append(halves_ratio(exe, py, a.rate))
            print("  round %d, %s done" % (r + 1, ident), file=sys.stderr)
    print("%s, %d rounds, -r %d, %g s programs (%s)\n" % (benchlib.today(), a.rounds, a.rate,
                                                          a.duration, benchlib.machine()))
    print("| Python | build | 6 ordinary programs: invalid | codechurn.py: invalid "
          "| two_halves.py 1.2 0.6: second half / first |")
    print("|---|---|---:|---:|---:|")
    for ident, _ in pys:
        for name, _ in builds:
            print("| %s | %s | %s%% | %s%% | %s |" % (
                ident, name, span(res[(name, ident, "ordinary")], "%.1f"),
                span(res[(name, ident, "codechurn")], "%.0f"),
                span(res[(name, ident, "halves")], "%.2f")))


if __name__ == "__main__":
    main()
