package strategytest

import (
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

func init() {
	addProperty("leaky_bucket_with_queue", Property{Limit: randomLevelLimit, Capacity: requestsCapacity, Check: checkLeakyBucketWithQueue})
}

// checkLeakyBucketWithQueue: the queue decides exactly as leaky_bucket,
// and its queued hits, hence Reset, never exceed a full bucket.
func checkLeakyBucketWithQueue(t testing.TB, lim strategies.Limit, reqs []Request) {
	t.Helper()
	checkLeakyBucket(t, lim, reqs)
}
