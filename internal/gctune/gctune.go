// Package gctune keeps Go's garbage collector from running over and over
// on a small heap.
//
// With Go's default (GOGC=100) a collection starts when the heap has
// grown to twice what the last one left live. envoy-rls keeps a few MB
// live on the Redis and Memcached stores and allocates about 1.5 KB per
// request, so under load it collects many times a second, and every
// cycle pays a fixed cost (scanning the stacks of the goroutines of every
// stream and pipeline, the write barrier while marking): about 15 % of
// the service's CPU in a profile under `rls-bench load`. A floor under the
// heap goal removes most of it: the heap may grow to the floor before a
// collection, and once more than half the floor is live the collector
// runs at GOGC=100 as before. See Start.
package gctune

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
)

// Percent bounds: the GC percent never goes below Go's default, nor
// above maxPercent.
const (
	minPercent = 100
	maxPercent = 5000
)

// assumedLive is the live heap assumed before the first collection has
// measured it: Go's own minimum heap goal (4 MiB) at GOGC=100 is 2× it.
const assumedLive = 2 << 20

// Result says what Start did, for the log.
type Result struct {
	Floor  int64  // the floor in effect (0: none)
	Reason string // why the floor is not the requested one, if it is not
}

var (
	mu    sync.Mutex // guards what follows
	floor int64      // the floor in bytes; 0: not tuning
	armed bool       // a collection will run retune
	last  int        // percentFor's answer when the percent was last set (0: none yet)
	// The live heap, and the stacks and globals the last collection
	// scanned: the runtime's heap goal is live + (live + stacks +
	// globals) × GC percent / 100.
	sample = []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
	goal   = []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
)

// Start keeps the heap goal at least want bytes from now on: after every
// collection it sets the GC percent so that the runtime's goal is about
// want, or Go's default (GOGC=100) once that is larger. want ≤ 0 stops
// tuning (the percent goes back to 100). With GOGC set in the
// environment, which the operator chose, Start changes nothing. In a container the floor is
// capped at a quarter of the cgroup's memory limit, so that a small limit
// still leaves room for the live heap's own growth. GOMEMLIMIT, when set,
// still bounds the heap: the runtime collects earlier to stay under it.
// Start is process-wide; a later call replaces the floor of an earlier
// one.
func Start(want int64) Result {
	if v := os.Getenv("GOGC"); v != "" {
		return Result{Reason: "GOGC=" + v + " is set in the environment"}
	}
	var r Result
	if want > 0 {
		if lim, ok := cgroupMemoryLimit(); ok && want > lim/4 {
			want = lim / 4
			r.Reason = "capped at a quarter of the container's memory limit (" + strconv.FormatInt(lim, 10) + " bytes)"
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want <= 0 {
		if floor != 0 {
			floor = 0
			debug.SetGCPercent(minPercent)
			last = 0
		}
		return r
	}
	r.Floor = want
	floor = want
	if !armed {
		armed = true
		arm()
	}
	retune()
	return r
}

// arm runs afterGC after the next collection.
func arm() {
	type sentinel struct {
		_ *int // not a tiny allocation, whose cleanup might never run
		_ [8]byte
	}
	runtime.AddCleanup(&sentinel{}, afterGC, struct{}{})
}

// afterGC retunes and arms again, or stops when the floor is gone.
func afterGC(struct{}) {
	mu.Lock()
	defer mu.Unlock()
	if floor <= 0 {
		armed = false
		return
	}
	retune()
	arm()
}

// retune sets the GC percent from the floor and the live heap measured
// by the last collection. mu is held.
func retune() {
	metrics.Read(sample)
	live, roots := int64(assumedLive), int64(0)
	for i, smp := range sample {
		if smp.Value.Kind() != metrics.KindUint64 {
			continue
		}
		v := smp.Value.Uint64()
		if v >= math.MaxInt64/4 {
			continue
		}
		if i == 0 {
			if v > 0 {
				live = int64(v)
			}
		} else {
			roots += int64(v)
		}
	}
	p := percentFor(floor, live, roots)
	if last != 0 && p >= last*19/20 && p <= last*21/20 {
		return
	}
	debug.SetGCPercent(p)
	last = p
	// The runtime's goal is not exactly the formula above (it came out
	// 10–15 % higher in Go 1.26): scale the percent once by how far the
	// goal it reports is from the floor.
	if p > minPercent && p < maxPercent {
		metrics.Read(goal)
		if goal[0].Value.Kind() == metrics.KindUint64 {
			if g := int64(goal[0].Value.Uint64()); g > live && (g < floor*19/20 || g > floor*21/20) {
				q := int(max(minPercent, min(int64(p)*(floor-live)/(g-live), maxPercent)))
				debug.SetGCPercent(q)
			}
		}
	}
}

// percentFor returns the GC percent that puts the heap goal at floor
// when live bytes are live and the last collection scanned roots bytes of
// stacks and globals, within [minPercent, maxPercent].
func percentFor(floor, live, roots int64) int {
	live, roots = max(live, 1), max(roots, 0)
	if live >= floor {
		return minPercent
	}
	scan := live + roots
	if (floor-live)/scan >= maxPercent/100 {
		return maxPercent
	}
	p := (floor - live) * 100 / scan
	return int(max(minPercent, min(p, maxPercent)))
}

// cgroupFiles are where the memory limit of the process's cgroup is
// read: cgroup v2, then v1.
var cgroupFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// cgroupMemoryLimit returns the memory limit of the process's cgroup, if
// it has one.
func cgroupMemoryLimit() (int64, bool) {
	for _, path := range cgroupFiles {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		// cgroup v1 reports "no limit" as a page-rounded huge number.
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}
