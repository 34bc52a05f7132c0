#!/bin/sh
# Installs the Debian packages postdate needs to build, run and test, but
# only those that are missing, then the browser tests' node modules when
# they are missing or older than their lock file: on a ready machine it
# does nothing.
set -eu
cd "$(dirname "$0")/.."

# chromium, nodejs and npm are for the browser tests (tests/browser).
packages="gcc make pkg-config libfcgi-dev spawn-fcgi libcurl4-openssl-dev
libsqlite3-dev sqlite3 libjson-c-dev libssl-dev nginx tzdata python3 curl
systemd chromium nodejs"
# python3-prometheus-client's parser reads /api/metrics in the integration tests.
packages="$packages python3-prometheus-client"
# apache2 and logrotate are for the tests of etc/apache.conf and of the
# installed deployment (tests/integration/test_apache.py, test_install.py).
packages="$packages apache2 logrotate"
# A nodejs from elsewhere (NodeSource) brings its own npm and conflicts
# with Debian's, so Debian's npm only when there is no npm at all.
command -v npm >/dev/null 2>&1 || packages="$packages npm"
# man-db and groff-base render the manual pages in man/, which the tests
# check with `man --warnings -l`.
packages="$packages man-db groff-base"
# PostgreSQL 15 (initdb, pg_ctl, psql; pgbench in postgresql-contrib) and
# libpq for the PostgreSQL store and its tests (tests/integration/pg.py);
# nftables (partitions) and faketime (skewed clocks) for the simulated
# hosts of tests/integration/hosts.py.
packages="$packages postgresql postgresql-contrib libpq-dev nftables faketime"
# clang and libFuzzer (in clang's runtime package) are for `make fuzz`.
packages="$packages clang libclang-rt-14-dev"

missing=
for p in $packages; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	echo "deps: installing$missing"
	sudo=
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null || { echo "deps: run as root or install:$missing" >&2; exit 1; }
		sudo=sudo
	fi
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	# shellcheck disable=SC2086
	$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# npm writes node_modules/.package-lock.json last, so its absence means an
# install that never finished.
browser=tests/browser
if [ ! -f "$browser/node_modules/.package-lock.json" ] ||
   [ "$browser/package-lock.json" -nt "$browser/node_modules/.package-lock.json" ]; then
	echo "deps: npm ci in $browser"
	(cd "$browser" && npm ci --no-audit --no-fund --loglevel=error)
fi
