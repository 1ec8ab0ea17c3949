"""`homura record` options and output formats, and targets that do awkward
things (fork, exec, live in another PID namespace).  These exercise the
front end rather than a CPython layout, so they use one interpreter."""
import json
import os
import re
import shutil
import subprocess
import time
import xml.dom.minidom

import pytest

from conftest import Collapsed, homura, program, record

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def sniff(path):
    """Which of our formats a file is in, judged by its content."""
    data = open(path, "rb").read()
    text = data.decode("utf-8")
    if text.lstrip().startswith("{"):
        json.loads(text)
        return "speedscope"
    if "<svg" in text[:2000]:
        return "svg"
    Collapsed(text)
    return "collapsed"


@pytest.fixture
def busy(spawn, default_py):
    return spawn([default_py.path, program("busy.py"), 30])


def test_help_lists_every_option():
    r = homura("record", "--help")
    assert r.rc == 0, r.describe()
    text = r.stdout + r.stderr
    for opt in ("--pid", "--rate", "--duration", "--output", "--format", "--idle", "--gil",
                "--threads", "--nolineno", "--blocking", "--stats-json"):
        assert opt in text, "%s missing from `homura record --help`:\n%s" % (opt, text)


@pytest.mark.asan
@pytest.mark.parametrize("name,want", [
    ("out.txt", "collapsed"), ("out.collapsed", "collapsed"), ("out.folded", "collapsed"),
    ("out.json", "speedscope"), ("out.speedscope.json", "speedscope"), ("out.svg", "svg"),
])
def test_format_from_suffix(busy, tmp_path, name, want):
    out = tmp_path / name
    record("-p", busy.pid, "-d", 0.5, output=out)
    assert sniff(out) == want


@pytest.mark.parametrize("fmt", ["collapsed", "speedscope", "svg"])
def test_format_flag_overrides_suffix(busy, tmp_path, fmt):
    out = tmp_path / "profile.out.txt" if fmt != "collapsed" else tmp_path / "profile.svg"
    record("-p", busy.pid, "-d", 0.5, "-f", fmt, output=out)
    assert sniff(out) == fmt


@pytest.mark.asan
def test_speedscope_document(spawn, default_py, tmp_path):
    """Valid speedscope JSON: one sampled profile per thread, frame indices in
    range, and the threads' functions with file and line."""
    t = spawn([default_py.path, program("threads.py"), 30])
    out = tmp_path / "threads.json"
    record("-p", t.pid, "-d", 1, output=out)
    doc = json.load(open(out, encoding="utf-8"))
    assert doc.get("$schema") == SPEEDSCOPE_SCHEMA
    frames = doc["shared"]["frames"]
    assert frames and all("name" in f for f in frames)
    profiles = doc["profiles"]
    seen = {}
    for prof in profiles:
        assert prof["type"] == "sampled"
        assert len(prof["samples"]) == len(prof["weights"])
        assert prof["startValue"] <= prof["endValue"]
        names = set()
        for s in prof["samples"]:
            assert all(isinstance(i, int) and 0 <= i < len(frames) for i in s), s
            names.update(frames[i]["name"] for i in s)
        for fn in ("in_alpha", "in_beta", "in_gamma"):
            if fn in names:
                seen.setdefault(fn, 0)
                seen[fn] += 1
    assert seen == {"in_alpha": 1, "in_beta": 1, "in_gamma": 1}, \
        "each worker thread should be in exactly one profile: %s" % seen
    src = program("threads.py")
    alpha = [f for f in frames if f["name"] == "in_alpha"]
    assert alpha and alpha[0].get("file") == src and isinstance(alpha[0].get("line"), int)


@pytest.mark.asan
def test_svg_document(busy, tmp_path):
    """A well-formed, self-contained SVG (no network references) that names
    the hot function."""
    out = tmp_path / "flame.svg"
    record("-p", busy.pid, "-d", 0.5, output=out)
    doc = xml.dom.minidom.parse(str(out))
    assert doc.documentElement.tagName == "svg"
    text = open(out, encoding="utf-8").read()
    assert "busy_work" in text
    assert not re.search(r"""(src|href)\s*=\s*["']https?:""", text), "SVG loads from the network"
    assert not re.search(r"@import|url\(\s*['\"]?https?:", text)


def test_stats_json(busy, tmp_path):
    stats = tmp_path / "stats.json"
    r = record("-p", busy.pid, "-d", 1, "-r", 200, "--stats-json", stats,
               output=tmp_path / "p.txt")
    s = json.load(open(stats))
    for key in ("samples", "invalid", "late", "sample_us"):
        assert key in s, "%s missing from %s" % (key, s)
    # One per tick while the target runs: fewer when it waits for a CPU.
    assert isinstance(s["samples"], int) and 0 < s["samples"] <= s["ticks"], s
    assert 100 <= s["ticks"] <= 260, s
    assert 0 <= s["invalid"] <= max(3, 0.01 * (s["samples"] + s["invalid"])), s
    assert s["late"] >= 0, s
    us = s["sample_us"]
    assert 0 < us["p50"] <= us["p99"] <= us["max"], us
    assert 0 < us["mean"] <= us["max"], us
    assert us["p50"] < 1000, "a sample should take far less than 1 ms: %s" % us
    # The same numbers in the stderr summary.
    assert str(s["samples"]) in r.stderr and "sample" in r.stderr.lower(), r.stderr


def test_rate_and_duration(busy, tmp_path):
    """-r sets samples per second, -d (a float) the length of the recording
    (wall-clock samples, -i: on-CPU ones would count only the CPU time the
    busy target gets on a loaded machine)."""
    r = record("-p", busy.pid, "-i", "-r", 200, "-d", 1.5, output=tmp_path / "r.txt")
    n = r.profile().total
    # 300 expected; a loaded machine delays some wake-ups (counted as late).
    assert 150 <= n <= 1.15 * 300, "%d samples at 200 Hz for 1.5 s" % n
    assert 1.4 <= r.elapsed < 4, r.describe()
    r = record("-p", busy.pid, "-i", "-d", 0.3, output=tmp_path / "short.txt")
    assert r.elapsed < 2.5 and 10 <= r.profile().total <= 40, r.describe()


def test_nolineno(busy, default_py, tmp_path):
    r = record("-p", busy.pid, "-d", 0.5, "--nolineno", output=tmp_path / "n.txt")
    p = r.profile()
    src = program("busy.py")
    texts = {f.text for fr, _ in p.stacks for f in fr}
    assert "busy_work (%s)" % src in texts, p.summary()
    assert not any(re.search(r":\d+\)$", t) for t in texts), texts
    # One stack per distinct call path: <module>;main;busy_work at most a few.
    assert len(p.stacks) <= 3, p.summary()


@pytest.mark.asan
def test_blocking(busy, tmp_path):
    r = record("-p", busy.pid, "-d", 1, "--blocking", output=tmp_path / "b.txt")
    p = r.profile()
    # On-CPU: as many samples as the CPU time the target gets (less than
    # the 100 ticks on a loaded machine).
    assert p.count_fn("busy_work") >= 0.8 * p.total and p.total >= 10, p.summary()
    # The target must be left running, not stopped or traced.
    time.sleep(0.2)
    state = open("/proc/%d/stat" % busy.pid).read().rsplit(")", 1)[1].split()[0]
    assert state in ("R", "S"), "target left in state %s" % state
    tracer = [l for l in open("/proc/%d/status" % busy.pid) if l.startswith("TracerPid")]
    assert tracer == ["TracerPid:\t0\n"], tracer


def test_target_forks(spawn, default_py, tmp_path):
    """A parent that forks a child every 100 ms while being sampled."""
    t = spawn([default_py.path, program("forks.py"), 30])
    r = record("-p", t.pid, "-d", 1.5, output=tmp_path / "fork.txt")
    p = r.profile()
    assert p.count_fn("parent_work") >= 0.5 * p.total, p.summary()


@pytest.mark.parametrize("mode", ["attach", "launch"])
def test_target_execs(spawn, default_py, tmp_path, mode):
    """The target replaces itself with exec() during the recording: homura
    must neither crash nor hang, and writes what it has (exit 0)."""
    out = tmp_path / "exec.txt"
    cmd = [default_py.path, program("execs.py"), 0.6, 0.8]
    if mode == "attach":
        t = spawn(cmd)
        r = record("-p", t.pid, "-d", 3, output=out)
    else:
        r = record("-d", 3, "--", *cmd, output=out)
    assert r.elapsed < 5, r.describe()
    p = r.profile()
    assert p.count_fn("before_exec") > 0, p.summary()
    # r.profile() has checked that every frame is real (files exist).


def _host_child(parent_pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ent in os.listdir("/proc"):
            if not ent.isdigit():
                continue
            try:
                status = open("/proc/%s/status" % ent).read()
            except OSError:
                continue
            if re.search(r"^PPid:\s+%d$" % parent_pid, status, re.M):
                nspid = re.search(r"^NSpid:\s+(.*)$", status, re.M).group(1).split()
                return int(ent), nspid
        time.sleep(0.05)
    raise AssertionError("no child of unshare %d" % parent_pid)


@pytest.mark.asan
def test_other_pid_namespace(spawn, default_py, tmp_path):
    """A target in its own PID and mount namespace (as in a container),
    profiled from the host by its host pid; -t shows host thread ids."""
    unshare = shutil.which("unshare")
    if not unshare:
        pytest.skip("unshare (util-linux) not installed")
    probe = subprocess.run([unshare, "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot create namespaces here: %s" % probe.stderr.decode().strip())
    t = spawn([unshare, "--pid", "--fork", "--mount-proc",
               default_py.path, program("threads.py"), 30])
    host_pid, nspid = _host_child(t.pid)
    assert len(nspid) == 2 and nspid[1] == "1" and t.ready[1] == "1", (nspid, t.ready)
    ns_tids = {kv.split("=")[0]: int(kv.split("=")[1]) for kv in t.ready[2:]}
    host_tids = {}
    for tid in os.listdir("/proc/%d/task" % host_pid):
        st = open("/proc/%d/task/%s/status" % (host_pid, tid)).read()
        inner = int(re.search(r"^NSpid:\s+\d+\s+(\d+)", st, re.M).group(1))
        host_tids[inner] = int(tid)
    r = record("-p", host_pid, "-t", "-d", 1.5, output=tmp_path / "ns.txt")
    p = r.profile()
    for short, ns_tid in ns_tids.items():
        fn = "in_" + short
        roots = {fr[0].thread_tid for fr, _ in p.stacks if any(f.name == fn for f in fr)}
        assert roots == {host_tids[ns_tid]}, \
            "%s: roots %s, host tid %s (tid %s inside)" % (fn, roots, host_tids[ns_tid], ns_tid)
