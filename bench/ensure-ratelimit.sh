#!/usr/bin/env bash
# ensure-ratelimit.sh prints the path of an envoyproxy/ratelimit service
# binary (the reference rate-limit service, the benchmark's peer) on
# stdout: $RATELIMIT_BIN when set, else a binary of the pinned version in
# the tools directory, else it installs one there with `go install` (the
# Go module proxy is all it needs; the reference has no tagged release
# that builds with current Go, so the version is a pinned pseudo-version
# of its main branch). Neither its code nor its binary is committed.
# Progress goes to stderr; a failed install exits non-zero.
set -euo pipefail

RATELIMIT_VERSION="${RATELIMIT_VERSION:-v1.4.1-0.20260122083618-3fb702589d36}"

if [ -n "${RATELIMIT_BIN:-}" ]; then
	echo "$RATELIMIT_BIN"
	exit 0
fi
tools="${RLS_BENCH_TOOLS:-$(go env GOPATH)/envoy-rls-tools}"
dir="$tools/ratelimit-$RATELIMIT_VERSION"
if [ -x "$dir/service_cmd" ]; then
	echo "$dir/service_cmd"
	exit 0
fi
mkdir -p "$dir"
echo "ensure-ratelimit: installing github.com/envoyproxy/ratelimit/src/service_cmd@$RATELIMIT_VERSION into $dir (a few minutes)" >&2
(cd / && GOBIN="$dir" GOFLAGS=-buildvcs=false CGO_ENABLED=0 go install "github.com/envoyproxy/ratelimit/src/service_cmd@$RATELIMIT_VERSION") >&2
echo "$dir/service_cmd"
