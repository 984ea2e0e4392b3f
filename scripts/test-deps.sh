#!/usr/bin/env bash
# Installs the servers the tests start (redis-server, redis-cli, memcached)
# from Debian's packages when they are missing. Run by `make test`.
# Without root or apt-get it names the packages to install and fails.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v memcached >/dev/null 2>&1 || need+=(memcached)
[ ${#need[@]} -eq 0 ] && exit 0

echo "test-deps: installing ${need[*]}" >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: no apt-get here; install these packages yourself: ${need[*]}" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
    echo "test-deps: not root and no sudo; install these packages: ${need[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
# The packages' own services are not wanted: tests start their servers on
# free ports. policy-rc.d stops the maintainer scripts from starting them.
restore=""
if [ ! -e /usr/sbin/policy-rc.d ] && [ -z "$sudo" ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  restore=1
fi
trap '[ -n "$restore" ] && rm -f /usr/sbin/policy-rc.d' EXIT
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
for b in redis-server redis-cli memcached; do
  command -v "$b" >/dev/null 2>&1 || { echo "test-deps: $b still missing after installing ${need[*]}" >&2; exit 1; }
done
