"""A single thread burning CPU in busy_work() until its lifetime (argv[1])
ends.  Python 2.7 compatible: also used to probe the old interpreters."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402


def busy_work(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def main():
    end = clock() + lifetime()
    ready()
    while clock() < end:
        busy_work(20000)


if __name__ == "__main__":
    main()
