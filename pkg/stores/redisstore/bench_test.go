package redisstore

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// BenchmarkApply measures Apply against a local single node with server
// time (the production default), with 1 and 3 ops per call on 1024 keys,
// from 16 goroutines per CPU: batched with the default options, batched
// with one and four pipelines, and unbatched (MaxBatch 1, one round trip
// per call); the -evalsha variants run the script with EVALSHA instead of
// FCALL (unbatched-evalsha is the store's behaviour before batching).
func BenchmarkApply(b *testing.B) {
	srv := testservers.Redis(b)
	for _, cfg := range []struct {
		name string
		opts Options
	}{
		{"batched", Options{}},
		{"pipelines=1", Options{Pipelines: 1}},
		{"pipelines=4", Options{Pipelines: 4}},
		{"unbatched", Options{MaxBatch: 1}},
		{"batched-evalsha", Options{EvalScripts: true}},
		{"unbatched-evalsha", Options{MaxBatch: 1, EvalScripts: true}},
	} {
		opts := cfg.opts
		opts.URL, opts.Timeout = srv.URL(), testTimeout
		s := open(b, opts)
		for _, n := range []int{1, 3} {
			b.Run(cfg.name+"/ops="+strconv.Itoa(n), func(b *testing.B) {
				benchApply(b, s, n)
			})
		}
		s.Close()
	}
}

// BenchmarkApplyFixedWindow measures the calls of fixed_window ops only,
// which run no script (counter.go), batched with the default options.
func BenchmarkApplyFixedWindow(b *testing.B) {
	srv := testservers.Redis(b)
	s := open(b, Options{URL: srv.URL(), Timeout: testTimeout})
	defer s.Close()
	names := []string{"fixed_window", "fixed_window", "fixed_window"}
	for _, n := range []int{1, 3} {
		b.Run("ops="+strconv.Itoa(n), func(b *testing.B) {
			benchApplyOf(b, s, names, n)
		})
	}
}

func benchApply(b *testing.B, s *Store, n int) {
	benchApplyOf(b, s, []string{"fixed_window", "token_bucket", "gcra"}, n)
}

// benchApplyOf measures Apply of calls of n ops of the strategies names
// (their first n), on 1024 keys each.
func benchApplyOf(b *testing.B, s *Store, names []string, n int) {
	lim := strategies.Limit{Requests: 1_000_000_000, Period: strategies.Hour}
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		ops := make([]limiter.Op, n)
		out := make([]strategies.Decision, n)
		for i := range ops {
			ops[i] = mkOp(b, "", names[i], lim, 1)
		}
		keys := make([][]string, 1024)
		for k := range keys {
			for i := range n {
				keys[k] = append(keys[k], "bench:"+names[i]+strconv.Itoa(i)+":"+strconv.Itoa(k))
			}
		}
		for pb.Next() {
			k := keys[seq.Add(1)%int64(len(keys))]
			for i := range ops {
				ops[i].Key = k[i]
			}
			if err := s.Apply(context.Background(), 0, ops, out); err != nil {
				b.Fatal(err)
			}
			if !out[0].Allowed {
				b.Fatalf("refused: %+v", out[0])
			}
		}
	})
}
