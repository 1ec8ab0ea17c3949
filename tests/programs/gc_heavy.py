"""Keeps the garbage collector busy: builds many reference cycles and calls
gc.collect() in a loop, so a good share of samples land inside a collection.
Prints `ready PID`; ends after argv[1] seconds."""
import gc
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402


class Node(object):
    def __init__(self):
        self.other = self


def churn(end):
    keep = [Node() for _ in range(200000)]   # a big heap for gc to traverse
    while clock() < end:
        for _ in range(1000):
            Node()
        gc.collect()
    return len(keep)


def main():
    end = clock() + lifetime()
    ready()
    churn(end)


if __name__ == "__main__":
    main()
