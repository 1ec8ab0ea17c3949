"""Shared helpers for homura's benchmarks: finding interpreters and the
homura binary, running workloads, small statistics, machine description."""
import glob
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = REPO / "tests" / "programs"
HOMURA = str(Path(os.environ.get("HOMURA_BIN", REPO / "build" / "homura")).resolve())


def interpreters(only=None):
    """[(id, path)] for pyenv 3.8+ and Debian's static 3.11, oldest first;
    `only` is a list of ids ("3.9", "3.11-static") to keep."""
    found = []
    for exe in glob.glob("/root/.pyenv/versions/*/bin/python"):
        m = re.match(r"^(\d+)\.(\d+)\.\d+$", exe.split("/")[-3])
        if m and (int(m.group(1)), int(m.group(2))) >= (3, 8):
            found.append(((int(m.group(1)), int(m.group(2))), "%s.%s" % m.groups(), exe))
    found.sort()
    out = [(ident, exe) for _, ident, exe in found]
    if os.path.exists("/usr/bin/python3.11"):
        out.append(("3.11-static", "/usr/bin/python3.11"))
    if only:
        out = [i for i in out if i[0] in only]
    return out


def per_interpreter(only, measure):
    """[(id, measure(path) or "error: ...")] for each interpreter kept by
    `only` (a comma-separated string or None); a failure is reported in its
    row and the other versions go on."""
    rows = []
    for ident, py in interpreters(only and only.split(",")):
        try:
            rows.append((ident, measure(py)))
        except Exception as e:
            rows.append((ident, "error: %s" % (str(e).strip().splitlines() or [repr(e)])[-1]))
        print("  %s done" % ident, file=sys.stderr)
    return rows


def program(name):
    return str(PROGRAMS / name)


class Workload:
    """A workload process that prints `ready PID ...` once running."""

    def __init__(self, argv):
        self.proc = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        line = self.proc.stdout.readline().decode()
        if not line.startswith("ready"):
            raise RuntimeError("workload %s did not start: %r" % (argv, line))
        self.pid = self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def pinned(argv, cpu):
    """argv run on CPU `cpu` only (taskset execs, so the pid stays), or as is
    when cpu is None."""
    return argv if cpu is None else ["taskset", "-c", str(cpu)] + list(argv)


def homura_record(args, timeout=120, exe=None, cpu=None, env=None):
    """Run `homura record ARGS` (exe: another homura binary, default HOMURA;
    cpu: pinned to that CPU; env: added to the environment)."""
    p = subprocess.run(pinned([exe or HOMURA, "record"], cpu) + [str(a) for a in args], capture_output=True,
                       timeout=timeout, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, **env) if env else None)
    if p.returncode != 0:
        raise RuntimeError("homura record %s: %s" % (" ".join(map(str, args)),
                                                      p.stderr.decode(errors="replace")))
    return p


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def machine():
    """One line describing this machine, for the results file."""
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(open("/proc/meminfo").readline().split()[1])
        mem = ", %.0f GiB RAM" % (kb / 2**20)
    except (OSError, ValueError, IndexError):
        pass
    return "%s, %d CPUs%s, Linux %s" % (cpu, os.cpu_count(), mem, platform.release())


def today():
    return time.strftime("%Y-%m-%d")
