"""Old interpreters (2.7, 3.6, 3.7), which homura supports only where cheap.
For each: either the profile is right, or homura refuses with one clear line
that names the version.  Both pass; which one happened is in the test id's
output (`pytest -rA` shows it) and in the README's version table."""
from conftest import assert_one_error_line, def_line, homura, program


def test_old_version_profiles_or_refuses(old_py, spawn, tmp_path):
    t = spawn([old_py.path, program("busy.py"), 20])
    out = tmp_path / "old.txt"
    r = homura("record", "-p", t.pid, "-d", 1, "-o", out, output=out)
    if r.rc != 0:
        line = assert_one_error_line(r)
        assert old_py.id in line, "refusal should name Python %s: %s" % (old_py.id, line)
        print("Python %s refused: %s" % (old_py.id, line))
        return
    p = r.profile()
    src = program("busy.py")
    body = range(def_line(src, "busy_work") + 1, def_line(src, "busy_work") + 5)
    hits = {f for fr, _ in p.stacks for f in fr if f.name == "busy_work"}
    assert p.count_fn("busy_work") >= 0.8 * p.total > 0, p.summary()
    for f in hits:
        assert f.file == src and f.line in body, "bad frame %r (want %s:%s)" % (f.text, src, body)
    print("Python %s supported: %d samples" % (old_py.id, p.total))


def test_old_version_launch(old_py, tmp_path):
    """Launch mode on an old interpreter ends cleanly either way."""
    out = tmp_path / "old.txt"
    r = homura("record", "-d", 5, "-o", out, "--", old_py.path, program("busy.py"), 1,
               output=out)
    if r.rc != 0:
        assert_one_error_line(r)
    else:
        assert r.profile().count_fn("busy_work") > 0
