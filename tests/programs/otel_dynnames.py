"""Spans whose names are built at run time (as instrumentations name
"GET /api/items/{id}", "SELECT shop", "http send"), for test_spans.py:
each such str is new for each span and freed with it, so a sampler that
reads a name after the sample (record --ebpf) finds it gone, or another
span's name at its address.

Four threads; each loops over k = 0, 1, 2, starting a span named
"<prefix> <k>" (a new str each time) around work_<k>() - so a sample in
work_<k> must carry the name ending in <k>. Prefixes: ASCII, Latin-1
("ö": one byte a character, not ASCII), CJK (two bytes a character) and
a route longer than 64 characters (names that differ only past there).
An exporter keeps each span's ids and the bytes of its name (not the
span, nor its name str, which would keep them alive); after SECONDS it
prints them as JSON lines and exits.

usage: otel_dynnames.py SITE_DIR SECONDS. Prints "ready" once spans run."""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, sys.argv[1])
seconds = float(sys.argv[2])

from _common import spin  # noqa: E402

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class Ids(SpanExporter):
    def __init__(self):
        self.spans = []

    def export(self, spans):
        for s in spans:
            self.spans.append((s.context.trace_id, s.context.span_id, s.name.encode("utf-8")))
        return SpanExportResult.SUCCESS


exported = Ids()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exported))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("dynnames")
stop = time.monotonic() + seconds


def work_0():
    spin(0.004)


def work_1():
    spin(0.004)


def work_2():
    spin(0.004)


WORK = [work_0, work_1, work_2]
LONG = "GET /api/v1/organizations/{org_id}/projects/{project_id}/members/{member_id}/roles"


def loop(prefix):
    i = 0
    while time.monotonic() < stop:
        k = i % 3
        with tracer.start_as_current_span("%s %d" % (prefix, k)):
            WORK[k]()
        i += 1


threads = [threading.Thread(target=loop, args=(p,), name="names-%d" % n)
           for n, p in enumerate(("GET /api/items", "öffne Datei", "查询 用户", LONG))]
for t in threads:
    t.start()
print("ready", flush=True)
for t in threads:
    t.join()
for trace_id, span_id, name in exported.spans:
    print(json.dumps({"name": name.decode("utf-8"), "trace_id": "%032x" % trace_id,
                      "span_id": "%016x" % span_id}), flush=True)
