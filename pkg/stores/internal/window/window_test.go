package window

import (
	"math"
	"sync"
	"testing"
)

func TestStart(t *testing.T) {
	for _, c := range []struct{ at, w, want int64 }{
		{0, 10, 0}, {9, 10, 0}, {10, 10, 10}, {25, 10, 20}, {-1, 10, -10}, {-10, 10, -10}, {-11, 10, -20},
	} {
		if got := Start(c.at, c.w); got != c.want {
			t.Errorf("Start(%d, %d) = %d, want %d", c.at, c.w, got, c.want)
		}
	}
}

// TestHighWater raises one key from many goroutines: the mark is the
// largest now raised, and never goes back.
func TestHighWater(t *testing.T) {
	h := NewHighWater()
	if got := h.Latest("k"); got != math.MinInt64 {
		t.Fatalf("Latest of an unseen key = %d, want MinInt64", got)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				h.Raise("k", int64(g*1000+i))
			}
		})
	}
	wg.Wait()
	if got := h.Latest("k"); got != 7999 {
		t.Fatalf("Latest = %d, want 7999", got)
	}
	h.Raise("k", 5)
	if got := h.Latest("k"); got != 7999 {
		t.Fatalf("Latest after raising an earlier now = %d, want 7999", got)
	}
}
