#!/usr/bin/env bash
# quickstart.sh - see homura work in one command: installs what is missing,
# builds, profiles a small demo web-style application for 5 seconds and
# writes an interactive flame graph, homura-demo.svg (open it in a browser).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
make -j"$(nproc)" build/homura >/dev/null

# Any Python 3.8+ will do ($PYTHON); Debian's own is always there.
PY=${PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=$(command -v python3)
OUT=${OUT:-homura-demo.svg}

echo "quickstart: recording $PY tests/programs/demo_app.py for 5 s ..."
build/homura record -d 5 -o "$OUT" -- "$PY" tests/programs/demo_app.py

echo
echo "quickstart: flame graph written to $(pwd)/$OUT"
echo "quickstart: open it in a browser (hover for details, click to zoom, search top right)"
