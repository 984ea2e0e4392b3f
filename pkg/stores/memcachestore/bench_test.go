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
// one hot key shared by every goroutine. Figures depend on the loopback
// round trip (two per key: a get and a compare-and-swap).
func BenchmarkApply(b *testing.B) {
	addrs := []string{testservers.Memcached(b).Addr}
	// Every call is admitted (gcra needs a burst for calls at one instant),
	// so every call reads and writes all of its keys.
	lim := strategies.Limit{Requests: 1_000_000, Period: strategies.Hour, Burst: 1_000_000}
	names := []string{"fixed_window", "gcra", "sliding_window_counter"}
	for _, nops := range []int{1, 3} {
		for _, hot := range []bool{false, true} {
			name := fmt.Sprintf("ops=%d/spread", nops)
			if hot {
				name = fmt.Sprintf("ops=%d/hot", nops)
			}
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
			})
		}
	}
}
