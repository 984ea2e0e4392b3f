package redisstore

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
	"github.com/envoy-rls/envoy-rls/pkg/strategies/strategytest"
)

const now0 = strategytest.T0

// mkOp returns an op of the named strategy on key with the prepared lim.
func mkOp(t testing.TB, key, name string, lim strategies.Limit, hits int64) limiter.Op {
	t.Helper()
	s, ok := strategies.Lookup(name)
	if !ok {
		t.Fatalf("strategy %q not registered", name)
	}
	p, err := s.Prepare(lim)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return limiter.Op{Key: key, Strategy: s, Limit: p, Hits: hits}
}

// allStrategyOps returns one op per registered strategy on keys under
// prefix.
func allStrategyOps(t testing.TB, prefix string) []limiter.Op {
	var ops []limiter.Op
	for _, name := range strategies.Names() {
		ops = append(ops, mkOp(t, prefix+name, name, strategies.Limit{Requests: 100, Period: strategies.Minute}, 1))
	}
	return ops
}

func mustApply(t testing.TB, s *Store, now int64, ops ...limiter.Op) []strategies.Decision {
	t.Helper()
	out := make([]strategies.Decision, len(ops))
	if err := s.Apply(context.Background(), now, ops, out); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return out
}

// commandCalls returns the calls= count of cmd in INFO commandstats.
func commandCalls(t testing.TB, srv *testservers.Server, cmd string) int64 {
	t.Helper()
	v, ok, err := srv.Info("commandstats", "cmdstat_"+cmd)
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	if !ok {
		return 0
	}
	for _, f := range strings.Split(v, ",") {
		if c, ok := strings.CutPrefix(f, "calls="); ok {
			n, err := strconv.ParseInt(c, 10, 64)
			if err != nil {
				t.Fatalf("cmdstat_%s %q: %v", cmd, v, err)
			}
			return n
		}
	}
	t.Fatalf("cmdstat_%s %q has no calls=", cmd, v)
	return 0
}

// countHook counts the commands and pipelines a client sends, leaving
// out those that set up a new connection (a loaded machine may make the
// pool dial one at any time).
type countHook struct {
	calls atomic.Int64
	mu    sync.Mutex
	names []string // of what was counted, for failure messages
}

func (h *countHook) count(cmds ...redis.Cmder) {
	h.calls.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	var n []string
	for _, c := range cmds {
		n = append(n, c.Name())
	}
	h.names = append(h.names, strings.Join(n, "+"))
}

// sent returns the names of what was counted, from the i-th on.
func (h *countHook) sent(i int64) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.names[min(int(i), len(h.names)):])
}

// connSetup reports whether every command of cmds sets up a connection.
func connSetup(cmds ...redis.Cmder) bool {
	for _, c := range cmds {
		switch c.Name() {
		case "hello", "client", "auth", "select", "readonly", "ping":
		default:
			return false
		}
	}
	return true
}

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !connSetup(cmd) {
			h.count(cmd)
		}
		return next(ctx, cmd)
	}
}
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !connSetup(cmds...) {
			h.count(cmds...)
		}
		return next(ctx, cmds)
	}
}

func TestOneRoundTripPerApply(t *testing.T) {
	for _, tc := range []struct {
		name, cmd string
		opts      Options
	}{
		{"fcall", "fcall", Options{}},
		{"evalsha", "evalsha", Options{EvalScripts: true}},
		{"unbatched", "fcall", Options{MaxBatch: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testservers.Redis(t)
			opts := tc.opts
			opts.URL, opts.ClientTime, opts.Timeout = srv.URL(), true, testTimeout
			s := open(t, opts)
			defer s.Close()
			hook := &countHook{}
			s.client.(*redis.Client).AddHook(hook)

			ops := allStrategyOps(t, "rt:")
			mustApply(t, s, now0, ops...) // loads the script or function
			calls0, eval, hooked := commandCalls(t, srv, tc.cmd), commandCalls(t, srv, "eval"), hook.calls.Load()
			const applies = 5
			for i := range applies {
				mustApply(t, s, now0+int64(i), ops...)
			}
			if got := commandCalls(t, srv, tc.cmd) - calls0; got != applies {
				t.Errorf("%d Apply calls of %d ops each ran %s %d times, want %d", applies, len(ops), tc.cmd, got, applies)
			}
			if got := commandCalls(t, srv, "eval") - eval; got != 0 {
				t.Errorf("EVAL ran %d times after the script was loaded", got)
			}
			if got := hook.calls.Load() - hooked; got != applies {
				t.Errorf("%d Apply calls sent %d commands, want one each: %v", applies, got, hook.sent(hooked))
			}
		})
	}
}

func TestNoScriptReload(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  Options
		flush []string
	}{
		{"script", Options{EvalScripts: true}, []string{"SCRIPT", "FLUSH"}},
		{"script/unbatched", Options{EvalScripts: true, MaxBatch: 1}, []string{"SCRIPT", "FLUSH"}},
		{"function", Options{}, []string{"FUNCTION", "FLUSH"}},
		{"function/unbatched", Options{MaxBatch: 1}, []string{"FUNCTION", "FLUSH"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testservers.Redis(t)
			opts := tc.opts
			opts.URL, opts.ClientTime, opts.Timeout = srv.URL(), true, testTimeout
			s := open(t, opts)
			defer s.Close()
			// gcra runs the script (fixed_window would not: see counter.go).
			o := mkOp(t, "noscript", "gcra", strategies.Limit{Requests: 5, Period: strategies.Hour, Burst: 5}, 1)
			mustApply(t, s, now0, o)
			if _, err := srv.Do(tc.flush...); err != nil {
				t.Fatalf("%v: %v", tc.flush, err)
			}
			if d := mustApply(t, s, now0, o)[0]; !d.Allowed || d.Remaining != 3 {
				t.Fatalf("after %v: %+v, want allowed with Remaining 3", tc.flush, d)
			}
		})
	}
}

// failLoads is a go-redis hook under which loading a script or a
// function fails as on a lost connection.
type failLoads struct{}

func (failLoads) DialHook(next redis.DialHook) redis.DialHook { return next }

func (failLoads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name == "script" || name == "function" {
			cmd.SetErr(io.ErrUnexpectedEOF)
			return cmd.Err()
		}
		return next(ctx, cmd)
	}
}

func (failLoads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestReloadFailureIsUnavailable checks that a call whose script or
// function is missing, and could not be loaded again, fails as Redis
// being unavailable (what kept the load from working), not with the
// server's "no such script" as an internal error.
func TestReloadFailureIsUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  Options
		flush []string
	}{
		{"script", Options{EvalScripts: true}, []string{"SCRIPT", "FLUSH"}},
		{"script/unbatched", Options{EvalScripts: true, MaxBatch: 1}, []string{"SCRIPT", "FLUSH"}},
		{"function", Options{}, []string{"FUNCTION", "FLUSH"}},
		{"function/unbatched", Options{MaxBatch: 1}, []string{"FUNCTION", "FLUSH"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testservers.Redis(t)
			opts := tc.opts
			opts.URL, opts.ClientTime, opts.Timeout = srv.URL(), true, testTimeout
			s := open(t, opts)
			defer s.Close()
			o := mkOp(t, "reloadfail", "gcra", strategies.Limit{Requests: 5, Period: strategies.Hour, Burst: 5}, 1)
			mustApply(t, s, now0, o)
			if _, err := srv.Do(tc.flush...); err != nil {
				t.Fatalf("%v: %v", tc.flush, err)
			}
			s.single.AddHook(failLoads{})
			err := s.Apply(context.Background(), now0, []limiter.Op{o}, make([]strategies.Decision, 1))
			if !errors.Is(err, limiter.ErrUnavailable) {
				t.Fatalf("Apply with the script gone and its load failing = %v, want ErrUnavailable", err)
			}
		})
	}
}

func TestServerTime(t *testing.T) {
	srv := testservers.Redis(t)
	a := open(t, Options{URL: srv.URL(), Timeout: testTimeout})
	defer a.Close()
	b := open(t, Options{URL: srv.URL(), Timeout: testTimeout})
	defer b.Close()
	lim := strategies.Limit{Requests: 10, Period: strategies.Week}
	o := mkOp(t, "servertime", "fixed_window", lim, 3)
	// The two callers' clocks are minutes apart; the server's clock
	// decides, so they count in one window.
	mustApply(t, a, now0, o)
	o.Hits = 1
	d := mustApply(t, b, now0+7*strategies.Minute, o)[0]
	if !d.Allowed || d.Remaining != 6 {
		t.Fatalf("second store: %+v, want allowed with Remaining 6 (both stores in one window)", d)
	}
	o.Hits = 0
	da := mustApply(t, a, now0-strategies.Hour, o)[0]
	if da.Remaining != 6 || da.Reset <= 0 || da.Reset > strategies.Week {
		t.Fatalf("check on the first store: %+v, want Remaining 6 and a Reset within the week", da)
	}
}

func TestNewWhileDownAndPing(t *testing.T) {
	port := deadPort(t)
	s, err := New(context.Background(), Options{Addrs: []string{port}, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("New with the server down: %v", err)
	}
	defer s.Close()
	if err := s.Ping(context.Background()); !errors.Is(err, limiter.ErrUnavailable) {
		t.Fatalf("Ping with the server down = %v, want ErrUnavailable", err)
	}
	srv := testservers.Redis(t)
	up := open(t, Options{URL: srv.URL()})
	defer up.Close()
	if err := up.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// deadPort returns the address of a loopback port nothing listens on.
func deadPort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestFaultStopAndRestart(t *testing.T) {
	srv := testservers.Redis(t)
	const timeout = time.Second // the first call loads the script: sized for a loaded machine
	s := open(t, Options{URL: srv.URL(), ClientTime: true, Timeout: timeout})
	defer s.Close()
	ops := allStrategyOps(t, "fault:")
	mustApply(t, s, now0, ops...)

	srv.Stop()
	out := make([]strategies.Decision, len(ops))
	for range 3 {
		start := time.Now()
		err := s.Apply(context.Background(), now0, ops, out)
		elapsed := time.Since(start)
		if !errors.Is(err, limiter.ErrUnavailable) {
			t.Fatalf("Apply with the server stopped = %v, want an error wrapping ErrUnavailable", err)
		}
		if elapsed > 5*timeout {
			t.Fatalf("Apply with the server stopped took %v, want about the %v timeout at most", elapsed, timeout)
		}
	}

	srv.Start()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.Apply(context.Background(), now0, ops, out)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Apply 5s after the server came back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, d := range out {
		if !d.Allowed {
			t.Errorf("%s after restart: %+v, want allowed", ops[i].Key, d)
		}
	}
}

func TestHungServerTimesOut(t *testing.T) {
	// A listener that accepts and never answers: a server that hangs.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				<-done
				c.Close()
			}()
		}
	}()
	const timeout = 200 * time.Millisecond
	s := open(t, Options{Addrs: []string{l.Addr().String()}, Timeout: timeout})
	defer s.Close()
	o := mkOp(t, "hung", "gcra", strategies.Limit{Requests: 5, Period: strategies.Second}, 1)
	start := time.Now()
	err = s.Apply(context.Background(), now0, []limiter.Op{o}, make([]strategies.Decision, 1))
	elapsed := time.Since(start)
	if !errors.Is(err, limiter.ErrUnavailable) || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("Apply on a hung server = %v, want a timeout wrapping ErrUnavailable", err)
	}
	if elapsed > 10*timeout {
		t.Fatalf("Apply on a hung server took %v with a %v timeout", elapsed, timeout)
	}
}

func TestCloseReleasesGoroutines(t *testing.T) {
	srv := testservers.Redis(t)
	sn := testservers.RedisSentinel(t)
	c := testservers.RedisCluster(t)
	settle := func(limit int) int {
		n := runtime.NumGoroutine()
		for deadline := time.Now().Add(5 * time.Second); n > limit && time.Now().Before(deadline); n = runtime.NumGoroutine() {
			time.Sleep(20 * time.Millisecond)
		}
		return n
	}
	before := settle(0)
	for _, opts := range []Options{
		{URL: srv.URL(), Timeout: testTimeout},
		{Mode: ModeSentinel, Addrs: sn.Addrs(), MasterName: sn.MasterName, Timeout: testTimeout},
		{Mode: ModeCluster, Addrs: c.Addrs(), Timeout: testTimeout},
	} {
		s := open(t, opts)
		ops := allStrategyOps(t, "leak:")
		for i := range 20 {
			mustApply(t, s, now0+int64(i), ops...)
		}
		if err := s.Ping(context.Background()); err != nil {
			t.Fatalf("%s: Ping: %v", opts.mode(), err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("%s: Close: %v", opts.mode(), err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("%s: second Close: %v", opts.mode(), err)
		}
		if err := s.Ping(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("%s: Ping after Close = %v, want ErrClosed", opts.mode(), err)
		}
	}
	if after := settle(before); after > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before, %d after Close:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

func TestClusterRefundAcrossSlots(t *testing.T) {
	c := testservers.RedisCluster(t)
	s := open(t, Options{Mode: ModeCluster, Addrs: c.Addrs(), ClientTime: true, Timeout: testTimeout})
	defer s.Close()
	lim := strategies.Limit{Requests: 3, Period: strategies.Hour}
	// Hash tags put the keys in distinct slots (and here distinct nodes).
	keys := []string{"{a}refund", "{b}refund", "{c}refund"}
	if hashSlot(keys[0]) == hashSlot(keys[1]) || hashSlot(keys[1]) == hashSlot(keys[2]) {
		t.Fatal("test keys share a slot")
	}
	blocked := mkOp(t, keys[1], "fixed_window", lim, 3)
	mustApply(t, s, now0, blocked)
	blocked.Hits = 1
	a := mkOp(t, keys[0], "token_bucket", lim, 2)
	b := mkOp(t, keys[2], "sliding_window_log", lim, 1)
	out := mustApply(t, s, now0+1, a, blocked, b)
	if out[1].Allowed {
		t.Fatalf("full key admitted: %+v", out[1])
	}
	checkVetoed(t, s, now0+1, 3, out, a, b)
}

// checkVetoed checks that ops, the first and last of a call of three ops
// whose middle op vetoed it (decisions out), consumed nothing: a check
// of each at now finds remaining left, and each reported that check.
func checkVetoed(t *testing.T, s *Store, now, remaining int64, out []strategies.Decision, first, last limiter.Op) {
	t.Helper()
	for i, o := range []limiter.Op{first, last} {
		o.Hits = 0
		want := mustApply(t, s, now, o)[0]
		if want.Remaining != remaining {
			t.Errorf("%s consumed though the call was vetoed: check %+v", o.Key, want)
		}
		if got := out[2*i]; got != want {
			t.Errorf("%s reported %+v, want the check %+v", o.Key, got, want)
		}
	}
}

func TestClusterNodeDown(t *testing.T) {
	c := testservers.RedisCluster(t)
	// The first call loads the script on every master: the timeout is sized
	// for a loaded machine, not for a quiet one.
	const timeout = testTimeout
	s := open(t, Options{Mode: ModeCluster, Addrs: c.Addrs(), ClientTime: true, Timeout: timeout})
	defer s.Close()
	var ops []limiter.Op
	for i := range 16 { // spread over the three masters
		ops = append(ops, mkOp(t, "down:"+strconv.Itoa(i), "gcra", strategies.Limit{Requests: 100, Period: strategies.Second, Burst: 100}, 1))
	}
	mustApply(t, s, now0, ops...)
	c.Nodes[0].Stop()
	start := time.Now()
	err := s.Apply(context.Background(), now0, ops, make([]strategies.Decision, len(ops)))
	if !errors.Is(err, limiter.ErrUnavailable) {
		t.Fatalf("Apply with a master down = %v, want ErrUnavailable", err)
	}
	if elapsed := time.Since(start); elapsed > 5*timeout {
		t.Fatalf("Apply with a master down took %v", elapsed)
	}
	t.Logf("error with a master down: %v", err)
}

func TestOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want []string
	}{
		{"nothing", Options{}, []string{"needs a url or an address"}},
		{"mode", Options{Mode: "ring", Addrs: []string{"x:1"}}, []string{`unknown mode "ring"`}},
		{"several", Options{Addrs: []string{"a:1", "b:1"}, Timeout: -1, PoolSize: -2}, []string{"one address", "timeout must not be negative", "pool_size"}},
		{"batching", Options{Addrs: []string{"a:1"}, Pipelines: -1, MaxBatch: -1, BatchWindow: -1}, []string{"pipelines", "max_batch", "batch_window"}},
		{"sentinel", Options{Mode: ModeSentinel, Addrs: []string{"a:1"}}, []string{"master_name"}},
		{"cluster", Options{Mode: ModeCluster}, []string{"nodes' addresses"}},
		{"url", Options{URL: "http://x"}, []string{"url"}},
		{"tls", Options{Addrs: []string{"a:1"}, CAFile: "/nonexistent/ca.pem", CertFile: "c.pem"}, []string{"ca_file", "together"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(context.Background(), tc.opts)
			if err == nil {
				s.Close()
				t.Fatalf("New(%+v) succeeded", tc.opts)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestApplyBadInput(t *testing.T) {
	s := open(t, Options{Addrs: []string{deadPort(t)}})
	defer s.Close()
	o := mkOp(t, "k", "fixed_window", strategies.Limit{Requests: 1, Period: strategies.Second}, 1)
	if err := s.Apply(context.Background(), now0, []limiter.Op{o}, nil); err == nil {
		t.Error("Apply with no room for decisions succeeded")
	}
	o.Strategy = nil
	if err := s.Apply(context.Background(), now0, []limiter.Op{o}, make([]strategies.Decision, 1)); err == nil || errors.Is(err, limiter.ErrUnavailable) {
		t.Errorf("Apply of an op without strategy = %v, want a plain error", err)
	}
}

func TestHashSlot(t *testing.T) {
	for key, want := range map[string]uint16{
		"123456789":            0x31C3 % 16384, // the CRC-16/XMODEM check value
		"foo":                  12182,
		"{user1000}.following": hashSlot("user1000"),
		"{user1000}.followers": hashSlot("user1000"),
		"foo{}{bar}":           hashSlot("foo{}{bar}"),
		"foo{{bar}}zap":        hashSlot("{bar"),
	} {
		if got := hashSlot(key); got != want {
			t.Errorf("hashSlot(%q) = %d, want %d", key, got, want)
		}
	}
}
