"""Allocation-heavy pure Python (bench/bench_memory.py): dicts of small
objects, tuples, lists and strings made and dropped; prints its own wall
and CPU time (start-up excluded)."""
import time

t0, c0 = time.perf_counter(), time.process_time()


class P:
    __slots__ = ("x", "y")

    def __init__(self, x, y):
        self.x = x
        self.y = y


total = 0
for r in range(40):
    d = {}
    for i in range(20000):
        d[i] = [P(i, str(i)), (i, i + 1), "k%d" % i]
    total += len(d)
    s = [str(i) * 3 for i in range(20000)]
    b = [bytes(1000) for i in range(2000)]
print("work", time.perf_counter() - t0, time.process_time() - c0, total)
