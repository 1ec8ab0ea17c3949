"""run_split.py - lines that each do one kind of work, for `homura run`'s
CPU split (tests/integration/test_run.py): a pure-Python loop, zlib
compression (native code in libz) and reads from /dev/zero (the kernel).
Writes each line's user and system CPU time, measured by the thread itself
(getrusage RUSAGE_THREAD), and the process's total, as JSON to argv[1].
Each line runs in a new thread of its own: the kernel splits a thread's
time between user and system by scaling its tick counts to its whole
run time, so in a long-lived thread time moves between user and system
from one interval to the next; a fresh thread per line keeps the truth
of each line's split to its own ticks."""
import json
import os
import resource
import sys
import threading
import zlib

SCALE = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
blob = os.urandom(1 << 16) * 8
fd = os.open("/dev/zero", os.O_RDONLY)
truth = {}


def usage():
    r = resource.getrusage(resource.RUSAGE_THREAD)
    return r.ru_utime, r.ru_stime


def measure(name, fn):
    def run():
        u0, s0 = usage()
        fn()
        u1, s1 = usage()
        truth[name] = [u1 - u0, s1 - s0]
    t = threading.Thread(target=run)
    t.start()
    t.join()


def python_loop():
    total = sum(i * i % 7 for i in range(int(4_000_000 * SCALE)))  # LINE python
    return total


def compress():
    out = [len(zlib.compress(blob, 6)) for _ in range(int(40 * SCALE))]  # LINE native
    return out


def read_zero():
    n = [len(os.read(fd, 1 << 22)) for _ in range(int(3000 * SCALE))]  # LINE system
    return n


measure("python", python_loop)
measure("native", compress)
measure("system", read_zero)
r = resource.getrusage(resource.RUSAGE_SELF)
truth["process"] = [r.ru_utime, r.ru_stime]
with open(sys.argv[1], "w") as f:
    json.dump(truth, f)
