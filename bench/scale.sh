#!/bin/sh
# The scale figures: with BIG far-future messages in the database against
# SMALL ones, (1) an idle dispatch pass (dispatch --once with nothing due),
# and (2) GET /api/status by id and (3) the list's first page, through
# nginx. Ratios near 1 mean the cost does not grow with what is scheduled.
# Prints markdown rows.
#
# usage: bench/scale.sh [BIG] [SMALL]   (defaults 1000000, 1000)
set -eu
. "$(dirname "$0")/lib.sh"

big=${1:-1000000}
small=${2:-1000}
passes=20

# far_id N: the id of far-future message N: its number in base 10 written
# with the letters a-j, as ids are lowercase base32 (a-z, 2-7).
far_id() {
	printf 'far%023d' "$1" | tr 0-9 a-j
}

# fill_far DATABASE COUNT: COUNT pending messages due in 30 days and more.
fill_far() {
	far=$(($(now_ms) + 30 * 86400 * 1000))
	fill_messages "$1" "$2" http://127.0.0.1:9/far "$far + i * 1000" \
	    "replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
	     printf('far%023d', i), '0', 'a'), '1', 'b'), '2', 'c'), '3', 'd'), '4', 'e'),
	     '5', 'f'), '6', 'g'), '7', 'h'), '8', 'i'), '9', 'j')"
}

# idle_pass_ms CONF: the mean time of one dispatch --once that finds nothing.
idle_pass_ms() {
	t0=$(now_ms)
	for _ in $(seq $passes); do
		"$top/bin/dispatch" -c "$1" --once 2>/dev/null
	done
	awk "BEGIN { printf \"%.2f\", ($(now_ms) - $t0) / $passes }"
}

# get_rate PORT PATH: requests/s of GET PATH (wrk, 5 s); fails on errors.
get_rate() {
	wrk -t 2 -c 16 -d 5s "http://127.0.0.1:$1$2" > "$bench_dir/wrk.out"
	if grep -q 'Non-2xx' "$bench_dir/wrk.out"; then
		cat "$bench_dir/wrk.out" >&2
		exit 1
	fi
	awk '/Requests\/sec/ { printf "%d", $2 }' "$bench_dir/wrk.out"
}

for n in "$small" "$big"; do
	conf=$bench_dir/scale-$n.conf
	write_conf "$conf" "$bench_dir/scale-$n.db"
	"$top/bin/dispatch" -c "$conf" --once 2>/dev/null
	t0=$(now_ms)
	fill_far "$bench_dir/scale-$n.db" "$n"
	echo "bench: $n far-future messages written in $(($(now_ms) - t0)) ms" >&2
	eval "pass_$n=\$(idle_pass_ms \"\$conf\")"
	port=$(free_port)
	start_fcgi_site "$port" "status-$n" /api/status 2 "$top/cgi-bin/status" -c "$conf"
	id=$(far_id $((n / 2)))
	eval "byid_$n=\$(get_rate \"\$port\" \"/api/status?id=$id\")"
	eval "list_$n=\$(get_rate \"\$port\" \"/api/status?state=pending&limit=50\")"
	stop_fcgi_site "status-$n"
done

eval "pb=\$pass_$big ps=\$pass_$small ib=\$byid_$big is=\$byid_$small lb=\$list_$big ls=\$list_$small"
echo "| idle dispatch --once pass, $big far-future messages (ms) | $pb | $small messages: $ps | $(awk "BEGIN { printf \"%.2f\", $pb / $ps }") | ≤ 1.2 |"
echo "| GET /api/status?id= at $big messages (requests/s) | $ib | $small messages: $is | $(awk "BEGIN { printf \"%.2f\", $ib / $is }") | — |"
echo "| GET /api/status list, first page of 50, at $big messages (requests/s) | $lb | $small messages: $ls | $(awk "BEGIN { printf \"%.2f\", $lb / $ls }") | — |"
