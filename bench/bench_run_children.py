#!/usr/bin/env python3
"""homura's own CPU time per child process under `homura run`.

A program forks N workers one after another (os.fork, each a 50 ms
pure-Python loop, then os._exit) and reports its whole tree's CPU time;
`homura run --cpu` runs it with N children and with none, and homura's CPU
is the runner's RUSAGE_CHILDREN minus the program's own. The difference
divided by N is what each child costs homura: attaching to it (finding its
interpreter) and walking its stacks while it runs. Medians of --repeats.

    bench/bench_run_children.py [--python PATH] [--children 20] [--repeats 5]
    HOMURA_BIN=/path/to/other/homura bench/bench_run_children.py   # compare builds"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

PROGRAM = r'''
import os, resource, sys, time
def burn():
    s, t = 0, time.process_time() + 0.05
    while time.process_time() < t:
        for i in range(1000):
            s += i
for _ in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        burn()
        os._exit(0)
    os.waitpid(pid, 0)
burn()
a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime)
'''


def homura_cpu(py, prog, n):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run([benchlib.HOMURA, "run", "--cpu", "-n", "0", "--", py, prog, str(n)],
                       capture_output=True, check=True, timeout=300)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    tree = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return tree - float(p.stdout.split()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default="/root/.pyenv/versions/3.12.1/bin/python3")
    ap.add_argument("--children", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        prog = os.path.join(d, "forks.py")
        with open(prog, "w") as f:
            f.write(PROGRAM)
        none = benchlib.median([homura_cpu(a.python, prog, 0) for _ in range(a.repeats)])
        some = benchlib.median([homura_cpu(a.python, prog, a.children) for _ in range(a.repeats)])
    print("%s, %s: homura's CPU %.3f s with no child, %.3f s with %d: %.2f ms per child"
          % (benchlib.HOMURA, a.python, none, some, a.children, 1000 * (some - none) / a.children))


if __name__ == "__main__":
    main()
