"""Example web application for the continuous-profiling quick start
(scripts/quickstart.sh) and tests/integration/test_pipeline.py: a Flask app
(Debian's python3-flask) whose endpoints cost very different amounts of CPU,
so the flame graph of a loaded server has a clear shape:

  /fast   a tiny response
  /slow   CPU-heavy pure Python (count_primes)
  /db     a simulated database query: waits like I/O, then builds and sorts
          rows (fetch_rows, rank_rows)
  /json   serialises a big structure (build_report, serialize_report)

Usage: flask_app.py [--port N] [--host 127.0.0.1] [--lifetime SECS]
Port 0 picks a free port.  Once listening it prints `ready PID PORT` on
stdout.  It stops by itself after --lifetime seconds (0 = never) and on
SIGTERM/SIGINT."""
import argparse
import json
import logging
import os
import random
import signal
import sys
import threading
import time

from flask import Flask, jsonify
from werkzeug.serving import make_server

app = Flask(__name__)


def count_primes(limit):
    """Trial division, deliberately naive: pure Python CPU work."""
    found = 0
    for n in range(2, limit):
        d = 2
        while d * d <= n:
            if n % d == 0:
                break
            d += 1
        else:
            found += 1
    return found


def fetch_rows(n):
    """Pretend to query a database: wait for the 'network', then decode rows."""
    time.sleep(0.02)
    rng = random.Random(n)
    return [{"id": i, "name": "customer-%d" % i, "balance": rng.uniform(0, 1e4)}
            for i in range(n)]


def rank_rows(rows):
    rows.sort(key=lambda r: r["balance"], reverse=True)
    return rows[:20]


def build_report(n):
    return {"orders": [{"id": i, "sku": "SKU-%05d" % i, "qty": i % 7,
                        "tags": ["a", "b", str(i)], "price": i * 0.37}
                       for i in range(n)]}


def serialize_report(report):
    return json.dumps(report, sort_keys=True)


@app.route("/fast")
def fast():
    return "ok\n"


@app.route("/slow")
def slow():
    return "primes below 12000: %d\n" % count_primes(12000)


@app.route("/db")
def db():
    return jsonify(rank_rows(fetch_rows(3000)))


@app.route("/json")
def json_report():
    body = serialize_report(build_report(3000))
    return app.response_class(body, mimetype="application/json")


@app.route("/")
def index():
    return "endpoints: /fast /slow /db /json\n"


def main():
    ap = argparse.ArgumentParser(description="homura's example Flask application")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--lifetime", type=float, default=0,
                    help="stop after this many seconds (0: run until killed)")
    args = ap.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.WARNING)   # no line per request
    server = make_server(args.host, args.port, app, threaded=True)

    def stop(*_):
        # shutdown() waits for serve_forever() to return: not from its thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    # A background job of a script inherits SIGINT ignored: keep it so, so that
    # Ctrl-C reaches the script, which stops the agent before the application.
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, stop)
    if args.lifetime > 0:
        timer = threading.Timer(args.lifetime, stop)
        timer.daemon = True
        timer.start()

    sys.stdout.write("ready %d %d\n" % (os.getpid(), server.server_port))
    sys.stdout.flush()
    server.serve_forever(poll_interval=0.2)
    server.server_close()


if __name__ == "__main__":
    main()
