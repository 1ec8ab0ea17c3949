#!/usr/bin/env python3
"""The agent on a busy host: N busy Python processes sampled at RATE Hz,
by `homura agent --ebpf` (one BPF program for all of them) and by the
user-space agent, one after the other on the same processes.

Reported per agent: its own CPU time (utime + stime from /proc/PID/stat,
read before it is stopped) plus, for --ebpf, the BPF program's run time on
every CPU (`bpftool prog show`, while the agent keeps the kernel's BPF
statistics on), as a share of one core over the window; and the samples it
took (its --stats-json, over its whole run: the per-sample column is an
upper bound).

    bench/bench_ebpf_agent.py [--procs 20] [--rate 100] [--seconds 20]"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def bpf_run_ns():
    r = subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True, text=True)
    if r.returncode:
        return None
    for p in json.loads(r.stdout or "[]"):
        if p.get("name") == "hm_pystack":
            return p.get("run_time_ns", 0), p.get("run_cnt", 0)
    return 0, 0


def run_agent(token, rate, seconds, ebpf, tmp, nprocs):
    stats = os.path.join(tmp, "stats-%d.json" % ebpf)
    out = os.path.join(tmp, "dir-%d" % ebpf)
    argv = [benchlib.HOMURA, "agent", "--name", r"busy\.py [0-9.]+ %s$" % token, "-r", str(rate),
            "--interval", "5", "--scan-interval", "1", "--dir", out, "--stats-json", stats]
    if ebpf:
        argv.insert(2, "--ebpf")
    errf = open(os.path.join(tmp, "err-%d.txt" % ebpf), "w+")
    a = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errf)
    # the window starts once every process is attached (reading its
    # interpreter's symbols is the agent's one big cost per process) and the
    # program loaded
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with open(errf.name) as f:
            if f.read().count("profiling process") >= nprocs:
                break
        time.sleep(0.2)
    time.sleep(1)
    c0, b0 = cpu_s(a.pid), bpf_run_ns() if ebpf else (0, 0)
    t0 = time.monotonic()
    time.sleep(seconds)
    c1, b1 = cpu_s(a.pid), bpf_run_ns() if ebpf else (0, 0)
    t1 = time.monotonic()
    a.terminate()
    a.wait(timeout=60)
    errf.seek(0)
    err = errf.read().encode()
    errf.close()
    with open(stats) as f:
        st = json.load(f)
    bpf = (b1[0] - b0[0]) / 1e9 if ebpf and b0 is not None and b1 is not None else 0.0
    if ebpf and "sampling in the kernel" not in err.decode(errors="replace"):
        raise RuntimeError("agent --ebpf fell back: " + err.decode(errors="replace")[-300:])
    return {"agent_pct": 100 * (c1 - c0) / (t1 - t0), "bpf_pct": 100 * bpf / (t1 - t0),
            "samples": st.get("samples"), "window": t1 - t0}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--procs", type=int, default=20)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20)
    a = ap.parse_args(argv)
    token = "ebpf-agent-bench-%d" % os.getpid()
    py = [p for _, p in benchlib.interpreters(["3.12"])] or [sys.executable]
    life = 4 * (a.seconds + 10)
    workers = [subprocess.Popen([py[0], benchlib.program("busy.py"), str(life), token],
                                stdout=subprocess.DEVNULL) for _ in range(a.procs)]
    try:
        time.sleep(1)
        with tempfile.TemporaryDirectory() as tmp:
            rows = [(ebpf, run_agent(token, a.rate, a.seconds, ebpf, tmp, a.procs))
                    for ebpf in (True, False)]
    finally:
        for w in workers:
            w.kill()
            w.wait()
    print("%s; %s; %d busy Python %s processes, %d Hz, a %g s window from 1 s after the last "
          "process was attached"
          % (benchlib.today(), benchlib.machine(), a.procs, os.path.basename(os.path.dirname(os.path.dirname(py[0]))) or py[0],
             a.rate, a.seconds))
    print()
    print("| agent | agent CPU | BPF program | total, % of one core | samples | CPU per sample |")
    print("|---|---|---|---|---|---|")
    for ebpf, r in rows:
        total = r["agent_pct"] + r["bpf_pct"]
        per = total / 100 * r["window"] / r["samples"] * 1e6 if r["samples"] else float("nan")
        print("| %s | %.2f%% | %.2f%% | %.2f%% | %s | %.1f us |" % (
            "--ebpf" if ebpf else "user space", r["agent_pct"], r["bpf_pct"], total, r["samples"], per))
    return 0


if __name__ == "__main__":
    sys.exit(main())
