package strategytest

import (
	"math/rand/v2"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// randomWindowLimit draws a limit for the window strategies: 0 to 12
// requests (0 rarely) per a period that is round or awkward (prime
// microseconds), so that rounding shows.
func randomWindowLimit(rng *rand.Rand) strategies.Limit {
	periods := []int64{1 * ms, 997, 10*ms + 7, 1 * s, 13}
	l := int64(rng.IntN(12)) + 1
	if rng.IntN(20) == 0 {
		l = 0
	}
	return strategies.Limit{Requests: l, Period: periods[rng.IntN(len(periods))]}
}

func requestsCapacity(lim strategies.Limit) int64 { return lim.Requests }

func init() {
	addProperty("fixed_window", Property{Limit: randomWindowLimit, Capacity: requestsCapacity, Check: checkFixedWindow})
}

// windowOf returns the start of the epoch-aligned window of period w
// holding at.
func windowOf(at, w int64) int64 {
	m := at % w
	if m < 0 {
		m += w
	}
	return at - m
}

// checkFixedWindow: per aligned window the admitted hits never exceed L,
// and a request is admitted iff the window's admitted hits plus its own
// fit in L; Remaining is L minus the window's hits.
func checkFixedWindow(t testing.TB, lim strategies.Limit, reqs []Request) {
	t.Helper()
	count := map[int64]int64{}
	for i, q := range reqs {
		win := windowOf(q.At, lim.Period)
		fits := count[win]+q.Hits <= lim.Requests
		if q.Hits > 0 && q.Decision.Allowed != fits {
			t.Errorf("request %d: allowed %v, window count %d + hits %d vs limit %d", i, q.Decision.Allowed, count[win], q.Hits, lim.Requests)
		}
		if q.Decision.Allowed {
			count[win] += q.Hits
		}
		if q.Decision.Remaining != lim.Requests-count[win] {
			t.Errorf("request %d: remaining %d, want %d", i, q.Decision.Remaining, lim.Requests-count[win])
		}
	}
}
