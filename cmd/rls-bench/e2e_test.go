package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
)

// tightRules add to the bench rules a key limited to 5 an hour.
const tightRules = benchRules + `  - {key: tight, rate_limit: {rate: "5/hour"}}
`

// TestLoadAgainstNoopAndEnvoyRLS runs the load generator for about a
// second against the no-op server and against a real envoy-rls on the
// memory store, and checks that the counts add up.
func TestLoadAgainstNoopAndEnvoyRLS(t *testing.T) {
	// The bound covers building the binary: a first build on a busy
	// machine takes minutes, not seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := buildEnvoyRLS(ctx, dir, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte(tightRules), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(os.Stderr)
	t.Cleanup(h.Close)
	rls, err := startEnvoyRLS(ctx, h, bin, rules, nil, "--store", "memory")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	noopCtx, stopNoop := context.WithCancel(ctx)
	noopDone := make(chan error, 1)
	go func() { noopDone <- serveNoop(noopCtx, l) }()
	t.Cleanup(func() {
		stopNoop()
		if err := <-noopDone; err != nil {
			t.Error(err)
		}
	})
	if err := testservers.WaitFor(ctx, 30*time.Second, testservers.GRPCServing(l.Addr().String(), nil, rlsServiceName)); err != nil {
		t.Fatal(err)
	}

	for _, target := range []struct{ name, addr string }{{"noop", l.Addr().String()}, {"envoy-rls", rls.GRPCAddr}} {
		t.Run(target.name, func(t *testing.T) {
			c := DefaultLoadConfig()
			c.Target, c.Concurrency, c.Connections = target.addr, 8, 2
			c.Duration, c.Warmup = 800*time.Millisecond, 200*time.Millisecond
			c.Descriptors, c.Keys, c.Cardinality, c.Dist = 3, strategyKeys("gcra"), 1000, DistZipf
			r, err := RunLoad(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if r.Errors != 0 || r.Over != 0 || r.OK < 100 || r.Requests != r.OK {
				t.Fatalf("counts: %+v", r)
			}
			if r.RPS <= 0 || r.P50US <= 0 || r.P50US > r.P99US || r.P99US > r.P999US || r.P999US > r.MaxUS {
				t.Errorf("figures out of order: %+v", r)
			}
			if r.Seconds < 0.7 || r.Seconds > 2 {
				t.Errorf("measured %.2fs, want about 0.8", r.Seconds)
			}
			t.Logf("%s: %.0f req/s, p50 %.0fµs, p99 %.0fµs", target.name, r.RPS, r.P50US, r.P99US)
		})
	}

	t.Run("over limit and errors are counted", func(t *testing.T) {
		c := DefaultLoadConfig()
		c.Target, c.Concurrency, c.Connections = rls.GRPCAddr, 4, 1
		c.Duration, c.Warmup = 300*time.Millisecond, 0
		c.Keys, c.Cardinality = []string{"tight"}, 1
		// Values k0 per run; a per-test prefix keeps reruns apart.
		ks, err := newKeySpace(strings.ReplaceAll(t.Name(), "/", "-")+time.Now().Format("150405.000"), 1, DistUniform, 0)
		if err != nil {
			t.Fatal(err)
		}
		r, err := runLoad(ctx, c, ks)
		if err != nil {
			t.Fatal(err)
		}
		// 5 an hour: exactly 5 admitted (barring an hour boundary).
		if r.OK != 5 || r.Over < 10 || r.Errors != 0 {
			t.Errorf("tight limit: ok %d, over %d, errors %d; want 5 ok, the rest over", r.OK, r.Over, r.Errors)
		}
		c.Descriptors, c.Domain = 65, ""
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "-descriptors") || !strings.Contains(err.Error(), "-domain") {
			t.Errorf("65 descriptors and no domain: %v", err)
		}
	})

	t.Run("load command prints JSON", func(t *testing.T) {
		var out, errOut bytes.Buffer
		code := run(ctx, []string{"load", "-target", rls.GRPCAddr, "-duration", "200ms", "-warmup", "0s", "-concurrency", "2",
			"-connections", "1", "-key", "fixed_window_0,fixed_window_1", "-descriptors", "2", "-hits-addend", "2", "-json"}, &out, &errOut)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		var r Result
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("%v: %s", err, out.String())
		}
		if r.OK == 0 || r.Errors != 0 || r.Descriptors != 2 {
			t.Errorf("result %+v", r)
		}
		if code := run(ctx, []string{"load", "-hits-addend", "5000000000"}, &out, &errOut); code != 1 {
			t.Errorf("a 33-bit hits_addend: exit %d", code)
		}
		if code := run(ctx, []string{"load", "-nope"}, &out, &errOut); code != 2 {
			t.Errorf("an unknown flag: exit %d", code)
		}
	})

	t.Run("memory per key", func(t *testing.T) {
		m, err := MeasureMemoryPerKey(ctx, h, bin, rules, 20_000, 8, 2)
		if err != nil {
			t.Fatal(err)
		}
		if m.Keys < 19_000 || m.Keys > 20_100 || m.HeapBytesPerKey <= 0 {
			t.Errorf("memory result %+v", m)
		}
		t.Logf("%+v", *m)
	})
}
