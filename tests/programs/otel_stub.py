"""Spans the way the OpenTelemetry SDK keeps them, for interpreters the real
SDK does not run on (3.8, 3.9): a stand-in with the same shape homura reads
- sys.modules['opentelemetry.context']._RUNTIME_CONTEXT._current_context (a
ContextVar holding a dict subclass), the key
sys.modules['opentelemetry.trace.propagation']._SPAN_KEY, spans with _name,
_context (a tuple subclass named SpanContext: trace id, span id, is_remote)
and _parent; the classes also under the SDK's module names
(opentelemetry.context.context.Context, opentelemetry.trace.span.SpanContext,
opentelemetry.sdk.trace._Span). Only the layouts of those interpreters are
under test here;
the real SDK is tested on 3.10+ (otel_plain.py, otel_app.py).

A thread loops: outer > inner_a (3 units of work) and inner_b (1 unit), then
1 unit outside any span. After SECONDS it prints every span as a JSON line.

usage: otel_stub.py SECONDS. Prints "ready"."""
import contextlib
import contextvars
import json
import random
import sys
import threading
import time
import types
import uuid


class Context(dict):
    pass


class SpanContext(tuple):
    def __new__(cls, trace_id, span_id, is_remote):
        return tuple.__new__(cls, (trace_id, span_id, is_remote))


class _Span:
    def __init__(self, name, context, parent):
        self._name = name
        self._context = context
        self._parent = parent


class _RuntimeContext:
    def __init__(self):
        self._current_context = contextvars.ContextVar("current_context", default=Context())


ctx_mod = types.ModuleType("opentelemetry.context")
ctx_mod._RUNTIME_CONTEXT = _RuntimeContext()
prop_mod = types.ModuleType("opentelemetry.trace.propagation")
prop_mod._SPAN_KEY = "current-span-" + str(uuid.uuid4())
sys.modules["opentelemetry.context"] = ctx_mod
sys.modules["opentelemetry.trace.propagation"] = prop_mod
# Where the SDK's classes live (the in-kernel reader, record --ebpf, looks
# them up there).
for name, attrs in (("opentelemetry.context.context", {"Context": Context}),
                    ("opentelemetry.trace.span", {"SpanContext": SpanContext}),
                    ("opentelemetry.sdk.trace", {"_Span": _Span})):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
var = ctx_mod._RUNTIME_CONTEXT._current_context
finished = []


@contextlib.contextmanager
def span(name):
    cur = var.get().get(prop_mod._SPAN_KEY)
    parent = cur._context if cur else None
    trace_id = parent[0] if parent else random.getrandbits(128) | 1
    s = _Span(name, SpanContext(trace_id, random.getrandbits(64) | 1, False), parent)
    ctx = Context(var.get())
    ctx[prop_mod._SPAN_KEY] = s
    token = var.set(ctx)
    try:
        yield s
    finally:
        var.reset(token)
        finished.append(s)


def burn(k):
    s = 0
    for i in range(k):
        s += i * i
    return s


def thread_work_a():
    burn(300000)


def thread_work_b():
    burn(100000)


def thread_outside():
    burn(100000)


def worker(stop):
    while time.monotonic() < stop:
        with span("outer"):
            with span("inner_a"):
                thread_work_a()
            with span("inner_b"):
                thread_work_b()
        thread_outside()


stop = time.monotonic() + float(sys.argv[1])
t = threading.Thread(target=worker, args=(stop,), name="worker")
t.start()
print("ready", flush=True)
t.join()
for s in finished:
    print(json.dumps({"name": s._name, "trace_id": "%032x" % s._context[0],
                      "span_id": "%016x" % s._context[1],
                      "parent": "%016x" % s._parent[1] if s._parent else None}), flush=True)
