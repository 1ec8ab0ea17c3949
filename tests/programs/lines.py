"""Exact names and lines: Worker.run() spends nearly all its time on the line
marked HOT-LINE (the test finds that line by its marker).  On 3.11+ the
frame's name is the qualified name "Worker.run", before 3.11 it is "run"."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402


class Worker(object):
    def run(self, n):
        total = 0
        for i in range(n): total += i * i  # HOT-LINE  # noqa: E701
        return total


def main():
    end = clock() + lifetime()
    w = Worker()
    ready()
    while clock() < end:
        w.run(50000)


if __name__ == "__main__":
    main()
