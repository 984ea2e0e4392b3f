package descriptors

import (
	"fmt"
	"net/netip"
	"strings"
)

// exemptList is a rule's exempt entries, split by kind. The zero value
// exempts nothing. It is immutable after construction and safe for
// concurrent use.
type exemptList struct {
	exact    map[string]struct{}
	patterns []string
	prefixes []netip.Prefix
}

// addExempt adds one entry: a CIDR block (anything with a '/'), a '*'
// pattern, or an exact value.
func (e *exemptList) add(entry string) error {
	switch {
	case entry == "":
		return fmt.Errorf("empty exempt entry")
	case strings.Contains(entry, "/"):
		p, err := netip.ParsePrefix(entry)
		if err != nil {
			return fmt.Errorf("exempt entry %q is not a CIDR block such as 10.0.0.0/8 or ::1/128", entry)
		}
		e.prefixes = append(e.prefixes, p.Masked())
	case strings.Contains(entry, "*"):
		e.patterns = append(e.patterns, entry)
	default:
		if e.exact == nil {
			e.exact = make(map[string]struct{})
		}
		e.exact[entry] = struct{}{}
	}
	return nil
}

// empty reports whether the list exempts nothing.
func (e *exemptList) empty() bool {
	return e == nil || len(e.exact) == 0 && len(e.patterns) == 0 && len(e.prefixes) == 0
}

// match reports whether v is exempt: equal to a listed value, matching a
// listed pattern, or an IP address (IPv4-mapped IPv6 addresses count as
// IPv4) inside a listed CIDR block. It does not allocate.
func (e *exemptList) match(v string) bool {
	if e == nil {
		return false
	}
	if _, ok := e.exact[v]; ok {
		return true
	}
	for _, p := range e.patterns {
		if globMatch(p, v) {
			return true
		}
	}
	if len(e.prefixes) > 0 {
		addr, err := netip.ParseAddr(v)
		if err != nil {
			return false
		}
		addr = addr.Unmap()
		for _, p := range e.prefixes {
			if p.Contains(addr) {
				return true
			}
		}
	}
	return false
}
