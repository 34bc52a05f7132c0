#!/bin/sh
# The ingest figure: wrk form POSTs to /api/schedule through nginx, and in
# the same run the same POSTs to bench/baseline_insert (one SQLite insert
# and commit per request, nothing parsed) behind the same nginx setup with
# the same number of workers and the same `synchronous`. Prints a markdown
# row per setting; details on stderr.
#
# usage: bench/ingest.sh [SECONDS] [CONNECTIONS]   (defaults 10, 32)
set -eu
. "$(dirname "$0")/lib.sh"

seconds=${1:-10}
connections=${2:-32}
workers=${SCHEDULE_WORKERS:-2}     # as bin/postdate-stack runs schedule

# wrk_rate PORT: requests/s; fails when any answer was not a 201.
wrk_rate() {
	wrk -t 2 -c "$connections" -d "${seconds}s" -s "$top/bench/post.lua" \
		"http://127.0.0.1:$1/api/schedule" > "$bench_dir/wrk.out" 2> "$bench_dir/wrk.err"
	grep -E 'Requests/sec|Latency' "$bench_dir/wrk.out" >&2
	# A run full of errors must not pass for a fast one.
	if grep -q 'Non-2xx' "$bench_dir/wrk.out"; then
		echo "bench: answers other than 201:" >&2
		cat "$bench_dir/wrk.out" "$bench_dir/wrk.err" >&2
		exit 1
	fi
	awk '/Requests\/sec/ { printf "%d", $2 }' "$bench_dir/wrk.out"
}

for sync in full normal; do
	port=$(free_port)
	conf=$bench_dir/ingest-$sync.conf
	write_conf "$conf" "$bench_dir/ingest-$sync.db" synchronous=$sync
	"$top/bin/dispatch" -c "$conf" --once 2>/dev/null     # creates the schema
	start_fcgi_site "$port" "schedule-$sync" /api/schedule "$workers" "$top/cgi-bin/schedule" -c "$conf"
	echo "bench: schedule, synchronous=$sync" >&2
	ours=$(wrk_rate "$port")
	rss=$(peak_rss_kb "$bench_dir/schedule-$sync/fcgi.pid")
	stop_fcgi_site "schedule-$sync"

	port=$(free_port)
	start_fcgi_site "$port" "baseline-$sync" /api/schedule "$workers" "$top/bench/baseline_insert" \
		"$bench_dir/baseline-$sync.db" "$sync"
	echo "bench: baseline_insert, synchronous=$sync" >&2
	base=$(wrk_rate "$port")
	stop_fcgi_site "baseline-$sync"

	ratio=$(awk "BEGIN { printf \"%.2f\", $ours / $base }")
	target="—"
	[ "$sync" = full ] && target="≥ 1.5"
	echo "| schedules/s through nginx, synchronous=$sync (wrk, $connections connections, $workers workers; worker peak RSS $((rss / 1024)) MB) | $ours | one insert+commit per request: $base | $ratio | $target |"
done
