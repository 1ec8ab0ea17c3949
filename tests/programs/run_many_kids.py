"""run_many_kids.py - 20 short-lived workers made with os.fork() (two at a
time) and 20 tasks of a forked multiprocessing pool, each running a
pure-Python loop on one line, for `homura run` (test_run.py): every child
process is attached to as it starts, so the workers' CPU time lands on
their line and counts as Python. Writes the loop's CPU time summed over
the workers (each measures its own) and the whole tree's (getrusage) as
JSON to argv[1]."""
import json
import multiprocessing as mp
import os
import resource
import sys
import time


def work(n):
    t0 = time.process_time()
    sum(i * 7 % 3 for i in range(n))  # LINE worker
    return time.process_time() - t0


if __name__ == "__main__":
    n = 400_000
    forked = []
    for _ in range(10):          # two at a time, as a small pool of forks would
        r, w = os.pipe()
        pids = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                os.close(r)
                os.write(w, b"%r\n" % work(n))
                os._exit(0)
            pids.append(pid)
        os.close(w)
        with os.fdopen(r) as f:
            forked += [float(l) for l in f]
        for pid in pids:
            os.waitpid(pid, 0)
    with mp.get_context("fork").Pool(4) as pool:
        pooled = pool.map(work, [n] * 20, chunksize=1)
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    truth = {"forked": len(forked), "pooled": len(pooled), "worker": sum(forked) + sum(pooled),
             "tree": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime}
    with open(sys.argv[1], "w") as f:
        json.dump(truth, f)
