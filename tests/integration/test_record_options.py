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

from conftest import HOMURA, Collapsed, assert_one_error_line, homura, program, record

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


# ------------------------------------------------- py-spy users' command lines

SUBCOMMANDS = ["record", "top", "dump", "convert", "diff", "agent", "server"]


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_help_subcommand(cmd):
    """`homura help CMD` prints what `homura CMD --help` prints, on stdout."""
    a = homura("help", cmd)
    b = homura(cmd, "--help")
    assert a.rc == 0 and b.rc == 0, a.describe() + b.describe()
    assert a.stdout == b.stdout and ("usage: homura %s" % cmd) in a.stdout, a.stdout


def test_help_and_version():
    r = homura("help", "no-such-command")
    assert "no-such-command" in assert_one_error_line(r)
    for args in (["-V"], ["--version"], ["version"]):
        r = homura(*args)
        assert r.rc == 0 and re.match(r"^homura \d+\.\d+\.\d+\n$", r.stdout), r.describe()
    r = homura("help")
    assert r.rc == 0 and all(c in r.stdout for c in SUBCOMMANDS), r.stdout


@pytest.mark.parametrize("opt,value", [
    ("-r", "10001"), ("-r", "100000"), ("-r", "1e9"), ("-r", "0"), ("-r", "-5"), ("-r", "0.5"),
    ("-r", "abc"), ("-r", ""), ("-r", "nan"), ("-r", "inf"), ("-r", "100Hz"),
    ("-d", "0"), ("-d", "-1"), ("-d", "abc"), ("-d", ""), ("-d", "nan"), ("-d", "inf"),
    ("-d", "1e300"), ("-d", "5s"),
])
def test_bad_rate_and_duration(busy, tmp_path, opt, value):
    """Rates above the documented maximum (10000) and nonsense rates or
    durations are refused at once with one line quoting the value."""
    out = tmp_path / "x.txt"
    r = homura("record", "-p", busy.pid, "-o", out, opt, value, "-d" if opt == "-r" else "-r",
               "0.5" if opt == "-r" else "100", timeout=20)
    line = assert_one_error_line(r)
    assert ("'%s'" % value) in line, line
    assert r.elapsed < 5 and not out.exists(), r.describe()


@pytest.mark.parametrize("value", ["10001", "0", "-1", "abc", "", "nan"])
def test_top_bad_rate(value):
    r = homura("top", "-r", value, "-p", 1, "--once", timeout=20)
    assert ("'%s'" % value) in assert_one_error_line(r)


def test_max_rate_accepted(busy, tmp_path):
    r = record("-p", busy.pid, "-r", 10000, "-d", 0.3, output=tmp_path / "r.txt")
    assert r.profile().total > 0


def test_pyspy_record_flags(busy, tmp_path):
    """py-spy's spelling: --nonblocking (the default), --function (by function,
    no line numbers), --full-filenames (homura never shortens them) and
    -f raw (collapsed text) give the profile homura's own flags give."""
    out = tmp_path / "p.out"
    r = record("-p", busy.pid, "-d", 0.5, "--nonblocking", "--function", "--full-filenames",
               "-f", "raw", output=out)
    assert "pausing" not in r.stderr, r.stderr
    p = r.profile()
    texts = {f.text for fr, _ in p.stacks for f in fr}
    assert "busy_work (%s)" % program("busy.py") in texts, p.summary()
    assert not any(re.search(r":\d+\)$", t) for t in texts), texts
    assert p.count_fn("busy_work") >= 0.8 * p.total, p.summary()
    # --blocking then --nonblocking: the last one wins, nothing is paused.
    r = record("-p", busy.pid, "-d", 0.3, "--blocking", "--nonblocking", output=tmp_path / "q.txt")
    assert "pausing" not in r.stderr, r.stderr
    r = record("-p", busy.pid, "-d", 0.3, "--blocking", output=tmp_path / "b.txt")
    assert "pausing" in r.stderr, r.stderr


def test_pyspy_dump_flags(busy):
    r = homura("dump", "--nonblocking", "--full-filenames", "--locals", "-p", busy.pid)
    assert r.rc == 0, r.describe()
    assert "busy_work (%s:" % program("busy.py") in r.stdout, r.stdout


def _top_on_pty(args, cols):
    """`homura top ARGS` with stdout on a pseudo-terminal COLS wide."""
    import fcntl
    import pty
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
    from conftest import HOMURA
    p = subprocess.Popen([HOMURA, "top"] + [str(a) for a in args], stdout=slave,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(slave)
    data = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:      # EIO: the other side is closed
            break
        if not chunk:
            break
        data += chunk
    os.close(master)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    assert p.wait(timeout=20) == 0, err
    return data.decode(errors="replace").replace("\r\n", "\n")


def test_top_full_filenames(busy):
    """On a narrow terminal top shortens a long path to '.../tail'; with
    --full-filenames it keeps the path from its start and cuts the row at
    the edge instead."""
    src = program("busy.py")
    short = _top_on_pty(["--once", "--nonblocking", "-p", busy.pid], 60)
    row = [l for l in short.splitlines() if "busy_work" in l]
    assert row and "(..." in row[0] and "(%s" % src not in row[0], short
    full = _top_on_pty(["--once", "--full-filenames", "-p", busy.pid], 60)
    row = [l for l in full.splitlines() if "busy_work" in l]
    head = "busy_work (" + src[:10]
    assert row and head in row[0] and "..." not in row[0], full


def test_chrometrace(spawn, default_py, tmp_path):
    """-f chrometrace: Trace Event JSON (chrome://tracing, Perfetto) that
    Python's json reads: the target's pid, each worker's function on that
    worker's thread id, named threads, microsecond timestamps in order and
    slices nested per thread."""
    t = spawn([default_py.path, program("threads.py"), 30])
    tids = dict(kv.split("=") for kv in t.ready[2:])     # ready PID alpha=TID ...
    tids = {("in_" + k): int(v) for k, v in tids.items()}
    out = tmp_path / "trace.json"          # .json alone would mean speedscope
    r = record("-p", t.pid, "-d", 1, "-r", 200, "-f", "chrometrace", output=out)
    assert "(chrometrace)" in r.stderr, r.stderr
    doc = json.load(open(out, encoding="utf-8"))
    events = doc["traceEvents"]
    meta = [e for e in events if e["ph"] == "M"]
    xs = [e for e in events if e["ph"] == "X"]
    assert xs and len(meta) + len(xs) == len(events), set(e["ph"] for e in events)
    names = {e["tid"]: e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    assert set(tids.values()) <= set(names), (tids, names)
    last = 0
    for e in xs:
        assert e["pid"] == t.pid and isinstance(e["tid"], int), e
        assert e["tid"] in names, e
        assert isinstance(e["ts"], (int, float)) and e["ts"] >= last, e
        assert e["dur"] > 0, e
        last = e["ts"]
    # Within 1 s (plus slack) of the start.
    assert last < 5e6, last
    seen = {}
    for e in xs:
        if e["name"] in tids:
            seen.setdefault(e["name"], set()).add(e["tid"])
            assert e["args"]["file"] == program("threads.py"), e
    assert seen == {fn: {tid} for fn, tid in tids.items()}, (seen, tids)
    # Slices of one thread nest: each starts inside its enclosing open slice.
    by_tid = {}
    for e in xs:
        by_tid.setdefault(e["tid"], []).append(e)
    for tid, evs in by_tid.items():
        stack = []
        for e in evs:       # sorted by ts, parents first
            end = e["ts"] + e["dur"]
            while stack and stack[-1] <= e["ts"] + 0.01:
                stack.pop()     # that slice ended before this one started
            assert not stack or end <= stack[-1] + 0.01, (tid, e, stack)
            stack.append(end)


def test_output_dash_is_stdout(busy, tmp_path):
    """`-o -` writes the profile to stdout and creates no file: a file named
    `-` in the working directory (once committed to this repository by a
    run in its root) must never be written."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    p = subprocess.run([HOMURA, "record", "-p", str(busy.pid), "-d", "0.5", "-f", "collapsed",
                        "-o", "-"], cwd=str(cwd), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=40)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err
    prof = Collapsed(p.stdout.decode())
    assert prof.count_fn("busy_work") > 0, prof.summary()
    assert os.listdir(str(cwd)) == [], os.listdir(str(cwd))
    assert "wrote -" in err, err
    # A device is written in place too: /dev/null stays a device.
    record("-p", busy.pid, "-d", 0.2, "-f", "collapsed", output="/dev/null")
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
