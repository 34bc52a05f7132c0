#!/bin/sh
# The ingest figure on PostgreSQL: wrk form POSTs to /api/schedule through
# nginx and the schedule program on a PostgreSQL 15 cluster started here
# (tests/integration/pg.py, fsync and synchronous_commit on), and in the
# same run pgbench running the same INSERTs (bench/pg_insert.sql) into the
# same schema over as many connections as wrk holds, one message per
# transaction: what 32 producers writing straight into the database would
# make, the ceiling. Prints a markdown row; details on stderr.
#
# usage: bench/ingest_pg.sh [SECONDS] [CONNECTIONS]   (defaults 10, 32)
set -eu
. "$(dirname "$0")/lib.sh"

seconds=${1:-10}
connections=${2:-32}
workers=${SCHEDULE_WORKERS:-2}     # as bin/postdate-stack runs schedule
pgbin=/usr/lib/postgresql/15/bin

# The cluster runs as an unprivileged user when we are root: it needs to
# reach its folder, and is stopped before the scratch folder goes.
cluster=$bench_dir/pg
chmod 755 "$bench_dir"
trap 'python3 "$top/tests/integration/pg.py" stop "$cluster" >/dev/null 2>&1 || true; bench_cleanup' EXIT INT TERM
if ! url=$(python3 "$top/tests/integration/pg.py" start "$cluster"); then
	echo "bench: could not start a PostgreSQL cluster" >&2
	exit 1
fi
for db in ours pgbench; do
	psql -X -q -d "$url" -c "CREATE DATABASE $db"
done
ours_url=$(echo "$url" | sed 's|/postgres$|/ours|')
pgbench_url=$(echo "$url" | sed 's|/postgres$|/pgbench|')

# Both databases get postdate's schema from its own migrations.
for db in "$ours_url" "$pgbench_url"; do
	write_conf "$bench_dir/schema.conf" "$db"
	"$top/bin/dispatch" -c "$bench_dir/schema.conf" --once 2>/dev/null
done

port=$(free_port)
conf=$bench_dir/ingest-pg.conf
write_conf "$conf" "$ours_url"
start_fcgi_site "$port" schedule-pg /api/schedule "$workers" "$top/cgi-bin/schedule" -c "$conf"
echo "bench: schedule on PostgreSQL" >&2
ours=$(wrk_rate "$port")
# How many connections postdate held to the database while it ran.
held=$(psql -X -A -t -d "$url" -c "SELECT count(*) FROM pg_stat_activity WHERE datname = 'ours'")
stored=$(psql -X -A -t -d "$ours_url" -c "SELECT count(*) FROM messages")
echo "bench: postdate stored $stored messages over $held database connections" >&2
stop_fcgi_site schedule-pg

echo "bench: pgbench, the same INSERTs over $connections connections" >&2
"$pgbin/pgbench" -n -M prepared -c "$connections" -j 2 -T "$seconds" \
	-f "$top/bench/pg_insert.sql" "$pgbench_url" > "$bench_dir/pgbench.out" 2>&1 || {
	cat "$bench_dir/pgbench.out" >&2
	exit 1
}
grep -E '^(tps|latency average|number of failed)' "$bench_dir/pgbench.out" >&2
base=$(awk '/^tps/ { printf "%d", $3 }' "$bench_dir/pgbench.out")
rows=$(psql -X -A -t -d "$pgbench_url" -c "SELECT count(*) FROM live")
echo "bench: pgbench stored $rows messages" >&2

ratio=$(awk "BEGIN { printf \"%.2f\", $ours / $base }")
echo "| schedules/s on PostgreSQL through nginx (wrk, $connections connections, $workers workers holding $held database connections) | $ours | pgbench, the same INSERTs, $connections connections, one message per transaction: $base | $ratio | ≥ 0.7 |"
