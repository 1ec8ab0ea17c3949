"""run_procs.py - two multiprocessing workers (one forked, one spawned)
doing fixed work on their own lines while the parent waits, for `homura
run` (test_run.py): child processes are measured too. Writes each worker's
CPU time (measured by itself) and the whole tree's (the parent's and its
children's, getrusage) as JSON to argv[1]."""
import json
import multiprocessing as mp
import resource
import sys
import time


def work_fork(n, q):
    t0 = time.process_time()
    total = sum(i * 5 % 3 for i in range(n))  # LINE fork
    q.put(("fork", time.process_time() - t0))
    return total


def work_spawn(n, q):
    t0 = time.process_time()
    total = sum(i * 3 % 7 for i in range(n))  # LINE spawn
    q.put(("spawn", time.process_time() - t0))
    return total


if __name__ == "__main__":
    n = 3_000_000
    fork, spawn = mp.get_context("fork"), mp.get_context("spawn")
    q = fork.SimpleQueue()
    qs = spawn.SimpleQueue()
    ps = [fork.Process(target=work_fork, args=(n, q)),
          spawn.Process(target=work_spawn, args=(n, qs))]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    truth = dict([q.get(), qs.get()])
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    truth["tree"] = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    with open(sys.argv[1], "w") as f:
        json.dump(truth, f)
