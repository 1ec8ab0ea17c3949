"""The memory half of `homura run` (issue 12): the preloaded allocation
sampler (build/libhomura-alloc.so) and the session that reads it
(analyze/memory.c), driven by the test program build/tests/memdrive on real
Python programs (tests/programs/mem_*.py).

Sizes are checked within 10% of the known amounts; with a 4 KiB mean
sampling distance every allocation of these sizes is sampled (the chance of
missing a 1 MB one is e^-244), so the checks cannot fail by chance."""
import gzip
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import HOMURA, program

MEMDRIVE = str(Path(HOMURA).parent / "tests" / "memdrive")
MB = 1e6
SYSTEM_PY = "/usr/bin/python3"


def run_mem(argv, *extra, timeout=120):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONMALLOC", None)
    p = subprocess.run([MEMDRIVE, "--sample-bytes", "4096", *extra, "--", *argv],
                       capture_output=True, text=True, timeout=timeout, env=env)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    out["stderr"] = p.stderr
    return out


def tagged_lines(path):
    """{TAG: line number} for the `# TAG:` comments of a program."""
    tags = {}
    for i, text in enumerate(Path(path).read_text().splitlines(), 1):
        m = re.search(r"#\s*([A-Z_]+):", text)
        if m:
            tags[m.group(1)] = i
    return tags


def line_of(out, path, line):
    for rec in out["lines"]:
        if rec["file"] == path and rec["line"] == line:
            return rec
    raise AssertionError("no line %s:%d in %s" % (path, line,
                         [(r["file"], r["line"]) for r in out["lines"][:20]]))


def near(value, want, tol=0.10):
    return abs(value - want) <= tol * want


@pytest.mark.asan
def test_known_sizes_per_line(py):
    prog = program("mem_known.py")
    out = run_mem([py.path, prog])
    assert out["status"] == {"exit": 0}
    assert "done" in out["stderr"]
    assert out["available"] is True and out["samples"] > 0 and out["dropped"] == 0
    tags = tagged_lines(prog)
    want = {"BYTES": 50 * MB, "BYTEARRAY": 30 * MB, "LIST": 16 * MB, "COPY": 30 * MB,
            "THREAD": 32 * MB}
    for tag, size in want.items():
        rec = line_of(out, prog, tags[tag])
        assert near(rec["alloc_bytes"], size), (tag, rec)
        # Python objects: through the interpreter's allocators
        assert rec["python_bytes"] >= 0.9 * rec["alloc_bytes"], (tag, rec)
    # bytes(bytearray) copies its 30 MB with memcpy; the other lines copy nothing
    assert near(line_of(out, prog, tags["COPY"])["copy_bytes"], 30 * MB)
    assert line_of(out, prog, tags["BYTEARRAY"])["copy_bytes"] < 1 * MB
    kept = line_of(out, prog, tags["BYTEARRAY"])
    assert near(kept["live_end_bytes"], 30 * MB) and near(kept["peak_live_bytes"], 30 * MB)
    freed = line_of(out, prog, tags["BYTES"])
    assert freed["live_end_bytes"] < 1 * MB
    # the new object is made before the old one is dropped: two at a time
    assert near(freed["peak_live_bytes"], 20 * MB)
    # the 5 large ones (small ones of the loop may add an estimate of their own)
    assert line_of(out, prog, tags["BYTES"])["alloc_count"] >= 5
    # the threads' allocations are charged to the thread's own line
    assert line_of(out, prog, tags["THREAD"])["func"] == "worker"
    funcs = {f["func"]: f for f in out["functions"] if f["file"] == prog}
    assert near(funcs["allocate"]["alloc_bytes"], 126 * MB)
    assert not out["leaks"]
    assert out["timeline"] >= 1


def test_planted_leak_found_and_churn_not_flagged():
    prog = program("mem_leak.py")
    out = run_mem([SYSTEM_PY, prog])
    assert out["status"] == {"exit": 0}
    tags = tagged_lines(prog)
    leak = line_of(out, prog, tags["LEAK"])
    churn = line_of(out, prog, tags["CHURN"])
    assert near(leak["alloc_bytes"], 30 * MB)
    assert churn["alloc_bytes"] > 5e9          # gigabytes of temporaries
    assert leak["leak_likelihood"] >= 0.7 and leak["leak_bytes_per_s"] > 0
    assert churn["leak_likelihood"] < 0
    assert [(r["file"], r["line"]) for r in out["leaks"]] == [(prog, tags["LEAK"])]


def test_numpy_arrays():
    if subprocess.run([SYSTEM_PY, "-c", "import numpy"], capture_output=True).returncode:
        pytest.skip("python3-numpy is not installed for %s" % SYSTEM_PY)
    prog = program("mem_numpy.py")
    out = run_mem([SYSTEM_PY, prog])
    assert out["status"] == {"exit": 0}
    tags = tagged_lines(prog)
    for tag, size in {"ZEROS": 80 * MB, "ONES": 8 * MB, "ADD": 800 * MB}.items():
        rec = line_of(out, prog, tags[tag])
        assert near(rec["alloc_bytes"], size), (tag, rec)
        # array data comes from numpy's own calls to malloc: native
        assert rec["python_bytes"] < 0.05 * rec["alloc_bytes"], (tag, rec)
    assert near(line_of(out, prog, tags["ADD"])["live_end_bytes"], 80 * MB)


@pytest.mark.parametrize("how,status", [("exit", {"exit": 5}), ("os_exit", {"exit": 3}),
                                        ("signal", {"signal": 15}),
                                        ("fork_threads", {"exit": 0})])
def test_exit_status_and_output_unchanged(default_py, how, status):
    prog = program("mem_exit.py")
    out = run_mem([default_py.path, prog, how])
    assert out["status"] == status
    assert "start %s" % how in out["stderr"]
    if how == "os_exit":
        # multiprocessing workers and a forked child ran normally
        assert "pool %d" % (8 * 10**6 + sum(x * x for x in range(8))) in out["stderr"]
        assert "child 7" in out["stderr"]
    if how == "fork_threads":
        assert "forked 30" in out["stderr"]
    assert out["available"] is True
    keep = line_of(out, prog, tagged_lines(prog)["KEEP"])
    assert near(keep["alloc_bytes"], 20 * MB)


def test_non_python_program_not_harmed():
    out = run_mem(["sh", "-c", "seq 1 200000 | sort -rn | head -1; exit 4"])
    assert out["status"] == {"exit": 4}
    assert "200000" in out["stderr"]
    assert out["available"] is False and out["why_not"]
    assert out["lines"] == []


def test_pprof_heap_profile(default_py, tmp_path):
    prog = program("mem_known.py")
    pb = tmp_path / "alloc.pb"
    out = run_mem([default_py.path, prog], "--pprof", "alloc_space:%s" % pb)
    assert out["status"] == {"exit": 0}
    raw = gzip.decompress(pb.read_bytes())
    assert b"alloc_space" in raw and b"bytes" in raw     # the sample type and its unit
    # homura reads it back; the bytearray's line is there (its count: the
    # bytearray, and an estimate for any small allocation sampled there)
    text = subprocess.run([HOMURA, "convert", str(pb), "-f", "collapsed"], capture_output=True,
                          text=True, check=True).stdout
    rows = [row.rpartition(" ") for row in text.splitlines()]
    where = "mem_known.py:%d" % tagged_lines(prog)["BYTEARRAY"]
    assert sum(int(v) for stack, _, v in rows if stack.split(";")[-1].endswith(where + ")")) >= 1


def test_every_allocation_function(default_py):
    """malloc, realloc, calloc, aligned_alloc, memalign, valloc and
    posix_memalign called from Python lines (ctypes) in two threads: right
    answers (the program checks alignment, contents and usable sizes) and
    the right sizes, as native memory, on each line."""
    prog = program("mem_capi.py")
    out = run_mem([default_py.path, prog])
    assert out["status"] == {"exit": 0}, out["stderr"]
    assert "bad []" in out["stderr"]
    tags = tagged_lines(prog)
    want = {"MALLOC": 24, "REALLOC": 40, "CALLOC": 16, "ALIGNED": 32, "MEMALIGN": 8,
            "VALLOC": 8, "POSIX": 16}
    for tag, mb in want.items():
        rec = line_of(out, prog, tags[tag])
        assert near(rec["alloc_bytes"], mb * MB), (tag, rec)
        assert rec["python_bytes"] < 0.05 * rec["alloc_bytes"], (tag, rec)
        assert rec["live_end_bytes"] < 0.5 * MB, (tag, rec)
