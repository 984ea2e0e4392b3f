// Package descriptors holds envoy-rls's rate-limit rules: the YAML format
// of envoyproxy/ratelimit plus envoy-rls's extensions (rate strings,
// strategies, several limits per rule, exemptions), its validation, and
// the immutable match tree the limiter walks for every request
// descriptor.
//
// Each config file holds a domain and its descriptors, as in the
// reference service. envoy-rls adds, inside rate_limit: rate ("100/min",
// see ParseRate) instead of unit and requests_per_unit; strategy (one of
// strategies.Names(), default strategies.Default); burst and max_debt
// (integers ≥ 0, passed to the strategy's Limit). A descriptor may carry
// rate_limits, a list of rate_limit maps, instead of rate_limit, and
// exempt, a list of exact values, '*' patterns and CIDR blocks whose
// requests skip the limits. burst or max_debt on a strategy that ignores
// them is an error, not a warning: a setting that silently does nothing
// is a misconfiguration. Every problem of every file is reported at once
// (see Error).
//
// The rules have a model that does not depend on YAML: DomainSpec,
// DescriptorSpec and RateLimitSpec. Parse turns YAML files into that
// model, other sources (xDS) produce it directly, and Build validates it
// and makes the match tree, so every source gets the same checks.
//
// A Config is built once by Load, Parse or Build and never changes afterwards;
// every type reachable from it is safe for concurrent use, and callers
// must not modify the exported fields they read.
package descriptors

import (
	"fmt"
	"sort"
	"strings"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// Entry is one key/value pair of a request descriptor.
type Entry struct {
	Key, Value string
}

// Config is a validated set of domains. It is immutable and safe for
// concurrent use; the zero value holds no domain.
type Config struct {
	domains map[string]*Domain
	sorted  []*Domain
	files   []string
	rules   int
}

// Domain returns the domain called name, or nil when the config has none.
func (c *Config) Domain(name string) *Domain {
	if c == nil {
		return nil
	}
	return c.domains[name]
}

// Domains returns every domain, sorted by name. The slice is shared: do
// not modify it.
func (c *Config) Domains() []*Domain {
	if c == nil {
		return nil
	}
	return c.sorted
}

// Rules returns the number of rules (descriptors of the config files,
// with or without a rate limit) across all domains.
func (c *Config) Rules() int {
	if c == nil {
		return 0
	}
	return c.rules
}

// Files returns the names of the files the config was read from, sorted.
// The slice is shared: do not modify it.
func (c *Config) Files() []string {
	if c == nil {
		return nil
	}
	return c.files
}

// Dump returns one line per rate limit of every rule, in the spirit of
// envoyproxy/ratelimit's /rlconfig endpoint, sorted by domain and then in
// file order, for example
//
//	edge.remote_address: unit=MINUTE requests_per_unit=10, shadow_mode: false, strategy: fixed_window
//
// A limit whose window is several units adds unit_multiplier=N; an
// unlimited limit prints "unlimited"; a named limit adds ", name: X".
func (c *Config) Dump() []string {
	var out []string
	for _, d := range c.Domains() {
		for _, r := range d.rules {
			for _, l := range r.Limits {
				var b strings.Builder
				b.WriteString(r.Path)
				b.WriteString(": ")
				if l.Unlimited {
					b.WriteString("unlimited")
				} else {
					fmt.Fprintf(&b, "unit=%s", l.Unit)
					if l.UnitMultiplier != 1 {
						fmt.Fprintf(&b, " unit_multiplier=%d", l.UnitMultiplier)
					}
					fmt.Fprintf(&b, " requests_per_unit=%d", l.RequestsPerUnit)
				}
				fmt.Fprintf(&b, ", shadow_mode: %t", r.ShadowMode)
				if l.Strategy != nil {
					fmt.Fprintf(&b, ", strategy: %s", l.Strategy.Name())
				}
				if l.Name != "" {
					fmt.Fprintf(&b, ", name: %s", l.Name)
				}
				out = append(out, b.String())
			}
		}
	}
	return out
}

// Domain is the rule tree of one domain. It is immutable and safe for
// concurrent use.
type Domain struct {
	// Name is the domain's name, as the requests carry it.
	Name string
	// File is the config file that defined the domain.
	File string

	root  level
	rules []*Rule // every rule, depth-first in file order
}

// level is the set of rules at one depth below one parent.
type level struct {
	byKey map[string]*keyGroup
}

// keyGroup holds the rules of one key at one level: the exact values, the
// wildcard rules in file order, and the key-only rule.
type keyGroup struct {
	exact    map[string]*Rule
	wildcard []*Rule
	keyOnly  *Rule
}

// find returns the rule of this level that matches e: exact key and
// value, else the first wildcard rule in file order whose pattern
// matches, else the key-only rule, else nil.
func (l *level) find(e Entry) *Rule {
	g := l.byKey[e.Key]
	if g == nil {
		return nil
	}
	if r, ok := g.exact[e.Value]; ok {
		return r
	}
	for _, r := range g.wildcard {
		if globMatch(r.Value, e.Value) {
			return r
		}
	}
	return g.keyOnly
}

// Match walks the rule tree with a request descriptor's entries and
// returns the rule reached at the depth of the last entry, or nil when
// some level has no matching rule or the request has more entries than
// the tree has levels. A rule without limits may be returned (its Limits
// is empty): a shallower rule's limit never applies to a deeper request.
// exempt reports that some rule along the matched path lists the
// request's value at that level in its exempt list; it is false when r
// is nil. Match does not allocate. A nil Domain (unknown domain) matches
// nothing.
func (d *Domain) Match(entries []Entry) (r *Rule, exempt bool) {
	if d == nil || len(entries) == 0 {
		return nil, false
	}
	lv := &d.root
	for i, e := range entries {
		if lv == nil {
			return nil, false
		}
		r = lv.find(e)
		if r == nil {
			return nil, false
		}
		if !exempt && r.exempt != nil && r.exempt.match(entries[i].Value) {
			exempt = true
		}
		lv = r.children
	}
	return r, exempt
}

// Rules returns the domain's rules, depth-first in file order. The slice
// is shared: do not modify it.
func (d *Domain) Rules() []*Rule { return d.rules }

// Rule is one descriptor of a config file: a node of the match tree. It is
// immutable and safe for concurrent use.
type Rule struct {
	// Key is the descriptor key.
	Key string
	// Value is the descriptor value: "" for a key-only rule, a pattern
	// when it holds '*'.
	Value string
	// Parent is the rule one level up, nil at the top level.
	Parent *Rule
	// Depth is 0 at the top level.
	Depth int
	// Path is the reference service's stat key of the rule, such as
	// "edge.remote_address.path_/api": the domain, then each level's key,
	// followed by "_value" when the level has a value, joined by dots.
	Path string
	// Limits are the rule's rate limits, in the order of rate_limits (or
	// the one rate_limit); empty when the rule has none.
	Limits []*RateLimit
	// Flags of the reference format.
	ShadowMode, DetailedMetric, ValueToMetric, ShareThreshold, QuotaMode bool
	// Metadata is the rule's free-form metadata; nil when absent.
	Metadata map[string]any
	// Line is the line of the rule's key in its file.
	Line int

	children *level
	exempt   *exemptList
}

// Wildcard reports whether the rule's value is a '*' pattern.
func (r *Rule) Wildcard() bool { return strings.Contains(r.Value, "*") }

// RateLimit is one limit of a rule. It is immutable and safe for
// concurrent use.
type RateLimit struct {
	// Name is the limit's name, which other limits' Replaces refer to.
	Name string
	// Unlimited limits never touch the store; Strategy is nil for them.
	Unlimited bool
	// Replaces are the names of the limits this one replaces.
	Replaces []string
	// Unit, UnitMultiplier and RequestsPerUnit are what Envoy is told in
	// current_limit. Sub-second rate strings ("10/500ms") report SECOND
	// ×1 with RequestsPerUnit scaled to one second, rounded down; the
	// enforced limit is always Limit.
	Unit            Unit
	RequestsPerUnit uint32
	UnitMultiplier  uint32
	// Strategy steps the limit; nil when Unlimited.
	Strategy strategies.Strategy
	// Limit is the prepared limit of Strategy.
	Limit strategies.Limit
	// UID is the throttle uid: a collision-free encoding (see
	// AppendComponent) of the domain, each path level's key and
	// configured value, the strategy name and Index.
	UID string
	// Index is the limit's position in the rule's rate_limits (0 for
	// rate_limit).
	Index int
	// Rule is the rule that holds the limit; nil for an override.
	Rule *Rule
}

// sortDomains fills c.sorted from c.domains.
func (c *Config) sortDomains() {
	c.sorted = make([]*Domain, 0, len(c.domains))
	for _, d := range c.domains {
		c.sorted = append(c.sorted, d)
	}
	sort.Slice(c.sorted, func(i, j int) bool { return c.sorted[i].Name < c.sorted[j].Name })
}
