#!/usr/bin/env bash
# bench_dashboard.sh - the dashboard's first load over 24 h of data for 20
# services: build/bench/bench_server --keep 1 stores 24 h x 20 services of
# 10 s profiles (its phase 3), `homura server` serves that store, and
# tests/browser/firstload.mjs (playwright-core + Debian's chromium) opens the
# page 5 times per view and prints the median first contentful paint and the
# time until the chart, flame graph and top table are drawn.
# Usage: bench/bench_dashboard.sh [--hours H] [--services S]   (after make bench)
set -euo pipefail
cd "$(dirname "$0")/.."
HOURS=24 SVCS=20
while [ $# -gt 0 ]; do
	case $1 in
	--hours) HOURS=$2; shift 2 ;;
	--services) SVCS=$2; shift 2 ;;
	*) echo "bench_dashboard: unknown option $1" >&2; exit 2 ;;
	esac
done
[ -d tests/browser/node_modules/playwright-core ] ||
	(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
work=$(mktemp -d /tmp/homura-bench-dash.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
build/bench/bench_server --windows 1 --hours "$HOURS" --services "$SVCS" --keep 1 --dir "$work" |
	tee "$work/bench.log" | grep -E '^(query data|kept)'
dir=$(sed -n 's/^kept: //p' "$work/bench.log")
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
build/homura server --data "$dir" --listen "127.0.0.1:$port" --quiet --downsample-after 30d &
pid=$!
for _ in $(seq 100); do
	/usr/bin/python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/ready')" 2>/dev/null && break
	sleep 0.2
done
for q in "svc=service-3&from=now-24h" "svc=*&from=now-24h" "svc=*&from=now-24h&mode=bottomup" "svc=service-3&from=now-1h"; do
	node tests/browser/firstload.mjs "http://127.0.0.1:$port" "$q" 5
done
