#!/bin/sh
# Runs every test suite (`make test`) and ends with one line that adds them
# up: "N passed, N failed". Exits 1 if anything failed.
set -u
cd "$(dirname "$0")/.."

passed=0
failed=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# Each suite prints its own "SUITE: N passed, N failed" as its last line.
run_suite() {
	"$@" 2>&1 | tee "$out"
	line=$(grep -E '^[a-z_-]+: [0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
	if [ -z "$line" ]; then
		echo "tests: $* ended without a summary line; counting it as a failure"
		failed=$((failed + 1))
		return
	fi
	p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/.*, ([0-9]+) failed.*/\1/')
	passed=$((passed + p))
	failed=$((failed + f))
}

for t in tests/unit/test_*; do
	case $t in *.c) continue ;; esac
	run_suite "$t"
done
run_suite python3 tests/integration/run.py
run_suite python3 tests/browser/run.py

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
