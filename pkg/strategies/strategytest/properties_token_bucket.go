package strategytest

import (
	"math/rand/v2"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// randomBucketLimit draws a token bucket: 1 to 10 tokens per a round or
// awkward period, capacity the default or up to three times the rate.
func randomBucketLimit(rng *rand.Rand) strategies.Limit {
	lim := randomWindowLimit(rng)
	if lim.Requests == 0 {
		return lim
	}
	if rng.IntN(2) == 0 {
		lim.Burst = 1 + rng.Int64N(3*lim.Requests)
	}
	return lim
}

func init() {
	addProperty("token_bucket", Property{
		Limit:    randomBucketLimit,
		Capacity: func(lim strategies.Limit) int64 { return lim.Burst },
		Check:    checkTokenBucket,
	})
}

// checkTokenBucket: the bucket starts full with C tokens and refills at
// r = L/W, so the hits admitted in any interval [t_i, t_j] from an
// admission i on are at most C + r·(t_j − t_i); and a request is refused
// only if admitting it would break that bound for some earlier admission
// (or it exceeds C). Compared exactly, scaled by RateDen.
func checkTokenBucket(t testing.TB, lim strategies.Limit, reqs []Request) {
	t.Helper()
	c, num, den := lim.Burst, lim.RateNum, lim.RateDen
	for j, q := range reqs {
		if q.Hits <= 0 || q.Decision.Exceeds {
			continue
		}
		fits := q.Hits <= c
		var sum int64 // admitted hits in [t_i, t_j) with i admitted
		for i := j - 1; i >= 0 && fits; i-- {
			p := reqs[i]
			if !p.Decision.Allowed || p.Hits <= 0 {
				continue
			}
			sum += p.Hits
			if (sum+q.Hits)*den > c*den+num*(q.At-p.At) {
				fits = false
			}
		}
		if q.Decision.Allowed != fits {
			t.Errorf("request %d: allowed %v, but the C + r·Δt bound says %v", j, q.Decision.Allowed, fits)
		}
	}
}
