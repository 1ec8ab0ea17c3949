"""run_threads.py - two worker threads doing fixed work on their own lines
while the main thread waits, for `homura run` (test_run.py): every thread
must be measured. Writes each worker's CPU time (time.thread_time, measured
by the thread itself) and the process's total as JSON to argv[1]."""
import json
import sys
import threading
import time

truth = {}


def spin_a(n):
    t0 = time.thread_time()
    total = sum(i * 3 % 5 for i in range(n))  # LINE a
    truth["a"] = time.thread_time() - t0
    return total


def spin_b(n):
    t0 = time.thread_time()
    total = sum(i * 7 % 3 for i in range(n))  # LINE b
    truth["b"] = time.thread_time() - t0
    return total


threads = [threading.Thread(target=spin_a, args=(1_500_000,)),
           threading.Thread(target=spin_b, args=(3_000_000,))]
for t in threads:
    t.start()
for t in threads:
    t.join()
truth["process"] = time.process_time()
with open(sys.argv[1], "w") as f:
    json.dump(truth, f)
