package strategytest

import (
	"math/rand/v2"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

func init() {
	addProperty("gcra", Property{
		Limit: func(rng *rand.Rand) strategies.Limit {
			lim := randomLevelLimit(rng)
			if lim.Requests > 0 {
				lim.Burst = int64(rng.IntN(7)) // 0: the default, 1
			}
			return lim
		},
		Capacity: func(lim strategies.Limit) int64 {
			if lim.Requests == 0 {
				return 0
			}
			return lim.Burst
		},
		Check: checkGCRA,
	})
}

// checkGCRA: in every interval [a, b] at most burst + (b − a)/T hits are
// admitted (T = Period/Requests), and every decision is that of the
// definition, replayed on an exact model: with TAT − now the backlog, a
// request of h hits passes iff max(TAT, now) + h·T − now ≤ τ + T =
// burst·T, which is a bucket of capacity burst draining one hit per T.
func checkGCRA(t testing.TB, lim strategies.Limit, reqs []Request) {
	t.Helper()
	checkAdmittedInIntervals(t, lim, lim.Burst, reqs)
	checkLevelModel(t, lim, lim.Burst, reqs)
}
