"""Idle threads: the main thread is busy in busy_main() while a second thread
sleeps in sleepy_wait() the whole time.  `-i` must show sleepy_wait, the
default (on-CPU only) must not."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402

END = clock() + lifetime()


def sleepy_wait(sleeping):
    sleeping.set()
    while clock() < END:
        time.sleep(max(0.0, min(60.0, END - clock())))


def busy_main():
    total = 0
    while clock() < END:
        for i in range(10000):
            total += i
    return total


if __name__ == "__main__":
    sleeping = threading.Event()
    t = threading.Thread(target=sleepy_wait, args=(sleeping,), daemon=True)
    t.start()
    sleeping.wait()
    time.sleep(0.1)   # let it get into time.sleep() before the test starts
    ready()
    busy_main()
