#!/usr/bin/env bash
# dockerfile-lint.sh lints Dockerfiles (default: the repository's) with the
# npm package dockerfile-utils, which parses them offline. It installs the
# package under ${XDG_CACHE_HOME:-~/.cache}/envoy-rls-tools when missing
# (the npm registry is all it needs) and exits non-zero on any problem.
set -euo pipefail

DFU_VERSION="${DOCKERFILE_UTILS_VERSION:-0.16.3}"
root="$(cd "$(dirname "$0")/../../.." && pwd)"
prefix="${XDG_CACHE_HOME:-$HOME/.cache}/envoy-rls-tools"
bin="$prefix/node_modules/.bin/dockerfile-utils"

if [ ! -x "$bin" ]; then
	command -v npm >/dev/null 2>&1 || { echo "dockerfile-lint: npm is needed (apt-get install npm)" >&2; exit 1; }
	echo "dockerfile-lint: installing dockerfile-utils@$DFU_VERSION into $prefix" >&2
	mkdir -p "$prefix"
	npm install --silent --no-audit --no-fund --prefix "$prefix" "dockerfile-utils@$DFU_VERSION" >&2
fi

if [ "$#" -eq 0 ]; then
	set -- "$root/Dockerfile"
fi
status=0
for f in "$@"; do
	# dockerfile-utils prints problems and exits 1 on errors; warnings are
	# printed too and fail the lint as well.
	out="$("$bin" lint "$f" 2>&1)" || status=1
	if [ -n "$out" ]; then
		echo "$f:" >&2
		echo "$out" >&2
		status=1
	fi
done
[ "$status" -eq 0 ] && echo "dockerfile-lint: $* ok"
exit "$status"
