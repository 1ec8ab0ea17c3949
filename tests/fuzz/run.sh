#!/usr/bin/env bash
# run.sh - run the libFuzzer targets built by `make fuzz` (build-fuzz/fuzz_*)
# for a bounded time each over their committed corpora.
#
#   tests/fuzz/run.sh [TARGET...]      (default: every build-fuzz/fuzz_* binary)
#
# FUZZ_SECONDS (default 5) is each target's time. FUZZ_SEED (default 1)
# fixes libFuzzer's random choices, so that a test run explores the same
# inputs each time (only how far it gets depends on the machine's speed) and
# cannot fail by chance; FUZZ_SEED=0 lets libFuzzer pick a seed, for long
# exploratory runs. New inputs go to a
# temporary first corpus directory, so the committed tests/fuzz/corpus/<target>/
# (the second, read-only one) never changes. A crash, leak, timeout (>25 s
# for one input), memory blow-up (>2 GiB RSS) or sanitizer report fails the
# run: the reproducer is saved as build-fuzz/<target>-crash-* (or -leak-,
# -timeout-, -oom-) and the command that replays it is printed. Exit status is
# the number of failed targets (0 = all passed).
set -uo pipefail
cd "$(dirname "$0")/../.."
SECS=${FUZZ_SECONDS:-5}
SEED=${FUZZ_SEED:-1}
B=build-fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for f in "$B"/fuzz_*; do
		[ -x "$f" ] && targets+=("${f#"$B"/fuzz_}")
	done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets in $B/ (run make fuzz)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bad=0
for t in "${targets[@]}"; do
	bin=$B/fuzz_$t seeds=tests/fuzz/corpus/$t
	mkdir -p "$work/$t"
	[ -d "$seeds" ] || seeds=
	log=$B/fuzz-$t.log
	start=$SECONDS
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	"$bin" -seed="$SEED" -max_total_time="$SECS" -timeout=25 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$B/$t-" \
		"$work/$t" $seeds >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	if [ $rc -eq 0 ]; then
		printf 'fuzz %-12s ok: %s runs in %ss\n' "$t" "${runs:-?}" $((SECONDS - start))
		continue
	fi
	bad=$((bad + 1))
	# libFuzzer names the reproducer in "Test unit written to PATH".
	repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
	echo "fuzz $t FAILED (exit $rc); from $log:"
	# the report and the stack frames in homura's own code
	grep -E 'ERROR|SUMMARY|runtime error|invariant failed|#[0-9]+ 0x[0-9a-f]+ in .*(lib|tests)/' \
		"$log" | grep -v 'fuzzer::' | head -20 | sed 's/^/  | /'
	if [ -n "$repro" ]; then
		echo "  reproducer: $repro"
		echo "  rerun with: $bin $repro"
	fi
done
exit $bad
