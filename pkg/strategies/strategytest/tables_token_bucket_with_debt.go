package strategytest

import "github.com/envoy-rls/envoy-rls/pkg/strategies"

// At "10/s" one token refills in 100 ms. With burst 5 and max_debt 3 the
// bucket admits while tokens − hits ≥ −3, so up to 8 hits at once, and
// Remaining counts the debt that may still be taken.
func init() {
	debt := strategies.Limit{Requests: 10, Period: strategies.Second, Burst: 5, MaxDebt: 3}
	add(
		Table{
			Name:     "token_bucket_with_debt/into debt and back",
			Strategy: "token_bucket_with_debt",
			Limit:    debt,
			Steps: []Step{
				{At: T0, Hits: 5, Want: mkAllow(3, 500*ms, 500*ms)},
				// Tokens fall to −3: the debt is repaid before the
				// bucket is full again, 800 ms later.
				{At: T0, Hits: 3, Want: mkAllow(0, 800*ms, 800*ms)},
				{At: T0, Hits: 1, Want: mkDeny(0, 800*ms, 100*ms, 800*ms)},
				{At: T0 + 100*ms - 1, Hits: 1, Want: mkDeny(0, 700*ms+1, 1, 700*ms+1)},
				// More than burst + max_debt: never admissible, no wait.
				{At: T0, Hits: 9, Want: mkExceed(0, 800*ms, 800*ms)},
				{At: T0 + 250*ms, Hits: 2, Want: mkAllow(0, 750*ms, 750*ms)},
				{At: T0 + 250*ms, Hits: -4, Want: mkAllow(4, 350*ms, 350*ms)},
				{At: T0 + 250*ms, Hits: 0, Want: mkAllow(4, 350*ms, 350*ms)},
				{At: T0 + 1000*ms, Hits: 8, Want: mkAllow(0, 800*ms, 800*ms)},
				{At: T0 + 1000*ms, Hits: -100, Want: mkAllow(8, 0, 0)},
			},
		},
		Table{
			// Traffik's TokenBucket answers a cost above capacity with a
			// wait that can never be met; with max_debt 0 this is
			// token_bucket, and such a request Exceeds with no wait.
			Name:     "token_bucket_with_debt/no debt",
			Strategy: "token_bucket_with_debt",
			Limit:    strategies.Limit{Requests: 10, Period: strategies.Second},
			Steps: []Step{
				{At: T0, Hits: 11, Want: mkExceed(10, 0, 0)},
				{At: T0, Hits: 10, Want: mkAllow(0, 1000*ms, 1000*ms)},
				{At: T0, Hits: 1, Want: mkDeny(0, 1000*ms, 100*ms, 1000*ms)},
				{At: T0 + 50*ms, Hits: 11, Want: mkExceed(0, 950*ms, 950*ms)},
				{At: T0 + 500*ms, Hits: 5, Want: mkAllow(0, 1000*ms, 1000*ms)},
			},
		},
		Table{
			Name:     "token_bucket_with_debt/clock skew",
			Strategy: "token_bucket_with_debt",
			Limit:    debt,
			Steps: []Step{
				{At: T0, Hits: 8, Want: mkAllow(0, 800*ms, 800*ms)},
				{At: T0 - 200*ms, Hits: 1, Want: mkDeny(0, 1000*ms, 300*ms, 1000*ms)},
				{At: T0 + 100*ms, Hits: 1, Want: mkAllow(0, 800*ms, 800*ms)},
			},
		},
	)
}
