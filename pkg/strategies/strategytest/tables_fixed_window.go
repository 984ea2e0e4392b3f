package strategytest

import "github.com/envoy-rls/envoy-rls/pkg/strategies"

func init() {
	const name = "fixed_window"
	perSecond := func(l int64) strategies.Limit { return strategies.Limit{Requests: l, Period: s} }
	add(
		Table{
			Name: name + "/burst then new window", Strategy: name, Limit: perSecond(3),
			Steps: []Step{
				{At: T0, Hits: 1, Want: mkAllow(2, 1*s, 1*s)},
				{At: T0 + 100*ms, Hits: 1, Want: mkAllow(1, 900*ms, 900*ms)},
				{At: T0 + 200*ms, Hits: 1, Want: mkAllow(0, 800*ms, 800*ms)},
				{At: T0 + 300*ms, Hits: 1, Want: mkDeny(0, 700*ms, 700*ms, 700*ms)},
				{At: T0 + 1*s - 1*us, Hits: 1, Want: mkDeny(0, 1*us, 1*us, 1*us)},
				// The window ends: the count starts again (Traffik's counter
				// key has no window id, so it would still refuse here).
				{At: T0 + 1*s, Hits: 1, Want: mkAllow(2, 1*s, 1*s)},
				{At: T0 + 1*s + 999*ms, Hits: 2, Want: mkAllow(0, 1*ms, 1*ms)},
				{At: T0 + 2*s, Hits: 3, Want: mkAllow(0, 1*s, 1*s)},
				{At: T0 + 5*s + 500*ms, Hits: 1, Want: mkAllow(2, 500*ms, 500*ms)},
			},
		},
		Table{
			Name: name + "/steady rate at the limit", Strategy: name, Limit: strategies.Limit{Requests: 2, Period: 100 * ms},
			Steps: []Step{
				{At: T0 + 10*ms, Hits: 1, Want: mkAllow(1, 90*ms, 90*ms)},
				{At: T0 + 60*ms, Hits: 1, Want: mkAllow(0, 40*ms, 40*ms)},
				{At: T0 + 110*ms, Hits: 1, Want: mkAllow(1, 90*ms, 90*ms)},
				{At: T0 + 160*ms, Hits: 1, Want: mkAllow(0, 40*ms, 40*ms)},
				{At: T0 + 199*ms, Hits: 1, Want: mkDeny(0, 1*ms, 1*ms, 1*ms)},
				{At: T0 + 200*ms, Hits: 1, Want: mkAllow(1, 100*ms, 100*ms)},
			},
		},
		Table{
			Name: name + "/check and exceeding hits", Strategy: name, Limit: perSecond(3),
			Steps: []Step{
				{At: T0, Hits: 0, Want: mkAllow(3, 1*s, 0)},
				{At: T0, Hits: 4, Want: mkExceed(3, 1*s, 0)},
				{At: T0 + 10*ms, Hits: 3, Want: mkAllow(0, 990*ms, 990*ms)},
				{At: T0 + 20*ms, Hits: 0, Want: mkAllow(0, 980*ms, 980*ms)},
				{At: T0 + 30*ms, Hits: 4, Want: mkExceed(0, 970*ms, 970*ms)},
				{At: T0 + 40*ms, Hits: 1, Want: mkDeny(0, 960*ms, 960*ms, 960*ms)},
			},
		},
		Table{
			Name: name + "/zero limit denies everything", Strategy: name, Limit: perSecond(0),
			Steps: []Step{
				{At: T0 + 250*ms, Hits: 1, Want: mkExceed(0, 750*ms, 0)},
				{At: T0 + 250*ms, Hits: 0, Want: mkAllow(0, 750*ms, 0)},
				{At: T0 + 3*s, Hits: 1, Want: mkExceed(0, 1*s, 0)},
			},
		},
		Table{
			Name: name + "/clock going backwards", Strategy: name, Limit: perSecond(2),
			Steps: []Step{
				{At: T0 + 1*s, Hits: 1, Want: mkAllow(1, 1*s, 1*s)},
				// Back into the previous window: counted in the window seen.
				{At: T0 + 500*ms, Hits: 1, Want: mkAllow(0, 1500*ms, 1500*ms)},
				{At: T0 + 600*ms, Hits: 1, Want: mkDeny(0, 1400*ms, 1400*ms, 1400*ms)},
				{At: T0 + 2*s, Hits: 1, Want: mkAllow(1, 1*s, 1*s)},
			},
		},
		Table{
			Name: name + "/refunds", Strategy: name, Limit: perSecond(3),
			Steps: []Step{
				{At: T0, Hits: 2, Want: mkAllow(1, 1*s, 1*s)},
				{At: T0 + 1*ms, Hits: -1, Want: mkAllow(2, 999*ms, 999*ms)},
				{At: T0 + 2*ms, Hits: -5, Want: mkAllow(3, 998*ms, 0)},
				{At: T0 + 3*ms, Hits: 3, Want: mkAllow(0, 997*ms, 997*ms)},
				// A refund in a later window has nothing to give back.
				{At: T0 + 1*s, Hits: -2, Want: mkAllow(3, 1*s, 0)},
				{At: T0 + 1*s, Hits: 3, Want: mkAllow(0, 1*s, 1*s)},
			},
		},
		Table{
			Name: name + "/minute windows aligned to the epoch", Strategy: name, Limit: strategies.Limit{Requests: 2, Period: strategies.Minute},
			Steps: []Step{
				{At: T0 + 59*s, Hits: 2, Want: mkAllow(0, 1*s, 1*s)},
				{At: T0 + 59*s + 500*ms, Hits: 1, Want: mkDeny(0, 500*ms, 500*ms, 500*ms)},
				{At: T0 + 60*s, Hits: 1, Want: mkAllow(1, 60*s, 60*s)},
			},
		},
	)
}
