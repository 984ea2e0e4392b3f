package limiter

import (
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

func stageOp(t *testing.T, key, name string, requests, hits int64) Op {
	t.Helper()
	s, ok := strategies.Lookup(name)
	if !ok {
		t.Fatalf("no strategy %q", name)
	}
	lim, err := s.Prepare(strategies.Limit{Requests: requests, Period: strategies.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return Op{Key: key, Strategy: s, Limit: lim, Hits: hits}
}

// fullWindow is the state of a fixed_window key holding n hits of the
// window starting at 0.
func fullWindow(n int64) strategies.State { return strategies.State{A: 0, B: n} }

func TestStage(t *testing.T) {
	const now = 10
	check := func(t *testing.T, op Op, st strategies.State) strategies.Decision {
		_, d := op.Strategy.Step(st, now, op.Limit, 0)
		return d
	}
	t.Run("AllAdmitted", func(t *testing.T) {
		ops := []Op{stageOp(t, "a", "fixed_window", 3, 1), stageOp(t, "b", "token_bucket", 3, 2), stageOp(t, "a", "fixed_window", 3, 1)}
		keyOf := []int{0, 1, 0}
		keys := make([]Staged, 2)
		out := make([]strategies.Decision, 3)
		if Stage(now, ops, keyOf, keys, out) {
			t.Fatal("vetoed")
		}
		if out[0].Remaining != 2 || out[2].Remaining != 1 || out[1].Remaining != 1 {
			t.Fatalf("decisions %+v", out)
		}
		if !keys[0].Dirty || !keys[1].Dirty || keys[0].State.B != 2 {
			t.Fatalf("staged %+v", keys)
		}
	})
	t.Run("Veto", func(t *testing.T) {
		a := stageOp(t, "a", "fixed_window", 3, 1)
		blocked := stageOp(t, "blocked", "fixed_window", 3, 1)
		refund := stageOp(t, "r", "fixed_window", 3, -1)
		ops := []Op{a, blocked, refund}
		keyOf := []int{0, 1, 2}
		keys := []Staged{{}, {Orig: fullWindow(3)}, {Orig: fullWindow(2)}}
		out := make([]strategies.Decision, 3)
		if !Stage(now, ops, keyOf, keys, out) {
			t.Fatal("not vetoed")
		}
		if want := check(t, a, strategies.State{}); out[0] != want {
			t.Errorf("admitted op reported %+v, want a check %+v", out[0], want)
		}
		if out[1].Allowed || out[1].RetryAfter <= 0 {
			t.Errorf("refusal lost: %+v", out[1])
		}
		if keys[0].Dirty || keys[1].Dirty || !keys[2].Dirty || keys[2].State.B != 1 {
			t.Errorf("staged %+v: want only the refund written", keys)
		}
		if !out[2].Allowed || out[2].Remaining != 2 {
			t.Errorf("refund reported %+v", out[2])
		}
	})
	t.Run("IndependentDoesNotVeto", func(t *testing.T) {
		shadow := stageOp(t, "s", "fixed_window", 3, 1)
		shadow.Independent = true
		ops := []Op{stageOp(t, "a", "fixed_window", 3, 1), shadow}
		keys := []Staged{{}, {Orig: fullWindow(3)}}
		out := make([]strategies.Decision, 2)
		if Stage(now, ops, []int{0, 1}, keys, out) {
			t.Fatal("vetoed by an Independent op")
		}
		if !keys[0].Dirty || keys[1].Dirty || out[1].Allowed {
			t.Fatalf("staged %+v, out %+v", keys, out)
		}
	})
	t.Run("SameKeyRefusal", func(t *testing.T) {
		b := stageOp(t, "b", "token_bucket", 3, 2)
		ops := []Op{b, b}
		keys := make([]Staged, 1)
		out := make([]strategies.Decision, 2)
		if !Stage(now, ops, []int{0, 0}, keys, out) {
			t.Fatal("not vetoed")
		}
		if want := check(t, b, strategies.State{}); out[0] != want || out[1].Allowed || keys[0].Dirty {
			t.Fatalf("out %+v, staged %+v; want a check %+v then a refusal, nothing written", out, keys, want)
		}
	})
}

func TestUnstage(t *testing.T) {
	const now = 10
	a := stageOp(t, "a", "fixed_window", 5, 2)
	c := stageOp(t, "a", "fixed_window", 5, 0)
	b := stageOp(t, "b", "fixed_window", 5, 1)
	ops := []Op{a, b, c, a}
	keyOf := []int{0, 1, 0, 0}
	keys := make([]Staged, 2)
	out := make([]strategies.Decision, len(ops))
	veto := Stage(now, ops, keyOf, keys, out)
	consumed := make([]bool, len(ops))
	for i := range ops {
		consumed[i] = Consumed(&ops[i], &out[i], veto)
	}
	if want := []bool{true, true, false, true}; consumed[0] != want[0] || consumed[1] != want[1] || consumed[2] != want[2] || consumed[3] != want[3] {
		t.Fatalf("consumed %v, want %v", consumed, want)
	}
	// Another request took one more hit on "a" since it was written.
	cur := keys[0].State
	cur.B++
	st, ttl, changed := Unstage(now, ops, keyOf, 0, cur, consumed)
	if !changed || st.B != 1 || ttl <= 0 {
		t.Fatalf("Unstage = %+v, %d, %v; want the other request's hit kept", st, ttl, changed)
	}
	if _, _, changed := Unstage(now, []Op{c}, []int{0}, 0, cur, []bool{false}); changed {
		t.Fatal("Unstage changed a key nothing consumed on")
	}
}
