"""`homura run`: CPU time per line of real Python programs, split between
Python, native code and the kernel, checked against what the programs
measure of themselves (getrusage / thread_time); threads; the program's
output and exit status untouched; -m; attaching; the JSON shape; the HTML
report (self-contained, escaped); bad input."""
import glob
import html.parser
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import (HOMURA, STATIC_PY, Interp, assert_one_error_line, homura, marker_line,
                      program)

SPLIT = program("run_split.py")
THREADS = program("run_threads.py")
KEYS = {"program", "python", "elapsed_s", "cpu_samples", "alloc_samples", "available",
        "files", "functions", "leaks"}
LINE_KEYS = {"line", "source", "cpu_python", "cpu_native", "cpu_system", "alloc_mb",
             "python_alloc_share", "peak_mb", "copy_mb_s", "gpu_util", "gpu_mem_mb", "leak"}


def run_json(tmp_path, *args, timeout=90, cwd=None, env=None):
    out = tmp_path / "report.json"
    argv = [HOMURA, "run", "--json", str(out)] + [str(a) for a in args]
    p = subprocess.run(argv, capture_output=True, timeout=timeout, cwd=cwd,
                       env=dict(os.environ, **(env or {})), stdin=subprocess.DEVNULL)
    stderr = p.stderr.decode(errors="replace")
    assert "Sanitizer" not in stderr and "runtime error:" not in stderr, stderr
    rep = json.loads(out.read_text()) if out.exists() else None
    return p, rep, stderr


def line_of(rep, path, n):
    for f in rep["files"]:
        if f["path"] == path or os.path.realpath(f["path"]) == os.path.realpath(path):
            for l in f["lines"]:
                if l["line"] == n:
                    return l
    raise AssertionError("no line %s:%d in the report: %s" % (path, n, json.dumps(rep)[:3000]))


def cpu(l):
    return l["cpu_python"] + l["cpu_native"] + l["cpu_system"]


def split_interpreters():
    from conftest import _pyenv_interpreters
    found = _pyenv_interpreters()
    params = []
    for ver in [(3, 12), (3, 11), (3, 13), (3, 10)]:
        if ver in found:
            params.append(pytest.param(found[ver], id=found[ver].id))
            break
    if os.path.exists(STATIC_PY):
        params.append(pytest.param(Interp("3.11-static", STATIC_PY, (3, 11)), id="3.11-static"))
    return params or [pytest.param(None, marks=pytest.mark.skip(reason="no Python installed"))]


@pytest.mark.parametrize("interp", split_interpreters())
def test_cpu_split_matches_truth(tmp_path, interp):
    """Each line's share of the CPU time and its Python / native / system
    split within 5 percentage points of what the program measured itself
    (its own user and system time per line, getrusage RUSAGE_THREAD): the
    pure-Python line is Python, the zlib line native, the /dev/zero line
    system. 3000 samples a second of CPU time, about 5000 in all (the
    work at scale 2: 1.6-1.9 s of CPU on this AMD EPYC, 0.8-0.9 s at scale
    1, where a fixed floor of 3000 samples failed): 5 points is more than
    seven standard errors, so this does not fail by chance; the program
    runs each line in a fresh thread so that the kernel's own user/system
    split of it is not blurred by the lines before."""
    truth_file = tmp_path / "truth.json"
    p, rep, err = run_json(tmp_path, "--cpu", "--rate", "3000", "--", interp.path, SPLIT,
                           truth_file, "2")
    assert p.returncode == 0, err
    truth = json.loads(truth_file.read_text())
    total = sum(truth["process"])
    assert rep["available"]["cpu"] is True
    # a sample per 1/3000 s of the program's CPU time (its rusage)
    assert 0.8 * 3000 * total < rep["cpu_samples"] < 1.2 * 3000 * total, (truth, err)
    assert rep["cpu_samples"] > 3000, err
    for kind in ("python", "native", "system"):
        l = line_of(rep, SPLIT, marker_line(SPLIT, "# LINE " + kind))
        user, sys_ = truth[kind]
        want_share = 100 * (user + sys_) / total
        assert abs(cpu(l) - want_share) < 5, (kind, l, truth, err)
        assert abs(l["cpu_system"] - 100 * sys_ / total) < 5, (kind, l, truth, err)
        # user time is all Python on the loop line, all native on the zlib line
        if kind == "python":
            assert abs(l["cpu_python"] - 100 * user / total) < 5, (kind, l, truth, err)
            assert l["cpu_native"] < 5, (kind, l, truth)
        if kind == "native":
            assert abs(l["cpu_native"] - 100 * user / total) < 5, (kind, l, truth, err)
            assert l["cpu_python"] < 5, (kind, l, truth)
        if kind == "system":
            assert l["cpu_python"] + l["cpu_native"] < 5, (kind, l, truth)


def test_threads_all_measured(tmp_path, default_py):
    """Both worker threads' lines get their share (the main thread only
    waits): within 5 points of the threads' own thread_time."""
    truth_file = tmp_path / "truth.json"
    p, rep, err = run_json(tmp_path, "--cpu", "--", default_py.path, THREADS, truth_file)
    assert p.returncode == 0, err
    truth = json.loads(truth_file.read_text())
    for k in ("a", "b"):
        l = line_of(rep, THREADS, marker_line(THREADS, "# LINE " + k))
        want = 100 * truth[k] / truth["process"]
        assert abs(cpu(l) - want) < 5, (k, l, truth, err)
        assert l["cpu_python"] > 0.8 * cpu(l), (k, l)


def test_child_processes_measured(tmp_path, default_py):
    """multiprocessing workers, forked and spawned: their lines get their
    CPU time. A forked worker's first milliseconds, before homura has found
    its interpreter, count outside the lines, hence the looser bound."""
    procs = program("run_procs.py")
    truth_file = tmp_path / "truth.json"
    p, rep, err = run_json(tmp_path, "--cpu", "--", default_py.path, procs, truth_file)
    assert p.returncode == 0, err
    truth = json.loads(truth_file.read_text())
    assert "child processes:" in err, err
    for k in ("fork", "spawn"):
        l = line_of(rep, procs, marker_line(procs, "# LINE " + k))
        want = 100 * truth[k] / truth["tree"]
        assert 0.5 * want < cpu(l) < want + 5, (k, l, truth, err)


def test_many_short_children_attached(tmp_path, default_py):
    """20 workers from os.fork() (two at a time) and 20 tasks of a forked
    pool of 4, each a pure-Python loop of about 40 ms: homura attaches to every child as
    its first samples arrive (the parsed interpreter is cached, so an
    attach costs little), and the workers' CPU time is on their line and
    Python. Before, each attach re-read libpython's symbols, children
    ended first and their samples counted as native (39% native, the
    line at half its share). Wide margins: the line gets at least half
    of the workers' own measured share, at least 80% of it is Python, and
    the program's native share stays under 10% (pure Python has next to
    none); samples of a child that ended before it was attached are
    counted apart, never as native."""
    prog = program("run_many_kids.py")
    truth_file = tmp_path / "truth.json"
    p, rep, err = run_json(tmp_path, "--cpu", "--", default_py.path, prog, truth_file)
    assert p.returncode == 0, err
    truth = json.loads(truth_file.read_text())
    assert truth["forked"] == 20 and truth["pooled"] == 20, truth
    assert "child processes:" in err, err
    l = line_of(rep, prog, marker_line(prog, "# LINE worker"))
    want = 100 * truth["worker"] / truth["tree"]
    assert 0.5 * want < cpu(l) < want + 10, (l, truth, rep["cpu_total"], err)
    assert l["cpu_python"] > 0.8 * cpu(l), (l, err)
    tot = rep["cpu_total"]
    assert tot["native"] < 10, (tot, err)
    assert tot["unattributed_samples"] < 0.3 * rep["cpu_samples"], (tot, rep["cpu_samples"], err)


def test_every_interpreter(tmp_path, py):
    """Lines and the JSON shape on every supported interpreter; two threads
    one after the other (the second reuses the first one's pthread and,
    often, its thread state: its own tid must still be found)."""
    prog = tmp_path / "hot.py"
    prog.write_text("import threading\n"
                    "def work(n):\n"
                    "    return sum(i * i for i in range(n))  # HOT\n"
                    "def other(n):\n"
                    "    return sum(i * 3 for i in range(n))  # OTHER\n"
                    "for f in (work, other):\n"
                    "    t = threading.Thread(target=lambda: [f(50000) for _ in range(20)])\n"
                    "    t.start()\n"
                    "    t.join()\n"
                    "print('done')\n")
    p, rep, err = run_json(tmp_path, "--cpu", "--", py.path, prog)
    assert p.returncode == 0, err
    assert p.stdout == b"done\n"
    assert set(rep) >= KEYS
    # each thread on its own line, on every version (the first thread used
    # to be missed now and then: see test_first_thread_counted_from_its_start).
    # Measured 18-23% each (start-up takes most of the rest); a fresh-clone
    # CI run gave 14.9 on a loaded machine; a missed thread gives 0.
    hot = line_of(rep, str(prog), 3)
    assert hot["cpu_python"] > 8, (hot, err)
    other = line_of(rep, str(prog), 5)
    assert other["cpu_python"] > 8, (other, err)
    assert set(hot) >= LINE_KEYS
    assert hot["source"].strip().startswith("return sum(")
    # memory and GPU were not asked for: null, never 0
    assert hot["alloc_mb"] is None and hot["gpu_util"] is None and hot["peak_mb"] is None
    assert rep["alloc_samples"] is None
    assert rep["available"] == {"cpu": True, "memory": False, "gpu": False}
    assert rep["python"].startswith("%d.%d" % py.version)
    funcs = {f["function"] for f in rep["functions"]}
    assert "work" in funcs or any(f.endswith("<genexpr>") for f in funcs), funcs


def test_first_thread_counted_from_its_start(tmp_path, default_py):
    """A thread that runs and ends early is counted. The kernel's events
    used to be opened on the program once it was running; after a second
    with no perf event on the machine the kernel switches its perf hooks
    off, and then the events of a thread already on a CPU stayed silent for
    tens of milliseconds: the first thread of a program running one thread
    after another was missed entirely in 3 of 8 such runs (all the
    time went to the second thread's line). They are now opened while the
    program waits before its exec. Each run here follows a pause long
    enough for the kernel to switch its hooks off (unless something else
    on the machine uses perf events). Each thread's share of the two lines
    is checked against its own CPU time (the program measures it with
    time.thread_time): the two threads do the same work, but on a busy
    machine one can take twice the CPU time of the other."""
    prog = tmp_path / "seq.py"
    prog.write_text("import sys, threading, time\n"
                    "def work(n):\n"
                    "    return sum(i * i for i in range(n))  # FIRST\n"
                    "def other(n):\n"
                    "    return sum(i * 3 for i in range(n))  # SECOND\n"
                    "took = []\n"
                    "def run(f):\n"
                    "    t0 = time.thread_time()\n"
                    "    for _ in range(6): f(50000)\n"
                    "    took.append(time.thread_time() - t0)\n"
                    "for f in (work, other):\n"
                    "    t = threading.Thread(target=run, args=(f,))\n"
                    "    t.start()\n"
                    "    t.join()\n"
                    "sys.stderr.write('TOOK %.6f %.6f\\n' % tuple(took))\n")
    for _ in range(5):
        time.sleep(1.1)
        # -S: no site imports, so the first thread starts within a few ms;
        # 4000 Hz: about 100 samples in the two lines (each thread runs
        # for about 15 ms)
        p, rep, err = run_json(tmp_path, "--cpu", "-n", "0", "-r", "4000", "--",
                               default_py.path, "-S", prog)
        assert p.returncode == 0, err
        took = re.search(r"TOOK (\S+) (\S+)", err)
        assert took, err
        ta, tb = float(took.group(1)), float(took.group(2))
        first = line_of(rep, str(prog), 3)
        second = line_of(rep, str(prog), 5)
        a, b = cpu(first), cpu(second)
        # the bug gave the first line 0 and the second all; each share of
        # the two lines is at least 0.6 of the thread's share of their CPU
        # time (4 standard deviations of ~100 samples below it)
        assert a >= 0.6 * (a + b) * ta / (ta + tb), (first, second, ta, tb, err)
        assert b >= 0.6 * (a + b) * tb / (ta + tb), (first, second, ta, tb, err)


def test_short_bursts_between_sleeps_go_to_their_line(tmp_path, default_py):
    """A loop that computes for ~0.8 ms and sleeps 2 ms: homura's walks
    used to see the thread asleep at both ends of every burst, and the
    sleep line got most of the CPU (50-60% of the program against a truth
    of ~10%, the loop line 32-48% against ~88%, quiet machine). Now, while
    the program runs in bursts, homura walks as a sample arrives (woken by
    the kernel, at the lowest real-time priority so that it need not wait
    for the program to block): the walk just after the sample is the
    nearer one (measured: loop 70-80%, sleep 15-21%). Bursts shorter than
    homura's wake-up (~0.2 ms) are still put on the sleep (docs/run.md)."""
    prog = tmp_path / "sleepy.py"
    prog.write_text("import time\n"
                    "def main():\n"
                    "    for i in range(250):\n"
                    "        x = sum(range(100000))  # LOOP\n"
                    "        time.sleep(0.002)  # SLEEP\n"
                    "main()\n")
    p, rep, err = run_json(tmp_path, "--cpu", "-n", "0", "--", default_py.path, prog)
    assert p.returncode == 0, err
    loop = cpu(line_of(rep, str(prog), 4))
    lines = {l["line"]: cpu(l) for f in rep["files"] for l in f["lines"]}
    sleep = lines.get(5, 0)
    # the loop line has most of the program's CPU (start-up is the rest)
    assert loop > 50, (lines, err)
    assert sleep < loop / 2, (lines, err)


def test_exit_status_and_output_untouched(tmp_path, default_py):
    prog = tmp_path / "fail.py"
    prog.write_text("import sys\n"
                    "print('to stdout')\n"
                    "print('to stderr', file=sys.stderr)\n"
                    "x = sum(range(300000))\n"
                    "sys.exit(7)\n")
    p, rep, err = run_json(tmp_path, "--", default_py.path, prog)
    assert p.returncode == 7, err
    assert p.stdout == b"to stdout\n"
    assert err.startswith("to stderr\n"), err
    assert rep["available"]["cpu"] is True
    # the program's own status even when a signal ends it
    prog2 = tmp_path / "killed.py"
    prog2.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    p2 = subprocess.run([HOMURA, "run", "--cpu", "--", default_py.path, str(prog2)],
                        capture_output=True, timeout=60)
    assert p2.returncode == -signal.SIGTERM, p2.stderr


def test_sigterm_passed_on(tmp_path, default_py):
    """SIGTERM sent to homura reaches the program, whose handler decides
    the exit status; the report is still written."""
    prog = tmp_path / "term.py"
    prog.write_text("import signal, sys, time\n"
                    "def bye(*a):\n"
                    "    print('got TERM', flush=True)\n"
                    "    sys.exit(5)\n"
                    "signal.signal(signal.SIGTERM, bye)\n"
                    "print('ready', flush=True)\n"
                    "while True:\n"
                    "    time.sleep(0.05)\n")
    out = tmp_path / "r.json"
    h = subprocess.Popen([HOMURA, "run", "--cpu", "--json", str(out), "--", default_py.path,
                          str(prog)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    try:
        assert h.stdout.readline() == b"ready\n"
        h.send_signal(signal.SIGTERM)
        rest, err = h.communicate(timeout=60)
    finally:
        if h.poll() is None:
            h.kill()
            h.wait()
    assert h.returncode == 5, err
    assert rest == b"got TERM\n"
    assert json.loads(out.read_text())["available"]["cpu"] is True


def test_module_and_script_shorthand(tmp_path, default_py):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text("import sys\n"
                                     "t = sum(i % 3 for i in range(2_000_000))  # HOT\n"
                                     "print(sys.argv[1:])\n")
    p, rep, err = run_json(tmp_path, "--cpu", "--", default_py.path, "-m", "mypkg", "x", "y",
                           cwd=tmp_path)
    assert p.returncode == 0, err
    assert p.stdout == b"['x', 'y']\n"
    paths = [f["path"] for f in rep["files"]]
    main = [f for f in rep["files"] if f["path"].endswith("mypkg/__main__.py")]
    assert main, paths
    hot = [l for l in main[0]["lines"] if l["line"] == 2]
    assert hot and cpu(hot[0]) > 30, (hot, err)


def test_library_lines_folded(tmp_path, default_py):
    """Time in the standard library is charged to the program's calling
    line; --profile-all shows the library's own lines."""
    prog = tmp_path / "lib.py"
    prog.write_text("import json\n"
                    "data = [{'k': i, 'v': [i] * 5} for i in range(20000)]\n"
                    "for _ in range(15):\n"
                    "    s = json.dumps(data, indent=1)  # CALL\n")
    p, rep, err = run_json(tmp_path, "--cpu", "--", default_py.path, prog)
    assert p.returncode == 0, err
    assert all("/lib/python" not in f["path"] for f in rep["files"]), [f["path"] for f in rep["files"]]
    call = line_of(rep, str(prog), 4)
    assert cpu(call) > 40, (call, err)
    p, rep, err = run_json(tmp_path, "--cpu", "--profile-all", "--", default_py.path, prog)
    assert p.returncode == 0, err
    assert any("json" in f["path"] and "/lib/python" in f["path"] for f in rep["files"]), \
        [f["path"] for f in rep["files"]]


def test_attach(tmp_path, default_py):
    """-p PID: CPU lines from outside, and one line saying why memory is not."""
    target = subprocess.Popen([default_py.path, program("busy.py"), "30"],
                              stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert target.stdout.readline().startswith(b"ready")
        p, rep, err = run_json(tmp_path, "-p", target.pid, "-d", "1.5")
        assert p.returncode == 0, err
        assert target.poll() is None, "the target must keep running"
    finally:
        target.kill()
        target.wait()
    assert rep["available"]["cpu"] is True and rep["available"]["memory"] is False
    assert "attaching" in rep["not_available"]["memory"]
    assert "memory: not available (not when attaching" in err
    busy = program("busy.py")
    loop = [l for f in rep["files"] if f["path"] == busy for l in f["lines"]]
    assert sum(cpu(l) for l in loop) > 50, (loop, err)
    assert rep["cpu_samples"] > 100


def schedstat_ns(pid):
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def test_attach_threads(tmp_path, default_py):
    """Attaching to a process whose three threads already run: every
    thread's CPU time is sampled (the samples at 1000 Hz against the
    kernel's own count of the threads' CPU time over a window that holds
    homura's)."""
    target = subprocess.Popen([default_py.path, program("threads.py"), "30"],
                              stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert target.stdout.readline().startswith(b"ready")
        before = schedstat_ns(target.pid)
        p, rep, err = run_json(tmp_path, "--cpu", "-p", target.pid, "-d", "1.5")
        after = schedstat_ns(target.pid)
        assert p.returncode == 0, err
    finally:
        target.kill()
        target.wait()
    used_ms = (after - before) / 1e6
    assert 0.5 * used_ms < rep["cpu_samples"] < 1.1 * used_ms + 50, (rep["cpu_samples"], used_ms)
    spin = [l for f in rep["files"] if f["path"] == program("threads.py") for l in f["lines"]]
    assert sum(cpu(l) for l in spin) > 80, (spin, err)


def test_html_self_contained_and_escaped(tmp_path, default_py):
    prog = tmp_path / "we<i>rd&name.py"
    prog.write_text("s = '<script>alert(1)</script>'\n"
                    "t = sum(i * 2 for i in range(1_500_000))  # &amp; <b>\n")
    out = tmp_path / "r.html"
    r = homura("run", "-o", out, "--", default_py.path, prog, timeout=90)
    assert r.rc == 0, r.describe()
    text = out.read_text(encoding="utf-8")
    assert "<script>alert(1)" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "we&lt;i&gt;rd&amp;name.py" in text
    assert "# &amp;amp; &lt;b&gt;" in text
    # offline: nothing fetched
    for bad in ("<link", "<script src", "<img", "@import", "url("):
        assert bad not in text, bad

    class P(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.tables, self.errors = [], 0, []

        def handle_starttag(self, tag, attrs):
            if tag in ("meta", "br", "rect", "polyline"):
                return
            self.stack.append(tag)
            self.tables += tag == "table"
            for k, v in attrs:
                if k in ("src", "href"):
                    self.errors.append((tag, k, v))

        def handle_startendtag(self, tag, attrs):
            pass

        def handle_endtag(self, tag):
            if tag in ("meta", "br", "rect", "polyline"):
                return
            assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
            self.stack.pop()

    parser = P()
    parser.feed(text)
    parser.close()
    assert parser.stack == [] and parser.errors == []
    assert parser.tables >= 2
    assert "GPU: not available" in text or os.path.exists("/dev/nvidiactl")


def test_terminal_table_and_summary(tmp_path, default_py):
    r = homura("run", "--cpu", "--", default_py.path, SPLIT, tmp_path / "t.json", "0.3", timeout=90)
    assert r.rc == 0, r.describe()
    assert "zlib.compress" in r.stderr and "os.read" in r.stderr
    summary = [l for l in r.stderr.splitlines() if l.startswith("homura: ") and "CPU samples" in l]
    assert len(summary) == 1, r.stderr
    assert "memory: not available" in summary[0] and "GPU: not available" in summary[0]


@pytest.mark.skipif(not os.path.exists("/dev/nvidiactl") or not glob.glob("/usr/local/cuda*/lib64/libcudart.so*"),
                    reason="no NVIDIA GPU or no CUDA runtime here")
def test_gpu_real(tmp_path, default_py):
    """On a GPU machine: the line filling device memory gets the GPU's
    utilisation and at least the 1 GiB it holds."""
    prog = program("run_gpu.py")
    p, rep, err = run_json(tmp_path, "--cpu", "--gpu", "--", default_py.path, prog, "4")
    assert p.returncode == 0, err
    assert rep["available"]["gpu"] is True, err
    l = line_of(rep, prog, marker_line(prog, "# LINE gpu"))
    assert l["gpu_mem_mb"] is not None and l["gpu_mem_mb"] >= 1024, (l, err)
    assert l["gpu_util"] is not None and l["gpu_util"] > 0, (l, err)


def test_source_name_is_a_fifo(tmp_path, default_py):
    """A code object named after a FIFO: its lines are reported without
    source text, and homura does not block opening it."""
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    prog = tmp_path / "f.py"
    prog.write_text("exec(compile('t = sum(i for i in range(3_000_000))\\n', %r, 'exec'))\n"
                    % str(fifo))
    p, rep, err = run_json(tmp_path, "--cpu", "--", default_py.path, prog, timeout=60)
    assert p.returncode == 0, err
    lines = [l for f in rep["files"] if f["path"] == str(fifo) for l in f["lines"]]
    assert lines and all(l["source"] == "" for l in lines), rep["files"]


def test_bad_input(tmp_path, default_py):
    assert homura("run").rc == 2
    assert_one_error_line(homura("run", "--rate", "0", "--", default_py.path, "-c", "pass"))
    assert_one_error_line(homura("run", "-d", "5", "--", default_py.path, "-c", "pass"))
    assert_one_error_line(homura("run", "-p", "999999999"))
    assert_one_error_line(homura("run", "-p", "1", "--", "x"))
    line = assert_one_error_line(homura("run", "--cpu", "--", str(tmp_path / "nope")))
    assert "cannot start" in line
    os.symlink("/etc/hostname", tmp_path / "link.json")
    assert_one_error_line(homura("run", "--json", tmp_path / "link.json", "--", default_py.path,
                                 "-c", "pass"))


def test_memory_per_line_leak_and_heap_pprof(tmp_path, default_py):
    """The whole of `homura run` with memory: known allocation volumes per
    line, the planted leak listed and the churning line not, and --heap's
    three pprof profiles as `go tool pprof` reads them."""
    script = tmp_path / "mem.py"
    script.write_text(
        "import time\n"
        "keep = []\n"
        "def leak():\n"
        "    for i in range(40):\n"
        "        keep.append(bytearray(1 << 20))  # LEAK\n"
        "        time.sleep(0.02)\n"
        "def churn():\n"
        "    for i in range(300):\n"
        "        x = bytes(1 << 20)  # CHURN\n"
        "leak()\n"
        "churn()\n")
    heap = tmp_path / "heap"
    p, rep, err = run_json(tmp_path, "--heap", heap, "--", default_py.path, script)
    assert p.returncode == 0, err
    assert rep["available"]["memory"] is True, err
    leak_line = line_of(rep, str(script), marker_line(str(script), "# LEAK"))
    churn_line = line_of(rep, str(script), marker_line(str(script), "# CHURN"))
    assert abs(leak_line["alloc_mb"] - 40) <= 4, leak_line
    assert abs(churn_line["alloc_mb"] - 300) <= 30, churn_line
    assert leak_line["leak"] is not None, rep["leaks"]
    assert churn_line["leak"] is None, rep["leaks"]
    assert [(l["line"]) for l in rep["leaks"]] == [leak_line["line"]], rep["leaks"]
    for kind in ("alloc_space", "alloc_objects", "inuse_space"):
        assert (tmp_path / ("heap.%s.pb.gz" % kind)).exists(), err
    go = subprocess.run(["go", "version"], capture_output=True) if os.path.exists("/usr/bin/go") else None
    if not go or go.returncode:
        pytest.skip("go tool pprof is not installed (golang-go)")
    top = subprocess.run(["go", "tool", "pprof", "-top", "-unit=MB", str(tmp_path / "heap.alloc_space.pb.gz")],
                         capture_output=True, text=True, timeout=120)
    assert top.returncode == 0, top.stderr
    assert "Type: alloc_space" in top.stdout, top.stdout
    churn_mb = [float(l.split()[0].rstrip("MB")) for l in top.stdout.splitlines()
                if l.strip().endswith(" churn")]
    assert churn_mb and abs(churn_mb[0] - 300) <= 30, top.stdout
    inuse = subprocess.run(["go", "tool", "pprof", "-top", "-unit=MB", str(tmp_path / "heap.inuse_space.pb.gz")],
                           capture_output=True, text=True, timeout=120)
    assert "Type: inuse_space" in inuse.stdout, inuse.stdout
    leak_mb = [float(l.split()[0].rstrip("MB")) for l in inuse.stdout.splitlines()
               if l.strip().endswith(" leak")]
    assert leak_mb and abs(leak_mb[0] - 40) <= 6, inuse.stdout


PANDAS_PY = "/usr/bin/python3"


def has_pandas():
    return os.path.exists(PANDAS_PY) and subprocess.run(
        [PANDAS_PY, "-c", "import pandas, numpy"], capture_output=True).returncode == 0


@pytest.mark.skipif(not has_pandas(), reason="pandas is not importable by /usr/bin/python3 "
                    "(Debian's python3-pandas, scripts/install-deps.sh)")
def test_pandas_alloc_and_native_lines(tmp_path):
    """A pandas script: the line that builds DataFrames of known size is
    charged their bytes (numpy's native allocations, through pandas), the
    rank/groupby line is mostly native CPU, and the program's output and
    exit status are those of a bare run."""
    script = tmp_path / "pd_work.py"
    script.write_text(
        "import sys\n"
        "import numpy as np\n"
        "import pandas as pd\n"
        "rng = np.random.default_rng(7)\n"
        "N = 400_000\n"
        "frames = []\n"
        "for i in range(10):\n"
        "    frames.append(pd.DataFrame(rng.random((N, 5))))  # BUILD\n"
        "df = frames[-1]\n"
        "df['k'] = (df[0] * 1000).astype(np.int64)\n"
        "for _ in range(3):\n"
        "    out = df.rank().groupby('k').sum()  # COMPUTE\n"
        "print(len(out), len(frames), round(float(out[1].sum()), 3))\n"
        "sys.exit(3)\n")
    bare = subprocess.run([PANDAS_PY, str(script)], capture_output=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert bare.returncode == 3, bare.stderr
    p, rep, err = run_json(tmp_path, "--", PANDAS_PY, script, timeout=120)
    assert p.returncode == 3, err
    assert p.stdout == bare.stdout
    assert err.startswith(bare.stderr.decode(errors="replace")), err
    assert rep["available"]["cpu"] is True and rep["available"]["memory"] is True, err
    build = line_of(rep, str(script), marker_line(str(script), "# BUILD"))
    compute = line_of(rep, str(script), marker_line(str(script), "# COMPUTE"))
    # ten float64 frames of 400000 x 5: 160e6 bytes, reported in MiB; about
    # 1200 samples of 128 KiB on average, so 10% is more than 5 standard errors
    known_mb = 10 * 400_000 * 5 * 8 / (1 << 20)
    assert abs(build["alloc_mb"] - known_mb) <= 0.1 * known_mb, build
    assert build["python_alloc_share"] is not None and build["python_alloc_share"] < 0.2, build
    # rank() sorts each column in C: native CPU dominates the line (measured
    # 70-75% native against 5-15% Python + system) and the program
    assert compute["cpu_native"] > 30, (compute, err)
    assert compute["cpu_native"] > 2 * (compute["cpu_python"] + compute["cpu_system"]), compute
    assert all(cpu(l) <= cpu(compute) for f in rep["files"] for l in f["lines"]), err


# ---- found by trying `homura run` as a new user would ------------------------

def test_functions_merged_sorted_and_library_only_lines_hidden(tmp_path, default_py):
    """All measures: each function is one entry holding both its CPU and
    its memory (the memory side used to key functions by line 0, so every
    function came twice and the terminal's function table was empty), in
    order of CPU time; allocations with no frame of the program's own
    (imports at start-up) are no line, as for CPU, so no <frozen ...> or
    standard-library file shows up without --profile-all."""
    prog = tmp_path / "fn.py"
    prog.write_text("import json, decimal, fractions\n"
                    "def work():\n"
                    "    s = 0\n"
                    "    for i in range(1_500_000):\n"
                    "        s += i\n"
                    "    return s\n"
                    "def grab():\n"
                    "    return bytearray(30 << 20)\n"
                    "keep = grab()\n"
                    "work()\n")
    p, rep, err = run_json(tmp_path, "--", default_py.path, prog)
    assert p.returncode == 0, err
    assert rep["available"]["cpu"] and rep["available"]["memory"], err
    paths = [f["path"] for f in rep["files"]]
    assert paths == [str(prog)], paths
    mine = [f for f in rep["functions"] if f["path"] == str(prog)]
    names = [f["function"] for f in mine]
    assert len(names) == len(set(names)), mine
    work = [f for f in mine if f["function"] == "work"][0]
    assert work["line"] == 2 and work["cpu_python"] is not None and work["alloc_mb"] is not None, work
    grab = [f for f in mine if f["function"] == "grab"][0]
    assert grab["line"] == 7 and abs(grab["alloc_mb"] - 30) < 3, grab
    tot = [sum(f[k] or 0 for k in ("cpu_python", "cpu_native", "cpu_system"))
           for f in rep["functions"]]
    # Percentages are written with 6 significant digits, so two functions
    # with the same CPU can sum to 10.41666 and 10.416664: equal here.
    assert all(a >= b - 1e-4 for a, b in zip(tot, tot[1:])), rep["functions"]
    table = err.split("\nfunction ", 1)
    assert len(table) == 2 and "work (fn.py:2)" in table[1], err


def test_old_interpreters_say_why_no_memory(tmp_path, old_py):
    """2.7 and 3.6 lack what the allocation sampler needs (_PyRuntime): the
    summary says so in plain words, and CPU per line still works."""
    if old_py.version >= (3, 7):
        pytest.skip("3.7 has the allocation sampler")
    prog = tmp_path / "old.py"
    prog.write_text("s = 0\n"
                    "for i in range(1500000):\n"
                    "    s += i\n"
                    "print(s)\n")
    p, rep, err = run_json(tmp_path, "--", old_py.path, prog)
    assert p.returncode == 0, err
    assert p.stdout == b"1124999250000\n"
    want = "Python %d.%d: the allocation sampler needs Python 3.7 or later" % old_py.version
    assert want in err, err
    assert rep["available"]["memory"] is False and rep["not_available"]["memory"] == want, rep
    # The line is measured (9.8% in a loaded fresh-clone CI run whose
    # system time was high; more here): not missing.
    assert cpu(line_of(rep, str(prog), 3)) > 4, err


def test_terminal_latin1_source_stays_utf8(tmp_path, default_py):
    """A latin-1 source file (with a coding line) and an escape sequence in
    a comment: the terminal table stays valid UTF-8 with no escape of the
    program's own ('?' in their place); the JSON keeps the text escaped."""
    prog = tmp_path / "lat.py"
    prog.write_bytes(b"# -*- coding: latin-1 -*-\n"
                     b"t = 0\n"
                     b"for i in range(1500000):\n"
                     b"    t += i  # caf\xe9 \x1b[31mred \xc2\x9b2J\n")
    p, rep, err = run_json(tmp_path, "--cpu", "--", default_py.path, prog)
    assert p.returncode == 0, err
    raw = p.stderr
    raw.decode("utf-8")                      # strict: raises on a stray byte
    assert b"\x1b" not in raw and b"\xc2\x9b" not in raw, raw
    assert "t += i  # caf? ?[31mred ?2J" in err, err
    assert line_of(rep, str(prog), 4)["source"].startswith("    t += i  # caf\ufffd \x1b[31mred")


def test_outputs_checked_before_the_program_runs(tmp_path, default_py):
    """-o, --json and each of --heap's three files: a symbolic link (never
    followed), a missing directory or a device is refused in one line
    before the program starts (it used to run to its end first for
    --heap); -- /bin/true and a program that is not there get one line."""
    marker = tmp_path / "ran"
    prog = ["--", default_py.path, "-c", "open(%r, 'w').write('x')" % str(marker)]
    target = tmp_path / "target"
    os.symlink(target, tmp_path / "h.inuse_space.pb.gz")
    os.symlink(target, tmp_path / "r.html")
    for opt in (["--heap", tmp_path / "h"], ["--heap", tmp_path / "nodir" / "h"],
                ["-o", tmp_path / "r.html"], ["--json", tmp_path / "nodir" / "r.json"],
                ["--json", "/dev/full"]):
        assert_one_error_line(homura("run", *(opt + prog)))
        assert not marker.exists() and not target.exists(), opt
    assert not list(tmp_path.glob("h.*.pb.gz*")) or \
        [p.name for p in tmp_path.glob("h.*")] == ["h.inuse_space.pb.gz"]
    r = homura("run", "--heap", tmp_path / "ok", *prog)
    assert r.rc == 0 and marker.exists(), r.describe()
    assert sorted(p.name for p in tmp_path.glob("ok.*")) == [
        "ok.alloc_objects.pb.gz", "ok.alloc_space.pb.gz", "ok.inuse_space.pb.gz"]
    marker.unlink()
    for opt in ("-o", "--json", "--heap"):     # '--heap ""' wrote hidden .alloc_space.pb.gz...
        assert_one_error_line(homura("run", opt, "", *prog))
        assert not marker.exists()
    assert_one_error_line(homura("run", "--", "no-such-command-here"))
    r = homura("run", "--", "/bin/true")
    assert r.rc == 0 and "Sanitizer" not in r.stderr, r.describe()


def test_memory_only_summary_and_attach_memory_only(tmp_path, default_py):
    """--memory alone: no '0 CPU samples' in the summary (CPU was not
    asked for; JSON null); -p PID --memory alone cannot measure anything,
    so it is one error line, not an empty report."""
    prog = tmp_path / "m.py"
    prog.write_text("keep = [bytearray(1 << 20) for _ in range(20)]\n")
    p, rep, err = run_json(tmp_path, "--memory", "--", default_py.path, prog)
    assert p.returncode == 0, err
    summary = [l for l in err.splitlines() if l.startswith("homura: ") and " s" in l][-1]
    assert "CPU samples" not in summary and "allocation samples" in summary, err
    assert rep["cpu_samples"] is None and rep["alloc_samples"] > 0, rep
    assert abs(line_of(rep, str(prog), 1)["alloc_mb"] - 20) < 2, err
    line = assert_one_error_line(homura("run", "-p", os.getpid(), "--memory", "-d", "1"))
    assert "--memory" in line
    # --heap without memory measured: refused before anything runs
    for args in (["--cpu", "--heap", tmp_path / "h", "--", default_py.path, prog],
                 ["--heap", tmp_path / "h", "-p", os.getpid(), "-d", "1"]):
        assert "--heap" in assert_one_error_line(homura("run", *args))
    assert not list(tmp_path.glob("h.*"))


def test_html_report_in_chromium(tmp_path, default_py):
    """The HTML report in Debian's chromium, offline: no request but the
    file, no script error, the functions table and one table per file of
    the program, the memory chart drawn, and a click on a header sorts
    that table by that column, largest first, then smallest first (every
    header used to sort by its index among all the page's headers, so the
    per-file tables sorted by the wrong column)."""
    from test_dashboard import BROWSER_DIR, need_browser
    need_browser()
    (tmp_path / "helper.py").write_text("# a line that is never measured\n"
                                        "def spin(n):\n"
                                        "    s = 0\n"
                                        "    for i in range(n):\n"
                                        "        s += i\n"
                                        "    return bytearray(8 << 20)\n")
    prog = tmp_path / "main.py"
    prog.write_text("import helper, zlib, os\n"
                    "a = helper.spin(600000)\n"
                    "d = os.urandom(1 << 20)\n"
                    "for _ in range(4):\n"
                    "    zlib.compress(d)\n"
                    "b = [bytearray(1 << 20) for _ in range(12)]\n")
    for measures in ([], ["--memory"]):
        page = tmp_path / "report.html"
        r = homura("run", "-o", page, *measures, "--", default_py.path, prog, timeout=60)
        assert r.rc == 0, r.describe()
        p = subprocess.run(["node", str(BROWSER_DIR / "runreport.mjs"), str(page)],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr[-3000:]
        out = json.loads(p.stdout)
        assert out["requests"] == [] and out["errors"] == [], out
        assert out["title"].startswith("homura run: ") and "main.py" in out["title"]
        ids = [t["id"] for t in out["tables"]]
        assert ids[0] == "functions" and len(ids) == 3, out["tables"]   # functions, 2 files
        assert all("source" in t["headers"] for t in out["tables"][1:]), out["tables"]
        assert ("Python %" in out["tables"][1]["headers"]) == (measures != ["--memory"])
        assert ("alloc MB" in out["tables"][1]["headers"]) == (measures != ["--cpu"])
        if measures != ["--cpu"]:
            assert len(out["chart"]) == 2 and min(out["chart"]) >= 2, out["chart"]
        assert len(out["sorted"]) == 3, out["sorted"]
        for s in out["sorted"]:
            assert s["first"] == sorted(s["first"], reverse=True), s
            assert s["second"] == sorted(s["second"]), s
        # helper.py's loop (Python time, int allocations) is measured in
        # both of its per-file columns: the sort had something to order
        helper = [s for s in out["sorted"] if s["table"] == 1][0]
        assert helper["first"][0] > 0 and helper["first"][-1] == -1, helper


def _run_on_pty(argv, cols):
    """Run argv with its stderr on a terminal `cols` wide; its text."""
    import fcntl, pty, struct, termios, threading
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0, 0))
    chunks = []

    def reader():
        while True:
            try:
                b = os.read(master, 65536)
            except OSError:
                return
            if not b:
                return
            chunks.append(b)
    t = threading.Thread(target=reader)
    t.start()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
                       timeout=60, env=dict(os.environ, NO_COLOR="1"))
    os.close(slave)
    t.join(10)
    os.close(master)
    return p.returncode, b"".join(chunks).decode().replace("\r", "")


def test_terminal_table_fits_the_terminal(tmp_path, default_py):
    """On a terminal 60 columns wide every line of the tables fits (the
    bars are left out, the source trimmed with '...', a leak note on a line
    of its own: the `keep` line is found leaking now and then, and its note
    overflowed the line in a fresh-clone CI run); on a wide one the
    bars and the whole source line are there; with no terminal the bars
    too, and columns only for the measures taken."""
    prog = tmp_path / "w.py"
    prog.write_text("total = 0\n"
                    "for a_rather_long_variable_name in range(1_500_000): total += a_rather_long_variable_name  # a long comment that goes on\n"
                    "keep = [bytearray(1 << 20) for _ in range(20)]\n")
    argv = [HOMURA, "run", "--", default_py.path, str(prog)]
    rc, text = _run_on_pty(argv, 60)
    assert rc == 0, text
    table = text[:text.index("\nhomura: ")]
    assert all(len(l) <= 60 for l in table.splitlines()), table
    assert "for a_rat" in table and "..." in table and "\u2588" not in table, table
    assert "alloc MB" in table and "py%" in table, table
    rc, text = _run_on_pty(argv, 250)
    assert rc == 0, text
    assert "# a long comment that goes on" in text and "\u2588" in text, text
    r = homura("run", "--memory", "--", default_py.path, prog)
    assert r.rc == 0 and "\u2588" not in r.stderr and "py%" not in r.stderr, r.stderr
    assert "alloc MB" in r.stderr and "keep = [bytearray" in r.stderr, r.stderr
    r = homura("run", "--cpu", "--", default_py.path, prog)
    assert r.rc == 0 and "\u2588" in r.stderr and "alloc MB" not in r.stderr, r.stderr


def test_low_rate_does_not_delay_the_end(tmp_path, default_py):
    """--rate 1: the loop used to sleep a whole period (1 s) between looks
    at the program, so a program of 0.2 s was reported as at least 1 s
    long; the program's end (SIGCHLD) now wakes it (about 0.85 s of margin
    here, against the old code's 1 s floor)."""
    p, rep, err = run_json(tmp_path, "--rate", "1", "--cpu", "--", default_py.path, "-c",
                           "import signal, time; time.sleep(0.05); "
                           "print(sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])))")
    assert p.returncode == 0, err
    assert 0.05 <= rep["elapsed_s"] < 0.95, (rep["elapsed_s"], err)
    assert p.stdout == b"[]\n"      # homura's blocked SIGCHLD is not the program's


def test_child_process_lines_memory_is_null(tmp_path, default_py):
    """Memory is measured in the main process only: a line that ran only
    in a forked worker has its CPU time but null memory (it was 0.0, as if
    measured), the child-process line says so, and the main process's own
    allocation is still measured."""
    prog = tmp_path / "kids.py"
    prog.write_text("import multiprocessing as mp\n"
                    "def burn(n):\n"
                    "    s = 0\n"
                    "    for i in range(n):\n"
                    "        s += i  # CHILD\n"
                    "    return s\n"
                    "if __name__ == '__main__':\n"
                    "    keep = bytearray(16 << 20)  # MAIN\n"
                    "    with mp.get_context('fork').Pool(1) as p:\n"
                    "        print(sum(p.map(burn, [1500000] * 2)))\n")
    p, rep, err = run_json(tmp_path, "--", default_py.path, prog)
    assert p.returncode == 0 and p.stdout == b"2249998500000\n", err
    assert "(memory: the main process only)" in err, err
    child = line_of(rep, str(prog), 5)
    assert cpu(child) > 10 and child["alloc_mb"] is None and child["peak_mb"] is None, child
    assert abs(line_of(rep, str(prog), 8)["alloc_mb"] - 16) < 2, err


def test_all_library_code_says_so(tmp_path, default_py):
    """`-m json.tool`: every frame is the standard library's, so no line
    of the program's own gets anything; homura says where the time went
    and what shows it, rather than an empty table alone."""
    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"a": i, "b": list(range(20))} for i in range(30000)]))
    p, rep, err = run_json(tmp_path, "--cpu", "--", default_py.path, "-m", "json.tool", data)
    assert p.returncode == 0 and len(p.stdout) > len(data.read_bytes()), err
    assert rep["files"] == [] and rep["cpu_total"]["outside_python"] == 100, rep
    assert "of the CPU time was in no line of the program's own files" in err, err
    assert "--profile-all" in err
    prog = tmp_path / "own.py"
    prog.write_text("s = 0\nfor i in range(2_000_000):\n    s += i\n")
    p, rep, err = run_json(tmp_path, "--cpu", "--", default_py.path, prog)
    assert p.returncode == 0 and "no line of the program's own" not in err, err


def test_pythonmalloc_and_dev_mode_say_python_objects_are_not_counted(tmp_path, default_py):
    """PYTHONMALLOC (other than malloc) and -X dev make the interpreter
    install its own allocators over the sampler's hooks: Python objects
    from pymalloc are then not counted, which homura now says instead of
    reporting too little in silence."""
    prog = tmp_path / "objs.py"
    prog.write_text("lst = [[i] * 10 for i in range(100000)]\n")
    note = "the interpreter's own allocators replace homura's hooks"
    for env, args in (({"PYTHONMALLOC": "pymalloc"}, []), ({}, ["-X", "dev"]),
                      ({"PYTHONDEVMODE": "1"}, [])):
        p, rep, err = run_json(tmp_path, "--memory", "--", default_py.path, *args, prog, env=env)
        assert p.returncode == 0 and note in err, (env, args, err)
    for env in ({}, {"PYTHONMALLOC": "malloc"}):
        p, rep, err = run_json(tmp_path, "--memory", "--", default_py.path, prog, "-X", "dev",
                               env=dict(env, PYTHONDEVMODE="", PYTHONMALLOC=env.get("PYTHONMALLOC", "")))
        assert p.returncode == 0 and note not in err, (env, err)


def test_code_from_text_lines_agree(tmp_path, default_py):
    """A function of `python -c` and code the program exec()s: CPU time
    and memory land on the same <string> lines (CPU used to fold them into
    the outermost line while memory kept their own lines); with -c the
    lines show their source text (they were blank)."""
    code = ("def f():\n"
            "    s = 0\n"
            "    for i in range(1500000):\n"
            "        s += i\n"
            "    return bytearray(20 << 20)\n"
            "k = f()\n")
    p, rep, err = run_json(tmp_path, "--", default_py.path, "-c", code)
    assert p.returncode == 0, err
    loop = [line_of(rep, "<string>", n) for n in (3, 4)]
    assert sum(map(cpu, loop)) > 30 and sum(l["alloc_mb"] for l in loop) > 5, (loop, err)
    assert abs(line_of(rep, "<string>", 5)["alloc_mb"] - 20) < 2, err
    # python -c: homura knows the text of <string>, so the lines show it
    assert [l["source"] for l in loop] == ["    for i in range(1500000):", "        s += i"]
    assert "  for i in range(1500000):\n" in err, err
    prog = tmp_path / "ex.py"
    prog.write_text("exec(compile(%r, '<string>', 'exec'))\n" % code)
    p, rep, err = run_json(tmp_path, "--", default_py.path, prog)
    assert p.returncode == 0, err
    loop = [line_of(rep, "<string>", n) for n in (3, 4)]
    assert sum(map(cpu, loop)) > 30 and sum(l["alloc_mb"] for l in loop) > 5, (loop, err)
    call = [l for f in rep["files"] if f["path"] == str(prog) for l in f["lines"]]
    assert all(cpu(l) < 10 for l in call), call


def test_program_gets_the_signal_dispositions_homura_got(tmp_path, default_py):
    """homura ignores SIGPIPE for its own writes; the launched program used
    to inherit that, so `yes | head -1` in it printed 'Broken pipe' instead
    of dying quietly of SIGPIPE. It now gets the dispositions homura
    started with: default ones, or ignored ones (nohup's SIGHUP) kept."""
    r = homura("run", "-n", "0", "--", "/bin/sh", "-c", "yes | head -1")
    assert r.rc == 0 and r.stdout == "y\n" and "Broken pipe" not in r.stderr, r.describe()
    r = homura("record", "-o", tmp_path / "r.pb.gz", "--", "/bin/sh", "-c", "yes | head -1")
    assert "Broken pipe" not in r.stderr, r.describe()
    show = "import signal as s; print(s.getsignal(s.SIGHUP) == s.SIG_IGN)"
    p = subprocess.run([HOMURA, "run", "-n", "0", "--", default_py.path, "-c", show],
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
                       preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    assert p.returncode == 0 and p.stdout == b"True\n", p
    # (set to the default here: the test runner itself may run under nohup)
    p = subprocess.run([HOMURA, "run", "-n", "0", "--", default_py.path, "-c", show],
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
                       preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    assert p.returncode == 0 and p.stdout == b"False\n", p
