"""Allocations of known sizes on known lines, for tests/integration/test_memory.py
(which finds the lines by their tags): bytes, bytearray, a list, and two threads."""
import threading

keep = []


def allocate():
    for i in range(5):
        b = bytes(10**7)                        # BYTES: 5 x 10 MB, freed
    ba = bytearray(3 * 10**7)                   # BYTEARRAY: 30 MB, kept
    keep.append(ba)
    lst = [None] * (2 * 10**6)                  # LIST: 16 MB, kept
    cp = bytes(ba)                              # COPY: 30 MB copied into 30 MB
    keep.append(lst)


def worker():
    for i in range(8):
        w = bytearray(2 * 10**6)                # THREAD: 2 threads x 8 x 2 MB


allocate()
ts = [threading.Thread(target=worker) for _ in range(2)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("done")
