"""Files homura creates are never created through a symbolic link (or a
FIFO) that someone planted: the agent's --dir files and its spool, `record`'s
output, its writability check and --stats-json, `convert` and `diff` outputs.
A planted link's target must be left untouched; an output path that is a
link, a FIFO or a device is refused with one error line (`-o -` still writes
to stdout)."""
import os
import signal
import subprocess
import time

import pytest

from conftest import HOMURA, SANITIZER_RE, assert_one_error_line, homura, program

PRECIOUS = b"precious, not to be overwritten\n"


@pytest.fixture
def victim(tmp_path):
    v = tmp_path / "victim.txt"
    v.write_bytes(PRECIOUS)
    return v


def stopped(argv):
    """Start argv stopped (SIGSTOP before exec), so that its pid, which the
    old temporary names were made of, is known before it runs."""
    p = subprocess.Popen(["sh", "-c", 'kill -STOP $$; exec "$@"', "sh"] + [str(a) for a in argv],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:   # wait until it has stopped itself
        with open("/proc/%d/stat" % p.pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return p
        time.sleep(0.01)
    p.kill()
    raise AssertionError("the wrapper did not stop")


def finish(p, timeout=30):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("hung: " + err.decode(errors="replace"))
    err = err.decode(errors="replace")
    assert not SANITIZER_RE.search(err), "sanitizer report:\n" + err
    return p.returncode, out, err


def test_agent_dir_ignores_planted_links(spawn, default_py, tmp_path, victim):
    t = spawn([default_py.path, program("busy.py"), 20])
    out = tmp_path / "out"
    out.mkdir()
    p = stopped([HOMURA, "agent", "-p", t.pid, "--interval", 0.3, "--dir", out,
                 "--dir-format", "collapsed"])
    # the name the exporter used for its temporary file, and a dangling link
    (out / (".tmp-homura-%d" % p.pid)).symlink_to(victim)
    (out / "homura-dangling").symlink_to(tmp_path / "created-through-link")
    os.kill(p.pid, signal.SIGCONT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and \
            len([n for n in os.listdir(out) if n.startswith("homura-busy-")]) < 3:
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    rc, _, err = finish(p)
    assert rc == 0, err
    assert victim.read_bytes() == PRECIOUS
    assert not (tmp_path / "created-through-link").exists()
    mine = [n for n in os.listdir(out) if n.startswith("homura-busy-")]
    assert len(mine) >= 3, (os.listdir(out), err)
    for n in mine:
        assert not os.path.islink(out / n) and "busy_work" in (out / n).read_text()
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-homura.")]   # cleaned up


def test_record_check_does_not_follow_planted_link(spawn, default_py, tmp_path, victim):
    t = spawn([default_py.path, program("busy.py"), 20])
    out = tmp_path / "prof.txt"
    p = stopped([HOMURA, "record", "-p", t.pid, "-d", 0.5, "-o", out])
    (tmp_path / ("prof.txt.tmp.%d" % p.pid)).symlink_to(victim)
    os.kill(p.pid, signal.SIGCONT)
    rc, _, err = finish(p)
    assert rc == 0, err
    assert victim.read_bytes() == PRECIOUS
    assert "busy_work" in out.read_text()
    assert not os.path.islink(out)


@pytest.mark.asan
def test_outputs_refuse_links_fifos_and_devices(spawn, default_py, tmp_path, victim):
    t = spawn([default_py.path, program("busy.py"), 20])
    link = tmp_path / "link.txt"
    link.symlink_to(victim)
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    for target, what in [(link, "symbolic link"), (fifo, "FIFO"), ("/dev/zero", "device")]:
        r = homura("record", "-p", t.pid, "-d", 0.3, "-o", target, timeout=30)
        line = assert_one_error_line(r)
        assert str(target) in line and what in line, line
        r = homura("record", "-p", t.pid, "-d", 0.3, "-o", tmp_path / "ok.txt",
                   "--stats-json", target, timeout=30)
        assert r.rc != 0 and what in r.stderr, r.stderr
    assert victim.read_bytes() == PRECIOUS
    assert not os.path.exists(tmp_path / "ok.txt")   # refused before recording

    # stdout still works, and /dev/null is written in place
    r = homura("record", "-p", t.pid, "-d", 0.3, "-f", "collapsed", "-o", "-", timeout=30)
    assert r.rc == 0 and "busy_work" in r.stdout, r.stderr
    r = homura("record", "-p", t.pid, "-d", 0.3, "-f", "collapsed", "-o", "/dev/null", timeout=30)
    assert r.rc == 0, r.stderr

    prof = tmp_path / "ok.txt"
    r = homura("record", "-p", t.pid, "-d", 0.3, "-o", prof, timeout=30)
    assert r.rc == 0 and "busy_work" in prof.read_text(), r.stderr
    for target, what in [(link, "symbolic link"), (fifo, "FIFO")]:
        r = homura("convert", prof, "-f", "collapsed", "-o", target, timeout=30)
        line = assert_one_error_line(r)
        assert what in line, line
        r = homura("diff", prof, prof, "-f", "collapsed", "-o", target, timeout=30)
        line = assert_one_error_line(r)
        assert what in line, line
    assert victim.read_bytes() == PRECIOUS
    # a regular file is replaced (not written through a hard link's inode)
    other = tmp_path / "other.txt"
    other.write_bytes(PRECIOUS)
    hard = tmp_path / "hard.txt"
    os.link(other, hard)
    r = homura("convert", prof, "-f", "collapsed", "-o", hard, timeout=30)
    assert r.rc == 0, r.stderr
    assert other.read_bytes() == PRECIOUS and "busy_work" in hard.read_text()
