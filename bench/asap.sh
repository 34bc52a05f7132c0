#!/bin/sh
# The ASAP figure: COUNT messages scheduled one after another through nginx
# and the schedule program, with no time given, while a dispatcher runs;
# accept → delivered is the sink's arrival time minus the moment the client
# sent the request. Prints a markdown row.
#
# usage: bench/asap.sh [COUNT]   (default 200)
set -eu
. "$(dirname "$0")/lib.sh"

count=${1:-200}
sink_port=$(free_port)
start_sink "$sink_port" log
port=$(free_port)
conf=$bench_dir/asap.conf
write_conf "$conf" "$bench_dir/asap.db"
"$top/bin/dispatch" -c "$conf" --once 2>/dev/null
start_fcgi_site "$port" schedule /api/schedule 4 "$top/cgi-bin/schedule" -c "$conf"
"$top/bin/dispatch" -c "$conf" --watch 2> "$bench_dir/dispatch.log" &
dispatcher=$!
bench_pids="$bench_pids $dispatcher"
sleep 0.5

python3 - "$port" "$sink_port" "$count" "$bench_dir/sent" <<'PY'
import http.client, json, sys, time, urllib.parse
port, sink_port, count, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = http.client.HTTPConnection("127.0.0.1", port)
body = urllib.parse.urlencode({"url": f"http://127.0.0.1:{sink_port}/asap", "payload": "now"})
with open(out, "w") as f:
    for _ in range(count):
        t0 = time.time()
        c.request("POST", "/api/schedule", body,
                  {"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        answer = r.read()
        if r.status != 201:
            sys.exit(f"bench: schedule answered {r.status}: {answer[:200]!r}")
        f.write(f"{json.loads(answer)['id']} {t0 * 1000:.3f}\n")
        time.sleep(0.01)          # one at a time, as a user would
PY
sleep 1
kill -TERM "$dispatcher"
wait "$dispatcher" || true
awk 'NR == FNR { sent[$1] = $2; next } ($2 in sent) { print $1 * 1000 - sent[$2] }' \
	"$bench_dir/sent" "$bench_dir/sink/arrivals" | sort -n > "$bench_dir/lat"
n=$(wc -l < "$bench_dir/lat")
if [ "$n" -ne "$count" ]; then
	echo "bench: $n arrivals for $count messages" >&2
	exit 1
fi
percentile() {
	awk -v p="$1" -v n="$n" 'NR == (int(n * p) > 0 ? int(n * p) : 1) { printf "%.1f", $1 }' "$bench_dir/lat"
}
echo "| ASAP, accept → delivered while a dispatcher runs ($count messages): p50 / p99 | $(percentile 0.5) / $(percentile 0.99) ms | — | — | p50 ≤ 20 ms |"
