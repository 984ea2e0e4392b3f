package strategytest

import "github.com/envoy-rls/envoy-rls/pkg/strategies"

func init() {
	const name = "token_bucket"
	add(
		Table{
			// 2 per second: one token every 500ms, capacity 2.
			Name: name + "/burst then refill", Strategy: name, Limit: strategies.Limit{Requests: 2, Period: s},
			Steps: []Step{
				{At: T0, Hits: 1, Want: mkAllow(1, 500*ms, 500*ms)},
				{At: T0, Hits: 1, Want: mkAllow(0, 1*s, 1*s)},
				{At: T0 + 100*ms, Hits: 1, Want: mkDeny(0, 900*ms, 400*ms, 900*ms)},
				{At: T0 + 500*ms - 1*us, Hits: 1, Want: mkDeny(0, 500*ms+1*us, 1*us, 500*ms+1*us)},
				{At: T0 + 500*ms, Hits: 1, Want: mkAllow(0, 1*s, 1*s)},
				{At: T0 + 1250*ms, Hits: 0, Want: mkAllow(1, 250*ms, 250*ms)},
				{At: T0 + 3*s, Hits: 0, Want: mkAllow(2, 0, 0)},
				{At: T0 + 3*s, Hits: 2, Want: mkAllow(0, 1*s, 1*s)},
			},
		},
		Table{
			// 3 per second: a token every 333⅓ms, kept exactly.
			Name: name + "/fractional refill is exact", Strategy: name, Limit: strategies.Limit{Requests: 3, Period: s},
			Steps: []Step{
				{At: T0, Hits: 3, Want: mkAllow(0, 1*s, 1*s)},
				{At: T0, Hits: 1, Want: mkDeny(0, 1*s, 333334*us, 1*s)},
				{At: T0 + 333333*us, Hits: 1, Want: mkDeny(0, 666667*us, 1*us, 666667*us)},
				{At: T0 + 333334*us, Hits: 1, Want: mkAllow(0, 666666*us+333334*us, 666666*us+333334*us)},
				{At: T0 + 1333334*us, Hits: 2, Want: mkAllow(1, 666667*us, 666667*us)},
			},
		},
		Table{
			Name: name + "/burst above the rate", Strategy: name, Limit: strategies.Limit{Requests: 1, Period: s, Burst: 5},
			Steps: []Step{
				{At: T0, Hits: 5, Want: mkAllow(0, 5*s, 5*s)},
				{At: T0 + 1*s, Hits: 2, Want: mkDeny(1, 4*s, 1*s, 4*s)},
				{At: T0 + 2*s, Hits: 2, Want: mkAllow(0, 5*s, 5*s)},
				{At: T0 + 2*s, Hits: 6, Want: mkExceed(0, 5*s, 5*s)},
				{At: T0 + 7*s, Hits: 6, Want: mkExceed(5, 0, 0)},
			},
		},
		Table{
			Name: name + "/zero limit denies everything", Strategy: name, Limit: strategies.Limit{Requests: 0, Period: s},
			Steps: []Step{
				{At: T0, Hits: 1, Want: mkExceed(0, 0, 0)},
				{At: T0, Hits: 0, Want: mkAllow(0, 0, 0)},
				{At: T0, Hits: -1, Want: mkAllow(0, 0, 0)},
			},
		},
		Table{
			Name: name + "/refunds never exceed capacity", Strategy: name, Limit: strategies.Limit{Requests: 2, Period: s},
			Steps: []Step{
				{At: T0, Hits: 2, Want: mkAllow(0, 1*s, 1*s)},
				{At: T0, Hits: -1, Want: mkAllow(1, 500*ms, 500*ms)},
				{At: T0 + 100*ms, Hits: -5, Want: mkAllow(2, 0, 0)},
				{At: T0 + 100*ms, Hits: 2, Want: mkAllow(0, 1*s, 1*s)},
				{At: T0 + 200*ms, Hits: 3, Want: mkExceed(0, 900*ms, 900*ms)},
			},
		},
		Table{
			Name: name + "/clock going backwards", Strategy: name, Limit: strategies.Limit{Requests: 2, Period: s},
			Steps: []Step{
				{At: T0 + 1*s, Hits: 2, Want: mkAllow(0, 1*s, 1*s)},
				// Treated as arriving at T0+1s: nothing has refilled.
				{At: T0 + 500*ms, Hits: 1, Want: mkDeny(0, 1500*ms, 1*s, 1500*ms)},
				{At: T0 + 1500*ms, Hits: 1, Want: mkAllow(0, 1*s, 1*s)},
			},
		},
	)
}
