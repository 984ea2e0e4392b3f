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

// descriptors parses the YAML list n of descriptors into specs. at is the
// descriptor path of the list's owner. An item that is not a map is
// reported and kept as a skipped spec, so later items keep their index.
func (p *parser) descriptors(n *yaml.Node, at string) []DescriptorSpec {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n.Line, strings.TrimPrefix(at, "."), "descriptors: expected a list, got %s", kindName(n))
		return nil
	}
	out := make([]DescriptorSpec, len(n.Content))
	for i, item := range n.Content {
		item = resolve(item)
		path := fmt.Sprintf("%s.descriptors[%d]", at, i)
		if item.Kind != yaml.MappingNode {
			p.errorf(item.Line, path[1:], "expected a map with key and value, got %s", kindName(item))
			out[i].skip = true
			continue
		}
		p.descriptor(&out[i], item, path)
	}
	return out
}

// descriptor parses the descriptor map n into s.
func (p *parser) descriptor(s *DescriptorSpec, n *yaml.Node, path string) {
	s.Pos.Line = n.Line
	// The key names the descriptor in every message, so read it first.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := resolve(n.Content[i]); k.Kind == yaml.ScalarNode && k.Value == "key" {
			s.Key, _ = p.scalar(resolve(n.Content[i+1]), path[1:], "key")
			break
		}
	}
	loc := fmt.Sprintf("%s (key %q)", path[1:], s.Key)
	f := p.fields(n, loc, "", descriptorKeys...)
	if v := f["value"]; v != nil {
		s.Value, _ = p.scalar(v, loc, "value")
	}
	for _, flag := range []struct {
		name string
		dst  *bool
	}{
		{"shadow_mode", &s.ShadowMode}, {"detailed_metric", &s.DetailedMetric}, {"value_to_metric", &s.ValueToMetric},
		{"share_threshold", &s.ShareThreshold}, {"quota_mode", &s.QuotaMode},
	} {
		if v := f[flag.name]; v != nil {
			*flag.dst = p.boolean(v, loc, flag.name)
			s.Pos.setLine(flag.name, v.Line)
		}
	}
	if v := f["metadata"]; v != nil && !isNull(v) {
		if v.Kind != yaml.MappingNode {
			p.errorf(v.Line, loc, "metadata: expected a map, got %s", kindName(v))
		} else if err := v.Decode(&s.Metadata); err != nil {
			p.errorf(v.Line, loc, "metadata: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
	}
	if v := f["exempt"]; v != nil {
		p.exempt(s, v, loc)
	}

	rl, rls := f["rate_limit"], f["rate_limits"]
	switch {
	case rl != nil && rls != nil:
		p.errorf(rls.Line, loc, "rate_limit and rate_limits are exclusive: give one limit in rate_limit or several in rate_limits")
	case rl != nil && !isNull(rl):
		if rl.Kind != yaml.MappingNode {
			p.errorf(rl.Line, loc, "rate_limit: expected a map, got %s", kindName(rl))
			break
		}
		s.RateLimit = p.rateLimit(rl, loc, "rate_limit")
	case rls != nil && !isNull(rls):
		if rls.Kind != yaml.SequenceNode {
			p.errorf(rls.Line, loc, "rate_limits: expected a list of rate_limit maps, got %s", kindName(rls))
			break
		}
		s.RateLimits = make([]RateLimitSpec, len(rls.Content))
		for i, item := range rls.Content {
			item, where := resolve(item), fmt.Sprintf("rate_limits[%d]", i)
			if item.Kind != yaml.MappingNode {
				p.errorf(item.Line, loc, "%s: expected a map, got %s", where, kindName(item))
				s.RateLimits[i].skip = true
				continue
			}
			s.RateLimits[i] = *p.rateLimit(item, loc, where)
		}
	}
	if v := f["descriptors"]; v != nil && !isNull(v) {
		s.Descriptors = p.descriptors(v, path)
	}
}

// setLine records the line of field.
func (p *Pos) setLine(field string, line int) {
	if p.Fields == nil {
		p.Fields = map[string]int{}
	}
	p.Fields[field] = line
}

// exempt parses an exempt list into s.Exempt.
func (p *parser) exempt(s *DescriptorSpec, n *yaml.Node, loc string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n.Line, loc, "exempt: expected a list of values, patterns or CIDR blocks, got %s", kindName(n))
		return
	}
	for i, item := range n.Content {
		item = resolve(item)
		v, ok := p.scalar(item, loc, fmt.Sprintf("exempt[%d]", i))
		if !ok {
			continue
		}
		s.Pos.setLine(fmt.Sprintf("exempt[%d]", len(s.Exempt)), item.Line)
		s.Exempt = append(s.Exempt, v)
	}
}

// rateLimit parses one rate_limit map n; where names it in messages.
func (p *parser) rateLimit(n *yaml.Node, loc, where string) *RateLimitSpec {
	s := &RateLimitSpec{Pos: Pos{Line: n.Line}}
	w := where + ": "
	f := p.fields(n, loc, w, rateLimitKeys...)
	for k, v := range f {
		s.Pos.setLine(k, v.Line)
	}
	if v := f["name"]; v != nil {
		s.Name, _ = p.scalar(v, loc, w+"name")
	}
	if v := f["replaces"]; v != nil && !isNull(v) {
		p.replaces(s, v, loc, where)
	}
	if v := f["unlimited"]; v != nil {
		s.Unlimited = p.boolean(v, loc, w+"unlimited")
	}
	for _, k := range []struct {
		name string
		dst  *string
	}{{"unit", &s.Unit}, {"rate", &s.Rate}, {"strategy", &s.Strategy}} {
		if v := f[k.name]; v != nil {
			*k.dst, _ = p.scalar(v, loc, w+k.name)
		}
	}
	if v := f["requests_per_unit"]; v != nil {
		// A bad number is reported here and counts as 0, still given.
		rpu, _ := p.integer(v, loc, w+"requests_per_unit", math.MaxUint32)
		u := uint32(rpu)
		s.RequestsPerUnit = &u
	}
	if v := f["burst"]; v != nil {
		if b, ok := p.integer(v, loc, w+"burst", strategies.MaxExact); ok {
			s.Burst = &b
		}
	}
	if v := f["max_debt"]; v != nil {
		if d, ok := p.integer(v, loc, w+"max_debt", strategies.MaxExact); ok {
			s.MaxDebt = &d
		}
	}
	return s
}

// replaces parses a replaces list, [{name: X}, ...], into s.Replaces. An
// empty name is kept for the builder to report.
func (p *parser) replaces(s *RateLimitSpec, n *yaml.Node, loc, where string) {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n.Line, loc, "%s: replaces: expected a list of {name: ...} maps, got %s", where, kindName(n))
		return
	}
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
		s.Pos.setLine(fmt.Sprintf("replaces[%d]", len(s.Replaces)), item.Line)
		s.Replaces = append(s.Replaces, name)
	}
}
