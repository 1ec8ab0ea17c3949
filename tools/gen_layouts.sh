#!/bin/sh
# gen_layouts.sh - regenerate lib/python/layouts/pyXY.c from installed CPython headers.
#
# For every interpreter under $PYENV_ROOT/versions (default /root/.pyenv) whose
# minor version homura tables (2.7, 3.6-3.13), compile tools/gen_layouts/
# offsets.c against that version's headers, run it and write its output to
# OUTDIR/pyXY.c (OUTDIR defaults to lib/python/layouts). Versions whose headers are
# missing are skipped with a note. Usage: tools/gen_layouts.sh [OUTDIR]
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
for mm in 2.7 3.6 3.7 3.8 3.9 3.10 3.11 3.12 3.13; do
	inc=
	for d in "$versions"/$mm.*/include/python$mm "$versions"/$mm.*/include/python${mm}m; do
		# A free-threaded build (python3.13t) is a different layout: skip it.
		[ -f "$d/Python.h" ] || continue
		inc=$d
	done
	if [ -z "$inc" ]; then
		echo "gen_layouts: Python $mm headers not found, skipped" >&2
		continue
	fi
	full=$(basename "$(dirname "$(dirname "$inc")")")
	tag=$(echo "$mm" | tr -d .)
	bin=$tmp/offsets$tag
	if ! $cc -std=gnu11 -w -DPy_BUILD_CORE -DPy_BUILD_CORE_BUILTIN \
		-I"$inc" -I"$inc/internal" -o "$bin" "$here/gen_layouts/offsets.c" \
		2>"$tmp/err$tag"; then
		echo "gen_layouts: Python $full: compile failed:" >&2
		head -20 "$tmp/err$tag" >&2
		status=1
		continue
	fi
	"$bin" "$full" >"$tmp/py$tag.c"
	mv "$tmp/py$tag.c" "$out/py$tag.c"
	echo "gen_layouts: Python $full -> $out/py$tag.c"
done
exit $status
