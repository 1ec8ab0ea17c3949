"""Every failure of `homura record` is one line on stderr starting with
"homura: " and a non-zero exit status, never a crash or a hang."""
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import HOMURA, assert_one_error_line, homura, program


def _dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.mark.asan
def test_no_such_pid(tmp_path):
    pid = _dead_pid()
    r = homura("record", "-p", pid, "-d", 1, "-o", tmp_path / "x.txt")
    line = assert_one_error_line(r)
    assert str(pid) in line, line
    assert not (tmp_path / "x.txt").exists()


@pytest.mark.asan
def test_not_a_python_process(spawn, tmp_path):
    t = spawn(["sleep", 60], wait_ready=False)
    r = homura("record", "-p", t.pid, "-d", 1, "-o", tmp_path / "x.txt", timeout=20)
    line = assert_one_error_line(r)
    assert "python" in line.lower(), line


def test_launch_not_python(tmp_path):
    r = homura("record", "-d", 2, "-o", tmp_path / "x.txt", "--", "sleep", "3", timeout=20)
    line = assert_one_error_line(r)
    assert "python" in line.lower(), line


def test_launch_missing_program(tmp_path):
    r = homura("record", "-d", 1, "-o", tmp_path / "x.txt", "--",
               "/nonexistent/python3", "x.py", timeout=20)
    line = assert_one_error_line(r)
    assert "/nonexistent/python3" in line, line


@pytest.mark.asan
def test_missing_permission(spawn, default_py, tmp_path):
    """An unprivileged user may not read a root process: the message says
    what is needed (root / CAP_SYS_PTRACE / kernel.yama.ptrace_scope)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start a target the test user cannot trace")
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("setpriv (util-linux) not installed")
    nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
              "--inh-caps=-all", "--bounding-set=-all"]
    if subprocess.run(nobody + ["test", "-x", HOMURA]).returncode != 0:
        pytest.skip("user nobody cannot run %s (a parent folder is private)" % HOMURA)
    t = spawn([default_py.path, program("busy.py"), 30])
    outdir = tempfile.mkdtemp(prefix="homura-perm-", dir="/tmp")
    os.chmod(outdir, 0o777)     # so only the ptrace permission can be missing
    cmd = nobody + [HOMURA, "record", "-p", str(t.pid), "-d", "1",
                    "-o", os.path.join(outdir, "p.txt")]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(outdir, ignore_errors=True)
    err = p.stderr.decode(errors="replace")
    lines = [l for l in err.splitlines() if l.strip()]
    assert p.returncode != 0 and len(lines) == 1 and lines[0].startswith("homura: "), err
    assert any(w in lines[0] for w in ("CAP_SYS_PTRACE", "ptrace_scope", "root")), lines[0]


@pytest.mark.parametrize("args", [["-f", "bogus"], ["-r", "0"], ["-r", "abc"], ["-d", "-1"]])
def test_bad_values(busy_target, tmp_path, args):
    r = homura("record", "-p", busy_target.pid, "-o", tmp_path / "x.txt", *args, timeout=20)
    line = assert_one_error_line(r)
    assert args[1] in line, "the message should quote the bad value: " + line


def test_unknown_option(busy_target, tmp_path):
    r = homura("record", "-p", busy_target.pid, "-o", tmp_path / "x.txt", "--no-such-option",
               timeout=20)
    assert r.rc != 0 and "--no-such-option" in r.stderr, r.describe()


def test_no_target(tmp_path):
    r = homura("record", "-d", 1, "-o", tmp_path / "x.txt", timeout=20)
    assert r.rc != 0 and "homura" in r.stderr, r.describe()


def test_unwritable_output(busy_target):
    """An output that cannot be written is refused before recording starts,
    not after the user has waited for the whole recording."""
    r = homura("record", "-p", busy_target.pid, "-d", 5, "-o", "/nonexistent/dir/p.svg",
               timeout=20)
    line = assert_one_error_line(r)
    assert "/nonexistent/dir/p.svg" in line, line
    assert r.elapsed < 2.5, "refused only after recording: " + r.describe()


@pytest.fixture
def busy_target(spawn, default_py):
    return spawn([default_py.path, program("busy.py"), 30])
