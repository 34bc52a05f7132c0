#!/bin/sh
# The queue figures. Throughput: WORKERS worker processes (each loop:
# receive max=10, then ack those 10 in one JSON `items` batch) drain COUNT
# jobs through nginx and cgi-bin/queue, and in the same run the same
# workers drain COUNT jobs from bench/baseline_queue (one claiming UPDATE
# per receive, one DELETE per acked job in one transaction per ack) behind
# the same nginx setup, with as many processes and the same `synchronous`.
# The two take turns, ROUNDS times each, so that the disk's sync rate,
# which drifts on a shared machine, weighs on both alike.
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
rounds=${QUEUE_ROUNDS:-2}
procs=${QUEUE_WORKERS:-2}          # FastCGI processes of each program
sync=${QUEUE_SYNCHRONOUS:-full}
client=$top/bench/queue_client.py
queue_routes='~ ^/api/(receive|ack|release|extend|queues)$'
each=$((count / rounds / nworkers))     # jobs per worker per round
per_round=$((each * nworkers))
total=$((per_round * rounds))

conf=$bench_dir/queue.conf
write_conf "$conf" "$bench_dir/queue.db" synchronous=$sync
"$top/bin/dispatch" -c "$conf" --once 2>/dev/null     # creates the schema

# The jobs go in through the schedule program, as a producer's would.
port=$(free_port)
start_fcgi_site "$port" schedule /api/schedule 2 "$top/cgi-bin/schedule" -c "$conf"
echo "bench: scheduling $total jobs into queue bench" >&2
python3 "$client" fill "$port" bench "$total"
stop_fcgi_site schedule
db=$bench_dir/baseline-queue.db
"$top/bench/baseline_queue" "$db" "$sync" fill "$total"

ours_port=$(free_port)
start_fcgi_site "$ours_port" queue "$queue_routes" "$procs" "$top/cgi-bin/queue" -c "$conf"
base_port=$(free_port)
start_fcgi_site "$base_port" baseline-queue "$queue_routes" "$procs" "$top/bench/baseline_queue" "$db" "$sync"
ours_jobs=0 ours_s=0 base_jobs=0 base_s=0
for r in $(seq "$rounds"); do
	set -- $(python3 "$client" workers "$ours_port" bench "$nworkers" "$batch" postdate "$each")
	echo "bench: round $r: cgi-bin/queue acked $1 jobs in $2 s" >&2
	ours_jobs=$((ours_jobs + $1)) ours_s=$(awk "BEGIN { print $ours_s + $2 }")
	set -- $(python3 "$client" workers "$base_port" bench "$nworkers" "$batch" baseline "$each")
	echo "bench: round $r: baseline_queue acked $1 jobs in $2 s" >&2
	base_jobs=$((base_jobs + $1)) base_s=$(awk "BEGIN { print $base_s + $2 }")
done
# CPU per job says where a gap comes from when the machine is the limit.
echo "bench: CPU per 1000 jobs: cgi-bin/queue $(($(cpu_ms queue) * 1000 / total)) ms," \
	"baseline_queue $(($(cpu_ms baseline-queue) * 1000 / total)) ms" >&2
stop_fcgi_site queue
stop_fcgi_site baseline-queue

for n in "$ours_jobs" "$base_jobs"; do
	if [ "$n" -ne "$total" ]; then
		echo "bench: $n jobs acked of $total" >&2
		exit 1
	fi
done
ours=$(awk "BEGIN { printf \"%d\", $ours_jobs / $ours_s }")
base=$(awk "BEGIN { printf \"%d\", $base_jobs / $base_s }")
ratio=$(awk "BEGIN { printf \"%.2f\", $ours / $base }")
echo "| receive + ack jobs/s through nginx ($nworkers workers, batches of $batch, $rounds × $per_round jobs each in turn, $procs processes, synchronous=$sync) | $ours | one claiming UPDATE per receive, one DELETE per ack: $base | $ratio | ≥ 1.0 |"

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
