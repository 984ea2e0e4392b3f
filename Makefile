# envoy-rls — build, run and test.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/envoy-rls

.PHONY: all build run test test-deps vet fmt-check bench clean

all: build

## build: a static, trimmed binary (the same flags as the Dockerfile)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/envoy-rls

## run: serve the example rules on the in-memory store
run:
	$(GO) run ./cmd/envoy-rls serve --config examples/ratelimit.yaml --log-format console

## test: vet and the whole test suite with the race detector
test: fmt-check vet test-deps
	$(GO) test -race -count=1 ./...

## test-deps: install redis-server, redis-cli and memcached when missing (Debian)
test-deps:
	@scripts/test-deps.sh

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## bench: Go micro-benchmarks of the hot paths
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...

clean:
	rm -rf bin
