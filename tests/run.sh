#!/bin/sh
# Runs every test suite (`make test`) and ends with one line that adds them
# up: "N passed, N failed". Exits 1 if anything failed.
set -u
cd "$(dirname "$0")/.."

passed=0
failed=0
out=$(mktemp)
san=
trap 'rm -f "$out"; [ -z "$san" ] || rm -rf "$san"' EXIT

# Under `make test SANITIZE=1` every sanitized program (the unit tests, the
# FastCGI workers under spawn-fcgi, dispatch) writes any ASan, LSan or
# UBSan report into $san, not to a stderr that may be /dev/null or a
# test's pipe; after the suites, any report there is a failed test.
if [ "${SANITIZE:-}" = 1 ]; then
	san=$(mktemp -d)
	chmod 1777 "$san"    # test_deploy runs programs as nobody
	export ASAN_OPTIONS="log_path=$san/report"
	export UBSAN_OPTIONS="log_path=$san/report:print_stacktrace=1"
fi
sanitizer_reports_are_empty() {
	if [ -z "$(ls -A "$san")" ]; then
		echo "ok   sanitizer_reports_are_empty"
		echo "sanitizers: 1 passed, 0 failed"
	else
		echo "FAIL sanitizer_reports_are_empty"
		for f in "$san"/*; do
			echo "--- $f"
			head -n 40 "$f"
		done
		echo "sanitizers: 0 passed, 1 failed"
	fi
}

# Each suite prints its own "SUITE: N passed, N failed" as its last line.
# A suite that exits non-zero fails even when its summary says otherwise
# (a crash after the summary, a sanitizer's exit code, a runner's error).
run_suite() {
	{ "$@" 2>&1 || echo "tests: exit status $?"; } | tee "$out"
	line=$(grep -E '^[a-z_-]+: [0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
	if [ -z "$line" ]; then
		echo "tests: $* ended without a summary line; counting it as a failure"
		failed=$((failed + 1))
		return
	fi
	p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/.*, ([0-9]+) failed.*/\1/')
	if grep -q '^tests: exit status ' "$out" && [ "$f" -eq 0 ]; then
		echo "tests: $* exited non-zero after reporting no failure; counting it as a failure"
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
}

for t in tests/unit/test_*; do
	case $t in *.c) continue ;; esac
	run_suite "$t"
done
run_suite python3 tests/integration/run.py
run_suite python3 tests/browser/run.py
[ -z "$san" ] || run_suite sanitizer_reports_are_empty

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
