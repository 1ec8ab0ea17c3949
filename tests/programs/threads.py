"""Three threads, each busy in its own function (in_alpha, in_beta, in_gamma),
while the main thread waits in join().  Prints `ready PID name=tid ...` with
every worker's OS thread id so the test can match -t's per-thread roots."""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402

END = clock() + lifetime()
TIDS = {}
STARTED = threading.Barrier(4)


def spin(n):
    total = 0
    for i in range(n):
        total += i
    return total


def in_alpha():
    TIDS["alpha"] = threading.get_native_id()
    STARTED.wait()
    while clock() < END:
        spin(5000)


def in_beta():
    TIDS["beta"] = threading.get_native_id()
    STARTED.wait()
    while clock() < END:
        spin(5000)


def in_gamma():
    TIDS["gamma"] = threading.get_native_id()
    STARTED.wait()
    while clock() < END:
        spin(5000)


def main():
    threads = [threading.Thread(target=f, name=f.__name__)
               for f in (in_alpha, in_beta, in_gamma)]
    for t in threads:
        t.start()
    STARTED.wait()
    ready(*["%s=%d" % kv for kv in sorted(TIDS.items())])
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
