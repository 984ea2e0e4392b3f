package memcachestore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
	"github.com/envoy-rls/envoy-rls/pkg/strategies/strategytest"
)

// BenchmarkApply measures Apply against one local memcached with 1 and 3
// ops per call, on keys spread over many clients (no contention) and on
// one hot key shared by every goroutine. The "fw" calls lead with a
// fixed_window op (then gcra and sliding_window_counter), so they take
// the counter path for it; the "cas" calls use only strategies of the
// compare-and-swap path (gcra, token_bucket, sliding_window_counter), two
// phases per call (the reads of all keys, then their compare-and-swaps);
// the "fw3" calls hold three fixed_window ops (envoy-rls's default
// strategy), one phase. The commands of a phase go out in one pipelined
// write shared with the other goroutines' calls. Figures depend on the
// loopback round trip.
func BenchmarkApply(b *testing.B) {
	addrs := []string{testservers.Memcached(b).Addr}
	// Every call is admitted (gcra needs a burst for calls at one instant),
	// so every call reads and writes all of its keys.
	lim := strategies.Limit{Requests: 1_000_000, Period: strategies.Hour, Burst: 1_000_000}
	mixes := []struct {
		name  string
		names []string
	}{
		{"fw", []string{"fixed_window", "gcra", "sliding_window_counter"}},
		{"cas", []string{"gcra", "token_bucket", "sliding_window_counter"}},
		{"fw3", []string{"fixed_window", "fixed_window", "fixed_window"}},
	}
	for _, mix := range mixes {
		names := mix.names
		for _, nops := range []int{1, 3} {
			if nops == 1 && mix.name == "fw3" {
				continue // the same as fw/ops=1
			}
			for _, hot := range []bool{false, true} {
				name := fmt.Sprintf("%s/ops=%d/spread", mix.name, nops)
				if hot {
					name = fmt.Sprintf("%s/ops=%d/hot", mix.name, nops)
				}
				benchApply(b, name, addrs, lim, names, nops, hot)
			}
		}
	}
}

func benchApply(b *testing.B, name string, addrs []string, lim strategies.Limit, names []string, nops int, hot bool) {
	b.Run(name, func(b *testing.B) {
		s := newStore(b, addrs, Options{})
		defer s.Close()
		p := testPrefix()
		var worker atomic.Int64
		now := strategytest.T0
		// Each worker cycles through the calls of 100 clients.
		const clients = 100
		calls := func(w int64) [][]limiter.Op {
			cs := make([][]limiter.Op, clients)
			for c := range cs {
				cs[c] = make([]limiter.Op, nops)
				for j := range cs[c] {
					key := fmt.Sprintf("%shot:%d", p, j)
					if !hot {
						key = fmt.Sprintf("%sw%d:c%d:%d", p, w, c, j)
					}
					cs[c][j] = mustOp(b, key, names[j], lim, 1)
				}
			}
			return cs
		}
		b.SetParallelism(8) // I/O bound: 8 goroutines per CPU
		b.ReportAllocs()
		trips := s.roundTrips()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			cs := calls(worker.Add(1))
			out := make([]strategies.Decision, nops)
			i := 0
			for pb.Next() {
				if err := s.Apply(context.Background(), now, cs[i%clients], out); err != nil {
					b.Fatal(err)
				}
				for _, d := range out {
					if !d.Allowed {
						b.Fatalf("call refused: %+v", out)
					}
				}
				i++
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(s.roundTrips()-trips)/float64(b.N), "trips/op")
	})
}
