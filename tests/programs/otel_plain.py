"""OpenTelemetry SDK spans without a web framework: a thread and an
asyncio loop (two tasks) loop over `with tracer.start_as_current_span(...)`
blocks: outer > inner_a (burns 3 units) and inner_b (1 unit), then burn
outside any span (1 unit). Spans go to the in-memory exporter; after
SECONDS it prints every exported span as JSON lines and exits. SCALE
(default 1) divides the work: at 100 a unit takes tens of microseconds, so
the thread's span changes between almost any two samples (churn).

usage: otel_plain.py SITE_DIR SECONDS [SCALE]. Prints "ready" once spans run."""
import asyncio
import json
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
seconds = float(sys.argv[2])
unit = int(100000 / (float(sys.argv[3]) if len(sys.argv) > 3 else 1))

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exported = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exported))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("plain")
stop = time.monotonic() + seconds


def burn(n):
    s = 0
    for i in range(n):
        s += i * i
    return s


def thread_work_a():
    burn(3 * unit)


def thread_work_b():
    burn(unit)


def thread_outside():
    burn(unit)


def worker():
    while time.monotonic() < stop:
        with tracer.start_as_current_span("outer"):
            with tracer.start_as_current_span("inner_a"):
                thread_work_a()
            with tracer.start_as_current_span("inner_b"):
                thread_work_b()
        thread_outside()


async def task_work_a():
    burn(3 * unit)
    await asyncio.sleep(0)


async def task_work_b():
    burn(unit)
    await asyncio.sleep(0)


async def task_loop():
    while time.monotonic() < stop:
        with tracer.start_as_current_span("outer"):
            with tracer.start_as_current_span("inner_a"):
                await task_work_a()
            with tracer.start_as_current_span("inner_b"):
                await task_work_b()
        await asyncio.sleep(0.01 * unit / 100000)   # leave the thread most of the GIL


async def main():
    await asyncio.gather(task_loop(), task_loop())


threads = [threading.Thread(target=worker, name="worker")]
for t in threads:
    t.start()
print("ready", flush=True)
asyncio.run(main())
for t in threads:
    t.join()
for s in exported.get_finished_spans():
    print(json.dumps({"name": s.name, "trace_id": "%032x" % s.context.trace_id,
                      "span_id": "%016x" % s.context.span_id,
                      "parent": "%016x" % s.parent.span_id if s.parent else None}), flush=True)
