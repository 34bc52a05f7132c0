#!/bin/sh
# The retention figure: the database's size on disk after COUNT messages
# have been delivered, without retention (retention = 0: every message
# kept) and with it (retention = 1s), in ROUNDS rounds of COUNT/ROUNDS due
# messages, each delivered by one `dispatch --once` to a local nginx sink,
# a little over the retention apart: with retention, each round's run
# deletes the rounds before it (500 per transaction) and SQLite reuses
# their pages, so the file stays near the size of one round; without it,
# it grows with COUNT. Also the size after VACUUM, which gives the free
# pages back to the file system. Prints markdown table rows; details on
# stderr.
#
# usage: bench/retention.sh [COUNT] [ROUNDS]   (defaults 1000000, 10)
set -eu
. "$(dirname "$0")/lib.sh"

count=${1:-1000000}
rounds=${2:-10}
per_round=$((count / rounds))
port=$(free_port)
start_sink "$port"
url="http://127.0.0.1:$port/sink"

# size_mb FILE: the database with its WAL, in MB (one decimal).
size_mb() {
	total=0
	for f in "$1" "$1-wal"; do
		[ -f "$f" ] && total=$((total + $(stat -c %s "$f")))
	done
	awk "BEGIN { printf \"%.1f\", $total / 1048576 }"
}

# run_rounds NAME RETENTION: prints "SIZE_MB KEPT VACUUMED_MB".
run_rounds() {
	db=$bench_dir/$1.db
	conf=$bench_dir/$1.conf
	write_conf "$conf" "$db" retention="$2" concurrency=64 host_concurrency=64
	"$top/bin/dispatch" -c "$conf" --once 2>/dev/null
	t0=$(now_ms)
	for r in $(seq "$rounds"); do
		fill_messages "$db" "$per_round" "$url" "$(($(now_ms) - 1000))" \
			"printf('bench%06d%015d', $r, i)"
		"$top/bin/dispatch" -c "$conf" --once 2> "$bench_dir/$1.log"
		# The next round comes after this one is past the retention.
		[ "$r" -lt "$rounds" ] && sleep 1.2
	done
	t1=$(now_ms)
	tail -n 1 "$bench_dir/$1.log" >&2
	delivered=$(sqlite3 "$db" "SELECT n FROM counts WHERE state = 2")
	echo "retention: $1 (retention = $2): $rounds rounds of $per_round in $(((t1 - t0) / 1000)) s, $delivered kept" >&2
	size=$(size_mb "$db")
	sqlite3 "$db" "PRAGMA wal_checkpoint(TRUNCATE); VACUUM;" >/dev/null
	echo "$size $delivered $(size_mb "$db")"
}

set -- $(run_rounds keep 0)
keep_mb=$1 keep_n=$2 keep_vacuum=$3
set -- $(run_rounds retain 1s)
retain_mb=$1 retain_n=$2 retain_vacuum=$3

echo "| database size after $count delivered messages ($rounds rounds, 1.2 s apart), retention = 1s: file / after VACUUM | $retain_mb MB / $retain_vacuum MB ($retain_n kept) | retention = 0: $keep_mb MB / $keep_vacuum MB ($keep_n kept) | $(awk "BEGIN { printf \"%.2f\", $retain_mb / $keep_mb }") | — |"
