"""Local root spans for `record --ebpf` (test_spans.py): two threads loop
over traces whose local root span is current while it burns, then a child
span burns. In "local" the root has no parent (a new trace each time); in
"remote" its parent is a remote SpanContext (a trace id made up each time,
as a propagated traceparent header would give). The spans are not bound to
locals, so only the kernel's _parent check can name a trace's local root.
Spans go to the in-memory exporter; after SECONDS it prints every exported
span as JSON lines (with its parent and whether that is remote) and exits.

With "fanout", one trace has two local roots instead: a client that calls
two endpoints of this process in one trace sends both requests with its own
span as the parent, so the trace has two local root spans here, "GET /a"
and "GET /b", whose parent is the same remote span. Each loop makes up a
new remote parent (a new trace), then serves /a (its child span "child_a"
burns 3 units in fanout_a_burn) and /b ("child_b", 1 unit, fanout_b_burn).
The roots are bound to locals of the loop's frame (as a middleware holds
its server span), and /a's stays bound while /b is served: a look through
the locals meets both roots of the trace.

usage: otel_roots.py SITE_DIR SECONDS [fanout]. Prints "ready" once spans
run."""
import json
import random
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
seconds = float(sys.argv[2])

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

exported = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exported))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("roots")
stop = time.monotonic() + seconds
UNIT = 100000


def burn(n):
    s = 0
    for i in range(n):
        s += i * i
    return s


def local_root_burn():
    burn(2 * UNIT)


def local_child_burn():
    burn(2 * UNIT)


def remote_root_burn():
    burn(2 * UNIT)


def remote_child_burn():
    burn(2 * UNIT)


def fanout_a_burn():
    burn(9 * UNIT // 2)


def fanout_b_burn():
    burn(3 * UNIT // 2)


def remote_context():
    parent = SpanContext(random.getrandbits(128) | 1, random.getrandbits(64) | 1,
                         is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(parent))


def local():
    while time.monotonic() < stop:
        with tracer.start_as_current_span("root_local"):
            local_root_burn()
            with tracer.start_as_current_span("child_local"):
                local_child_burn()


def remote():
    while time.monotonic() < stop:
        with tracer.start_as_current_span("root_remote", context=remote_context()):
            remote_root_burn()
            with tracer.start_as_current_span("child_remote"):
                remote_child_burn()


def fanout():
    while time.monotonic() < stop:
        ctx = remote_context()
        with tracer.start_as_current_span("GET /a", context=ctx) as root_a:
            with tracer.start_as_current_span("child_a"):
                fanout_a_burn()
        with tracer.start_as_current_span("GET /b", context=ctx) as root_b:
            with tracer.start_as_current_span("child_b"):
                fanout_b_burn()
    return root_a, root_b


mains = (fanout,) if sys.argv[3:] == ["fanout"] else (local, remote)
threads = [threading.Thread(target=f, name=f.__name__) for f in mains]
for t in threads:
    t.start()
print("ready", flush=True)
for t in threads:
    t.join()
for s in exported.get_finished_spans():
    print(json.dumps({"name": s.name, "trace_id": "%032x" % s.context.trace_id,
                      "span_id": "%016x" % s.context.span_id,
                      "parent": "%016x" % s.parent.span_id if s.parent else None,
                      "remote": bool(s.parent and s.parent.is_remote)}), flush=True)
