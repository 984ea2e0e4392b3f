package strategytest

import (
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

func init() {
	addProperty("sliding_window_counter", Property{Limit: randomWindowLimit, Capacity: requestsCapacity, Check: checkSlidingWindowCounter})
}

// checkSlidingWindowCounter: at every admission the weighted count
// prev·(W−elapsed)/W + cur + hits is at most L, and at every refusal
// (not Exceeds) it is above L.
func checkSlidingWindowCounter(t testing.TB, lim strategies.Limit, reqs []Request) {
	t.Helper()
	w, l := lim.Period, lim.Requests
	count := map[int64]int64{}
	for i, q := range reqs {
		win := windowOf(q.At, w)
		if q.Hits > 0 && !q.Decision.Exceeds {
			weighted := count[win-w]*(w-(q.At-win)) + (count[win]+q.Hits)*w // scaled by W
			if fits := weighted <= l*w; q.Decision.Allowed != fits {
				t.Errorf("request %d: allowed %v, weighted count·W %d + hits vs limit·W %d", i, q.Decision.Allowed, weighted, l*w)
			}
		}
		if q.Decision.Allowed && q.Hits > 0 {
			count[win] += q.Hits
		}
	}
}
