#!/bin/sh
# Where cgi-bin/queue spends its instructions: callgrind over one queue
# process serving 3000 jobs (8 workers, receive 10 + ack 10). Not a figure;
# a tool: callgrind_annotate /tmp/callgrind.queue, divide by 3000 per job
# (store_open is once per connection thread, not per job).
set -eu
. "$(dirname "$0")/lib.sh"
conf=$bench_dir/q.conf
write_conf "$conf" "$bench_dir/q.db" synchronous=full
"$top/bin/dispatch" -c "$conf" --once 2>/dev/null
port=$(free_port)
start_fcgi_site "$port" schedule /api/schedule 2 "$top/cgi-bin/schedule" -c "$conf"
python3 "$top/bench/queue_client.py" fill "$port" bench 3000
stop_fcgi_site schedule
qport=$(free_port)
start_fcgi_site "$qport" queue '~ ^/api/(receive|ack|release|extend|queues)$' 1 /usr/bin/valgrind --tool=callgrind --callgrind-out-file=/tmp/callgrind.queue "$top/cgi-bin/queue" -c "$conf"
sleep 3
python3 "$top/bench/queue_client.py" workers "$qport" bench 8 10 postdate 375
stop_fcgi_site queue
sleep 2
