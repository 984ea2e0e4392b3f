package descriptors

import (
	"fmt"
	"strings"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// burstUsers and debtUsers name the strategies that read Limit.Burst and
// Limit.MaxDebt (see strategies.Limit). Setting burst or max_debt for any
// other strategy is a config error rather than a warning: a setting that
// silently does nothing is a misconfiguration the operator should see.
var (
	burstUsers = map[string]bool{"token_bucket": true, "token_bucket_with_debt": true, "gcra": true}
	debtUsers  = map[string]bool{"token_bucket_with_debt": true}
)

// domainTree builds the match tree of spec s, reporting every problem to
// r. It returns nil when the domain has no name.
func (r *report) domainTree(s *DomainSpec) *Domain {
	r.domain = s.Name
	if s.Name == "" {
		r.errorf(s.Pos.at("domain"), "", "domain must not be empty")
	}
	d := &Domain{Name: s.Name, File: s.Pos.File}
	r.descriptors(d, s.Descriptors, nil, &d.root, "")
	if s.Name == "" {
		return nil
	}
	return d
}

// descriptors builds the specs below parent (nil at the top level) into
// lv. at is the descriptor path of the list's owner.
func (r *report) descriptors(d *Domain, specs []DescriptorSpec, parent *Rule, lv *level, at string) {
	for i := range specs {
		if specs[i].skip {
			continue
		}
		r.descriptor(d, &specs[i], parent, lv, fmt.Sprintf("%s.descriptors[%d]", at, i))
	}
}

// descriptor builds spec s into a rule of lv.
func (r *report) descriptor(d *Domain, s *DescriptorSpec, parent *Rule, lv *level, path string) {
	rule := &Rule{Key: s.Key, Value: s.Value, Parent: parent, Line: s.Pos.Line,
		ShadowMode: s.ShadowMode, DetailedMetric: s.DetailedMetric, ValueToMetric: s.ValueToMetric,
		ShareThreshold: s.ShareThreshold, QuotaMode: s.QuotaMode, Metadata: s.Metadata}
	if parent != nil {
		rule.Depth = parent.Depth + 1
	}
	loc := fmt.Sprintf("%s (key %q)", path[1:], s.Key)
	if s.Key == "" {
		r.errorf(s.Pos.Line, loc, "descriptor key must not be empty")
	}
	seg := s.Key
	if s.Value != "" {
		seg += "_" + s.Value
	}
	if parent != nil {
		rule.Path = parent.Path + "." + seg
	} else {
		rule.Path = d.Name + "." + seg
	}
	if rule.ShareThreshold && !rule.Wildcard() {
		r.errorf(s.Pos.at("share_threshold"), loc, "share_threshold can only be used with a wildcard value (one holding '*'), got value %q", s.Value)
	}
	rule.exempt = r.exempt(s, loc)

	var specs []*RateLimitSpec
	var where []string
	switch {
	case s.RateLimit != nil && len(s.RateLimits) > 0:
		r.errorf(s.Pos.at("rate_limits"), loc, "rate_limit and rate_limits are exclusive: give one limit in rate_limit or several in rate_limits")
	case s.RateLimit != nil:
		specs, where = []*RateLimitSpec{s.RateLimit}, []string{"rate_limit"}
	default:
		for i := range s.RateLimits {
			if !s.RateLimits[i].skip {
				specs = append(specs, &s.RateLimits[i])
				where = append(where, fmt.Sprintf("rate_limits[%d]", i))
			}
		}
	}
	r.limits(d, rule, loc, specs, where)

	r.insert(lv, rule, s.Pos.Line, loc)
	d.rules = append(d.rules, rule)

	if len(s.Descriptors) > 0 {
		rule.children = &level{}
		r.descriptors(d, s.Descriptors, rule, rule.children, path)
		if len(rule.children.byKey) == 0 {
			rule.children = nil
		}
	}
}

// insert adds rule to lv, reporting a duplicate key+value.
func (r *report) insert(lv *level, rule *Rule, line int, loc string) {
	if rule.Key == "" {
		return
	}
	if lv.byKey == nil {
		lv.byKey = map[string]*keyGroup{}
	}
	g := lv.byKey[rule.Key]
	if g == nil {
		g = &keyGroup{}
		lv.byKey[rule.Key] = g
	}
	var prev *Rule
	switch {
	case rule.Value == "":
		prev = g.keyOnly
		if prev == nil {
			g.keyOnly = rule
		}
	case rule.Wildcard():
		for _, w := range g.wildcard {
			if w.Value == rule.Value {
				prev = w
			}
		}
		if prev == nil {
			g.wildcard = append(g.wildcard, rule)
		}
	default:
		prev = g.exact[rule.Value]
		if prev == nil {
			if g.exact == nil {
				g.exact = map[string]*Rule{}
			}
			g.exact[rule.Value] = rule
		}
	}
	switch {
	case prev == nil:
	case prev.Line > 0:
		r.errorf(line, loc, "duplicate descriptor composite key %q (first at line %d)", rule.Path, prev.Line)
	default:
		r.errorf(line, loc, "duplicate descriptor composite key %q", rule.Path)
	}
}

// exempt builds the exempt list of s.
func (r *report) exempt(s *DescriptorSpec, loc string) *exemptList {
	e := &exemptList{}
	for i, entry := range s.Exempt {
		field := fmt.Sprintf("exempt[%d]", i)
		if err := e.add(entry); err != nil {
			r.errorf(s.Pos.at(field), loc, "%s: %s", field, err)
		}
	}
	if e.empty() {
		return nil
	}
	return e
}

// limits builds the limits of rule from specs (where names each one in
// messages) and fills rule.Limits.
func (r *report) limits(d *Domain, rule *Rule, loc string, specs []*RateLimitSpec, where []string) {
	for i, s := range specs {
		for j, rep := range s.Replaces {
			if rep == "" {
				field := fmt.Sprintf("replaces[%d]", j)
				r.errorf(s.Pos.at(field), loc, "%s: %s: name must not be empty", where[i], field)
				continue
			}
			for _, o := range specs {
				if o.Name != "" && o.Name == rep {
					r.errorf(s.Pos.Line, loc, "%s: replaces names %q, a limit of the same descriptor", where[i], rep)
				}
			}
		}
	}
	for i, s := range specs {
		if l := r.limit(d, rule, loc, s, where[i], i); l != nil {
			rule.Limits = append(rule.Limits, l)
		}
	}
}

// nonEmpty returns the names that are not "".
func nonEmpty(names []string) []string {
	var out []string
	for _, n := range names {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// limit builds the RateLimit of spec s, the idx-th limit of rule, or
// returns nil after reporting its problems. where names s in messages.
func (r *report) limit(d *Domain, rule *Rule, loc string, s *RateLimitSpec, where string, idx int) *RateLimit {
	w := where + ": "
	l := &RateLimit{Name: s.Name, Replaces: nonEmpty(s.Replaces), Index: idx, Rule: rule}
	nErr := len(r.errs)
	if s.Unlimited {
		for _, k := range []struct {
			name  string
			given bool
		}{
			{"unit", s.Unit != ""}, {"requests_per_unit", s.RequestsPerUnit != nil}, {"rate", s.Rate != ""},
			{"strategy", s.Strategy != ""}, {"burst", s.Burst != nil}, {"max_debt", s.MaxDebt != nil},
		} {
			if k.given {
				r.errorf(s.Pos.at(k.name), loc, "%sunlimited: true must not be combined with %s", w, k.name)
			}
		}
		if len(r.errs) > nErr {
			return nil
		}
		l.Unlimited = true
		l.UID = ruleUID(d.Name, rule, "", idx)
		return l
	}

	var rate Rate
	switch {
	case s.Rate != "" && (s.Unit != "" || s.RequestsPerUnit != nil):
		r.errorf(s.Pos.at("rate"), loc, "%srate and unit/requests_per_unit are exclusive: give one or the other", w)
	case s.Rate != "":
		var err error
		if rate, err = ParseRate(s.Rate); err != nil {
			r.errorf(s.Pos.at("rate"), loc, "%s%s", w, strings.TrimPrefix(err.Error(), "descriptors: "))
		}
	case s.Unit != "":
		u, ok := ParseUnit(s.Unit)
		if !ok {
			r.errorf(s.Pos.at("unit"), loc, "%sinvalid rate limit unit %q (valid units: second, minute, hour, day, week, month, year)", w, s.Unit)
			break
		}
		rate = Rate{Period: u.Micros(), Unit: u, Multiplier: 1}
		if s.RequestsPerUnit != nil {
			rate.Requests = int64(*s.RequestsPerUnit)
		}
	case s.RequestsPerUnit != nil:
		r.errorf(s.Pos.at("requests_per_unit"), loc, "%srequests_per_unit needs a unit", w)
	default:
		r.errorf(s.Pos.Line, loc, "%sgive unit and requests_per_unit, a rate such as \"100/min\", or unlimited: true", w)
	}

	stratName := strategies.Default
	if s.Strategy != "" {
		stratName = s.Strategy
	}
	strat, ok := strategies.Lookup(stratName)
	if !ok {
		valid := strings.Join(strategies.Names(), ", ")
		if valid == "" {
			valid = "none registered"
		}
		r.errorf(s.Pos.at("strategy"), loc, "%sunknown strategy %q (valid strategies: %s)", w, stratName, valid)
	}
	var burst, debt int64
	if s.Burst != nil {
		burst = *s.Burst
		if burst < 0 || burst > strategies.MaxExact {
			r.errorf(s.Pos.at("burst"), loc, "%sburst: expected a whole number from 0 to %d, got %d", w, int64(strategies.MaxExact), burst)
		}
		if ok && !burstUsers[stratName] {
			r.errorf(s.Pos.at("burst"), loc, "%sburst has no effect with strategy %s (used by gcra, token_bucket, token_bucket_with_debt)", w, stratName)
		}
	}
	if s.MaxDebt != nil {
		debt = *s.MaxDebt
		if debt < 0 || debt > strategies.MaxExact {
			r.errorf(s.Pos.at("max_debt"), loc, "%smax_debt: expected a whole number from 0 to %d, got %d", w, int64(strategies.MaxExact), debt)
		}
		if ok && !debtUsers[stratName] {
			r.errorf(s.Pos.at("max_debt"), loc, "%smax_debt has no effect with strategy %s (used by token_bucket_with_debt)", w, stratName)
		}
	}
	if len(r.errs) > nErr {
		return nil
	}
	lim, err := strat.Prepare(strategies.Limit{Requests: rate.Requests, Period: rate.Period, Burst: burst, MaxDebt: debt})
	if err != nil {
		r.errorf(s.Pos.Line, loc, "%sstrategy %s: %s", w, stratName, err)
		return nil
	}
	l.Unit, l.UnitMultiplier, l.RequestsPerUnit = rate.Unit, rate.Multiplier, rate.RequestsPerUnit()
	l.Strategy, l.Limit = strat, lim
	l.UID = ruleUID(d.Name, rule, stratName, idx)
	return l
}
