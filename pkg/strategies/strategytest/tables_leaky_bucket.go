package strategytest

import "github.com/envoy-rls/envoy-rls/pkg/strategies"

func init() {
	add(leakyBucketTables("leaky_bucket")...)
}

// leakyBucketTables returns the tables of leaky_bucket for strategy, which
// is leaky_bucket or leaky_bucket_with_queue: the two must decide alike,
// field for field.
//
// At "10/s" one hit is 100 ms of level; at "3/s" it is 333 333⅓ µs, which
// the strategies keep exactly (rounding up only what they report).
func leakyBucketTables(strategy string) []Table {
	tenPerSecond := strategies.Limit{Requests: 10, Period: strategies.Second}
	return []Table{
		{
			Name:     strategy + "/burst then leak",
			Strategy: strategy,
			Limit:    tenPerSecond,
			Steps: []Step{
				{At: T0, Hits: 10, Want: mkAllow(0, 1000*ms, 1000*ms)},
				// Full: one hit leaks out in 100 ms.
				{At: T0, Hits: 1, Want: mkDeny(0, 1000*ms, 100*ms, 1000*ms)},
				// 1 µs too early: a whole hit has not leaked yet.
				{At: T0 + 100*ms - 1, Hits: 1, Want: mkDeny(0, 900*ms+1, 1, 900*ms+1)},
				{At: T0 + 100*ms, Hits: 1, Want: mkAllow(0, 1000*ms, 1000*ms)},
				// A check consumes nothing and sees the half-leaked hit.
				{At: T0 + 150*ms, Hits: 0, Want: mkAllow(0, 950*ms, 950*ms)},
				// More than the bucket holds: never admissible, no wait.
				{At: T0 + 150*ms, Hits: 11, Want: mkExceed(0, 950*ms, 950*ms)},
				{At: T0 + 150*ms, Hits: -3, Want: mkAllow(3, 650*ms, 650*ms)},
				{At: T0 + 800*ms, Hits: 0, Want: mkAllow(10, 0, 0)},
				// A refund never takes the bucket below empty.
				{At: T0 + 800*ms, Hits: -5, Want: mkAllow(10, 0, 0)},
				{At: T0 + 800*ms, Hits: 10, Want: mkAllow(0, 1000*ms, 1000*ms)},
			},
		},
		{
			Name:     strategy + "/steady rate",
			Strategy: strategy,
			Limit:    tenPerSecond,
			Steps: []Step{
				{At: T0, Hits: 1, Want: mkAllow(9, 100*ms, 100*ms)},
				{At: T0 + 100*ms, Hits: 1, Want: mkAllow(9, 100*ms, 100*ms)},
				{At: T0 + 200*ms, Hits: 1, Want: mkAllow(9, 100*ms, 100*ms)},
				// Twice the rate: the level grows by half a hit per request.
				{At: T0 + 250*ms, Hits: 1, Want: mkAllow(8, 150*ms, 150*ms)},
				{At: T0 + 300*ms, Hits: 1, Want: mkAllow(8, 200*ms, 200*ms)},
			},
		},
		{
			// Traffik's LeakyBucket admits any first request, whatever
			// its cost; a fresh bucket refuses more than it holds.
			Name:     strategy + "/first request over capacity",
			Strategy: strategy,
			Limit:    tenPerSecond,
			Steps: []Step{
				{At: T0, Hits: 11, Want: mkExceed(10, 0, 0)},
				{At: T0, Hits: 10, Want: mkAllow(0, 1000*ms, 1000*ms)},
			},
		},
		{
			// A clock that goes backwards is treated as standing still
			// at the latest instant seen: it leaks nothing.
			Name:     strategy + "/clock skew",
			Strategy: strategy,
			Limit:    tenPerSecond,
			Steps: []Step{
				{At: T0, Hits: 5, Want: mkAllow(5, 500*ms, 500*ms)},
				{At: T0 - 1000*ms, Hits: 5, Want: mkAllow(0, 2000*ms, 2000*ms)},
				{At: T0 - 1000*ms, Hits: 1, Want: mkDeny(0, 2000*ms, 1100*ms, 2000*ms)},
				{At: T0 + 100*ms, Hits: 1, Want: mkAllow(0, 1000*ms, 1000*ms)},
			},
		},
		{
			Name:     strategy + "/inexact interval",
			Strategy: strategy,
			Limit:    strategies.Limit{Requests: 3, Period: strategies.Second},
			Steps: []Step{
				{At: T0, Hits: 3, Want: mkAllow(0, 1000*ms, 1000*ms)},
				{At: T0, Hits: 1, Want: mkDeny(0, 1000*ms, 333_334, 1000*ms)},
				// 333 333 µs leak 0.999999 hit: 1 µs more makes a whole one.
				{At: T0 + 333_333, Hits: 1, Want: mkDeny(0, 666_667, 1, 666_667)},
				{At: T0 + 333_334, Hits: 1, Want: mkAllow(0, 1000*ms, 1000*ms)},
				{At: T0 + 333_334, Hits: 0, Want: mkAllow(0, 1000*ms, 1000*ms)},
				{At: T0 + 1_333_334, Hits: 2, Want: mkAllow(1, 666_667, 666_667)},
			},
		},
		{
			Name:     strategy + "/requests 0",
			Strategy: strategy,
			Limit:    strategies.Limit{Requests: 0, Period: strategies.Second},
			Steps: []Step{
				{At: T0, Hits: 1, Want: mkExceed(0, 0, 0)},
				{At: T0, Hits: 0, Want: mkAllow(0, 0, 0)},
				{At: T0, Hits: -1, Want: mkAllow(0, 0, 0)},
			},
		},
	}
}
