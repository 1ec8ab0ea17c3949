"""Short-lived threads, one after another: each spins in in_short_thread()
for about 30 ms and exits; the main thread waits 15 ms in sleep() and starts
the next.  A sampler that learns about new threads late (or only now and
then) misses most of their time.  Prints `ready PID`."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402


def in_short_thread():
    end = clock() + 0.03
    total = 0
    while clock() < end:
        for i in range(200):
            total += i
    return total


def main():
    end = clock() + lifetime()
    ready()
    while clock() < end:
        t = threading.Thread(target=in_short_thread)
        t.start()
        t.join()
        time.sleep(0.015)


if __name__ == "__main__":
    main()
