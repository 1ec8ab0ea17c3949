"""Child processes for `record --subprocesses`: a multiprocessing pool (the
start method given as argv[2]) running pool_work() in two workers, then a
plain `subprocess.run` of another Python script (argv[3], which runs
child_main())."""
import multiprocessing
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime  # noqa: E402


def pool_work(seconds):
    end = clock() + seconds
    n = 0
    while clock() < end:
        n += 1
    return n


def child_main(seconds):
    end = clock() + seconds
    while clock() < end:
        pass


def main():
    seconds = lifetime(2.0)
    method = sys.argv[2] if len(sys.argv) > 2 else "fork"
    if method == "child":
        child_main(seconds)
        return
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(2) as pool:
        pool.map(pool_work, [seconds, seconds])
    subprocess.run([sys.executable, os.path.abspath(__file__), str(seconds), "child"], check=True)
    time.sleep(0.1)


if __name__ == "__main__":
    main()
