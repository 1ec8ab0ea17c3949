#!/usr/bin/env python3
"""Cost of one sample and invalid-sample rate, per Python version.

For each interpreter: a busy target whose stack is 20 frames deep
(tests/programs/recursion.py with 18 levels of recursion under <module> and
above leaf_work) is recorded for DURATION seconds at RATE Hz without pausing
it; homura's --stats-json gives the time one sample took (median, p99, max)
and how many samples were dropped as invalid or were late. ROUNDS rounds run
interleaved across the versions; the table gives the medians over them.

Where the sampler runs matters on this virtual machine: a CPU that idles
between two samples halts, and the next sample starts cold (its system call
and homura's own data), while one that stays busy keeps them warm. So the
target is pinned to CPU 0 and each recording is made twice: with homura on
another CPU (which idles between samples: the usual case, and the main
columns) and with homura on the target's CPU (which never idles: the
"warm" columns). On a one-CPU machine nothing is pinned and only the first
is measured.

Right after each recording, bench/readv_floor.c times one bare
process_vm_readv call of 4 KiB against the same target at the same rate:
the floor under any sample (3.11+ samples make one such call).  On this
virtual machine that call's latency moves several-fold with load, so the
table shows both, and what homura adds on top of the one call.

With --baseline BIN, another homura build (say the previous commit's)
records the same target for as long right beside each recording, the two
in alternating order, and the table adds its median: a change in sample
cost is then measured side by side rather than against a number taken at
another time.

    bench/bench_sample_cost.py [--rate 1000] [--duration 5] [--rounds 3] [--only 3.9,3.12]
                               [--baseline path/to/other/homura]

Prints a Markdown table (the same one docs/benchmarks.md holds)."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


FLOOR_BIN = os.path.join(str(benchlib.REPO), "build", "bench", "readv_floor")


def build_floor():
    """Path of the readv_floor helper (`make bench`), built if missing or
    stale; None if it cannot be built."""
    r = subprocess.run(["make", "-s", "-C", str(benchlib.REPO), "build/bench/readv_floor"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return FLOOR_BIN if r.returncode == 0 and os.path.exists(FLOOR_BIN) else None


def placements():
    """(target CPU, other CPU, same CPU): where the target, the sampler
    on another CPU and the sampler beside the target run (None: unpinned)."""
    if not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
        return None, None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None, None
    return cpus[0], cpus[1], cpus[0]


def readv_floor(pid, rate, duration, cpu=None):
    """(p50, p99) microseconds of one bare 4 KiB process_vm_readv, or None."""
    exe = build_floor()
    if not exe:
        return None
    r = subprocess.run(benchlib.pinned([exe, str(pid), str(rate), str(duration)], cpu), stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, universal_newlines=True, timeout=duration + 60)
    if r.returncode:
        return None
    p50, p99 = r.stdout.split()
    return float(p50), float(p99)


def record_stats(exe, pid, rate, duration, tmp, cpu=None):
    """--stats-json of one recording, plus the deepest stack seen."""
    stats = os.path.join(tmp, "stats.json")
    benchlib.homura_record(["-p", pid, "-r", rate, "-d", duration, "-f", "collapsed",
                            "-o", os.path.join(tmp, "p.txt"), "--stats-json", stats], exe=exe,
                           cpu=cpu)
    with open(os.path.join(tmp, "p.txt")) as f:
        depths = [len(l.rpartition(" ")[0].split(";")) for l in f if l.strip()]
    with open(stats) as f:
        s = json.load(f)
    s["depth"] = max(depths) if depths else 0
    return s


def measure(py, rate, duration, baseline=None, baseline_first=False):
    target_cpu, other, same = placements()
    argv = [py, benchlib.program("recursion.py"), 5 * duration + 30, 18]
    with tempfile.TemporaryDirectory() as tmp, \
            benchlib.Workload(benchlib.pinned(argv, target_cpu)) as w:
        base = None
        if baseline and baseline_first:
            base = record_stats(baseline, w.pid, rate, duration, tmp, other)
        s = record_stats(None, w.pid, rate, duration, tmp, other)
        if baseline and not baseline_first:
            base = record_stats(baseline, w.pid, rate, duration, tmp, other)
        s["base_p50"] = base["sample_us"]["p50"] if base else None
        s["floor"] = readv_floor(w.pid, rate, duration, other)
        s["warm_p50"] = s["warm_floor"] = None
        if same is not None:
            s["warm_p50"] = record_stats(None, w.pid, rate, duration, tmp, same)["sample_us"]["p50"]
            fl = readv_floor(w.pid, rate, duration, same)
            s["warm_floor"] = fl[0] if fl else None
        return s


def combine(rounds):
    """One row from several rounds: medians of the per-round p50, p99 and
    floor, the largest max, sums of the counts."""
    med = benchlib.median
    out = {k: sum(r[k] for r in rounds) for k in ("samples", "invalid", "late")}
    out["depth"] = max(r["depth"] for r in rounds)
    out["sample_us"] = {"p50": med([r["sample_us"]["p50"] for r in rounds]),
                        "p99": med([r["sample_us"]["p99"] for r in rounds]),
                        "max": max(r["sample_us"]["max"] for r in rounds)}
    floors = [r["floor"] for r in rounds if r.get("floor")]
    out["floor"] = (med([f[0] for f in floors]), med([f[1] for f in floors])) if floors else None
    out["p50s"] = [r["sample_us"]["p50"] for r in rounds]
    for k in ("warm_p50", "warm_floor"):
        xs = [r[k] for r in rounds if r.get(k) is not None]
        out[k] = med(xs) if xs else None
    bases = [r["base_p50"] for r in rounds if r.get("base_p50") is not None]
    out["base_p50"] = med(bases) if bases else None
    diffs = [r["sample_us"]["p50"] - r["base_p50"] for r in rounds if r.get("base_p50") is not None]
    out["paired"] = med(diffs) if diffs else None
    out["wins"] = (sum(1 for d in diffs if d < 0), len(diffs))
    return out


def measure_all(pys, rate, duration, rounds, baseline=None):
    """Rounds interleaved across the versions, so that a spell of machine
    load does not fall on one version only: {id: combined row or error}."""
    got = {ident: [] for ident, _ in pys}
    errors = {}
    for rnd in range(rounds):
        for ident, py in pys:
            if ident in errors:
                continue
            try:
                got[ident].append(measure(py, rate, duration, baseline, rnd % 2 == 1))
            except Exception as e:  # report and go on with the other versions
                errors[ident] = "error: %s" % (str(e).strip().splitlines() or [repr(e)])[-1]
    print("  sample cost measured", file=sys.stderr)
    return [(ident, errors.get(ident) or combine(got[ident])) for ident, _ in pys]


def table(rows, rate, duration, rounds=1, baseline=None):
    out = ["| Python | samples | sample p50 (µs) | p99 (µs) | max (µs) | invalid | late | depth "
           "| one bare readv p50 (µs) | sample p50 - readv p50 (µs) | p50 of each round (µs) "
           "| warm: sample p50 (µs) | warm: bare readv p50 (µs) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    if baseline:
        out[0] += " baseline p50 (µs) | change, paired (µs) | rounds faster |"
        out[1] += "---:|---:|---:|"
    for ident, s in rows:
        if isinstance(s, str):
            out.append("| %s | %s | | | | | | | | | | | |" % (ident, s) + (" | | |" if baseline else ""))
            continue
        n = s["samples"]
        inv = 100.0 * s["invalid"] / n if n else float("nan")
        us = s["sample_us"]
        fl = s.get("floor")
        out.append("| %s | %d | %.1f | %.1f | %.1f | %.2f%% | %d | %d | %s | %s | %s |" % (
            ident, n, us["p50"], us["p99"], us["max"], inv, s["late"], s["depth"],
            "%.1f" % fl[0] if fl else "n/a", "%+.1f" % (us["p50"] - fl[0]) if fl else "n/a",
            ", ".join("%.1f" % x for x in s.get("p50s", [us["p50"]]))))
        out[-1] += " %s | %s |" % tuple("%.1f" % s[k] if s.get(k) is not None else "n/a"
                                         for k in ("warm_p50", "warm_floor"))
        if baseline:
            b, d = s.get("base_p50"), s.get("paired")
            out[-1] += " %s | %s | %d of %d |" % ("%.1f" % b if b is not None else "n/a",
                                                  "%+.1f" % d if d is not None else "n/a",
                                                  s["wins"][0], s["wins"][1])
    out.append("")
    out.append("%d round(s), interleaved across versions, each %d Hz for %g s per version, "
               "target not paused, 20-frame stack, then one bare 4 KiB process_vm_readv per "
               "period for as long against the same target; p50, p99 and the floor are the "
               "medians over the rounds. The target runs on CPU 0 and homura on another CPU, "
               "which idles between samples; \"warm\": homura on the target's CPU, which "
               "never idles (then the target waits while a sample is taken)." % (rounds, rate, duration))
    if baseline:
        out[-1] += (" Baseline: %s, recording the same target for as long right before or "
                    "after (alternating); change: median over the rounds of this build's p50 "
                    "minus the baseline's on the same target." % baseline)
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", help="comma-separated interpreter ids")
    ap.add_argument("--baseline", help="another homura binary to measure side by side")
    a = ap.parse_args(argv)
    pys = benchlib.interpreters(a.only and a.only.split(","))
    rows = measure_all(pys, a.rate, a.duration, a.rounds, a.baseline)
    text = table(rows, a.rate, a.duration, a.rounds, a.baseline)
    print(text)
    return text


if __name__ == "__main__":
    main()
