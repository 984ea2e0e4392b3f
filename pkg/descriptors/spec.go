package descriptors

import (
	"errors"
	"fmt"
	"sort"
)

// DomainSpec is the rules of one domain as a config source states them,
// before validation. It is the model that every source produces: Parse
// turns YAML files into DomainSpecs, the xDS source turns RateLimitConfig
// resources into them, and Build validates them and makes the match tree.
// Nothing in it depends on where the rules came from, except the optional
// positions used in error messages.
type DomainSpec struct {
	// Name is the domain, as requests carry it.
	Name string
	// Descriptors are the top-level descriptors, in source order.
	Descriptors []DescriptorSpec
	// Pos is where the domain was defined: Pos.File names the file, and
	// Pos.Line the line of the domain key. The zero Pos is fine.
	Pos Pos
}

// Pos is an optional source position. A source with files sets File (on
// the DomainSpec), Line and the lines of single fields; a source without
// files (xDS) leaves Pos zero, and its error messages then name only the
// domain and the descriptor path.
type Pos struct {
	// File is the file that defined the domain; only read on DomainSpec.
	File string
	// Line is the line of the spec itself; 0 when unknown.
	Line int
	// Fields holds the lines of named fields where they differ from Line,
	// such as "unit", "rate", "replaces[0]" or "exempt[2]"; may be nil.
	Fields map[string]int
}

// at returns the line of field, or p.Line when the field has none.
func (p Pos) at(field string) int {
	if l, ok := p.Fields[field]; ok {
		return l
	}
	return p.Line
}

// DescriptorSpec is one descriptor (one node of the rule tree) as a
// source states it. Its field names follow envoyproxy/ratelimit's format;
// RateLimits and Exempt are envoy-rls's extensions.
type DescriptorSpec struct {
	// Key is the descriptor key; Value the optional value ("" for a
	// key-only rule), a '*' pattern when it holds '*'.
	Key, Value string
	// RateLimit is the descriptor's one limit, nil when absent.
	RateLimit *RateLimitSpec
	// RateLimits are several limits; exclusive with RateLimit.
	RateLimits []RateLimitSpec
	// Descriptors are the nested descriptors, in source order.
	Descriptors []DescriptorSpec
	// Flags of the reference format.
	ShadowMode, DetailedMetric, ValueToMetric, ShareThreshold, QuotaMode bool
	// Metadata is free-form data passed on in the dynamic metadata.
	Metadata map[string]any
	// Exempt are exact values, '*' patterns and CIDR blocks whose
	// requests skip the limits.
	Exempt []string
	// Pos is the position of the descriptor (its map in a YAML file).
	Pos Pos

	// skip marks an item a parser already reported as unusable; it keeps
	// the index of the items after it.
	skip bool
}

// RateLimitSpec is one rate limit as a source states it: either
// Unlimited, or Unit and RequestsPerUnit, or a Rate string, plus the
// optional Strategy and its parameters. An empty string and a nil pointer
// mean "not given".
type RateLimitSpec struct {
	// Name is the limit's name, which other limits' Replaces refer to.
	Name string
	// Replaces names the limits this one replaces.
	Replaces []string
	// Unlimited limits never touch the store.
	Unlimited bool
	// Unit is a unit name: second, minute, hour, day, week, month or
	// year, in any case.
	Unit string
	// RequestsPerUnit is the number of requests per Unit.
	RequestsPerUnit *uint32
	// Rate is a rate string such as "100/min" (see ParseRate); exclusive
	// with Unit and RequestsPerUnit.
	Rate string
	// Strategy names the strategy; "" means strategies.Default.
	Strategy string
	// Burst and MaxDebt are the strategy's parameters.
	Burst, MaxDebt *int64
	// Pos is the position of the limit (its map in a YAML file).
	Pos Pos

	skip bool
}

// Build validates domain specs and builds a Config from them. It is the
// one builder behind every source (Parse builds YAML files with it).
// Every problem of every spec is reported at once: the error wraps
// ErrInvalidConfig and joins one *Error per problem, in spec order.
// Problems of a spec without positions name the domain and the
// descriptor path only. A domain defined twice is an error.
func Build(specs []DomainSpec) (*Config, error) {
	c := &Config{domains: map[string]*Domain{}}
	files := map[string]bool{}
	definedIn := map[string]string{}
	var errs []error
	for i := range specs {
		s := &specs[i]
		if s.Pos.File != "" && !files[s.Pos.File] {
			files[s.Pos.File] = true
			c.files = append(c.files, s.Pos.File)
		}
		r := &report{file: s.Pos.File, domain: s.Name}
		c.add(r, s, definedIn)
		errs = append(errs, r.errs...)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w:\n%w", ErrInvalidConfig, errors.Join(errs...))
	}
	sort.Strings(c.files)
	c.sortDomains()
	return c, nil
}

// add builds spec s into c, reporting its problems and a domain already
// defined (in definedIn: domain → the file that first defined it, valid
// or not) to r. The domain is added only when r has no problem.
func (c *Config) add(r *report, s *DomainSpec, definedIn map[string]string) {
	d := r.domainTree(s)
	if d == nil {
		return
	}
	if prev, dup := definedIn[d.Name]; dup {
		if prev != "" {
			r.errorf(s.Pos.at("domain"), "", "domain %q is already defined in %s", d.Name, prev)
		} else {
			r.errorf(s.Pos.at("domain"), "", "domain %q is defined twice", d.Name)
		}
		return
	}
	definedIn[d.Name] = s.Pos.File
	if len(r.errs) == 0 {
		c.domains[d.Name] = d
		c.rules += len(d.rules)
	}
}

// report collects the problems of one file or one spec.
type report struct {
	file   string
	domain string
	errs   []error
}

func (r *report) errorf(line int, path, format string, args ...any) {
	r.errs = append(r.errs, &Error{File: r.file, Line: line, Domain: r.domain, Path: path, Msg: fmt.Sprintf(format, args...)})
}
