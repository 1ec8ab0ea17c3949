"""Known-answer workload: spends 60% / 30% / 10% of its CPU time in
spend_sixty(), spend_thirty() and spend_ten().

Each function spins until it has used its slice of a cycle (60/30/10 %) of
the thread's CPU time, so the split is set by time, not by how fast the
interpreter is, and holds on a loaded machine too (with wall-clock slices a
function preempted midway would lose CPU time to the others).  The cycle
length varies at random between 3.5 and 10.5 ms: a fixed cycle can line up
with a sampler whose wake-ups the kernel rounds to its timer tick on a busy
machine, which skews the shares (a 7 ms cycle against a 4 ms tick: 70/22/8)."""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402

CYCLE = 0.007
rnd = random.Random(1).random    # C functions: add no Python frames
cpu = time.thread_time


def spend_sixty(cycle):
    end = cpu() + cycle * 0.6
    while cpu() < end:
        pass


def spend_thirty(cycle):
    end = cpu() + cycle * 0.3
    while cpu() < end:
        pass


def spend_ten(cycle):
    end = cpu() + cycle * 0.1
    while cpu() < end:
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
