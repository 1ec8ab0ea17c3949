#!/usr/bin/env python3
"""Agent memory under process churn: `homura agent --all` runs while short
Python processes (each ~1-3 s of busy work, a few at a time) come and go for
DURATION seconds; the agent's RSS is read from /proc every INTERVAL seconds.
Flat memory means the last readings are no higher than the early ones.

    bench/bench_agent_churn.py [--duration 600] [--interval 30]

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
WORK = "import time,sys\nt=time.time()\nwhile time.time()-t<float(sys.argv[1]):\n  sum(range(1000))\n"


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
                procs.append(subprocess.Popen([PY, "-c", WORK, str(random.uniform(1, 3))],
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
