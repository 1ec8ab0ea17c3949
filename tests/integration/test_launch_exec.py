"""`homura record -- sh -c 'exec python prog'`: a launched wrapper that execs
Python, started many times in a row. Attaching may land in the wrapper's exec
(maps of the old image, memory of the new one, or no maps for an instant);
every run must still record the program (tests/unit/test_target_exec.c
provokes that race directly)."""
import shlex

from conftest import program, record

RUNS = 15


def test_launch_through_exec_wrapper(default_py, tmp_path):
    src = program("busy.py")
    cmd = "exec %s %s 1" % (shlex.quote(default_py.path), shlex.quote(src))
    for i in range(RUNS):
        out = tmp_path / ("wrapped%d.txt" % i)
        r = record("-d", 0.3, "-f", "collapsed", "--", "sh", "-c", cmd, output=out)
        p = r.profile()
        assert p.count_fn("busy_work") > 0, "run %d:\n%s\n%s" % (i, p.summary(), r.stderr)
