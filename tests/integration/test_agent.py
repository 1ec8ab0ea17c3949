"""`homura agent` end to end: real Python workloads, the real binary, and a
tiny fake OTLP / Pyroscope receiver (http.server on 127.0.0.1) that records
every request.  Profiles received are decoded with `homura convert`."""
import gzip
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import HOMURA, free_port, program


# ------------------------------------------------------------ the receiver

class Receiver:
    """Records (path, headers, body) of each POST; answers `status`."""

    def __init__(self, port=0, status=200):
        self.requests = []
        self.status = status
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with outer.lock:
                    outer.requests.append((self.path, dict(self.headers), body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def got(self):
        with self.lock:
            return list(self.requests)


@pytest.fixture
def receiver():
    made = []

    def make(**kw):
        r = Receiver(**kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


# ------------------------------------------------------------ the agent

class Agent:
    def __init__(self, args, tmp_path):
        self.stats_path = tmp_path / ("agent-stats-%d.json" % time.monotonic_ns())
        self.argv = [HOMURA, "agent", "--stats-json", str(self.stats_path)] + [str(a) for a in args]
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        self.err = None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError("agent did not exit after SIGTERM:\n" + err.decode())
        self.err = err.decode(errors="replace")
        return self.proc.returncode

    def stats(self):
        return json.loads(self.stats_path.read_text())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def agent(tmp_path):
    started = []

    def start(*args):
        a = Agent(list(args), tmp_path)
        started.append(a)
        return a

    yield start
    for a in started:
        a.kill()


def convert(path, fmt):
    r = subprocess.run([HOMURA, "convert", str(path), "-f", fmt], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def otlp_resource(path):
    """Resource attributes of an OTLP profile file as a dict of strings."""
    doc = json.loads(convert(path, "otlp-json"))
    out = {}
    for kv in doc["resourceProfiles"][0]["resource"]["attributes"]:
        v = kv["value"]
        out[kv["key"]] = str(next(iter(v.values())))
    return out


def otlp_time(path):
    doc = json.loads(convert(path, "otlp-json"))
    prof = doc["resourceProfiles"][0]["scopeProfiles"][0]["profiles"][0]
    return int(prof.get("timeUnixNano", 0))


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


@pytest.fixture
def busy(default_py, spawn, monkeypatch):
    """A busy workload whose environment names its service and version."""
    def start(lifetime=20, name="checkout", attrs="service.version=1.2.3,team=pay%2Fments",
              extra=()):
        if name:
            monkeypatch.setenv("OTEL_SERVICE_NAME", name)
        else:
            monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", attrs)
        t = spawn([default_py.path, program("busy.py"), lifetime] + list(extra))
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
        return t
    return start


# ------------------------------------------------------------ tests

@pytest.mark.asan
def test_otlp_pyroscope_dir_at_once(busy, agent, receiver, tmp_path):
    """Three exporters at once; OTLP requests are gzip protobuf on the
    standard path, carry the workload's functions and the target's labels;
    Pyroscope gets pprof on /ingest with name/from/until."""
    t = busy()
    otlp = receiver()
    pyro = receiver()
    outdir = tmp_path / "profiles"
    a = agent("-p", t.pid, "--interval", 1, "--otlp", otlp.url, "--pyroscope", pyro.url,
              "--dir", outdir, "--label", "region=eu-1")
    wait_for(lambda: len(otlp.got()) >= 2 and len(pyro.got()) >= 2, 10, "two windows")
    assert a.stop() == 0, a.err

    reqs = otlp.got()
    for path, headers, body in reqs:
        assert path == "/v1development/profiles"
        assert headers.get("Content-Encoding") == "gzip"
        assert headers.get("Content-Type") == "application/x-protobuf"
        assert body[:2] == b"\x1f\x8b", "body is not gzip"
        gzip.decompress(body)
    f = tmp_path / "req.otlp.gz"
    f.write_bytes(reqs[0][2])
    assert "busy_work" in convert(f, "collapsed")
    res = otlp_resource(f)
    assert res["service.name"] == "checkout"
    assert res["service.version"] == "1.2.3"
    assert res["team"] == "pay/ments"          # percent-decoded
    assert res["process.pid"] == str(t.pid)
    assert res["region"] == "eu-1"
    assert res["process.runtime.version"].startswith("3.")
    assert res["host.name"] == socket.gethostname()

    path, headers, body = pyro.got()[0]
    u = urllib.parse.urlparse(path)
    assert u.path == "/ingest"
    q = urllib.parse.parse_qs(u.query)
    assert q["format"] == ["pprof"]
    assert q["name"][0].startswith("checkout.cpu{")
    assert "service_version=1.2.3" in q["name"][0]
    assert "process_pid=%d" % t.pid in q["name"][0]
    assert int(q["until"][0]) > int(q["from"][0]) > 1e9
    f2 = tmp_path / "req.pprof"
    f2.write_bytes(body)
    assert "busy_work" in convert(f2, "collapsed")

    files = sorted(os.listdir(outdir))
    assert len(files) >= 2 and all(re.match(r"homura-checkout-%d-\d{8}T\d{6}\.\d{3}Z\.pb\.gz$"
                                            % t.pid, n) for n in files), files
    assert "busy_work" in convert(outdir / files[0], "collapsed")
    st = a.stats()
    assert st["samples"] > 50
    assert st["exporters"][0]["sent"] == len(reqs)
    assert "cpu" in a.err and "% of a core" in a.err


@pytest.mark.asan
def test_receiver_down_then_up_delivers_in_order(busy, agent, tmp_path):
    """Profiles made while the receiver is down wait in the queue and arrive,
    all of them and in order, once it is up."""
    t = busy()
    port = free_port()
    a = agent("-p", t.pid, "--interval", 0.5, "--otlp", "http://127.0.0.1:%d/custom/path" % port,
              "--backoff-max", 0.5)
    time.sleep(2.5)                       # ~5 windows queued, connection refused
    r = Receiver(port=port)
    try:
        wait_for(lambda: len(r.got()) >= 6, 10, "queued profiles to arrive")
        assert a.stop() == 0, a.err
        reqs = r.got()
    finally:
        r.close()
    assert "cannot send to http://127.0.0.1:%d/custom/path" % port in a.err
    assert "reachable again" in a.err
    st = a.stats()["exporters"][0]
    assert st["dropped_full"] == 0 and st["dropped_exit"] == 0 and st["rejected"] == 0
    assert st["sent"] == st["submitted"] == len(reqs), (st, len(reqs))
    assert all(p == "/custom/path" for p, _, _ in reqs)
    times = []
    for i, (_, _, body) in enumerate(reqs):
        f = tmp_path / ("r%d.gz" % i)
        f.write_bytes(body)
        times.append(otlp_time(f))
    assert times == sorted(times) and len(set(times)) == len(times), times


@pytest.mark.asan
def test_spool_keeps_profiles_across_restart(busy, agent, tmp_path):
    """Destination down at shutdown: the queue goes to the spool, and the
    next run sends those profiles first, in order."""
    t = busy()
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    spool = tmp_path / "spool"
    a = agent("-p", t.pid, "--interval", 0.4, "--otlp", url, "--spool", spool,
              "--queue-max-bytes", 1, "--flush-timeout", 0.2)   # overflow to disk at once
    time.sleep(1.8)
    assert a.stop() == 0, a.err
    st = a.stats()["exporters"][0]
    assert st["dropped_full"] == 0 and st["dropped_exit"] == 0, st
    kept = st["submitted"]
    assert kept >= 3 and "kept in the spool" in a.err, a.err
    r = Receiver(port=port)
    try:
        b = agent("-p", t.pid, "--interval", 0.4, "--otlp", url, "--spool", spool)
        wait_for(lambda: len(r.got()) >= kept + 1, 10, "spooled profiles")
        assert b.stop() == 0, b.err
        reqs = r.got()
    finally:
        r.close()
    assert "from an earlier run" in b.err
    times = []
    for i, (_, _, body) in enumerate(reqs):
        f = tmp_path / ("s%d.gz" % i)
        f.write_bytes(body)
        times.append(otlp_time(f))
    assert times == sorted(times), times
    assert len(reqs) == kept + b.stats()["exporters"][0]["submitted"]


@pytest.mark.asan
def test_tiny_bound_drops_are_counted_and_logged(busy, agent, tmp_path):
    t = busy()
    port = free_port()                    # nothing listens there
    url = "http://127.0.0.1:%d" % port
    a = agent("-p", t.pid, "--interval", 0.3, "--otlp", url, "--queue-max-bytes", 1,
              "--flush-timeout", 0.5)
    time.sleep(2.5)
    assert a.stop() == 0, a.err
    st = a.stats()["exporters"][0]
    assert st["dropped_full"] >= 3, st
    assert st["dropped_full_bytes"] > 0
    assert st["dropped_exit"] == 1        # the one item the queue held
    assert st["sent"] == 0
    m = re.search(r"dropped (\d+) profiles \((\d+) bytes\) for (\S+): queue full", a.err)
    assert m, a.err
    assert m.group(3) == url + "/v1development/profiles"
    assert "still queued at exit" in a.err


def test_rejected_4xx_is_dropped_not_retried(busy, agent, receiver):
    t = busy()
    r = receiver(status=400)
    a = agent("-p", t.pid, "--interval", 0.5, "--otlp", r.url)
    wait_for(lambda: len(r.got()) >= 2, 10, "two requests")
    assert a.stop() == 0, a.err
    st = a.stats()["exporters"][0]
    assert st["rejected"] == len(r.got()) and st["failed_attempts"] == 0, st
    assert "HTTP 400" in a.err


def test_dir_retention_deletes_oldest(busy, agent, tmp_path):
    t = busy()
    out = tmp_path / "d"
    out.mkdir()
    (out / "keep-me.txt").write_text("not ours")
    a = agent("-p", t.pid, "--interval", 0.25, "--dir", out, "--dir-format", "collapsed",
              "--dir-max-size", "600")
    time.sleep(2.5)
    assert a.stop() == 0, a.err
    st = a.stats()["exporters"][0]
    files = sorted(n for n in os.listdir(out) if n.startswith("homura-"))
    sizes = [os.path.getsize(out / n) for n in files]
    assert st["sent"] >= 5 and st["files_deleted"] >= 1, st
    assert st["sent"] == len(files) + st["files_deleted"]
    assert sum(sizes) <= 600 or len(files) == 1, (files, sizes)
    assert (out / "keep-me.txt").exists()
    assert "busy_work" in (out / files[-1]).read_text()


@pytest.mark.asan
def test_all_picks_up_new_and_drops_exited(busy, agent, tmp_path):
    out = tmp_path / "all"
    a = agent("--all", "--scan-interval", 0.5, "--interval", 1, "--dir", out,
              "--dir-format", "collapsed")
    time.sleep(0.7)
    t = busy(lifetime=2.5, name=None, attrs="")
    t.proc.wait(timeout=10)
    time.sleep(1.8)                       # liveness is checked every second
    assert a.stop() == 0, a.err
    assert "profiling process %d (busy," % t.pid in a.err, a.err
    assert "process %d (busy) exited" % t.pid in a.err, a.err
    mine = [n for n in os.listdir(out) if n.startswith("homura-busy-%d-" % t.pid)]
    assert mine, os.listdir(out)
    assert "busy_work" in (out / mine[0]).read_text()
    assert "profiling process %d " % a.proc.pid not in a.err     # never itself


def test_name_regex_selects_processes(busy, default_py, spawn, agent, tmp_path):
    """--name matches the command line: busy.py is profiled, idle.py not."""
    token = "agent-test-%d" % os.getpid()    # other busy.py may run on this host
    other = spawn([default_py.path, program("idle.py"), 20, token + "-other"])
    t = busy(name=None, attrs="", extra=[token])
    out = tmp_path / "n"
    a = agent("--name", r"busy\.py [0-9.]+ %s$" % token, "--scan-interval", 0.3, "--interval", 0.5,
              "--dir", out, "--idle")
    time.sleep(2)
    assert a.stop() == 0, a.err
    assert "profiling process %d " % t.pid in a.err, a.err
    assert "profiling process %d " % other.pid not in a.err, a.err
    names = os.listdir(out)
    assert names and all("-%d-" % t.pid in n for n in names), names


@pytest.mark.asan
def test_sigterm_flushes_partial_window_and_config_file(busy, agent, receiver, tmp_path):
    """With a 60 s window, SIGTERM still ships the partial window before
    exiting 0. Settings come from a config file; a flag overrides one."""
    t = busy()
    r = receiver()
    cfg = tmp_path / "agent.conf"
    cfg.write_text("# agent settings\notlp = %s\ninterval = 60\nservice = from-config\n"
                   "label = env=test\nrate = 50\n" % r.url)
    a = agent("--config", cfg, "-p", t.pid, "--rate", 97)
    time.sleep(1.5)
    assert r.got() == []
    assert a.stop() == 0, a.err
    reqs = r.got()
    assert len(reqs) == 1
    f = tmp_path / "last.gz"
    f.write_bytes(reqs[0][2])
    res = otlp_resource(f)
    assert res["service.name"] == "checkout"      # the target's own setting wins
    assert res["env"] == "test"
    assert "sampling at 97 Hz" in a.err


def test_program_name_and_no_spoofing(busy, agent, receiver, tmp_path):
    """No OTEL_SERVICE_NAME: the script's name; the target's environment
    cannot claim another pid or host."""
    t1 = busy(name=None, attrs="process.pid=1,host.name=elsewhere,k=v%3Dw")
    r = receiver()
    a = agent("-p", t1.pid, "--interval", 0.5, "--otlp", r.url)
    wait_for(lambda: r.got(), 10, "a request")
    assert a.stop() == 0, a.err
    f = tmp_path / "p.gz"
    f.write_bytes(r.got()[0][2])
    res = otlp_resource(f)
    assert res["service.name"] == "busy"     # script name without .py
    assert res["process.pid"] == str(t1.pid)
    assert res["host.name"] == socket.gethostname()
    assert res["k"] == "v=w"


def test_bad_options():
    for args, msg in [(["--otlp", "http://x"], "no targets"),
                      (["-p", "1"], "no exporter"),
                      (["-p", str(os.getpid()), "--otlp", "localhost"], "invalid OTLP URL"),
                      (["--all", "--dir", "/tmp/x", "--dir-format", "svg"], "unknown --dir-format"),
                      (["--all", "--otlp", "http://x", "--label", "novalue"], "invalid --label"),
                      (["--config", "/nonexistent.conf"], "cannot read config")]:
        r = subprocess.run([HOMURA, "agent"] + args, capture_output=True, timeout=10)
        assert r.returncode != 0
        assert msg in r.stderr.decode(), (args, r.stderr.decode())
