"""Helpers shared by the workload programs that the integration tests and
benchmarks profile.  Kept compatible with Python 2.7 so old interpreters can
import it too."""
import os
import sys
import time

# A C function, so calling it adds no Python frame to the profiled stacks.
clock = getattr(time, "perf_counter", time.time)


def lifetime(default=30.0):
    """Seconds the program should run: argv[1], else `default`.  Every workload
    ends by itself so a failed test never leaves it behind."""
    if len(sys.argv) > 1:
        return float(sys.argv[1])
    return default


def ready(*extra):
    """Tell the test harness the workload is running (its pid, extra facts)."""
    parts = ["ready", str(os.getpid())] + [str(e) for e in extra]
    sys.stdout.write(" ".join(parts) + "\n")
    sys.stdout.flush()


def spin(seconds):
    """Burn CPU in Python for about `seconds`."""
    end = clock() + seconds
    s = 0
    while clock() < end:
        for i in range(200):
            s += i * i
    return s
