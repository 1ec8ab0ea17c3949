"""One busy thread and three bursty ones: each bursty thread wakes 200 times a
second from Condition.wait(0.005), runs a few microseconds and waits again,
so it is often runnable (waiting for the GIL or a CPU) while using ~1% of a
CPU.  The on-CPU profile must give each thread the share of the samples that
the kernel's CPU time accounting gives it.  Prints `ready PID name=tid ...`
with every worker's OS thread id (threads named busy, bursty0..2)."""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402

END = clock() + lifetime()
TIDS = {}
STARTED = threading.Barrier(5)


def in_busy():
    TIDS[threading.current_thread().name] = threading.get_native_id()
    STARTED.wait()
    total = 0
    while clock() < END:
        for i in range(5000):
            total += i


def in_bursty():
    TIDS[threading.current_thread().name] = threading.get_native_id()
    STARTED.wait()
    cond = threading.Condition()
    with cond:
        while clock() < END:
            cond.wait(0.005)


def main():
    threads = [threading.Thread(target=in_busy, name="busy")]
    threads += [threading.Thread(target=in_bursty, name="bursty%d" % i) for i in range(3)]
    for t in threads:
        t.start()
    STARTED.wait()
    ready(*["%s=%d" % kv for kv in sorted(TIDS.items())])
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
