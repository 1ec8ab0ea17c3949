"""`homura dump` on hung processes of every supported interpreter (deadlocked
threads, a C call, a tight loop), its --locals and --json output, and what
the same machinery adds to `record`: thread names and the <gc> frame."""
import json
import os
import re
import time

import pytest

from conftest import (Collapsed, _pyenv_interpreters, assert_one_error_line, homura,
                      marker_line, program, qualname, record)

THREAD_RE = re.compile(r"^Thread (\d+) \((.*)\): (idle|running)(, holds GIL)?")
FRAME_RE = re.compile(r"^    (\S.*) \((.*):(\d+)\)$")
LOCAL_RE = re.compile(r"^        (\w+) = (.*)$")


def parse_dump(text):
    """{thread name: {"tid", "state", "gil", "frames": [(name, file, line,
    {local: repr})]}} from dump's text output."""
    threads, cur = {}, None
    for line in text.splitlines():
        m = THREAD_RE.match(line)
        if m:
            cur = {"tid": int(m.group(1)), "state": m.group(3), "gil": bool(m.group(4)),
                   "frames": []}
            threads[m.group(2)] = cur
            continue
        m = FRAME_RE.match(line)
        if m and cur is not None:
            cur["frames"].append((m.group(1), m.group(2), int(m.group(3)), {}))
            continue
        m = LOCAL_RE.match(line)
        if m and cur is not None and cur["frames"]:
            cur["frames"][-1][3][m.group(1)] = m.group(2)
    return threads


def dump(*args):
    r = homura("dump", *args, timeout=30)
    assert r.rc == 0, "homura dump %s failed: %s" % (" ".join(map(str, args)), r.describe())
    return r


def test_deadlock(py, spawn):
    """Both deadlocked threads show with their names and the lock-acquire line
    they are stuck on; the main thread shows as MainThread."""
    src = program("deadlock.py")
    t = spawn([py.path, src, 30])
    threads = parse_dump(dump("-p", t.pid).stdout)
    assert {"worker-ab", "worker-ba", "MainThread"} <= set(threads), threads
    for name, fn, marker in (("worker-ab", "take_a_then_b", "# DEADLOCK-A"),
                             ("worker-ba", "take_b_then_a", "# DEADLOCK-B")):
        th = threads[name]
        assert th["state"] == "idle", th
        leaf = th["frames"][0]
        assert leaf[0] == fn and leaf[1].endswith("deadlock.py"), th
        assert leaf[2] == marker_line(src, marker), th
        assert any(f[0].endswith("_bootstrap") for f in th["frames"]), th
    main = threads["MainThread"]
    assert main["tid"] == t.pid
    assert [f[0] for f in main["frames"]][:3] == ["wait_here", "main", "<module>"], main


def test_locals(py, spawn):
    """--locals shows the known values of wait_here()'s variables."""
    t = spawn([py.path, program("deadlock.py"), 30])
    threads = parse_dump(dump("-p", t.pid, "--locals").stdout)
    frame = threads["MainThread"]["frames"][0]
    assert frame[0] == "wait_here", threads["MainThread"]
    loc = frame[3]
    assert loc.get("seconds") == "30.0", loc
    assert loc.get("answer") == "42", loc
    assert loc.get("greeting") == "'hello dump'", loc
    assert loc.get("primes") == "<list of 4>", loc
    assert loc.get("config") == "<dict of 2>", loc
    assert loc.get("ratio") == "2.5", loc
    assert re.match(r"^\d+(\.\d+)?$", loc.get("end", "")), loc
    # Thread frames: `self` is a Thread object.
    ab = threads["worker-ab"]["frames"]
    run = [f for f in ab if f[0] == qualname(py, "Thread", "run")]
    assert run and run[0][3].get("self") == "<Thread object>", ab


def test_json(py, spawn):
    t = spawn([py.path, program("deadlock.py"), 30])
    doc = json.loads(dump("-p", t.pid, "--json", "--locals").stdout)
    assert doc["pid"] == t.pid
    by_name = {th["name"]: th for th in doc["threads"]}
    assert {"worker-ab", "worker-ba", "MainThread"} <= set(by_name), by_name.keys()
    for th in doc["threads"]:
        assert th["state"] in ("idle", "running") and isinstance(th["gil"], bool)
        assert isinstance(th["tid"], int) and th["tid"] > 0
        for f in th["frames"]:
            assert set(f) >= {"name", "file", "line", "locals"}
    leaf = by_name["MainThread"]["frames"][0]
    assert leaf["name"] == "wait_here" and leaf["locals"]["answer"] == "42", leaf
    assert leaf["locals"]["config"] == "<dict of 2>", leaf


def test_stuck_in_c(py, spawn):
    """A thread inside a long zlib.compress and one inside time.sleep: both
    stacks are read, at the lines of those C calls."""
    src = program("in_c_call.py")
    t = spawn([py.path, src, 30])
    states = set()
    for _ in range(5):
        threads = parse_dump(dump("-p", t.pid).stdout)
        leaf = threads["MainThread"]["frames"][0]
        assert leaf[0] == "compress_forever", threads["MainThread"]
        call = marker_line(src, "# COMPRESS-CALL")
        assert leaf[2] in (call, call - 1), leaf   # in the call, or between calls
        states.add(threads["MainThread"]["state"])
        sleeper = threads["sleeper"]
        assert sleeper["frames"][0][0] == "sleep_in_c", sleeper
        assert sleeper["frames"][0][2] == marker_line(src, "# SLEEP-CALL")
        assert sleeper["state"] == "idle" and not sleeper["gil"], sleeper
    assert "running" in states, states


def test_tight_loop(py, spawn):
    """A thread spinning in pure Python: dump still reads its stack. The
    program never imports threading, so the name is the OS thread name."""
    t = spawn([py.path, program("busy.py"), 30])
    states = set()
    for _ in range(3):
        threads = parse_dump(dump("-p", t.pid).stdout)
        main = [th for th in threads.values() if th["tid"] == t.pid]
        assert len(main) == 1, threads
        frames = main[0]["frames"]
        assert [f[0] for f in frames][-2:] == ["main", "<module>"], frames
        states.add(main[0]["state"])
    assert "running" in states, states


def test_errors(spawn):
    r = homura("dump", "-p", 999999999)
    assert_one_error_line(r)
    r = homura("dump", "-p", 4194000)
    assert "4194000" in assert_one_error_line(r)
    t = spawn(["sleep", "30"], wait_ready=False)
    line = assert_one_error_line(homura("dump", "-p", t.pid))
    assert "not a Python process" in line, line
    assert_one_error_line(homura("dump"))


def test_gc_frame(py, spawn, tmp_path):
    """A program that collects garbage all the time shows <gc> at the leaf of
    its stacks, under the function that triggered the collection."""
    t = spawn([py.path, program("gc_heavy.py"), 20])
    out = tmp_path / "gc.txt"
    record("-p", t.pid, "-d", 1.5, output=out)
    with open(out, encoding="utf-8") as f:
        p = Collapsed(f.read())
    gc = p.count(lambda f: f.name == "<gc>")
    assert gc >= 0.3 * p.total, "<gc> in %d of %d samples:\n%s" % (gc, p.total, p.summary())
    for frames, _ in p.stacks:
        names = [f.name for f in frames]
        if "<gc>" in names:
            assert names[-1] == "<gc>" and "churn" in names, names
            assert frames[-1].file is None, frames[-1]


def test_thread_names_in_speedscope(py, spawn, tmp_path):
    t = spawn([py.path, program("threads.py"), 20])
    out = tmp_path / "threads.json"
    record("-p", t.pid, "-d", 1, "-f", "speedscope", output=out)
    with open(out) as f:
        doc = json.load(f)
    names = " ".join(p["name"] for p in doc["profiles"])
    for worker in ("in_alpha", "in_beta", "in_gamma"):
        assert worker in names, names


# ---------------------------------------------------------------- --native

NATIVE_RE = re.compile(r"^    (\S.*?)(?: \((.*?)(?::(\d+))?\))? \[native\]$")


def parse_dump_native(text):
    """{thread name: [(name, file, line, is_native)]} from dump -n's text."""
    threads, cur = {}, None
    for line in text.splitlines():
        m = THREAD_RE.match(line)
        if m:
            cur = threads.setdefault(m.group(2), [])
            continue
        if cur is None:
            continue
        m = NATIVE_RE.match(line)
        if m:
            cur.append((m.group(1), m.group(2), int(m.group(3) or 0), True))
            continue
        m = FRAME_RE.match(line)
        if m:
            cur.append((m.group(1), m.group(2), int(m.group(3)), False))
    return threads


def assert_untraced(pid):
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            st = dict(l.split(":\t", 1) for l in f.read().splitlines() if ":\t" in l)
        assert st["TracerPid"].strip() == "0", "thread %s still traced" % tid
        assert not st["State"].startswith("t") and "stopped" not in st["State"], \
            "thread %s left stopped: %s" % (tid, st["State"])


def test_native(py, spawn):
    """dump -n: the thread inside zlib.compress shows zlib's native code
    (deflate...) leaf-ward of its Python caller compress_forever; the sleeping
    thread shows native frames too; the target is left running, untraced."""
    src = program("in_c_call.py")
    t = spawn([py.path, src, 30])
    seen_deflate = False
    for _ in range(5):
        r = dump("-n", "-p", t.pid)
        threads = parse_dump_native(r.stdout)
        main = threads["MainThread"]
        names = [f[0] for f in main]
        assert "compress_forever" in names, r.stdout
        i = names.index("compress_forever")
        # Python callers keep their order, root-ward of the native frames.
        assert [f[0] for f in main if not f[3]][-3:] == ["compress_forever", "main", "<module>"]
        assert not any(n.startswith(("_PyEval_EvalFrame", "PyEval_EvalFrameEx"))
                       for n in names), names
        below = main[:i]
        if any(f[0].startswith(("deflate", "zlib_compress")) or "libz" in (f[1] or "")
               for f in below):
            assert all(f[3] for f in below), main
            seen_deflate = True
            sleeper = threads["sleeper"]
            assert sleeper[0][3], "no native leaf under time.sleep: %s" % sleeper
            assert [f[0] for f in sleeper if not f[3]][0] == "sleep_in_c", sleeper
            break
        time.sleep(0.2)
    assert seen_deflate, "no zlib native frame under compress_forever:\n" + r.stdout
    assert "holds GIL" in r.stdout or "running" in r.stdout
    assert_untraced(t.pid)
    before = t.proc.poll()
    time.sleep(0.2)
    assert before is None and t.proc.poll() is None
    assert_untraced(t.pid)


def test_native_json(default_py, spawn):
    t = spawn([default_py.path, program("in_c_call.py"), 30])
    doc = json.loads(dump("-n", "--json", "-p", t.pid).stdout)
    main = [th for th in doc["threads"] if th["tid"] == t.pid][0]
    kinds = {f["kind"] for f in main["frames"]}
    assert kinds == {"python", "native"}, main
    for f in main["frames"]:
        assert f["native"] == (f["kind"] == "native"), f
        assert {"name", "file", "line"} <= set(f), f
    py_names = [f["name"] for f in main["frames"] if not f["native"]]
    assert py_names[-2:] == ["main", "<module>"], py_names
    assert main["frames"][0]["native"], main["frames"][0]
    assert_untraced(t.pid)


def test_native_help():
    r = homura("dump", "--help")
    assert r.rc == 0 and "--native" in r.stdout and "stops each thread" in r.stdout, r.stdout


# ---------------------------------------------------------------- --async

TASK_RE = re.compile(r"^Task (.+?):( running)?")


def parse_tasks(text):
    """{task name: [(name, file, line)]} from the part after the threads."""
    tasks, cur = {}, None
    for line in text.splitlines():
        if line.startswith("Thread "):
            cur = None
            continue
        m = TASK_RE.match(line)
        if m:
            cur = tasks.setdefault(m.group(1), [])
            continue
        m = FRAME_RE.match(line)
        if m and cur is not None:
            cur.append((m.group(1), m.group(2), int(m.group(3))))
    return tasks


def async_interps():
    found = _pyenv_interpreters()
    return [pytest.param(found[v], id="%d.%d" % v) if v in found else
            pytest.param(None, id="%d.%d" % v, marks=pytest.mark.skip(reason="not installed"))
            for v in ((3, 8), (3, 10), (3, 12), (3, 13))]


@pytest.mark.parametrize("apy", async_interps())
def test_async(apy, spawn):
    """dump --async: each task with its await chain, innermost first, at the
    await lines; the threads are printed first as usual."""
    src = program("async_app.py")
    t = spawn([apy.path, src, 30])
    # The target is not paused: handler_a runs for a moment every 50 ms
    # (sleep returns, fetch_a returns, the next fetch_a calls sleep), and
    # busy runs all the time (a task that changed while it was read is
    # given as unreadable, never wrong). A snapshot that caught either in
    # such a moment is retried.
    def whole(tasks):
        if not {"handler_a", "handler_b", "busy"} <= set(tasks):
            return False
        names = [f[0] for f in tasks["handler_a"]]
        return names[-2:] == ["fetch_a", "handler_a"] and names[0] == "sleep"

    for attempt in range(10):
        r = dump("--async", "-p", t.pid)
        assert r.stdout.index("Thread ") < r.stdout.index("Task "), r.stdout
        tasks = parse_tasks(r.stdout)
        if whole(tasks):
            break
        time.sleep(0.013)
    assert {"handler_a", "handler_b", "busy"} <= set(tasks), r.stdout
    a = tasks["handler_a"]
    names = [f[0] for f in a]
    assert names[-2:] == ["fetch_a", "handler_a"], a
    assert a[-1][2] == marker_line(src, "# AWAIT-HANDLER-A"), a
    assert a[-2][2] == marker_line(src, "# AWAIT-FETCH"), a
    assert names[0] == "sleep", a   # asyncio.sleep: innermost
    b = tasks["handler_b"]
    assert b[-1][0] == "handler_b" and b[-1][2] == marker_line(src, "# AWAIT-HANDLER-B"), b
    assert b[0][0].endswith("get"), b
    assert tasks["busy"] and tasks["busy"][-1][0] == "busy", tasks["busy"]

    for attempt in range(10):
        doc = json.loads(dump("--async", "--json", "-p", t.pid).stdout)
        by_name = {x["name"]: x for x in doc["tasks"]}
        fr = by_name["handler_a"]["frames"] if "handler_a" in by_name else []
        if {"handler_a", "handler_b", "busy"} <= set(by_name) and \
                [f["name"] for f in fr][-2:] == ["fetch_a", "handler_a"]:
            break
        time.sleep(0.013)
    assert {"handler_a", "handler_b", "busy"} <= set(by_name), doc["tasks"]
    assert [f["name"] for f in fr][-2:] == ["fetch_a", "handler_a"], fr
    assert by_name["handler_b"]["running"] is False
    assert doc["threads"], doc


def test_async_no_asyncio(default_py, spawn):
    t = spawn([default_py.path, program("deadlock.py"), 30])
    r = dump("--async", "-p", t.pid)
    assert "MainThread" in r.stdout and "No asyncio tasks" in r.stdout, r.stdout
    doc = json.loads(dump("--async", "--json", "-p", t.pid).stdout)
    assert doc["tasks"] == [], doc


def test_async_old_python(spawn):
    """--async on 3.7: one clear error line (tasks need 3.8+)."""
    found = _pyenv_interpreters()
    if (3, 7) not in found:
        pytest.skip("Python 3.7 is not installed")
    t = spawn([found[(3, 7)].path, program("deadlock.py"), 30])
    line = assert_one_error_line(homura("dump", "--async", "-p", t.pid))
    assert "3.8" in line and "3.7" in line, line
