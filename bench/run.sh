#!/usr/bin/env bash
# run.sh - build homura and the C bench programs (make bench), run every
# benchmark, refreshing docs/benchmarks.md.
# Arguments go to bench/run_all.py (e.g. --only 3.11,3.12 or --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
make -j"$(nproc)" build/homura bench
exec /usr/bin/env python3 bench/run_all.py "$@"
