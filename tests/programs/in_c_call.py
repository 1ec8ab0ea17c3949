"""Stuck in C: the main thread spends its time inside zlib.compress of a large
buffer (a long C call holding the GIL) while a second thread sits in
time.sleep (a C call without it).  Prints `ready PID`; ends after argv[1]
seconds."""
import os
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402


def sleep_in_c():
    time.sleep(3600)   # SLEEP-CALL


def compress_forever(end, data):
    while clock() < end:
        zlib.compress(data, 9)   # COMPRESS-CALL


def main():
    end = clock() + lifetime()
    threading.Thread(target=sleep_in_c, name="sleeper", daemon=True).start()
    data = os.urandom(1 << 20) * 16
    ready()
    compress_forever(end, data)


if __name__ == "__main__":
    main()
