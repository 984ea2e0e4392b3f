package strategytest

import "github.com/envoy-rls/envoy-rls/pkg/strategies"

func init() {
	const name = "sliding_window_counter"
	perSecond := func(l int64) strategies.Limit { return strategies.Limit{Requests: l, Period: s} }
	add(
		Table{
			Name: name + "/retry crosses into the next window", Strategy: name, Limit: perSecond(4),
			Steps: []Step{
				{At: T0, Hits: 4, Want: mkAllow(0, 2*s, 2*s)},
				// cur = 4 must weigh at most 3 next window: 4·(1s−e)/1s ≤ 3
				// from e = 250ms on, 750ms from now (Traffik scales by the
				// time into the window and answers less).
				{At: T0 + 500*ms, Hits: 1, Want: mkDeny(0, 1500*ms, 750*ms, 1500*ms)},
				{At: T0 + 1250*ms - 1*us, Hits: 1, Want: mkDeny(0, 750*ms+1*us, 1*us, 750*ms+1*us)},
				{At: T0 + 1250*ms, Hits: 1, Want: mkAllow(0, 1750*ms, 1750*ms)},
				{At: T0 + 2*s, Hits: 1, Want: mkAllow(2, 2*s, 2*s)},
				{At: T0 + 5*s, Hits: 0, Want: mkAllow(4, 0, 0)},
			},
		},
		Table{
			Name: name + "/over the limit at a window boundary", Strategy: name, Limit: perSecond(2),
			Steps: []Step{
				{At: T0 + 999*ms, Hits: 2, Want: mkAllow(0, 1001*ms, 1001*ms)},
				// Elapsed 0 in the new window: the previous window weighs
				// fully, so this is refused with a real wait, not 0.
				{At: T0 + 1*s, Hits: 1, Want: mkDeny(0, 1*s, 500*ms, 1*s)},
				{At: T0 + 1500*ms - 1*us, Hits: 1, Want: mkDeny(0, 500*ms+1*us, 1*us, 500*ms+1*us)},
				{At: T0 + 1500*ms, Hits: 1, Want: mkAllow(0, 1500*ms, 1500*ms)},
				// cur 1 alone weighs 1 next window: room for one at T0+2s.
				{At: T0 + 1750*ms, Hits: 1, Want: mkDeny(0, 1250*ms, 250*ms, 1250*ms)},
			},
		},
		Table{
			Name: name + "/full-size request waits two windows", Strategy: name, Limit: perSecond(2),
			Steps: []Step{
				{At: T0, Hits: 1, Want: mkAllow(1, 2*s, 2*s)},
				{At: T0 + 100*ms, Hits: 2, Want: mkDeny(1, 1900*ms, 1900*ms, 1900*ms)},
				{At: T0 + 2*s - 1*us, Hits: 2, Want: mkDeny(1, 1*us, 1*us, 1*us)},
				{At: T0 + 2*s, Hits: 2, Want: mkAllow(0, 2*s, 2*s)},
			},
		},
		Table{
			Name: name + "/steady rate", Strategy: name, Limit: strategies.Limit{Requests: 10, Period: 100 * ms},
			Steps: []Step{
				{At: T0, Hits: 5, Want: mkAllow(5, 200*ms, 200*ms)},
				{At: T0 + 50*ms, Hits: 5, Want: mkAllow(0, 150*ms, 150*ms)},
				// Next window at 40%: prev 10 weighs 6, so 4 more fit.
				{At: T0 + 140*ms, Hits: 4, Want: mkAllow(0, 160*ms, 160*ms)},
				{At: T0 + 150*ms, Hits: 1, Want: mkAllow(0, 150*ms, 150*ms)},
				{At: T0 + 160*ms, Hits: 1, Want: mkAllow(0, 140*ms, 140*ms)},
				{At: T0 + 165*ms, Hits: 1, Want: mkDeny(0, 135*ms, 5*ms, 135*ms)},
			},
		},
		Table{
			Name: name + "/check and exceeding hits", Strategy: name, Limit: perSecond(2),
			Steps: []Step{
				{At: T0, Hits: 3, Want: mkExceed(2, 0, 0)},
				{At: T0, Hits: 0, Want: mkAllow(2, 0, 0)},
				{At: T0 + 300*ms, Hits: 2, Want: mkAllow(0, 1700*ms, 1700*ms)},
				{At: T0 + 400*ms, Hits: 0, Want: mkAllow(0, 1600*ms, 1600*ms)},
				{At: T0 + 500*ms, Hits: 3, Want: mkExceed(0, 1500*ms, 1500*ms)},
			},
		},
		Table{
			Name: name + "/zero limit denies everything", Strategy: name, Limit: perSecond(0),
			Steps: []Step{
				{At: T0, Hits: 1, Want: mkExceed(0, 0, 0)},
				{At: T0, Hits: 0, Want: mkAllow(0, 0, 0)},
			},
		},
		Table{
			Name: name + "/clock going backwards", Strategy: name, Limit: perSecond(2),
			Steps: []Step{
				{At: T0 + 1*s, Hits: 2, Want: mkAllow(0, 2*s, 2*s)},
				{At: T0 + 500*ms, Hits: 1, Want: mkDeny(0, 2500*ms, 2*s, 2500*ms)},
				{At: T0 + 2500*ms, Hits: 1, Want: mkAllow(0, 1500*ms, 1500*ms)},
			},
		},
		Table{
			Name: name + "/refunds come from the current window", Strategy: name, Limit: perSecond(3),
			Steps: []Step{
				{At: T0, Hits: 3, Want: mkAllow(0, 2*s, 2*s)},
				{At: T0 + 1*ms, Hits: -1, Want: mkAllow(1, 1999*ms, 1999*ms)},
				{At: T0 + 2*ms, Hits: -10, Want: mkAllow(3, 0, 0)},
				{At: T0 + 3*ms, Hits: 2, Want: mkAllow(1, 1997*ms, 1997*ms)},
				// Next window at 50%: prev 2 weighs 1; the refund finds
				// nothing in the current window.
				{At: T0 + 1500*ms, Hits: -1, Want: mkAllow(2, 500*ms, 500*ms)},
			},
		},
	)
}
