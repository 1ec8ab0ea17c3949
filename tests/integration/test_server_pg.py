"""`homura server --data postgres://...`: two server instances on one real
PostgreSQL, started by this test (initdb into a temp dir, trust auth, a
Unix socket under /tmp, no TCP), stopped at the end. Everything is ingested
through server A and queried through server B (and the other way round); the
answers must match what the SQLite store gives for the same input (the same
assertions as test_server.py). Skipped, with the reason, when PostgreSQL's
server binaries are not installed."""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import HOMURA
from test_server import Server, fill, fn_names, free_port, recorded, snapshot  # noqa: F401


def _pg_bindir():
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "pg_ctl")):
            return d
    for name in ("initdb", "pg_ctl"):
        if not shutil.which(name):
            return None
    return os.path.dirname(shutil.which("initdb"))


@pytest.fixture(scope="module")
def postgres():
    bindir = _pg_bindir()
    if not bindir:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed: "
                    "apt-get install postgresql")
    # initdb refuses to run as root: run the cluster as the postgres user
    as_user = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to own the cluster")
        as_user = ["runuser", "-u", "postgres", "--"]
    base = tempfile.mkdtemp(prefix="homura-pg-", dir="/tmp")
    os.chmod(base, 0o755)
    if owner:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    data = os.path.join(base, "data")
    port = free_port()
    log = os.path.join(base, "log")
    subprocess.run(as_user + [os.path.join(bindir, "initdb"), "-D", data, "--auth=trust",
                              "-U", "postgres", "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True)
    subprocess.run(as_user + [os.path.join(bindir, "pg_ctl"), "-D", data, "-l", log, "-w",
                              "-t", "30", "-o",
                              "-k %s -p %d -c listen_addresses='' -c fsync=off "
                              "-c synchronous_commit=off -c full_page_writes=off" % (base, port),
                              "start"], check=True, capture_output=True)
    url = "postgresql:///postgres?host=%s&port=%d&user=postgres" % (base, port)
    try:
        yield url
    finally:
        subprocess.run(as_user + [os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "immediate",
                                  "-w", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_two_servers_share_one_database(postgres, recorded, tmp_path):
    # both start at once: one creates the tables, the other waits for it
    a = Server(postgres)
    b = Server(postgres)
    try:
        fill(a, recorded, tmp_path)
        # A acknowledges a profile before its write transaction commits (the
        # writer batches): give B a moment to see the last one.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = b.get_json("/api/v1/top", query='process_cpu{service_name="shop",version="1.5"}',
                               **{"from": "now-1d"})
            if probe["total"]:
                break
            time.sleep(0.1)
        # B never saw an ingest request, yet knows every series and answers
        services = {s["name"] for s in b.get_json("/api/v1/services")["services"]}
        assert {"shop", "viapprof", "pushed", "busy"} <= services
        assert snapshot(a) == snapshot(b)

        top = b.get_json("/api/v1/top", service="busy", **{"from": "now-1d"})
        assert "busy_work" in fn_names(top)
        for svc in ("viapprof", "pushed"):
            t = b.get_json("/api/v1/top", service=svc, **{"from": "now-1d"})
            assert t["total"] * 3 == top["total"], svc
        v14 = b.get_json("/api/v1/top", query='process_cpu{service_name="shop",version="1.4"}',
                         **{"from": "now-1d"})
        assert v14["total"] == 40 * 10_000_000
        v15 = b.get_json("/api/v1/top", query='process_cpu:samples:count:cpu:nanoseconds'
                         '{service_name="shop",version="1.5"}', **{"from": "now-1d"})
        assert v15["unit"] == "samples" and v15["total"] == 3
        ts = b.get_json("/api/v1/timeseries", service="shop", step="10", **{"from": "now-5m"})
        assert sum(ts["values"]) == 43 * 10_000_000
        small = b.get_json("/api/v1/flamegraph", service="shop", max_nodes="3",
                           **{"from": "now-1d"})
        assert small["total"] == 43 * 10_000_000 and small["nodes_total"] == 5
        st, body, _ = b.request("GET", "/api/v1/download?format=collapsed&service=shop"
                                "&from=now-1d")
        assert st == 200 and b"main;handle;slow_query 31" in body

        # the other direction: ingest into B, A sees the sum at once
        st, _, _ = b.ingest("shop.cpu{env=prod,version=1.4}", b"main;handle;slow_query 5\n",
                            sampleRate="100")
        assert st == 200
        v14 = a.get_json("/api/v1/top", query='process_cpu{service_name="shop",version="1.4"}',
                         **{"from": "now-1d"})
        assert v14["total"] == 45 * 10_000_000

        # a restarted server (fresh caches) answers the same
        before = snapshot(a)
        b.restart()
        assert snapshot(b) == before

        # bad input through one server leaves the shared store as it was
        st, _, _ = a.ingest("shop.cpu{bad label=x}", b"main 1\n")
        assert st == 400
        assert snapshot(b) == before
    finally:
        a.stop()
        b.stop()


def test_bad_url_fails_cleanly(tmp_path):
    r = subprocess.run([HOMURA, "server", "--data",
                        "postgresql:///nodb?host=%s&port=1&connect_timeout=2" % tmp_path,
                        "--listen", "127.0.0.1:0"], capture_output=True, timeout=30)
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "postgres" in err and "Traceback" not in err and err.count("\n") <= 2
