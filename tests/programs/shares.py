"""Known-answer workload: spends 60% / 30% / 10% of its CPU time in
spend_sixty(), spend_thirty() and spend_ten().

Each function busy-waits on the clock for its slice of a cycle (60/30/10 %),
so the split is set by time, not by how fast the interpreter is.  The cycle
length varies at random between 3.5 and 10.5 ms: a fixed cycle can line up
with a sampler whose wake-ups the kernel rounds to its timer tick on a busy
machine, which skews the shares (a 7 ms cycle against a 4 ms tick: 70/22/8)."""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402

CYCLE = 0.007
rnd = random.Random(1).random    # a C method: adds no Python frame


def spend_sixty(cycle):
    end = clock() + cycle * 0.6
    while clock() < end:
        pass


def spend_thirty(cycle):
    end = clock() + cycle * 0.3
    while clock() < end:
        pass


def spend_ten(cycle):
    end = clock() + cycle * 0.1
    while clock() < end:
        pass


def main():
    end = clock() + lifetime()
    ready()
    while clock() < end:
        cycle = CYCLE * (0.5 + rnd())
        spend_sixty(cycle)
        spend_thirty(cycle)
        spend_ten(cycle)


if __name__ == "__main__":
    main()
