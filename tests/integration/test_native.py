"""`homura record -n/--native`: native frames merged into Python stacks.

Against every supported interpreter (and Debian's static, stripped
python3.11): a C extension call (zlib.compress -> deflate) shows the native
symbols below the Python caller; a native function in the middle of the
stack (libc qsort through ctypes, calling back into Python) sits between its
Python caller and the Python callback; the evaluation loop never shows; and
the target keeps running, untraced, after the recording."""
import os
import time

from conftest import Collapsed, program, record

REC = 1.5
EVAL_NAMES = ("_PyEval_EvalFrameDefault", "PyEval_EvalFrameEx", "_PyEval_EvalFrame",
              "_PyEval_Vector", "_PyFunction_Vectorcall", "function_code_fastcall")


def native_profile(r):
    """The collapsed profile (native frames name modules and build paths as
    files, so the file-exists sanity check does not apply)."""
    with open(r.output, encoding="utf-8") as f:
        return Collapsed(f.read())


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def assert_left_running(pid):
    """Nothing of ours stays attached and the target still makes progress."""
    st = proc_status(pid)
    assert st["TracerPid"].strip() == "0", "target still traced: %s" % st["TracerPid"]
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            text = f.read()
        assert "TracerPid:\t0\n" in text, "thread %s still traced" % tid
        state = [l for l in text.splitlines() if l.startswith("State:")][0]
        assert "(stopped)" not in state and "tracing stop" not in state, \
            "thread %s left stopped: %s" % (tid, state)
    before = cpu_ticks(pid)
    time.sleep(0.5)
    assert cpu_ticks(pid) > before, "target makes no progress after recording"


def no_eval_frames(prof):
    bad = {f.name for frames, _ in prof.stacks for f in frames
           if f.name.split(".")[0] in EVAL_NAMES}
    assert not bad, "interpreter frames in the output: %s\n%s" % (bad, prof.summary())


def check_extension_call(prof, py):
    """native_spin.py's profile: deflate (libz) under the zlib module's C
    function, under the Python caller chain <module> -> outer ->
    compress_loop, in at least half of the samples (also used by
    test_ebpf_native.py)."""
    assert prof.total >= 20, prof.summary()
    no_eval_frames(prof)
    with_deflate = 0
    for frames, count in prof.stacks:
        names = [f.name for f in frames]
        assert names[0] == "<module>", "root is not <module>: %s" % names
        if "deflate" not in names:
            continue
        with_deflate += count
        d = names.index("deflate")
        assert names[:3] == ["<module>", "outer", "compress_loop"], names
        # Only native frames below the Python caller, the zlib module's
        # function (zlib_compress / zlib_compress_impl) among them; the
        # static stripped python has no symbol for it (only .dynsym), so
        # there it reads as code of the executable: "[python3.11]".
        below = names[3:d]
        assert below and all(n not in ("outer", "compress_loop") for n in below), names
        zlib_fn = ("[python",) if py.id == "3.11-static" else ("zlib_compress",)
        assert any(n.startswith(zlib_fn) for n in below), names
    assert with_deflate >= 0.5 * prof.total, \
        "deflate in %d of %d samples:\n%s" % (with_deflate, prof.total, prof.summary())


def test_native_extension_call(py, spawn, tmp_path):
    """zlib.compress: deflate (libz) under the zlib module's C function,
    under the Python caller chain <module> -> outer -> compress_loop.
    Wall-clock (-i, one thread): on a loaded machine on-CPU samples would be
    few."""
    t = spawn([py.path, program("native_spin.py")])
    out = tmp_path / "native.txt"
    r = record("-n", "-i", "-p", t.pid, "-d", REC, "-f", "collapsed", output=out)
    prof = native_profile(r)
    assert prof.total >= 20, r.describe()
    check_extension_call(prof, py)
    assert "native:" in r.stderr and "stacks unwound" in r.stderr, r.stderr
    assert_left_running(t.pid)


def check_in_the_middle(prof):
    """native_callback.py's profile: sort_once (Python) -> qsort (native) ->
    py_cmp (Python) (also used by test_ebpf_native.py)."""
    assert prof.total >= 20, prof.summary()
    no_eval_frames(prof)
    with_cmp = sandwiched = with_qsort = 0
    for frames, count in prof.stacks:
        names = [f.name for f in frames]
        if any("qsort" in n for n in names):
            # qsort is only ever called by sort_once.
            with_qsort += count
            q = min(i for i, n in enumerate(names) if "qsort" in n)
            assert names[:3] == ["<module>", "main", "sort_once"], names
            assert all(n not in ("main", "sort_once") for n in names[3:q]), names
        if "py_cmp" not in names:
            continue
        with_cmp += count
        c = names.index("py_cmp")
        assert "sort_once" in names[:c], names
        s = names.index("sort_once")
        assert names[:s + 1] == ["<module>", "main", "sort_once"], names
        middle = names[s + 1:c]
        # Native frames only between the two Python functions, qsort among
        # them. (A torn sample, e.g. one taken while the callback's frame
        # was being set up, falls back to the Python frames alone.)
        assert all(n not in ("main", "sort_once", "py_cmp") for n in middle), names
        if any("qsort" in n for n in middle):
            sandwiched += count
    assert with_qsort >= 0.5 * prof.total, \
        "qsort in %d of %d samples:\n%s" % (with_qsort, prof.total, prof.summary())
    assert with_cmp >= 5, "py_cmp in only %d samples:\n%s" % (with_cmp, prof.summary())
    assert sandwiched >= 0.8 * with_cmp, \
        "qsort between sort_once and py_cmp in %d of %d samples:\n%s" % (
            sandwiched, with_cmp, prof.summary())


def test_native_in_the_middle(py, spawn, tmp_path):
    """libc qsort called through ctypes with a Python comparison callback:
    sort_once (Python) -> qsort (native) -> py_cmp (Python). Wall-clock (-i,
    one thread): on a loaded machine on-CPU samples would be few."""
    t = spawn([py.path, program("native_callback.py")])
    out = tmp_path / "native_cb.txt"
    r = record("-n", "-i", "-p", t.pid, "-d", REC, "-f", "collapsed", output=out)
    prof = native_profile(r)
    assert prof.total >= 20, r.describe()
    check_in_the_middle(prof)
    assert_left_running(t.pid)


def test_native_launch_and_exit(default_py, tmp_path):
    """-n with a launched command that exits by itself: the profile is
    written and nothing hangs."""
    out = tmp_path / "launch.txt"
    script = tmp_path / "short.py"
    script.write_text("import zlib, os\nd = os.urandom(1 << 20)\n"
                      "for _ in range(30):\n    zlib.compress(d, 9)\n")
    r = record("-n", "-f", "collapsed", "--", default_py.path, script, output=out)
    prof = native_profile(r)
    assert prof.total > 0, r.describe()
    no_eval_frames(prof)
    assert "deflate" in prof.names(), prof.summary()


def test_native_threads_idle(py, spawn, tmp_path):
    """-n -i -t on three busy threads and a main thread blocked in join():
    every worker shows up under its own thread root, and the waiting main
    thread ends in native code (the lock wait) below its Python frames."""
    t = spawn([py.path, program("threads.py"), 20])
    out = tmp_path / "threads.txt"
    r = record("-n", "-i", "-t", "-p", t.pid, "-d", REC, "-f", "collapsed", output=out)
    prof = native_profile(r)
    no_eval_frames(prof)
    for fn in ("in_alpha", "in_beta", "in_gamma"):
        assert prof.count_fn(fn) > 0, "%s missing:\n%s" % (fn, prof.summary())
    joins = [frames for frames, _ in prof.stacks
             if any(f.name.endswith("join") for f in frames)]
    assert joins, "main thread's join() not sampled:\n" + prof.summary()
    native_leaf = [fr for fr in joins if not (fr[-1].file or "").endswith(".py")]
    assert len(native_leaf) >= 0.8 * len(joins), \
        "join() stacks without a native leaf: %s" % [f[-1].text for f in joins]
    assert_left_running(t.pid)
