package descriptors

import (
	"fmt"
	"math"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

var descriptorKeys = []string{
	"key", "value", "rate_limit", "rate_limits", "descriptors", "shadow_mode", "detailed_metric",
	"value_to_metric", "share_threshold", "quota_mode", "metadata", "exempt",
}

var rateLimitKeys = []string{
	"unit", "requests_per_unit", "unlimited", "name", "replaces", "rate", "strategy", "burst", "max_debt",
}

// A rule may set only the parameters its strategy reads (the strategy
// registry, strategies.Reads): setting burst or max_debt for any other
// strategy is a config error rather than a warning, since a setting that
// silently does nothing is a misconfiguration the operator should see.

// descriptors parses the list n of descriptors below parent (nil at the
// top level) into lv. at is the descriptor path of the list's owner.
func (p *parser) descriptors(d *Domain, n *yaml.Node, parent *Rule, lv *level, at string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n.Line, strings.TrimPrefix(at, "."), "descriptors: expected a list, got %s", kindName(n))
		return
	}
	for i, item := range n.Content {
		item = resolve(item)
		path := fmt.Sprintf("%s.descriptors[%d]", at, i)
		loc := path[1:]
		if item.Kind != yaml.MappingNode {
			p.errorf(item.Line, loc, "expected a map with key and value, got %s", kindName(item))
			continue
		}
		p.descriptor(d, item, parent, lv, path)
	}
}

// descriptor parses one descriptor map n into a rule of lv.
func (p *parser) descriptor(d *Domain, n *yaml.Node, parent *Rule, lv *level, path string) {
	r := &Rule{Parent: parent, Line: n.Line}
	if parent != nil {
		r.Depth = parent.Depth + 1
	}
	// The key names the descriptor in every message, so read it first.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := resolve(n.Content[i]); k.Kind == yaml.ScalarNode && k.Value == "key" {
			r.Key, _ = p.scalar(resolve(n.Content[i+1]), path[1:], "key")
			break
		}
	}
	loc := fmt.Sprintf("%s (key %q)", path[1:], r.Key)
	f := p.fields(n, loc, "", descriptorKeys...)
	if v := f["value"]; v != nil {
		r.Value, _ = p.scalar(v, loc, "value")
	}
	if r.Key == "" {
		p.errorf(n.Line, loc, "descriptor key must not be empty")
	}
	seg := r.Key
	if r.Value != "" {
		seg += "_" + r.Value
	}
	if parent != nil {
		r.Path = parent.Path + "." + seg
	} else {
		r.Path = d.Name + "." + seg
	}
	for _, flag := range []struct {
		name string
		dst  *bool
	}{
		{"shadow_mode", &r.ShadowMode}, {"detailed_metric", &r.DetailedMetric}, {"value_to_metric", &r.ValueToMetric},
		{"share_threshold", &r.ShareThreshold}, {"quota_mode", &r.QuotaMode},
	} {
		if v := f[flag.name]; v != nil {
			*flag.dst = p.boolean(v, loc, flag.name)
		}
	}
	if r.ShareThreshold && !r.Wildcard() {
		p.errorf(f["share_threshold"].Line, loc, "share_threshold can only be used with a wildcard value (one holding '*'), got value %q", r.Value)
	}
	if v := f["metadata"]; v != nil && !isNull(v) {
		if v.Kind != yaml.MappingNode {
			p.errorf(v.Line, loc, "metadata: expected a map, got %s", kindName(v))
		} else if err := v.Decode(&r.Metadata); err != nil {
			p.errorf(v.Line, loc, "metadata: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
	}
	if v := f["exempt"]; v != nil {
		r.exempt = p.exempt(v, loc)
	}

	rl, rls := f["rate_limit"], f["rate_limits"]
	var specs []*yaml.Node
	var specLoc []string
	switch {
	case rl != nil && rls != nil:
		p.errorf(rls.Line, loc, "rate_limit and rate_limits are exclusive: give one limit in rate_limit or several in rate_limits")
	case rl != nil && !isNull(rl):
		specs, specLoc = []*yaml.Node{rl}, []string{"rate_limit"}
	case rls != nil && !isNull(rls):
		if rls.Kind != yaml.SequenceNode {
			p.errorf(rls.Line, loc, "rate_limits: expected a list of rate_limit maps, got %s", kindName(rls))
			break
		}
		for i, item := range rls.Content {
			specs = append(specs, resolve(item))
			specLoc = append(specLoc, fmt.Sprintf("rate_limits[%d]", i))
		}
	}
	p.limits(d, r, loc, specs, specLoc)

	p.insert(lv, r, n.Line, loc)
	d.rules = append(d.rules, r)

	if v := f["descriptors"]; v != nil && !isNull(v) {
		r.children = &level{}
		p.descriptors(d, v, r, r.children, path)
		if len(r.children.byKey) == 0 {
			r.children = nil
		}
	}
}

// insert adds r to lv, reporting a duplicate key+value.
func (p *parser) insert(lv *level, r *Rule, line int, loc string) {
	if r.Key == "" {
		return
	}
	if lv.byKey == nil {
		lv.byKey = map[string]*keyGroup{}
	}
	g := lv.byKey[r.Key]
	if g == nil {
		g = &keyGroup{}
		lv.byKey[r.Key] = g
	}
	var prev *Rule
	switch {
	case r.Value == "":
		prev = g.keyOnly
		if prev == nil {
			g.keyOnly = r
		}
	case r.Wildcard():
		for _, w := range g.wildcard {
			if w.Value == r.Value {
				prev = w
			}
		}
		if prev == nil {
			g.wildcard = append(g.wildcard, r)
		}
	default:
		prev = g.exact[r.Value]
		if prev == nil {
			if g.exact == nil {
				g.exact = map[string]*Rule{}
			}
			g.exact[r.Value] = r
		}
	}
	if prev != nil {
		p.errorf(line, loc, "duplicate descriptor composite key %q (first at line %d)", r.Path, prev.Line)
	}
}

// exempt parses an exempt list.
func (p *parser) exempt(n *yaml.Node, loc string) *exemptList {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n.Line, loc, "exempt: expected a list of values, patterns or CIDR blocks, got %s", kindName(n))
		return nil
	}
	e := &exemptList{}
	for i, item := range n.Content {
		item = resolve(item)
		s, ok := p.scalar(item, loc, fmt.Sprintf("exempt[%d]", i))
		if !ok {
			continue
		}
		if err := e.add(s); err != nil {
			p.errorf(item.Line, loc, "exempt[%d]: %s", i, err)
		}
	}
	if e.empty() {
		return nil
	}
	return e
}

// limitSpec is one rate_limit map as written.
type limitSpec struct {
	line     int
	where    string
	f        map[string]*yaml.Node
	name     string
	replaces []string
}

// limits parses the rate_limit maps of rule r and fills r.Limits.
func (p *parser) limits(d *Domain, r *Rule, loc string, nodes []*yaml.Node, where []string) {
	specs := make([]*limitSpec, 0, len(nodes))
	for i, n := range nodes {
		if n.Kind != yaml.MappingNode {
			p.errorf(n.Line, loc, "%s: expected a map, got %s", where[i], kindName(n))
			continue
		}
		s := &limitSpec{line: n.Line, where: where[i], f: p.fields(n, loc, where[i]+": ", rateLimitKeys...)}
		if v := s.f["name"]; v != nil {
			s.name, _ = p.scalar(v, loc, where[i]+": name")
		}
		if v := s.f["replaces"]; v != nil && !isNull(v) {
			s.replaces = p.replaces(v, loc, where[i])
		}
		specs = append(specs, s)
	}
	for _, s := range specs {
		for _, rep := range s.replaces {
			for _, o := range specs {
				if o.name != "" && o.name == rep {
					p.errorf(s.line, loc, "%s: replaces names %q, a limit of the same descriptor", s.where, rep)
				}
			}
		}
	}
	for i, s := range specs {
		if l := p.limit(d, r, loc, s, i); l != nil {
			r.Limits = append(r.Limits, l)
		}
	}
}

// replaces parses a replaces list: [{name: X}, ...].
func (p *parser) replaces(n *yaml.Node, loc, where string) []string {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n.Line, loc, "%s: replaces: expected a list of {name: ...} maps, got %s", where, kindName(n))
		return nil
	}
	var out []string
	for i, item := range n.Content {
		item = resolve(item)
		w := fmt.Sprintf("%s: replaces[%d]: ", where, i)
		if item.Kind != yaml.MappingNode {
			p.errorf(item.Line, loc, "%sexpected a map with name, got %s", w, kindName(item))
			continue
		}
		f := p.fields(item, loc, w, "name")
		name := ""
		if v := f["name"]; v != nil {
			name, _ = p.scalar(v, loc, w+"name")
		}
		if name == "" {
			p.errorf(item.Line, loc, "%sname must not be empty", w)
			continue
		}
		out = append(out, name)
	}
	return out
}

// limit builds the RateLimit of spec s, the idx-th limit of rule r, or
// returns nil after reporting its problems.
func (p *parser) limit(d *Domain, r *Rule, loc string, s *limitSpec, idx int) *RateLimit {
	f, w := s.f, s.where+": "
	l := &RateLimit{Name: s.name, Replaces: s.replaces, Index: idx, Rule: r}
	nErr := len(p.errs)
	unlimited := false
	if v := f["unlimited"]; v != nil {
		unlimited = p.boolean(v, loc, w+"unlimited")
	}
	if unlimited {
		for _, k := range []string{"unit", "requests_per_unit", "rate", "strategy", "burst", "max_debt"} {
			if v := f[k]; v != nil {
				p.errorf(v.Line, loc, "%sunlimited: true must not be combined with %s", w, k)
			}
		}
		if len(p.errs) > nErr {
			return nil
		}
		l.Unlimited = true
		l.UID = ruleUID(d.Name, r, "", idx)
		return l
	}

	var rate Rate
	unitN, rpuN, rateN := f["unit"], f["requests_per_unit"], f["rate"]
	switch {
	case rateN != nil && (unitN != nil || rpuN != nil):
		p.errorf(rateN.Line, loc, "%srate and unit/requests_per_unit are exclusive: give one or the other", w)
	case rateN != nil:
		if txt, ok := p.scalar(rateN, loc, w+"rate"); ok {
			var err error
			if rate, err = ParseRate(txt); err != nil {
				p.errorf(rateN.Line, loc, "%s%s", w, strings.TrimPrefix(err.Error(), "descriptors: "))
			}
		}
	case unitN != nil:
		txt, _ := p.scalar(unitN, loc, w+"unit")
		u, ok := ParseUnit(txt)
		if !ok {
			p.errorf(unitN.Line, loc, "%sinvalid rate limit unit %q (valid units: second, minute, hour, day, week, month, year)", w, txt)
			break
		}
		rate = Rate{Period: u.Micros(), Unit: u, Multiplier: 1}
		if rpuN != nil {
			rate.Requests, _ = p.integer(rpuN, loc, w+"requests_per_unit", math.MaxUint32)
		}
	case rpuN != nil:
		p.errorf(rpuN.Line, loc, "%srequests_per_unit needs a unit", w)
	default:
		p.errorf(s.line, loc, "%sgive unit and requests_per_unit, a rate such as \"100/min\", or unlimited: true", w)
	}

	stratName := strategies.Default
	if v := f["strategy"]; v != nil {
		stratName, _ = p.scalar(v, loc, w+"strategy")
	}
	strat, ok := strategies.Lookup(stratName)
	if !ok {
		valid := strings.Join(strategies.Names(), ", ")
		if valid == "" {
			valid = "none registered"
		}
		line := s.line
		if v := f["strategy"]; v != nil {
			line = v.Line
		}
		p.errorf(line, loc, "%sunknown strategy %q (valid strategies: %s)", w, stratName, valid)
	}
	var burst, debt int64
	if v := f["burst"]; v != nil {
		burst, _ = p.integer(v, loc, w+"burst", strategies.MaxExact)
		if ok && !strategies.Reads(stratName, "burst") {
			p.errorf(v.Line, loc, "%sburst has no effect with strategy %s (used by %s)", w, stratName, strings.Join(strategies.Users("burst"), ", "))
		}
	}
	if v := f["max_debt"]; v != nil {
		debt, _ = p.integer(v, loc, w+"max_debt", strategies.MaxExact)
		if ok && !strategies.Reads(stratName, "max_debt") {
			p.errorf(v.Line, loc, "%smax_debt has no effect with strategy %s (used by %s)", w, stratName, strings.Join(strategies.Users("max_debt"), ", "))
		}
	}
	if len(p.errs) > nErr {
		return nil
	}
	lim, err := strat.Prepare(strategies.Limit{Requests: rate.Requests, Period: rate.Period, Burst: burst, MaxDebt: debt})
	if err != nil {
		p.errorf(s.line, loc, "%sstrategy %s: %s", w, stratName, err)
		return nil
	}
	l.Unit, l.UnitMultiplier, l.RequestsPerUnit = rate.Unit, rate.Multiplier, rate.RequestsPerUnit()
	l.Strategy, l.Limit = strat, lim
	l.UID = ruleUID(d.Name, r, stratName, idx)
	return l
}
