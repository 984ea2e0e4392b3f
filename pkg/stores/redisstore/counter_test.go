package redisstore

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/internal/window"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// Calls made only of fixed_window ops run no script: an INCRBY (and a
// PEXPIRE) per op that consumes, a GET per check; other calls still run
// one script call each.
func TestNativePathRunsNoScript(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"batched", Options{}},
		{"unbatched", Options{MaxBatch: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testservers.Redis(t)
			opts := tc.opts
			opts.URL, opts.ClientTime, opts.Timeout = srv.URL(), true, testTimeout
			s := open(t, opts)
			defer s.Close()
			lim := strategies.Limit{Requests: 100, Period: strategies.Minute}
			ops := []limiter.Op{mkOp(t, "n:a", "fixed_window", lim, 1), mkOp(t, "n:b", "fixed_window", lim, 2), mkOp(t, "n:c", "fixed_window", lim, 0)}
			mustApply(t, s, now0, allStrategyOps(t, "n:all:")...) // loads the function
			fcall, incr, get := commandCalls(t, srv, "fcall"), commandCalls(t, srv, "incrby"), commandCalls(t, srv, "get")
			const applies = 4
			for i := range applies {
				out := mustApply(t, s, now0+int64(i), ops...)
				if !out[0].Allowed || out[0].Remaining != 99-int64(i) || out[1].Remaining != 98-2*int64(i) || out[2].Remaining != 100 {
					t.Fatalf("call %d: %+v", i, out)
				}
			}
			if got := commandCalls(t, srv, "fcall") - fcall; got != 0 {
				t.Errorf("fixed_window calls ran FCALL %d times, want 0", got)
			}
			if got := commandCalls(t, srv, "incrby") - incr; got != 2*applies {
				t.Errorf("INCRBY ran %d times, want %d", got, 2*applies)
			}
			if got := commandCalls(t, srv, "get") - get; got != applies {
				t.Errorf("GET ran %d times, want %d", got, applies)
			}
		})
	}
}

// The script and the native path count on the same counters.
func TestCounterSharedByBothPaths(t *testing.T) {
	srv := testservers.Redis(t)
	s := open(t, Options{URL: srv.URL(), ClientTime: true, Timeout: testTimeout})
	defer s.Close()
	lim := strategies.Limit{Requests: 5, Period: strategies.Hour}
	fw := mkOp(t, "both:fw", "fixed_window", lim, 2)
	mustApply(t, s, now0, fw) // native
	tb := mkOp(t, "both:tb", "token_bucket", lim, 1)
	fw.Hits = 1
	out := mustApply(t, s, now0+1, fw, tb) // script
	if !out[0].Allowed || out[0].Remaining != 2 {
		t.Fatalf("script after the native path: %+v, want allowed with Remaining 2", out[0])
	}
	fw.Hits = 2
	if d := mustApply(t, s, now0+2, fw)[0]; !d.Allowed || d.Remaining != 0 {
		t.Fatalf("native after the script: %+v, want allowed with Remaining 0", d)
	}
	fw.Hits = -1
	if d := mustApply(t, s, now0+3, fw, tb)[0]; !d.Allowed || d.Remaining != 1 {
		t.Fatalf("refund in the script: %+v, want Remaining 1", d)
	}
	fw.Hits = 0
	if d := mustApply(t, s, now0+4, fw)[0]; d.Remaining != 1 {
		t.Fatalf("native check: %+v, want Remaining 1", d)
	}
	key := counterKey("both:fw", window.Start(now0, strategies.Hour))
	v, err := srv.Do("GET", key)
	if err != nil || v != "4" {
		t.Fatalf("GET %q = %v, %v; want the counter 4", key, v, err)
	}
	ttl, err := srv.Do("PTTL", key)
	if err != nil {
		t.Fatalf("PTTL: %v", err)
	}
	// The virtual clock stands at the start of the hour: the counter
	// lives for the hour plus the slack.
	if ms, _ := ttl.(int64); ms <= 0 || ms > strategies.Hour/1000+max(int64(DefaultClientTimeSlack/time.Millisecond), counterSlackMs) {
		t.Fatalf("PTTL %q = %v, want within the hour and its slack", key, ttl)
	}
}

// When an op of a native call is refused, the others give their hits
// back and report a check; a refused op gives its own back.
func TestNativeAllOrNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode func(t *testing.T) Options
	}{
		{"single", func(t *testing.T) Options {
			return Options{URL: testservers.Redis(t).URL()}
		}},
		{"cluster", func(t *testing.T) Options {
			return Options{Mode: ModeCluster, Addrs: testservers.RedisCluster(t).Addrs()}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.mode(t)
			opts.ClientTime, opts.Timeout = true, testTimeout
			s := open(t, opts)
			defer s.Close()
			lim := strategies.Limit{Requests: 3, Period: strategies.Hour}
			// Hash tags put the keys in distinct slots.
			a, blocked, c := mkOp(t, "{a}veto", "fixed_window", lim, 1), mkOp(t, "{b}veto", "fixed_window", lim, 3), mkOp(t, "{c}veto", "fixed_window", lim, 2)
			mustApply(t, s, now0, blocked)
			blocked.Hits = 1
			out := mustApply(t, s, now0+1, a, blocked, c)
			if out[1].Allowed || out[1].Remaining != 0 || out[1].RetryAfter <= 0 {
				t.Fatalf("full key: %+v, want refused", out[1])
			}
			checkVetoed(t, s, now0+1, 3, out, a, c)
			blocked.Hits = 0
			if d := mustApply(t, s, now0+1, blocked)[0]; d.Remaining != 0 {
				t.Fatalf("full key after its refusal: %+v", d)
			}
			blocked.Hits = -1
			if d := mustApply(t, s, now0+2, blocked)[0]; !d.Allowed || d.Remaining != 1 {
				t.Fatalf("refund of the full key: %+v, want Remaining 1 (its refused hits were given back)", d)
			}
		})
	}
}

// A counter key holding something else than an integer is an error of
// that key, not an outage, on both paths.
func TestMalformedCounter(t *testing.T) {
	srv := testservers.Redis(t)
	s := open(t, Options{URL: srv.URL(), ClientTime: true, Timeout: testTimeout})
	defer s.Close()
	lim := strategies.Limit{Requests: 3, Period: strategies.Hour}
	key := counterKey("bad", window.Start(now0, strategies.Hour))
	if _, err := srv.Do("SET", key, "not a number"); err != nil {
		t.Fatalf("SET: %v", err)
	}
	for _, ops := range [][]limiter.Op{
		{mkOp(t, "bad", "fixed_window", lim, 1)},
		{mkOp(t, "bad", "fixed_window", lim, 0)},
		{mkOp(t, "bad", "fixed_window", lim, 1), mkOp(t, "bad:tb", "token_bucket", lim, 1)},
	} {
		out := make([]strategies.Decision, len(ops))
		err := s.Apply(context.Background(), now0, ops, out)
		if err == nil || errors.Is(err, limiter.ErrUnavailable) {
			t.Errorf("Apply of %d ops (hits %d) on a malformed counter = %v, want an error not wrapping ErrUnavailable", len(ops), ops[0].Hits, err)
		}
	}
}

// With the server's time, the store estimates the server's clock once
// and counts in the server's window whatever the caller's now.
func TestServerClockEstimate(t *testing.T) {
	srv := testservers.Redis(t)
	s := open(t, Options{URL: srv.URL(), Timeout: testTimeout})
	defer s.Close()
	before := time.Now().UnixMicro()
	a, err := s.serverNow(context.Background())
	if err != nil {
		t.Fatalf("serverNow: %v", err)
	}
	b, err := s.serverNow(context.Background())
	if err != nil {
		t.Fatalf("serverNow: %v", err)
	}
	if b < a {
		t.Fatalf("server clock went back: %d then %d", a, b)
	}
	// The test's server runs on this machine's clock.
	if d := a - before; d < -int64(time.Minute/time.Microsecond) || d > int64(time.Minute/time.Microsecond) {
		t.Fatalf("server clock estimate %d is %dµs from the local clock", a, d)
	}
	lim := strategies.Limit{Requests: 10, Period: strategies.Week}
	o := mkOp(t, "estimate", "fixed_window", lim, 1)
	mustApply(t, s, 0, o)
	key := counterKey("estimate", window.Start(b, strategies.Week))
	v, err := srv.Do("GET", key)
	if err != nil {
		t.Fatalf("GET %q: %v", key, err)
	}
	if n, _ := strconv.ParseInt(stringOf(v), 10, 64); n != 1 {
		// The week may have turned between the estimate and the call.
		next := counterKey("estimate", window.Start(b, strategies.Week)+strategies.Week)
		if w, _ := srv.Do("GET", next); stringOf(w) != "1" {
			t.Fatalf("counter %q = %v, want 1", key, v)
		}
	}
}

// stringOf returns v as a string, or "" for a nil reply.
func stringOf(v any) string {
	s, _ := v.(string)
	return s
}

// Warm reads the server's clock for the counters, so the first request
// does not wait for it; with the callers' time it does not.
func TestWarmReadsTheServerClock(t *testing.T) {
	srv := testservers.Redis(t)
	for _, clientTime := range []bool{false, true} {
		s := open(t, Options{URL: srv.URL(), ClientTime: clientTime, Timeout: testTimeout})
		if err := s.Warm(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := s.clock.sample.Load() != nil; got == clientTime {
			t.Errorf("ClientTime %v: after Warm the clock sample is set: %v", clientTime, got)
		}
		s.Close()
	}
}
