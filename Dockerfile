# syntax=docker/dockerfile:1
#
# envoy-rls: a static binary on a distroless base, run as a non-root user.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t envoy-rls .
#   docker run -p 8080:8080 -p 8081:8081 -v $PWD/examples:/etc/envoy-rls:ro envoy-rls
#
# The build stage's `go build` flags are kept identical to the Makefile's
# `build` target; test/deploy checks it and compiles with the same flags.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -tags=vtprotobuf -ldflags "-s -w -X main.version=${VERSION}" -o /out/envoy-rls ./cmd/envoy-rls

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="envoy-rls" \
      org.opencontainers.image.description="External rate-limit service for Envoy and Istio (RateLimitService v3)" \
      org.opencontainers.image.source="https://github.com/envoy-rls/envoy-rls"
COPY --from=build /out/envoy-rls /envoy-rls
# Envoy Gateway runs its rate-limit service as /bin/ratelimit with no
# arguments: under that name envoy-rls reads envoyproxy/ratelimit's
# environment variables (docs/gateway.md). The image has no shell for a
# link, so it is a second copy.
COPY --from=build /out/envoy-rls /bin/ratelimit
# 65532 is distroless's "nonroot"; the numeric id lets Kubernetes check runAsNonRoot.
USER 65532:65532
# 8080 HTTP (/healthcheck, /livez, /json, /rlconfig, /metrics), 8081 gRPC, 6070 debug (pprof).
EXPOSE 8080 8081 6070
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/envoy-rls", "healthcheck", "--addr", "127.0.0.1:8081", "--timeout", "1s"]
ENTRYPOINT ["/envoy-rls"]
CMD ["serve", "--config", "/etc/envoy-rls"]
