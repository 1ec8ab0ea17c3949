"""A thread that blocks while holding the GIL: the main thread alternates
between pure Python in busy_part() and blocked_with_gil(), which sleeps in
libc's usleep() called through ctypes.PyDLL (a foreign call that keeps the
GIL).  The GIL holder is usually on CPU, and homura relies on that to skip
asking the kernel; this is the case where it is not, so the default
(on-CPU) profile must still leave out most of the sleep."""
import ctypes
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402

END = clock() + lifetime()
LIBC = ctypes.PyDLL(None)   # PyDLL: the call does not release the GIL


def blocked_with_gil():
    LIBC.usleep(200000)


def busy_part():
    total = 0
    stop = clock() + 0.2
    while clock() < stop:
        for i in range(1000):
            total += i
    return total


if __name__ == "__main__":
    ready()
    while clock() < END:
        busy_part()
        blocked_with_gil()
