package strategytest

import (
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

func init() {
	addProperty("leaky_bucket", Property{Limit: randomLevelLimit, Capacity: requestsCapacity, Check: checkLeakyBucket})
}

// randomLevelLimit draws a limit for the bucket strategies: 1 to 12
// requests (rarely 0) per a round or awkward period, so that fractional
// levels show. Burst and MaxDebt are left to the caller.
func randomLevelLimit(rng *rand.Rand) strategies.Limit {
	periods := []int64{1 * ms, 997, 10*ms + 7, 1 * s, 13, 7 * s}
	l := int64(rng.IntN(12)) + 1
	if rng.IntN(20) == 0 {
		l = 0
	}
	return strategies.Limit{Requests: l, Period: periods[rng.IntN(len(periods))]}
}

// checkLeakyBucket: the decisions are those of a bucket of capacity L
// whose level, kept as an exact fraction, leaks L per Period; the level,
// hence Reset, never exceeds a full bucket.
func checkLeakyBucket(t testing.TB, lim strategies.Limit, reqs []Request) {
	t.Helper()
	checkLevelModel(t, lim, lim.Requests, reqs)
	for i, q := range reqs {
		if q.Decision.Reset > lim.Period {
			t.Errorf("request %d: Reset %d beyond one period %d: the level is above %d", i, q.Decision.Reset, lim.Period, lim.Requests)
		}
	}
}

// checkLevelModel replays reqs (times never decreasing, hits ≥ 0) on a
// model written from the definition, with the level of the bucket an exact
// rational number of hits that drains Requests per Period: a request of h
// hits is Exceeds when h > capacity, else admitted iff level + h ≤
// capacity. Every decision must match the model: Remaining = ⌊capacity −
// level⌋, Reset = TTL = ⌈level·Period/Requests⌉, RetryAfter = ⌈(level + h
// − capacity)·Period/Requests⌉ for a refused request. leaky_bucket,
// leaky_bucket_with_queue, gcra and token_bucket_with_debt are this one
// bucket with different capacities.
func checkLevelModel(t testing.TB, lim strategies.Limit, capacity int64, reqs []Request) {
	t.Helper()
	if lim.Requests == 0 {
		capacity = 0
	}
	level := new(big.Rat)
	var last int64
	// µs returns ⌈x·Period/Requests⌉ for x ≥ 0, the time x hits take to
	// drain.
	us := func(x *big.Rat) int64 {
		if x.Sign() <= 0 {
			return 0
		}
		v := new(big.Rat).Mul(x, big.NewRat(lim.Period, lim.Requests))
		q, r := new(big.Int).QuoRem(v.Num(), v.Denom(), new(big.Int))
		if r.Sign() > 0 {
			q.Add(q, big.NewInt(1))
		}
		return q.Int64()
	}
	for i, q := range reqs {
		if i > 0 && lim.Requests > 0 {
			level.Sub(level, big.NewRat((q.At-last)*lim.Requests, lim.Period))
			if level.Sign() < 0 {
				level.SetInt64(0)
			}
		}
		last = q.At
		want := strategies.Decision{Allowed: true}
		room := new(big.Rat).Sub(big.NewRat(capacity, 1), level)
		switch {
		case q.Hits > capacity:
			want = strategies.Decision{Exceeds: true}
		case q.Hits > 0 && room.Cmp(big.NewRat(q.Hits, 1)) < 0:
			want = strategies.Decision{RetryAfter: us(new(big.Rat).Sub(big.NewRat(q.Hits, 1), room))}
		case q.Hits > 0:
			level.Add(level, big.NewRat(q.Hits, 1))
		}
		room.Sub(big.NewRat(capacity, 1), level)
		want.Remaining = new(big.Int).Quo(room.Num(), room.Denom()).Int64()
		want.Reset = us(level)
		want.TTL = want.Reset
		if q.Decision != want {
			t.Errorf("request %d (%s, hits %d): got %+v, the bucket of capacity %d at level %s gives %+v",
				i, Instant(q.At), q.Hits, q.Decision, capacity, level.RatString(), want)
			return
		}
	}
}

// checkAdmittedInIntervals checks that the hits admitted in every interval
// [a, b] of reqs total at most capacity + (b − a)·Requests/Period.
func checkAdmittedInIntervals(t testing.TB, lim strategies.Limit, capacity int64, reqs []Request) {
	t.Helper()
	for i := range reqs {
		var sum int64
		for j := i; j < len(reqs); j++ {
			if q := reqs[j]; q.Decision.Allowed && q.Hits > 0 {
				sum += q.Hits
			}
			if span := reqs[j].At - reqs[i].At; (sum-capacity)*lim.Period > span*lim.Requests {
				t.Errorf("requests %d to %d: %d hits admitted in %dµs, more than %d + %d·%d/%d",
					i, j, sum, span, capacity, span, lim.Requests, lim.Period)
				return
			}
		}
	}
}
