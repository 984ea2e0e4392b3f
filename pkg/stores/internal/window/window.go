// Package window holds what the stores that keep fixed_window as one
// counter per window (the Redis store's native path and the memcached
// store) share: the start of a window, and the per-key mark of the
// latest time a window was counted in, which a caller whose clock went
// back uses to find the later window holding its key's hits.
package window

import (
	"hash/maphash"
	"math"
	"sync/atomic"
)

// MaxScan bounds how many windows a call whose clock went back reads to
// find the latest window of its key holding hits. A clock that went back
// further counts in the window of its own now.
const MaxScan = 32

// Start returns the start of the window of period w holding at.
func Start(at, w int64) int64 {
	m := at % w
	if m < 0 {
		m += w
	}
	return at - m
}

// stripes is the number of stripes of a HighWater.
const stripes = 1024

// HighWater remembers, per stripe of keys, the latest now at which a
// fixed_window op was admitted, so that a call whose now lies in an
// earlier window knows to look for a later window of its key holding
// hits, which Step counts it in. It is safe for concurrent use.
type HighWater struct {
	seed  maphash.Seed
	marks [stripes]atomic.Int64
}

// NewHighWater returns a HighWater that has seen no key.
func NewHighWater() *HighWater {
	h := &HighWater{seed: maphash.MakeSeed()}
	for i := range h.marks {
		h.marks[i].Store(math.MinInt64)
	}
	return h
}

func (h *HighWater) mark(key string) *atomic.Int64 {
	return &h.marks[maphash.String(h.seed, key)%stripes]
}

// Latest returns the latest now raised for key's stripe, or
// math.MinInt64 when there is none.
func (h *HighWater) Latest(key string) int64 { return h.mark(key).Load() }

// Raise records now for key.
func (h *HighWater) Raise(key string, now int64) {
	m := h.mark(key)
	for {
		old := m.Load()
		if old >= now || m.CompareAndSwap(old, now) {
			return
		}
	}
}
