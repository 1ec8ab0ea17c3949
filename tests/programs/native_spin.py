"""A Python program that spends its time in native code: zlib.compress of
random data (deflate) called from a chain of Python functions. Used by
tests/integration/test_native.py and bench/bench_native.py."""
import os
import sys
import zlib

DATA = os.urandom(1 << 20)


def compress_loop():
    while True:
        zlib.compress(DATA, 9)


def outer():
    compress_loop()


if __name__ == "__main__":
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    outer()
