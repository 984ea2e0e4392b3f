package strategies

import (
	_ "embed" // go:embed of the Lua runtime
	"fmt"
)

// MaxQueueLimit is the largest Requests leaky_bucket_with_queue accepts. Its
// state holds one Entry (16 bytes) per queued request, at most Requests of
// them, so a key's queue never exceeds 160 KB.
const MaxQueueLimit = 10_000

// LeakyBucketWithQueue is the "leaky_bucket_with_queue" strategy: a FIFO
// queue of admitted requests that drains Requests hits per Period,
// continuously, the request at its head leaking out hit by hit. A request
// of h hits is admitted, and queued, iff queued + h ≤ Requests, where
// queued counts the hits still in the queue (the head's leaked part
// excluded). Its decisions are those of leaky_bucket, field for field; what
// it adds is a state that shows which requests are still queued and since
// when. Requests of more than Requests hits are refused with Exceeds. Burst
// and MaxDebt are ignored.
//
// State: Log holds the queued requests in arrival order (At is when each
// was admitted, Hits its hits); A is how much of Log[0] has leaked, in hits
// scaled by RateDen (one hit is RateDen and leaks at RateNum per
// microsecond, so it is exact in integers); B is the time in microseconds
// the queue was last drained to; C is the sum of Log's Hits. The zero State
// is an empty queue, and an empty queue is stored with A, B and C zero and
// an empty Log (whose spare capacity later admissions reuse). The zero
// LeakyBucketWithQueue is ready to use and safe for concurrent use.
type LeakyBucketWithQueue struct{}

//go:embed leaky_bucket_with_queue.lua
var luaLeakyBucketWithQueue string

// LuaSource returns the Lua runtime of LeakyBucketWithQueue.Step (see LuaStrategy).
func (LeakyBucketWithQueue) LuaSource() string { return luaLeakyBucketWithQueue }

// Name returns "leaky_bucket_with_queue".
func (LeakyBucketWithQueue) Name() string { return "leaky_bucket_with_queue" }

// Prepare validates lim and fills RateNum and RateDen. Requests must not
// exceed MaxQueueLimit, and twice Requests scaled by RateDen (the largest sum
// of queued hits, a partly leaked head included) must stay within
// MaxExact.
func (q LeakyBucketWithQueue) Prepare(lim Limit) (Limit, error) {
	lim, err := prepareCommon(q.Name(), lim)
	if err != nil {
		return lim, err
	}
	if lim.Requests > MaxQueueLimit {
		return lim, fmt.Errorf("%w: %s: requests must not exceed %d, got %d; use leaky_bucket, which decides the same in constant space",
			ErrInvalidLimit, q.Name(), MaxQueueLimit, lim.Requests)
	}
	return lim, checkMeter(q.Name(), "2 × requests", 2*lim.Requests, lim)
}

// Step applies hits at now; see Strategy. It never writes into
// prev.Log[0:len(prev.Log)]: leaking reslices the queue, admitting
// appends, and a refund copies the queue before it shortens an entry.
func (LeakyBucketWithQueue) Step(prev State, now int64, lim Limit, hits int64) (State, Decision) {
	m := newMeter(lim, lim.Requests)
	den := m.den
	t := max(now, prev.B)
	skew := t - now
	s := leakQueue(prev, t, m.num, den)
	level := s.C*den - s.A
	if d, refused := m.refuse(level, skew, hits); refused {
		return prev, d
	}
	switch {
	case hits > 0:
		s.Log = append(s.Log, Entry{At: t, Hits: hits})
		s.C += hits
	case hits < 0:
		s = refundQueue(s, hits, level, den)
	}
	d := m.report(s.C*den-s.A, skew)
	d.Allowed = true
	if len(s.Log) == 0 {
		s.B = 0
	}
	return s, d
}

// leakQueue returns prev drained up to t ≥ prev.B: the requests that have
// leaked out entirely are resliced off the head, and A grows by what has
// leaked of the new head.
func leakQueue(prev State, t, num, den int64) State {
	s := prev
	s.B = t
	u := s.C*den - s.A
	leaked := u - drain(u, t-prev.B, num)
	i := 0
	for leaked > 0 && i < len(s.Log) {
		left := s.Log[i].Hits*den - s.A
		if leaked < left {
			s.A += leaked
			break
		}
		leaked -= left
		s.A = 0
		s.C -= s.Log[i].Hits
		i++
	}
	s.Log = s.Log[i:]
	if len(s.Log) == 0 {
		s.A, s.C = 0, 0
	}
	return s
}

// refundQueue removes -hits hits (hits < 0) from the tail of the queue of
// s, whose level is level: the refund takes back the most recent
// admissions first and never more than is still queued.
func refundQueue(s State, hits, level, den int64) State {
	if hits <= -ceilDiv(level, den) {
		s.Log = s.Log[len(s.Log):]
		s.A, s.C = 0, 0
		return s
	}
	// Now -hits·den < level: at least one hit of the queue stays.
	r := -hits
	n := len(s.Log)
	for n > 1 && s.Log[n-1].Hits <= r {
		r -= s.Log[n-1].Hits
		s.C -= s.Log[n-1].Hits
		n--
	}
	if r == 0 {
		// Cap the slice so that a later append cannot write over the
		// entries just dropped, which prev may still hold.
		s.Log = s.Log[:n:n]
		return s
	}
	log := make([]Entry, n, n+1)
	copy(log, s.Log[:n])
	log[n-1].Hits -= r
	s.C -= r
	s.Log = log
	return s
}
