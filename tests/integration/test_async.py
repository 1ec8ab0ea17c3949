"""`homura record --async`: asyncio tasks as stacks, on every supported
interpreter (tests/programs/async_app.py: handler_a -> fetch_a -> sleep,
handler_b -> Queue.get, a CPU-busy task, and the main task)."""
import pytest

from conftest import marker_line, program, record

REC = 1.5


def task_stacks(prof, name):
    """(frames after the 'Task <name>' root, count) of that task's stacks."""
    out = []
    for frames, count in prof.stacks:
        for i, f in enumerate(frames):
            if f.text == "Task " + name:
                out.append((frames[i + 1:], count))
                break
    return out


def find_chain(stacks, names):
    """Samples whose frames contain `names` consecutively (name match on the
    short name: co_name or the last part of co_qualname)."""
    hits = []
    for frames, count in stacks:
        short = [f.name.rsplit(".", 1)[-1] for f in frames]
        for i in range(len(short) - len(names) + 1):
            if short[i:i + len(names)] == list(names):
                hits.append((frames[i:i + len(names)], count))
                break
    return hits


@pytest.mark.asan
def test_async_tasks(py, spawn, tmp_path):
    if py.version < (3, 8):
        pytest.skip("--async needs 3.8+")
    src = program("async_app.py")
    t = spawn([py.path, src, 20])
    out = tmp_path / "async.txt"
    # --idle: the main thread is sampled every round whether or not the
    # scheduler ran it (a loaded machine must not thin out busy's samples).
    r = record("--async", "--idle", "-p", t.pid, "-d", REC, "-f", "collapsed", output=out)
    p = r.profile()
    assert "--async:" not in r.stderr, r.stderr

    # handler_a: suspended in fetch_a, suspended in asyncio.sleep, in order,
    # each at the line of its await.
    a = task_stacks(p, "handler_a")
    chain = find_chain(a, ["handler_a", "fetch_a", "sleep"])
    assert chain, "no 'Task handler_a;handler_a;fetch_a;sleep' stack:\n" + p.summary(20)
    frames, _ = max(chain, key=lambda fc: fc[1])
    assert frames[0].file == src and frames[1].file == src
    assert frames[0].line == marker_line(src, "# AWAIT-HANDLER-A"), frames[0].text
    assert frames[1].line == marker_line(src, "# AWAIT-FETCH"), frames[1].text
    assert frames[2].file.endswith("asyncio/tasks.py"), frames[2].text
    # It is there in (nearly) every round: idle tasks are always recorded.
    rounds = sum(c for _, c in a)
    assert rounds >= 40, "handler_a in only %d rounds:\n%s" % (rounds, p.summary(20))

    # handler_b: waiting in Queue.get.
    b = task_stacks(p, "handler_b")
    chain = find_chain(b, ["handler_b", "get"])
    assert chain, "no 'Task handler_b;handler_b;Queue.get' stack:\n" + p.summary(20)
    frames, _ = chain[0]
    assert frames[0].line == marker_line(src, "# AWAIT-HANDLER-B"), frames[0].text
    assert frames[1].file.endswith("asyncio/queues.py"), frames[1].text

    # busy runs on the main thread: its samples are the thread's frames from
    # the task's coroutine down (crunch on its hot line), without the event
    # loop above it.
    busy = task_stacks(p, "busy")
    crunch = find_chain(busy, ["busy", "crunch"])
    hot = marker_line(src, "# CRUNCH")
    assert sum(c for fr, c in crunch if fr[1].line in (hot, hot - 1)) >= 20, \
        "busy/crunch not sampled on its hot lines:\n" + p.summary(20)
    for frames, _ in busy:
        assert frames and frames[0].name == "busy", [f.text for f in frames]
    for frames, _ in p.stacks:
        names = [f.name for f in frames]
        if any(n.startswith("Task ") for n in names):
            assert not any(n.endswith("_run_once") for n in names), names

    # the main task waits in main()
    assert find_chain(task_stacks(p, "Task-1"), ["main"]), p.summary(20)


def test_async_threads_root_and_off(default_py, spawn, tmp_path):
    """With -t a running task sits under its thread's root; without --async
    there are no task frames."""
    src = program("async_app.py")
    t = spawn([default_py.path, src, 20])
    out = tmp_path / "async_t.txt"
    p = record("--async", "-t", "-p", t.pid, "-d", 1, "-f", "collapsed", output=out).profile()
    under_thread = [fr for fr, _ in p.stacks
                    if len(fr) >= 3 and fr[0].thread_tid == t.pid and fr[1].text == "Task busy"]
    assert under_thread, p.summary(20)
    # idle tasks have no thread root
    assert any(fr[0].text == "Task handler_b" for fr, _ in p.stacks), p.summary(20)

    out2 = tmp_path / "plain.txt"
    p2 = record("--idle", "-p", t.pid, "-d", 1, "-f", "collapsed", output=out2).profile()
    assert not any(n.startswith("Task ") for n in p2.names()), p2.summary(20)
    assert p2.count_fn("crunch") > 0, p2.summary(20)


def test_async_old_python_warns(spawn, tmp_path):
    """An interpreter without task support: a warning, threads still recorded."""
    import os
    exe = "/root/.pyenv/versions/3.7.16/bin/python"
    if not os.path.exists(exe):
        pytest.skip("Python 3.7 not installed")
    t = spawn([exe, program("busy.py"), 20])
    out = tmp_path / "old.txt"
    r = record("--async", "-p", t.pid, "-d", 0.5, "-f", "collapsed", output=out)
    assert "--async" in r.stderr and "3.8-3.13" in r.stderr, r.stderr
    assert r.profile().total > 0


def test_async_late_start(default_py, spawn, tmp_path):
    """A program that imports asyncio only after recording began: its task is
    seen soon (an empty lookup of the task containers is retried after
    100 ms, 200 ms, ... rather than cached for 10 s). early() runs only
    inside its task, for 3x as long as asyncio took to start plus 1 s, so
    with the back-off at most a third of its samples can predate the task's
    discovery."""
    src = program("async_late.py")
    t = spawn([default_py.path, src, 1])
    out = tmp_path / "late.txt"
    p = record("--async", "-p", t.pid, "-d", 30, "-f", "collapsed", output=out).profile()
    def is_early(f):                    # main.<locals>.early on 3.11+
        return f.name.rsplit(".", 1)[-1] == "early"
    in_early = p.count(is_early)
    as_task = sum(c for fr, c in p.stacks
                  if any(is_early(f) for f in fr) and any(f.text.startswith("Task ") for f in fr))
    assert in_early >= 50, "early() barely sampled:\n" + p.summary(20)
    assert as_task >= 0.4 * in_early, \
        "only %d of %d samples of early() under its task:\n%s" % (
            as_task, in_early, p.summary(20))
