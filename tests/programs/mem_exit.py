"""Ends in the way argv[1] says, after allocating: `exit` (sys.exit(5)),
`os_exit` (os._exit(3) after a fork and a multiprocessing pool), `signal`
(SIGTERM to itself). tests/integration/test_memory.py checks the status."""
import multiprocessing
import os
import signal
import sys

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
if how == "signal":
    os.kill(os.getpid(), signal.SIGTERM)
    while True:
        pass
