"""record --ebpf --native: native frames without stopping anyone.

The cpu-clock perf event that runs the BPF program also writes, for each
sample of a watched process, the thread's user registers and a copy of the
top of its user stack; homura joins it with the program's Python stack of
the same interrupt and unwinds it afterwards (sample/ebpf.c,
native/native.c hm_native_unwind_copy). Checked with the programs and
assertions of the ptrace-based --native tests (test_native.py): a C
extension call under its Python caller, and libc qsort between a Python
caller and a Python callback; and, polling /proc while homura records, that
no thread of the target is ever traced or stopped. Skipped, saying why,
where BPF cannot be loaded."""
import json
import os
import subprocess
import time

import pytest

from conftest import HOMURA, Collapsed, interpreter_params, program
from test_ebpf import KERNEL, need_ebpf
from test_native import assert_left_running, check_extension_call, check_in_the_middle


def task_stops(pid):
    """Threads of pid that are traced or stopped right now."""
    bad = []
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return bad
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                text = f.read()
        except OSError:
            continue
        fields = dict(l.split(":\t", 1) for l in text.splitlines() if ":\t" in l)
        state = fields.get("State", "")
        if fields.get("TracerPid", "0").strip() != "0" or "stop" in state:
            bad.append("thread %s: TracerPid %s, State %s" % (tid, fields.get("TracerPid"), state))
    return bad


def record_native(pid, tmp_path, name, *extra):
    """record --ebpf --native -p pid while the target's threads are checked
    every few milliseconds. Returns (profile, stderr, stats, stops seen,
    number of checks)."""
    out = tmp_path / (name + ".txt")
    stats = tmp_path / (name + ".json")
    p = subprocess.Popen([HOMURA, "record", "--ebpf", "--native", "-r", "1000", "-p", str(pid),
                          "-d", "2", "-f", "collapsed", "--stats-json", str(stats), "-o", str(out)]
                         + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, checks = [], 0
    deadline = time.monotonic() + 60
    while p.poll() is None and time.monotonic() < deadline:
        seen += task_stops(pid)
        checks += 1
        time.sleep(0.002)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert KERNEL in err, err
    with open(out, encoding="utf-8") as f:
        prof = Collapsed(f.read())
    with open(stats) as f:
        st = json.load(f)
    return prof, err, st, seen, checks


def check_never_stopped(err, st, seen, checks):
    assert checks >= 50, "the target was checked only %d times" % checks
    assert not seen, "the target was traced or stopped: %s" % seen[:5]
    assert "no thread stopped" in err, err
    assert st["native"]["unwinds"] > 0 and st["native"]["stop_ns"] == 0, st
    assert st["bpf"]["native_joined"] > 0, st


@pytest.mark.parametrize("interp", interpreter_params([(3, 9), (3, 11), (3, 13)], True))
def test_ebpf_native_extension_call(interp, spawn, tmp_path):
    """zlib.compress under <module> -> outer -> compress_loop: deflate and
    the zlib module's function below compress_loop, as with ptrace."""
    need_ebpf()
    t = spawn([interp.path, program("native_spin.py")])
    prof, err, st, seen, checks = record_native(t.pid, tmp_path, "ext")
    check_extension_call(prof, interp)
    check_never_stopped(err, st, seen, checks)
    assert_left_running(t.pid)


@pytest.mark.parametrize("interp", interpreter_params([(3, 10), (3, 12)], True))
def test_ebpf_native_in_the_middle(interp, spawn, tmp_path):
    """qsort (native) between sort_once and the py_cmp callback (Python):
    the entry frames of each evaluation-loop call come from the kernel walk
    (3.11 is_entry, 3.12+ the C-stack shim frames)."""
    need_ebpf()
    t = spawn([interp.path, program("native_callback.py")])
    prof, err, st, seen, checks = record_native(t.pid, tmp_path, "cb")
    check_in_the_middle(prof)
    check_never_stopped(err, st, seen, checks)
    assert_left_running(t.pid)


def test_ebpf_native_target_output_and_status(default_py, tmp_path):
    """A target recorded until it exits prints what it prints alone and
    exits with its own status; its native frames are there."""
    need_ebpf()
    script = tmp_path / "prog.py"
    script.write_text("import os, sys, zlib\nsys.stdin.readline()\nd = os.urandom(1 << 20)\n"
                      "n = 0\nfor _ in range(40):\n    n += len(zlib.compress(d, 9))\n"
                      "print('total', n > 0)\nsys.exit(7)\n")
    t = subprocess.Popen([default_py.path, str(script)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        out = tmp_path / "l.txt"
        rec = subprocess.Popen([HOMURA, "record", "--ebpf", "--native", "-r", "1000", "-f",
                                "collapsed", "-o", str(out), "-p", str(t.pid)],
                               stderr=subprocess.PIPE, text=True)
        first = rec.stderr.readline()    # "sampling process ...": attached
        time.sleep(0.5)                  # the BPF program loaded (the summary says so)
        t.stdin.write("go\n")
        t.stdin.flush()
        stdout, _ = t.communicate(timeout=120)
        _, err = rec.communicate(timeout=60)
        err = first + err
    finally:
        if t.poll() is None:
            t.kill()
            t.wait()
    assert stdout == "total True\n", stdout
    assert t.returncode == 7
    assert rec.returncode == 0, err
    assert KERNEL in err and "the target exited" in err and "no thread stopped" in err, err
    prof = Collapsed(out.read_text(encoding="utf-8"))
    assert "deflate" in prof.names(), prof.summary()
