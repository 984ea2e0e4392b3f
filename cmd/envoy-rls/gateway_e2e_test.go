package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	rlconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
	"github.com/envoy-rls/envoy-rls/internal/tracing"
	"github.com/envoy-rls/envoy-rls/internal/tracing/otlptest"
	"github.com/envoy-rls/envoy-rls/internal/xdstest"
)

// asRatelimit returns a copy of the built binary named "ratelimit", as
// the image holds it at /bin/ratelimit.
func asRatelimit(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ratelimit")
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// startRef runs path with no arguments and exactly the environment env
// returns for the given free loopback addresses (plus PATH and HOME),
// waits until GET /healthcheck on the address env names "PORT" answers
// 200, as Envoy Gateway's startup probe asks (1 s timeout), and stops it
// when the test ends. It returns the process and the addresses.
func startRef(t *testing.T, path string, ports int, env func(addrs []string) map[string]string) (*testservers.Process, []string) {
	t.Helper()
	return testservers.RunOnFreePorts(t, ports, func(addrs []string) testservers.ProcessOptions {
		vars := env(addrs)
		o := testservers.ProcessOptions{
			Name:    "ratelimit",
			Binary:  path,
			Env:     []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")},
			OnlyEnv: true,
			Ready:   testservers.HTTPOK("http://" + net.JoinHostPort(vars["HOST"], vars["PORT"]) + "/healthcheck"),
			// Kubernetes waits terminationGracePeriodSeconds (30 s by
			// default) after SIGTERM; a busy test machine gets twice that.
			StopGrace: 60 * time.Second,
		}
		for k, v := range vars {
			o.Env = append(o.Env, k+"="+v)
		}
		return o
	})
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// TestEnvoyGatewayEndToEnd starts the binary exactly as Envoy Gateway
// starts its rate-limit Deployment: the command /bin/ratelimit with no
// arguments and Envoy Gateway's environment (internal/infrastructure/
// kubernetes/ratelimit): rules over State-of-the-World xDS with mutual
// TLS, TLS with client certificates on gRPC, Redis as host:port,
// Prometheus on PROMETHEUS_ADDR, tracing to an OTLP collector. It checks
// the startup probe, that rules arrive and updates apply, that a bad
// update is NACKed while the old rules serve, that the control plane may
// restart, the metrics listener and the traces.
//
// Differences from a cluster, all forced by the test machine: the ports
// are free loopback ports (HOST, GRPC_HOST, DEBUG_HOST 127.0.0.1 and PORT,
// GRPC_PORT, DEBUG_PORT set), and the certificates are the control
// plane's test CA's (one CA as in Envoy Gateway, but its server and client
// certificates are separate files, each with one key usage).
// OTEL_BSP_SCHEDULE_DELAY makes spans leave within 100 ms, and
// ENVOY_RLS_STORE_TIMEOUT gives the store round trip room on a busy test
// machine.
func TestEnvoyGatewayEndToEnd(t *testing.T) {
	cp := xdstest.Start(t, xdstest.Options{})
	redis := testservers.Redis(t)
	rcv := otlptest.Start(t)
	data := t.TempDir()
	env := func(a []string) map[string]string {
		httpAddr, grpcAddr, debugAddr, promAddr := a[0], a[1], a[2], a[3]
		return xdstest.GatewayEnv(map[string]string{
			"RUNTIME_ROOT":                      data,
			"CONFIG_GRPC_XDS_SERVER_URL":        cp.Addr(),
			"GRPC_SERVER_TLS_CERT":              cp.TLS.ServerCertFile,
			"GRPC_SERVER_TLS_KEY":               cp.TLS.ServerKeyFile,
			"GRPC_SERVER_TLS_CA_CERT":           cp.TLS.CAFile,
			"CONFIG_GRPC_XDS_CLIENT_TLS_CERT":   cp.TLS.ClientCertFile,
			"CONFIG_GRPC_XDS_CLIENT_TLS_KEY":    cp.TLS.ClientKeyFile,
			"CONFIG_GRPC_XDS_SERVER_TLS_CACERT": cp.TLS.CAFile,
			"REDIS_URL":                         redis.Addr,
			"PROMETHEUS_ADDR":                   promAddr,
			"TRACING_SERVICE_INSTANCE_ID":       "envoy-ratelimit-0",
			"TRACING_SAMPLING_RATE":             "1.0",
			"OTEL_EXPORTER_OTLP_ENDPOINT":       rcv.HTTPEndpoint,
			"OTEL_BSP_SCHEDULE_DELAY":           "100",
			"HOST":                              "127.0.0.1",
			"PORT":                              port(httpAddr),
			"GRPC_HOST":                         "127.0.0.1",
			"GRPC_PORT":                         port(grpcAddr),
			"DEBUG_HOST":                        "127.0.0.1",
			"DEBUG_PORT":                        port(debugAddr),
			// envoy-rls's own variable: a store budget for a busy test
			// machine (-race, shared cores) instead of the 15 ms default.
			"ENVOY_RLS_STORE_TIMEOUT": "2s",
		})
	}
	// Startup probe: 200 before any rules (FORCE_START_WITHOUT_INITIAL_CONFIG).
	p, addrs := startRef(t, asRatelimit(t), 4, env)
	grpcAddr, promAddr := addrs[1], addrs[3]

	// Envoy's side: TLS with its client certificate, signed by the CA
	// GRPC_SERVER_TLS_CA_CERT names.
	conn := dialCreds(t, grpcAddr, credentials.NewTLS(clientTLS(t, cp.TLS)))
	client := rlsv3.NewRateLimitServiceClient(conn)
	const traceID, parentSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+traceID+"-"+parentSpan+"-01")
	check := func(what string, want rlsv3.RateLimitResponse_Code, limit uint32) {
		t.Helper()
		resp, err := client.ShouldRateLimit(ctx, request("edge", []string{"user", "alice"}))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		st := resp.GetStatuses()[0]
		if resp.GetOverallCode() != want || st.GetCurrentLimit().GetRequestsPerUnit() != limit {
			t.Fatalf("%s: %v with limit %d, want %v with limit %d", what, resp.GetOverallCode(), st.GetCurrentLimit().GetRequestsPerUnit(), want, limit)
		}
	}
	check("before any rules", rlsv3.RateLimitResponse_OK, 0)

	// A client without a certificate is refused: GRPC_SERVER_TLS_CA_CERT
	// requires one.
	noCert := clientTLS(t, cp.TLS)
	noCert.Certificates = nil
	bare := rlsv3.NewRateLimitServiceClient(dialCreds(t, grpcAddr, credentials.NewTLS(noCert)))
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if _, err := bare.ShouldRateLimit(cctx, request("edge", []string{"user", "alice"})); err == nil {
		t.Error("a client without a certificate was served")
	}
	cancel()

	awayFromBoundary(time.Hour)
	rule := func(rpu uint32) *rlconfv3.RateLimitConfig {
		return &rlconfv3.RateLimitConfig{Name: "edge", Domain: "edge", Descriptors: []*rlconfv3.RateLimitDescriptor{
			{Key: "user", RateLimit: &rlconfv3.RateLimitPolicy{Unit: rlconfv3.RateLimitUnit_HOUR, RequestsPerUnit: rpu}}}}
	}
	cp.SetDomains("1", rule(2))
	cp.WaitACK(t, "1")
	check("rules arrived, 1st", rlsv3.RateLimitResponse_OK, 2)
	check("rules arrived, 2nd", rlsv3.RateLimitResponse_OK, 2)
	check("rules arrived, 3rd", rlsv3.RateLimitResponse_OVER_LIMIT, 2)

	// An update applies, and the counter in Redis is kept.
	cp.SetDomains("2", rule(3))
	cp.WaitACK(t, "2")
	check("after the update, 3rd of 3", rlsv3.RateLimitResponse_OK, 3)
	check("after the update, 4th", rlsv3.RateLimitResponse_OVER_LIMIT, 3)

	// A bad update is NACKed and the old rules serve.
	cp.SetDomains("3", &rlconfv3.RateLimitConfig{Domain: "edge", Descriptors: []*rlconfv3.RateLimitDescriptor{{Key: ""}}})
	if n := cp.WaitNACK(t, "3"); n.Message == "" {
		t.Error("NACK without error_detail")
	}
	check("after the NACK", rlsv3.RateLimitResponse_OVER_LIMIT, 3)

	// The control plane restarts, with its versions back at "1".
	cp.Stop()
	check("control plane down", rlsv3.RateLimitResponse_OVER_LIMIT, 3)
	cp.Restart()
	cp.SetDomains("1", rule(5))
	deadline := time.Now().Add(120 * time.Second) // XDS_CLIENT_BACKOFF_INITIAL_INTERVAL is the reference's 10s
	for {
		resp, err := client.ShouldRateLimit(ctx, request("edge", []string{"user", "alice"}))
		if err != nil {
			t.Fatal(err)
		}
		if st := resp.GetStatuses()[0]; st.GetCurrentLimit().GetRequestsPerUnit() == 5 {
			if st.GetCode() != rlsv3.RateLimitResponse_OK || st.GetLimitRemaining() != 1 {
				t.Errorf("after the restart: %v remaining %d, want OK remaining 1 (counter kept)", st.GetCode(), st.GetLimitRemaining())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the restarted control plane's rules never arrived")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The counters are in the Redis of REDIS_URL.
	if n, err := redis.Do("DBSIZE"); err != nil || n.(int64) == 0 {
		t.Errorf("redis DBSIZE %v (%v): the counters are not in REDIS_URL's Redis", n, err)
	}

	// Metrics on PROMETHEUS_ADDR, at /metrics.
	body := get(t, "http://"+promAddr+"/metrics")
	// USE_PROMETHEUS=true also exports the reference's names, which
	// Envoy Gateway's dashboards query.
	for _, want := range []string{"envoy_rls_request_duration_seconds", "envoy_rls_config_loads_total", "envoy_rls_rule_over_limit_total",
		`ratelimit_service_rate_limit_over_limit{domain="edge"`, `ratelimit_service_rate_limit_total_hits{domain="edge"`,
		"ratelimit_service_total_requests", "ratelimit_service_config_load_success"} {
		if !strings.Contains(body, want) {
			t.Errorf("PROMETHEUS_ADDR /metrics lacks %s", want)
		}
	}

	// Traces reach the collector, continuing Envoy's trace, with the
	// store round trip as a child span.
	spans, err := rcv.Wait(60*time.Second, func(s []otlptest.Span) bool {
		return slices.ContainsFunc(s, func(x otlptest.Span) bool { return x.Name == tracing.StoreSpanName && x.TraceID == traceID })
	})
	if err != nil {
		t.Fatalf("%v (%d spans)", err, len(spans))
	}
	var server, store int
	for _, s := range spans {
		if s.TraceID != traceID {
			continue
		}
		switch s.Name {
		case "envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit":
			server++
			if s.ParentSpanID != parentSpan || s.Resource["service.name"] != "envoy-ratelimit" ||
				s.Resource["service.namespace"] != "envoy-gateway-system" || s.Resource["service.instance.id"] != "envoy-ratelimit-0" {
				t.Errorf("server span %+v", s)
			}
		case tracing.StoreSpanName:
			store++
		}
	}
	if server == 0 || store == 0 {
		t.Errorf("%d server and %d store spans of Envoy's trace", server, store)
	}

	// Kubernetes sends SIGTERM; the exit is clean.
	if err := p.Stop(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	out := p.Output()
	if strings.Count(out, "does not honour") != 1 || !strings.Contains(out, "PROMETHEUS_MAPPER_YAML") {
		t.Errorf("want one warning naming PROMETHEUS_MAPPER_YAML:\n%s", out)
	}
}

// TestReferenceFileSourceEndToEnd starts the binary with no arguments
// under its own name, configured by the reference's variables for rules
// in files (RUNTIME_*) and Redis as host:port, and checks that the rules
// are read from RUNTIME_ROOT/RUNTIME_SUBDIRECTORY/config, that the
// ENVOY_RLS_* variables win, that /healthcheck does not follow Redis
// (REDIS_HEALTH_CHECK_ACTIVE_CONNECTION unset) and that
// `ratelimit version` still answers.
func TestReferenceFileSourceEndToEnd(t *testing.T) {
	redis := testservers.Redis(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "ratelimit", "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "ratelimit", "config", "edge.yaml"), `
domain: edge
descriptors:
  - key: user
    rate_limit: {unit: hour, requests_per_unit: 1}
`)
	p, addrs := startRef(t, binary, 3, func(a []string) map[string]string {
		return map[string]string{
			"RUNTIME_ROOT":         root,
			"RUNTIME_SUBDIRECTORY": "ratelimit",
			"REDIS_SOCKET_TYPE":    "tcp",
			"REDIS_URL":            redis.Addr,
			"HOST":                 "127.0.0.1",
			"PORT":                 port(a[0]),
			"GRPC_PORT":            "1", // ENVOY_RLS_GRPC_ADDR wins
			"ENVOY_RLS_GRPC_ADDR":  a[1],
			"DEBUG_PORT":           port(a[2]),
			"LOG_LEVEL":            "info",
			// A store budget for a busy test machine.
			"ENVOY_RLS_STORE_TIMEOUT": "2s",
		}
	})
	httpAddr, grpcAddr := addrs[0], addrs[1]
	client := rlsv3.NewRateLimitServiceClient(dial(t, grpcAddr))
	awayFromBoundary(time.Hour)
	for i, want := range []rlsv3.RateLimitResponse_Code{rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OVER_LIMIT} {
		resp, err := client.ShouldRateLimit(context.Background(), request("edge", []string{"user", "bob"}))
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetOverallCode() != want {
			t.Fatalf("request %d: %v, want %v", i+1, resp.GetOverallCode(), want)
		}
	}
	// Redis goes down: requests fail (the failure mode answers), while
	// /healthcheck stays 200, as the reference's does without
	// REDIS_HEALTH_CHECK_ACTIVE_CONNECTION.
	redis.Stop()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := client.ShouldRateLimit(context.Background(), request("edge", []string{"user", "carol"}))
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("requests still succeed 60s after Redis stopped")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A health watcher that followed Redis would turn it 503 within its
	// 1 s period; watch three periods. (This can only pass wrongly on a
	// stalled machine, never fail rightly.)
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + httpAddr + "/healthcheck")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthcheck with Redis down: %d, want 200", resp.StatusCode)
		}
	}
	if err := p.Stop(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	if out := p.Output(); strings.Contains(out, "does not honour") {
		t.Errorf("warnings for an environment envoy-rls honours:\n%s", out)
	}

	out, err := exec.Command(asRatelimit(t), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "envoy-rls ") {
		t.Errorf("ratelimit version: %q (%v)", out, err)
	}
}

// clientTLS is Envoy's TLS to the rate-limit service: the CA, and its
// client certificate.
func clientTLS(t *testing.T, f testservers.TLSFiles) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(f.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(f.ClientCertFile, f.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}
