"""The dashboard (docs/dashboard.md) end to end in a real browser: a real
`homura server` is fed pprof recorded from real Python processes (`homura
record` of tests/programs/shares.py and busy.py, ingested as service "shop",
version 1.4 and 1.5); Debian's chromium, driven by playwright-core from npm
(tests/browser/, pinned by its package-lock.json), opens the page at
1280x720, and what it drew (exposed on window.__homura) must match the query
API's numbers: chart total, flame graph total and nodes, a clicked frame's
total, the tooltip, the source view, a search's share, keyboard moves, the
top table, a sandwich, a comparison of two versions (diff and side by side,
most grown function first), a shared URL restoring the view, the collapsed
and SVG exports. Screenshots are kept in build/test-artifacts/dashboard/.
Skipped only when chromium or npm is missing."""
import json
import os
import re
import shutil
import subprocess
import urllib.parse

import pytest

from conftest import HOMURA, REPO, program
from test_server import Server

BROWSER_DIR = REPO / "tests" / "browser"
ARTIFACTS = REPO / "build" / "test-artifacts" / "dashboard"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def need_browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("no chromium at %s (scripts/install-deps.sh installs Debian's)" % CHROMIUM)
    if not shutil.which("npm") or not shutil.which("node"):
        pytest.skip("npm/node missing (scripts/install-deps.sh installs them)")
    lock = BROWSER_DIR / "node_modules" / ".package-lock.json"
    if not lock.exists() or lock.stat().st_mtime < (BROWSER_DIR / "package-lock.json").stat().st_mtime:
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=BROWSER_DIR, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, "npm ci in tests/browser failed: " + r.stderr[-2000:]


# frame names that are HTML: the page must show them as text
XSS = '<img src=x onerror="window.__pwned=1">'
EVIL = "main;%s;leaf\"'&amp; 7\n" % XSS


def record_pprof(tmp, py, prog, secs):
    otlp, pprof = tmp / (prog + ".otlp"), tmp / (prog + ".pb.gz")
    subprocess.run([HOMURA, "record", "-f", "otlp", "-o", str(otlp), "-d", str(secs), "--",
                    py.path, program(prog), "30"], check=True, capture_output=True, timeout=60)
    subprocess.run([HOMURA, "convert", str(otlp), "-o", str(pprof)], check=True,
                   capture_output=True, timeout=30)
    return pprof.read_bytes()


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path / "data")
    yield s
    s.stop()


def ingest(server, name, body):
    st, resp, _ = server.request("POST", "/ingest?" + urllib.parse.urlencode(
        dict(name=name, format="pprof")), body)
    assert st == 200, resp


def outermost_sum(nodes, pred):
    """Totals of the matching nodes that have no matching ancestor."""
    hit, total, count = {}, 0, 0
    for n in nodes[1:]:
        m = pred(n["text"])
        count += m
        inside = hit.get(n["parent"], False)
        if m and not inside:
            total += n["total"]
        hit[n["id"]] = inside or m
    return total, count


def test_dashboard_in_chromium(server, tmp_path, default_py):
    need_browser()
    _, page, _ = server.request("GET", "/")
    assert b'src="/ui/app.js"' in page, \
        "the server answers / without the dashboard (npm is here: was it built?)"
    shares = record_pprof(tmp_path, default_py, "shares.py", 2)
    busy = record_pprof(tmp_path, default_py, "busy.py", 1.5)
    ingest(server, "shop.cpu{version=1.4}", shares)
    ingest(server, "shop.cpu{version=1.5}", shares)
    ingest(server, "shop.cpu{version=1.5}", busy)
    ingest(server, "other.cpu{env=dev}", busy)
    st, _, _ = server.ingest("evil.cpu", EVIL.encode())
    assert st == 200

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    r = subprocess.run(["node", str(BROWSER_DIR / "dashboard.mjs"), server.url, "shop",
                        str(ARTIFACTS), "spend_sixty", "spend_", "version=1.4", "version=1.5", "evil"],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, CHROMIUM=CHROMIUM))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    (ARTIFACTS / "report.json").write_text(json.dumps(out, indent=1))
    assert out["errors"] == [], out["errors"]

    rng = {"from": "now-1h"}
    api = server.get_json("/api/v1/flamegraph", service="shop", max_nodes=10000, **rng)
    ts = server.get_json("/api/v1/timeseries", service="shop", **rng)
    top = server.get_json("/api/v1/top", service="shop", limit=2000, **rng)
    nodes = api["nodes"]

    # first load: chart and flame graph agree with the API
    load = out["load"]
    assert out["title"] == "homura"
    assert load["state"]["svc"] == "shop"
    assert load["chart"]["total"] == sum(ts["values"]) == api["total"] > 0
    assert load["flame"]["total"] == api["total"]
    assert load["flame"]["nodes"] == len(nodes) and load["flame"]["drawn"] > 3
    assert load["flame"]["unit"] == "nanoseconds"

    # hover and click into spend_sixty
    sixty = [n for n in nodes if n["name"] == "spend_sixty"]
    assert sixty, [n["name"] for n in nodes]
    widest = max(sixty, key=lambda n: n["total"])
    assert "spend_sixty" in out["tooltip"] and "shares.py" in out["tooltip"]
    shown = re.search(r"total [^·]+· ([0-9.]+)%", out["tooltip"])
    assert shown, out["tooltip"]
    assert abs(float(shown.group(1)) - 100.0 * widest["total"] / api["total"]) < 0.051
    fl = out["focus"]["flame"]
    assert fl["focus"] == widest["text"] and fl["focusTotal"] == widest["total"]
    assert "main" in out["crumbs"] and "spend_sixty" in out["crumbs"]
    assert "focus=" in out["focusURL"]

    # its source view: the file's lines, per-line self as in the by=line tree
    src = out["source"]["source"]
    shares_py = program("shares.py")
    with open(shares_py, encoding="utf-8") as f:
        assert src.get("lines") == len(f.read().splitlines()), src
    by_line = server.get_json("/api/v1/flamegraph", service="shop", max_nodes=10000, by="line",
                              **rng)["nodes"]
    want = sum(n["self"] for n in by_line if n["text"].startswith(n["name"] + " (" + shares_py + ":"))
    assert sum(h["self"] for h in src["hits"]) == want > 0
    hot = [n for n in by_line if n["name"] == "spend_sixty"]
    assert src["hot"] == int(max(hot, key=lambda n: n["total"])["text"].rsplit(":", 1)[1][:-1])

    # search: the share of the outermost matches
    value, count = outermost_sum(nodes, lambda t: "spend_" in t.lower())
    assert out["search"]["search"] == {"count": count, "value": value} and count >= 1
    assert "%d matching" % count in out["searchInfo"]

    # the shared URL restores focus and search
    rs = out["restored"]
    assert rs["state"]["q"] == "spend_" and rs["flame"]["focus"] == widest["text"]
    assert rs["search"] == out["search"]["search"]
    assert out["afterEscape"]["flame"]["focus"] == "all"
    assert out["afterEscape"]["state"]["q"] == ""
    # two steps down from the root: the first child of its first child
    down2 = 2 if len(nodes) > 2 and nodes[2]["parent"] == 1 else 1
    assert out["keyboard"]["flame"]["focus"] == nodes[down2]["text"]

    # top table sorted by total: the largest total first
    assert out["table"]["table"]["rows"] == len(top["functions"])
    assert out["table"]["table"]["first"]["total"] == max(f["total"] for f in top["functions"])

    # sandwich of spend_sixty: its total is the top endpoint's total for it
    sw = out["sandwich"]["sandwich"]
    f60 = [f for f in top["functions"] if f["name"] == "spend_sixty"][0]
    assert sw["fn"] == widest["text"] and sw["total"] == f60["total"]

    # bottom-up: the roots are the functions with self time, with their self
    bu = out["bottomup"]
    assert bu["state"]["mode"] == "bottomup" and bu["flame"]["shownTotal"] == api["total"]
    selfs = {}
    for f in top["functions"]:
        if f["self"]:
            key = "%s (%s)" % (f["name"], f["file"]) if f["file"] else f["name"]
            selfs[key] = f["self"]
    assert out["bottomupRoots"] == selfs

    # comparison of version 1.4 with 1.5: the same totals as /api/v1/diff;
    # busy_work (only in 1.5) grew most
    diff = server.get_json(
        "/api/v1/diff", baseline='process_cpu{service_name="shop",version="1.4"}',
        comparison='process_cpu{service_name="shop",version="1.5"}', **rng)
    d = out["diff"]["diff"]
    assert d["baseTotal"] == diff["base_total"] == d["treeBase"] > 0
    assert d["total"] == diff["total"] == d["treeTotal"] > diff["base_total"]
    assert d["grown"][0]["name"] == "busy_work" and d["grown"][0]["dself"] > 0
    assert "busy_work" in out["cmpInfo"]
    side = out["side"]["side"]
    assert side["baseTotal"] == diff["base_total"] and side["total"] == diff["total"]
    assert min(side["drawn"]) > 3

    # theme, exports
    assert out["theme"] == "dark"
    # brush: the range picked on the chart is what the flame graph shows
    b = out["brush"]
    bf, bu = b["state"]["from"], b["state"]["until"]
    assert bf.isdigit() and bu.isdigit() and int(bf) < int(bu)
    brushed = server.get_json("/api/v1/flamegraph", service="shop", max_nodes=10000,
                              **{"from": bf, "until": bu})
    assert b["flame"]["total"] == brushed["total"] == api["total"]
    st, body, _ = server.request("GET", "/api/v1/download?" + urllib.parse.urlencode(
        dict(service="shop", format="collapsed", **rng)))
    assert st == 200
    assert sorted(out["collapsed"].splitlines()) == sorted(body.decode().splitlines())
    assert out["svg"] > 1000
    # hostile names stay text
    ev = out["evil"]
    assert ev["pwned"] == 0 and ev["imgs"] == 0, ev
    assert XSS in ev["cells"] and XSS in ev["crumbs"], ev
    for shot in ("1-flamegraph", "3-focused", "4-search", "6-sandwich", "7-compare", "8-dark"):
        assert (ARTIFACTS / (shot + ".png")).stat().st_size > 5000, shot


@pytest.mark.asan
def test_dashboard_files_need_no_token(tmp_path):
    """The page and its files hold no data: served without the read token,
    while the API still asks for it; unknown files are 404 JSON errors."""
    s = Server(tmp_path / "data", "--read-token", "sekrit")
    try:
        st, body, hdr = s.request("GET", "/")
        assert st == 200 and hdr["Content-Type"].startswith("text/html")
        assert b"homura" in body
        st, _, _ = s.request("GET", "/index.html")
        assert st == 200
        st, _, _ = s.request("GET", "/api/v1/services")
        assert st == 401
        st, body, _ = s.request("GET", "/ui/nope.js")
        assert st == 404 and json.loads(body)["error"].startswith("no such file")
        if b'src="/ui/app.js"' in s.request("GET", "/")[1]:
            for path, ctype in (("/", "text/html"), ("/ui/app.js", "text/javascript"),
                                ("/ui/app.css", "text/css")):
                st, body, hdr = s.request("GET", path)
                assert st == 200 and hdr["Content-Type"].startswith(ctype) and len(body) > 1000
                # nothing from the network (the SVG namespace is only a name)
                rest = body.replace(b"http://www.w3.org/2000/svg", b"")
                assert b"http://" not in rest and b"https://" not in rest, path
        else:
            assert b"make" in s.request("GET", "/")[1]    # says how to build it
        st, _, _ = s.request("POST", "/", b"x")
        assert st in (401, 405)
    finally:
        s.stop()


@pytest.mark.asan
def test_source_endpoint(server, tmp_path, default_py):
    """/api/v1/source answers a file's lines only for an absolute .py path
    that the selection's frames name and that the server can read."""
    ingest(server, "src.cpu", record_pprof(tmp_path, default_py, "busy.py", 1.5))
    busy = program("busy.py")
    sel = {"service": "src", "from": "now-1h"}
    doc = server.get_json("/api/v1/source", file=busy, **sel)
    with open(busy, encoding="utf-8") as f:
        assert doc["lines"] == f.read().splitlines() and doc["file"] == busy

    def status(**args):
        return server.request("GET", "/api/v1/source?" + urllib.parse.urlencode(args))
    # a readable .py file that no frame of the selection names: refused
    st, body, _ = status(file=program("shares.py"), **sel)
    assert st == 403 and b"not a file of this selection" in body
    st, _, _ = status(file=busy, service="nosuch", **{"from": "now-1h"})
    assert st == 403
    for bad in ("/etc/passwd", "busy.py", "", "/x.pyc"):
        st, body, _ = status(file=bad, **sel)
        assert st == 400 and b"absolute path to a .py file" in body, bad
    st, _, _ = status(**sel)
    assert st == 400
    st, _, _ = status(file=busy, query="nonsense{", **sel)    # the selection's own error
    assert st == 400


def test_dashboard_read_token(tmp_path, default_py):
    """With --read-token the page asks for the token once (a prompt), sends
    it with every query and keeps it for the tab: a reload asks no more."""
    need_browser()
    s = Server(tmp_path / "data", "--read-token", "sekrit")
    try:
        ingest(s, "locked.cpu", record_pprof(tmp_path, default_py, "busy.py", 1))
        r = subprocess.run(["node", str(BROWSER_DIR / "token.mjs"), s.url, "locked", "sekrit"],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, CHROMIUM=CHROMIUM))
        assert r.returncode == 0, r.stderr[-3000:]
        out = json.loads(r.stdout)
        assert out["errors"] == [], out["errors"]
        api = s.get_json("/api/v1/flamegraph", token="sekrit", service="locked",
                         max_nodes=10000, **{"from": "now-1h"})
        assert out["flame"]["total"] == api["total"] > 0
        assert out["prompts"] == 1 and out["promptsOnReload"] == 0
        assert out["promptsShared"] == 1 and out["sharedTotal"] == api["total"]
    finally:
        s.stop()
