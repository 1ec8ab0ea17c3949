#!/usr/bin/env bash
# quickstart.sh - the whole continuous-profiling pipeline on one machine, in
# one command: installs what is missing, builds, then starts
#
#   1. homura server   (embedded SQLite store, 127.0.0.1:PORT)
#   2. an example Flask web application (tests/programs/flask_app.py, run by
#      Debian's /usr/bin/python3 with python3-flask), labelled through its
#      environment: OTEL_SERVICE_NAME=demo-flask, service.version=1.0
#   3. a load generator on its endpoints (tests/programs/loadgen.py)
#   4. homura agent on the application, sending a profile every INTERVAL s
#
# prints where to look (the query API), waits for the first window, shows
# the top functions stored and ends with the dashboard's URL (the web UI the
# server serves at /). Ctrl-C (or SIGTERM) stops everything it started.
#
# Usage: scripts/quickstart.sh [--duration SECS] [--port PORT] [--interval SECS]
#                              [--data DIR] [--no-build]
#   --duration SECS  stop by itself SECS after the pipeline is up (install and
#                    build not counted; default: run until Ctrl-C)
#   --port PORT      server port (default 4040)
#   --interval SECS  agent window length (default 10)
#   --data DIR       server data directory (default ./homura-data)
#   --no-build       skip install-deps and make; use $HOMURA_BIN or build/homura
# Needs no stdin. Exit status 0 when profiles arrived and everything stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=0
PORT=4040
INTERVAL=10
DATA=homura-data
BUILD_IT=1
usage() { sed -n '2,/^# Needs no stdin/s/^# \{0,1\}//p' "$0"; }
while [ $# -gt 0 ]; do
	case $1 in
	--duration) DURATION=${2:?--duration needs seconds}; shift 2 ;;
	--port) PORT=${2:?--port needs a number}; shift 2 ;;
	--interval) INTERVAL=${2:?--interval needs seconds}; shift 2 ;;
	--data) DATA=${2:?--data needs a directory}; shift 2 ;;
	--no-build) BUILD_IT=0; shift ;;
	-h|--help) usage; exit 0 ;;
	*) echo "quickstart: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
[[ $DURATION =~ ^[0-9]+$ ]] || { echo "quickstart: --duration takes whole seconds" >&2; exit 2; }
[[ $PORT =~ ^[0-9]+$ && $PORT -ge 1 && $PORT -le 65535 ]] ||
	{ echo "quickstart: bad --port $PORT" >&2; exit 2; }
[[ $INTERVAL =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "quickstart: bad --interval $INTERVAL" >&2; exit 2; }

say() { printf 'quickstart: %s\n' "$*"; }

if [ "$BUILD_IT" = 1 ]; then
	bash scripts/install-deps.sh
	say "building (make -j2) ..."
	make -j2 build/homura >/dev/null
	HOMURA=build/homura
else
	HOMURA=${HOMURA_BIN:-build/homura}
fi
[ -x "$HOMURA" ] || { echo "quickstart: $HOMURA not found (run make)" >&2; exit 1; }

PY=/usr/bin/python3
"$PY" -c 'import flask' 2>/dev/null ||
	{ echo "quickstart: $PY cannot import flask (apt-get install python3-flask)" >&2; exit 1; }

SERVER=http://127.0.0.1:$PORT
LOGS=$(mktemp -d /tmp/homura-quickstart.XXXXXX)
mkdir -p "$DATA"
pids=()            # started processes, in start order
stopping=0

# GET $1 (a path on the server); the body on stdout. Python rather than curl:
# a fresh Debian has no curl.
get() {
	"$PY" - "$SERVER$1" <<'EOF'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
    sys.stdout.write(r.read().decode())
EOF
}

# Stop what was started, newest first: the load, then the agent (it ships the
# last partial window), the application, the server. SIGTERM, then SIGKILL
# for whatever is still there after 10 s.
cleanup() {
	local rc=$? i pid n
	trap - EXIT INT TERM
	[ $stopping = 1 ] && rc=0
	[ ${#pids[@]} -gt 0 ] && say "stopping ..."
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		pid=${pids[i]}
		kill -TERM "$pid" 2>/dev/null || continue
		for ((n = 0; n < 100; n++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	[ ${#pids[@]} -gt 0 ] && say "logs in $LOGS"
	exit "$rc"
}
on_signal() { stopping=1; exit 0; }
trap cleanup EXIT
trap on_signal INT TERM

# Fail with the log of a process that died.
check_alive() {  # $1 pid, $2 name, $3 log
	kill -0 "$1" 2>/dev/null && return 0
	echo "quickstart: $2 exited early; its log ($3):" >&2
	tail -n 20 "$3" >&2
	exit 1
}

# Each process gets its own session (setsid), so that a Ctrl-C in the terminal
# reaches only this script, which then stops them in order.

# 1. server
setsid "$HOMURA" server --data "$DATA" --listen "127.0.0.1:$PORT" >"$LOGS/server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
for ((n = 0; ; n++)); do
	check_alive "$server_pid" server "$LOGS/server.log"
	get /ready >/dev/null 2>&1 && break
	[ $n -lt 100 ] || { echo "quickstart: server not ready after 10 s" >&2; exit 1; }
	sleep 0.1
done
say "server on $SERVER, data in $DATA (pid $server_pid)"

# 2. the application, labelled through its environment
OTEL_SERVICE_NAME=demo-flask OTEL_RESOURCE_ATTRIBUTES=service.version=1.0 \
	PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
	setsid "$PY" tests/programs/flask_app.py --port 0 >"$LOGS/app.log" 2>&1 &
app_pid=$!
pids+=("$app_pid")
for ((n = 0; ; n++)); do
	check_alive "$app_pid" "Flask application" "$LOGS/app.log"
	app_port=$(awk '$1 == "ready" { print $3; exit }' "$LOGS/app.log" 2>/dev/null || true)
	[ -n "$app_port" ] && break
	[ $n -lt 150 ] || { echo "quickstart: application not ready after 15 s" >&2; exit 1; }
	sleep 0.1
done
say "Flask application on http://127.0.0.1:$app_port (pid $app_pid): /fast /slow /db /json"

# 3. load
setsid "$PY" tests/programs/loadgen.py "http://127.0.0.1:$app_port" --threads 4 --duration 0 \
	>"$LOGS/loadgen.log" 2>&1 &
pids+=("$!")

# 4. the agent
setsid "$HOMURA" agent -p "$app_pid" --server "$SERVER" --interval "$INTERVAL" \
	>"$LOGS/agent.log" 2>&1 &
agent_pid=$!
pids+=("$agent_pid")
say "agent on pid $app_pid, a profile every ${INTERVAL} s to $SERVER (pid $agent_pid)"
# --duration counts from here: the pipeline is up (whatever installing,
# building and starting took before does not eat into it).
start=$SECONDS

SEL='process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="demo-flask"}'
DASHBOARD="$SERVER/?svc=demo-flask&from=now-15m"
cat <<EOF

Where to look: the dashboard (docs/dashboard.md) at $DASHBOARD
or the query API (docs/api.md):
  curl -s '$SERVER/api/v1/services'
  curl -s '$SERVER/api/v1/label_values?name=version'
  curl -s -G '$SERVER/api/v1/top' --data-urlencode 'query=$SEL' -d from=now-15m -d limit=10
  curl -s -G '$SERVER/api/v1/flamegraph' --data-urlencode 'query=$SEL' -d from=now-15m -d max_nodes=200
  curl -s -G '$SERVER/pyroscope/render' --data-urlencode 'query=$SEL' -d from=now-15m
  curl -s -G '$SERVER/api/v1/download' --data-urlencode 'query=$SEL' -d format=pprof -o demo-flask.pb.gz
      (then: go tool pprof -top demo-flask.pb.gz)
Logs: $LOGS    Stop: Ctrl-C

EOF

# Top functions of the service; fails (non-zero) while nothing is stored.
show_top() {
	get "/api/v1/top?service=demo-flask&from=now-1h&limit=${1}&sort=self" | "$PY" -c '
import json, sys
doc = json.load(sys.stdin)
fns = doc.get("functions") or []
if not fns or not doc.get("total"):
    sys.exit(1)
total = doc["total"]
print("  %6s %6s  %s" % ("self", "total", "function (file)"))
for f in fns:
    print("  %5.1f%% %5.1f%%  %s (%s)" % (100.0 * f["self"] / total,
          100.0 * f["total"] / total, f["name"], f.get("file", "")))
'
}

finished() { [ "$DURATION" -gt 0 ] && [ $((SECONDS - start)) -ge "$DURATION" ]; }

# Wait for the first window to be stored, then show it.
say "waiting for the first profile (about ${INTERVAL} s) ..."
arrived=0
while :; do
	check_alive "$server_pid" server "$LOGS/server.log"
	check_alive "$app_pid" "Flask application" "$LOGS/app.log"
	check_alive "$agent_pid" agent "$LOGS/agent.log"
	if show_top 5 >"$LOGS/top.txt" 2>/dev/null; then
		arrived=1
		say "profiles have arrived; top 5 functions of demo-flask by self time:"
		cat "$LOGS/top.txt"
		say "dashboard: $DASHBOARD (open it in a browser)"
		break
	fi
	finished && break
	sleep 1
done
if [ $arrived = 0 ]; then
	echo "quickstart: no profile stored ${DURATION} s after the pipeline was up (see $LOGS/agent.log)" >&2
	exit 1
fi

if [ "$DURATION" -gt 0 ]; then
	say "running until ${DURATION} s have passed (or Ctrl-C) ..."
else
	say "running until Ctrl-C ..."
fi
while ! finished; do
	check_alive "$server_pid" server "$LOGS/server.log"
	check_alive "$agent_pid" agent "$LOGS/agent.log"
	sleep 1
done
say "done: ran $((SECONDS - start)) s after the pipeline was up"
