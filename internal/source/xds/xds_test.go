package xds_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	rlconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/envoy-rls/envoy-rls/internal/source/xds"
	"github.com/envoy-rls/envoy-rls/internal/xdstest"
	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memory"
)

// recorder is the Updates of a test: it serves applied configs on a
// real limiter and records refusals.
type recorder struct {
	lim *limiter.Limiter

	mu      sync.Mutex
	applied int
	refused []error
}

func newRecorder(t *testing.T, now func() time.Time) *recorder {
	t.Helper()
	st := memory.New(memory.Options{MaxKeys: 1000})
	t.Cleanup(func() { st.Close() })
	lim, err := limiter.New(nil, limiter.Options{Store: st, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return &recorder{lim: lim}
}

func (r *recorder) Apply(cfg *descriptors.Config) {
	r.lim.SetConfig(cfg)
	r.mu.Lock()
	r.applied++
	r.mu.Unlock()
}

func (r *recorder) Refuse(err error) {
	r.mu.Lock()
	r.refused = append(r.refused, err)
	r.mu.Unlock()
}

func (r *recorder) counts() (applied, refused int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied, len(r.refused)
}

// hit sends one request of one descriptor and returns its status.
func (r *recorder) hit(t *testing.T, domain string, kv ...string) limiter.Status {
	t.Helper()
	var e []descriptors.Entry
	for i := 0; i+1 < len(kv); i += 2 {
		e = append(e, descriptors.Entry{Key: kv[i], Value: kv[i+1]})
	}
	out := make([]limiter.Status, 1)
	if _, err := r.lim.ShouldRateLimit(context.Background(), &limiter.Request{Domain: domain,
		Descriptors: []limiter.Descriptor{{Entries: e}}}, out); err != nil {
		t.Fatal(err)
	}
	return out[0]
}

// waitFor polls cond with a deadline sized for a busy machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// run starts a source against cp and stops it when the test ends.
func run(t *testing.T, cp *xdstest.Server, u *recorder, log *zap.Logger, mutate func(*xds.Options)) {
	t.Helper()
	opts := xds.Options{Server: cp.Addr(), BackoffInitial: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Logger: log}
	if cp.TLS.CAFile != "" {
		opts.TLS = &xds.TLSFiles{CAFile: cp.TLS.CAFile, CertFile: cp.TLS.ClientCertFile, KeyFile: cp.TLS.ClientKeyFile}
	}
	if mutate != nil {
		mutate(&opts)
	}
	src, err := xds.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, u) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// fixedClock is a clock in the middle of a minute, so that fixed windows
// do not roll over during a test.
func fixedClock() time.Time { return time.Unix(1_800_000_030, 0) }

func policy(unit rlconfv3.RateLimitUnit, rpu uint32) *rlconfv3.RateLimitPolicy {
	return &rlconfv3.RateLimitPolicy{Unit: unit, RequestsPerUnit: rpu}
}

func edge(descs ...*rlconfv3.RateLimitDescriptor) *rlconfv3.RateLimitConfig {
	return &rlconfv3.RateLimitConfig{Domain: "edge", Descriptors: descs}
}

// TestRulesArriveAndUpdatesKeepCounters: rules arrive over mutual TLS
// with the node id, node metadata and headers set; an update applies,
// the counter of an unchanged rule survives it, and a changed rule
// takes its new limit.
func TestRulesArriveAndUpdatesKeepCounters(t *testing.T) {
	cp := xdstest.Start(t, xdstest.Options{})
	u := newRecorder(t, fixedClock)
	md, _ := structpb.NewStruct(map[string]any{"zone": "a"})
	run(t, cp, u, zap.NewNop(), func(o *xds.Options) {
		o.NodeMetadata = md
		o.Headers = map[string]string{"x-tenant": "blue"}
	})

	if st := u.hit(t, "edge", "user", "alice"); st.Code != limiter.OK || st.Limit != nil {
		t.Fatalf("before any rules: %+v, want OK without a limit", st)
	}
	cp.SetDomains("1", edge(
		&rlconfv3.RateLimitDescriptor{Key: "user", RateLimit: policy(rlconfv3.RateLimitUnit_MINUTE, 5)},
		&rlconfv3.RateLimitDescriptor{Key: "path", RateLimit: policy(rlconfv3.RateLimitUnit_MINUTE, 100)},
	))
	cp.WaitACK(t, "1")
	if n := cp.Node(); n.GetId() != "envoy-ratelimit" || n.GetMetadata().GetFields()["zone"].GetStringValue() != "a" {
		t.Errorf("node %v", n)
	}
	if h := cp.Headers().Get("x-tenant"); len(h) != 1 || h[0] != "blue" {
		t.Errorf("x-tenant header %q", h)
	}
	for i := 0; i < 3; i++ {
		if st := u.hit(t, "edge", "user", "alice"); st.Code != limiter.OK || st.Remaining != uint32(4-i) {
			t.Fatalf("hit %d: %+v", i, st)
		}
	}
	cp.SetDomains("2", edge(
		&rlconfv3.RateLimitDescriptor{Key: "user", RateLimit: policy(rlconfv3.RateLimitUnit_MINUTE, 5)},
		&rlconfv3.RateLimitDescriptor{Key: "path", RateLimit: policy(rlconfv3.RateLimitUnit_MINUTE, 1)},
	))
	cp.WaitACK(t, "2")
	if st := u.hit(t, "edge", "user", "alice"); st.Remaining != 1 {
		t.Errorf("unchanged rule after the update: remaining %d, want 1 (counter kept)", st.Remaining)
	}
	if st := u.hit(t, "edge", "path", "/x"); st.Limit == nil || st.Limit.RequestsPerUnit != 1 {
		t.Errorf("changed rule: %+v, want the new limit 1", st.Limit)
	}
	if applied, refused := u.counts(); applied != 2 || refused != 0 {
		t.Errorf("applied %d, refused %d; want 2, 0", applied, refused)
	}
}

// TestBadUpdateIsNACKedAndStormIsBounded: a bad update is NACKed whole
// with every problem in error_detail, the last good rules keep serving,
// the cache's re-sends are refused without being reported again and at
// a bounded rate, and the next good update applies.
func TestBadUpdateIsNACKedAndStormIsBounded(t *testing.T) {
	cp := xdstest.Start(t, xdstest.Options{})
	u := newRecorder(t, fixedClock)
	core, logs := observer.New(zapcore.DebugLevel)
	run(t, cp, u, zap.New(core), nil)
	cp.SetDomains("1", edge(&rlconfv3.RateLimitDescriptor{Key: "user", RateLimit: policy(rlconfv3.RateLimitUnit_SECOND, 0)}))
	cp.WaitACK(t, "1")

	cp.SetDomains("2",
		edge(&rlconfv3.RateLimitDescriptor{Key: "user", RateLimit: policy(rlconfv3.RateLimitUnit_UNKNOWN, 3)}),
		&rlconfv3.RateLimitConfig{Domain: "api", Descriptors: []*rlconfv3.RateLimitDescriptor{
			{Key: "k", Descriptors: []*rlconfv3.RateLimitDescriptor{{Key: ""}}},
		}},
	)
	n := cp.WaitNACK(t, "2")
	for _, want := range []string{
		`domain "edge", descriptors[0] (key "user"): rate_limit: invalid rate limit unit "UNKNOWN"`,
		`domain "api", descriptors[0].descriptors[0] (key ""): descriptor key must not be empty`,
	} {
		if !strings.Contains(n.Message, want) {
			t.Errorf("error_detail %q lacks %q", n.Message, want)
		}
	}
	if st := u.hit(t, "edge", "user", "bob"); st.Code != limiter.OverLimit {
		t.Errorf("old rule (0/s) after the refused update: %+v, want OVER_LIMIT", st)
	}

	// The cache re-sends version 2 after each NACK. Let several re-sends
	// pass and measure their rate: a slower machine only lowers it.
	start, before := time.Now(), len(cp.NACKs())
	waitFor(t, "re-sent NACKs", func() bool { return len(cp.NACKs()) >= before+4 })
	rate := float64(len(cp.NACKs())-before) / time.Since(start).Seconds()
	if rate > 20 {
		t.Errorf("%.0f NACKs/s during the re-send loop, want at most 20 (one per RepeatDelay)", rate)
	}
	if _, refused := u.counts(); refused != 1 {
		t.Errorf("the refused update was reported %d times, want once", refused)
	}
	if logs.Len() > 2 {
		t.Errorf("%d log entries during the re-send loop: %v", logs.Len(), logs.All())
	}

	cp.SetDomains("3", edge(&rlconfv3.RateLimitDescriptor{Key: "user", RateLimit: policy(rlconfv3.RateLimitUnit_SECOND, 10)}))
	cp.WaitACK(t, "3")
	if st := u.hit(t, "edge", "user", "bob"); st.Code != limiter.OK || st.Limit.RequestsPerUnit != 10 {
		t.Errorf("after the good update: %+v", st)
	}
}

// TestControlPlaneRestart: while the control plane is down the last rules
// keep serving; when it comes back on the same address with a fresh
// cache whose versions restart at "1", the source redials and takes the
// new rules, even though their version equals one it ACKed before.
func TestControlPlaneRestart(t *testing.T) {
	cp := xdstest.Start(t, xdstest.Options{})
	u := newRecorder(t, fixedClock)
	run(t, cp, u, zap.NewNop(), nil)
	cp.SetDomains("1", edge(&rlconfv3.RateLimitDescriptor{Key: "user", RateLimit: policy(rlconfv3.RateLimitUnit_HOUR, 7)}))
	cp.WaitACK(t, "1")
	streams := cp.Streams()

	cp.Stop()
	if st := u.hit(t, "edge", "user", "carol"); st.Limit == nil || st.Limit.RequestsPerUnit != 7 {
		t.Fatalf("while the control plane is down: %+v, want the last rules", st)
	}
	cp.Restart()
	cp.SetDomains("1", edge(&rlconfv3.RateLimitDescriptor{Key: "user", RateLimit: policy(rlconfv3.RateLimitUnit_HOUR, 9)}))
	waitFor(t, "the new rules", func() bool {
		st := u.hit(t, "edge", "user", "carol")
		return st.Limit != nil && st.Limit.RequestsPerUnit == 9
	})
	if cp.Streams() <= streams {
		t.Errorf("no new stream after the restart")
	}
}

// TestPlaintextAndNewErrors: a plaintext control plane works, and New
// reports every bad option at once.
func TestPlaintextAndNewErrors(t *testing.T) {
	cp := xdstest.Start(t, xdstest.Options{Plaintext: true, NodeID: "custom"})
	u := newRecorder(t, fixedClock)
	run(t, cp, u, zap.NewNop(), func(o *xds.Options) { o.NodeID = "custom" })
	cp.SetDomains("a", edge(&rlconfv3.RateLimitDescriptor{Key: "k", RateLimit: &rlconfv3.RateLimitPolicy{Unlimited: true}}))
	cp.WaitACK(t, "a")
	if st := u.hit(t, "edge", "k", "v"); !st.Unlimited {
		t.Errorf("unlimited rule: %+v", st)
	}

	_, err := xds.New(xds.Options{TLS: &xds.TLSFiles{CertFile: "c"}, BackoffInitial: time.Second, BackoffMax: time.Millisecond})
	for _, want := range []string{"no server address", "both a cert file and a key file", "bad backoff"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New error %v lacks %q", err, want)
		}
	}
}
