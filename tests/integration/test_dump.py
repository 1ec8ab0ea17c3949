"""`homura dump` on hung processes of every supported interpreter (deadlocked
threads, a C call, a tight loop), its --locals and --json output, and what
the same machinery adds to `record`: thread names and the <gc> frame."""
import json
import re

from conftest import (Collapsed, assert_one_error_line, homura, marker_line, program,
                      qualname, record)

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
