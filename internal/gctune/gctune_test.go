package gctune

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		floor, live, roots int64
		want               int
	}{
		{64 * mib, 4 * mib, 0, 1500},      // goal = 4 + 4 × 15 MiB = the floor
		{64 * mib, 4 * mib, 8 * mib, 500}, // stacks and globals count in the goal
		{64 * mib, 32 * mib, 0, 100},      // twice the live heap reaches the floor: Go's default
		{64 * mib, 200 * mib, 0, 100},     // far above the floor: Go's default
		{64 * mib, 16 * mib, 0, 300},
		{64 * mib, 1, 0, maxPercent}, // a tiny live heap: the bound
		{64 * mib, 0, 0, maxPercent},
		{1 << 62, 1, 1 << 40, maxPercent}, // no overflow
	} {
		if got := percentFor(c.floor, c.live, c.roots); got != c.want {
			t.Errorf("percentFor(%d, %d, %d) = %d, want %d", c.floor, c.live, c.roots, got, c.want)
		}
	}
}

// gogc returns the GC percent in effect.
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// waitPercent collects until the GC percent satisfies ok (the tuner runs
// after a collection, on the runtime's cleanup goroutine), and fails the
// test if it never does.
func waitPercent(t *testing.T, what string, ok func(int) bool) {
	t.Helper()
	for range 1000 {
		runtime.GC()
		if p := gogc(); ok(p) {
			return
		}
		runtime.Gosched()
	}
	t.Fatalf("GC percent %d after 1000 collections: want %s", gogc(), what)
}

// heapGoal returns the runtime's heap goal.
func heapGoal() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// unsetGOGC clears GOGC for the test (t.Setenv restores it after).
func unsetGOGC(t *testing.T) {
	t.Setenv("GOGC", "")
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
}

func TestStartFollowsTheLiveHeap(t *testing.T) {
	unsetGOGC(t)
	defer Start(0)
	r := Start(64 << 20)
	if r.Floor <= 0 {
		t.Fatalf("Start(64 MiB) = %+v: no floor", r)
	}
	if r.Floor < 64<<20 && !strings.Contains(r.Reason, "memory limit") {
		t.Fatalf("Start(64 MiB) = %+v: a smaller floor without a reason", r)
	}
	// A small live heap: the goal is the floor (unless the percent is at
	// its bound), far above GOGC=100.
	waitPercent(t, "> 100 with a small live heap, and the heap goal within 10 % of the floor", func(p int) bool {
		g := heapGoal()
		return p > 100 && (p >= maxPercent || g >= r.Floor*9/10 && g <= r.Floor*11/10)
	})

	// More than half the floor live: Go's default again.
	ballast := make([]byte, r.Floor*3/4)
	for i := 0; i < len(ballast); i += 4096 {
		ballast[i] = 1
	}
	waitPercent(t, "100 with three quarters of the floor live", func(p int) bool { return p == 100 })
	runtime.KeepAlive(ballast) // unreachable from here on
	waitPercent(t, "> 100 once the heap is small again", func(p int) bool { return p > 100 })

	// No floor: Go's default.
	if r := Start(0); r.Floor != 0 {
		t.Fatalf("Start(0) = %+v", r)
	}
	if p := gogc(); p != 100 {
		t.Fatalf("GC percent %d after Start(0), want 100", p)
	}
}

func TestStartLeavesGOGCAlone(t *testing.T) {
	t.Setenv("GOGC", "150")
	before := gogc()
	r := Start(256 << 20)
	if r.Floor != 0 || !strings.Contains(r.Reason, "GOGC=150") {
		t.Fatalf("Start with GOGC=150 = %+v, want no floor and GOGC named", r)
	}
	runtime.GC()
	if p := gogc(); p != before {
		t.Fatalf("GC percent %d, was %d: Start changed it with GOGC set", p, before)
	}
}

func TestStartCapsTheFloorAtAQuarterOfTheMemoryLimit(t *testing.T) {
	unsetGOGC(t)
	defer Start(0)
	dir := t.TempDir()
	v2, v1 := filepath.Join(dir, "memory.max"), filepath.Join(dir, "memory.limit_in_bytes")
	saved := cgroupFiles
	cgroupFiles = []string{v2, v1}
	defer func() { cgroupFiles = saved }()
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// No file: no limit.
	if r := Start(32 << 20); r.Floor != 32<<20 || r.Reason != "" {
		t.Fatalf("no cgroup files: %+v", r)
	}
	// cgroup v1 without a limit (a page-rounded huge number).
	write(v1, "9223372036854771712\n")
	if r := Start(32 << 20); r.Floor != 32<<20 {
		t.Fatalf("v1 without a limit: %+v", r)
	}
	// cgroup v1 with a limit of 64 MiB: a floor of 16 MiB.
	write(v1, "67108864\n")
	if r := Start(32 << 20); r.Floor != 16<<20 || !strings.Contains(r.Reason, "67108864") {
		t.Fatalf("v1 limit of 64 MiB: %+v", r)
	}
	// cgroup v2 comes first: "max" is no limit.
	write(v2, "max\n")
	if r := Start(32 << 20); r.Floor != 32<<20 {
		t.Fatalf("v2 max: %+v", r)
	}
	// A limit whose quarter is above the floor leaves it alone.
	write(v2, "268435456\n")
	if r := Start(32 << 20); r.Floor != 32<<20 || r.Reason != "" {
		t.Fatalf("v2 limit of 256 MiB: %+v", r)
	}
}
