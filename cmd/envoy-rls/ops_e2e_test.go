package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/credentials"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
)

func seriesOf(m map[string]float64, name string) int {
	n := 0
	for k := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			n++
		}
	}
	return n
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsEndToEnd(t *testing.T) {
	ctx := context.Background()
	// path /api/* is 50/s: 55 requests → 50 within (10 of them near), 5
	// over, when they fall in one second. On a loaded machine they may
	// not; then the sequence runs again on a fresh server.
	var p *testservers.Service
	var client rlsv3.RateLimitServiceClient
	for attempt := 1; ; attempt++ {
		p = startServe(t, nil, "--config", "../../examples/ratelimit.yaml", "--reference-metrics")
		client = rlsv3.NewRateLimitServiceClient(dial(t, p.GRPCAddr))
		awayFromBoundary(time.Second)
		second := time.Now().Unix()
		for i := 0; i < 55; i++ {
			if _, err := client.ShouldRateLimit(ctx, request("edge", []string{"path", "/api/m"})); err != nil {
				t.Fatal(err)
			}
		}
		if time.Now().Unix() == second || attempt == 10 {
			break
		}
		t.Logf("attempt %d: the 55 requests spanned two seconds; again on a fresh server", attempt)
	}
	// 100k distinct client addresses, 64 per request. Their rule is a
	// fixed window per minute: its keys expire at the end of the minute
	// they were written in, so all of them are held only when the sending
	// and the count fall in one minute.
	const distinct = 100_000
	began := time.Now()
	for i := 0; i < distinct; i += 64 {
		req := &rlsv3.RateLimitRequest{Domain: "edge"}
		for j := i; j < i+64 && j < distinct; j++ {
			req.Descriptors = append(req.Descriptors, &rlcommon.RateLimitDescriptor{Entries: entries("remote_address", fmt.Sprintf("198.%d.%d.%d", j>>16, (j>>8)&255, j&255))})
		}
		if _, err := client.ShouldRateLimit(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	// Exempt and invalid requests.
	client.ShouldRateLimit(ctx, request("edge", []string{"remote_address", "10.1.1.1"}))
	client.ShouldRateLimit(ctx, request("", []string{"a", "b"}))
	client.ShouldRateLimit(ctx, request("nowhere", []string{"a", "b"}))

	m := testservers.ScrapeMetrics(t, p.HTTPAddr)
	rule := `{domain="edge",rule="edge.path_/api/*",value=""}`
	for name, want := range map[string]float64{
		"envoy_rls_rule_hits_total" + rule:                                                  55,
		"envoy_rls_rule_within_limit_total" + rule:                                          50,
		"envoy_rls_rule_over_limit_total" + rule:                                            5,
		"envoy_rls_rule_near_limit_total" + rule:                                            10, // counts 41..50, above floor(50 × 0.8)
		`envoy_rls_rule_hits_total{domain="edge",rule="edge.remote_address",value=""}`:      distinct + 1,
		`envoy_rls_rule_exempted_total{domain="edge",rule="edge.remote_address",value=""}`:  1,
		`envoy_rls_config_loads_total{result="success"}`:                                    1,
		`envoy_rls_config_rules`:                                                            9,
		`envoy_rls_domain_not_found_total{domain="nowhere"}`:                                1,
		`ratelimit_service_rate_limit_total_hits{domain="edge",key1="path_/api/*",key2=""}`: 55,
		`ratelimit_service_rate_limit_near_limit{domain="edge",key1="path_/api/*",key2=""}`: 10,
		`ratelimit_service_rate_limit_over_limit{domain="edge",key1="path_/api/*",key2=""}`: 5,
		`ratelimit_service_should_rate_limit_error{err_type="service_error"}`:               1,
		`ratelimit_service_config_load_success`:                                             1,
	} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
	if m[`envoy_rls_request_duration_seconds_count{result="invalid"}`] != 1 || m[`envoy_rls_request_duration_seconds_count{result="over_limit"}`] != 5 {
		t.Errorf("request counts: %v / %v", m[`envoy_rls_request_duration_seconds_count{result="invalid"}`], m[`envoy_rls_request_duration_seconds_count{result="over_limit"}`])
	}
	oneMinute := began.Unix()/60 == time.Now().Unix()/60
	if keys := m["envoy_rls_memory_store_keys"]; keys < distinct && oneMinute || keys <= 0 {
		t.Errorf("memory keys %v after %d distinct addresses (sent in %v, in one minute: %v)", keys, distinct, time.Since(began).Round(time.Second), oneMinute)
	}
	// Cardinality: no more series per rule metric than rules, whatever the clients sent.
	for _, name := range []string{"envoy_rls_rule_hits_total", "envoy_rls_rule_within_limit_total", "envoy_rls_rule_near_limit_total"} {
		if n := seriesOf(m, name); n > 9 {
			t.Errorf("%s has %d series for 9 rules", name, n)
		}
	}
	if seriesOf(m, "go_goroutines") != 1 || seriesOf(m, "process_resident_memory_bytes") != 1 {
		t.Error("runtime and process metrics missing")
	}
}

const reloadRulesV1 = `domain: edge
descriptors:
  - key: k
    rate_limit: {unit: hour, requests_per_unit: 1000}
`
const reloadRulesV2 = `domain: edge
descriptors:
  - key: k
    rate_limit: {unit: hour, requests_per_unit: 7}
`

// underLoad runs requests on key k until stop is called, counting
// failures; stop waits for the requests in flight and returns the counts.
// The test's end stops the load too (before the server it runs against),
// so that no request outlives the test that reports it.
func underLoad(t *testing.T, client rlsv3.RateLimitServiceClient) (stopLoad func() (ok, failed int64)) {
	stop := make(chan struct{})
	var once sync.Once
	var okN, failN atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := client.ShouldRateLimit(ctx, request("edge", []string{"k", fmt.Sprintf("load-%d-%d", w, i)}))
				cancel()
				if err != nil {
					failN.Add(1)
					t.Errorf("request failed during reload: %v", err)
				} else {
					okN.Add(1)
				}
			}
		}(w)
	}
	stopLoad = func() (int64, int64) {
		once.Do(func() { close(stop) })
		wg.Wait()
		return okN.Load(), failN.Load()
	}
	t.Cleanup(func() { stopLoad() })
	return stopLoad
}

// limitOf asks for key k and returns the limit reported.
func limitOf(t *testing.T, client rlsv3.RateLimitServiceClient) uint32 {
	t.Helper()
	resp, err := client.ShouldRateLimit(context.Background(), request("edge", []string{"k", "probe"}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Statuses[0].CurrentLimit.GetRequestsPerUnit()
}

// waitLimit waits until the served limit is want and returns how long
// that took (logged, not checked: the machine may be busy).
func waitLimit(t *testing.T, client rlsv3.RateLimitServiceClient, want uint32, what string) time.Duration {
	t.Helper()
	start := time.Now()
	waitFor(t, fmt.Sprintf("%s: limit %d", what, want), func() bool { return limitOf(t, client) == want })
	return time.Since(start)
}

// waitFor polls cond every 20 ms until it holds, and fails the test
// when it still does not after a minute: a bound for a stuck condition,
// far above what a busy machine needs.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHotReloadUnderLoad(t *testing.T) {
	for _, layout := range []string{"file", "directory", "configmap"} {
		t.Run(layout, func(t *testing.T) {
			dir := t.TempDir()
			var configPath string
			var write func(content string)
			switch layout {
			case "file":
				configPath = filepath.Join(dir, "rules.yaml")
				write = func(c string) { writeFile(t, configPath, c) }
			case "directory":
				configPath = dir
				write = func(c string) {
					// An atomic save: write aside, rename over.
					writeFile(t, filepath.Join(dir, ".rules.tmp"), c)
					if err := os.Rename(filepath.Join(dir, ".rules.tmp"), filepath.Join(dir, "rules.yaml")); err != nil {
						t.Fatal(err)
					}
				}
			case "configmap":
				// The kubelet's layout: ..data → ..<stamp>/, rules.yaml → ..data/rules.yaml.
				configPath = dir
				n := 0
				write = func(c string) {
					n++
					stamp := fmt.Sprintf("..2026_11_22_%02d", n)
					if err := os.Mkdir(filepath.Join(dir, stamp), 0o755); err != nil {
						t.Fatal(err)
					}
					writeFile(t, filepath.Join(dir, stamp, "rules.yaml"), c)
					if err := os.Symlink(stamp, filepath.Join(dir, "..data_tmp")); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
						t.Fatal(err)
					}
					if n == 1 {
						if err := os.Symlink("..data/rules.yaml", filepath.Join(dir, "rules.yaml")); err != nil {
							t.Fatal(err)
						}
					} else {
						os.RemoveAll(filepath.Join(dir, fmt.Sprintf("..2026_11_22_%02d", n-1)))
					}
				}
			}
			write(reloadRulesV1)
			p := startServe(t, nil, "--config", configPath)
			client := rlsv3.NewRateLimitServiceClient(dial(t, p.GRPCAddr))
			if got := limitOf(t, client); got != 1000 {
				t.Fatalf("initial limit %d", got)
			}
			stopLoad := underLoad(t, client)

			write(reloadRulesV2)
			took := waitLimit(t, client, 7, "good config")
			// A broken config is refused; the last good one keeps answering.
			write("domain: edge\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n")
			waitFor(t, "the broken config refused", func() bool {
				return testservers.ScrapeMetrics(t, p.HTTPAddr)[`envoy_rls_config_loads_total{result="error"}`] >= 1
			})
			if got := limitOf(t, client); got != 7 {
				t.Fatalf("after a broken config the limit is %d, want 7", got)
			}
			write(reloadRulesV1)
			waitLimit(t, client, 1000, "fixed config")
			ok, failed := stopLoad()
			if failed != 0 || ok == 0 {
				t.Fatalf("requests during reloads: %d ok, %d failed", ok, failed)
			}
			m := testservers.ScrapeMetrics(t, p.HTTPAddr)
			if m[`envoy_rls_config_loads_total{result="error"}`] < 1 || m[`envoy_rls_config_loads_total{result="success"}`] < 3 {
				t.Errorf("config load metrics: %v", m)
			}
			t.Logf("%s: new limit served %v after the write; %d requests during reloads, none failed", layout, took, ok)
		})
	}
}

func TestSIGHUPReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, path, reloadRulesV1)
	p := startServe(t, nil, "--config", path)
	// No file changes: only the signal can cause this reload.
	if err := p.Signal(hupSignal); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a reload after SIGHUP", func() bool { return strings.Contains(p.Output(), "config reloaded") })
}

func TestResponseOptionsEndToEnd(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rules, `domain: edge
descriptors:
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 2}
  - key: bot
    shadow_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: model
    quota_mode: true
    metadata: {backend: primary}
    rate_limit: {unit: minute, requests_per_unit: 5}
`)
	p := startServe(t, nil, "--config", rules, "--response-headers", "--over-limit-body", `{"error":"rate limited"}`,
		"--local-cache-size", "1000", "--response-dynamic-metadata", "--response-quota-metadata")
	client := rlsv3.NewRateLimitServiceClient(dial(t, p.GRPCAddr))
	ctx := context.Background()
	awayFromBoundary(time.Minute)
	var resp *rlsv3.RateLimitResponse
	var err error
	for i := 0; i < 3; i++ {
		resp, err = client.ShouldRateLimit(ctx, request("edge", []string{"user", "u"}, []string{"bot", "b"}, []string{"model", "m"}))
		if err != nil {
			t.Fatal(err)
		}
	}
	if resp.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("third request: %v", resp)
	}
	h := map[string]string{}
	for _, x := range resp.ResponseHeadersToAdd {
		h[x.Key] = x.Value
	}
	if h["RateLimit-Limit"] != "2" || h["RateLimit-Remaining"] != "0" || h["Retry-After"] == "" || h["RateLimit-Reset"] != h["Retry-After"] {
		t.Errorf("headers %v", h)
	}
	if string(resp.RawBody) != `{"error":"rate limited"}` {
		t.Errorf("raw_body %q", resp.RawBody)
	}
	// The bot rule is shadowed: over its limit, answered OK.
	if st := resp.Statuses[1]; st.Code != rlsv3.RateLimitResponse_OK || st.CurrentLimit == nil {
		t.Errorf("shadow status %v", st)
	}
	md := resp.DynamicMetadata.AsMap()
	quota, _ := md["envoy_rls_quota"].(map[string]any)
	passed, _ := md["metadata"].(map[string]any)
	if md["domain"] != "edge" || quota["quotaModeEnabled"] != true || passed["backend"] != "primary" {
		t.Errorf("dynamic metadata %v", md)
	}
	// The user key is now in the local cache: more requests are answered
	// without the store, still over the limit.
	for i := 0; i < 3; i++ {
		resp, err = client.ShouldRateLimit(ctx, request("edge", []string{"user", "u"}))
		if err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT {
			t.Fatalf("cached: %v %v", resp, err)
		}
	}
	m := testservers.ScrapeMetrics(t, p.HTTPAddr)
	if m["envoy_rls_local_cache_hits_total"] < 3 {
		t.Errorf("local cache hits %v", m["envoy_rls_local_cache_hits_total"])
	}
	if m[`envoy_rls_rule_shadow_mode_total{domain="edge",rule="edge.bot",value=""}`] < 2 {
		t.Errorf("shadow metric %v", m[`envoy_rls_rule_shadow_mode_total{domain="edge",rule="edge.bot",value=""}`])
	}

	// Global shadow mode: overall OK, statuses still tell.
	g := startServe(t, nil, "--config", rules, "--shadow-mode")
	gc := rlsv3.NewRateLimitServiceClient(dial(t, g.GRPCAddr))
	for i := 0; i < 3; i++ {
		resp, err = gc.ShouldRateLimit(ctx, request("edge", []string{"user", "u"}))
	}
	if err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OK || resp.Statuses[0].Code != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Errorf("global shadow: %v %v", resp, err)
	}
}

func TestTLSAndMutualTLS(t *testing.T) {
	dir := t.TempDir()
	files, err := testservers.WriteTLSFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(files.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	clientCert, err := tls.LoadX509KeyPair(files.ClientCertFile, files.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	withCert := credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{clientCert}})
	noCert := credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"})
	ask := func(creds credentials.TransportCredentials, addr string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := rlsv3.NewRateLimitServiceClient(dialCreds(t, addr, creds)).ShouldRateLimit(ctx, request("edge", []string{"user_id", "tls"}))
		return err
	}

	t.Run("TLS", func(t *testing.T) {
		p := startServeCreds(t, noCert, nil, "--config", "../../examples/ratelimit.yaml", "--grpc-tls-cert", files.ServerCertFile, "--grpc-tls-key", files.ServerKeyFile)
		if err := ask(noCert, p.GRPCAddr); err != nil {
			t.Fatalf("TLS client: %v", err)
		}
		if err := ask(insecureCreds(), p.GRPCAddr); err == nil {
			t.Fatal("a plaintext client was served by a TLS server")
		}
	})
	t.Run("mTLS", func(t *testing.T) {
		p := startServeCreds(t, withCert, nil, "--config", "../../examples/ratelimit.yaml", "--grpc-tls-cert", files.ServerCertFile,
			"--grpc-tls-key", files.ServerKeyFile, "--grpc-tls-client-ca", files.CAFile)
		if err := ask(withCert, p.GRPCAddr); err != nil {
			t.Fatalf("client with a certificate: %v", err)
		}
		if err := ask(noCert, p.GRPCAddr); err == nil {
			t.Fatal("a client without a certificate was served")
		}
		// Rotate the server certificate: new connections get the new one.
		dir2 := t.TempDir()
		files2, err := testservers.WriteTLSFiles(dir2)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range [][2]string{{files2.ServerCertFile, files.ServerCertFile}, {files2.ServerKeyFile, files.ServerKeyFile}} {
			b, _ := os.ReadFile(f[0])
			writeFile(t, f[1], string(b))
		}
		if err := ask(withCert, p.GRPCAddr); err == nil {
			t.Fatal("the rotated certificate (another CA) was not picked up: the old CA still verifies")
		}
		ca2, _ := os.ReadFile(files2.CAFile)
		pool2 := x509.NewCertPool()
		pool2.AppendCertsFromPEM(ca2)
		newCA := credentials.NewTLS(&tls.Config{RootCAs: pool2, ServerName: "localhost", Certificates: []tls.Certificate{clientCert}})
		if err := ask(newCA, p.GRPCAddr); err != nil {
			t.Fatalf("client trusting the rotated certificate: %v", err)
		}
	})
}
