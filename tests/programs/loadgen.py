"""Load generator for the example Flask application (flask_app.py): a few
threads send GET requests with urllib, each picking an endpoint from a
weighted mix, until the duration ends or it is stopped (SIGTERM/SIGINT).
It only talks to loopback addresses, so it cannot be pointed at someone
else's server by mistake.

Usage: loadgen.py URL [--threads 4] [--duration SECS] [--pause SECS]
                      [--mix fast=5,slow=2,db=3,json=2]
At the end it prints one line: requests per endpoint and errors."""
import argparse
import collections
import ipaddress
import random
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_MIX = "fast=5,slow=2,db=3,json=2"


def parse_mix(text):
    paths, weights = [], []
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip().strip("/")
        if not name:
            raise ValueError("empty endpoint in mix %r" % text)
        paths.append("/" + name)
        weights.append(float(weight) if weight else 1.0)
    if sum(weights) <= 0:
        raise ValueError("mix %r has no positive weight" % text)
    return paths, weights


def is_loopback(host):
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback
                               for i in infos)


def worker(base, paths, weights, pause, stop, counts, lock, seed):
    rng = random.Random(seed)
    while not stop.is_set():
        path = rng.choices(paths, weights)[0]
        try:
            with urllib.request.urlopen(base + path, timeout=10) as r:
                r.read()
            key = path
        except (urllib.error.URLError, OSError):
            key = "errors"
            stop.wait(0.2)      # the app is not up (yet): do not spin
        with lock:
            counts[key] += 1
        if pause:
            stop.wait(pause)


def main():
    ap = argparse.ArgumentParser(description="drive the example Flask application")
    ap.add_argument("url", help="base URL, e.g. http://127.0.0.1:5000 (loopback only)")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--duration", type=float, default=600,
                    help="seconds to run (default 600; 0: until killed)")
    ap.add_argument("--pause", type=float, default=0.005,
                    help="seconds each thread waits between requests")
    ap.add_argument("--mix", default=DEFAULT_MIX,
                    help="endpoint=weight list (default %s)" % DEFAULT_MIX)
    args = ap.parse_args()

    base = args.url.rstrip("/")
    host = urllib.parse.urlsplit(base).hostname
    if not host or not is_loopback(host):
        ap.error("refusing %r: only loopback addresses (127.0.0.1, ::1, localhost)" % args.url)
    try:
        paths, weights = parse_mix(args.mix)
    except ValueError as e:
        ap.error(str(e))
    if not 1 <= args.threads <= 64:
        ap.error("--threads must be 1..64")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    counts = collections.Counter()
    lock = threading.Lock()
    threads = [threading.Thread(target=worker, daemon=True,
                                args=(base, paths, weights, args.pause, stop, counts, lock, i))
               for i in range(args.threads)]
    for t in threads:
        t.start()
    end = time.monotonic() + args.duration if args.duration > 0 else None
    while not stop.is_set():
        left = end - time.monotonic() if end else 1.0
        if left <= 0:
            break
        stop.wait(min(left, 1.0))
    stop.set()
    for t in threads:
        t.join(11)
    with lock:
        line = " ".join("%s=%d" % (k, counts[k]) for k in paths + ["errors"])
    sys.stdout.write("loadgen: %s\n" % line)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
