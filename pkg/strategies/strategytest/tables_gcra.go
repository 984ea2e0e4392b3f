package strategytest

import "github.com/envoy-rls/envoy-rls/pkg/strategies"

// At "10/s" the emission interval T is 100 ms; burst 5 makes the
// tolerance τ = 400 ms, so a request is admitted while
// max(TAT, now) + hits·T − now ≤ 500 ms.
func init() {
	add(
		Table{
			Name:     "gcra/burst then pacing",
			Strategy: "gcra",
			Limit:    strategies.Limit{Requests: 10, Period: strategies.Second, Burst: 5},
			Steps: []Step{
				{At: T0, Hits: 5, Want: mkAllow(0, 500*ms, 500*ms)},
				// Traffik's GCRA ignores the tolerance and would wait for
				// TAT itself (500 ms); the next slot opens one T later.
				{At: T0, Hits: 1, Want: mkDeny(0, 500*ms, 100*ms, 500*ms)},
				{At: T0 + 100*ms - 1, Hits: 1, Want: mkDeny(0, 400*ms+1, 1, 400*ms+1)},
				{At: T0 + 100*ms, Hits: 1, Want: mkAllow(0, 500*ms, 500*ms)},
				{At: T0 + 100*ms, Hits: 6, Want: mkExceed(0, 500*ms, 500*ms)},
				{At: T0 + 300*ms, Hits: 2, Want: mkAllow(0, 500*ms, 500*ms)},
				{At: T0 + 300*ms, Hits: 0, Want: mkAllow(0, 500*ms, 500*ms)},
				{At: T0 + 300*ms, Hits: -2, Want: mkAllow(2, 300*ms, 300*ms)},
				{At: T0 + 2000*ms, Hits: 3, Want: mkAllow(2, 300*ms, 300*ms)},
			},
		},
		Table{
			Name:     "gcra/pure pacing",
			Strategy: "gcra",
			Limit:    strategies.Limit{Requests: 10, Period: strategies.Second},
			Steps: []Step{
				{At: T0, Hits: 1, Want: mkAllow(0, 100*ms, 100*ms)},
				{At: T0 + 50*ms, Hits: 1, Want: mkDeny(0, 50*ms, 50*ms, 50*ms)},
				{At: T0 + 100*ms, Hits: 1, Want: mkAllow(0, 100*ms, 100*ms)},
				{At: T0 + 100*ms, Hits: 2, Want: mkExceed(0, 100*ms, 100*ms)},
				// Idle time earns no credit beyond the burst.
				{At: T0 + 1000*ms, Hits: 1, Want: mkAllow(0, 100*ms, 100*ms)},
				{At: T0 + 1000*ms, Hits: 1, Want: mkDeny(0, 100*ms, 100*ms, 100*ms)},
			},
		},
		Table{
			// Traffik's GCRA charges every request one T whatever its
			// hits; here a request of h hits costs h·T.
			Name:     "gcra/cost honoured",
			Strategy: "gcra",
			Limit:    strategies.Limit{Requests: 10, Period: strategies.Second, Burst: 5},
			Steps: []Step{
				{At: T0, Hits: 3, Want: mkAllow(2, 300*ms, 300*ms)},
				{At: T0, Hits: 3, Want: mkDeny(2, 300*ms, 100*ms, 300*ms)},
				{At: T0 + 100*ms, Hits: 3, Want: mkAllow(0, 500*ms, 500*ms)},
			},
		},
		Table{
			// A clock that goes backwards stands still at the latest
			// instant seen; RetryAfter and Reset count from the request's
			// own now.
			Name:     "gcra/clock skew",
			Strategy: "gcra",
			Limit:    strategies.Limit{Requests: 10, Period: strategies.Second, Burst: 2},
			Steps: []Step{
				{At: T0, Hits: 2, Want: mkAllow(0, 200*ms, 200*ms)},
				{At: T0 - 500*ms, Hits: 1, Want: mkDeny(0, 700*ms, 600*ms, 700*ms)},
				{At: T0 + 100*ms, Hits: 1, Want: mkAllow(0, 200*ms, 200*ms)},
			},
		},
		Table{
			// 7 per minute: T = 8 571 428⁴⁄₇ µs, kept exactly.
			Name:     "gcra/inexact interval",
			Strategy: "gcra",
			Limit:    strategies.Limit{Requests: 7, Period: strategies.Minute, Burst: 2},
			Steps: []Step{
				{At: T0, Hits: 2, Want: mkAllow(0, 17_142_858, 17_142_858)},
				{At: T0, Hits: 1, Want: mkDeny(0, 17_142_858, 8_571_429, 17_142_858)},
				{At: T0 + 8_571_428, Hits: 1, Want: mkDeny(0, 8_571_430, 1, 8_571_430)},
				{At: T0 + 8_571_429, Hits: 1, Want: mkAllow(0, 17_142_857, 17_142_857)},
			},
		},
	)
}
