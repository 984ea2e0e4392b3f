package strategytest

import "github.com/envoy-rls/envoy-rls/pkg/strategies"

func init() {
	const name = "sliding_window_log"
	perSecond := func(l int64) strategies.Limit { return strategies.Limit{Requests: l, Period: s} }
	add(
		Table{
			Name: name + "/burst then entries expire one by one", Strategy: name, Limit: perSecond(3),
			Steps: []Step{
				{At: T0, Hits: 1, Want: mkAllow(2, 1*s, 1*s)},
				{At: T0 + 100*ms, Hits: 1, Want: mkAllow(1, 1*s, 1*s)},
				{At: T0 + 200*ms, Hits: 1, Want: mkAllow(0, 1*s, 1*s)},
				{At: T0 + 300*ms, Hits: 1, Want: mkDeny(0, 900*ms, 700*ms, 900*ms)},
				{At: T0 + 1*s - 1*us, Hits: 1, Want: mkDeny(0, 200*ms+1*us, 1*us, 200*ms+1*us)},
				{At: T0 + 1*s, Hits: 1, Want: mkAllow(0, 1*s, 1*s)},
				{At: T0 + 1*s, Hits: 0, Want: mkAllow(0, 1*s, 1*s)},
				// The entry of T0+100ms no longer counts; two hits need the
				// one of T0+200ms to expire too.
				{At: T0 + 1100*ms, Hits: 2, Want: mkDeny(1, 900*ms, 100*ms, 900*ms)},
				{At: T0 + 1200*ms, Hits: 2, Want: mkAllow(0, 1*s, 1*s)},
				{At: T0 + 5*s, Hits: 0, Want: mkAllow(3, 0, 0)},
			},
		},
		Table{
			Name: name + "/exceeding hits get no infinite wait", Strategy: name, Limit: perSecond(3),
			Steps: []Step{
				{At: T0, Hits: 4, Want: mkExceed(3, 0, 0)},
				{At: T0 + 10*ms, Hits: 2, Want: mkAllow(1, 1*s, 1*s)},
				{At: T0 + 20*ms, Hits: 4, Want: mkExceed(1, 990*ms, 990*ms)},
				{At: T0 + 30*ms, Hits: 2, Want: mkDeny(1, 980*ms, 980*ms, 980*ms)},
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
			Name: name + "/same instant merges and refunds from the newest", Strategy: name, Limit: perSecond(5),
			Steps: []Step{
				{At: T0, Hits: 1, Want: mkAllow(4, 1*s, 1*s)},
				{At: T0, Hits: 1, Want: mkAllow(3, 1*s, 1*s)},
				{At: T0 + 100*ms, Hits: 2, Want: mkAllow(1, 1*s, 1*s)},
				// Takes the 2 of T0+100ms and 1 of the 2 at T0.
				{At: T0 + 200*ms, Hits: -3, Want: mkAllow(4, 800*ms, 800*ms)},
				{At: T0 + 300*ms, Hits: 4, Want: mkAllow(0, 1*s, 1*s)},
				{At: T0 + 400*ms, Hits: 1, Want: mkDeny(0, 900*ms, 600*ms, 900*ms)},
				{At: T0 + 500*ms, Hits: -9, Want: mkAllow(5, 0, 0)},
				{At: T0 + 600*ms, Hits: 5, Want: mkAllow(0, 1*s, 1*s)},
			},
		},
		Table{
			Name: name + "/clock going backwards", Strategy: name, Limit: perSecond(3),
			Steps: []Step{
				{At: T0 + 1*s, Hits: 2, Want: mkAllow(1, 1*s, 1*s)},
				// Counted at T0+1s, the newest instant seen.
				{At: T0 + 500*ms, Hits: 1, Want: mkAllow(0, 1500*ms, 1500*ms)},
				{At: T0 + 600*ms, Hits: 1, Want: mkDeny(0, 1400*ms, 1400*ms, 1400*ms)},
				{At: T0 + 2*s, Hits: 3, Want: mkAllow(0, 1*s, 1*s)},
			},
		},
		Table{
			Name: name + "/steady rate", Strategy: name, Limit: strategies.Limit{Requests: 2, Period: 100 * ms},
			Steps: []Step{
				{At: T0, Hits: 1, Want: mkAllow(1, 100*ms, 100*ms)},
				{At: T0 + 50*ms, Hits: 1, Want: mkAllow(0, 100*ms, 100*ms)},
				{At: T0 + 99*ms, Hits: 1, Want: mkDeny(0, 51*ms, 1*ms, 51*ms)},
				{At: T0 + 100*ms, Hits: 1, Want: mkAllow(0, 100*ms, 100*ms)},
				{At: T0 + 150*ms, Hits: 1, Want: mkAllow(0, 100*ms, 100*ms)},
			},
		},
	)
}
