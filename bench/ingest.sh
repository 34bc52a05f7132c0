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
