"""Demo workload for scripts/quickstart.sh: a toy web application that
"serves" requests in a loop.  Each request parses a JSON body, queries a fake
database, renders a template and hashes the response, and each step costs a
different amount of CPU, so the flame graph has a clear shape."""
import hashlib
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime  # noqa: E402

USERS = [{"id": i, "name": "user%d" % i, "score": random.random()} for i in range(2000)]


def parse_request(body):
    return json.loads(body)


def query_users(min_score):
    rows = [u for u in USERS if u["score"] >= min_score]
    rows.sort(key=lambda u: u["score"], reverse=True)
    return rows[:50]


def render_row(user):
    return "<tr><td>%d</td><td>%s</td><td>%.3f</td></tr>" % (
        user["id"], user["name"], user["score"])


def render_page(rows):
    html = ["<table>"]
    for _ in range(20):
        html.extend(render_row(u) for u in rows)
    html.append("</table>")
    return "\n".join(html)


def etag(page):
    digest = page.encode()
    for _ in range(50):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def handle_request(body):
    req = parse_request(body)
    rows = query_users(req["min_score"])
    page = render_page(rows)
    return etag(page), len(page)


def serve(seconds):
    end = clock() + seconds
    served = 0
    while clock() < end:
        body = json.dumps({"path": "/users", "min_score": random.random() * 0.9})
        handle_request(body)
        served += 1
    return served


if __name__ == "__main__":
    n = serve(lifetime(6.0))
    print("demo_app: served %d requests" % n)
