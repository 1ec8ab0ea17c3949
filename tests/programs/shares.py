"""Known-answer workload: spends 60% / 30% / 10% of its CPU time in
spend_sixty(), spend_thirty() and spend_ten().

Each function busy-waits on the clock for its slice of a 7 ms cycle (4.2, 2.1
and 0.7 ms), so the split is set by time, not by how fast the interpreter is.
An odd cycle length keeps it from lining up with round sampling rates."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402

CYCLE = 0.007


def spend_sixty():
    end = clock() + CYCLE * 0.6
    while clock() < end:
        pass


def spend_thirty():
    end = clock() + CYCLE * 0.3
    while clock() < end:
        pass


def spend_ten():
    end = clock() + CYCLE * 0.1
    while clock() < end:
        pass


def main():
    end = clock() + lifetime()
    ready()
    while clock() < end:
        spend_sixty()
        spend_thirty()
        spend_ten()


if __name__ == "__main__":
    main()
