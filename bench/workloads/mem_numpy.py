"""numpy work (bench/bench_memory.py): array temporaries, sorting and
reductions; prints its own wall and CPU time (start-up excluded)."""
import time

import numpy as np

t0, c0 = time.perf_counter(), time.process_time()
rng = np.random.default_rng(1)
a = rng.random((1000, 1000))
acc = 0.0
for i in range(30):
    b = a * 2.0 + 1.0
    c = np.sort(b, axis=1)
    d = np.concatenate([c, b])
    acc += float(d.sum()) + float(np.cumsum(b[:, 0])[-1])
print("work", time.perf_counter() - t0, time.process_time() - c0, acc)
