#!/usr/bin/env bash
# ensure-helm.sh prints the path of a helm v3 binary on stdout: helm from
# PATH, else $(go env GOPATH)/bin/helm, else it installs one there with
# `go install` (the Go module proxy is all it needs). Progress goes to
# stderr; a failed install exits non-zero.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"

if command -v helm >/dev/null 2>&1; then
	command -v helm
	exit 0
fi
gobin="$(go env GOBIN)"
if [ -z "$gobin" ]; then
	gobin="$(go env GOPATH)/bin"
fi
if [ -x "$gobin/helm" ]; then
	echo "$gobin/helm"
	exit 0
fi
echo "ensure-helm: installing helm.sh/helm/v3/cmd/helm@$HELM_VERSION into $gobin (a few minutes)" >&2
(cd / && GOBIN="$gobin" GOFLAGS=-buildvcs=false go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >&2
echo "$gobin/helm"
