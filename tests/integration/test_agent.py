"""`homura agent` end to end: real Python workloads, the real binary, and a
tiny fake OTLP / Pyroscope receiver (http.server on 127.0.0.1) that records
every request.  Profiles received are decoded with `homura convert`."""
import collections
import gzip
import hashlib
import http.server
import math
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest

from conftest import HOMURA, SANITIZER_RE, free_port, program


# ------------------------------------------------------------ the receiver

class Receiver:
    """Records (path, headers, body) of each POST; answers `status`, or
    status(path, body) when it is callable."""

    def __init__(self, port=0, status=200):
        self.requests = []
        self.answers = []
        self.status = status
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                st = outer.status(self.path, body) if callable(outer.status) else outer.status
                with outer.lock:
                    outer.requests.append((self.path, dict(self.headers), body))
                    outer.answers.append(st)
                self.send_response(st)
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

    def got_answered(self):
        """[(path, headers, body, status)] of every request so far."""
        with self.lock:
            return [r + (a,) for r, a in zip(self.requests, self.answers)]


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
        assert not SANITIZER_RE.search(self.err), "sanitizer report:\n" + self.err
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
    # On-CPU samples: how many depends on the CPU the busy target got (a
    # loaded machine gives it a fraction); the windows above hold its stacks.
    assert st["samples"] > 0
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


@pytest.mark.parametrize("delay", [0.6, 3], ids=["young", "old"])
def test_a_process_that_execs_python_later_is_found(agent, default_py, spawn, tmp_path, delay):
    """A process found before it execs Python keeps its pid and start time
    after the exec. young: a shell that sleeps 0.6 s first (a fork before
    its exec is a copy of its parent): rejecting it for good at the first
    look lost the program (a scan that fell between a fork and its exec
    made test_agent_ebpf_every_process fail once); while it is young (2 s)
    it is looked at again at each scan. old: a wrapper that runs Python
    only once it is done with something else (`sh -c "migrate; exec python
    app.py"`, a container's entry point), here after 3 s: rejected then as
    not Python, it is looked at again once it has exec'd another program
    (its /proc/PID/exe changed; checked every 5 scans). The builds before
    each never profiled it."""
    token = "agent-exec-%s-%d" % (delay, os.getpid())
    out = tmp_path / "x"
    a = agent("--name", r"busy\.py [0-9.]+ %s$" % token, "--scan-interval", 0.2, "--interval", 0.5,
              "--dir", out)
    time.sleep(0.5)
    t = spawn(["/bin/sh", "-c", 'sleep %s; exec "$0" "$@"' % delay, default_py.path,
               program("busy.py"), 20, token])
    deadline = time.monotonic() + delay + 10
    while time.monotonic() < deadline and not (
            out.exists() and any("-%d-" % t.pid in n for n in os.listdir(out))):
        time.sleep(0.2)
    assert a.stop() == 0, a.err
    assert "profiling process %d " % t.pid in a.err, a.err


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


def _service_of(body):
    try:
        raw = gzip.decompress(body)
    except OSError:
        return None
    for name in (b"svc-refused", b"svc-accepted"):
        if name in raw:
            return name.decode()
    return None


def test_one_refused_series_does_not_block_the_others(busy, agent, receiver, tmp_path):
    """The destination answers 429 to every profile of one service (as a
    server's series limit does) and 200 to the others: the refused profiles
    are retried a bounded number of times behind the others, then dropped,
    counted and logged, while the accepted service's profiles keep flowing."""
    t_bad = busy(name="svc-refused", attrs="")
    t_good = busy(name="svc-accepted", attrs="")
    r = receiver(status=lambda path, body: 429 if _service_of(body) == "svc-refused" else 200)
    t0 = time.monotonic()
    # The flush at exit has time to finish: every refused profile then ends
    # with its last attempt, and no request is cut off (exact counts below).
    a = agent("-p", t_bad.pid, "-p", t_good.pid, "--interval", 0.3, "--otlp", r.url,
              "--max-attempts", 3, "--backoff-max", 0.2, "--flush-timeout", 120)

    def progress():
        got = r.got_answered()
        ok = [x for x in got if x[3] == 200]
        bad = collections.Counter(hashlib.sha256(x[2]).hexdigest() for x in got if x[3] == 429)
        return len(ok) >= 10 and sum(1 for n in bad.values() if n >= 3) >= 2
    wait_for(progress, 60, "accepted profiles to flow and refused ones to be given up")
    assert a.stop(timeout=150) == 0, a.err
    took = time.monotonic() - t0
    got = r.got_answered()
    assert {_service_of(x[2]) for x in got} == {"svc-refused", "svc-accepted"}
    assert all((x[3] == 429) == (_service_of(x[2]) == "svc-refused") for x in got)
    st = a.stats()["exporters"][0]
    assert st["sent"] == sum(1 for x in got if x[3] == 200), st
    # each refused profile was tried at most --max-attempts times
    tries = collections.Counter(hashlib.sha256(x[2]).hexdigest() for x in got if x[3] == 429)
    assert set(tries.values()) == {3}, tries
    assert st["expired"] == len(tries) >= 2, (st, tries)
    assert st["submitted"] == st["sent"] + st["expired"], st
    assert st["rejected"] == 0 and st["dropped_full"] == 0 and st["dropped_exit"] == 0, st
    lines = [l for l in a.err.splitlines()
             if re.search(r"dropped \d+ profiles \(\d+ bytes\) for \S+: still refused "
                          r"\(HTTP 429\) after 3 attempts each", l)]
    assert lines, a.err
    # one line at once, then at most one per 10 s, and at drain and exit
    assert len(lines) <= 3 + took / 10, (took, lines)
    logged = sum(int(re.search(r"dropped (\d+) profiles", l).group(1)) for l in lines)
    assert logged == st["expired"], (logged, st)


@pytest.mark.parametrize("how", ["down", "503"])
def test_backoff_is_not_cut_short_by_new_windows(busy, agent, receiver, tmp_path, how):
    """Destination down (connection refused) or answering 503 to everything,
    a window every 0.1 s: attempts follow the doubling back-off (each wait at
    least half of 0.5 s, 1 s, 2 s, ...), they are not made once per window."""
    t = busy()
    if how == "down":
        url = "http://127.0.0.1:%d" % free_port()     # nothing listens there
    else:
        r = receiver(status=503)
        url = r.url
    t0 = time.monotonic()
    a = agent("-p", t.pid, "--interval", 0.1, "--otlp", url, "--flush-timeout", 0)
    time.sleep(4)
    assert a.stop() == 0, a.err
    took = time.monotonic() - t0
    st = a.stats()["exporters"][0]
    assert st["submitted"] >= 10, st
    # n failed attempts need waits of at least 0.25 * (2^(n-1) - 1) s in all
    # (503: the first refusal sets only that profile aside, so one more);
    # the drain at exit allows one more attempt at once.
    bound = 2 + (how == "503") + math.log2(4 * took + 1)
    assert 1 <= st["failed_attempts"] <= bound, (st, took, bound)
    if how == "503":   # (the last one may have been cut off at exit)
        assert 1 <= len(r.got()) <= st["failed_attempts"]
    assert st["sent"] == 0 and st["expired"] == 0


def _collapsed_total(text):
    total = 0
    for line in text.splitlines():
        if line.strip():
            total += int(line.rsplit(" ", 1)[1])
    return total


def _spool_files(d):
    if not d.exists():
        return []
    return sorted(p for p in d.rglob("*.hmq") if re.match(r"^[0-9a-f]{16}\.hmq$", p.name))


def _server_samples(url, run):
    q = urllib.parse.urlencode({"query": 'process_cpu{run="%s"}' % run, "format": "collapsed",
                                "from": "now-1h", "until": "now+1h"})
    try:
        with urllib.request.urlopen(url + "/api/v1/download?" + q, timeout=30) as resp:
            return _collapsed_total(resp.read().decode())
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return 0
        raise


class _Server:
    def __init__(self, data, port):
        self.url = "http://127.0.0.1:%d" % port
        self.proc = subprocess.Popen([HOMURA, "server", "--data", str(data), "--listen",
                                      "127.0.0.1:%d" % port, "--quiet"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def ready():
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False
        wait_for(ready, 20, "the server")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()


@pytest.mark.asan
def test_spool_survives_kill9(busy, agent, tmp_path):
    """With --spool, what is queued is on disk at once: the server goes down,
    windows queue up, the agent is killed with SIGKILL; after both restart,
    every queued window reaches the server (its samples are counted through
    the query API)."""
    t = busy(lifetime=60)
    data, spool = tmp_path / "data", tmp_path / "spool"
    port = free_port()
    srv = _Server(data, port)
    url = "http://127.0.0.1:%d" % port
    try:
        a = agent("-p", t.pid, "--interval", 0.3, "--server", url, "--spool", spool,
                  "--label", "run=a", "--backoff-max", 0.5)
        wait_for(lambda: _server_samples(url, "a") > 0, 20, "the first profiles")
    finally:
        srv.stop()
    wait_for(lambda: len(_spool_files(spool)) >= 4, 20, "windows queued in the spool")
    a.proc.kill()                          # SIGKILL: no flush, no spill
    a.proc.wait()
    files = _spool_files(spool)
    assert len(files) >= 4
    queued = 0
    for i, f in enumerate(files):
        raw = f.read_bytes()
        assert raw[:4] == b"HMQ1"
        mlen = int.from_bytes(raw[4:8], "little")
        body = tmp_path / ("q%d.otlp.gz" % i)
        body.write_bytes(raw[8 + mlen:])
        queued += _collapsed_total(convert(body, "collapsed"))
    assert queued > 0

    srv = _Server(data, port)
    try:
        before = _server_samples(url, "a")
        b = agent("-p", t.pid, "--interval", 0.3, "--server", url, "--spool", spool,
                  "--label", "run=b")
        wait_for(lambda: _server_samples(url, "a") >= before + queued, 30,
                 "the queued windows to arrive")
        wait_for(lambda: not _spool_files(spool), 10, "the spool to empty")
        wait_for(lambda: _server_samples(url, "b") > 0, 30, "the new run's profiles")
        assert b.stop() == 0, b.err
        assert "from an earlier run" in b.err
        assert _server_samples(url, "a") == before + queued
    finally:
        srv.stop()


def test_series_limit_of_a_real_server(busy, agent, tmp_path):
    """The issue's case against a real `homura server --max-series 1`: the
    second service's profiles are answered 429 (series limit) and are given
    up after --max-attempts; the first service's keep arriving."""
    t1 = busy(name="svc-one", attrs="")
    t2 = busy(name="svc-two", attrs="")
    port = free_port()
    data = tmp_path / "data"
    srv = subprocess.Popen([HOMURA, "server", "--data", str(data), "--listen",
                            "127.0.0.1:%d" % port, "--quiet", "--max-series", "1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port

    def samples(svc):
        q = urllib.parse.urlencode({"query": 'process_cpu{service_name="%s"}' % svc,
                                    "format": "collapsed", "from": "now-1h", "until": "now+1h"})
        try:
            with urllib.request.urlopen(url + "/api/v1/download?" + q, timeout=30) as resp:
                return _collapsed_total(resp.read().decode())
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return 0
            raise
        except OSError:
            return 0
    try:
        wait_for(lambda: _ready(url), 20, "the server")
        a = agent("-p", t1.pid, "-p", t2.pid, "--interval", 0.3, "--server", url,
                  "--max-attempts", 2, "--flush-timeout", 120)
        wait_for(lambda: samples("svc-one") > 0 or samples("svc-two") > 0, 20, "a series")
        first = "svc-one" if samples("svc-one") > 0 else "svc-two"
        other = "svc-two" if first == "svc-one" else "svc-one"
        n0 = samples(first)
        wait_for(lambda: samples(first) > n0, 20, "more profiles of " + first)
        n1 = samples(first)
        wait_for(lambda: samples(first) > n1, 20, "more profiles of " + first)
        assert a.stop(timeout=150) == 0, a.err
        st = a.stats()["exporters"][0]
        assert samples(other) == 0
        assert st["sent"] >= 3 and st["expired"] >= 1, st
        assert st["submitted"] == st["sent"] + st["expired"], st
        assert re.search(r"still refused \(HTTP 429\) after 2 attempts each", a.err), a.err
    finally:
        srv.terminate()
        srv.wait(timeout=20)


def _ready(url):
    try:
        with urllib.request.urlopen(url + "/ready", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False
