"""The seed's FastAPI service (example_app.py of the OpenTelemetry test
dependency), unchanged, served by uvicorn with its spans also kept in the
SDK's in-memory exporter, plus a sync route (FastAPI runs it in a worker
thread) with the same two spans, and /spans listing what the SDK exported.

usage: otel_app.py SDK_DIR PORT  (SDK_DIR holds example_app.py and site/)
Prints "ready PORT" once it serves."""
import sys

sdk_dir, port = sys.argv[1], int(sys.argv[2])
sys.path[:0] = [sdk_dir + "/site", sdk_dir]
# Debian's python3-fastapi and python3-uvicorn (pure Python) for an
# interpreter other than Debian's own (pyenv 3.12).
if "/usr/lib/python3/dist-packages" not in sys.path:
    sys.path.append("/usr/lib/python3/dist-packages")

import uvicorn
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import example_app
from example_app import app, burn, tracer

exported = InMemorySpanExporter()
trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exported))


def sync_fetch_user(user_id):
    burn(300000)
    return {"id": user_id}


def sync_enrich_user(user):
    burn(100000)
    return dict(user, enriched=True)


@app.get("/api/sync/{user_id}")
def get_user_sync(user_id: int):
    with tracer.start_as_current_span("get_user_from_db"):
        user = sync_fetch_user(user_id)
    with tracer.start_as_current_span("enrich_user_data"):
        return sync_enrich_user(user)


@app.get("/spans")
def spans():
    out = []
    for s in exported.get_finished_spans():
        out.append({"name": s.name, "trace_id": "%032x" % s.context.trace_id,
                    "span_id": "%016x" % s.context.span_id,
                    "parent": "%016x" % s.parent.span_id if s.parent else None,
                    "remote_parent": bool(s.parent and s.parent.is_remote)})
    return out


@app.on_event("startup")
async def said_ready():
    print("ready", port, flush=True)


uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
