"""Native code in the middle of a Python stack: libc's qsort (through ctypes)
calling back into a Python comparison function. Used by
tests/integration/test_native.py: with --native, qsort sits between
sort_once (its Python caller) and py_cmp (the Python callback)."""
import ctypes
import sys

libc = ctypes.CDLL(None)
CMP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))


def py_cmp(a, b):
    x = a[0]
    y = b[0]
    return (x > y) - (x < y)


cmp = CMP(py_cmp)


def sort_once(arr, n):
    libc.qsort(arr, n, ctypes.sizeof(ctypes.c_int), cmp)


def main():
    n = 50000
    arr = (ctypes.c_int * n)(*[(i * 7919) % n for i in range(n)])
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        sort_once(arr, n)
        arr[0], arr[n - 1] = arr[n - 1], arr[0]


if __name__ == "__main__":
    main()
