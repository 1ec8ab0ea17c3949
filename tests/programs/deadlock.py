"""Two threads deadlocked on two locks (each holds one and waits for the
other), plus a main thread whose frame has known locals, for `homura dump`.
Prints `ready PID` once both threads are stuck.  Ends after argv[1] seconds
(the stuck threads are daemons)."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import lifetime, ready  # noqa: E402

LOCK_A = threading.Lock()
LOCK_B = threading.Lock()
BOTH_HELD = threading.Barrier(3)


def take_a_then_b():
    with LOCK_A:
        BOTH_HELD.wait()
        LOCK_B.acquire()   # DEADLOCK-A


def take_b_then_a():
    with LOCK_B:
        BOTH_HELD.wait()
        LOCK_A.acquire()   # DEADLOCK-B


def wait_here(seconds):
    answer = 42
    greeting = "hello dump"
    primes = [2, 3, 5, 7]
    config = {"mode": "test", "level": 3}
    ratio = 2.5
    end = time.time() + seconds
    while time.time() < end:
        time.sleep(0.05)   # MAIN-WAIT
    return answer, greeting, primes, config, ratio


def main():
    seconds = lifetime()
    threads = [threading.Thread(target=take_a_then_b, name="worker-ab", daemon=True),
               threading.Thread(target=take_b_then_a, name="worker-ba", daemon=True)]
    for t in threads:
        t.start()
    BOTH_HELD.wait()
    time.sleep(0.2)
    ready()
    wait_here(seconds)


if __name__ == "__main__":
    main()
