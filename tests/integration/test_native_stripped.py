"""`record --native` on an interpreter whose evaluation loop has no name, as
in a stripped binary that runs a compiler-made copy of
_PyEval_EvalFrameDefault (Debian's 3.14). Built here from a pyenv libpython:
a copy whose .symtab no longer names the loop (the .dynsym entry, needed by
the dynamic linker, stays; libdw names code from .symtab when there is one),
loaded through LD_LIBRARY_PATH.

- The loop is recognised by its size (the biggest function in .text, from the
  unwind table) and replaced by the Python frames as usual.
- With .text cut short in the section header so that the loop lies outside
  it (the size heuristic then finds nothing), the summary says why native
  frames are missing instead of falling back silently."""
import os
import struct

import pytest

from conftest import Collapsed, program, record

REC = 1.5
NO_EVAL_MSG = "no recognisable frame of the interpreter's evaluation loop"


def sections(b):
    shoff, = struct.unpack_from("<Q", b, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", b, 0x3a)
    secs = [(shoff + i * shentsize,) + struct.unpack_from("<IIQQQQIIQQ", b, shoff + i * shentsize)
            for i in range(shnum)]
    strs = secs[shstrndx]
    out = []
    for s in secs:
        p = strs[5] + s[1]
        out.append((bytes(b[p:b.index(b"\0", p)]),) + s)
    return out   # (name, header offset, sh_name, type, flags, addr, offset, size, link, ...)


def unname_eval_loop(src, dst, cut_text=False):
    """Copy src to dst with the loop's .symtab entries (and its .cold part)
    made undefined; with cut_text, .text ends where the loop starts. Returns
    the loop's address."""
    b = bytearray(open(src, "rb").read())
    secs = sections(b)
    loop = 0
    for name, _, _, typ, _, _, off, size, link, *_ in secs:
        if typ != 2:                     # SHT_SYMTAB only
            continue
        strtab = secs[link]
        for e in range(off, off + size, 24):
            st_name, info, other, shndx, value, sz = struct.unpack_from("<IBBHQQ", b, e)
            p = strtab[6] + st_name
            nm = bytes(b[p:b.index(b"\0", p)])
            if nm == b"_PyEval_EvalFrameDefault" or nm.startswith(b"_PyEval_EvalFrameDefault."):
                if nm == b"_PyEval_EvalFrameDefault":
                    loop = value
                struct.pack_into("<IBBHQQ", b, e, st_name, info, other, 0, 0, 0)
    if not loop:
        return 0
    if cut_text:
        for name, hoff, _, _, _, addr, *_ in secs:
            if name == b".text":
                assert addr < loop
                struct.pack_into("<Q", b, hoff + 32, loop - addr)
    with open(dst, "wb") as f:
        f.write(b)
    return loop


def patched_python(default_py, tmp_path, cut_text):
    exe = os.path.realpath(default_py.path)
    prefix = os.path.dirname(os.path.dirname(exe))
    lib = os.path.join(prefix, "lib", "libpython%d.%d.so.1.0" % default_py.version)
    if default_py.version < (3, 11) or not os.path.exists(lib):
        pytest.skip("needs a pyenv 3.11+ interpreter with a shared libpython")
    d = tmp_path / "lib"
    d.mkdir()
    if not unname_eval_loop(lib, str(d / os.path.basename(lib)), cut_text):
        pytest.skip("%s has no .symtab entry for _PyEval_EvalFrameDefault" % lib)
    return ["env", "LD_LIBRARY_PATH=%s" % d, exe], str(d / os.path.basename(lib))


def start(spawn, argv, lib):
    t = spawn(argv + [program("native_spin.py")])
    with open("/proc/%d/maps" % t.pid) as f:
        assert lib in f.read(), "the patched libpython is not the one loaded"
    return t


def test_native_unnamed_eval_loop(default_py, spawn, tmp_path):
    argv, lib = patched_python(default_py, tmp_path, cut_text=False)
    t = start(spawn, argv, lib)
    out = tmp_path / "unnamed.txt"
    r = record("-n", "-p", t.pid, "-d", REC, "-f", "collapsed", output=out)
    with open(out, encoding="utf-8") as f:
        prof = Collapsed(f.read())
    assert prof.total >= 10, r.describe()
    with_deflate = 0
    for frames, count in prof.stacks:
        names = [f.name for f in frames]
        assert not any("evaluation loop" in n for n in names), names
        if "deflate" in names:
            assert names[:3] == ["<module>", "outer", "compress_loop"], names
            with_deflate += count
    assert with_deflate >= 0.5 * prof.total, \
        "deflate in %d of %d samples:\n%s\n%s" % (with_deflate, prof.total, prof.summary(),
                                                  r.stderr)
    assert NO_EVAL_MSG not in r.stderr, r.stderr


def test_native_unrecognised_eval_loop_says_why(default_py, spawn, tmp_path):
    argv, lib = patched_python(default_py, tmp_path, cut_text=True)
    t = start(spawn, argv, lib)
    out = tmp_path / "unrecognised.txt"
    r = record("-n", "-p", t.pid, "-d", REC, "-f", "collapsed", output=out)
    assert NO_EVAL_MSG in r.stderr, r.stderr
    with open(out, encoding="utf-8") as f:
        prof = Collapsed(f.read())
    assert prof.count_fn("compress_loop") == prof.total > 0, prof.summary()
