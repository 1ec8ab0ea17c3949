"""Code objects that come and go: compiles and runs a fresh function fn_<i>
from a pseudo file "<gen i>" in a loop, dropping the previous one, so freed
code objects' addresses are reused at once.  A profiler that caches code
objects by address without checking would show fn_7 in "<gen 12>"."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402

TEMPLATE = "def fn_%d(n):\n    t = 0\n    for k in range(n):\n        t += k\n    return t\n"


def churn():
    end = clock() + lifetime()
    i = 0
    ready()
    while clock() < end:
        i += 1
        ns = {}
        exec(compile(TEMPLATE % i, "<gen %d>" % i, "exec"), ns)
        ns["fn_%d" % i](3000)


if __name__ == "__main__":
    churn()
