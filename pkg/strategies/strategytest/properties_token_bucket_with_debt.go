package strategytest

import (
	"math/rand/v2"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

func init() {
	addProperty("token_bucket_with_debt", Property{
		Limit: func(rng *rand.Rand) strategies.Limit {
			lim := randomLevelLimit(rng)
			if lim.Requests > 0 {
				lim.Burst = int64(rng.IntN(9)) // 0: the default, Requests
				lim.MaxDebt = int64(rng.IntN(6))
			}
			return lim
		},
		Capacity: debtCapacity,
		Check:    checkTokenBucketWithDebt,
	})
}

func debtCapacity(lim strategies.Limit) int64 {
	if lim.Requests == 0 {
		return 0
	}
	return lim.Burst + lim.MaxDebt
}

// checkTokenBucketWithDebt: in every interval [a, b] at most C + MaxDebt +
// r·(b − a) hits are admitted, and every decision is that of a bucket whose
// deficit C − tokens, an exact fraction, may reach C + MaxDebt and is
// refilled at r = Requests/Period; Remaining counts the debt still
// available.
func checkTokenBucketWithDebt(t testing.TB, lim strategies.Limit, reqs []Request) {
	t.Helper()
	checkAdmittedInIntervals(t, lim, debtCapacity(lim), reqs)
	checkLevelModel(t, lim, debtCapacity(lim), reqs)
}
