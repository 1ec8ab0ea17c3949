#!/bin/sh
# gen_async_layouts.sh - regenerate lib/python/layouts/async_pyXY.c (the asyncio
# offsets of lib/python/pyasync.c) from installed CPython 3.8-3.13 headers, the same
# way tools/gen_layouts.sh builds the main tables: compile
# tools/gen_layouts/async_offsets.c against each version's headers, run it,
# store its output. Usage: tools/gen_async_layouts.sh [OUTDIR]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=${1:-$root/lib/python/layouts}
versions=${PYENV_ROOT:-/root/.pyenv}/versions
cc=${CC:-gcc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$out"
status=0
for mm in 3.8 3.9 3.10 3.11 3.12 3.13; do
	inc=
	for d in "$versions"/$mm.*/include/python$mm; do
		[ -f "$d/Python.h" ] || continue
		inc=$d
	done
	if [ -z "$inc" ]; then
		echo "gen_async_layouts: Python $mm headers not found, skipped" >&2
		continue
	fi
	full=$(basename "$(dirname "$(dirname "$inc")")")
	tag=$(echo "$mm" | tr -d .)
	bin=$tmp/async$tag
	if ! $cc -std=gnu11 -w -DPy_BUILD_CORE -DPy_BUILD_CORE_BUILTIN \
		-I"$inc" -I"$inc/internal" -o "$bin" "$here/gen_layouts/async_offsets.c" \
		2>"$tmp/err$tag"; then
		echo "gen_async_layouts: Python $full: compile failed:" >&2
		head -20 "$tmp/err$tag" >&2
		status=1
		continue
	fi
	"$bin" "$full" >"$tmp/async_py$tag.c"
	mv "$tmp/async_py$tag.c" "$out/async_py$tag.c"
	echo "gen_async_layouts: Python $full -> $out/async_py$tag.c"
done
exit $status
