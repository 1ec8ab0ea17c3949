"""`homura record -s`: child processes (multiprocessing pools with fork and
spawn, subprocess.run of a Python script) are followed and each one's stacks
sit under a "process PID: program" root frame."""
import re

import pytest

from conftest import program, record


def by_process(prof):
    """{pid: [stack lines]} from the root "process PID: ..." frames."""
    out = {}
    for stack, count in prof.stacks:
        m = re.match(r"process (\d+): ", stack[0].text)
        assert m, "stack without a process root frame: %r" % (stack[0].text,)
        out.setdefault(int(m.group(1)), []).append((stack, count))
    return out


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_and_subprocess(py, tmp_path, method):
    if method == "spawn" and py.id not in ("3.8", "3.12", "3.13"):
        pytest.skip("spawn is checked on 3.8, 3.12 and 3.13 only, to keep the suite short")
    out = tmp_path / "sub.txt"
    r = record("-s", "-r", 200, "-d", 20, "--", py.path, program("subprocs.py"), 1.2, method,
               output=out, timeout=60)
    prof = r.profile()
    procs = by_process(prof)
    root = int(r.stderr.split("sampling process ")[1].split()[0])
    workers = [pid for pid, stacks in procs.items()
               if any(f.name == "pool_work" for s, _ in stacks for f in s)]
    children = [pid for pid, stacks in procs.items()
                if any(f.name == "child_main" for s, _ in stacks for f in s)]
    assert len(workers) == 2, "want both pool workers, got %s\n%s" % (workers, prof.summary())
    assert root not in workers
    assert len(children) == 1 and children[0] not in workers and children[0] != root
    # Each worker ran pool_work ~1.2 s at 200 Hz: plenty of samples each.
    for pid in workers:
        n = sum(c for s, c in procs[pid] if any(f.name == "pool_work" for f in s))
        assert n >= 60, "worker %d: only %d samples in pool_work" % (pid, n)


def test_without_flag_only_root(default_py, tmp_path):
    out = tmp_path / "nosub.txt"
    r = record("-r", 200, "-d", 20, "--", default_py.path, program("subprocs.py"), 0.8, "fork",
               output=out, timeout=60)
    prof = r.profile()
    assert not any(f.name in ("pool_work", "child_main") for s, _ in prof.stacks for f in s)
    assert not any(s[0].text.startswith("process ") for s, _ in prof.stacks)
