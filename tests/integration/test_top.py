"""`homura top`: the live screen driven through tmux in an 80x24 pane (what
it shows, its keys, and that the terminal is restored on every way out), and
the plain-text snapshots of --iterations."""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import HOMURA, assert_one_error_line, homura, marker_line, program, qualname

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (scripts/install-deps.sh)")


class Pane:
    """A detached tmux session of its own (private socket), 80x24, running
    `cmd` under sh; the exit status is printed as HOMURA-EXIT=N after it."""

    def __init__(self, cmd, width=80, height=24):
        self.sock = "homura-top-test-%d-%d" % (os.getpid(), time.monotonic_ns())
        # The shell ignores Ctrl-C so that it outlives homura and reports;
        # homura sets its own handler.
        shell = "trap '' INT; %s; echo HOMURA-EXIT=$?; exec sleep 60" % cmd
        env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8")
        subprocess.run(["tmux", "-L", self.sock, "-f", "/dev/null", "new-session", "-d",
                        "-x", str(width), "-y", str(height), "sh", "-c", shell],
                       check=True, env=env)
        subprocess.run(self._tmux("set-option", "-g", "status", "off"), check=True)

    def _tmux(self, *args):
        return ["tmux", "-L", self.sock] + list(args)

    def screen(self, history=False):
        """The visible pane; with history, the lines scrolled off above too."""
        args = ["capture-pane", "-p"] + (["-S", "-"] if history else [])
        return subprocess.run(self._tmux(*args), capture_output=True,
                              text=True, check=True).stdout

    def fmt(self, f):
        return subprocess.run(self._tmux("display-message", "-p", f), capture_output=True,
                              text=True, check=True).stdout.strip()

    def keys(self, *k):
        subprocess.run(self._tmux("send-keys") + list(k), check=True)

    def wait_for(self, pred, timeout=6.0, what="screen"):
        deadline = time.monotonic() + timeout
        while True:
            s = self.screen()
            if pred(s):
                return s
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %s; the pane shows:\n%s" % (what, s))
            time.sleep(0.1)

    def homura_pid(self):
        """The homura process: the child of the pane's shell."""
        shell = int(self.fmt("#{pane_pid}"))
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        st = f.read()
                except OSError:
                    continue
                fields = st[st.rindex(")") + 2:].split()
                if int(fields[1]) == shell and "homura" in st[:st.rindex(")")]:
                    return int(d)
        return None

    def close(self):
        subprocess.run(self._tmux("kill-server"), capture_output=True)


@pytest.fixture
def pane():
    made = []

    def start(cmd, **kw):
        p = Pane(cmd, **kw)
        made.append(p)
        return p

    yield start
    for p in made:
        p.close()


def table_rows(screen):
    """The rows under the column header line."""
    lines = screen.splitlines()
    for i, line in enumerate(lines):
        if "Function (file:line)" in line:
            return [l for l in lines[i + 1:] if re.match(r"^\s*[\d.]+%", l)]
    return []


def assert_restored(p, screen):
    assert "HOMURA-EXIT=0" in screen, "homura did not exit with 0:\n" + screen
    # Off the alternate screen, the cursor shown again, keypad mode reset.
    assert p.fmt("#{alternate_on}") == "0", "still on the alternate screen"
    assert p.fmt("#{cursor_flag}") == "1", "cursor still hidden"
    assert p.fmt("#{keypad_cursor_flag}") == "0", "keypad mode left on"


@needs_tmux
def test_screen_keys_and_quit(default_py, spawn, pane):
    """Header and the hot function at the top in 80x24; 'l' switches to lines
    (file:line of the hot line), '3' sorts by OwnTime, 'p' pauses, 'q' quits
    and gives the terminal back."""
    src = program("lines.py")
    t = spawn([default_py.path, src, 30])
    p = pane("%s top -p %d" % (HOMURA, t.pid))
    hot_fn = qualname(default_py, "Worker", "run")
    s = p.wait_for(lambda s: table_rows(s) and hot_fn in table_rows(s)[0],
                   what="the hot function in the first row")
    lines = s.splitlines()
    assert re.match(r"^homura top - pid %d, Python %s[., ]" % (
        t.pid, re.escape(default_py.id)), lines[0]), s
    assert "100 Hz" in lines[0]
    assert re.search(r"Samples: \d+ +Invalid: 0 .*GIL: [\d.]+% +Active: [\d.]+% +Threads: 1",
                     lines[1]), s
    assert "View: functions" in lines[2] and "Sort: %Own" in lines[2], s
    assert "lines.py" in table_rows(s)[0]
    assert all(len(l) <= 80 for l in lines)
    assert "q quit" in lines[23], "help line not at the bottom:\n" + s

    hot = marker_line(src, "# HOT-LINE")
    p.keys("l")
    s = p.wait_for(lambda s: "View: lines" in s and table_rows(s)
                   and ("lines.py:%d)" % hot) in table_rows(s)[0],
                   what="the line view with the hot line first")
    p.keys("3")
    s = p.wait_for(lambda s: "*OwnTime" in s and "Sort: OwnTime" in s, what="sort by OwnTime")
    p.keys("p")
    p.wait_for(lambda s: "[paused]" in s, what="paused")
    time.sleep(0.3)   # let the pane finish the redraw that shows [paused]
    frozen = table_rows(p.screen())
    time.sleep(1.3)
    assert table_rows(p.screen()) == frozen, "the display changed while paused"
    p.keys(" ")
    p.wait_for(lambda s: "[paused]" not in s, what="unpaused")
    p.keys("q")
    s = p.wait_for(lambda s: "HOMURA-EXIT=" in s, what="homura to exit")
    assert_restored(p, s)
    assert "homura top - pid" not in s, "the top screen was left behind:\n" + s
    assert t.proc.poll() is None, "quitting top must not kill an attached process"


@needs_tmux
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_signals_restore_terminal(default_py, spawn, pane, how):
    t = spawn([default_py.path, program("busy.py"), 30])
    p = pane("%s top -p %d" % (HOMURA, t.pid))
    p.wait_for(lambda s: "busy_work" in s, what="busy_work on screen")
    if how == "ctrl-c":
        p.keys("C-c")
    else:
        pid = p.homura_pid()
        assert pid, "homura process not found"
        os.kill(pid, signal.SIGTERM)
    s = p.wait_for(lambda s: "HOMURA-EXIT=" in s, what="homura to exit")
    assert_restored(p, s)


@needs_tmux
def test_target_exit(default_py, pane):
    """A launched program that ends: the screen says so and waits for q;
    then the final table is printed on the restored terminal."""
    p = pane("%s top -- %s %s 2" % (HOMURA, default_py.path, program("busy.py")))
    s = p.wait_for(lambda s: "exited (code 0)" in s, timeout=8, what="'process exited'")
    assert "busy_work" in s
    time.sleep(0.5)
    assert "HOMURA-EXIT" not in p.screen(), "top should wait for q after the exit"
    p.keys("q")
    s = p.wait_for(lambda s: "HOMURA-EXIT=" in s, what="homura to exit")
    assert_restored(p, s)
    # The final table, fitted to 80 columns, is on the normal screen: its
    # header, 20 rows and a blank line are taller than the 24-line pane
    # when 18 or more functions were sampled (start-up code), so the lines
    # that scrolled off are read too.
    s = p.screen(history=True)
    final = s[:s.index("HOMURA-EXIT")]
    assert "exited (code 0)" in final and "busy_work" in final, s
    assert all(len(l) <= 80 for l in s.splitlines())


def test_iterations_text(default_py, spawn):
    """--iterations 2: two snapshots on stdout, one a second, without a
    terminal; the hot function first, percentages and times sane (-i: the
    wall-clock time of the one thread, which on a loaded machine gets a
    CPU for only part of it)."""
    t = spawn([default_py.path, program("busy.py"), 30])
    r = homura("top", "-i", "--iterations", 2, "--rows", 5, "-p", t.pid, timeout=15)
    assert r.rc == 0, r.describe()
    assert 1.5 < r.elapsed < 5, r.describe()
    snaps = [s for s in r.stdout.split("\n\n") if s.strip()]
    assert len(snaps) == 2, r.stdout
    prev_time = 0.0
    for snap in snaps:
        lines = snap.splitlines()
        assert re.match(r"^homura top - pid %d, Python %s(\.\d+)?, 100 Hz$" % (
            t.pid, re.escape(default_py.id)), lines[0]), lines[0]
        assert lines[3].split() == ["*%Own", "%Total", "OwnTime", "TotalTime", "Function",
                                    "(file:line)"]
        rows = lines[4:]
        assert 1 <= len(rows) <= 5
        m = re.match(r"^\s*([\d.]+)%\s+([\d.]+)%\s+([\d.]+)s\s+([\d.]+)s\s+(\S+) \((.*)\)$",
                     rows[0])
        assert m, rows[0]
        own, total, own_s, total_s = map(float, m.groups()[:4])
        assert m.group(5) == "busy_work" and m.group(6).startswith(program("busy.py")), rows[0]
        assert own >= 80 and total >= own and total_s >= own_s > prev_time
        prev_time = own_s
    assert 0.7 < prev_time < 2.5, "two seconds of one busy thread: %s" % prev_time


def test_once_lines_sorted(default_py, spawn):
    t = spawn([default_py.path, program("lines.py"), 30])
    r = homura("top", "--once", "-l", "--sort", "totaltime", "-p", t.pid, timeout=15)
    assert r.rc == 0, r.describe()
    lines = r.stdout.splitlines()
    assert "View: lines" in lines[2] and "Sort: TotalTime" in lines[2]
    assert "*TotalTime" in lines[3]
    # Rows in decreasing TotalTime; the module frame's line is at the top
    # (tied with the others on the only stack), the hot line shows up.
    totals = [float(l.split()[3].rstrip("s")) for l in lines[4:] if l.strip()]
    assert totals and totals == sorted(totals, reverse=True), r.stdout
    assert any("<module>" in l for l in lines[4:7]), r.stdout
    hot = marker_line(program("lines.py"), "# HOT-LINE")
    assert "lines.py:%d)" % hot in r.stdout


def test_errors(default_py):
    r = homura("top", "-p", 999999, "--once")
    assert "no such process" in assert_one_error_line(r)
    r = homura("top", "-p", os.getpid())   # stdin is /dev/null: not a terminal
    assert "terminal" in assert_one_error_line(r)
    r = homura("top", "--sort", "bogus", "-p", 1, "--once")
    assert "--sort" in assert_one_error_line(r)


ROW_RE = re.compile(r"^\s*([\d.]+)%\s+([\d.]+)%\s+([\d.]+)s\s+([\d.]+)s\s+(.*?)(?: \((.*)\))?$")


def snapshot_rows(snap):
    """[(own%, total%, name, where)] of one --iterations snapshot."""
    rows = []
    for line in snap.splitlines()[4:]:
        m = ROW_RE.match(line)
        if m:
            rows.append((float(m.group(1)), float(m.group(2)), m.group(5), m.group(6) or ""))
    return rows


def assert_untraced(pid):
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            st = dict(l.split(":\t", 1) for l in f.read().splitlines() if ":\t" in l)
        assert st["TracerPid"].strip() == "0", "thread %s still traced" % tid
        assert not st["State"].startswith("t"), "thread %s left stopped: %s" % (tid, st["State"])


def test_iterations_native(default_py, spawn):
    """top -n on a thread inside zlib.compress: zlib's native code (deflate,
    libz) is in the table, busier than the Python caller's own time, and the
    Python caller's total covers it; the target is left untraced."""
    t = spawn([default_py.path, program("in_c_call.py"), 30])
    r = homura("top", "-n", "--iterations", 2, "--rows", 30, "-p", t.pid, timeout=15)
    assert r.rc == 0, r.describe()
    snaps = [s for s in r.stdout.split("\n\n") if s.strip()]
    assert len(snaps) == 2, r.stdout
    assert snaps[-1].splitlines()[0].endswith(", native"), snaps[-1]
    rows = snapshot_rows(snaps[-1])
    by_name = {row[2]: row for row in rows}
    zlib_rows = [row for row in rows if row[2].startswith(("deflate", "zlib_compress"))
                 or "libz" in row[2] or "libz" in row[3]]
    assert zlib_rows, r.stdout
    # Most of the caller's time is zlib's own (shares of the caller's total:
    # on a loaded machine the target is on a CPU for less of the time).
    caller = by_name.get("compress_forever")
    assert caller and caller[1] > 0, r.stdout
    assert sum(row[0] for row in zlib_rows) >= 0.6 * caller[1], r.stdout   # own time in zlib
    assert caller[0] < 0.2 * caller[1], r.stdout
    assert not any(row[2].startswith("_PyEval_EvalFrame") for row in rows), r.stdout
    assert "Busy: MainThread" in snaps[-1].splitlines()[2], snaps[-1]
    assert_untraced(t.pid)
    assert t.proc.poll() is None


def test_iterations_subprocesses(default_py):
    """top -s on a multiprocessing pool: the workers' pool_work shows (two
    processes sampled: about 200% wall-clock, -i, as on-CPU they get less
    on a loaded machine). The workers outlive top by a little (they hold
    its stdout), so they run only 4 s."""
    cmd = [default_py.path, program("subprocs.py"), 4, "fork"]
    r = homura("top", "-s", "-i", "--iterations", 2, "--rows", 5, "--", *cmd, timeout=20)
    assert r.rc == 0, r.describe()
    snaps = [s for s in r.stdout.split("\n\n") if s.strip()]
    assert len(snaps) == 2, r.stdout
    lines = snaps[-1].splitlines()
    assert re.search(r", [12] subprocess(es)?$", lines[0]), lines[0]
    rows = snapshot_rows(snaps[-1])
    assert rows[0][2] == "pool_work" and rows[0][3].startswith(program("subprocs.py")), r.stdout
    assert rows[0][0] >= 120, "two busy workers: %s" % r.stdout
    assert "@" in lines[2], "followed threads are named THREAD@PID: %s" % lines[2]


def test_iterations_thread_names(default_py, spawn):
    """The header names the busy threads of the last second."""
    t = spawn([default_py.path, program("threads.py"), 30])
    r = homura("top", "--once", "-p", t.pid, timeout=15)
    assert r.rc == 0, r.describe()
    busy = r.stdout.splitlines()[2]
    assert "Busy: " in busy, busy
    names = busy.split("Busy: ", 1)[1]
    assert re.search(r"\S+ \d+%", names), busy
