#!/usr/bin/env python3
"""check_layers.py - libhomura's layers only use the layers below them.

Every quoted #include in lib/<layer>/ must name a header of its own layer or
of a lower one, as "layer/file.h"; agent/ and server/ sit side by side and
may not include each other. The generated protobuf headers (build/gen) may be
used from format/ up. src/, tests/ and bench/ sit on top and may use anything.
preload/ (the allocation sampler loaded into programs, built as its own
shared object) may use only base/, proc/ and python/.
Headers in PRIVATE may be included only from the folders listed there
(checked in lib/, src/, tests/ and bench/).
Exit 1 with one line per violation; docs/architecture.md draws the layers.
"""
import os
import re
import sys

LAYERS = ["base", "proc", "python", "native", "sample", "format", "analyze", "store", "agent", "server"]
RANK = {"base": 0, "proc": 1, "python": 2, "native": 3, "sample": 4, "format": 5,
        "analyze": 6, "store": 6, "agent": 7, "server": 7}
PROTO_MIN = RANK["format"]
# header -> the only folders whose files may include it (the fuzzers' null
# store is an engine of its own)
PRIVATE = {"store/engine.h": ("lib/store", "tests/fuzz")}
INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def check(root):
    bad = []
    lib = os.path.join(root, "lib")
    for d, _, files in os.walk(lib):
        rel = os.path.relpath(d, lib)
        layer = rel.split(os.sep)[0]
        if rel == ".":
            for f in files:
                bad.append(f"lib/{f}: every file of libhomura lives in a layer folder")
            continue
        if layer not in RANK:
            bad.append(f"lib/{rel}: unknown layer (known: {' '.join(LAYERS)})")
            continue
        for f in files:
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(d, f)
            name = os.path.relpath(path, root)
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            for m in INC.finditer(text):
                inc = m.group(1)
                line = text.count("\n", 0, m.start()) + 1
                head = inc.split("/")[0]
                if ".." in inc.split("/"):
                    bad.append(f"{name}:{line}: \"{inc}\": no relative includes across folders")
                elif "/" not in inc:
                    if not os.path.exists(os.path.join(d, inc)):
                        bad.append(f"{name}:{line}: \"{inc}\": not in {rel}/; name it as layer/file.h")
                elif inc.endswith(".pb-c.h"):
                    if RANK[layer] < PROTO_MIN:
                        bad.append(f"{name}:{line}: \"{inc}\": generated protobuf code is for format/ and up")
                elif head not in RANK:
                    bad.append(f"{name}:{line}: \"{inc}\": not a libhomura layer")
                elif RANK[head] > RANK[layer] or (RANK[head] == RANK[layer] and head != layer):
                    bad.append(f"{name}:{line}: {layer}/ may not include {inc} "
                               f"({head}/ is not below {layer}/)")
    bad += check_preload(root)
    return bad


PRELOAD_MAY_USE = {"base", "proc", "python"}


def check_preload(root):
    bad = []
    top = os.path.join(root, "preload")
    for d, _, files in os.walk(top):
        for f in files:
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(d, f)
            name = os.path.relpath(path, root)
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            for m in INC.finditer(text):
                inc = m.group(1)
                line = text.count("\n", 0, m.start()) + 1
                if "/" not in inc:
                    if not os.path.exists(os.path.join(d, inc)):
                        bad.append(f"{name}:{line}: \"{inc}\": not in preload/")
                elif inc.split("/")[0] not in PRELOAD_MAY_USE or ".." in inc.split("/"):
                    bad.append(f"{name}:{line}: preload/ may include only base/, proc/ and "
                               f"python/ headers, not {inc}")
    return bad


def check_private(root):
    bad = []
    for top in ("lib", "src", "tests", "bench"):
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                if not f.endswith((".c", ".h")):
                    continue
                path = os.path.join(d, f)
                name = os.path.relpath(path, root)
                with open(path, encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
                for m in INC.finditer(text):
                    homes = PRIVATE.get(m.group(1))
                    if homes and os.path.relpath(d, root) not in homes:
                        line = text.count("\n", 0, m.start()) + 1
                        bad.append(f"{name}:{line}: \"{m.group(1)}\" is private to "
                                   f"{homes[0]}/")
    return bad


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    bad = check(root) + check_private(root)
    for b in bad:
        print(b)
    if bad:
        print(f"check_layers: {len(bad)} include(s) break the layering", file=sys.stderr)
        return 1
    print("check_layers: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
