"""Ends in the way argv[1] says, after allocating: `exit` (sys.exit(5)),
`os_exit` (os._exit(3) after a fork and a multiprocessing pool), `signal`
(SIGTERM to itself), `fork_threads` (exit 0 after 30 forks made while
another thread allocates without pause: a child forked while the sampler
holds its lock must not hang). tests/integration/test_memory.py checks the
status."""
import multiprocessing
import os
import signal
import sys
import threading

keep = [bytes(10**6) for i in range(20)]        # KEEP: 20 MB


def square(x):
    return len(bytes(10**6)) + x * x


how = sys.argv[1]
print("start", how, flush=True)
if how == "exit":
    sys.exit(5)
if how == "os_exit":
    with multiprocessing.get_context("fork").Pool(2) as pool:
        print("pool", sum(pool.map(square, range(8))), flush=True)
    pid = os.fork()
    if pid == 0:
        junk = [bytes(10**5) for i in range(50)]
        os._exit(7)
    _, status = os.waitpid(pid, 0)
    print("child", os.WEXITSTATUS(status), flush=True)
    os._exit(3)
if how == "fork_threads":
    stop = []

    def churn():
        while not stop:
            x = [bytes(5000) for i in range(100)]

    t = threading.Thread(target=churn)
    t.start()
    codes = []
    for i in range(30):
        pid = os.fork()
        if pid == 0:
            y = [bytes(10**5) for i in range(100)]
            os._exit(11)
        codes.append(os.WEXITSTATUS(os.waitpid(pid, 0)[1]))
    stop.append(1)
    t.join()
    print("forked", codes.count(11), flush=True)
    sys.exit(0)
if how == "signal":
    os.kill(os.getpid(), signal.SIGTERM)
    while True:
        pass
