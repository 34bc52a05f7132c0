#!/bin/sh
# `make test-pg`: the suites that run on PostgreSQL, against a throwaway
# PostgreSQL 15 cluster started here (tests/integration/pg.py) and stopped
# at the end, failures included: the store's unit tests on a database of
# their own (POSTDATE_TEST_DATABASE=URL), then the integration tests, each
# stack on a fresh database (POSTDATE_TEST_DATABASE=pg). Arguments narrow
# the integration tests as run.py's do (substrings of test names). Ends
# with "N passed, N failed" as tests/run.sh does; exits 1 if anything failed.
set -u
cd "$(dirname "$0")/.."

dir=$(mktemp -d /tmp/postdate-test-pg-XXXXXX)
chmod 755 "$dir"     # the cluster runs as postdate-test when we are root
out=$(mktemp)
trap 'python3 tests/integration/pg.py stop "$dir" >/dev/null 2>&1 || rm -rf "$dir"; rm -f "$out"' EXIT
if ! url=$(python3 tests/integration/pg.py start "$dir"); then
	echo "test-pg: could not start a PostgreSQL cluster"
	echo "0 passed, 1 failed"
	exit 1
fi
unit_url=$(echo "$url" | sed 's|/postgres$|/unit|')
psql -X -q -d "$url" -c 'CREATE DATABASE unit' || exit 1

passed=0
failed=0
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
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
}

# The store's log lines go to a file: a PostgreSQL test logs what it does.
POSTDATE_TEST_DATABASE=$unit_url run_suite sh -c './tests/unit/test_store 2>"$1"' sh "$dir/unit.log"
POSTDATE_TEST_DATABASE=pg POSTDATE_TEST_PG_URL=$url run_suite python3 tests/integration/run.py "$@"

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
