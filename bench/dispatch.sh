#!/bin/sh
# The dispatch figure: `dispatch --once` over COUNT due messages to a local
# nginx sink, and in the same run a bare libcurl-multi loop (baseline_multi)
# POSTing as many to the same sink at the same concurrency. Prints a
# markdown table row; details on stderr.
#
# usage: bench/dispatch.sh [COUNT] [CONCURRENCY]   (defaults 100000, 64)
#        DISPATCH=path/to/dispatch bench/dispatch.sh ...  measures another
#        build (an older commit's, for a before/after) against the same baseline.
set -eu
. "$(dirname "$0")/lib.sh"
dispatch=${DISPATCH:-$top/bin/dispatch}

count=${1:-100000}
concurrency=${2:-64}
port=$(free_port)
start_sink "$port"
url="http://127.0.0.1:$port/sink"

conf=$bench_dir/postdate.conf
write_conf "$conf" "$bench_dir/dispatch.db" concurrency=$concurrency \
	host_concurrency=$concurrency
# An empty run creates the schema; then the backlog is written with SQL.
"$dispatch" -c "$conf" --once 2>/dev/null
fill_due "$bench_dir/dispatch.db" "$count" "$url" "$(($(now_ms) - 1000))"

t0=$(now_ms)
/usr/bin/time -f '%M %U %S %e' -o "$bench_dir/rss" "$dispatch" -c "$conf" --once \
	2> "$bench_dir/dispatch.log"
t1=$(now_ms)
tail -n 1 "$bench_dir/dispatch.log" >&2
delivered=$(sqlite3 "$bench_dir/dispatch.db" "SELECT n FROM counts WHERE state = 2")
if [ "$delivered" != "$count" ]; then
	echo "bench: dispatch delivered $delivered of $count" >&2
	exit 1
fi
ours=$((count * 1000 / (t1 - t0)))
awk '{ printf "dispatch: user %s s, system %s s, elapsed %s s (CPU-bound when user + system is close to elapsed)\n", $2, $3, $4 }' "$bench_dir/rss" >&2
rss_mb=$(($(cut -d" " -f1 "$bench_dir/rss") / 1024))

line=$("$top/bench/baseline_multi" "$url" "$count" "$concurrency")
echo "$line" >&2
base=$(echo "$line" | sed -E 's/.*: ([0-9]+)\/s.*/\1/')

ratio=$(awk "BEGIN { printf \"%.2f\", $ours / $base }")
echo "| deliveries/s, dispatch --once of $count due messages (concurrency $concurrency) | $ours | bare libcurl-multi loop: $base | $ratio | ≥ 0.5 |"
echo "| peak RSS of dispatch --once with a backlog of $count | $rss_mb MB | — | — | ≤ 64 MB |"
