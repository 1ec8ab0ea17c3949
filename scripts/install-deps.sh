#!/usr/bin/env bash
# install-deps.sh - install the Debian packages homura needs to build and test.
# Only missing packages are installed; `apt-get update` runs only when something
# is missing, so a second run is quiet and takes a fraction of a second.
set -euo pipefail

PKGS=(build-essential pkg-config libelf-dev libdw-dev zlib1g-dev libprotobuf-c-dev
      protobuf-c-compiler protobuf-compiler libjansson-dev libcurl4-openssl-dev
      libmicrohttpd-dev libsqlite3-dev libncurses-dev libcmocka-dev python3-pytest
      golang-go python3-flask python3-gunicorn uwsgi-core uwsgi-plugin-python3 util-linux procps tmux libpq-dev postgresql
      clang-14 libclang-rt-14-dev)
# record --ebpf: the BPF program is built with clang -target bpf and bpftool
PKGS+=(libbpf-dev bpftool)
# tests/integration/test_install.py: man pages rendered by man(1), zsh completion parsed
PKGS+=(man-db zsh)
# the dashboard (web/: built with npm, docs/dashboard.md) and its browser test
# (tests/integration/test_dashboard.py drives chromium), and
# tests/integration/test_querier.py (the Pyroscope Node.js SDK, npm ci in
# tests/nodejs). A node.js from elsewhere (NodeSource) that brings its own
# npm is kept: Debian's npm package would conflict with it.
command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)
PKGS+=(chromium)
# tests/integration/test_memory.py: numpy arrays under the allocation sampler
PKGS+=(python3-numpy)
# tests/integration/test_run.py: pandas under `homura run`
PKGS+=(python3-pandas)
# tests/integration/test_spans.py: the seed's FastAPI service (with the
# OpenTelemetry SDK of shared/third_party/otel-python)
PKGS+=(python3-fastapi python3-uvicorn python3-wrapt python3-asgiref python3-packaging)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
	SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq >/dev/null
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
