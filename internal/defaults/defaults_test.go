package defaults_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/envoy-rls/envoy-rls/internal/defaults"
)

func TestPositive(t *testing.T) {
	for _, tc := range []struct{ v, want int }{{0, 7}, {-1, 7}, {1, 1}, {math.MaxInt, math.MaxInt}} {
		if got := defaults.Positive(tc.v, 7); got != tc.want {
			t.Errorf("Positive(%d, 7) = %d, want %d", tc.v, got, tc.want)
		}
	}
	if got := defaults.Positive(time.Duration(0), time.Second); got != time.Second {
		t.Errorf("Positive(0s, 1s) = %v", got)
	}
	if got := defaults.Positive(-time.Nanosecond, time.Second); got != time.Second {
		t.Errorf("Positive(-1ns, 1s) = %v", got)
	}
	if got := defaults.Positive(0.25, 0.5); got != 0.25 {
		t.Errorf("Positive(0.25, 0.5) = %v", got)
	}
}

func TestShare(t *testing.T) {
	for _, tc := range []struct{ v, want float64 }{
		{0, 0.5}, {-0.1, 0.5}, {1.0001, 0.5}, {math.NaN(), 0.5}, {math.Inf(1), 0.5},
		{1, 1}, {0.01, 0.01},
	} {
		if got := defaults.Share(tc.v, 0.5); got != tc.want {
			t.Errorf("Share(%v, 0.5) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

func Example() {
	type Options struct {
		Window      time.Duration
		MinCalls    int
		FailureRate float64
	}
	o := Options{MinCalls: 20, FailureRate: 1.5}
	o.Window = defaults.Positive(o.Window, 10*time.Second)
	o.MinCalls = defaults.Positive(o.MinCalls, 100)
	o.FailureRate = defaults.Share(o.FailureRate, 0.5)
	fmt.Println(o.Window, o.MinCalls, o.FailureRate)
	// Output: 10s 20 0.5
}
