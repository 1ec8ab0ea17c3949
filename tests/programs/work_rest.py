"""One thread that works and rests in turns, about 3 ms each: its rests are
a sleep, an Event wait and a select, in rotation. An on-CPU profile must put
its samples in work(), where its CPU time goes, and almost none in the
rests, where it is blocked. Prints `ready PID worker=tid`."""
import os
import select
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402

END = clock() + lifetime()
TID = []
EVENT = threading.Event()


def work(seconds):
    stop = clock() + seconds
    total = 0
    while clock() < stop:
        total += 1
    return total


def rest_sleep(seconds):
    time.sleep(seconds)


def rest_wait(seconds):
    EVENT.wait(seconds)


def rest_select(seconds):
    select.select([], [], [], seconds)


def worker():
    TID.append(threading.get_native_id())
    rests = [rest_sleep, rest_wait, rest_select]
    i = 0
    while clock() < END:
        work(0.003)
        rests[i % 3](0.003)
        i += 1


def main():
    t = threading.Thread(target=worker, name="worker")
    t.start()
    while not TID:
        time.sleep(0.01)
    ready("worker=%d" % TID[0])
    t.join()


if __name__ == "__main__":
    main()
