"""`homura record -s`: child processes (multiprocessing pools with fork and
spawn, subprocess.run of a Python script, a gunicorn pre-fork server) are
followed and each one's stacks sit under a "process PID: program" root
frame."""
import os
import re
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import free_port, program, record


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
    # Wall-clock (-i): on a loaded machine the workers get a CPU for only
    # part of their 1.2 s.
    r = record("-s", "-i", "-r", 200, "-d", 20, "--", py.path, program("subprocs.py"), 1.2,
               method, output=out, timeout=60)
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
    # Each worker ran pool_work ~1.2 s at 200 Hz: sampled over and over
    # (fewer than the 240 rounds when a loaded machine delays the sampler).
    for pid in workers:
        n = sum(c for s, c in procs[pid] if any(f.name == "pool_work" for f in s))
        assert n >= 20, "worker %d: only %d samples in pool_work" % (pid, n)


def test_without_flag_only_root(default_py, tmp_path):
    out = tmp_path / "nosub.txt"
    r = record("-r", 200, "-d", 20, "--", default_py.path, program("subprocs.py"), 0.8, "fork",
               output=out, timeout=60)
    prof = r.profile()
    assert not any(f.name in ("pool_work", "child_main") for s, _ in prof.stacks for f in s)
    assert not any(s[0].text.startswith("process ") for s, _ in prof.stacks)


def _load(port, seconds):
    """Send requests to 127.0.0.1:port, two at a time, for `seconds`."""
    def worker():
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5).read()
            except OSError:
                time.sleep(0.05)
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    return threads


def _server_argv(kind, port):
    """argv of a pre-fork WSGI server with two workers, or None if absent."""
    here = os.path.dirname(program("wsgi_app.py"))
    if kind == "gunicorn":
        py = "/usr/bin/python3"
        if not os.path.exists(py) or subprocess.run(
                [py, "-c", "import gunicorn"], stderr=subprocess.DEVNULL).returncode:
            return None
        return [py, "-m", "gunicorn", "-w", "2", "--chdir", here,
                "-b", "127.0.0.1:%d" % port, "wsgi_app:app"]
    uwsgi = "/usr/bin/uwsgi"
    if not os.path.exists(uwsgi) or not os.path.exists("/usr/lib/uwsgi/plugins/python3_plugin.so"):
        return None
    return [uwsgi, "--plugin", "python3", "--http-socket", "127.0.0.1:%d" % port, "--master",
            "--processes", "2", "--chdir", here, "--wsgi-file", os.path.join(here, "wsgi_app.py"),
            "--callable", "app", "--disable-logging"]


@pytest.mark.parametrize("kind", ["gunicorn", "uwsgi"])
def test_prefork_server_workers(spawn, tmp_path, kind):
    """A pre-fork server in production shape: `record -s -p MASTER` attached
    to gunicorn (Debian's python3-gunicorn on Debian's static Python) or uwsgi
    (Debian's uwsgi, Python embedded through libpython3.11) finds the workers
    forked earlier and records their request handling, each under its own
    process root; the master itself only waits."""
    port = free_port()
    argv = _server_argv(kind, port)
    if argv is None:
        pytest.skip("%s is not installed" % kind)
    server = spawn(argv, wait_ready=False)
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2).read()
            break
        except OSError:
            assert time.monotonic() < deadline, "%s did not start" % kind
            time.sleep(0.2)
    load = _load(port, 5)
    try:
        r = record("-s", "-r", 200, "-d", 3, "-p", server.pid,
                   output=tmp_path / "server.txt", timeout=60)
    finally:
        for t in load:
            t.join()
    procs = by_process(r.profile())
    busy = {pid: sum(c for s, c in stacks if any(f.name == "burn_cpu" for f in s))
            for pid, stacks in procs.items()}
    workers = [pid for pid, n in busy.items() if n > 0]
    assert server.pid not in workers, busy
    assert len(workers) == 2, "want both workers' burn_cpu, got %s\n%s" % (
        busy, r.profile().summary())
    assert all(f.name != "burn_cpu" for s, _ in procs.get(server.pid, []) for f in s)
