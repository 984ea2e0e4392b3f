package telemetry

import (
	"math"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// Label values of the per-rule series that are not a stats key.
const (
	// OverrideRule is the rule label of the series that counts, per
	// domain, the limit-override descriptors beyond Options.MaxValueSeries
	// distinct stats keys (with value="_other_").
	OverrideRule = "_override_"
	// OtherValue is the value label of the series that counts, per rule,
	// the stats keys beyond Options.MaxValueSeries.
	OtherValue = "_other_"
)

// ruleCounters are the counters of one stats key: envoy-rls's own and,
// with Options.ReferenceMetrics, the reference service's.
type ruleCounters struct {
	hits, over, near, within, shadow, exempted prometheus.Counter
	ref                                        *refCounters
}

// ruleKey identifies a rule across config reloads.
type ruleKey struct {
	domain, path string
	dynamic      bool
}

// ruleEntry holds the resolved counters of one rule: one set when its
// stats key does not depend on the request, else one set per stats key,
// bounded.
type ruleEntry struct {
	domain, path string
	dynamic      bool
	plain        *ruleCounters // !dynamic

	mu     sync.RWMutex
	values map[string]*ruleCounters // dynamic, by stats key
	other  *ruleCounters            // dynamic, created on the first overflow
}

// ruleMetrics are the per-rule counter vectors and the caches that spare
// the hot path any label resolution.
type ruleMetrics struct {
	hits, over, near, within, shadow, exempted *prometheus.CounterVec
	ref                                        *refMetrics // nil unless ReferenceMetrics
	maxValues                                  int

	// byRule maps a *descriptors.Rule to its *ruleEntry: a lookup without
	// allocation. It is cleared when a new config is loaded.
	byRule sync.Map
	// byKey maps a rule's identity to its entry, so that the rules of a
	// reloaded config find their series again; it also holds the override
	// entries, one per domain.
	mu    sync.RWMutex
	byKey map[ruleKey]*ruleEntry
}

func newRuleMetrics(maxValues int, ref *refMetrics) *ruleMetrics {
	labels := []string{"domain", "rule", "value"}
	vec := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	return &ruleMetrics{
		hits: vec("envoy_rls_rule_hits_total",
			"Hits of the descriptors that matched the rule (or carried a limit override), by the reference's stats key."),
		over: vec("envoy_rls_rule_over_limit_total",
			"Hits over the rule's limit, shadow-mode ones included, split as the reference splits them."),
		near: vec("envoy_rls_rule_near_limit_total",
			"Hits that took the count above floor(limit × near-limit ratio) without passing the limit."),
		within: vec("envoy_rls_rule_within_limit_total",
			"Hits of allowed descriptors (unlimited rules included)."),
		shadow: vec("envoy_rls_rule_shadow_mode_total",
			"Hits over the limit of a shadow-mode rule, answered OK; a subset of over_limit."),
		exempted: vec("envoy_rls_rule_exempted_total",
			"Hits whose client value the rule exempts: no limit applied."),
		ref:       ref,
		maxValues: maxValues,
		byKey:     map[ruleKey]*ruleEntry{},
	}
}

// ObserveStatuses counts the statuses of one request: st[i] is the
// status of req.Descriptors[i] in domain. Counters count hits (a
// descriptor's hits_addend, else the request's, else 1), not descriptors,
// and split them as envoyproxy/ratelimit does. With L the limit's
// capacity (the larger of its Requests and Burst), N = floor(L × near-limit
// ratio), and before/after the count before and after the request:
//
//   - envoy_rls_rule_hits_total counts every hit of a matched rule, except
//     a descriptor whose every limit another rule replaced;
//   - an allowed descriptor adds its hits to _within_limit_total, and to
//     _near_limit_total the hits that took the count above N (all of them
//     when before ≥ N, else after − N);
//   - a denied descriptor (shadow-mode ones included) adds to
//     _over_limit_total all its hits when before ≥ L; else after − L, and
//     L − max(N, before) to _near_limit_total; a shadow-mode rule adds
//     the same over-limit part to _shadow_mode_total;
//   - an exempt value adds its hits to _exempted_total; an unlimited rule
//     to _within_limit_total.
//
// For a denial, which consumes nothing in envoy-rls, before is what the
// limit had used and after = before + hits, as the reference would have
// counted. The series are labelled domain, rule and value: rule is the
// reference service's stats key (see descriptors.AppendStatsKey), such as
// "edge.remote_address" or, with detailed_metric, "edge.remote_address_1.2.3.4";
// value is empty, except "_other_" on the series that counts, under the
// rule's path, the stats keys of a rule beyond Options.MaxValueSeries.
// Descriptors with a limit override are labelled with the override's
// stats key (domain.key_value...), bounded the same way per domain (rule
// "_override_" for the rest). Unmatched descriptors count nowhere.
//
// For a stats key seen before, ObserveStatuses does not allocate.
func (m *Metrics) ObserveStatuses(domain string, req *limiter.Request, st []limiter.Status) {
	if m == nil {
		return
	}
	r := m.rules
	for i := range st {
		s := &st[i]
		var entries []descriptors.Entry
		if req != nil && i < len(req.Descriptors) {
			entries = req.Descriptors[i].Entries
		}
		var c *ruleCounters
		switch {
		case s.Rule != nil:
			if s.Replaced && s.Limit == nil && !s.Unlimited {
				continue // the rule did not apply to this request
			}
			e := r.entry(domain, s.Rule)
			c = e.plain
			if e.dynamic {
				var buf [256]byte
				c = e.forKey(r, descriptors.AppendStatsKey(buf[:0], domain, s.Rule, entries))
			}
		case s.Limit != nil:
			var buf [256]byte
			c = r.overrideEntry(domain).forKey(r, descriptors.AppendOverrideStatsKey(buf[:0], domain, entries))
		default:
			continue // no rule matched: no limit, no series
		}
		m.count(c, s)
	}
}

// count adds the hits of status s to c, split as the reference does.
func (m *Metrics) count(c *ruleCounters, s *limiter.Status) {
	hits := uint64(max(s.Hits, 0))
	c.hits.Add(float64(hits))
	if s.Exempt {
		c.exempted.Add(float64(hits))
		return
	}
	if s.Limit == nil { // unlimited
		c.within.Add(float64(hits))
		return
	}
	split := m.split(s, hits)
	c.over.Add(float64(split.over))
	c.within.Add(float64(split.within))
	c.near.Add(float64(split.near))
	if s.Shadowed {
		c.shadow.Add(float64(split.over))
	}
	if ref := c.ref; ref != nil {
		ref.totalHits.Add(float64(hits))
		ref.overLimit.Add(float64(split.over))
		ref.nearLimit.Add(float64(split.near))
		ref.withinLimit.Add(float64(split.within))
		if s.Shadowed {
			ref.shadowMode.Add(float64(split.over))
		}
	}
}

// hitSplit is how the hits of one status divide among the statistics.
type hitSplit struct {
	over, near, within uint64
}

// split divides hits as the reference service's base limiter does (see
// ObserveStatuses).
func (m *Metrics) split(s *limiter.Status, hits uint64) hitSplit {
	capacity := uint64(max(s.Limit.Limit.Requests, s.Limit.Limit.Burst, 0))
	nearT := nearThreshold(capacity, m.nearRatio)
	denied := s.Code == limiter.OverLimit || s.Shadowed
	var before, after uint64
	if denied {
		before = capacity - min(uint64(s.Available), capacity)
		after = before + hits
	} else {
		after = capacity - min(uint64(s.Remaining), capacity)
		before = after - min(hits, after)
	}
	var sp hitSplit
	if denied {
		if before >= capacity {
			sp.over = hits
		} else {
			sp.over = after - min(capacity, after)
			sp.near = capacity - max(nearT, before)
		}
		if sp.over == 0 {
			// A strategy that is not a plain counter (a queue, a bucket
			// that leaks) may deny below its capacity: all hits are over.
			sp.over, sp.near = hits, 0
		}
		return sp
	}
	sp.within = hits
	if after > nearT {
		if before >= nearT {
			sp.near = hits
		} else {
			sp.near = after - nearT
		}
	}
	return sp
}

// nearThreshold is the reference's near-limit threshold of a limit:
// floor(limit × ratio), computed in float32 as it computes it, so that
// the same ratio gives the same threshold.
func nearThreshold(limit uint64, ratio float32) uint64 {
	return uint64(math.Floor(float64(float32(limit) * ratio)))
}

// entry returns the counters of rule r of domain, creating them once.
func (r *ruleMetrics) entry(domain string, rule *descriptors.Rule) *ruleEntry {
	if v, ok := r.byRule.Load(rule); ok {
		return v.(*ruleEntry)
	}
	e := r.entryByKey(ruleKey{domain: domain, path: rule.Path, dynamic: rule.StatsKeyDynamic()})
	r.byRule.Store(rule, e)
	return e
}

// overrideEntry returns the override entry of domain.
func (r *ruleMetrics) overrideEntry(domain string) *ruleEntry {
	k := ruleKey{domain: domain, path: OverrideRule, dynamic: true}
	r.mu.RLock()
	e, ok := r.byKey[k]
	r.mu.RUnlock()
	if ok {
		return e
	}
	return r.entryByKey(k)
}

// entryByKey returns the entry of k, creating it (and, for a rule whose
// stats key is its path, its series) when it does not exist.
func (r *ruleMetrics) entryByKey(k ruleKey) *ruleEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.byKey[k]; ok {
		return e
	}
	e := &ruleEntry{domain: validLabel(k.domain), path: validLabel(k.path), dynamic: k.dynamic}
	if k.dynamic {
		e.values = map[string]*ruleCounters{}
	} else {
		e.plain = r.counters(e.domain, e.path, "", e.path)
	}
	r.byKey[k] = e
	return e
}

// forgetRules clears the pointer cache, dropping the references to the
// rules of configs no longer served.
func (r *ruleMetrics) forgetRules() { r.byRule.Clear() }

// counters resolves the counters of one series set: rule and value label
// envoy-rls's own series, statsKey the reference's (empty for an
// overflow series).
func (r *ruleMetrics) counters(domain, rule, value, statsKey string) *ruleCounters {
	c := &ruleCounters{
		hits:     r.hits.WithLabelValues(domain, rule, value),
		over:     r.over.WithLabelValues(domain, rule, value),
		near:     r.near.WithLabelValues(domain, rule, value),
		within:   r.within.WithLabelValues(domain, rule, value),
		shadow:   r.shadow.WithLabelValues(domain, rule, value),
		exempted: r.exempted.WithLabelValues(domain, rule, value),
	}
	if r.ref != nil {
		c.ref = r.ref.forStatsKey(domain, statsKey)
	}
	return c
}

// forKey returns the counters of one stats key of a dynamic entry,
// bounded by maxValues distinct keys.
func (e *ruleEntry) forKey(r *ruleMetrics, key []byte) *ruleCounters {
	e.mu.RLock()
	c := e.values[string(key)] // no allocation: the compiler looks up the bytes
	e.mu.RUnlock()
	if c != nil {
		return c
	}
	return e.addKey(r, string(key))
}

// addKey creates the series of key, or returns the overflow series when
// the entry already has maxValues keys.
func (e *ruleEntry) addKey(r *ruleMetrics, key string) *ruleCounters {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.values[key]; ok {
		return c
	}
	if len(e.values) >= r.maxValues {
		if e.other == nil {
			e.other = r.counters(e.domain, e.path, OtherValue, "")
		}
		return e.other
	}
	label := validLabel(key)
	c := r.counters(e.domain, label, "", label)
	e.values[key] = c
	return c
}

// validLabel replaces invalid UTF-8, which Prometheus refuses in a label
// value.
func validLabel(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
