"""Spans renamed while they run (span.update_name), for test_spans.py. A web
framework's instrumentation may name a server span before routing and
rename it once the route is known; application code may rename its own.

Each loop makes one trace:

    with span "req" as req:
        phase_req()                      # current span "req"
        with span "child":
            req.update_name("req_mid")   # the parent renamed under its child
            phase_child()                # "child"
        phase_mid()                      # "req_mid": the parent, current again
        req.update_name("req_final")     # renamed while current
        phase_final()                    # "req_final"

Each phase burns CPU (burn) for about PHASE seconds (phase_final for two).
Spans go to the in-memory exporter; after SECONDS it prints every exported
span as JSON lines (name as exported: the last one) and exits.

usage: otel_rename.py SITE_DIR SECONDS [PHASE]. Prints "ready" once spans
run."""
import json
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
seconds = float(sys.argv[2])
PHASE = float(sys.argv[3]) if len(sys.argv) > 3 else 0.02

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exported = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exported))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("rename")
stop = time.monotonic() + seconds


def burn(t):
    end = time.monotonic() + t
    s = 0
    while time.monotonic() < end:
        for i in range(200):
            s += i * i
    return s


def phase_req():
    burn(PHASE)


def phase_child():
    burn(PHASE)


def phase_mid():
    burn(PHASE)


def phase_final():
    burn(2 * PHASE)


def loop():
    while time.monotonic() < stop:
        with tracer.start_as_current_span("req") as req:
            phase_req()
            with tracer.start_as_current_span("child"):
                req.update_name("req_mid")
                phase_child()
            phase_mid()
            req.update_name("req_final")
            phase_final()


t = threading.Thread(target=loop, name="renames")
t.start()
print("ready", flush=True)
t.join()
for s in exported.get_finished_spans():
    print(json.dumps({"name": s.name, "trace_id": "%032x" % s.context.trace_id,
                      "span_id": "%016x" % s.context.span_id,
                      "parent": "%016x" % s.parent.span_id if s.parent else None}), flush=True)
