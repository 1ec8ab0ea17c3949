#!/usr/bin/env python3
"""CPU used by `homura top` itself while it watches a busy process.

For each interpreter and workload, `homura top -r RATE -p PID` runs with its
full screen in a detached 80x24 tmux pane (so it samples, aggregates and
redraws once a second exactly as for a user); after a one-second warm-up,
homura's utime+stime from /proc/PID/stat is read twice DURATION seconds
apart. Without tmux, the text mode (--iterations) is measured instead.

    bench/bench_top.py [--rate 100] [--duration 10] [--only 3.12,3.11-static]

Prints a Markdown table: CPU % of one core, and CPU time per sample."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

WORKLOADS = [
    ("busy.py, 1 thread", "busy.py", []),
    ("recursion.py, 20 frames", "recursion.py", [18]),
    ("threads.py, 3 threads", "threads.py", []),
]


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])   # utime + stime


def start_top(args, tmp):
    """Start homura top; returns (pid, stop function, mode)."""
    pidfile = os.path.join(tmp, "pid")
    if shutil.which("tmux"):
        sock = "homura-bench-top-%d" % os.getpid()
        cmd = "echo $$ > %s; exec %s top %s" % (pidfile, benchlib.HOMURA, " ".join(args))
        subprocess.run(["tmux", "-L", sock, "-f", "/dev/null", "new-session", "-d", "-x", "80",
                        "-y", "24", "sh", "-c", cmd], check=True,
                       env=dict(os.environ, LANG="C.UTF-8"))
        for _ in range(100):
            if os.path.exists(pidfile) and open(pidfile).read().strip():
                break
            time.sleep(0.02)
        pid = int(open(pidfile).read())

        def stop():
            subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True)
        return pid, stop, "screen (tmux 80x24)"
    p = subprocess.Popen([benchlib.HOMURA, "top", "--iterations", "1000000"] + args,
                         stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def stop_text():
        p.kill()
        p.wait()
    return p.pid, stop_text, "text (--iterations)"


def measure(py, prog, extra, rate, duration):
    hz = os.sysconf("SC_CLK_TCK")
    with tempfile.TemporaryDirectory() as tmp, \
            benchlib.Workload([py, benchlib.program(prog), duration + 30] + extra) as w:
        pid, stop, mode = start_top(["-r", str(rate), "-p", str(w.pid)], tmp)
        try:
            time.sleep(1.0)
            c0, t0 = cpu_ticks(pid), time.monotonic()
            time.sleep(duration)
            c1, t1 = cpu_ticks(pid), time.monotonic()
        finally:
            stop()
        cpu_s = (c1 - c0) / hz
        wall = t1 - t0
        return {"cpu_pct": 100.0 * cpu_s / wall, "us_per_tick": 1e6 * cpu_s / (wall * rate),
                "mode": mode}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--only", default="3.12", help="interpreter ids, comma-separated")
    a = ap.parse_args(argv)
    out = ["| Python | workload | homura CPU (% of a core) | CPU per sampling round (µs) |",
           "|---|---|---:|---:|"]
    mode = "?"
    for ident, exe in benchlib.interpreters(a.only.split(",") if a.only else None):
        for label, prog, extra in WORKLOADS:
            try:
                r = measure(exe, prog, extra, a.rate, a.duration)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                out.append("| %s | %s | failed: %s | |" % (ident, label, e))
                continue
            mode = r["mode"]
            out.append("| %s | %s | %.2f | %.1f |" % (ident, label, r["cpu_pct"],
                                                       r["us_per_tick"]))
    out.append("")
    out.append("`homura top` at %d Hz, %s, measured over %g s from /proc/PID/stat "
               "(utime+stime, %d ticks/s); %s; %s." % (
                   a.rate, mode, a.duration, os.sysconf("SC_CLK_TCK"), benchlib.machine(),
                   benchlib.today()))
    return "\n".join(out)


if __name__ == "__main__":
    print(main())
