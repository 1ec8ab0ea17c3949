"""A WSGI application for the pre-fork server test (gunicorn, uwsgi): each
request spends ~20 ms of CPU in burn_cpu()."""
import time


def burn_cpu(seconds):
    end = time.perf_counter() + seconds
    total = 0
    while time.perf_counter() < end:
        for i in range(1000):
            total += i
    return total


def app(environ, start_response):
    burn_cpu(0.02)
    body = b"ok\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
