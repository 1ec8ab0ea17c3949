"""Execs while being sampled: busy in before_exec() for argv[1] seconds, then
replaces itself (same pid) with busy.py running for argv[2] seconds."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, ready  # noqa: E402


def before_exec(seconds):
    stop = clock() + seconds
    total = 0
    while clock() < stop:
        total += 1
    return total


if __name__ == "__main__":
    first = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
    then = sys.argv[2] if len(sys.argv) > 2 else "0.5"
    ready()
    before_exec(first)
    busy = os.path.join(os.path.dirname(os.path.abspath(__file__)), "busy.py")
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, busy, then])
