# Shared by the bench/*.sh figures: a scratch folder, a sink, a database
# filled by SQL, and timing. Sourced, not run.

top=$(cd "$(dirname "$0")/.." && pwd)
bench_dir=$(mktemp -d "${TMPDIR:-/tmp}/postdate-bench.XXXXXX")
bench_pids=

bench_cleanup() {
	for p in $bench_pids; do kill "$p" 2>/dev/null || true; done
	for p in $bench_pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$bench_dir"
}
trap bench_cleanup EXIT INT TERM

# nginx started by root runs its workers as nobody, who cannot reach the
# scratch folder; keep them as the user running the benchmark.
nginx_user=
[ "$(id -u)" = 0 ] && nginx_user="user root;"

# A free TCP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

now_ms() {
	date +%s%3N
}

# run_nginx DIR PORT HTTP_LINES: an nginx with one worker, its files in DIR,
# whose http block holds HTTP_LINES; returns once it answers on PORT.
run_nginx() {
	cat > "$1/nginx.conf" <<CONF
$nginx_user
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
	client_body_temp_path $1;
	$3
}
CONF
	nginx -p "$1" -c "$1/nginx.conf" -e "$1/error.log" -g 'daemon off;' &
	bench_pids="$bench_pids $!"
	for _ in $(seq 50); do
		curl -s -o /dev/null "http://127.0.0.1:$2/" && return 0
		sleep 0.1
	done
	echo "bench: nginx in $1 did not start" >&2
	cat "$1/error.log" >&2
	exit 1
}

# start_sink PORT [log]: nginx answering every request 204, the cheapest
# real HTTP target there is, with connections kept alive. With "log", each
# request's arrival (ms since the epoch) and webhook-id go to
# $bench_dir/sink/arrivals.
start_sink() {
	d=$bench_dir/sink
	mkdir -p "$d"
	log="access_log off;"
	[ "${2:-}" = log ] && log="log_format arrival '\$msec \$http_webhook_id'; access_log $d/arrivals arrival;"
	run_nginx "$d" "$1" "$log
	keepalive_requests 10000000;
	server {
		listen 127.0.0.1:$1 backlog=4096;
		location / { return 204; }
	}"
}

# write_conf FILE DATABASE [KEY=VALUE...]: a postdate configuration.
write_conf() {
	f=$1 db=$2
	shift 2
	{
		echo "database = $db"
		echo "allow_targets = 127.0.0.0/8, ::1"
		for kv in "$@"; do echo "${kv%%=*} = ${kv#*=}"; done
	} > "$f"
}

# fill_messages DATABASE COUNT URL DUE ID [BUFFERED]: COUNT pending messages
# to URL, written with SQL as the schedule program leaves them: a message
# row, its payload and its live row each (store v2). DUE and ID are SQL expressions of
# i (1..COUNT); BUFFERED 1 puts them in the near-term buffer at once,
# otherwise (the default) dispatch promotes them, as it would in use.
fill_messages() {
	sqlite3 "$1" <<SQL
PRAGMA synchronous = OFF;
BEGIN;
CREATE TEMP TABLE first AS SELECT coalesce(max(key), 0) AS key FROM messages;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2)
INSERT INTO messages (id, due, created, urls, payload_bytes, content_type, max_attempts, timeout)
SELECT $5, $4, $4, '$3', 14, 'application/json', 8, 10 FROM n;
INSERT INTO payloads (key, payload)
SELECT key, CAST('{"bench":true}' AS BLOB) FROM messages WHERE key > (SELECT key FROM first);
INSERT INTO live (key, due, next_round, buffered, lease_ms)
SELECT key, due, due, ${6:-0}, 10000 FROM messages WHERE key > (SELECT key FROM first);
UPDATE counts SET n = (SELECT count(*) FROM live) WHERE state = 0;
COMMIT;
SQL
}

# fill_due DATABASE COUNT URL DUE_MS: COUNT messages to URL all due at DUE_MS.
fill_due() {
	fill_messages "$1" "$2" "$3" "$4" "printf('bench%021d', i)"
}

# start_fcgi_site PORT NAME ROUTE WORKERS PROGRAM [ARGS...]: PROGRAM under
# spawn-fcgi (WORKERS processes) behind an nginx on PORT that passes ROUTE
# (e.g. /api/schedule, or a regular expression such as
# "~ ^/api/(receive|ack)$" for several) to it, as etc/nginx.conf does for
# the real programs.
start_fcgi_site() {
	port=$1 name=$2 route=$3 workers=$4
	shift 4
	case $route in
	"~"*) location="location $route" ;;
	*) location="location = $route" ;;
	esac
	d=$bench_dir/$name
	mkdir -p "$d"
	spawn-fcgi -s "$d/fcgi.sock" -M 0660 -F "$workers" -P "$d/fcgi.pid" -- "$@" >/dev/null
	while read -r p || [ -n "$p" ]; do bench_pids="$bench_pids $p"; done < "$d/fcgi.pid"
	run_nginx "$d" "$port" "access_log off;
	fastcgi_temp_path $d;
	server {
		listen 127.0.0.1:$port backlog=4096;
		$location {
			include /etc/nginx/fastcgi_params;
			fastcgi_pass unix:$d/fcgi.sock;
		}
	}"
}

# stop_fcgi_site NAME: ends what start_fcgi_site NAME started.
stop_fcgi_site() {
	d=$bench_dir/$1
	while read -r p || [ -n "$p" ]; do kill "$p" 2>/dev/null || true; done < "$d/fcgi.pid"
	kill "$(cat "$d/nginx.pid")" 2>/dev/null || true
	sleep 0.3
}

# cpu_ms NAME: CPU time (user + system, ms) used so far by the processes
# start_fcgi_site NAME started, threads included.
cpu_ms() {
	ticks=$(getconf CLK_TCK)
	total=0
	while read -r p || [ -n "$p" ]; do
		t=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)
		total=$((total + t))
	done < "$bench_dir/$1/fcgi.pid"
	echo $((total * 1000 / ticks))
}

# peak_rss_kb PIDFILE: the largest peak RSS (VmHWM) among the pids listed.
peak_rss_kb() {
	max=0
	while read -r p || [ -n "$p" ]; do
		kb=$(awk '/VmHWM/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
		[ "${kb:-0}" -gt "$max" ] && max=$kb
	done < "$1"
	echo "$max"
}

# wrk_rate PORT: schedules/s of bench/post.lua's POSTs to /api/schedule on
# PORT over $connections connections for $seconds; fails when any answer
# was not a 201 (a run full of errors must not pass for a fast one).
wrk_rate() {
	wrk -t 2 -c "$connections" -d "${seconds}s" -s "$top/bench/post.lua" \
		"http://127.0.0.1:$1/api/schedule" > "$bench_dir/wrk.out" 2> "$bench_dir/wrk.err"
	grep -E 'Requests/sec|Latency' "$bench_dir/wrk.out" >&2
	if grep -q 'Non-2xx' "$bench_dir/wrk.out"; then
		echo "bench: answers other than 201:" >&2
		cat "$bench_dir/wrk.out" "$bench_dir/wrk.err" >&2
		curl -s -d url=http://127.0.0.1:9009/hook -d delay=1h \
			"http://127.0.0.1:$1/api/schedule" >&2
		exit 1
	fi
	awk '/Requests\/sec/ { printf "%d", $2 }' "$bench_dir/wrk.out"
}
