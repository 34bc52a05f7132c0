#!/bin/sh
# Runs each fuzz harness that `make fuzz` built into tests/fuzz/build/ for
# FUZZ_SECONDS (default 60), one after another, from its seed corpus in
# tests/fuzz/corpus/NAME/, and ends with "fuzz: N passed, N failed".
#
# A harness fails when libFuzzer finds a crash, a leak, a sanitizer report
# or a broken property (an assert); the input that did it is saved as
# tests/fuzz/build/NAME-crash-* (or -leak-, -timeout-, -oom-) and named in
# the output, and `tests/fuzz/build/fuzz_NAME FILE` replays it. New inputs
# go to tests/fuzz/build/corpus/NAME/, so the committed seeds never change.
set -u
cd "$(dirname "$0")/../.."

seconds=${FUZZ_SECONDS:-60}
build=tests/fuzz/build
passed=0
failed=0

for src in tests/fuzz/fuzz_*.c; do
	prog=$build/$(basename "$src" .c)
	name=${prog#"$build"/fuzz_}
	work=$build/corpus/$name
	log=$build/$name.log
	mkdir -p "$work"
	start=$(date +%s)
	if "$prog" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
	    -artifact_prefix="$build/$name-" "$work" "tests/fuzz/corpus/$name" >"$log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		echo "ok   fuzz_$name (${runs:-?} runs in $(($(date +%s) - start)) s)"
		passed=$((passed + 1))
	else
		echo "FAIL fuzz_$name (log: $log)"
		grep -E 'ERROR: |runtime error:|Assertion|^SUMMARY|Test unit written' "$log" | head -n 20
		failed=$((failed + 1))
	fi
done

echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
