"""Every allocation function the sampler wraps, called through ctypes from
known lines, from two threads at once; checks alignment, contents and
usable sizes itself (exit 1 on a wrong answer). For
tests/integration/test_memory.py, which finds the lines by their tags."""
import ctypes
import sys
import threading

libc = ctypes.CDLL(None)
vp, sz = ctypes.c_void_p, ctypes.c_size_t
for name, res, args in [("malloc", vp, [sz]), ("calloc", vp, [sz, sz]), ("realloc", vp, [vp, sz]),
                        ("free", None, [vp]), ("aligned_alloc", vp, [sz, sz]),
                        ("memalign", vp, [sz, sz]), ("valloc", vp, [sz]), ("pvalloc", vp, [sz]),
                        ("posix_memalign", ctypes.c_int, [ctypes.POINTER(vp), sz, sz]),
                        ("malloc_usable_size", sz, [vp]), ("memset", vp, [vp, ctypes.c_int, sz])]:
    fn = getattr(libc, name)
    fn.restype, fn.argtypes = res, args
MB = 10**6
bad = []


def check(p, n, align=16):
    if not p or p % align or libc.malloc_usable_size(p) < n:
        bad.append((p, n, align))


def work():
    for i in range(4):
        p = libc.malloc(3 * MB)                          # MALLOC: 4 x 3 MB
        check(p, 3 * MB)
        libc.memset(p, 7, 3 * MB)
        q = libc.realloc(p, 5 * MB)                      # REALLOC: 4 x 5 MB
        check(q, 5 * MB)
        if ctypes.string_at(q, 3 * MB) != b"\x07" * (3 * MB):
            bad.append("realloc lost contents")
        libc.free(q)
        c = libc.calloc(1000, 2000)                      # CALLOC: 4 x 2 MB
        check(c, 2 * MB)
        if ctypes.string_at(c, 2 * MB).count(0) != 2 * MB:
            bad.append("calloc not zeroed")
        libc.free(c)
        a = libc.aligned_alloc(4096, 4 * MB)             # ALIGNED: 4 x 4 MB
        check(a, 4 * MB, 4096)
        libc.free(a)
        m = libc.memalign(64, MB)                        # MEMALIGN: 4 x 1 MB
        check(m, MB, 64)
        libc.free(m)
        v = libc.valloc(MB)                              # VALLOC: 4 x 1 MB
        check(v, MB, 4096)
        libc.free(v)
        out = vp()
        rc = libc.posix_memalign(ctypes.byref(out), 256, 2 * MB)   # POSIX: 4 x 2 MB
        if rc:
            bad.append("posix_memalign %d" % rc)
        check(out.value, 2 * MB, 256)
        libc.free(out)


ts = [threading.Thread(target=work) for _ in range(2)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("bad", bad)
sys.exit(1 if bad else 0)
