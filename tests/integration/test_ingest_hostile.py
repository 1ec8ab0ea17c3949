"""`homura server` against hostile ingest requests (issue 10): real HTTP
requests to a real server on a temp data directory (and on a real PostgreSQL
where installed).

- a small gzip OTLP body that unpacks into millions of empty strings is
  refused (413) before it is decoded, also four at once, and the server's
  peak memory (VmHWM) stays far below what decoding it would take; so is an
  OTLP request whose many resource profiles share a large dictionary;
- folded input with an empty stack, a negative count or a count whose
  weight overflows 64 bits is refused (400) and stores nothing; the series
  still answers queries after a restart; an empty stack that does get stored
  (a pprof sample without locations) reads back, also after a restart;
- with --max-series 2 a Push request needing 3 new series answers 429 and
  stores none of them (a retry cannot duplicate), on SQLite and PostgreSQL;
- a profile with many distinct stacks (written in several transactions)
  arrives whole while other ingests go on."""
import gzip
import json
import os
import subprocess
import threading
import uuid

import pytest

from conftest import HOMURA
from test_server import PROTO_DIR, Server
from test_server_pg import postgres  # noqa: F401

pytestmark = pytest.mark.asan      # also run against the ASan+UBSan build


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def pb_field(field, payload):
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def services(server):
    return {s["name"] for s in server.get_json("/api/v1/services")["services"]}


def series(server):
    return server.get_json("/api/v1/series")["series"]


@pytest.fixture
def pg_db(postgres):  # noqa: F811
    """A fresh database of the module's PostgreSQL cluster for one test."""
    name = "t_" + uuid.uuid4().hex[:12]
    subprocess.run(["psql", "-q", "-d", postgres, "-c", "CREATE DATABASE %s" % name],
                   check=True, capture_output=True, timeout=60)
    return postgres.replace(":///postgres?", ":///%s?" % name)


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path / "data")
    yield s
    s.stop()


# 3M empty strings (field 5 of the OTLP dictionary): 6 MB, 6 KB gzip'd;
# protobuf-c alone would take ~220 MB to unpack it.
N_STRINGS = 3_000_000
PEAK_LIMIT_KIB = 120 * 1024


def amplifying_otlp():
    body = pb_field(1, b"") + pb_field(2, b"\x2a\x00" * N_STRINGS)
    return gzip.compress(body)


def test_protobuf_amplification_refused(server):
    body = amplifying_otlp()
    assert len(body) < 64 * 1024
    hdr = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    st, msg, _ = server.request("POST", "/v1development/profiles", body, hdr)
    assert st == 413, (st, msg)
    assert b"over the decoding limit" in msg and b"string_table" in msg
    # four at once: each refused (413) or told to come back (503)
    answers = []

    def post():
        answers.append(server.request("POST", "/v1development/profiles", body, hdr)[0])

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) and set(answers) <= {413, 503}, answers
    assert vm_hwm_kib(server.proc.pid) < PEAK_LIMIT_KIB
    # the same as Push (raw_profile holding it as pprof: string_table = 6)
    pprof = gzip.compress(b"\x32\x00" * N_STRINGS)
    push = pb_field(1, pb_field(2, pb_field(1, pprof)))   # series.samples.raw_profile
    st, msg, _ = server.request("POST", "/push.v1.PusherService/Push", push,
                                {"Content-Type": "application/proto"})
    assert st == 413, (st, msg)
    assert json.loads(msg)["code"] == "resource_exhausted"
    assert vm_hwm_kib(server.proc.pid) < PEAK_LIMIT_KIB
    # and the server goes on serving
    st, _, _ = server.ingest("app.cpu", b"main;work 3\n")
    assert st == 200
    assert server.request("GET", "/ready")[0] == 200
    assert services(server) == {"app"}


def test_many_resources_sharing_a_large_dictionary_refused(server):
    # each resource profile is decoded with the whole dictionary: 40 x 4 MB
    strings = b"".join(pb_field(5, b"%06d" % i + b"x" * 994) for i in range(4000))
    body = b"".join(pb_field(1, b"") for _ in range(40)) + pb_field(2, pb_field(5, b"") + strings)
    hdr = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    st, msg, _ = server.request("POST", "/v1development/profiles", gzip.compress(body), hdr)
    assert st == 413, (st, msg)
    assert b"separate requests" in msg
    assert series(server) == []
    # the same dictionary with 2 resources is fine
    body = b"".join(pb_field(1, b"") for _ in range(2)) + pb_field(2, pb_field(5, b"") + strings)
    st, msg, _ = server.request("POST", "/v1development/profiles", gzip.compress(body), hdr)
    assert st == 200, (st, msg)


def test_bad_folded_input_refused(server):
    for body in (b" 5\n", b"main;work 3\n;; 5\n", b"main;work -3\n",
                 b"main;work -9223372036854775808\n", b"main;work 1000000000000\n",
                 b"main;work 9223372036854775807\nmain;idle 9223372036854775807\n"):
        st, msg, _ = server.ingest("app.cpu", body)
        assert st == 400, (body, st, msg)
        assert msg.count(b"\n") <= 1
    assert series(server) == []
    st, _, _ = server.ingest("app.cpu", b"main;work 3\nmain;idle 2\n")
    assert st == 200
    for _ in range(2):    # the same after a restart
        flame = server.get_json("/api/v1/flamegraph", service="app", **{"from": "now-1d"})
        assert flame["total"] == 5 * 10_000_000
        top = server.get_json("/api/v1/top", service="app", **{"from": "now-1d"})
        assert all(f["self"] >= 0 and f["total"] >= 0 for f in top["functions"])
        server.restart()


def vfield(field, v):
    return varint(field << 3) + varint(v)


def pprof_with_empty_stack():
    """samples/count: 5 samples with no location at all, 7 in main (app.py:3)."""
    strings = b"".join(pb_field(6, x) for x in (b"", b"samples", b"count", b"main", b"app.py"))
    return (pb_field(1, vfield(1, 1) + vfield(2, 2))
            + pb_field(2, pb_field(2, b"\x05"))
            + pb_field(2, pb_field(1, b"\x01") + pb_field(2, b"\x07"))
            + pb_field(4, vfield(1, 1) + pb_field(4, vfield(1, 1) + vfield(2, 3)))
            + pb_field(5, vfield(1, 1) + vfield(2, 3) + vfield(4, 4))
            + strings)


def check_empty_stack_stored(server):
    st, msg, _ = server.ingest("empty.cpu", pprof_with_empty_stack(), fmt="pprof")
    assert st == 200, msg
    for _ in range(2):    # a stored empty stack reads back, also after a restart
        top = server.get_json("/api/v1/top", service="empty", **{"from": "now-1d"})
        assert top["total"] == 12
        flame = server.get_json("/api/v1/flamegraph", service="empty", **{"from": "now-1d"})
        assert flame["total"] == 12
        st, dl, _ = server.request("GET", "/api/v1/download?format=collapsed&service=empty"
                                   "&from=now-1d")
        assert st == 200 and b"main (app.py:3) 7" in dl
        server.restart()


def test_empty_stack_reads_back_sqlite(server):
    check_empty_stack_stored(server)


def test_empty_stack_reads_back_postgres(pg_db):
    s = Server(pg_db)
    try:
        check_empty_stack_stored(s)
    finally:
        s.stop()


def push_request(tmp_path, services_and_versions):
    folded = tmp_path / ("p-%s.folded" % uuid.uuid4())
    folded.write_text("main;handle 7\nmain;idle 3\n")
    pprof = tmp_path / ("p-%s.pb.gz" % uuid.uuid4())
    subprocess.run([HOMURA, "convert", str(folded), "-o", str(pprof)], check=True,
                   capture_output=True, timeout=30)
    esc = "".join("\\%03o" % b for b in pprof.read_bytes())
    text = "".join(
        'series { labels { name: "__name__" value: "process_cpu" } '
        'labels { name: "service_name" value: "%s" } '
        'samples { raw_profile: "%s" ID: "%s" } } ' % (svc, esc, uuid.uuid4())
        for svc in services_and_versions)
    r = subprocess.run(["protoc", "--proto_path", str(PROTO_DIR),
                        "--encode=push.v1.PushRequest", "pyroscope/push/v1/push.proto"],
                       input=text.encode(), capture_output=True, check=True)
    return r.stdout


def check_series_limit(server, tmp_path):
    proto = {"Content-Type": "application/proto"}
    three = push_request(tmp_path, ["a", "b", "c"])
    for _ in range(3):     # a retrying client
        st, msg, _ = server.request("POST", "/push.v1.PusherService/Push", three, proto)
        assert st == 429, (st, msg)
        assert json.loads(msg)["code"] == "resource_exhausted"
        assert series(server) == []
    st, msg, _ = server.request("POST", "/push.v1.PusherService/Push",
                                push_request(tmp_path, ["a", "b"]), proto)
    assert st == 200, msg
    assert services(server) == {"a", "b"}

    def totals():
        return [server.get_json("/api/v1/top", service=svc, **{"from": "now-1d"})["total"]
                for svc in ("a", "b")]

    before = totals()
    assert before == [10, 10]      # 10 samples each (counts: no period in the pprof)
    # two known series and one new one: refused whole, a and b not added again
    st, _, _ = server.request("POST", "/push.v1.PusherService/Push", three, proto)
    assert st == 429
    assert services(server) == {"a", "b"}
    assert totals() == before


def test_series_limit_stores_nothing_sqlite(tmp_path):
    s = Server(tmp_path / "data", "--max-series", "2")
    try:
        check_series_limit(s, tmp_path)
    finally:
        s.stop()


def test_series_limit_stores_nothing_postgres(pg_db, tmp_path):
    s = Server(pg_db, "--max-series", "2")
    try:
        check_series_limit(s, tmp_path)
    finally:
        s.stop()


def test_many_stacks_arrive_whole_among_other_ingests(server):
    n = 60_000     # more than ten write transactions of 4096 stacks
    body = "".join("main;mod%d;fn%d 1\n" % (i % 97, i) for i in range(n)).encode()
    results = []

    def big():
        results.append(server.ingest("big.cpu", body)[0])

    t = threading.Thread(target=big)
    t.start()
    small = [server.ingest("small.cpu", b"main;tick 1\n")[0] for _ in range(20)]
    t.join()
    assert results == [200] and small == [200] * 20
    top = server.get_json("/api/v1/top", service="big", **{"from": "now-1d"})
    assert top["total"] == n * 10_000_000
    st, dl, _ = server.request("GET", "/api/v1/download?format=collapsed&service=big"
                               "&from=now-1d")
    assert st == 200 and len(dl.splitlines()) == n
    assert server.get_json("/api/v1/top", service="small",
                           **{"from": "now-1d"})["total"] == 20 * 10_000_000
