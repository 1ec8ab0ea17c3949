#!/bin/sh
# Regenerate tests/unit/data/linetables.txt from every installed interpreter.
cd "$(dirname "$0")/.." || exit 1
out=tests/unit/data/linetables.txt
: > "$out"
for py in /root/.pyenv/versions/*/bin/python; do
	v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || continue
	echo "# $v" >> "$out"
	"$py" tools/gen_linetable_fixtures.py >> "$out"
done
