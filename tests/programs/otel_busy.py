"""A busy thread inside OpenTelemetry SDK spans, for the span-reading cost
benchmark (bench/bench_spans.py): `steady` keeps each span open for about
0.2 s of work, `churn` starts a new span every ~1 ms (so most samples meet a
context that changed since the last one).

usage: otel_busy.py SITE_DIR SECONDS steady|churn. Prints "ready"."""
import sys
import time

sys.path.insert(0, sys.argv[1])
seconds, mode = float(sys.argv[2]), sys.argv[3]

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

trace.set_tracer_provider(TracerProvider())
tracer = trace.get_tracer("busy")
n = 2000000 if mode == "steady" else 10000


def burn(k):
    s = 0
    for i in range(k):
        s += i * i
    return s


print("ready", flush=True)
stop = time.monotonic() + seconds
while time.monotonic() < stop:
    with tracer.start_as_current_span("work"):
        burn(n)
