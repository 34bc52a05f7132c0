#!/bin/sh
# Where dispatch spends its instructions: `dispatch --once` over COUNT due
# messages to an nginx sink under valgrind's callgrind, then the functions
# with the most inclusive cost. Not a figure; a tool for finding what to fix
# when a figure misses its target.
#
# usage: bench/profile.sh [COUNT]   (default 5000; the output file is kept
#        as ./callgrind.dispatch (git ignores it) for callgrind_annotate or kcachegrind)
set -eu
. "$(dirname "$0")/lib.sh"

count=${1:-5000}
port=$(free_port)
start_sink "$port"
conf=$bench_dir/postdate.conf
write_conf "$conf" "$bench_dir/profile.db"
"$top/bin/dispatch" -c "$conf" --once 2>/dev/null
fill_due "$bench_dir/profile.db" "$count" "http://127.0.0.1:$port/sink" "$(($(now_ms) - 1000))"

valgrind --tool=callgrind --callgrind-out-file=callgrind.dispatch \
	"$top/bin/dispatch" -c "$conf" --once 2> "$bench_dir/valgrind.log" || {
	cat "$bench_dir/valgrind.log" >&2
	exit 1
}
callgrind_annotate --inclusive=yes callgrind.dispatch 2>/dev/null | head -n 60
