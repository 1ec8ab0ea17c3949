"""Workloads for bench/bench_run.py: argv[1] mode, argv[2] file to write
"WALL CPU" seconds of the work (measured inside, start-up excluded),
argv[3] scale. Modes: python (pure-Python calls, dicts, strings), alloc
(allocation churn: lists, dicts, bytes, temporaries), native (zlib and reads
from /dev/zero), numpy (array arithmetic and matrix products)."""
import os
import sys
import time
import zlib


def py_work(n):
    total = 0
    text = "the quick brown fox jumps over the lazy dog " * 20
    for _ in range(n):
        counts = {}
        for w in text.split():
            counts[w] = counts.get(w, 0) + 1
        total += sum(i * i for i in range(300)) + len(counts)
    return total


def alloc_work(n):
    keep = []
    for i in range(n):
        tmp = [str(j) for j in range(200)]
        d = {k: k * 2 for k in tmp}
        b = bytearray(4096) + bytes(1024)
        if i % 50 == 0:
            keep.append(len(d) + len(b))
    return len(keep)


def native_work(n):
    blob = os.urandom(1 << 15) * 4
    fd = os.open("/dev/zero", os.O_RDONLY)
    out = 0
    for _ in range(n):
        out += len(zlib.compress(blob, 6))
        out += len(os.read(fd, 1 << 20))
    os.close(fd)
    return out


def numpy_work(n):
    import numpy as np
    a = np.random.default_rng(1).random((200, 200))
    s = 0.0
    for _ in range(n):
        b = a @ a
        c = np.sqrt(b) + np.sin(a)
        s += float(c.sum())
    return s


MODES = {"python": (py_work, 40000), "alloc": (alloc_work, 30000),
         "native": (native_work, 300), "numpy": (numpy_work, 200)}

if __name__ == "__main__":
    fn, n = MODES[sys.argv[1]]
    n = max(1, int(n * float(sys.argv[3]))) if len(sys.argv) > 3 else n
    if sys.argv[1] == "numpy":
        import numpy  # noqa: F401  (imported before the clock starts)
    t0, c0 = time.perf_counter(), time.process_time()
    fn(n)
    with open(sys.argv[2], "w") as f:
        f.write("%f %f\n" % (time.perf_counter() - t0, time.process_time() - c0))
