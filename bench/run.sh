#!/bin/sh
# `make bench`: runs each figure against its baseline in the same run and
# prints a markdown table. Not part of `make test`: the figures want a
# quiet machine. Details of each run go to stderr.
set -eu
cd "$(dirname "$0")/.."

# What the benchmarks need beyond `make deps`: wrk, GNU time, and nginx's
# echo module (the many-hosts figure's sink answers after 40 ms with it).
if ! command -v wrk >/dev/null 2>&1 || [ ! -x /usr/bin/time ] ||
    [ ! -e /usr/lib/nginx/modules/ngx_http_echo_module.so ]; then
	sudo=
	[ "$(id -u)" = 0 ] || sudo=sudo
	echo "bench: installing wrk, time and libnginx-mod-http-echo" >&2
	$sudo apt-get update -qq &&
	    $sudo apt-get install -y -qq wrk time libnginx-mod-http-echo >/dev/null
fi

echo "| figure | postdate | baseline (same run) | ratio | target |"
echo "|---|---|---|---|---|"
sh bench/ingest.sh 10 32
sh bench/ingest_pg.sh 10 32
sh bench/dispatch.sh "${BENCH_DISPATCH_COUNT:-100000}" 64
sh bench/lateness.sh 2000 30
sh bench/asap.sh 200
sh bench/scale.sh "${BENCH_SCALE_COUNT:-1000000}" 1000
sh bench/queue.sh "${BENCH_QUEUE_COUNT:-20000}" 16 200
sh bench/retention.sh "${BENCH_RETENTION_COUNT:-1000000}" 10
# At 5% of a core one dispatcher is bound by its quota; at 25% by the
# targets' 40 ms (32 in flight: at most 800/s).
for engine in sqlite pg; do
	for quota in 5 25; do
		POSTDATE_TEST_DATABASE=$engine sh bench/hosts.sh "${BENCH_HOSTS_COUNT:-3000}" $quota
	done
done
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr), $(date -u +%Y-%m-%d)."
