#!/usr/bin/env python3
"""Added cost per sample of reading OpenTelemetry spans (issue 14).

For each interpreter the SDK runs on (3.10+ and Debian's static 3.11), a
busy thread inside SDK spans (tests/programs/otel_busy.py) is recorded with
span reading on and off (--no-trace), alternating, ROUNDS times each, at
RATE Hz with --idle (every round walks the thread and reads its span) for
DURATION seconds; homura's --stats-json gives each recording's median
sample cost. The table gives the median of the per-round medians with spans
on and off and the median of the paired differences (on minus off, same
round), for `steady` spans (each open ~0.2 s: the answer is re-checked in
one system call) and `churn` (a new span every ~1 ms: the chain is often
read again), plus the share of samples that carried a span (a sample: one round of
the sampler, which walks each running thread: "stacks per sample" gives how
many stacks a round gave); and `app`: the issue's own
test application, the seed's FastAPI service (tests/programs/otel_app.py,
Debian's python3.11 with python3-fastapi/uvicorn), under requests from 3
client threads (its async route on the event loop and its sync route in
worker threads, each request making a server span with two child spans of
about 15 and 5 ms of work), recorded without --idle. For every mode the
table also gives what the user pays: homura's own CPU time (its rusage,
user + system) per sample, with spans on and off, and the paired
difference, from --stats-json's cpu_us.sampling: its CPU while it sampled,
without its start-up (with --ebpf mostly the kernel's verifier of the BPF
program, 50-120 ms, as much as 3 s of sampling; a build whose stats lack it
is measured by its whole rusage).

With --ebpf the recordings are `record --ebpf` (the BPF program reads the
span itself at sample time) and the cost is the kernel's count of
the program's run time per run in the target (bpf_enable_stats: run time
over the runs that found the target, less the runs for other tasks at the
cost measured first with a sleeping target).

    bench/bench_spans.py [--rate 1000] [--duration 3] [--rounds 5] [--only 3.11,3.12] [--ebpf]
                         [--modes steady,churn,app]"""
import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

SITE = os.environ.get("HOMURA_OTEL_SITE", "")
for cand in [SITE, str(benchlib.REPO / "shared/third_party/otel-python/site"),
             str(benchlib.REPO.parent / "shared/third_party/otel-python/site"),
             "/work/shared/third_party/otel-python/site"]:
    if cand and os.path.isdir(os.path.join(cand, "opentelemetry")):
        SITE = cand
        break


EBPF = False
IDLE_NS = 0.0       # --ebpf: a run of the program for a task of another process


def idle_run_ns(rate, tmp):
    argv = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(600)"]
    with benchlib.Workload(argv) as w:
        stats = os.path.join(tmp, "idle.json")
        benchlib.homura_record(["--ebpf", "-p", w.pid, "-r", rate, "-d", 2, "-f", "collapsed",
                                "-o", os.path.join(tmp, "idle.txt"), "--stats-json", stats])
        with open(stats) as f:
            b = json.load(f)["bpf"]
    return b["run_ns"] / b["runs"] if b["runs"] else 0.0


AGAINST = []       # --against EXE[,EXE...]: other homuras, measured in the same rounds


def one(pid, rate, duration, tmp, trace, exe=None):
    stats, out = os.path.join(tmp, "s.json"), os.path.join(tmp, "p.txt")
    args = ["-p", pid, "-r", rate, "-d", duration, "--group-by", "span", "-f", "collapsed",
            "-o", out, "--stats-json", stats] + ([] if trace else ["--no-trace"])
    args = (["--ebpf"] if EBPF else [] if APP else ["-i"]) + args
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = benchlib.homura_record(args, exe=exe)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if EBPF and b"sampled in the kernel" not in p.stderr:
        raise RuntimeError("--ebpf fell back: " + p.stderr.decode(errors="replace").strip())
    with open(stats) as f:
        st = json.load(f)
    if EBPF:
        b = st["bpf"]
        in_target = b["run_ns"] - IDLE_NS * (b["runs"] - b["matched"])
        p50 = in_target / 1000.0 / b["matched"] if b["matched"] else float("nan")
    else:
        p50 = st["sample_us"]["p50"]
    inside = total = 0
    with open(out) as f:
        for line in f:
            stack, _, n = line.rpartition(" ")
            total += int(n)
            if not stack.startswith("span: <none>"):
                inside += int(n)
    if "cpu_us" in st:
        cpu_s = st["cpu_us"]["sampling"] / 1e6
    per = cpu_s * 1e6 / st["samples"] if st["samples"] else float("nan")
    return p50, inside / total if total else 0.0, per, total / st["samples"] if st["samples"] else 0.0


APP = False


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Clients:
    """CLIENTS threads requesting the app's async and sync routes in turn
    until stopped."""

    def __init__(self, port, clients=3):
        self.port, self.stop, self.n = port, threading.Event(), 0
        self.ts = [threading.Thread(target=self.run, args=(k,)) for k in range(clients)]
        for t in self.ts:
            t.start()

    def run(self, k):
        paths = ["/api/users/%d", "/api/sync/%d"]
        i = 0
        while not self.stop.is_set():
            url = "http://127.0.0.1:%d%s" % (self.port, paths[(i + k) % 2] % (i + 1))
            with urllib.request.urlopen(url, timeout=30) as r:
                r.read()
            i += 1
            self.n += 1

    def close(self):
        self.stop.set()
        for t in self.ts:
            t.join()


def workload(py, mode, rounds, duration):
    if mode != "app":
        return benchlib.Workload([py, benchlib.program("otel_busy.py"), SITE,
                                  rounds * 2 * (duration + 2) + 20, mode])
    port = free_port()
    w = benchlib.Workload([py, benchlib.program("otel_app.py"), os.path.dirname(SITE), port])
    deadline = time.monotonic() + 30
    while True:      # "ready" comes just before uvicorn listens
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/api/users/1" % port, timeout=5) as r:
                r.read()
            break
        except OSError:
            if time.monotonic() > deadline:
                w.stop()
                raise
            time.sleep(0.1)
    w.port = port
    return w


def measure(py, mode, rate, duration, rounds):
    global APP
    APP = mode == "app"
    exes = [None] + AGAINST
    res = {e: ([], [], [], [], [], [], [], []) for e in exes}
    with tempfile.TemporaryDirectory() as tmp, workload(py, mode, rounds * len(exes), duration) as w:
        clients = Clients(w.port) if APP else None
        try:
            for k in range(rounds):
                first = k % 2 == 0
                for e in (exes if first else exes[::-1]):
                    on, off, diff, share, con, coff, cdiff, stacks = res[e]
                    a = one(w.pid, rate, duration, tmp, first, e)
                    b = one(w.pid, rate, duration, tmp, not first, e)
                    t_on, t_off = (a, b) if first else (b, a)
                    on.append(t_on[0])
                    off.append(t_off[0])
                    diff.append(t_on[0] - t_off[0])
                    share.append(t_on[1])
                    con.append(t_on[2])
                    coff.append(t_off[2])
                    cdiff.append(t_on[2] - t_off[2])
                    stacks.append(t_on[3])
        finally:
            if clients:
                clients.close()
    m = benchlib.median
    rows = []
    for e in exes:
        on, off, diff, share, con, coff, cdiff, stacks = res[e]
        rows.append("%.1f | %.1f | %+.1f | %.1f | %.1f | %+.1f | %.0f%% | %.1f" % (
            m(on), m(off), m(diff), m(con), m(coff), m(cdiff), 100 * m(share), m(stacks)))
    for i in range(1, len(rows)):
        label = "(against)" if len(rows) == 2 else "(against: %s)" % exes[i]
        rows[i] = label + " | " + mode + " | " + rows[i]
    return " |\n| ".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only")
    ap.add_argument("--ebpf", action="store_true")
    ap.add_argument("--modes", default="steady,churn")
    ap.add_argument("--against", help="other homura binaries (comma-separated), measured in "
                    "the same rounds (their rows follow, marked \"(against)\")")
    a = ap.parse_args()
    global EBPF, IDLE_NS, AGAINST
    AGAINST = [e for e in (a.against or "").split(",") if e]
    EBPF = a.ebpf
    if EBPF:
        with tempfile.TemporaryDirectory() as tmp:
            IDLE_NS = idle_run_ns(a.rate, tmp)
    if not SITE:
        sys.exit("bench_spans: the OpenTelemetry SDK (shared/third_party/otel-python) is missing")
    low = (3, 10)
    only = a.only or ",".join(i for i, _ in benchlib.interpreters()
                              if i == "3.11-static" or tuple(map(int, i.split("."))) >= low)
    what = "BPF run per sample in the target" if a.ebpf else "sample p50"
    print("| Python | spans | %s, spans on (µs) | off (µs) | added, paired median (µs) "
          "| homura CPU per sample while sampling, on (µs) | off (µs) | added (µs) | samples in a span "
          "| stacks per sample |" % what)
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode in a.modes.split(","):
        # The app needs Debian's fastapi/uvicorn: its python3.11 only.
        which = "3.11-static" if mode == "app" else only
        for ident, row in benchlib.per_interpreter(
                which, lambda py: measure(py, mode, a.rate, a.duration, a.rounds)):
            print("| %s | %s | %s |" % (ident, mode, row))
    print()
    print("%d rounds per version, each one recording with span reading on and one off "
          "(--no-trace), alternating, %d Hz %s for %d s; %s" %
          (a.rounds, a.rate, "with --ebpf" if a.ebpf else
           "with --idle (app: without)", a.duration,
           benchlib.machine()))


if __name__ == "__main__":
    main()
