package strategytest

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// Request is one request of a property run and the decision it got.
type Request struct {
	At, Hits int64
	Decision strategies.Decision
}

// Property is the defining invariant of one strategy, checked by
// RunProperties over random request sequences.
//
// Extension point: each strategy's property lives in a file
// properties_<name>.go of this package whose init calls
// addProperty("<name>", Property{...}). RunProperties runs every
// registered strategy and fails for one that has no property.
//
// RunProperties draws a Limit, prepares it, and sends a random sequence of
// requests on a fresh key: times never decrease, within a sequence and
// across all sequences of a run, as a store's one clock would (clock skew
// is the tables' business), hits are mostly small, sometimes 0 and sometimes
// Capacity+1 or more, never negative. Around that it checks what holds for
// every strategy (see checkDecision), that a refused request passes at
// exactly now + RetryAfter and not 1µs before when nothing else arrives,
// and that after TTL and after Reset a check answers what a fresh key
// answers. Check then judges the whole sequence against the strategy's
// definition.
type Property struct {
	// Limit draws a random limit (before Prepare) for one sequence. It
	// must pass Prepare and should keep Period small enough that
	// sequences of a few hundred requests cross several periods.
	Limit func(rng *rand.Rand) strategies.Limit
	// Capacity returns the most hits one request can ever be admitted
	// with under lim (after Prepare): a request with more is Exceeds.
	Capacity func(lim strategies.Limit) int64
	// Check verifies the requests of one sequence, in order, against the
	// strategy's definition and reports violations with t.Errorf.
	Check func(t testing.TB, lim strategies.Limit, reqs []Request)
}

var properties = map[string]Property{}

// addProperty registers the property of the strategy called name; each
// properties_<name>.go file calls it from init.
func addProperty(name string, p Property) {
	if _, dup := properties[name]; dup {
		panic("strategytest: duplicate property " + name) // programming error at init
	}
	properties[name] = p
}

// RunProperties checks every registered strategy's property through
// apply, with about n requests per strategy in sequences of up to 200 on
// fresh keys, drawn from seed. Failures name the seed and sequence so a
// run can be repeated with -strategytest.seed.
func RunProperties(t *testing.T, apply Applier, seed int64, n int) {
	t.Helper()
	run := rand.Uint64()
	clock := T0 // one clock for the whole run, as a store has
	for _, name := range strategies.Names() {
		t.Run(name, func(t *testing.T) {
			s, _ := strategies.Lookup(name)
			p, ok := properties[name]
			if !ok {
				t.Fatalf("strategytest: no property registered for %q; add properties_%s.go", name, name)
			}
			h := fnv.New64a()
			h.Write([]byte(name))
			rng := rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
			for seq, done := 0, 0; done < n; seq++ {
				raw := p.Limit(rng)
				lim, err := s.Prepare(raw)
				if err != nil {
					t.Fatalf("property limit %+v does not prepare: %v", raw, err)
				}
				r := runner{t: t, apply: apply, s: s, lim: lim, capacity: p.Capacity(lim), rng: rng,
					key: fmt.Sprintf("strategytest:%x:prop:%s:%d", run, name, seq)}
				length := 20 + rng.IntN(181)
				clock = r.sequence(clock, length)
				done += len(r.reqs)
				if !t.Failed() {
					p.Check(t, lim, r.reqs)
				}
				if t.Failed() {
					t.Fatalf("seed %d, sequence %d, limit %+v: %d requests:\n%s", seed, seq, lim, len(r.reqs), formatRequests(r.reqs))
				}
			}
		})
	}
}

// runner sends one random sequence.
type runner struct {
	t        *testing.T
	apply    Applier
	s        strategies.Strategy
	lim      strategies.Limit
	capacity int64
	rng      *rand.Rand
	key      string
	reqs     []Request
}

func (r *runner) do(at, hits int64) strategies.Decision {
	d := r.apply(r.t, r.key, r.s, r.lim, at, hits)
	r.reqs = append(r.reqs, Request{At: at, Hits: hits, Decision: d})
	r.checkDecision(at, hits, d)
	return d
}

// sequence sends length requests (and probes) starting a little after
// start and returns the time of the last one.
func (r *runner) sequence(start int64, length int) int64 {
	w := r.lim.Period
	now := start + 1 + r.rng.Int64N(3*w)
	var last strategies.Decision
	for range length {
		now += r.gap()
		hits := r.hits()
		d := r.do(now, hits)
		last = d
		if !d.Allowed && !d.Exceeds && hits > 0 && d.RetryAfter > 0 && r.rng.IntN(2) == 0 {
			// Nothing else arrives: refused 1µs before, admitted at.
			if d.RetryAfter > 1 {
				early := r.do(now+d.RetryAfter-1, hits)
				if early.Allowed || early.RetryAfter != 1 {
					r.t.Errorf("refused at %s with RetryAfter %d; at RetryAfter−1µs got %+v, want refused with RetryAfter 1", Instant(now), d.RetryAfter, early)
				}
			}
			now += d.RetryAfter
			if on := r.do(now, hits); !on.Allowed {
				r.t.Errorf("refused with RetryAfter %d but refused again at exactly that time: %+v", d.RetryAfter, on)
			}
			last = r.reqs[len(r.reqs)-1].Decision
		}
		if r.t.Failed() {
			return now
		}
	}
	// After TTL the state must be as good as fresh, and after Reset too.
	for _, after := range []int64{min(last.TTL, last.Reset), max(last.TTL, last.Reset)} {
		at := now + after
		got := r.do(at, 0)
		want := r.apply(r.t, r.key+":fresh", r.s, r.lim, at, 0)
		if after == last.Reset && got != want {
			r.t.Errorf("check at Reset (%s) got %+v, a fresh key gets %+v", Instant(at), got, want)
		}
		if after == last.TTL && (got.Allowed != want.Allowed || got.Remaining != want.Remaining || got.RetryAfter != want.RetryAfter) {
			r.t.Errorf("check at TTL (%s) got %+v, a fresh key gets %+v", Instant(at), got, want)
		}
		now = at
	}
	return now
}

// gap draws the time to the next request: often 0, mostly about the mean
// spacing of the rate, sometimes up to a few periods.
func (r *runner) gap() int64 {
	w, l := r.lim.Period, max(r.lim.Requests, 1)
	switch x := r.rng.IntN(100); {
	case x < 15:
		return 0
	case x < 70:
		return r.rng.Int64N(max(2*w/l, 1)) + 1
	case x < 95:
		return r.rng.Int64N(w) + 1
	default:
		return r.rng.Int64N(3*w) + 1
	}
}

// hits draws the hits of the next request.
func (r *runner) hits() int64 {
	c := r.capacity
	switch x := r.rng.IntN(100); {
	case x < 8:
		return 0
	case x < 13:
		return c + 1 + r.rng.Int64N(3)
	case x < 75 || c < 1:
		return 1
	default:
		return 1 + r.rng.Int64N(max(c, 1))
	}
}

// checkDecision checks what strategy.go's Decision contract says of every
// strategy.
func (r *runner) checkDecision(at, hits int64, d strategies.Decision) {
	t := r.t
	t.Helper()
	where := fmt.Sprintf("at %s hits %d: %+v", Instant(at), hits, d)
	if d.Remaining < 0 || d.Reset < 0 || d.TTL < 0 || d.RetryAfter < 0 {
		t.Errorf("negative field %s", where)
	}
	if d.Allowed && (d.Exceeds || d.RetryAfter != 0) {
		t.Errorf("allowed with Exceeds or RetryAfter %s", where)
	}
	if d.Exceeds && (d.Allowed || d.RetryAfter != 0) {
		t.Errorf("Exceeds must be refused with RetryAfter 0 %s", where)
	}
	if hits > 0 && d.Exceeds != (hits > r.capacity) {
		t.Errorf("Exceeds %v, capacity %d %s", d.Exceeds, r.capacity, where)
	}
	if hits > 0 && !d.Allowed && !d.Exceeds && d.RetryAfter == 0 {
		t.Errorf("refused with RetryAfter 0 %s", where)
	}
}

func formatRequests(reqs []Request) string {
	var b []byte
	for i, q := range reqs {
		b = fmt.Appendf(b, "  %3d %s hits %d → %+v\n", i, Instant(q.At), q.Hits, q.Decision)
	}
	return string(b)
}
