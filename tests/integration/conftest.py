"""Shared machinery for homura's integration tests.

The tests drive the real `homura` binary (HOMURA_BIN, default build/homura)
against real Python processes running the workloads in tests/programs/.

Interpreters: every /root/.pyenv/versions/*/bin/python plus Debian's static
/usr/bin/python3.11.  Tests that take the `py` fixture run once per supported
interpreter (3.8+); an expected interpreter that is not installed shows up as
a skip that names it.  HOMURA_TEST_PYTHONS=3.8,3.11-static,... restricts the
set (the ASan pass uses it to stay short).
"""
import collections
import glob
import os
import re
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = REPO / "tests" / "programs"
HOMURA = str(Path(os.environ.get("HOMURA_BIN", REPO / "build" / "homura")).resolve())

SUPPORTED = [(3, 8), (3, 9), (3, 10), (3, 11), (3, 12), (3, 13)]
OLD = [(2, 7), (3, 6), (3, 7)]
STATIC_PY = "/usr/bin/python3.11"

Interp = collections.namedtuple("Interp", "id path version")


def _pyenv_interpreters():
    found = {}
    for exe in sorted(glob.glob("/root/.pyenv/versions/*/bin/python")):
        name = exe.split("/")[-3]
        m = re.match(r"^(\d+)\.(\d+)\.\d+$", name)   # skips 3.13.0t etc.
        if m:
            ver = (int(m.group(1)), int(m.group(2)))
            found.setdefault(ver, Interp("%d.%d" % ver, exe, ver))
    return found


def _selected(ident):
    only = os.environ.get("HOMURA_TEST_PYTHONS")
    return not only or ident in only.split(",")


def interpreter_params(versions, with_static):
    """pytest.param list for `versions`; absent ones are skips that say so."""
    found = _pyenv_interpreters()
    params = []
    wanted = list(versions) + [v for v in sorted(found) if v > max(versions)
                               and versions is SUPPORTED]
    for ver in wanted:
        ident = "%d.%d" % ver
        if not _selected(ident):
            continue
        if ver in found:
            params.append(pytest.param(found[ver], id=ident))
        else:
            params.append(pytest.param(None, id=ident, marks=pytest.mark.skip(
                reason="Python %s is not installed under /root/.pyenv/versions" % ident)))
    if with_static and _selected("3.11-static"):
        if os.path.exists(STATIC_PY):
            params.append(pytest.param(Interp("3.11-static", STATIC_PY, (3, 11)),
                                       id="3.11-static"))
        else:
            params.append(pytest.param(None, id="3.11-static", marks=pytest.mark.skip(
                reason="%s is not installed" % STATIC_PY)))
    return params


def pytest_configure(config):
    config.addinivalue_line("markers", "asan: part of the smaller ASan/UBSan pass")


def pytest_generate_tests(metafunc):
    if "py" in metafunc.fixturenames:
        metafunc.parametrize("py", interpreter_params(SUPPORTED, True))
    if "old_py" in metafunc.fixturenames:
        metafunc.parametrize("old_py", interpreter_params(OLD, False))


@pytest.fixture(scope="session", autouse=True)
def homura_binary():
    if not os.access(HOMURA, os.X_OK):
        pytest.exit("homura binary %s not found: run `make` first" % HOMURA, returncode=2)
    return HOMURA


@pytest.fixture(scope="session")
def default_py():
    """One interpreter for the tests that check flags and formats rather than
    the stack walker: pyenv 3.12 if present, else any supported one."""
    found = _pyenv_interpreters()
    for ver in [(3, 12), (3, 11), (3, 13), (3, 10), (3, 9), (3, 8)]:
        if ver in found:
            return found[ver]
    if os.path.exists(STATIC_PY):
        return Interp("3.11-static", STATIC_PY, (3, 11))
    pytest.skip("no supported Python interpreter installed")


def program(name):
    return str(PROGRAMS / name)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- targets

class Target:
    """A workload process started by a test.  start() waits for its `ready`
    line; the process is killed (with its process group) at teardown."""

    def __init__(self, argv, wait_ready=True, timeout=20):
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        env.pop("PYTHONPATH", None)
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=env,
                                     start_new_session=True)
        self.pid = self.proc.pid
        self.ready = None
        if wait_ready:
            self.ready = self._readline(timeout).split()
            assert self.ready[:1] == ["ready"], "workload %r said %r" % (argv, self.ready)

    def _readline(self, timeout):
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.kill()
                raise AssertionError("workload %r not ready after %ss; stderr: %s" % (
                    self.argv, timeout, self.proc.stderr.read().decode(errors="replace")))
            chunk = os.read(fd, 1)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace")
                raise AssertionError("workload %r exited early: %s" % (self.argv, err))
            buf += chunk
        return buf.decode()

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


@pytest.fixture
def spawn():
    """spawn(argv, ...) -> Target; everything spawned is killed afterwards."""
    started = []

    def start(argv, **kw):
        t = Target([str(a) for a in argv], **kw)
        started.append(t)
        return t

    yield start
    for t in started:
        t.kill()


# ---------------------------------------------------------------- profiles

FRAME_RE = re.compile(r"^(?P<name>.+?) \((?P<file>.+?)(?::(?P<line>\d+))?\)$")
THREAD_RE = re.compile(r"^thread (\d+)")


class Frame(collections.namedtuple("Frame", "name file line text")):
    @classmethod
    def parse(cls, text):
        m = FRAME_RE.match(text)
        if not m:
            return cls(text, None, None, text)
        line = int(m.group("line")) if m.group("line") else None
        return cls(m.group("name"), m.group("file"), line, text)

    @property
    def thread_tid(self):
        m = THREAD_RE.match(self.text)
        return int(m.group(1)) if m else None


class Collapsed:
    """A parsed collapsed-stack file: a list of (frames root->leaf, count)."""

    def __init__(self, text):
        self.text = text
        self.stacks = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            stack, sep, count = line.rpartition(" ")
            assert sep and count.isdigit() and stack, \
                "collapsed line %d is not 'frames count': %r" % (n, line)
            self.stacks.append(([Frame.parse(f) for f in stack.split(";")], int(count)))

    @property
    def total(self):
        return sum(c for _, c in self.stacks)

    def count(self, pred):
        """Samples whose stack has a frame satisfying pred(frame)."""
        return sum(c for frames, c in self.stacks if any(pred(f) for f in frames))

    def count_fn(self, name):
        return self.count(lambda f: f.name == name)

    def names(self):
        return {f.name for frames, _ in self.stacks for f in frames}

    def leaves(self):
        out = collections.Counter()
        for frames, c in self.stacks:
            out[frames[-1]] += c
        return out

    def summary(self, n=12):
        top = sorted(self.stacks, key=lambda s: -s[1])[:n]
        lines = ["%6d  %s" % (c, ";".join(f.text for f in fr[-6:])) for fr, c in top]
        return "total %d samples in %d stacks; top (last 6 frames):\n%s" % (
            self.total, len(self.stacks), "\n".join(lines))


def assert_sane(prof):
    """No garbage frames: every frame is a thread root, or has a printable
    name and a file that exists (or a pseudo file like <frozen ...>)."""
    for frames, _ in prof.stacks:
        for f in frames:
            if f.thread_tid is not None:
                continue
            assert f.name and f.name.isprintable(), "bad frame name %r" % f.text
            if f.file is not None:
                assert f.file.startswith("<") or os.path.exists(f.file), \
                    "frame with a file that does not exist: %r" % f.text
            assert f.line is None or 0 <= f.line < 1000000, "bad line in %r" % f.text


SANITIZER_RE = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:|"
                          r"SUMMARY: (Address|Undefined)")


class Run(collections.namedtuple("Run", "rc stdout stderr elapsed output")):
    def profile(self):
        """The collapsed profile written, checked for nonsense frames."""
        assert self.output and os.path.exists(self.output), \
            "no profile written (rc=%s, stderr=%s)" % (self.rc, self.stderr)
        with open(self.output, encoding="utf-8") as f:
            prof = Collapsed(f.read())
        assert_sane(prof)
        return prof

    def describe(self):
        return "rc=%s after %.1fs\nstderr:\n%s" % (self.rc, self.elapsed, self.stderr)


def homura(*args, timeout=40, output=None):
    """Run `homura ARGS`; fails the test on sanitizer reports or a hang."""
    argv = [HOMURA] + [str(a) for a in args]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail("homura hung (> %ss): %s\nstderr so far: %s" % (
            timeout, " ".join(argv), (e.stderr or b"").decode(errors="replace")))
    elapsed = time.monotonic() - t0
    stderr = p.stderr.decode("utf-8", errors="replace")
    assert not SANITIZER_RE.search(stderr), "sanitizer report:\n" + stderr
    assert p.returncode >= 0, "homura killed by signal %d\n%s" % (-p.returncode, stderr)
    return Run(p.returncode, p.stdout.decode("utf-8", errors="replace"), stderr,
               elapsed, str(output) if output else None)


def record(*args, output, timeout=40):
    """`homura record -o OUTPUT ARGS`, asserting exit 0."""
    r = homura("record", "-o", output, *args, timeout=timeout, output=output)
    assert r.rc == 0, "homura record %s failed: %s" % (" ".join(map(str, args)), r.describe())
    return r


def assert_one_error_line(r):
    """The error contract: non-zero exit, exactly one stderr line 'homura: ...'."""
    assert r.rc != 0, "expected failure, got %s" % r.describe()
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("homura: "), \
        "expected one 'homura: ...' line on stderr, got:\n" + r.stderr
    return lines[0]


def qualname(py, cls, fn):
    """The name homura shows: co_qualname on 3.11+, co_name before."""
    return "%s.%s" % (cls, fn) if py.version >= (3, 11) else fn


def marker_line(path, marker):
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if marker in line:
                return n
    raise AssertionError("marker %r not in %s" % (marker, path))


def def_line(path, name):
    return marker_line(path, "def %s(" % name)
