#!/bin/sh
# The queue figures. Throughput: WORKERS worker processes (each loop:
# receive max=10, then ack those 10 in one JSON `items` batch) drain COUNT
# jobs through nginx and cgi-bin/queue, and in the same run the same
# workers drain COUNT jobs from bench/baseline_queue (one claiming UPDATE
# per receive, one DELETE per acked job in one transaction per ack) behind
# the same nginx setup, with as many processes and the same `synchronous`.
# Latency: one worker long-polling (wait=20) while COUNT jobs are published
# one at a time: publish -> received. Prints markdown rows; details on
# stderr.
#
# usage: bench/queue.sh [COUNT] [WORKERS] [LATENCY_COUNT]   (defaults 20000, 16, 200)
set -eu
. "$(dirname "$0")/lib.sh"

count=${1:-20000}
nworkers=${2:-16}
latency_count=${3:-200}
batch=10
procs=${QUEUE_WORKERS:-2}          # FastCGI processes of each program
sync=${QUEUE_SYNCHRONOUS:-full}
client=$top/bench/queue_client.py
queue_routes='~ ^/api/(receive|ack|release|extend|queues)$'

conf=$bench_dir/queue.conf
write_conf "$conf" "$bench_dir/queue.db" synchronous=$sync
"$top/bin/dispatch" -c "$conf" --once 2>/dev/null     # creates the schema

# The jobs go in through the schedule program, as a producer's would.
port=$(free_port)
start_fcgi_site "$port" schedule /api/schedule 2 "$top/cgi-bin/schedule" -c "$conf"
echo "bench: scheduling $count jobs into queue bench" >&2
python3 "$client" fill "$port" bench "$count"
stop_fcgi_site schedule

port=$(free_port)
start_fcgi_site "$port" queue "$queue_routes" "$procs" "$top/cgi-bin/queue" -c "$conf"
echo "bench: cgi-bin/queue, $nworkers workers, batches of $batch, synchronous=$sync" >&2
set -- $(python3 "$client" workers "$port" bench "$nworkers" "$batch" postdate)
ours_jobs=$1 ours_s=$2
stop_fcgi_site queue
echo "bench: postdate acked $ours_jobs jobs in $ours_s s" >&2

db=$bench_dir/baseline-queue.db
"$top/bench/baseline_queue" "$db" "$sync" fill "$count"
port=$(free_port)
start_fcgi_site "$port" baseline-queue "$queue_routes" "$procs" "$top/bench/baseline_queue" "$db" "$sync"
echo "bench: baseline_queue, $nworkers workers, batches of $batch, synchronous=$sync" >&2
set -- $(python3 "$client" workers "$port" bench "$nworkers" "$batch" baseline)
base_jobs=$1 base_s=$2
stop_fcgi_site baseline-queue
echo "bench: baseline acked $base_jobs jobs in $base_s s" >&2

for n in "$ours_jobs" "$base_jobs"; do
	if [ "$n" -ne "$count" ]; then
		echo "bench: $n jobs acked of $count" >&2
		exit 1
	fi
done
ours=$(awk "BEGIN { printf \"%d\", $ours_jobs / $ours_s }")
base=$(awk "BEGIN { printf \"%d\", $base_jobs / $base_s }")
ratio=$(awk "BEGIN { printf \"%.2f\", $ours / $base }")
echo "| receive + ack jobs/s through nginx ($nworkers workers, batches of $batch, $count jobs, $procs processes, synchronous=$sync) | $ours | one claiming UPDATE per receive, one DELETE per ack: $base | $ratio | ≥ 1.0 |"

# Publish -> received: the schedule program and the queue program on the
# same database, a worker long-polling the queue program.
conf=$bench_dir/latency.conf
write_conf "$conf" "$bench_dir/latency.db" synchronous=$sync
"$top/bin/dispatch" -c "$conf" --once 2>/dev/null
sched_port=$(free_port)
start_fcgi_site "$sched_port" schedule-lat /api/schedule 2 "$top/cgi-bin/schedule" -c "$conf"
queue_port=$(free_port)
start_fcgi_site "$queue_port" queue-lat "$queue_routes" "$procs" "$top/cgi-bin/queue" -c "$conf"
echo "bench: publish -> received, one worker long-polling, $latency_count jobs" >&2
python3 "$client" latency "$sched_port" "$queue_port" lat "$latency_count" | sort -n > "$bench_dir/lat"
stop_fcgi_site queue-lat
stop_fcgi_site schedule-lat
n=$(wc -l < "$bench_dir/lat")
if [ "$n" -ne "$latency_count" ]; then
	echo "bench: $n latencies for $latency_count jobs" >&2
	exit 1
fi
percentile() {
	awk -v p="$1" -v n="$n" 'NR == (int(n * p) > 0 ? int(n * p) : 1) { printf "%.1f", $1 }' "$bench_dir/lat"
}
echo "| publish → received, one worker long-polling (wait=20, $latency_count jobs): p50 / p99 | $(percentile 0.5) / $(percentile 0.99) ms | — | — | p50 ≤ 20 ms |"
