"""GIL: the main thread runs pure Python in with_gil() (holds the GIL), a
second thread spends its time in zlib.compress() inside without_gil(), which
releases the GIL while it compresses.  Both are on CPU; with -g only the GIL
holder is sampled, so without_gil() should mostly vanish."""
import os
import sys
import threading
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402

END = clock() + lifetime()
DATA = os.urandom(1 << 16) * 64   # 4 MiB, compresses slowly enough


def without_gil():
    while clock() < END:
        zlib.compress(DATA, 6)


def with_gil():
    total = 0
    while clock() < END:
        for i in range(10000):
            total += i
    return total


if __name__ == "__main__":
    t = threading.Thread(target=without_gil, daemon=True)
    t.start()
    ready()
    with_gil()
