"""OpenTelemetry span profiles (issue 14): samples carry the span they ran
in, read from the target's memory with no change to the application.

The application is the seed's FastAPI service (example_app.py of the
OpenTelemetry test dependency, shared/third_party/otel-python), run with
Debian's python3-fastapi/uvicorn under tests/programs/otel_app.py, which
adds the SDK's in-memory exporter and a sync route served by worker threads;
tests/programs/otel_plain.py runs the bare SDK in threads and asyncio tasks
on every interpreter the SDK supports; tests/programs/otel_roots.py runs
traces whose local root (no parent, or a remote one) is current while it
works (--ebpf's local_root_span_name), or a trace with two local roots
(local_root_span_name proven through each span's parents). Requests are real HTTP requests;
every id in a profile is compared with the ids the SDK exported. pprof
output is decoded by the small protobuf reader below."""
import gzip
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import HOMURA, REPO, STATIC_PY, free_port, homura, interpreter_params, program

SDK_CANDIDATES = [os.environ.get("HOMURA_OTEL_SDK", ""), REPO / "shared/third_party/otel-python",
                  REPO.parent / "shared/third_party/otel-python",
                  Path("/work/shared/third_party/otel-python")]
SDK = next((Path(p) for p in SDK_CANDIDATES if p and (Path(p) / "site/opentelemetry").is_dir()),
           None)

APP_ROUTE = "GET /api/users/{user_id}"
SYNC_ROUTE = "GET /api/sync/{user_id}"


# ---------------------------------------------------------------- pprof

def _varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7f) << shift
        shift += 7
        if c < 0x80:
            return v, i


def _fields(b):
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        yield f, wt, v


def _ints(wt, v):
    if wt == 0:
        return [v]
    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i)
        out.append(x)
    return out


def read_pprof(path):
    """[(function names leaf first, {label: value}, count)] of a pprof file."""
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    strings, samples, locs, funcs = [], [], {}, {}
    for f, wt, v in _fields(data):
        if f == 6:
            strings.append(v.decode())
        elif f == 2:
            samples.append(v)
        elif f == 4:
            lid, fids = 0, []
            for g, gwt, gv in _fields(v):
                if g == 1:
                    lid = gv
                elif g == 4:
                    fids += [lv for h, _, lv in _fields(gv) if h == 1]
            locs[lid] = fids
        elif f == 5:
            fid = name = 0
            for g, _, gv in _fields(v):
                if g == 1:
                    fid = gv
                elif g == 2:
                    name = gv
            funcs[fid] = name
    out = []
    for s in samples:
        lids, values, labels = [], [], {}
        for g, gwt, gv in _fields(s):
            if g == 1:
                lids += _ints(gwt, gv)
            elif g == 2:
                values += _ints(gwt, gv)
            elif g == 3:
                k = sv = 0
                for h, _, hv in _fields(gv):
                    if h == 1:
                        k = hv
                    elif h == 2:
                        sv = hv
                labels[strings[k]] = strings[sv]
        names = [strings[funcs[fid]] for lid in lids for fid in locs.get(lid, [])]
        out.append((names, labels, values[0] if values else 0))
    return out


def read_otlp_json(path):
    """The same list from OTLP JSON: a sample's span comes from its link
    (trace and span ids only: OTLP links carry no names)."""
    d = json.loads(Path(path).read_text())
    dic = d["dictionary"]
    strings = dic["stringTable"]
    funcs = [strings[f.get("nameStrindex", 0)] for f in dic["functionTable"]]
    locs = [[funcs[l.get("functionIndex", 0)] for l in loc.get("lines", [])]
            for loc in dic["locationTable"]]
    stacks = [[n for i in st.get("locationIndices", []) for n in locs[i]]
              for st in dic["stackTable"]]
    links = dic.get("linkTable", [])
    out = []
    # The second profile holds the sample counts.
    prof = d["resourceProfiles"][0]["scopeProfiles"][0]["profiles"][1]
    for smp in prof["samples"]:
        labels = {}
        li = smp.get("linkIndex", 0)
        if li:
            labels = {"trace_id": links[li]["traceId"], "span_id": links[li]["spanId"]}
        out.append((stacks[smp.get("stackIndex", 0)], labels, int(smp["values"][0])))
    return out


# ---------------------------------------------------------------- helpers

def fastapi_python(interp=None):
    """Debian's static 3.11, or interp (otel_app.py adds Debian's
    dist-packages to its path), when it imports Debian's FastAPI and
    uvicorn."""
    if SDK is None:
        pytest.skip("the OpenTelemetry SDK test dependency (shared/third_party/otel-python) "
                    "is missing")
    py = interp.path if interp else STATIC_PY
    check = ("import sys; sys.path[:0] = [%r]; sys.path.append('/usr/lib/python3/dist-packages'); "
             "import fastapi, uvicorn" % str(SDK / "site"))
    if not os.path.exists(py) or subprocess.run([py, "-c", check],
                                                capture_output=True).returncode:
        pytest.skip("Debian's python3-fastapi / python3-uvicorn are not installed (or do not "
                    "run on %s)" % py)
    return py


def get(url, timeout=30):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def drive(port, paths, seconds, clients=3):
    """Request the paths round-robin from `clients` threads for `seconds`."""
    stop = time.monotonic() + seconds
    done = []

    def client(k):
        n = 0
        while time.monotonic() < stop:
            path = paths[(n + k) % len(paths)] % (n + 1)
            assert get("http://127.0.0.1:%d%s" % (port, path))["id"] == n + 1
            n += 1
        done.append(n)

    ts = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(done) == clients and sum(done) > 0
    return sum(done)


PLAIN_CALLEES = ("burn", "sleep", "__sleep0")


def check_spans(samples, exported, inside, roots=None, callee=None):
    """inside: {function: span name whose samples it must carry}. Returns
    {span name: samples} of the samples in those functions. callee: a
    sample counts for its function only when that is the leaf or calls one
    of callee there (otel_plain.py's work functions only call burn, and
    its tasks' await asyncio.sleep(0)): a stack
    that the program cannot have (the sampler, which never stops the
    thread, read its frames at moments a few microseconds apart, around a
    call) says nothing of the span read with it."""
    by_id = {(s["trace_id"], s["span_id"]): s for s in exported}
    root_of = {s["trace_id"]: s["name"] for s in exported if s["parent"] is None}
    per_name = {}
    for names, labels, count in samples:
        k, fn = next(((k, f) for k, f in enumerate(names) if f in inside), (0, None))
        if fn is not None and callee and k > 0 and names[k - 1] not in callee:
            fn = None
        if "span_id" in labels:
            # Every id is one the SDK exported, with the same name and trace.
            key = (labels["trace_id"], labels["span_id"])
            assert key in by_id, "span %s not exported by the SDK" % (key,)
            labels.setdefault("span_name", by_id[key]["name"])   # OTLP: ids only
            assert by_id[key]["name"] == labels["span_name"]
            if "local_root_span_name" in labels:
                assert labels["local_root_span_name"] == root_of[labels["trace_id"]]
        if fn is None:
            continue
        tally = per_name.setdefault(inside[fn], {"right": 0, "wrong": 0, "none": 0})
        if "span_id" not in labels:
            tally["none"] += count
        elif labels["span_name"] == inside[fn]:
            tally["right"] += count
        else:
            tally["wrong"] += count
    return per_name


def assert_tallies(per_name, a="get_user_from_db", b="enrich_user_data", share=0.95, wrong=None,
                   pooled=False):
    """At least `share` of the samples in each span's function (of both
    together when pooled) carry that span; at most `wrong` carry another."""
    for name in (a, b):
        t = per_name.get(name)
        assert t and t["right"] > 0, "no samples in %s: %r" % (name, per_name)
        if wrong is not None:
            assert t["wrong"] <= wrong, "%s: %r" % (name, t)
        total = t["right"] + t["wrong"] + t["none"]
        # The stack and the context are read microseconds apart while the
        # target runs: a span may start or end in between, rarely.
        assert pooled or t["right"] >= share * total, "%s: %r" % (name, t)
    if pooled:
        right = sum(per_name[n]["right"] for n in (a, b))
        assert right >= share * sum(sum(per_name[n].values()) for n in (a, b)), per_name
    ra, rb = per_name[a]["right"], per_name[b]["right"]
    # 3:1 work; generous margins (on-CPU samples, scheduling).
    assert 1.5 <= ra / rb <= 6, "ratio %s:%s = %d:%d" % (a, b, ra, rb)


# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("interp", [None] + interpreter_params([(3, 12), (3, 13)], False),
                         ids=lambda i: "3.11-static" if i is None else None)
def test_fastapi_async_and_threads(tmp_path, spawn, interp):
    """The seed's service under concurrent requests: async route (event
    loop thread) and sync route (worker threads); on Debian's static 3.11
    and pyenv's 3.12 (shared libpython)."""
    py = fastapi_python(interp)
    port = free_port()
    app = spawn([py, program("otel_app.py"), SDK, port], timeout=60)
    out = tmp_path / "spans.pb.gz"
    rec = subprocess.Popen([HOMURA, "record", "-p", str(app.pid), "-d", "8", "-r", "200",
                            "-f", "pprof", "-o", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    drive(port, ["/api/users/%d", "/api/sync/%d"], 6.5)
    _, err = rec.communicate(timeout=60)
    assert rec.returncode == 0, err.decode()
    exported = get("http://127.0.0.1:%d/spans" % port)
    samples = read_pprof(out)
    inside = {"fetch_user_from_database": "get_user_from_db",
              "enrich_user_data": "enrich_user_data",
              "sync_fetch_user": "get_user_from_db", "sync_enrich_user": "enrich_user_data"}
    per_name = check_spans(samples, exported, inside)
    print("fastapi", per_name)
    assert_tallies(per_name, wrong=0, pooled=True)
    # Both the event loop's and the worker threads' samples carry spans.
    assert any(l.get("span_name") == "get_user_from_db" and "sync_fetch_user" in n
               for n, l, _ in samples)
    assert any(l.get("span_name") == "get_user_from_db" and "fetch_user_from_database" in n
               for n, l, _ in samples)
    # The span exporter's thread runs outside every span. (Event-loop
    # callbacks scheduled from inside a request, e.g. connection_lost, do
    # run in that request's context, spans included: contextvars' rule.)
    exporter = [l for n, l, _ in samples if "BatchProcessor.worker" in n]
    assert all("span_id" not in l for l in exporter)
    # Spans survive conversion: pprof labels -> OTLP links, and back.
    conv, back = tmp_path / "spans.json", tmp_path / "back.pb.gz"
    assert homura("convert", out, "-f", "otlp-json", "-o", conv).rc == 0
    assert homura("convert", conv, "-f", "pprof", "-o", back).rc == 0

    def ids(smp):
        got = {}
        for n, l, c in smp:
            if "span_id" in l:
                k = (l["trace_id"], l["span_id"])
                got[k] = got.get(k, 0) + c
        return got

    assert ids(read_otlp_json(conv)) == ids(samples)
    assert ids(read_pprof(back)) == ids(samples)
    # A root frame per span name (collapsed; SVG is drawn from the same).
    grouped = tmp_path / "grouped.txt"
    assert homura("convert", out, "--group-by", "span", "-f", "collapsed", "-o", grouped).rc == 0
    lines = grouped.read_text().splitlines()
    assert all(l.startswith("span: ") for l in lines)
    assert any(l.startswith("span: get_user_from_db;") and "fetch_user_from_database" in l
               for l in lines)
    # The local root (the server span) names a whole request's work.
    # (found among the stack's locals when the server span itself was never
    # current at a sample: the middleware holds it).
    roots = {l["local_root_span_name"] for _, l, _ in samples if "local_root_span_name" in l}
    assert roots and roots <= {APP_ROUTE, SYNC_ROUTE}, roots
    assert any(l.get("local_root_span_name") == APP_ROUTE and
               l.get("span_name") == "get_user_from_db" for _, l, _ in samples)
    # On the async route the middleware's frame, which holds the server
    # span, is on the sampled stack: once one look through the stack's
    # locals has found it there, each new request's root is found at that
    # local (no rate limit): most of the route's samples carry it.
    route = [(l, c) for n, l, c in samples if "span_id" in l and
             ("fetch_user_from_database" in n or "enrich_user_data" in n)]
    rooted = sum(c for l, c in route if l.get("local_root_span_name") == APP_ROUTE)
    assert rooted >= 0.5 * sum(c for _, c in route), (rooted, sum(c for _, c in route))
    # On the sync route the worker thread's stack does not hold the server
    # span (the event loop's task awaiting the worker does, as its current
    # span): the root is found among the asyncio tasks' spans, once per
    # trace. (No wrong root on any sample: check_spans compares each with
    # the trace's root as the SDK exported it.)
    sync = [(l, c) for n, l, c in samples if "span_id" in l and
            ("sync_fetch_user" in n or "sync_enrich_user" in n)]
    rooted = sum(c for l, c in sync if l.get("local_root_span_name") == SYNC_ROUTE)
    print("sync route: %d of %d in-span samples name the root" % (rooted, sum(c for _, c in sync)))
    assert rooted >= 0.7 * sum(c for _, c in sync), (rooted, sum(c for _, c in sync))


def test_no_trace(tmp_path, spawn):
    if SDK is None:
        pytest.skip("the OpenTelemetry SDK test dependency is missing")
    py = STATIC_PY if os.path.exists(STATIC_PY) else sys.executable
    target = spawn([py, program("otel_plain.py"), SDK / "site", 4], timeout=30)
    out = tmp_path / "plain.pb.gz"
    r = homura("record", "-p", target.pid, "-d", "1.5", "-r", "200", "--no-trace", "-f", "pprof",
               "-o", out, timeout=60)
    assert r.rc == 0, r.describe()
    samples = read_pprof(out)
    assert any("thread_work_a" in n for n, _, _ in samples)
    assert not any(k.startswith(("span", "trace", "local_root")) for _, l, _ in samples for k in l)


# The SDK needs 3.9+ syntax (and says 3.10+): 3.8 and 3.9 cannot run it.
@pytest.mark.parametrize("interp", interpreter_params([(3, 10), (3, 11), (3, 12), (3, 13)], True))
def test_sdk_threads_and_tasks(tmp_path, spawn, interp):
    """Bare SDK: threads and asyncio tasks; record with --async so that
    suspended tasks' spans come from each task's own context."""
    if SDK is None:
        pytest.skip("the OpenTelemetry SDK test dependency is missing")
    target = spawn([interp.path, program("otel_plain.py"), SDK / "site", 4], timeout=30)
    # pprof (span labels) on some versions, OTLP (the link table) on others.
    fmt = "otlp-json" if interp.version >= (3, 12) else "pprof"
    out = tmp_path / ("p.json" if fmt == "otlp-json" else "p.pb.gz")
    stats_path = tmp_path / "stats.json"
    r = homura("record", "-p", target.pid, "-d", "3", "-r", "500", "--async", "-f", fmt,
               "-o", out, "--stats-json", stats_path, timeout=60)
    assert r.rc == 0, r.describe()
    text, _ = target.proc.communicate(timeout=60)
    exported = [json.loads(l) for l in text.decode().splitlines() if l.startswith("{")]
    assert exported
    samples = read_otlp_json(out) if fmt == "otlp-json" else read_pprof(out)
    stats = json.loads(stats_path.read_text())
    inside = {"thread_work_a": "inner_a", "thread_work_b": "inner_b", "thread_outside": None}
    per_name = check_spans(samples, exported, inside, callee=PLAIN_CALLEES)
    print("threads", per_name, "span_torn", stats["span_torn"])
    # A span is given only with the words that prove it read together with
    # the stack (or, for a waiting task, before and after its await chain):
    # never a neighbour's span. A span that changed while a thread was read
    # twice gives no span (counted as span_torn): rare, as every span here
    # lasts many sample periods.
    assert_tallies(per_name, "inner_a", "inner_b", share=0.95, wrong=0, pooled=True)
    # Tasks (--async samples suspended tasks too, so no CPU ratio here).
    tasks = check_spans(samples, exported, {"task_work_a": "inner_a", "task_work_b": "inner_b"},
                        callee=PLAIN_CALLEES)
    print("tasks", tasks)
    for name in ("inner_a", "inner_b"):
        t = tasks.get(name)
        assert t and t["wrong"] == 0 and t["right"] >= 0.95 * sum(t.values()), tasks
    # Outside any span: no span, ever.
    t = per_name.get(None)
    assert t and t["none"] > 0 and t["none"] == sum(t.values()), t
    # Children of "outer" name it as their local root once it was seen.
    roots = {l["local_root_span_name"] for _, l, _ in samples if "local_root_span_name" in l}
    assert roots <= {"outer"}


@pytest.mark.parametrize("interp", interpreter_params([(3, 11), (3, 13)], True))
def test_sdk_span_churn(tmp_path, spawn, interp):
    """Spans that change between almost any two samples (each lasts tens of
    microseconds): a thread whose span keeps changing has the regions of
    its last chains read with its stack, so most samples get their span
    from that one read; a chain that moved is proven by a second read.
    Never a wrong span."""
    if SDK is None:
        pytest.skip("the OpenTelemetry SDK test dependency is missing")
    target = spawn([interp.path, program("otel_plain.py"), SDK / "site", 4, 100], timeout=30)
    out, stats_path = tmp_path / "p.pb.gz", tmp_path / "stats.json"
    r = homura("record", "-p", target.pid, "-d", "3", "-r", "1000", "-f", "pprof",
               "-o", out, "--stats-json", stats_path, timeout=60)
    assert r.rc == 0, r.describe()
    text, _ = target.proc.communicate(timeout=60)
    exported = [json.loads(l) for l in text.decode().splitlines() if l.startswith("{")]
    assert len(exported) > 1000   # many short spans
    samples = read_pprof(out)
    stats = json.loads(stats_path.read_text())
    # The worker thread's functions: their frames are on the thread's data
    # stack, read in the same system call as the span. (A coroutine's frame
    # lives in its coroutine object, read after that call: a coroutine that
    # ended in between may have left its block to the next one, so the
    # tasks' samples are not counted here; test_sdk_threads_and_tasks
    # checks tasks with spans that outlast the sample period.)
    per_name = check_spans(samples, exported, {
        "thread_work_a": "inner_a", "thread_work_b": "inner_b", "thread_outside": None},
        callee=PLAIN_CALLEES)
    print(per_name, "span_torn", stats["span_torn"])
    for name in ("inner_a", "inner_b"):
        t = per_name.get(name)
        assert t and t["wrong"] == 0 and t["right"] > 0, per_name
    # Most samples inside get their span, although it changed since the
    # thread's last sample (the rest: a chain read after the stack whose
    # span ended before the second read, counted as torn, or no span).
    right = sum(per_name[n]["right"] for n in ("inner_a", "inner_b"))
    assert right >= 0.5 * sum(sum(per_name[n].values()) for n in ("inner_a", "inner_b")), per_name
    t = per_name.get(None)
    assert t and t["none"] == sum(t.values()), t


# --ebpf: the BPF program reads the span itself, in the sampled thread's
# context at sample time (sample/bpf/otelspan.bpf.h).
@pytest.mark.parametrize("interp", interpreter_params([(3, 10), (3, 11), (3, 12), (3, 13)], True))
def test_ebpf_sdk_threads_and_tasks(tmp_path, spawn, interp):
    """record --ebpf on the bare SDK: a thread and the event loop's tasks in
    spans. Samples in a span's function carry that span (ids the SDK
    exported), samples outside any span carry none, none carries a wrong
    one: the span is read in the kernel when the sample is taken, so no
    span can start or end between the stack and the span."""
    if SDK is None:
        pytest.skip("the OpenTelemetry SDK test dependency is missing")
    from test_ebpf import need_ebpf
    need_ebpf()
    target = spawn([interp.path, program("otel_plain.py"), SDK / "site", 4], timeout=30)
    fmt = "otlp-json" if interp.version >= (3, 12) else "pprof"
    out = tmp_path / ("p.json" if fmt == "otlp-json" else "p.pb.gz")
    r = homura("record", "--ebpf", "-p", target.pid, "-d", "2.5", "-r", "500", "-f", fmt,
               "-o", out, timeout=60)
    assert r.rc == 0 and "sampled in the kernel" in r.stderr, r.describe()
    text, _ = target.proc.communicate(timeout=60)
    exported = [json.loads(l) for l in text.decode().splitlines() if l.startswith("{")]
    assert exported
    samples = read_otlp_json(out) if fmt == "otlp-json" else read_pprof(out)
    if fmt == "pprof":
        # The names came through (the kernel checked the name str).
        assert all(l.get("span_name") for _, l, _ in samples if "span_id" in l)
    inside = {"thread_work_a": "inner_a", "thread_work_b": "inner_b", "thread_outside": None,
              "task_work_a": "inner_a", "task_work_b": "inner_b"}
    per_name = check_spans(samples, exported, inside)
    for name in ("inner_a", "inner_b", None):
        t = per_name.get(name)
        assert t and t["wrong"] == 0, per_name
    for name in ("inner_a", "inner_b"):
        t = per_name[name]
        # Spans are on from the process's first sample in the kernel; a
        # few may miss (a name that failed its check keeps its ids).
        assert t["right"] >= 0.95 * sum(t.values()), per_name
    assert per_name[None]["right"] == 0, per_name


def record_pprof(tmp_path, target, duration, rate, ebpf=False):
    """record (--ebpf) the target (a program that prints the spans the SDK
    exported as JSON lines when it ends) to pprof: its samples and the
    exported spans."""
    out = tmp_path / "p.pb.gz"
    r = homura("record", *(["--ebpf"] if ebpf else []), "-p", target.pid, "-d", duration,
               "-r", rate, "-f", "pprof", "-o", out, timeout=60)
    assert r.rc == 0 and (not ebpf or "sampled in the kernel" in r.stderr), r.describe()
    text, _ = target.proc.communicate(timeout=60)
    exported = [json.loads(l) for l in text.decode().splitlines() if l.startswith("{")]
    return read_pprof(out), exported


def record_ebpf_pprof(tmp_path, target, duration, rate):
    return record_pprof(tmp_path, target, duration, rate, ebpf=True)


@pytest.mark.parametrize("interp", interpreter_params([(3, 11), (3, 13)], True))
def test_ebpf_sdk_span_churn(tmp_path, spawn, interp):
    """record --ebpf where the thread's span changes between almost any two
    samples: the BPF program reuses a thread's last answer only while its
    Context dict is the same, unchanged one (address and version tag), and
    the SDK's new dicts reuse the last ones' addresses all the time, so a
    reuse by address alone would give the span before. Never a wrong span,
    and nearly every sample inside gets its own."""
    if SDK is None:
        pytest.skip("the OpenTelemetry SDK test dependency is missing")
    from test_ebpf import need_ebpf
    need_ebpf()
    target = spawn([interp.path, program("otel_plain.py"), SDK / "site", 3, 100], timeout=30)
    samples, exported = record_ebpf_pprof(tmp_path, target, "2", "1000")
    assert len(exported) > 1000   # many short spans
    per_name = check_spans(samples, exported, {
        "thread_work_a": "inner_a", "thread_work_b": "inner_b", "thread_outside": None,
        "task_work_a": "inner_a", "task_work_b": "inner_b"})
    print(per_name)
    for name in ("inner_a", "inner_b"):
        t = per_name.get(name)
        assert t and t["wrong"] == 0 and t["right"] >= 0.9 * sum(t.values()), per_name
    t = per_name.get(None)
    assert t and t["none"] == sum(t.values()), t


@pytest.mark.parametrize("interp", [None] + interpreter_params([(3, 12), (3, 13)], False),
                         ids=lambda i: "3.11-static" if i is None else None)
def test_ebpf_fastapi(tmp_path, spawn, interp):
    """record --ebpf on the seed's service under concurrent requests (async
    route on the event loop, sync route on worker threads): the same spans
    as the SDK exported, 0 wrong, and every span's name came through the
    name check (the route spans' names are made at run time)."""
    py = fastapi_python(interp)
    from test_ebpf import need_ebpf
    need_ebpf()
    port = free_port()
    app = spawn([py, program("otel_app.py"), SDK, port], timeout=60)
    # One request first, so that the SDK has made a span (its class's
    # shared keys, which the kernel side needs, fill in then). The app says
    # ready at startup, just before uvicorn listens.
    deadline = time.monotonic() + 30
    while True:
        try:
            assert get("http://127.0.0.1:%d/api/users/1" % port)["id"] == 1
            break
        except OSError:
            assert time.monotonic() < deadline, "the app does not answer"
            time.sleep(0.1)
    out, stats = tmp_path / "spans.pb.gz", tmp_path / "stats.json"
    rec = subprocess.Popen([HOMURA, "record", "--ebpf", "-p", str(app.pid), "-d", "6", "-r", "200",
                            "-f", "pprof", "-o", str(out), "--stats-json", str(stats)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    drive(port, ["/api/users/%d", "/api/sync/%d"], 4.5)
    _, err = rec.communicate(timeout=60)
    assert rec.returncode == 0 and b"sampled in the kernel" in err, err.decode()
    exported = get("http://127.0.0.1:%d/spans" % port)
    samples = read_pprof(out)
    assert all(l.get("span_name") for _, l, _ in samples if "span_id" in l)
    inside = {"fetch_user_from_database": "get_user_from_db",
              "enrich_user_data": "enrich_user_data",
              "sync_fetch_user": "get_user_from_db", "sync_enrich_user": "enrich_user_data"}
    per_name = check_spans(samples, exported, inside)
    assert all(t["wrong"] == 0 for t in per_name.values()), per_name
    assert_tallies(per_name)
    exporter = [l for n, l, _ in samples if "BatchProcessor.worker" in n]
    assert all("span_id" not in l for l in exporter)
    # The local root (the server span, current only between its children):
    # found among the locals of the event loop's thread, or as a task's
    # current span, when a trace's first sample comes (check_spans compared
    # every local_root_span_name with the SDK's root of that trace: none is
    # wrong).
    roots = root_tallies(samples, exported, ("fetch_user_from_database", "enrich_user_data"))
    # The sync route's worker thread does not hold the server span: the
    # event loop's task awaiting it does (its current span).
    sync = root_tallies(samples, exported, ("sync_fetch_user", "sync_enrich_user"))
    print("ebpf fastapi roots", roots, "sync", sync)
    # The async route's root is a local of the middleware's frame, found
    # only while the event loop still runs that request: the first sample's
    # record wakes homura at once (read 5 ms later, 14-19% of these samples
    # went without a root; woken, 0-1%).
    assert roots["right"] >= 0.9 * sum(roots.values()) and roots["wrong"] == 0, roots
    assert sync["right"] >= 0.5 * sum(sync.values()) and sync["wrong"] == 0, sync
    # Once the middleware's frame held a root, the BPF program reads that
    # local itself at each new trace's first sample (no wake-up, no look
    # in user space): the async traces' roots come from there.
    bpf = json.loads(stats.read_text())["bpf"]
    print("ebpf fastapi root looks", bpf["root_scans"], "found", bpf["roots_found"],
          "at the kernel's frame", bpf["roots_at_frame"], "read in the kernel",
          bpf["roots_in_kernel"])
    assert bpf["roots_in_kernel"] > 0, bpf


def sdk_python(ebpf=False):
    """The interpreter the SDK tests run (Debian's static 3.11 if there);
    skips without the SDK (or, with ebpf, without BPF)."""
    if SDK is None:
        pytest.skip("the OpenTelemetry SDK test dependency is missing")
    if ebpf:
        from test_ebpf import need_ebpf
        need_ebpf()
    return STATIC_PY if os.path.exists(STATIC_PY) else sys.executable


def local_root_of(exported, trace_id, span_id):
    """The name of the local root (a span whose parent is absent or remote)
    above span span_id, through the parents the SDK exported; None if the
    chain breaks."""
    by_id = {(s["trace_id"], s["span_id"]): s for s in exported}
    s = by_id.get((trace_id, span_id))
    for _ in range(64):
        if s is None:
            return None
        if s["parent"] is None or s.get("remote"):
            return s["name"]
        s = by_id.get((trace_id, s["parent"]))
    return None


def root_tallies(samples, exported, functions):
    """Samples with a span in one of functions: how many name their span's
    local root (found through the exported spans' parents: a trace may have
    several local roots in one process) right, wrongly, or not at all."""
    t = {"right": 0, "wrong": 0, "none": 0}
    for names, labels, count in samples:
        if "span_id" not in labels or not any(f in names for f in functions):
            continue
        root = labels.get("local_root_span_name")
        want = local_root_of(exported, labels["trace_id"], labels["span_id"])
        t["none" if root is None else "right" if root == want else "wrong"] += count
    return t


@pytest.mark.parametrize("ebpf", [False, True], ids=["user", "ebpf"])
def test_two_local_roots_in_one_trace(tmp_path, spawn, ebpf):
    """A trace with two local roots in the process (a client calling two
    endpoints in one trace: "GET /a" and "GET /b", same remote parent):
    each child span names its own root, never the trace's other one, though
    both are locals of the sampled stack (a root is given only when the
    span's parents prove it). With --ebpf the kernel is given both locals
    of the loop's function and reads the one that is the span's parent at
    the (trace, parent)'s first sample; a root of the trace that is not
    the parent does not spare the wake-up (user space looks at once). The
    build before read one local a function and spared it: under load, most
    of /b's samples lost their root (19% right in one run)."""
    py = sdk_python(ebpf)
    target = spawn([py, program("otel_roots.py"), SDK / "site", 4, "fanout"], timeout=30)
    samples, exported = record_pprof(tmp_path, target, "3", "500", ebpf)
    assert {s["name"] for s in exported} >= {"GET /a", "GET /b", "child_a", "child_b"}
    a = root_tallies(samples, exported, ("fanout_a_burn",))
    b = root_tallies(samples, exported, ("fanout_b_burn",))
    print("two roots", "ebpf" if ebpf else "user", a, b)
    for t in (a, b):
        assert sum(t.values()) > 0 and t["wrong"] == 0, (a, b)
    assert a["right"] >= 0.8 * sum(a.values()) and b["right"] >= 0.8 * sum(b.values()), (a, b)


@pytest.mark.parametrize("ebpf", [False, True], ids=["user", "ebpf"])
@pytest.mark.parametrize("interp", interpreter_params([(3, 11), (3, 12), (3, 13)], True))
def test_names_built_at_run_time(tmp_path, spawn, interp, ebpf):
    """Span names built for each span ("GET /api/items 1": a new str each
    time, freed with its span; tests/programs/otel_dynnames.py), ASCII,
    Latin-1, CJK and an 86-character route: a sample in work_<k> carries the
    name ending in <k> (the kernel's copy of the text was 64 bytes at
    first: the long names, alike in their first 64 bytes and length, were
    taken for one another).
    With --ebpf the kernel reads the text with the sample; user space, which
    read names after the sample, lost most (the str gone: 200 of 1100
    samples without a name in one run) or took another span's that had the
    same length and first bytes at the same address (every sample of one
    thread named "... 0")."""
    if SDK is None:
        pytest.skip("the OpenTelemetry SDK test dependency is missing")
    if ebpf:
        from test_ebpf import need_ebpf
        need_ebpf()
    target = spawn([interp.path, program("otel_dynnames.py"), SDK / "site", 4], timeout=30)
    samples, exported = record_pprof(tmp_path, target, "3", "500", ebpf)
    by_id = {(s["trace_id"], s["span_id"]): s["name"] for s in exported}
    prefixes = ("GET /api/items", "öffne Datei", "查询 用户",
                "GET /api/v1/organizations/{org_id}/projects/{project_id}/members/{member_id}/roles")
    assert {n.rsplit(" ", 1)[0] for n in by_id.values()} == set(prefixes)
    tally = {p: {"right": 0, "wrong": 0, "none": 0} for p in prefixes}
    for names, labels, count in samples:
        k = next((int(f[-1]) for f in names if f in ("work_0", "work_1", "work_2")), None)
        name = labels.get("span_name", "")
        if k is None or "span_id" not in labels:
            continue
        want = by_id.get((labels["trace_id"], labels["span_id"]))
        if want is None or not want.endswith(" %d" % k):
            continue          # (not this span's work: the sample is elsewhere)
        t = tally[want.rsplit(" ", 1)[0]]
        t["right" if name == want else "none" if not name else "wrong"] += count
    print(interp.version, "ebpf" if ebpf else "user", tally)
    for p, t in tally.items():
        assert t["wrong"] == 0 and t["right"] >= 0.9 * sum(t.values()) and t["right"] > 0, tally


RENAME_PHASES = {"phase_req": "req", "phase_child": "child", "phase_mid": "req_mid",
                 "phase_final": "req_final"}


@pytest.mark.parametrize("ebpf", [False, True], ids=["user", "ebpf"])
@pytest.mark.parametrize("interp", interpreter_params([(3, 10), (3, 11), (3, 12), (3, 13)], True))
def test_update_name(tmp_path, spawn, interp, ebpf):
    """span.update_name() while the span runs (tests/programs/otel_rename.py):
    a span renamed while current, and one renamed while its child is
    current and current again after. Each sample carries the name the span
    had when it was taken: the one before the rename, then the new one.
    The SDK exports the last name only, so ids are compared with the
    exported spans, names with the phase the stack is in."""
    if SDK is None:
        pytest.skip("the OpenTelemetry SDK test dependency is missing")
    if ebpf:
        from test_ebpf import need_ebpf
        need_ebpf()
    target = spawn([interp.path, program("otel_rename.py"), SDK / "site", 4], timeout=30)
    samples, exported = record_pprof(tmp_path, target, "3", "500", ebpf)
    by_id = {(s["trace_id"], s["span_id"]): s["name"] for s in exported}
    assert set(by_id.values()) == {"req_final", "child"}, set(by_id.values())
    tally = {name: {"right": 0, "wrong": 0, "none": 0} for name in RENAME_PHASES.values()}
    for names, labels, count in samples:
        k, fn = next(((k, f) for k, f in enumerate(names) if f in RENAME_PHASES), (0, None))
        # A phase's own work: the phase function calling burn.
        if fn is None or k == 0 or names[k - 1] != "burn":
            continue
        want = RENAME_PHASES[fn]
        t = tally[want]
        if "span_id" not in labels:
            t["none"] += count
            continue
        # The right span (by its ids), under the name of that moment.
        exported_name = by_id.get((labels["trace_id"], labels["span_id"]))
        ok = exported_name == ("child" if want == "child" else "req_final")
        t["right" if ok and labels.get("span_name") == want else "wrong"] += count
    print(interp.version, "ebpf" if ebpf else "user", tally)
    for name, t in tally.items():
        assert t["wrong"] == 0 and t["right"] >= 0.9 * sum(t.values()) and t["right"] > 0, tally


def test_ebpf_local_roots(tmp_path, spawn):
    """record --ebpf names each trace's local root span as the kernel finds
    it (a span whose _parent is None, or a remote SpanContext) when it is
    current at a sample; the trace's later samples, in its children, carry
    it too. The roots are bound to no local here: the kernel's check alone
    names them."""
    if SDK is None:
        pytest.skip("the OpenTelemetry SDK test dependency is missing")
    from test_ebpf import need_ebpf
    need_ebpf()
    py = STATIC_PY if os.path.exists(STATIC_PY) else sys.executable
    target = spawn([py, program("otel_roots.py"), SDK / "site", 3], timeout=30)
    samples, exported = record_ebpf_pprof(tmp_path, target, "2.5", "500")
    assert any(s["remote"] for s in exported) and any(s["parent"] is None for s in exported)
    for side in ("local", "remote"):
        # The root's own samples: named by the very sample (its span).
        own = root_tallies(samples, exported, ("%s_root_burn" % side,))
        # Its child's: once one of the root's samples was seen.
        child = root_tallies(samples, exported, ("%s_child_burn" % side,))
        print(side, own, child)
        assert own["wrong"] == 0 and own["right"] >= 0.9 * sum(own.values()), (side, own)
        assert child["wrong"] == 0 and child["right"] >= 0.5 * sum(child.values()), (side, child)
    # Every span id is the SDK's, and no sample names a wrong root.
    by_id = {(s["trace_id"], s["span_id"]): s["name"] for s in exported}
    for names, labels, count in samples:
        if "span_id" in labels:
            assert by_id[(labels["trace_id"], labels["span_id"])] == labels["span_name"]


def test_agent_ebpf_local_roots(tmp_path, spawn):
    """agent --ebpf: its windows carry local_root_span_name as record's
    profiles do (the same sampler), right for every sample that has one."""
    if SDK is None:
        pytest.skip("the OpenTelemetry SDK test dependency is missing")
    from test_ebpf import need_ebpf
    need_ebpf()
    py = STATIC_PY if os.path.exists(STATIC_PY) else sys.executable
    target = spawn([py, program("otel_roots.py"), SDK / "site", 4], timeout=30)
    out = tmp_path / "windows"
    agent = subprocess.Popen([HOMURA, "agent", "-p", str(target.pid), "--interval", "1", "--ebpf",
                              "-r", "500",
                              "--dir", str(out), "--dir-format", "pprof"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        text, _ = target.proc.communicate(timeout=60)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        err = agent.stderr.read().decode(errors="replace")
        agent.stderr.close()
    assert "sampling in the kernel" in err, err
    exported = [json.loads(l) for l in text.decode().splitlines() if l.startswith("{")]
    samples = [s for f in sorted(out.glob("**/*.pb.gz")) for s in read_pprof(f)]
    t = root_tallies(samples, exported, ("local_child_burn", "remote_child_burn"))
    print("agent roots", t)
    assert t["wrong"] == 0 and t["right"] >= 0.5 * sum(t.values()), t


@pytest.mark.parametrize("interp", interpreter_params([(3, 8), (3, 9)], False))
def test_ebpf_layouts_of_older_pythons(tmp_path, spawn, interp):
    """--ebpf on 3.8 and 3.9 (split instance dicts at tp_dictoffset, the old
    keys layout) against the SDK-shaped stand-in: 0 wrong spans."""
    from test_ebpf import need_ebpf
    need_ebpf()
    target = spawn([interp.path, program("otel_stub.py"), 3], timeout=30)
    out = tmp_path / "p.pb.gz"
    r = homura("record", "--ebpf", "-p", target.pid, "-d", "2", "-r", "500", "-f", "pprof",
               "-o", out, timeout=60)
    assert r.rc == 0 and "sampled in the kernel" in r.stderr, r.describe()
    text, _ = target.proc.communicate(timeout=60)
    exported = [json.loads(l) for l in text.decode().splitlines() if l.startswith("{")]
    samples = read_pprof(out)
    assert all(l.get("span_name") for _, l, _ in samples if "span_id" in l)
    inside = {"thread_work_a": "inner_a", "thread_work_b": "inner_b", "thread_outside": None}
    per_name = check_spans(samples, exported, inside)
    for name in ("inner_a", "inner_b", None):
        t = per_name.get(name)
        assert t and t["wrong"] == 0, per_name
    for name in ("inner_a", "inner_b"):
        t = per_name[name]
        assert t["right"] >= 0.95 * sum(t.values()), per_name
    assert per_name[None]["right"] == 0, per_name


def test_ebpf_no_trace(tmp_path, spawn):
    """--no-trace turns span reading off in the kernel too."""
    if SDK is None:
        pytest.skip("the OpenTelemetry SDK test dependency is missing")
    from test_ebpf import need_ebpf
    need_ebpf()
    py = STATIC_PY if os.path.exists(STATIC_PY) else sys.executable
    target = spawn([py, program("otel_plain.py"), SDK / "site", 4], timeout=30)
    out = tmp_path / "p.pb.gz"
    r = homura("record", "--ebpf", "-p", target.pid, "-d", "1.5", "-r", "300", "--no-trace",
               "-f", "pprof", "-o", out, timeout=60)
    assert r.rc == 0 and "sampled in the kernel" in r.stderr, r.describe()
    samples = read_pprof(out)
    assert any("thread_work_a" in n for n, _, _ in samples)
    assert not any(k.startswith(("span", "trace", "local_root")) for _, l, _ in samples for k in l)


@pytest.mark.parametrize("interp", interpreter_params([(3, 8), (3, 9)], False))
def test_layouts_of_older_pythons(tmp_path, spawn, interp):
    """3.8 and 3.9, which the SDK does not run on: the same reads against a
    stand-in that keeps spans the way the SDK does (otel_stub.py)."""
    target = spawn([interp.path, program("otel_stub.py"), 3], timeout=30)
    samples, exported = record_pprof(tmp_path, target, "2.5", "500")
    inside = {"thread_work_a": "inner_a", "thread_work_b": "inner_b", "thread_outside": None}
    per_name = check_spans(samples, exported, inside)
    print("threads", per_name)
    assert_tallies(per_name, "inner_a", "inner_b", share=0.95, wrong=0, pooled=True)
    t = per_name.get(None)
    assert t and t["none"] > 0 and t["none"] == sum(t.values()), t


def test_top_span_rows(spawn):
    """top counts each span's samples in a "span: NAME" row."""
    if SDK is None:
        pytest.skip("the OpenTelemetry SDK test dependency is missing")
    py = STATIC_PY if os.path.exists(STATIC_PY) else sys.executable
    target = spawn([py, program("otel_plain.py"), SDK / "site", 8], timeout=30)
    r = homura("top", "-p", target.pid, "--iterations", "2", "--rows", "60", "-r", "200")
    assert r.rc == 0, r.describe()
    assert "span: inner_a" in r.stdout, r.stdout
    r = homura("top", "-p", target.pid, "--once", "--rows", "60", "--no-trace")
    assert r.rc == 0 and "span: " not in r.stdout, r.stdout


def test_dump_shows_spans(spawn):
    if SDK is None:
        pytest.skip("the OpenTelemetry SDK test dependency is missing")
    py = STATIC_PY if os.path.exists(STATIC_PY) else sys.executable
    target = spawn([py, program("otel_plain.py"), SDK / "site", 8], timeout=30)
    names = set()
    for _ in range(20):
        r = homura("dump", "-p", target.pid, "-j", "--async")
        assert r.rc == 0, r.describe()
        d = json.loads(r.stdout)
        for t in d["threads"] + d.get("tasks", []):
            if t.get("span"):
                assert len(t["span"]["trace_id"]) == 32 and len(t["span"]["span_id"]) == 16
                names.add(t["span"]["name"])
        if {"inner_a", "inner_b"} <= names:
            break
    assert names & {"inner_a", "inner_b", "outer"}, names


@pytest.mark.parametrize("ebpf", [False, True], ids=["user", "ebpf"])
def test_agent_ships_spans(tmp_path, spawn, ebpf):
    """The agent's pprof windows carry the same span labels (with --ebpf:
    read by the BPF program)."""
    py = sdk_python(ebpf)
    target = spawn([py, program("otel_plain.py"), SDK / "site", 6], timeout=30)
    out = tmp_path / "windows"
    stats_path = tmp_path / "stats.json"
    agent = subprocess.Popen([HOMURA, "agent", "-p", str(target.pid), "--interval", "1",
                              "--dir", str(out), "--dir-format", "pprof",
                              "--stats-json", str(stats_path)] +
                             (["--ebpf"] if ebpf else []),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        found = set()
        while time.monotonic() < deadline and not {"inner_a", "inner_b"} <= found:
            time.sleep(0.5)
            for f in out.glob("**/*.pb.gz") if out.exists() else []:
                try:
                    for _, l, _ in read_pprof(f):
                        if "span_id" in l:
                            assert len(l["trace_id"]) == 32 and len(l["span_id"]) == 16
                            found.add(l["span_name"])
                except (OSError, EOFError, IndexError, ValueError):
                    pass   # a window still being written
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        err = agent.stderr.read().decode(errors="replace")
        agent.stderr.close()
    assert {"inner_a", "inner_b"} <= found, found
    if ebpf:
        assert "sampling in the kernel" in err and "user-space sampler" not in err, err
    # Spans dropped because they changed while read are counted, as by record.
    stats = json.loads(stats_path.read_text())
    assert stats["samples"] > 0 and 0 <= stats["span_torn"] <= stats["samples"], stats


def test_server_span_queries(tmp_path, spawn):
    """The agent ships spans to homura server (OTLP: links and span names);
    the server keeps them out of the series labels (one series per span
    name) and answers: every span with a name, one trace, one span, and the
    traces that spent most in a function - with the SDK's own ids."""
    if SDK is None:
        pytest.skip("the OpenTelemetry SDK test dependency is missing")
    from test_server import Server
    srv = Server(tmp_path / "data")
    try:
        py = STATIC_PY if os.path.exists(STATIC_PY) else sys.executable
        target = spawn([py, program("otel_plain.py"), SDK / "site", 5], timeout=30)
        agent = subprocess.Popen([HOMURA, "agent", "-p", str(target.pid), "--interval", "1",
                                  "--server", srv.url], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        text, _ = target.proc.communicate(timeout=60)
        agent.wait(timeout=60)        # exits with its target, after a last push
        agent.stderr.close()
        exported = {(s["trace_id"], s["span_id"]): s for s in
                    (json.loads(l) for l in text.decode().splitlines() if l.startswith("{"))}
        rng = {"from": "now-1h", "until": "now"}
        series = srv.get_json("/api/v1/series", **rng)["series"]
        # Ids never become labels; span names do, on the _spans type only.
        for s in series:
            assert not {"trace_id", "span_id"} & set(s["labels"])
            assert ("span_name" in s["labels"]) == (s["type"] == "process_cpu_spans")
        assert {s["labels"].get("span_name") for s in series} >= {"inner_a", "inner_b"}
        fg = srv.get_json("/api/v1/flamegraph", query='process_cpu_spans{span_name="inner_a"}',
                          **rng)
        names = [n["name"] for n in fg["nodes"]]
        assert "thread_work_a" in names and "thread_work_b" not in names
        # Traces of a function: ids the SDK exported, largest first.
        tr = srv.get_json("/api/v1/traces", query="process_cpu_spans{}",
                          function="thread_work_a", limit=5, **rng)["traces"]
        assert tr and all(any(k[0] == t["trace_id"] for k in exported) for t in tr)
        assert [t["nanoseconds"] for t in tr] == sorted((t["nanoseconds"] for t in tr),
                                                        reverse=True)
        # One trace's flame graph: its trace and its own spans only.
        one = srv.get_json("/api/v1/flamegraph", query="process_cpu_spans{}",
                           trace_id=tr[0]["trace_id"], **rng)
        roots = [n["name"] for n in one["nodes"] if n["depth"] == 1]
        assert roots == ["trace: " + tr[0]["trace_id"]]
        spans = [n["name"][6:] for n in one["nodes"] if n["depth"] == 2]
        assert spans and all((tr[0]["trace_id"], sid) in exported for sid in spans)
        # One span's.
        sp = srv.get_json("/api/v1/flamegraph", query="process_cpu_spans{}", span_id=spans[0],
                          **rng)
        assert [n["name"] for n in sp["nodes"] if n["depth"] == 2] == ["span: " + spans[0]]
        st, body, _ = srv.request("GET", "/api/v1/flamegraph?query=process_cpu_spans%7B%7D"
                                  "&trace_id=nothex&from=now-1h&until=now")
        assert st == 400, (st, body)
        # Grafana's Pyroscope data source (SelectMergeSpanProfile, the
        # Connect API): the samples of the spans asked for, the same as
        # the API's span flame graph without its trace and span frames.
        from test_querier import call_json, flame_nodes, json_levels, own_nodes
        now_ms = int(time.time() * 1000)

        def span_profile(ids, labels="{}"):
            fg = call_json(srv, "SelectMergeSpanProfile", {
                "profileTypeID": "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
                "labelSelector": labels, "spanSelector": ids,
                "start": now_ms - 3600 * 1000, "end": now_ms + 60000})["flamegraph"]
            assert not any(n.startswith(("trace: ", "span: ")) for n in fg["names"]), fg
            return int(fg.get("total", 0)), flame_nodes(fg["names"], json_levels(fg))

        total0, nodes0 = span_profile([spans[0]])
        assert total0 == sp["total"] > 0, (total0, sp["total"])
        # The same in binary protobuf, encoded and decoded by protoc with
        # Pyroscope's own .proto files.
        from test_querier import call_proto, proto_levels, q
        pb = call_proto(srv, "SelectMergeSpanProfile", "querier.v1.SelectMergeSpanProfileRequest",
                        "profile_typeID: %s span_selector: %s start: %d end: %d" % (
                            q("process_cpu:cpu:nanoseconds:cpu:nanoseconds"), q(spans[0]),
                            now_ms - 3600 * 1000, now_ms + 60000),
                        "querier.v1.SelectMergeSpanProfileResponse")["flamegraph"][0]
        assert pb["total"] == [total0], pb["total"]
        assert flame_nodes(pb["names"], proto_levels(pb)) == nodes0
        assert nodes0 == sorted((d - 2, n, t, s) for d, n, t, s in own_nodes(sp) if d > 2)
        if len(spans) > 1:
            other = srv.get_json("/api/v1/flamegraph", query="process_cpu_spans{}",
                                 span_id=spans[1], **rng)
            assert span_profile(spans[:2])[0] == total0 + other["total"]
        # No span ids: every sample taken in a span.
        every = srv.get_json("/api/v1/flamegraph", query="process_cpu_spans{}", **rng)
        assert span_profile([])[0] == every["total"]
        # A span of another service: none of these samples.
        assert span_profile([spans[0]], '{service_name="no-such-service"}')[0] == 0
        # The dashboard: a trace id pasted into its trace box shows that
        # trace's flame graph, the same as the API's.
        from test_dashboard import BROWSER_DIR, CHROMIUM, need_browser
        need_browser()
        svc = next(s["labels"]["service_name"] for s in series if s["type"] == "process_cpu_spans")
        one_svc = srv.get_json("/api/v1/flamegraph", service=svc, type="process_cpu_spans",
                               trace_id=tr[0]["trace_id"], **rng)
        r = subprocess.run(["node", str(BROWSER_DIR / "trace.mjs"), srv.url, svc, "process_cpu",
                            tr[0]["trace_id"]], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, CHROMIUM=CHROMIUM))
        assert r.returncode == 0, r.stderr[-3000:]
        page = json.loads(r.stdout)
        assert page["errors"] == [], page["errors"]
        assert "trace=" + tr[0]["trace_id"] in page["url"], page["url"]
        assert page["trace"]["total"] == one_svc["total"] > 0, (json.dumps(page["state"]), one_svc["total"])
        assert page["trace"]["total"] < page["all"]["total"], page
    finally:
        srv.stop()

