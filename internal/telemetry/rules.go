package telemetry

import (
	"math/bits"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// Label values of the per-rule series that are not a rule path or a
// client value.
const (
	// OverrideRule is the rule label of the series counting descriptors
	// that carried their own limit (Envoy's limit override): one series
	// set per domain.
	OverrideRule = "_override_"
	// OtherValue is the value label under which a detailed rule counts
	// the values beyond Options.MaxValueSeries.
	OtherValue = "_other_"
)

// valueSeparator joins the values of a multi-level descriptor in the
// value label.
const valueSeparator = '|'

// ruleCounters are the counters of one (domain, rule, value) series set.
type ruleCounters struct {
	hits, over, near, within, shadow, exempted prometheus.Counter
}

// ruleKey identifies a rule across config reloads.
type ruleKey struct {
	domain, path string
	detailed     bool
}

// ruleEntry holds the resolved counters of one rule: one set when the
// rule is not detailed, else one set per client value, bounded.
type ruleEntry struct {
	domain, path string
	detailed     bool
	plain        *ruleCounters // !detailed

	mu     sync.RWMutex
	values map[string]*ruleCounters // detailed
	other  *ruleCounters            // detailed, created on the first overflow
}

// ruleMetrics are the per-rule counter vectors and the caches that spare
// the hot path any label resolution.
type ruleMetrics struct {
	hits, over, near, within, shadow, exempted *prometheus.CounterVec
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

func newRuleMetrics(maxValues int) *ruleMetrics {
	labels := []string{"domain", "rule", "value"}
	vec := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	return &ruleMetrics{
		hits: vec("envoy_rls_rule_hits_total",
			"Descriptors that matched the rule (or carried a limit override): over_limit + within_limit + exempted."),
		over: vec("envoy_rls_rule_over_limit_total",
			"Descriptors over the rule's limit, shadow-mode ones included."),
		near: vec("envoy_rls_rule_near_limit_total",
			"Allowed descriptors that left at most (1 - near-limit ratio) of the limit's capacity; a subset of within_limit."),
		within: vec("envoy_rls_rule_within_limit_total",
			"Descriptors within the rule's limit (unlimited rules included)."),
		shadow: vec("envoy_rls_rule_shadow_mode_total",
			"Descriptors over the limit of a shadow-mode rule, answered OK; a subset of over_limit."),
		exempted: vec("envoy_rls_rule_exempted_total",
			"Descriptors whose client value the rule exempts: no limit applied."),
		maxValues: maxValues,
		byKey:     map[ruleKey]*ruleEntry{},
	}
}

// ObserveStatuses counts the statuses of one request: st[i] is the
// status of req.Descriptors[i] in domain. Per matched rule it counts
//
//   - envoy_rls_rule_hits_total: every status of a matched rule, except a
//     descriptor whose every limit another rule replaced;
//   - _exempted_total: the client value is exempt (nothing else counted);
//   - _over_limit_total: the code is OverLimit, or a shadow-mode rule was
//     over its limit (then _shadow_mode_total counts it too);
//   - _within_limit_total: every other status, unlimited rules included;
//   - _near_limit_total: a within-limit status with a limit whose
//     Remaining ≤ (1 − NearLimitRatio) × capacity, where capacity is the
//     larger of the limit's Requests and Burst. With the default ratio 0.8
//     and a limit of 10, the requests leaving 2, 1 or 0 are near.
//
// so that hits = over_limit + within_limit + exempted. The series are
// labelled domain, rule (the rule's Path, such as "edge.remote_address")
// and value: empty (which Prometheus treats as no label) unless the rule
// has detailed_metric or value_to_metric, in which case it holds the
// descriptor's values along the rule's path, joined by '|', for at most
// Options.MaxValueSeries distinct values per rule; later ones count under
// value="_other_". Descriptors with a limit override count under
// rule="_override_" of the domain; unmatched descriptors count nowhere.
//
// For a rule seen before, ObserveStatuses does not allocate.
func (m *Metrics) ObserveStatuses(domain string, req *limiter.Request, st []limiter.Status) {
	if m == nil {
		return
	}
	r := m.rules
	for i := range st {
		s := &st[i]
		var e *ruleEntry
		switch {
		case s.Rule != nil:
			if s.Replaced && s.Limit == nil && !s.Unlimited {
				continue // the rule did not apply to this request
			}
			e = r.entry(domain, s.Rule)
		case s.Limit != nil:
			e = r.overrideEntry(domain)
		default:
			continue // no rule matched: no limit, no series
		}
		c := e.plain
		if e.detailed {
			var entries []descriptors.Entry
			if req != nil && i < len(req.Descriptors) {
				entries = req.Descriptors[i].Entries
				if n := s.Rule.Depth + 1; n < len(entries) {
					entries = entries[:n]
				}
			}
			c = e.forValues(r, entries)
		}
		c.hits.Inc()
		switch {
		case s.Exempt:
			c.exempted.Inc()
		case s.Code == limiter.OverLimit:
			c.over.Inc()
		case s.Shadowed:
			c.over.Inc()
			c.shadow.Inc()
		default:
			c.within.Inc()
			if s.Limit != nil && m.near(s.Remaining, s.Limit) {
				c.near.Inc()
			}
		}
	}
}

// near reports whether remaining/capacity ≤ 1 − NearLimitRatio, exactly:
// remaining × 10⁶ ≤ (1 − ratio) × 10⁶ × capacity, in 128-bit arithmetic.
func (m *Metrics) near(remaining uint32, rl *descriptors.RateLimit) bool {
	capacity := max(rl.Limit.Requests, rl.Limit.Burst)
	if capacity <= 0 {
		return true // a limit of 0 has nothing left to give
	}
	hi, lo := bits.Mul64(m.nearComplement, uint64(capacity))
	return hi > 0 || uint64(remaining)*1e6 <= lo
}

// entry returns the counters of rule r of domain, creating them once.
func (r *ruleMetrics) entry(domain string, rule *descriptors.Rule) *ruleEntry {
	if v, ok := r.byRule.Load(rule); ok {
		return v.(*ruleEntry)
	}
	e := r.entryByKey(ruleKey{domain: domain, path: rule.Path, detailed: rule.DetailedMetric || rule.ValueToMetric})
	r.byRule.Store(rule, e)
	return e
}

// overrideEntry returns the override counters of domain.
func (r *ruleMetrics) overrideEntry(domain string) *ruleEntry {
	k := ruleKey{domain: domain, path: OverrideRule}
	r.mu.RLock()
	e, ok := r.byKey[k]
	r.mu.RUnlock()
	if ok {
		return e
	}
	return r.entryByKey(k)
}

// entryByKey returns the entry of k, creating it (and, for a rule that is
// not detailed, its series) when it does not exist.
func (r *ruleMetrics) entryByKey(k ruleKey) *ruleEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.byKey[k]; ok {
		return e
	}
	e := &ruleEntry{domain: validLabel(k.domain), path: validLabel(k.path), detailed: k.detailed}
	if k.detailed {
		e.values = map[string]*ruleCounters{}
	} else {
		e.plain = r.counters(e.domain, e.path, "")
	}
	r.byKey[k] = e
	return e
}

// forgetRules clears the pointer cache, dropping the references to the
// rules of configs no longer served.
func (r *ruleMetrics) forgetRules() { r.byRule.Clear() }

// counters resolves the six counters of one series set.
func (r *ruleMetrics) counters(domain, rule, value string) *ruleCounters {
	return &ruleCounters{
		hits:     r.hits.WithLabelValues(domain, rule, value),
		over:     r.over.WithLabelValues(domain, rule, value),
		near:     r.near.WithLabelValues(domain, rule, value),
		within:   r.within.WithLabelValues(domain, rule, value),
		shadow:   r.shadow.WithLabelValues(domain, rule, value),
		exempted: r.exempted.WithLabelValues(domain, rule, value),
	}
}

// forValues returns the counters of the value the entries make, bounded
// by maxValues distinct values.
func (e *ruleEntry) forValues(r *ruleMetrics, entries []descriptors.Entry) *ruleCounters {
	var buf [128]byte
	var key []byte
	var single string
	multi := len(entries) > 1
	if multi {
		key = buf[:0]
		for i, en := range entries {
			if i > 0 {
				key = append(key, valueSeparator)
			}
			key = append(key, en.Value...)
		}
	} else if len(entries) == 1 {
		single = entries[0].Value
	}
	e.mu.RLock()
	var c *ruleCounters
	if multi {
		c = e.values[string(key)] // no allocation: the compiler looks up the bytes
	} else {
		c = e.values[single]
	}
	e.mu.RUnlock()
	if c != nil {
		return c
	}
	if multi {
		single = string(key)
	} else {
		single = strings.Clone(single) // do not pin the request's memory
	}
	return e.addValue(r, single)
}

// addValue creates the series of value, or returns the overflow series
// when the rule already has maxValues values.
func (e *ruleEntry) addValue(r *ruleMetrics, value string) *ruleCounters {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.values[value]; ok {
		return c
	}
	if len(e.values) >= r.maxValues {
		if e.other == nil {
			e.other = r.counters(e.domain, e.path, OtherValue)
		}
		return e.other
	}
	c := r.counters(e.domain, e.path, validLabel(value))
	e.values[value] = c
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
