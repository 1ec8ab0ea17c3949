"""Write line-table fixtures for tests/unit/test_pydecode.c.

Run with each interpreter (tools/gen_linetable_fixtures.sh does): compiles a
sample module, and for every code object prints one line

    <kind> <firstlineno> <table hex> <offset>:<line>,<offset>:<line>,...

where the expected line of each instruction offset comes from the
interpreter's own API (co_lines() on 3.10+, dis.findlinestarts before), so
the C decoder is checked against CPython itself. Works on 2.7 too."""
from __future__ import print_function
import dis
import sys
import types

SAMPLE = '''
def simple(a, b):
    c = a + b
    d = c * 2
    return d

def branches(x):
    if x > 10:
        y = 1
    elif x < -10:
        y = 2
    else:
        y = 3
    for i in range(3):
        y += i
    while y > 100:
        y -= 1
    return y

class K(object):
    def method(self, n):
        total = 0
        for i in range(n):
            try:
                total += 10 // i
            except ZeroDivisionError:
                total -= 1
        return total

def far_apart():
    x = 1
''' + "\n" * 300 + '''    y = 2
    return x + y

def long_body():
''' + "".join("    v%d = %d\n" % (i, i) for i in range(200)) + '''    return v0

def nested():
    def inner(q):
        return [z * 2 for z in q]
    return inner
'''


def code_objects(co):
    yield co
    for c in co.co_consts:
        if isinstance(c, types.CodeType):
            for sub in code_objects(c):
                yield sub


def kind():
    v = sys.version_info[:2]
    if v < (3, 0):
        return 1      # HM_LNOTAB_27
    if v < (3, 10):
        return 2      # HM_LNOTAB
    if v < (3, 11):
        return 3      # HM_LINETABLE_310
    return 4          # HM_LOCATIONS


def expected(co):
    """(offset, line) for every instruction offset."""
    step = 2 if sys.version_info[:2] >= (3, 6) else 1
    n = len(co.co_code)
    out = []
    if hasattr(co, "co_lines"):
        for start, end, line in co.co_lines():
            if not line:  # None, or 0 (module RESUME): the decoder says firstlineno
                continue
            for off in range(start, end, 2):
                out.append((off, line))
        return out
    starts = list(dis.findlinestarts(co))
    for off in range(0, n, step):
        line = co.co_firstlineno
        for s, l in starts:
            if s <= off:
                line = l
        out.append((off, line))
    return out


def table(co):
    t = co.co_linetable if sys.version_info[:2] >= (3, 10) else co.co_lnotab
    if isinstance(t, str):      # 2.7
        return "".join("%02x" % ord(ch) for ch in t)
    return "".join("%02x" % b for b in bytearray(t))


def main():
    top = compile(SAMPLE, "sample.py", "exec")
    for co in code_objects(top):
        exp = expected(co)
        if not exp:
            continue
        print(kind(), co.co_firstlineno, table(co) or "-",
              ",".join("%d:%d" % e for e in exp))


main()
