package strategies

import (
	"testing"
)

// TestRegistryParams checks the parameter declarations against Prepare: a
// strategy that reads a parameter keeps a value set for it (or rejects
// it), one that does not read it gives the same prepared limit with or
// without it.
func TestRegistryParams(t *testing.T) {
	base := Limit{Requests: 10, Period: Second}
	for _, n := range Names() {
		s, _ := Lookup(n)
		want, err := s.Prepare(base)
		if err != nil {
			t.Fatalf("%s: Prepare(%+v): %v", n, base, err)
		}
		for _, p := range params {
			lim := base
			*p.field(&lim) = 7
			got, err := s.Prepare(lim)
			if Reads(n, p.Name) {
				if err == nil && p.Get(got) != 7 {
					t.Errorf("%s reads %s but Prepare dropped it: %+v", n, p.Name, got)
				}
				continue
			}
			*p.field(&got) = p.Get(want) // the ignored value may stay in the Limit
			if err != nil || got != want {
				t.Errorf("%s does not declare %s, but Prepare with it = %+v, %v; without it %+v", n, p.Name, got, err, want)
			}
		}
	}
}
