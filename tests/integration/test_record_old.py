"""Old interpreters (2.7, 3.6, 3.7), which homura supports only where cheap.
What homura does on each is pinned in EXPECTED (checked against pyenv
2.7.18, 3.6.15 and 3.7.16: all three are profiled, by attaching and by
launching): a version that starts being refused, or one that starts being
profiled, fails the test until EXPECTED and the README's version table say
so.  A refusal must be one clear line that names the version."""
import pytest

from conftest import assert_one_error_line, def_line, homura, program

PROFILES, REFUSES = "profiles", "refuses"
EXPECTED = {"2.7": PROFILES, "3.6": PROFILES, "3.7": PROFILES}


def expected(old_py):
    if old_py.id not in EXPECTED:
        pytest.fail("no expected outcome pinned for Python %s" % old_py.id)
    return EXPECTED[old_py.id]


def assert_busy_frames(r, old_py, share):
    """The profile shows busy_work at its own file and lines, in at least
    `share` of the samples, and the summary names the interpreter."""
    assert r.rc == 0, "Python %s should be profiled: %s" % (old_py.id, r.describe())
    assert "(Python %s)" % old_py.id in r.stderr, r.stderr
    p = r.profile()
    src = program("busy.py")
    # The def line too: a frame just entered (no instruction run yet) is
    # at its first line.
    body = range(def_line(src, "busy_work"), def_line(src, "busy_work") + 5)
    hits = {f for fr, _ in p.stacks for f in fr if f.name == "busy_work"}
    assert hits and p.count_fn("busy_work") >= share * p.total > 0, p.summary()
    for f in hits:
        assert f.file == src and f.line in body, "bad frame %r (want %s:%s)" % (f.text, src, body)
    return p


def assert_refused(r, old_py):
    line = assert_one_error_line(r)
    assert old_py.id in line, "refusal should name Python %s: %s" % (old_py.id, line)


def test_old_version_attach(old_py, spawn, tmp_path):
    t = spawn([old_py.path, program("busy.py"), 20])
    out = tmp_path / "old.txt"
    r = homura("record", "-p", t.pid, "-d", 1, "-o", out, output=out)
    if expected(old_py) == REFUSES:
        assert_refused(r, old_py)
    else:
        assert_busy_frames(r, old_py, 0.8)


def test_old_version_launch(old_py, tmp_path):
    """Launch mode: the target runs to its end (1 s) under the sampler."""
    out = tmp_path / "old.txt"
    r = homura("record", "-d", 20, "-o", out, "--", old_py.path, program("busy.py"), 1,
               output=out)
    if expected(old_py) == REFUSES:
        assert_refused(r, old_py)
    else:
        assert_busy_frames(r, old_py, 0.5)
        assert "the target exited" in r.stderr, r.stderr
