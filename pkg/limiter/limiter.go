// Package limiter answers one rate-limit request: it matches each request
// descriptor against the loaded rules (pkg/descriptors), builds the store
// key of every matched limit from its throttle uid and the client's
// identifier, applies all of them to a Store in one call, and turns the
// decisions into per-descriptor statuses. It is independent of gRPC: the
// server converts protos to Request and Status values.
package limiter

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// Code is the outcome of one descriptor.
type Code uint8

// Codes of a Status.
const (
	OK Code = iota
	OverLimit
)

// Override is a request descriptor's own limit (Envoy's
// RateLimitDescriptor.limit), used instead of the rules when the
// descriptor's domain exists.
type Override struct {
	RequestsPerUnit uint32
	Unit            descriptors.Unit
	Multiplier      uint32 // 0 or 1: one unit
}

// Descriptor is one request descriptor.
type Descriptor struct {
	Entries []descriptors.Entry
	// HitsSet reports that the descriptor carries its own hits_addend,
	// which then overrides the request's (0 meaning check only).
	HitsSet bool
	Hits    uint64
	// Negative refunds the hits instead of consuming them.
	Negative bool
	Override *Override
}

// Request is one ShouldRateLimit call.
type Request struct {
	Domain      string
	Descriptors []Descriptor
	// HitsAddend is the request's hits; 0 means 1.
	HitsAddend uint32
}

// Status is the answer for one descriptor.
type Status struct {
	Code Code
	// Limit is the limit the status reports (the tightest one when a rule
	// has several); nil when no limit applies.
	Limit *descriptors.RateLimit
	// Rule is the matched rule (nil for no match and for overrides).
	Rule *descriptors.Rule
	// Remaining, Reset and RetryAfter come from the strategy's decision
	// (Reset and RetryAfter in microseconds). Remaining is MaxUint32 for
	// an unlimited rule and 0 for every denial (a shadow-mode one
	// included, and one whose hits exceed what the limit can ever admit),
	// as the reference service reports it.
	Remaining  uint32
	Reset      int64
	RetryAfter int64
	// Available is what the reported limit had left after this request,
	// as its strategy tells: unlike Remaining, a denial reports what it
	// still had (a denial consumes nothing). Statistics use it to split a
	// request's hits as the reference service does.
	Available uint32
	// Hits are the hits the descriptor asked for (negative for a refund);
	// set for every descriptor that matched a rule or carried an override.
	Hits int64
	// Exempt reports that the client value is exempt: no store access.
	Exempt bool
	// Unlimited reports that the rule is unlimited: no store access.
	Unlimited bool
	// Shadowed reports that a shadow-mode rule was over its limit but
	// answered OK.
	Shadowed bool
	// Replaced reports that the rule was skipped because another matched
	// rule replaces it.
	Replaced bool
	// Exceeds reports hits larger than the limit can ever admit.
	Exceeds bool
	// QuotaMode reports that the matched rule is in quota mode: its
	// status tells whether the quota is spent, but it denies the request
	// only when every quota-mode descriptor of the request is over.
	QuotaMode bool
}

// Options configure a Limiter. Store is required.
type Options struct {
	Store Store
	// KeyPrefix namespaces every store key (default "envoy-rls:").
	KeyPrefix string
	// Now is the clock (default time.Now); the Limiter reads it once per
	// request and passes the time down.
	Now func() time.Time
	// ShadowMode answers OK for every descriptor while still counting
	// (the reference service's global shadow mode).
	ShadowMode bool
}

// Limiter serves rate-limit requests against the current rules and a
// Store. It is safe for concurrent use; SetConfig swaps the rules
// atomically without disturbing requests in flight.
type Limiter struct {
	cfg    atomic.Pointer[descriptors.Config]
	store  Store
	prefix string
	now    func() time.Time
	shadow bool
	pool   sync.Pool // *scratch
}

// New returns a Limiter serving cfg (which may be nil: no rules).
func New(cfg *descriptors.Config, opts Options) (*Limiter, error) {
	if opts.Store == nil {
		return nil, fmt.Errorf("limiter: no store")
	}
	l := &Limiter{store: opts.Store, prefix: opts.KeyPrefix, now: opts.Now, shadow: opts.ShadowMode}
	if l.prefix == "" {
		l.prefix = "envoy-rls:"
	}
	if l.now == nil {
		l.now = time.Now
	}
	l.pool.New = func() any { return new(scratch) }
	l.cfg.Store(cfg)
	return l, nil
}

// SetConfig replaces the rules; requests already running finish with the
// rules they started with.
func (l *Limiter) SetConfig(cfg *descriptors.Config) { l.cfg.Store(cfg) }

// Config returns the rules being served (nil when none).
func (l *Limiter) Config() *descriptors.Config { return l.cfg.Load() }

// scratch holds the per-request buffers, reused through a pool so that a
// request allocates only its store keys.
type scratch struct {
	ops    []Op
	dec    []strategies.Decision
	refs   []opRef
	key    []byte
	values []string
}

// opRef ties an op back to the descriptor and limit it serves.
type opRef struct {
	desc  int
	limit *descriptors.RateLimit
	rule  *descriptors.Rule
}

// MaxHits is the largest hits a descriptor may carry (the strategies'
// exact-arithmetic bound).
const MaxHits = uint64(strategies.MaxExact)

// ShouldRateLimit decides req and writes one Status per descriptor into
// out (len(out) == len(req.Descriptors)); it reports whether any status is
// OverLimit. An error means the store could not decide; out is then
// undefined. Requests must be validated by the caller (see Validate).
func (l *Limiter) ShouldRateLimit(ctx context.Context, req *Request, out []Status) (bool, error) {
	now := l.now().UnixMicro()
	for i := range out {
		out[i] = Status{}
	}
	cfg := l.cfg.Load()
	var dom *descriptors.Domain
	if cfg != nil {
		dom = cfg.Domain(req.Domain)
	}
	if dom == nil {
		return false, nil // unknown domain: no limit for any descriptor
	}
	s := l.pool.Get().(*scratch)
	defer l.release(s)

	replaces := false
	for i := range req.Descriptors {
		d := &req.Descriptors[i]
		hits := int64(1)
		switch {
		case d.HitsSet:
			hits = int64(d.Hits)
		case req.HitsAddend > 0:
			hits = int64(req.HitsAddend)
		}
		if d.Negative {
			hits = -hits
		}
		out[i].Hits = hits
		if d.Override != nil {
			rl, err := descriptors.OverrideLimit(dom, d.Entries, d.Override.RequestsPerUnit, d.Override.Unit, d.Override.Multiplier)
			if err != nil {
				// The request asks for a limit that cannot be kept (its
				// window overflows): the client's error, never the store's.
				return false, fmt.Errorf("limiter: descriptor %d: %w: %w", i, ErrInvalidRequest, err)
			}
			l.addOp(s, i, rl, nil, d.Entries, hits, l.shadow)
			continue
		}
		rule, exempt := dom.Match(d.Entries)
		if rule == nil || len(rule.Limits) == 0 {
			continue
		}
		out[i].Rule = rule
		if exempt {
			out[i].Exempt = true
			continue
		}
		for _, rl := range rule.Limits {
			if len(rl.Replaces) > 0 {
				replaces = true
			}
			if rl.Unlimited {
				out[i].Unlimited = true
				continue
			}
			l.addOp(s, i, rl, rule, d.Entries, hits, rule.ShadowMode || rule.QuotaMode || l.shadow)
		}
	}
	if replaces {
		applyReplaces(s, out)
	}
	if len(s.ops) > 0 {
		s.dec = growDecisions(s.dec, len(s.ops))
		if err := l.store.Apply(ctx, now, s.ops, s.dec); err != nil {
			return false, err
		}
	}
	for j := range s.ops {
		mergeDecision(&out[s.refs[j].desc], s.refs[j].limit, &s.dec[j])
	}
	over := false
	quota, quotaOver := 0, 0
	for i := range out {
		st := &out[i]
		if st.Unlimited && st.Limit == nil {
			st.Remaining = math.MaxUint32
		}
		if st.Rule != nil && st.Rule.QuotaMode && st.Limit != nil {
			st.QuotaMode = true
			quota++
		}
		if st.Code != OverLimit {
			continue
		}
		switch {
		case st.Rule != nil && st.Rule.ShadowMode:
			st.Code, st.Shadowed = OK, true
		case st.QuotaMode:
			quotaOver++ // reported, but denies only when every quota is spent
		default:
			over = true
		}
	}
	if quota > 0 && quotaOver == quota {
		over = true
	}
	if l.shadow {
		over = false // global shadow mode: statuses tell, the overall code admits
	}
	return over, nil
}

// mergeDecision folds one limit's decision into the descriptor's status,
// keeping the tightest: a denial beats an allowance; among allowances the
// smaller remaining wins, among denials the longer retry-after.
func mergeDecision(st *Status, rl *descriptors.RateLimit, d *strategies.Decision) {
	denied := !d.Allowed
	rem := uint32(math.MaxUint32)
	switch {
	case denied:
		rem = 0 // as the reference reports every over-limit status
	case d.Remaining < math.MaxUint32:
		rem = uint32(d.Remaining)
	}
	if st.Limit != nil {
		wasDenied := st.Code == OverLimit
		switch {
		case wasDenied && !denied:
			return
		case !wasDenied && !denied && rem >= st.Remaining:
			return
		case wasDenied && denied && (st.Exceeds || !d.Exceeds && d.RetryAfter <= st.RetryAfter):
			return // keep the denial that lasts longest (never-admissible first)
		}
	}
	st.Limit = rl
	st.Remaining = rem
	st.Available = uint32(min(max(d.Remaining, 0), math.MaxUint32))
	st.Reset = d.Reset
	st.RetryAfter = d.RetryAfter
	st.Exceeds = d.Exceeds
	if denied {
		st.Code = OverLimit
	}
}

// addOp appends the op of one limit for descriptor i.
func (l *Limiter) addOp(s *scratch, i int, rl *descriptors.RateLimit, rule *descriptors.Rule, entries []descriptors.Entry, hits int64, independent bool) {
	s.key = append(s.key[:0], l.prefix...)
	s.key = append(s.key, rl.UID...)
	s.key = appendIdentifier(s.key, s, rule, entries)
	s.ops = append(s.ops, Op{
		Key:         string(s.key),
		Strategy:    rl.Strategy,
		Limit:       rl.Limit,
		Hits:        hits,
		Independent: independent,
	})
	s.refs = append(s.refs, opRef{desc: i, limit: rl, rule: rule})
}

// appendIdentifier appends the client's identifier: the request values
// along the matched path, or a rule's pattern where the rule shares one
// counter among all values matching it (share_threshold). For overrides
// (rule == nil) it is every entry's value.
func appendIdentifier(dst []byte, s *scratch, rule *descriptors.Rule, entries []descriptors.Entry) []byte {
	if rule == nil {
		for _, e := range entries {
			dst = descriptors.AppendComponent(dst, e.Value)
		}
		return dst
	}
	s.values = s.values[:0]
	for r := rule; r != nil; r = r.Parent {
		v := entries[r.Depth].Value
		if r.ShareThreshold {
			v = r.Value
		}
		s.values = append(s.values, v)
	}
	for k := len(s.values) - 1; k >= 0; k-- {
		dst = descriptors.AppendComponent(dst, s.values[k])
	}
	return dst
}

// applyReplaces drops the ops of every limit whose name a matched limit
// lists in its replaces (the reference's replaces semantics), leaving
// their descriptors OK without a limit.
func applyReplaces(s *scratch, out []Status) {
	n := 0
	for j := range s.ops {
		if replacedBy(out, s.refs[j].limit.Name) {
			out[s.refs[j].desc].Replaced = true
			continue
		}
		s.ops[n], s.refs[n] = s.ops[j], s.refs[j]
		n++
	}
	clear(s.ops[n:])
	clear(s.refs[n:])
	s.ops, s.refs = s.ops[:n], s.refs[:n]
}

// replacedBy reports whether a limit of a rule matched by this request
// lists name in its replaces.
func replacedBy(out []Status, name string) bool {
	if name == "" {
		return false
	}
	for i := range out {
		if out[i].Rule == nil || out[i].Exempt {
			continue
		}
		for _, rl := range out[i].Rule.Limits {
			for _, r := range rl.Replaces {
				if r == name {
					return true
				}
			}
		}
	}
	return false
}

func growDecisions(d []strategies.Decision, n int) []strategies.Decision {
	if cap(d) < n {
		return make([]strategies.Decision, n)
	}
	return d[:n]
}

// release clears s and returns it to the pool.
func (l *Limiter) release(s *scratch) {
	clear(s.ops)
	clear(s.refs)
	s.ops, s.refs = s.ops[:0], s.refs[:0]
	s.values = s.values[:0]
	l.pool.Put(s)
}
