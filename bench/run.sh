#!/bin/sh
# `make bench`: runs each figure against its baseline in the same run and
# prints a markdown table. Not part of `make test`: the figures want a
# quiet machine. Details of each run go to stderr.
set -eu
cd "$(dirname "$0")/.."

for tool in nginx sqlite3 curl python3 /usr/bin/time; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "bench: $tool is missing; run 'make deps' (and apt-get install time)" >&2
		exit 1
	}
done

echo "| figure | postdate | baseline (same run) | ratio | target |"
echo "|---|---|---|---|---|"
sh bench/dispatch.sh "${BENCH_DISPATCH_COUNT:-100000}" 64
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr), $(date -u +%Y-%m-%d)."
