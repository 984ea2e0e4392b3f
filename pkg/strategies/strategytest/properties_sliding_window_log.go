package strategytest

import (
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

func init() {
	addProperty("sliding_window_log", Property{Limit: randomWindowLimit, Capacity: requestsCapacity, Check: checkSlidingWindowLog})
}

// checkSlidingWindowLog: the admitted hits in any Period never exceed L,
// and a request is refused only if the hits admitted in the Period before
// it plus its own exceed L.
func checkSlidingWindowLog(t testing.TB, lim strategies.Limit, reqs []Request) {
	t.Helper()
	for j, q := range reqs {
		if q.Hits <= 0 || q.Decision.Exceeds {
			continue
		}
		var sum int64
		for i := j - 1; i >= 0 && reqs[i].At > q.At-lim.Period; i-- {
			if reqs[i].Decision.Allowed {
				sum += reqs[i].Hits
			}
		}
		if fits := sum+q.Hits <= lim.Requests; q.Decision.Allowed != fits {
			t.Errorf("request %d: allowed %v, %d hits in the period before + %d vs limit %d", j, q.Decision.Allowed, sum, q.Hits, lim.Requests)
		}
	}
}
