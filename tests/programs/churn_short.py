"""Functions made and dropped as the program runs, each running 0.1 ms of
CPU time once: a sample of the CPU clock every millisecond can meet each at
most about once. argv[1]: seconds. Every function keeps its globals in a
cycle with itself, so code objects die in batches (at each collection) and
the next ones take their addresses: a sampler that names a frame by
whatever code object holds its address later shows one function with the
samples of many."""
import sys
import time

TEMPLATE = ("def fn_%d():\n    t0 = clock()\n    n = 0\n"
            "    while clock() - t0 < 0.0001:\n        n += 1\n    return n\n")


def churn(secs):
    end = time.monotonic() + secs
    i = 0
    while time.monotonic() < end:
        i += 1
        ns = {"clock": time.thread_time}
        exec(compile(TEMPLATE % i, "<gen %d>" % i, "exec"), ns)
        ns["fn_%d" % i]()
    print("made", i)


churn(float(sys.argv[1]))
