#!/bin/sh
# The lateness figure: COUNT messages due at moments spread evenly over
# SPAN seconds, delivered by one `dispatch --for` to an nginx sink that
# logs each arrival; lateness is arrival minus due. Prints a markdown row.
#
# usage: bench/lateness.sh [COUNT] [SPAN]   (defaults 2000, 30)
set -eu
. "$(dirname "$0")/lib.sh"

count=${1:-2000}
span=${2:-30}
port=$(free_port)
start_sink "$port" log
conf=$bench_dir/lateness.conf
db=$bench_dir/lateness.db
write_conf "$conf" "$db"
"$top/bin/dispatch" -c "$conf" --once 2>/dev/null
start=$(($(now_ms) + 2000))
# Due times start + i * span / count, in the buffer as schedule puts
# near-term messages.
fill_messages "$db" "$count" "http://127.0.0.1:$port/late" \
	"$start + (i - 1) * $span * 1000 / $count" "printf('late%022d', i)" 1
"$top/bin/dispatch" -c "$conf" --for $((span + 4)) 2> "$bench_dir/dispatch.log"
tail -n 1 "$bench_dir/dispatch.log" >&2
sqlite3 -separator ' ' "$db" "SELECT id, due FROM messages" > "$bench_dir/due"
awk 'NR == FNR { due[$1] = $2; next } ($2 in due) { print $1 * 1000 - due[$2] }' \
	"$bench_dir/due" "$bench_dir/sink/arrivals" | sort -n > "$bench_dir/late"
n=$(wc -l < "$bench_dir/late")
if [ "$n" -ne "$count" ]; then
	echo "bench: $n arrivals for $count messages" >&2
	exit 1
fi
# nginx logs arrival to the millisecond: -1 is the same moment.
if [ "$(awk 'NR == 1 { print ($1 < -1) }' "$bench_dir/late")" = 1 ]; then
	echo "bench: a message arrived before its due time: $(head -n 1 "$bench_dir/late") ms" >&2
	exit 1
fi
percentile() {
	awk -v p="$1" -v n="$n" 'NR == (int(n * p) > 0 ? int(n * p) : 1) { printf "%.0f", $1 }' "$bench_dir/late"
}
echo "| lateness (arrival − due) of $count messages over $span s under dispatch --for: p50 / p99 / max | $(percentile 0.5) / $(percentile 0.99) / $(tail -n 1 "$bench_dir/late") ms | — | — | p99 ≤ 50 ms |"
