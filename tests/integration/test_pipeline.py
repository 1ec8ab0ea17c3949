"""The continuous-profiling pipeline end to end, with real processes only:
`homura agent` on a live Python workload sends to `homura server`, and the
query API must answer with what the workload runs.

- the example Flask application (tests/programs/flask_app.py, Debian's
  /usr/bin/python3 + python3-flask) under load (loadgen.py): its functions
  show up in /api/v1/top and /api/v1/flamegraph under the service name from
  OTEL_SERVICE_NAME, with service.version from OTEL_RESOURCE_ATTRIBUTES
  queryable as a label;
- the server stopped for several windows and restarted on the same data
  directory and port: the agent's queue delivers what was made meanwhile,
  so the stored sample count equals what the agent sampled, and the agent
  still exits 0 on SIGTERM;
- scripts/quickstart.sh --duration runs the whole demo to the end.
"""
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from conftest import HOMURA, REPO, free_port, program

SYSTEM_PY = "/usr/bin/python3"
CPU_NS = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
CPU_COUNT = "process_cpu:samples:count:cpu:nanoseconds"


def have_flask():
    try:
        return subprocess.run([SYSTEM_PY, "-c", "import flask"], capture_output=True,
                              timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_flask = pytest.mark.skipif(not have_flask(), reason="%s cannot import flask "
                                 "(apt-get install python3-flask)" % SYSTEM_PY)


def wait_for(fn, timeout, what):
    """Call fn() until it returns something true; that value is returned."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (OSError, ValueError) as e:       # server not up (yet)
            last = e
        time.sleep(0.2)
    raise AssertionError("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))


class Proc:
    """A process in its own session, output to a file; killed at teardown."""

    def __init__(self, argv, log, env=None):
        self.argv = [str(a) for a in argv]
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        self.pid = self.proc.pid

    def output(self):
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self, timeout=20):
        """SIGTERM and wait: the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s did not exit on SIGTERM:\n%s" % (self.argv[:2],
                                                                      self.output()))

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)


@pytest.fixture
def procs(tmp_path):
    """procs(name, argv, env=None) -> Proc; all killed after the test."""
    started = []

    def start(name, argv, env=None):
        p = Proc(argv, tmp_path / ("%s-%d.log" % (name, len(started))), env)
        started.append(p)
        return p

    yield start
    for p in reversed(started):
        p.kill()


class Server:
    """homura server on a fixed port and data directory (restartable)."""

    def __init__(self, procs, data, port=None):
        self.procs, self.data = procs, str(data)
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = None

    def start(self):
        self.proc = self.procs("server", [HOMURA, "server", "--data", self.data, "--listen",
                                          "127.0.0.1:%d" % self.port])

        def ready():
            assert self.proc.proc.poll() is None, "server exited:\n" + self.proc.output()
            with urllib.request.urlopen(self.url + "/ready", timeout=2) as r:
                return r.status == 200
        wait_for(ready, 15, "the server to be ready")
        return self

    def stop(self):
        assert self.proc.stop() == 0, "server exit status:\n" + self.proc.output()

    def get(self, path, **params):
        q = urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(self.url + path + ("?" + q if q else ""), timeout=10) as r:
            assert r.status == 200
            return r.read()

    def json(self, path, **params):
        return json.loads(self.get(path, **params))


def workload_env(service, attrs):
    env = dict(os.environ, OTEL_SERVICE_NAME=service, OTEL_RESOURCE_ATTRIBUTES=attrs,
               PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    return env


def ready_line(proc, timeout=20):
    """The `ready PID ...` line a workload prints, split."""
    def line():
        assert proc.proc.poll() is None, "workload exited:\n" + proc.output()
        for l in proc.output().splitlines():
            if l.startswith("ready "):
                return l.split()
        return None
    return wait_for(line, timeout, "%s to be ready" % proc.argv[1])


def agent_argv(tmp_path, pid, server, *extra):
    return [HOMURA, "agent", "-p", pid, "--server", server.url, "--interval", 1,
            "--stats-json", tmp_path / "agent-stats.json", "--stats-interval", 0] + list(extra)


# ------------------------------------------------------------ tests

@needs_flask
def test_flask_app_functions_and_labels_queryable(procs, tmp_path):
    service = "pipeline-flask-%d" % os.getpid()
    server = Server(procs, tmp_path / "data").start()
    app = procs("app", [SYSTEM_PY, program("flask_app.py"), "--port", 0, "--lifetime", 60],
                env=workload_env(service, "service.version=2.5.1,deployment.environment=ci"))
    app_port = int(ready_line(app)[2])
    procs("loadgen", [SYSTEM_PY, program("loadgen.py"), "http://127.0.0.1:%d" % app_port,
                      "--threads", 3, "--duration", 60])
    agent = procs("agent", agent_argv(tmp_path, app.pid, server))

    # The CPU-heavy endpoints' work functions, with self time, for the service.
    def top_names():
        doc = server.json("/api/v1/top", service=service, **{"from": "now-5m"})
        names = {f["name"] for f in doc["functions"] if f["self"] > 0}
        return names if {"count_primes", "fetch_rows"} <= names else None
    names = wait_for(top_names, 25, "count_primes and fetch_rows in /api/v1/top")
    assert names & {"build_report", "serialize_report", "JSONEncoder.iterencode",
                    "JSONEncoder.encode"}, names

    # Flame graph: count_primes is called from the /slow view, fetch_rows from /db.
    sel = '%s{service_name="%s"}' % (CPU_NS, service)
    fg = server.json("/api/v1/flamegraph", query=sel, **{"from": "now-5m"})
    nodes = {n["id"]: n for n in fg["nodes"]}
    assert fg["total"] > 0 and fg["unit"] == "nanoseconds", fg["unit"]
    parents = {(nodes[n["parent"]]["name"], n["name"]) for n in fg["nodes"]
               if n["parent"] >= 0}
    assert ("slow", "count_primes") in parents, sorted(parents)[:40]
    assert ("db", "fetch_rows") in parents, sorted(parents)[:40]

    # Labels from the target's environment are queryable, and select.
    assert "2.5.1" in server.json("/api/v1/label_values", name="version")["values"]
    assert "2.5.1" in server.json("/api/v1/label_values", name="service_version")["values"]
    assert "ci" in server.json("/api/v1/label_values",
                               name="deployment_environment")["values"]
    assert service in [s["name"] for s in server.json("/api/v1/services")["services"]]
    series = server.json("/api/v1/series", query=sel)["series"]
    assert series and all(s["labels"]["version"] == "2.5.1" for s in series), series
    assert series[0]["labels"]["process_pid"] == str(app.pid)
    hit = server.json("/api/v1/top", query='%s{service_name="%s",version="2.5.1"}'
                      % (CPU_NS, service), **{"from": "now-5m"})
    miss = server.json("/api/v1/top", query='%s{service_name="%s",version="9.9"}'
                       % (CPU_NS, service), **{"from": "now-5m"})
    assert hit["total"] > 0 and miss["total"] == 0 and not miss["functions"]

    # Pyroscope's render and the pprof download see the same data.
    render = server.json("/pyroscope/render", query=sel, **{"from": "now-5m"})
    assert render["flamebearer"]["numTicks"] > 0
    assert any(n.startswith("count_primes (") for n in render["flamebearer"]["names"])
    pprof = server.get("/api/v1/download", query=sel, format="pprof", **{"from": "now-5m"})
    assert pprof[:2] == b"\x1f\x8b" and len(pprof) > 100

    assert agent.stop() == 0, agent.output()
    st = json.loads((tmp_path / "agent-stats.json").read_text())["exporters"][0]
    assert st["sent"] >= 1 and st["rejected"] == 0 and st["dropped_full"] == 0, st


def stored_samples(server, service):
    """Samples stored for the service over the last 10 minutes (time series sum)."""
    doc = server.json("/api/v1/timeseries", query='%s{service_name="%s"}' % (CPU_COUNT, service),
                      step=10, **{"from": "now-10m", "until": "now+1m"})
    assert doc["unit"] == "samples", doc
    return sum(doc["values"])


@pytest.mark.asan
def test_agent_survives_server_restart(procs, tmp_path, default_py):
    service = "pipeline-restart-%d" % os.getpid()
    data = tmp_path / "data"
    server = Server(procs, data).start()
    busy = procs("busy", [default_py.path, program("busy.py"), 60],
                 env=workload_env(service, "service.version=7"))
    ready_line(busy)
    agent = procs("agent", agent_argv(tmp_path, busy.pid, server, "--backoff-max", 0.5))

    wait_for(lambda: stored_samples(server, service) > 0, 15, "the first profile")
    before = stored_samples(server, service)
    server.stop()
    time.sleep(4.5)                       # 4+ windows with nowhere to send them
    assert agent.proc.poll() is None, "agent died while the server was down:\n" + \
        agent.output()
    server.start()                        # same data directory, same port

    # The queued windows arrive: at least the 4.5 s of the outage at 100 Hz
    # (half of it, to leave room for a slow machine).
    def caught_up():
        n = stored_samples(server, service)
        return n if n >= before + 200 else None
    wait_for(caught_up, 15, "the queued profiles to arrive")

    assert agent.stop() == 0, "agent exit status:\n" + agent.output()
    stats = json.loads((tmp_path / "agent-stats.json").read_text())
    exp = stats["exporters"][0]
    assert exp["failed_attempts"] >= 1, exp          # it did see the outage
    assert exp["dropped_full"] == 0 and exp["dropped_exit"] == 0 and \
        exp["rejected"] == 0 and exp["queued"] == 0, exp
    assert exp["sent"] == exp["submitted"] == stats["profiles"], stats
    # Nothing lost: every sample the agent took is in the store.
    stored = stored_samples(server, service)
    assert stored == stats["samples"], (stored, stats)
    assert "cannot send" in agent.output() and "reachable again" in agent.output(), \
        agent.output()


@needs_flask
def test_quickstart_runs_to_the_end(tmp_path):
    port = free_port()
    env = dict(os.environ, HOMURA_BIN=HOMURA)
    p = subprocess.Popen(["bash", str(REPO / "scripts" / "quickstart.sh"), "--no-build",
                          "--duration", "25", "--port", str(port), "--data",
                          str(tmp_path / "data")],
                         cwd=str(REPO), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        # Only a guard against a hang, far above the 25 s: how long a loaded
        # machine takes is not what this test checks.
        out = p.communicate(timeout=300)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGTERM)      # its trap stops what it started
        out = p.communicate(timeout=30)[0].decode(errors="replace")
        pytest.fail("quickstart.sh --duration 25 still running after 300 s:\n" + out)
    assert p.returncode == 0, out
    assert "profiles have arrived" in out, out
    top = out.split("profiles have arrived", 1)[1].splitlines()[2:7]
    assert len(top) == 5 and all("%" in l for l in top), out
    assert "flask_app.py" in "\n".join(top) or "python3.11" in "\n".join(top), out
    assert "/api/v1/flamegraph" in out and "/pyroscope/render" in out, out
    assert "dashboard: http://127.0.0.1:%d/?svc=demo-flask" % port in out, out
    # It ran until --duration was over (by its own clock, which starts when
    # the pipeline is up), and then stopped by itself.
    assert "running until 25 s have passed" in out, out
    done = re.search(r"done: ran (\d+) s after the pipeline was up", out)
    assert done and int(done.group(1)) >= 25, out
    assert "stopping ..." in out, out
    # Nothing it started is left: its processes are gone, nobody listens on the port.
    pids = [int(m) for m in re.findall(r"\(pid (\d+)\)", out)]
    assert len(pids) == 3, out
    for pid in pids:
        assert not os.path.exists("/proc/%d" % pid) or \
            open("/proc/%d/stat" % pid).read().split(") ")[-1][0] == "Z", pid
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))         # fails while something listens there


@needs_flask
def test_quickstart_duration_excludes_the_build(tmp_path):
    """--duration counts from when the pipeline is up: a build slower than
    the duration (a `make` that takes 12 s, ahead of it on PATH) must not
    leave the pipeline no time to deliver its first profile."""
    if not os.access(str(REPO / "build" / "homura"), os.X_OK):
        pytest.skip("build/homura not built")
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "make").write_text("#!/bin/sh\nsleep 12\n")
    (shims / "make").chmod(0o755)
    port = free_port()
    env = dict(os.environ, PATH="%s:%s" % (shims, os.environ["PATH"]))
    p = subprocess.Popen(["bash", str(REPO / "scripts" / "quickstart.sh"), "--duration", "12",
                          "--interval", "1", "--port", str(port), "--data",
                          str(tmp_path / "data")],
                         cwd=str(REPO), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        out = p.communicate(timeout=300)[0].decode(errors="replace")   # a hang guard only
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGTERM)
        out = p.communicate(timeout=30)[0].decode(errors="replace")
        pytest.fail("quickstart.sh --duration 12 still running after 300 s:\n" + out)
    assert "building (make -j2)" in out, out
    assert p.returncode == 0, out
    assert "profiles have arrived" in out and "no profile stored" not in out, out
    done = re.search(r"done: ran (\d+) s after the pipeline was up", out)
    assert done and int(done.group(1)) >= 12, out
