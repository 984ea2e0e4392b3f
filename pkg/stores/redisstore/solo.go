package redisstore

import "github.com/envoy-rls/envoy-rls/pkg/limiter"

// soloWeight is the weight (ops plus one per KiB of keys) above which an
// Apply call skips the batcher and runs on a pooled connection of its
// own: a pipeline then never carries one client's heavy call (64
// descriptors of 4 KB values weigh 320) ahead of the light calls of
// others, which would wait for it to be written, run and read back.
const soloWeight = 16

// solo reports whether a call of ops is too heavy to share a pipeline.
func solo(ops []limiter.Op) bool {
	if len(ops) > soloWeight {
		return true
	}
	bytes := 0
	for i := range ops {
		bytes += len(ops[i].Key)
	}
	return len(ops)+bytes>>10 > soloWeight
}
