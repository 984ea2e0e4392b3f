package strategytest

import "github.com/envoy-rls/envoy-rls/pkg/strategies"

// leaky_bucket_with_queue runs every table of leaky_bucket, whose
// decisions it must match field for field, and tables of its own where
// refunds reach into a queue of several entries.
func init() {
	add(leakyBucketTables("leaky_bucket_with_queue")...)
	add(Table{
		Name:     "leaky_bucket_with_queue/refunds from the tail",
		Strategy: "leaky_bucket_with_queue",
		Limit:    strategies.Limit{Requests: 10, Period: strategies.Second},
		Steps: []Step{
			{At: T0, Hits: 3, Want: mkAllow(7, 300*ms, 300*ms)},
			{At: T0 + 50*ms, Hits: 2, Want: mkAllow(5, 450*ms, 450*ms)},
			{At: T0 + 100*ms, Hits: 4, Want: mkAllow(2, 800*ms, 800*ms)},
			// Takes back the 4 hits and one of the 2: the head, which has
			// leaked 1 of its 3 hits, stays.
			{At: T0 + 100*ms, Hits: -5, Want: mkAllow(7, 300*ms, 300*ms)},
			{At: T0 + 100*ms, Hits: 8, Want: mkDeny(7, 300*ms, 100*ms, 300*ms)},
			// The head leaks out entirely at T0+300ms.
			{At: T0 + 300*ms, Hits: 0, Want: mkAllow(9, 100*ms, 100*ms)},
			{At: T0 + 300*ms, Hits: 9, Want: mkAllow(0, 1000*ms, 1000*ms)},
			// A refund larger than the queue empties it, no more.
			{At: T0 + 300*ms, Hits: -100, Want: mkAllow(10, 0, 0)},
		},
	})
}
