#!/usr/bin/env bash
# test.sh - the one command that builds and tests homura from a clean checkout.
#
#   1. installs missing Debian packages (scripts/install-deps.sh)
#   1b. checks that libhomura's layers only include the layers below them
#      (scripts/check_layers.py; docs/architecture.md)
#   2. builds build/ (make, and make bench: bench/*.c) and build-asan/ (make
#      asan: ASan + UBSan)
#   3. runs every unit test of both builds
#   3b. builds the libFuzzer targets (make fuzz: clang, ASan + UBSan) and runs
#      each for FUZZ_SECONDS (default 5) over its committed corpus
#      (tests/fuzz/run.sh: a crash's reproducer is kept in build-fuzz/)
#   4. runs the integration tests (pytest tests/integration) with build/homura
#      against every installed Python
#   5. runs the tests marked `asan` again with build-asan/homura on a subset of
#      interpreters that covers every CPython layout family
# and prints one summary line.  Exit status is non-zero if anything failed.
#
# Environment: JOBS (default 2), PYTEST_ARGS (extra pytest arguments, e.g. -x),
# SKIP_ASAN=1 (skip the sanitizer build and pass; for quick local runs),
# FUZZ_SECONDS (per fuzz target, default 5; 0 skips the fuzzing step).
set -uo pipefail
cd "$(dirname "$0")/.."

JOBS=${JOBS:-2}
PYTEST_ARGS=${PYTEST_ARGS:-}
ASAN_PYTHONS=${ASAN_PYTHONS:-3.8,3.10,3.11,3.12,3.13,3.11-static}
start=$SECONDS
failed=()
summary=()

step() { printf '\n=== %s\n' "$*"; }

step "dependencies"
bash scripts/install-deps.sh || { echo "test.sh: FAIL: could not install dependencies"; exit 1; }

step "layering (scripts/check_layers.py)"
if /usr/bin/python3 scripts/check_layers.py; then
	summary+=("layers ok")
else
	summary+=("layers FAILED")
	failed+=("layering (scripts/check_layers.py)")
fi

step "build (make -j$JOBS, and make bench: the C bench programs build warning-free)"
make -j"$JOBS" all bench || { echo "test.sh: FAIL: make failed"; exit 1; }
if [ "${SKIP_ASAN:-0}" != 1 ]; then
	step "build with ASan+UBSan (make -j$JOBS asan)"
	make -j"$JOBS" asan || { echo "test.sh: FAIL: make asan failed"; exit 1; }
fi

# Python with pytest: Debian's python3-pytest lives in /usr/bin/python3 (the
# python3 on PATH may be a pyenv shim without it).
PY=/usr/bin/python3
"$PY" -c 'import pytest' 2>/dev/null || PY=python3

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_units() {  # $1 = build dir
	local dir=$1 n=0 bad=0 t
	for t in "$dir"/tests/test_*; do
		[ -x "$t" ] || continue
		n=$((n + 1))
		echo "== $t"
		if ! timeout 300 "$t"; then
			bad=$((bad + 1))
			failed+=("$t")
		fi
	done
	summary+=("unit($dir) $((n - bad))/$n")
}

step "unit tests (build/)"
run_units build
if [ "${SKIP_ASAN:-0}" != 1 ]; then
	step "unit tests (build-asan/)"
	run_units build-asan
fi

if [ "${FUZZ_SECONDS:-5}" != 0 ]; then
	step "fuzzing (make fuzz, tests/fuzz/run.sh: ${FUZZ_SECONDS:-5} s per target)"
	mkdir -p build-fuzz
	if ! make -j"$JOBS" fuzz >build-fuzz/make.log 2>&1; then
		tail -20 build-fuzz/make.log
		summary+=("fuzz BUILD FAILED")
		failed+=("make fuzz (see build-fuzz/make.log)")
	elif FUZZ_SECONDS=${FUZZ_SECONDS:-5} tests/fuzz/run.sh; then
		summary+=("fuzz ok")
	else
		summary+=("fuzz FAILED")
		failed+=("fuzz")
	fi
fi

run_pytest() {  # $1 = label, rest = pytest arguments
	local label=$1 rc
	shift
	# shellcheck disable=SC2086
	"$PY" -m pytest -p no:cacheprovider -q -rfEsx --durations=8 "$@" $PYTEST_ARGS
	rc=$?
	case $rc in
	0) summary+=("$label ok") ;;
	5) summary+=("$label NO TESTS"); failed+=("$label (no tests collected)") ;;
	*) summary+=("$label FAILED"); failed+=("$label") ;;
	esac
}

step "integration tests (build/homura, every Python)"
HOMURA_BIN=build/homura run_pytest integration tests/integration

if [ "${SKIP_ASAN:-0}" != 1 ]; then
	step "integration tests under ASan+UBSan (build-asan/homura, -m asan, $ASAN_PYTHONS)"
	HOMURA_BIN=build-asan/homura HOMURA_TEST_PYTHONS=$ASAN_PYTHONS \
		run_pytest integration-asan -m asan tests/integration
fi

elapsed=$((SECONDS - start))
joined=$(IFS=';'; echo "${summary[*]}")
joined=${joined//;/, }
echo
if [ ${#failed[@]} -eq 0 ]; then
	echo "test.sh: PASS: $joined (${elapsed}s)"
	exit 0
fi
echo "test.sh: FAIL: ${failed[*]} | $joined (${elapsed}s)"
exit 1
