#!/bin/sh
# Installs the Debian packages postdate needs to build, run and test, but
# only those that are missing: on a ready machine it does nothing.
set -eu

packages="gcc make pkg-config libfcgi-dev spawn-fcgi libcurl4-openssl-dev
libsqlite3-dev sqlite3 libjson-c-dev libssl-dev nginx tzdata python3 curl
systemd"

missing=
for p in $packages; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

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
