package memcachestore

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestMemcacheKeyKeepsPlainKeys(t *testing.T) {
	for _, k := range []string{
		"envoy-rls:uid:10.0.0.1:fixed_window",
		"a",
		strings.Repeat("x", maxKeyLen),
	} {
		if got := memcacheKey(k); got != k {
			t.Errorf("memcacheKey(%q) = %q, want it unchanged", k, got)
		}
	}
}

func TestMemcacheKeyHashesIllegalKeys(t *testing.T) {
	keys := []string{
		"",
		strings.Repeat("x", maxKeyLen+1),
		strings.Repeat("y", 1000),
		"has space",
		"has\nnewline",
		"has\x00nul",
		"has\x7fdel",
		"has\ttab",
		"héllo",
		"tilde~in~key",
		"has_space", // the readable prefix of "has space": must not collide
	}
	seen := map[string]string{}
	for _, k := range keys {
		m := memcacheKey(k)
		if len(m) > maxKeyLen {
			t.Errorf("memcacheKey(%.20q…) has %d bytes, want at most %d", k, len(m), maxKeyLen)
		}
		for i := 0; i < len(m); i++ {
			if m[i] <= ' ' || m[i] >= 0x7f {
				t.Errorf("memcacheKey(%.20q…) = %q holds byte %#x", k, m, m[i])
			}
		}
		if plainKey(k) == strings.Contains(m, string(hashMarker)) {
			t.Errorf("memcacheKey(%.20q…) = %q: kept keys must lack %q and hashed ones have it", k, m, hashMarker)
		}
		if prev, dup := seen[m]; dup {
			t.Errorf("memcacheKey(%q) = memcacheKey(%q) = %q", k, prev, m)
		}
		seen[m] = k
		if again := memcacheKey(k); again != m {
			t.Errorf("memcacheKey(%q) is not deterministic: %q then %q", k, m, again)
		}
	}
	if m := memcacheKey("has space"); !strings.HasPrefix(m, "has_space~") {
		t.Errorf("memcacheKey(%q) = %q, want the readable prefix has_space~", "has space", m)
	}
}

func TestExpiration(t *testing.T) {
	const (
		sec  = int64(1_000_000)
		now  = 1_700_000_000 * sec // 2023-11-14
		days = 24 * 3600 * sec
	)
	cases := []struct {
		name    string
		now     int64
		ttl     int64
		wantExp int32
		wantDel bool
	}{
		{"zero deletes", now, 0, 0, true},
		{"negative deletes", now, -5, 0, true},
		{"1µs rounds up, plus a tick", now, 1, 2, false},
		{"whole second", now, sec, 2, false},
		{"just over a second", now, sec + 1, 3, false},
		{"30 days − 1 s is relative", now, 30*days - sec, 2_592_000, false},
		{"30 days is absolute", now, 30 * days, 1_700_000_000 + 2_592_001, false},
		{"90 days absolute", now, 90 * days, 1_700_000_000 + 90*86400 + 1, false},
		{"now rounds up", now + 1, 90 * days, 1_700_000_001 + 90*86400 + 1, false},
		{"beyond 2038 never expires", now, 20 * 365 * days, 0, false},
		{"absolute from the epoch", 0, 31 * days, 31*86400 + 1, false},
		{"negative now never expires", -sec, 31 * days, 0, false},
	}
	for _, c := range cases {
		exp, del := expiration(c.now, c.ttl)
		if exp != c.wantExp || del != c.wantDel {
			t.Errorf("%s: expiration(%d, %d) = %d, %v; want %d, %v", c.name, c.now, c.ttl, exp, del, c.wantExp, c.wantDel)
		}
	}
	if exp, _ := expiration(now, math.MaxInt64); exp != 0 {
		t.Errorf("expiration of the largest TTL = %d, want 0 (never)", exp)
	}
}

func TestWindowKey(t *testing.T) {
	long := strings.Repeat("k", 245)
	keys := []string{"a", "a~w1", "with space", long, long + "j", strings.Repeat("x", 250), "ü"}
	starts := []int64{0, 1, -1000, 1_700_000_000_000_000}
	seen := map[string]string{}
	for _, k := range keys {
		if mk := memcacheKey(k); seen[mk] != "" {
			t.Fatalf("memcacheKey(%q) collides", k)
		} else {
			seen[mk] = "store " + k
		}
	}
	for _, k := range keys {
		for _, st := range starts {
			wk := windowKey(k, st)
			if !plainOrHashedLegal(wk) {
				t.Errorf("windowKey(%.20q, %d) = %q: not a legal memcached key", k, st, wk)
			}
			id := fmt.Sprintf("window %q %d", k, st)
			if prev, dup := seen[wk]; dup {
				t.Errorf("windowKey(%.20q, %d) = %q, also %s", k, st, wk, prev)
			}
			seen[wk] = id
			if windowKey(k, st) != wk {
				t.Errorf("windowKey(%.20q, %d) not deterministic", k, st)
			}
		}
	}
}

// plainOrHashedLegal reports whether k is a legal memcached key.
func plainOrHashedLegal(k string) bool {
	if len(k) == 0 || len(k) > maxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] >= 0x7f {
			return false
		}
	}
	return true
}
