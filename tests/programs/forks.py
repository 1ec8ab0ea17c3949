"""Forks while being sampled: the parent keeps busy in parent_work() and forks
a short-lived child (busy in child_work(), then _exit) every 100 ms."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402

END = clock() + lifetime()


def spin(seconds):
    stop = clock() + seconds
    total = 0
    while clock() < stop:
        total += 1
    return total


def child_work():
    spin(0.05)
    os._exit(0)


def parent_work():
    while clock() < END:
        pid = os.fork()
        if pid == 0:
            child_work()
        spin(0.1)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    ready()
    parent_work()
