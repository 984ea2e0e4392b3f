# envoy-rls — build, run and test.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/envoy-rls

.PHONY: all build run test test-deps vet fmt-check lint bench bench-check bench-micro clean

all: build

## build: a static, trimmed binary (the same flags as the Dockerfile)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags=vtprotobuf -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/envoy-rls

## run: serve the example rules on the in-memory store
run:
	$(GO) run ./cmd/envoy-rls serve --config examples/ratelimit.yaml --log-format console

## test: lint and the whole test suite with the race detector
test: lint test-deps
	$(GO) test -race -count=1 -timeout 30m ./...

## test-deps: install redis-server, redis-cli and memcached when missing (Debian)
test-deps:
	@scripts/test-deps.sh

vet:
	$(GO) vet ./...

## lint: gofmt, go vet, staticcheck and deadcode (scripts/lint.sh installs the last two, pinned, when missing)
lint:
	@scripts/lint.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## bench: the reproducible benchmark matrix; rewrites docs/benchmarks.md and docs/img/benchmarks.svg
## (also runs envoyproxy/ratelimit on the same stores: bench/ensure-ratelimit.sh installs its pinned version)
bench:
	$(GO) run ./cmd/rls-bench matrix

## bench-check: the quick matrix against bench/baseline.json (not run in CI: shared machines are noisy)
bench-check:
	$(GO) run ./cmd/rls-bench check

## bench-micro: Go micro-benchmarks of the hot paths, allocations reported
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/... ./internal/server/

clean:
	rm -rf bin

# --- fuzzing (input helper's block) ---
FUZZTIME ?= 1m
# package:target pairs; plain `go test` runs their seed corpora (testdata/fuzz).
FUZZ_TARGETS := ./pkg/descriptors:FuzzParse ./internal/server:FuzzRequest

.PHONY: fuzz
## fuzz: run each fuzz target for FUZZTIME (default 1m), one after the other; a finding is written to the package's testdata/fuzz
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -timeout 0 $$pkg || exit 1; \
	done

# --- resilience (issue 10) ---
.PHONY: chaos

## chaos: the chaos and noisy-neighbour tests on the built binary and a real Redis, each phase ten times longer than in make test
chaos:
	CHAOS_LONG=1 $(GO) test -count=1 -v -timeout 30m -run 'Chaos|NoisyNeighbour|OutageLogVolume' ./cmd/envoy-rls/

# --- deployment checks (also part of `go test ./...`, hence of make test) ---
HELM_KUBE_VERSION ?= 1.31.0

.PHONY: helm-lint helm-test docker-lint image-build-check deploy-test

## helm-lint: helm lint --strict and helm template of the chart with each ci/ values file (installs helm when missing)
helm-lint:
	@helm=$$(test/deploy/scripts/ensure-helm.sh) && \
	for f in helm/envoy-rls/ci/*-values.yaml; do \
		echo "helm lint/template -f $$f"; \
		$$helm lint --strict --quiet helm/envoy-rls -f $$f && \
		$$helm template rls helm/envoy-rls --kube-version $(HELM_KUBE_VERSION) -f $$f > /dev/null || exit 1; \
	done

## helm-test: strict decoding of every rendered manifest into Kubernetes API types, the schema's negative cases
helm-test: helm-lint
	$(GO) test -count=1 ./test/deploy/helmtest/

## docker-lint: lint the Dockerfile offline with dockerfile-utils (installed from npm when missing)
docker-lint:
	test/deploy/scripts/dockerfile-lint.sh

## image-build-check: build with the Dockerfile's exact go build line; check static, stripped, version, healthcheck, .dockerignore
image-build-check:
	$(GO) test -count=1 -run 'Dockerfile|Dockerignore' ./test/deploy/

## deploy-test: every deployment test (Dockerfile, chart, Envoy, Istio, Compose)
deploy-test: docker-lint helm-lint
	$(GO) test -count=1 ./test/deploy/...
