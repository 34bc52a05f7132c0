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

# A free TCP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

now_ms() {
	date +%s%3N
}

# start_sink PORT: nginx with one worker answering every request 204, the
# cheapest real HTTP target there is, with connections kept alive.
start_sink() {
	d=$bench_dir/sink
	mkdir -p "$d"
	cat > "$d/nginx.conf" <<CONF
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $d;
	keepalive_requests 10000000;
	server {
		listen 127.0.0.1:$1 backlog=4096;
		location / { return 204; }
	}
}
CONF
	nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" -g 'daemon off;' &
	bench_pids="$bench_pids $!"
	for _ in $(seq 50); do
		curl -s -o /dev/null -X POST "http://127.0.0.1:$1/" && return 0
		sleep 0.1
	done
	echo "bench: the nginx sink did not start" >&2
	cat "$d/error.log" >&2
	exit 1
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

# fill_due DATABASE COUNT URL DUE_MS: COUNT pending messages to URL due at
# DUE_MS, written with SQL as the schedule program would leave them (not
# yet promoted into the buffer: dispatch does that, as it would in use).
fill_due() {
	sqlite3 "$1" <<SQL
PRAGMA synchronous = OFF;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2)
INSERT INTO messages (id, state, due, created, next_attempt, urls, payload,
                      content_type, max_attempts, timeout)
SELECT printf('bench%021d', i), 'pending', $4, $4, $4, '$3', '{"bench":true}',
       'application/json', 8, 10 FROM n;
COMMIT;
SQL
}
