"""Deep stacks: recurse() calls itself DEPTH (argv[2], default 1000) times,
then leaf_work() burns CPU at the bottom until the lifetime ends."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402

END = clock() + lifetime()
DEPTH = int(sys.argv[2]) if len(sys.argv) > 2 else 1000


def leaf_work():
    ready(DEPTH)
    total = 0
    while clock() < END:
        for i in range(10000):
            total += i
    return total


def recurse(n):
    if n <= 1:
        return leaf_work()
    return recurse(n - 1)


if __name__ == "__main__":
    sys.setrecursionlimit(DEPTH + 500)
    recurse(DEPTH)
