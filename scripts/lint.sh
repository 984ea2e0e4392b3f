#!/usr/bin/env bash
# lint.sh runs the project's static checks: gofmt, go vet, staticcheck and
# deadcode (golang.org/x/tools/cmd/deadcode). The two tools are installed
# with `go install` at pinned versions into $LINT_TOOLS (default
# $(go env GOPATH)/bin/envoy-rls-lint), once, when missing or at another
# version; the Go module proxy is all that needs. Exit status non-zero on
# any finding.
#
# deadcode reports functions unreachable from the binaries (cmd/...). Test
# support packages (internal/testservers, internal/xdstest,
# internal/tracing/otlptest, */storetest, */strategytest) are
# reachable from tests only; they are checked with tests as roots instead.
# A line of scripts/deadcode-allow.txt keeps one finding on purpose, with
# its reason; an entry that no longer matches a finding is an error too.
set -euo pipefail

STATICCHECK_VERSION="${STATICCHECK_VERSION:-v0.8.2}"
DEADCODE_VERSION="${DEADCODE_VERSION:-v0.52.0}"

cd "$(dirname "$0")/.."
tools="${LINT_TOOLS:-$(go env GOPATH)/bin/envoy-rls-lint}"
mkdir -p "$tools"

# ensure NAME PACKAGE MODULE VERSION installs PACKAGE@VERSION as $tools/NAME
# unless the binary there was built from MODULE at VERSION.
ensure() {
	local name=$1 pkg=$2 mod=$3 version=$4
	if [ -x "$tools/$name" ] && go version -m "$tools/$name" 2>/dev/null | grep -qE "^[[:space:]]+mod[[:space:]]+$mod[[:space:]]+$version([[:space:]]|$)"; then
		return
	fi
	echo "lint: installing $pkg@$version into $tools" >&2
	(cd / && GOBIN="$tools" GOFLAGS=-buildvcs=false go install "$pkg@$version") >&2
}
ensure staticcheck honnef.co/go/tools/cmd/staticcheck honnef.co/go/tools "$STATICCHECK_VERSION"
ensure deadcode golang.org/x/tools/cmd/deadcode golang.org/x/tools "$DEADCODE_VERSION"

status=0

echo "lint: gofmt" >&2
out=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [ -n "$out" ]; then
	echo "gofmt would change:"
	echo "$out"
	status=1
fi

echo "lint: go vet" >&2
go vet ./... || status=1

echo "lint: staticcheck" >&2
"$tools/staticcheck" ./... || status=1

echo "lint: deadcode" >&2
testsupport='internal/testservers/|internal/xdstest/|internal/tracing/otlptest/|/storetest/|/strategytest/'
allow=scripts/deadcode-allow.txt
found=$(
	{
		"$tools/deadcode" ./... | grep -Ev "^($testsupport)|^[^ ]*($testsupport)" || true
		"$tools/deadcode" -test -filter 'internal/testservers|internal/xdstest|internal/tracing/otlptest|storetest|strategytest' ./... || true
	} | sort -u
)
# Entries are "path: function" (no line numbers, so edits elsewhere in
# the file do not invalidate them), then " # reason".
entries=$(grep -Ev '^[[:space:]]*(#|$)' "$allow" | sed -E 's/[[:space:]]+#.*$//' || true)
while IFS= read -r line; do
	[ -z "$line" ] && continue
	key=$(printf '%s\n' "$line" | sed -E 's/^([^:]+):[0-9]+:[0-9]+: unreachable func: (.*)$/\1: \2/')
	if ! printf '%s\n' "$entries" | grep -qxF "$key"; then
		echo "$line"
		status=1
	fi
done <<<"$found"
while IFS= read -r e; do
	[ -z "$e" ] && continue
	path=${e%%: *}
	fn=${e#*: }
	if ! printf '%s\n' "$found" | grep -qF "$path:" || ! printf '%s\n' "$found" | grep -q "^$path:.*unreachable func: $fn\$"; then
		echo "$allow: '$e' is no longer dead code: remove the entry"
		status=1
	fi
done <<<"$entries"

exit $status
