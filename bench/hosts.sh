#!/bin/sh
# The many-hosts figure: 1 against 3 dispatchers, each on a simulated host
# (a network namespace under a CPU quota), targets answering after 40 ms,
# 32 in flight per dispatcher. Prints a markdown row. Needs root; see
# bench/hosts.py --help.
#
# usage: bench/hosts.sh [COUNT_PER_DISPATCHER] [CPU_PERCENT]   (defaults 3000, 25)
set -eu
exec python3 "$(dirname "$0")/hosts.py" "$@"
