#!/usr/bin/env python3
"""Agent memory under process churn: `homura agent --all` runs while short
Python processes (each ~1-3 s of busy work, a few at a time) come and go for
DURATION seconds; the agent's RSS is read from /proc every INTERVAL seconds.
Flat memory means the last readings are no higher than the early ones.

    bench/bench_agent_churn.py [--duration 600] [--interval 30] [--parallel 3] [--duty 1]

Prints a Markdown table (time, processes started so far, agent RSS, agent
CPU %)."""
import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOMURA = os.environ.get("HOMURA_BIN", os.path.join(REPO, "build", "homura"))
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
# Each worker names its hot function after a random number, so the agent keeps
# meeting new strings and stacks (interning must not grow without bound), and
# spends DUTY of its life busy, the rest asleep.
WORK = """import time,sys
life, duty, tag = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
src = "def work_%s(n):\\n    return sum(range(n))\\n" % tag
ns = {}
exec(compile(src, "job_%s.py" % tag, "exec"), ns)
fn = ns["work_" + tag]
t = time.time()
while time.time() - t < life:
    b = time.time()
    while time.time() - b < 0.05 * duty:
        fn(1000)
    time.sleep(0.05 * (1 - duty))
"""


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--interval", type=float, default=30)
    ap.add_argument("--parallel", type=int, default=3)
    ap.add_argument("--duty", type=float, default=1.0,
                    help="share of each worker's life spent on CPU (default 1)")
    a = ap.parse_args()
    out = tempfile.mkdtemp(prefix="homura-churn-")
    agent = subprocess.Popen([HOMURA, "agent", "--all", "--interval", "5", "--dir", out,
                              "--dir-max-size", "20000000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    hz = os.sysconf("SC_CLK_TCK")
    procs, started = [], 0
    t0 = time.time()
    next_report = t0
    last_cpu, last_t = cpu_ticks(agent.pid), t0
    rows = []
    try:
        while time.time() - t0 < a.duration:
            procs = [p for p in procs if p.poll() is None]
            while len(procs) < a.parallel:
                procs.append(subprocess.Popen([PY, "-c", WORK, str(random.uniform(1, 3)), str(a.duty),
                                               str(random.randrange(100000))],
                                              stdout=subprocess.DEVNULL))
                started += 1
            now = time.time()
            if now >= next_report:
                c = cpu_ticks(agent.pid)
                cpu = 100.0 * (c - last_cpu) / hz / max(now - last_t, 1e-9)
                last_cpu, last_t = c, now
                rows.append((now - t0, started, rss_kib(agent.pid), cpu))
                print("t=%5.0fs started=%4d rss=%6d KiB cpu=%.2f%%" % rows[-1], flush=True)
                next_report = now + a.interval
            time.sleep(0.2)
    finally:
        for p in procs:
            p.kill()
        os.killpg(agent.pid, signal.SIGTERM)
        agent.wait(timeout=30)
    print("\n| time (s) | processes started | agent RSS (KiB) | agent CPU (% of a core) |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print("| %.0f | %d | %d | %.2f |" % r)


if __name__ == "__main__":
    main()
