"""`homura server` end to end: a real server on a free port and a temp data
directory, fed OTLP recorded from a real Python program (`homura record -f
otlp`, and OTLP JSON from `homura convert`), Pyroscope /ingest (folded,
lines, pprof in multipart) and the Push API (a PushRequest built with
`protoc --encode` from proto/pyroscope/push/v1/push.proto); the query API
must name the functions the program ran; hostile requests get 4xx and leave
the store as it was; a restart on the same directory answers the same;
bearer tokens are enforced."""
import gzip
import http.client
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from conftest import HOMURA, REPO, free_port, program

PROTO_DIR = REPO / "proto"


class Server:
    def __init__(self, data, *extra):
        self.data = str(data)
        self.extra = list(extra)
        self.proc = None
        self.start()

    def start(self):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = subprocess.Popen(
            [HOMURA, "server", "--data", self.data, "--listen",
             "127.0.0.1:%d" % self.port, "--quiet"] + self.extra,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if self.request("GET", "/ready")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("server did not become ready")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                assert self.proc.wait(10) == 0
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()

    def restart(self):
        self.stop()
        self.start()

    def request(self, method, path, body=None, headers=None, token=None):
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers=dict(headers or {}))
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers

    def get_json(self, path, token=None, **params):
        q = urllib.parse.urlencode(params, doseq=True)
        st, body, _ = self.request("GET", path + ("?" + q if q else ""), token=token)
        assert st == 200, (path, st, body)
        return json.loads(body)

    def ingest(self, name, body, fmt="folded", **extra):
        q = urllib.parse.urlencode(dict(name=name, format=fmt, **extra))
        return self.request("POST", "/ingest?" + q, body)


OTLP_PB = {"Content-Type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, default_py):
    """busy.py recorded as OTLP, plus the same profile as pprof and OTLP JSON."""
    d = tmp_path_factory.mktemp("rec")
    otlp = d / "busy.otlp"
    subprocess.run([HOMURA, "record", "-f", "otlp", "-o", str(otlp), "-d", "1.5", "--",
                    default_py.path, program("busy.py"), "30"],
                   check=True, capture_output=True, timeout=60)
    pprof = d / "busy.pb.gz"
    subprocess.run([HOMURA, "convert", str(otlp), "-o", str(pprof)], check=True,
                   capture_output=True, timeout=30)
    ojson = d / "busy.otlp.json"
    subprocess.run([HOMURA, "convert", str(otlp), "-f", "otlp-json", "-o", str(ojson)],
                   check=True, capture_output=True, timeout=30)
    return {"otlp": otlp.read_bytes(), "pprof": pprof.read_bytes(),
            "json": ojson.read_bytes()}


def push_request(service, pprof_bytes, tmp_path, version="1"):
    esc = "".join("\\%03o" % b for b in pprof_bytes)
    text = ('series { labels { name: "__name__" value: "process_cpu" } '
            'labels { name: "service_name" value: "%s" } '
            'labels { name: "version" value: "%s" } '
            'samples { raw_profile: "%s" ID: "%s" } }' % (service, version, esc,
                                                           uuid.uuid4()))
    r = subprocess.run(["protoc", "--proto_path", str(PROTO_DIR),
                        "--encode=push.v1.PushRequest", "pyroscope/push/v1/push.proto"],
                       input=text.encode(), capture_output=True, check=True)
    return r.stdout


def fn_names(top):
    return {f["name"] for f in top["functions"]}


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path / "data")
    yield s
    s.stop()


def fill(server, recorded, tmp_path):
    """One of every ingest path; returns nothing, asserts 200s."""
    st, body, hdr = server.request("POST", "/v1development/profiles", recorded["otlp"], OTLP_PB)
    assert st == 200 and body == b"" and "protobuf" in hdr["Content-Type"]
    st, _, _ = server.request("POST", "/v1development/profiles", gzip.compress(recorded["otlp"]),
                              dict(OTLP_PB, **{"Content-Encoding": "gzip"}))
    assert st == 200
    st, body, _ = server.request("POST", "/v1development/profiles", recorded["json"],
                                 {"Content-Type": "application/json"})
    assert st == 200 and json.loads(body) == {}
    st, _, _ = server.ingest("shop.cpu{env=prod,version=1.4}",
                             b"main;handle;slow_query 30\nmain;handle;render 10\n",
                             sampleRate="100")
    assert st == 200
    st, _, _ = server.ingest("shop.cpu{env=prod,version=1.5}",
                             b"main;handle;slow_query\nmain;handle;render\nmain;handle;render\n",
                             fmt="lines")
    assert st == 200
    boundary = "xyzBOUNDARY"
    mp = (("--%s\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"p.pb.gz\"\r\n"
           "Content-Type: application/octet-stream\r\n\r\n" % boundary).encode()
          + recorded["pprof"] + ("\r\n--%s--\r\n" % boundary).encode())
    st, _, _ = server.request("POST", "/ingest?name=viapprof.cpu&format=pprof", mp,
                              {"Content-Type": "multipart/form-data; boundary=" + boundary})
    assert st == 200
    st, body, hdr = server.request("POST", "/push.v1.PusherService/Push",
                                   push_request("pushed", recorded["pprof"], tmp_path),
                                   {"Content-Type": "application/proto"})
    assert st == 200, body
    assert hdr["Content-Type"] == "application/proto"


def snapshot(server):
    """Answers that must survive restarts and hostile requests."""
    flame = server.get_json("/api/v1/flamegraph", service="shop", **{"from": "now-1d"})
    del flame["from"], flame["until"]      # they move with the clock
    return {
        "flame": flame,
        "services": server.get_json("/api/v1/services"),
        "top": server.get_json("/api/v1/top", query="process_cpu{}", **{"from": "now-1d"}),
        "labels": server.get_json("/api/v1/labels"),
    }


def test_ingest_and_query(server, recorded, tmp_path):
    fill(server, recorded, tmp_path)
    services = {s["name"] for s in server.get_json("/api/v1/services")["services"]}
    assert {"shop", "viapprof", "pushed", "busy"} <= services

    # OTLP (3 posts: protobuf, gzip, JSON) of the real program names its functions;
    # `record -f otlp` names the service after the program (service.name)
    top = server.get_json("/api/v1/top", service="busy", **{"from": "now-1d"})
    assert "busy_work" in fn_names(top)
    assert top["unit"] == "nanoseconds"
    busy = [f for f in top["functions"] if f["name"] == "busy_work"][0]
    assert busy["self"] > 0.5 * top["total"]
    for svc in ("viapprof", "pushed"):
        t = server.get_json("/api/v1/top", service=svc, **{"from": "now-1d"})
        assert "busy_work" in fn_names(t), svc
        # same profile each time: the pprof path and the OTLP path agree
        assert t["total"] * 3 == top["total"]

    # resource attributes became labels; version= filters
    labels = server.get_json("/api/v1/labels")["labels"]
    assert "process_runtime_version" in labels and "service_name" in labels
    assert server.get_json("/api/v1/label_values", name="version")["values"] == ["1", "1.4", "1.5"]
    v14 = server.get_json("/api/v1/top", query='process_cpu{service_name="shop",version="1.4"}',
                          **{"from": "now-1d"})
    assert v14["total"] == 40 * 10_000_000     # 40 samples at 100 Hz
    v15 = server.get_json("/api/v1/top", query='process_cpu:samples:count:cpu:nanoseconds'
                          '{service_name="shop",version="1.5"}', **{"from": "now-1d"})
    assert v15["unit"] == "samples" and v15["total"] == 3

    series = server.get_json("/api/v1/series", query='{service_name="shop"}')["series"]
    assert len(series) == 2 and all(s["labels"]["env"] == "prod" for s in series)
    types = [t["id"] for t in server.get_json("/api/v1/profile_types")["profile_types"]]
    assert "process_cpu:cpu:nanoseconds:cpu:nanoseconds" in types

    ts = server.get_json("/api/v1/timeseries", service="shop", step="10",
                         **{"from": "now-5m"})
    assert sum(ts["values"]) == 43 * 10_000_000 and len(ts["values"]) == len(ts["timestamps"])

    # flame graph with a node limit keeps the total, folding into "other"
    full = server.get_json("/api/v1/flamegraph", service="busy", **{"from": "now-1d"})
    assert full["total"] > 0
    # shop: all > main > handle > {slow_query 31, render 12}
    small = server.get_json("/api/v1/flamegraph", service="shop", max_nodes="3",
                            **{"from": "now-1d"})
    assert small["total"] == 43 * 10_000_000 and small["nodes_total"] == 5
    assert [n["name"] for n in small["nodes"]] == ["all", "main", "handle", "other"]
    assert small["nodes"][3]["total"] == small["nodes"][3]["self"] == small["total"]
    assert any(n["name"] == "busy_work" for n in full["nodes"])

    # diff of two versions
    diff = server.get_json("/api/v1/diff", baseline='process_cpu{service_name="shop",version="1.4"}',
                           comparison='process_cpu{service_name="shop",version="1.5"}',
                           **{"from": "now-1d"})
    sq = [n for n in diff["nodes"] if n["name"] == "slow_query"][0]
    assert sq["base_total"] == 30 * 10_000_000 and sq["total"] == 1 * 10_000_000

    # downloads in three formats
    st, body, _ = server.request("GET", "/api/v1/download?format=collapsed&service=shop&from=now-1d")
    assert st == 200 and b"main;handle;slow_query 31" in body
    st, body, _ = server.request("GET", "/api/v1/download?format=pprof&service=pushed&from=now-1d")
    assert st == 200 and body[:2] == b"\x1f\x8b"
    p = tmp_path / "dl.pb.gz"
    p.write_bytes(body)
    out = subprocess.run([HOMURA, "convert", str(p), "-f", "collapsed", "-o", "-"],
                         capture_output=True, check=True).stdout
    assert b"busy_work" in out
    st, body, _ = server.request("GET", "/api/v1/download?format=speedscope&service=shop&from=now-1d")
    assert st == 200 and "shared" in json.loads(body)

    # Pyroscope render (flamebearer), both selector syntaxes
    for q in ('process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="shop"}',
              "shop.cpu{env=prod}"):
        r = server.get_json("/pyroscope/render", query=q, format="json",
                            **{"from": "now-1h", "until": "now"})
        fb = r["flamebearer"]
        assert fb["numTicks"] == 43 * 10_000_000
        assert "slow_query" in fb["names"]
        assert all(len(level) % 4 == 0 for level in fb["levels"])
        assert fb["levels"][0][1] == fb["numTicks"]
        assert sum(r["timeline"]["samples"]) == fb["numTicks"]


def test_hostile_requests_and_restart(server, recorded, tmp_path):
    fill(server, recorded, tmp_path)
    before = snapshot(server)
    otlp = recorded["otlp"]
    bomb = gzip.compress(b"\0" * (80 << 20))            # 80 MiB of zeros > 64 MiB cap
    cases = [
        ("POST", "/v1development/profiles", otlp[: len(otlp) // 2], OTLP_PB),
        ("POST", "/v1development/profiles", b"\x0a\xff\xff\xff\xff\x0f", OTLP_PB),
        ("POST", "/v1development/profiles", bomb, dict(OTLP_PB, **{"Content-Encoding": "gzip"})),
        ("POST", "/v1development/profiles", otlp, dict(OTLP_PB, **{"Content-Encoding": "gzip"})),
        ("POST", "/v1development/profiles", b"{not json", {"Content-Type": "application/json"}),
        ("POST", "/v1development/profiles", b"main;x 1\n", OTLP_PB),
        ("POST", "/ingest?name=" + urllib.parse.quote("a{bad key=1}"), b"main;x 1\n", {}),
        ("POST", "/ingest?name=" + urllib.parse.quote("a{k=%s}" % ("v" * 5000)), b"main;x 1\n", {}),
        ("POST", "/ingest?name=a&format=pprof", recorded["pprof"][:200], {}),
        ("POST", "/ingest?name=a&format=trie", b"x", {}),
        ("POST", "/ingest", b"main;x 1\n", {}),
        ("POST", "/push.v1.PusherService/Push", b"\x0a\x05\x0a\x03", {"Content-Type": "application/proto"}),
        ("POST", "/push.v1.PusherService/Push", push_request("p", b"not pprof", tmp_path),
         {"Content-Type": "application/proto"}),
        ("GET", "/api/v1/flamegraph?query=" + urllib.parse.quote("process_cpu{a=1}"), None, {}),
        ("GET", "/api/v1/flamegraph?from=yesterday", None, {}),
        ("GET", "/api/v1/timeseries?from=0&until=now&step=1", None, {}),
        ("GET", "/api/v1/nope", None, {}),
        ("GET", "/v1development/profiles", None, {}),
    ]
    for method, path, body, hdr in cases:
        st, resp, _ = server.request(method, path, body, hdr)
        assert 400 <= st < 500, (path, st, resp[:200])
    # an over-long Content-Length is refused before the body is read
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("POST", "/v1development/profiles")
    conn.putheader("Content-Type", "application/x-protobuf")
    conn.putheader("Content-Length", str(65 << 20))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    assert snapshot(server) == before

    server.restart()
    assert snapshot(server) == before


def test_tokens(tmp_path, recorded):
    s = Server(tmp_path / "data", "--ingest-token", "in-secret", "--read-token", "rd-secret")
    try:
        assert s.request("GET", "/ready")[0] == 200
        body = b"main;work 5\n"
        assert s.ingest("tok.cpu", body)[0] == 401
        st, _, _ = s.request("POST", "/ingest?name=tok.cpu", body, token="rd-secret")
        assert st == 401
        st, _, _ = s.request("POST", "/ingest?name=tok.cpu", body, token="in-secret")
        assert st == 200
        assert s.request("GET", "/api/v1/services")[0] == 401
        assert s.request("GET", "/api/v1/services", token="in-secret")[0] == 401
        assert s.request("GET", "/api/v1/services", token="rd-secret-x")[0] == 401
        svcs = s.get_json("/api/v1/services", token="rd-secret")["services"]
        assert [x["name"] for x in svcs] == ["tok"]
        st, _, _ = s.request("POST", "/v1development/profiles", recorded["otlp"], OTLP_PB,
                             token="wrong")
        assert st == 401
    finally:
        s.stop()
