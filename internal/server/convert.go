package server

import (
	"errors"
	"fmt"
	"math"
	"sync"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// Limits bound what one request may carry; requests beyond them are
// refused with INVALID_ARGUMENT. The zero value means the defaults.
type Limits struct {
	MaxDescriptors int // per request (default 64)
	MaxEntries     int // per descriptor (default 32)
	MaxValueBytes  int // per key or value (default 4096)
	// MaxRequestBytes bounds the domain, keys and values of one request
	// together (default 1 MiB). The gRPC server's own message limit sits
	// above it, so that a large request gets INVALID_ARGUMENT naming this
	// limit rather than a transport error.
	MaxRequestBytes int
}

func (l Limits) withDefaults() Limits {
	if l.MaxDescriptors <= 0 {
		l.MaxDescriptors = 64
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = 32
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = 4096
	}
	if l.MaxRequestBytes <= 0 {
		l.MaxRequestBytes = 1 << 20
	}
	return l
}

// errInvalid is wrapped by every request validation error.
var errInvalid = errors.New("invalid request")

// call holds the converted request and its statuses; pooled per request.
type call struct {
	req      limiter.Request
	entries  []descriptors.Entry
	over     []limiter.Override
	statuses []limiter.Status
}

var callPool = sync.Pool{New: func() any { return new(call) }}

func getCall() *call { return callPool.Get().(*call) }

func putCall(c *call) {
	clear(c.entries)
	clear(c.req.Descriptors)
	c.req = limiter.Request{Descriptors: c.req.Descriptors[:0]}
	c.entries, c.over, c.statuses = c.entries[:0], c.over[:0], c.statuses[:0]
	callPool.Put(c)
}

// convert validates in and fills c.req from it.
func (lim Limits) convert(in *rlsv3.RateLimitRequest, c *call) error {
	if in == nil || in.GetDomain() == "" {
		return fmt.Errorf("%w: domain is empty", errInvalid)
	}
	if len(in.Domain) > lim.MaxValueBytes {
		return fmt.Errorf("%w: domain is %d bytes, more than %d", errInvalid, len(in.Domain), lim.MaxValueBytes)
	}
	ds := in.GetDescriptors()
	if len(ds) == 0 {
		return fmt.Errorf("%w: no descriptors", errInvalid)
	}
	if len(ds) > lim.MaxDescriptors {
		return fmt.Errorf("%w: %d descriptors, more than the limit of %d", errInvalid, len(ds), lim.MaxDescriptors)
	}
	total, size := 0, len(in.Domain)
	for i, d := range ds {
		n := len(d.GetEntries())
		if n == 0 {
			return fmt.Errorf("%w: descriptors[%d] has no entries", errInvalid, i)
		}
		if n > lim.MaxEntries {
			return fmt.Errorf("%w: descriptors[%d] has %d entries, more than the limit of %d", errInvalid, i, n, lim.MaxEntries)
		}
		total += n
		for _, e := range d.Entries {
			size += len(e.GetKey()) + len(e.GetValue())
		}
	}
	if size > lim.MaxRequestBytes {
		return fmt.Errorf("%w: the request carries %d bytes of domain, keys and values, more than the limit of %d", errInvalid, size, lim.MaxRequestBytes)
	}
	c.req.Domain = in.Domain
	c.req.HitsAddend = in.HitsAddend
	if cap(c.entries) < total {
		c.entries = make([]descriptors.Entry, 0, total)
	}
	if cap(c.req.Descriptors) < len(ds) {
		c.req.Descriptors = make([]limiter.Descriptor, 0, len(ds))
	}
	if cap(c.over) < len(ds) {
		c.over = make([]limiter.Override, 0, len(ds))
	}
	for i, d := range ds {
		start := len(c.entries)
		for j, e := range d.Entries {
			if e.GetKey() == "" {
				return fmt.Errorf("%w: descriptors[%d].entries[%d] has an empty key", errInvalid, i, j)
			}
			if len(e.Key) > lim.MaxValueBytes || len(e.Value) > lim.MaxValueBytes {
				return fmt.Errorf("%w: descriptors[%d].entries[%d] (key %.64q) is longer than %d bytes", errInvalid, i, j, e.Key, lim.MaxValueBytes)
			}
			c.entries = append(c.entries, descriptors.Entry{Key: e.Key, Value: e.Value})
		}
		desc := limiter.Descriptor{Entries: c.entries[start:len(c.entries):len(c.entries)], Negative: d.IsNegativeHits}
		if h := d.GetHitsAddend(); h != nil {
			if h.Value > limiter.MaxHits {
				return fmt.Errorf("%w: descriptors[%d].hits_addend %d is larger than %d", errInvalid, i, h.Value, limiter.MaxHits)
			}
			desc.HitsSet, desc.Hits = true, h.Value
		}
		if o := d.GetLimit(); o != nil {
			ov, err := convertOverride(o)
			if err != nil {
				return fmt.Errorf("%w: descriptors[%d].limit: %v", errInvalid, i, err)
			}
			c.over = append(c.over, ov)
			desc.Override = &c.over[len(c.over)-1]
		}
		c.req.Descriptors = append(c.req.Descriptors, desc)
	}
	return nil
}

func convertOverride(o *rlcommon.RateLimitDescriptor_RateLimitOverride) (limiter.Override, error) {
	// envoy.type.v3.RateLimitUnit shares its numbers with our Unit (it has
	// no WEEK).
	u := descriptors.Unit(o.Unit)
	if o.Unit == typev3.RateLimitUnit_UNKNOWN || !u.Valid() {
		return limiter.Override{}, fmt.Errorf("unit %s is not a rate-limit unit", o.Unit)
	}
	m := uint32(1)
	if o.UnitMultiplier != nil {
		m = o.UnitMultiplier.Value
		if m == 0 {
			return limiter.Override{}, fmt.Errorf("unit_multiplier is 0")
		}
	}
	return limiter.Override{RequestsPerUnit: o.RequestsPerUnit, Unit: u, Multiplier: m}, nil
}

// response builds the RLS response from the statuses.
func response(over bool, st []limiter.Status) *rlsv3.RateLimitResponse {
	resp := &rlsv3.RateLimitResponse{
		OverallCode: rlsv3.RateLimitResponse_OK,
		Statuses:    make([]*rlsv3.RateLimitResponse_DescriptorStatus, len(st)),
	}
	if over {
		resp.OverallCode = rlsv3.RateLimitResponse_OVER_LIMIT
	}
	// One backing array per kind of message keeps a response to a handful
	// of allocations whatever the number of descriptors.
	backing := make([]rlsv3.RateLimitResponse_DescriptorStatus, len(st))
	var limits []rlsv3.RateLimitResponse_RateLimit
	var durs []durationpb.Duration
	for i := range st {
		ds := &backing[i]
		ds.Code = rlsv3.RateLimitResponse_OK
		if st[i].Code == limiter.OverLimit {
			ds.Code = rlsv3.RateLimitResponse_OVER_LIMIT
		}
		ds.LimitRemaining = st[i].Remaining
		if rl := st[i].Limit; rl != nil {
			if limits == nil {
				limits = make([]rlsv3.RateLimitResponse_RateLimit, len(st))
				durs = make([]durationpb.Duration, len(st))
			}
			ds.CurrentLimit = fillLimit(&limits[i], rl)
			durs[i].Seconds = ceilSeconds(st[i].Reset)
			ds.DurationUntilReset = &durs[i]
		}
		resp.Statuses[i] = ds
	}
	return resp
}

// fillLimit fills cl with the current_limit of rl and returns it.
func fillLimit(cl *rlsv3.RateLimitResponse_RateLimit, rl *descriptors.RateLimit) *rlsv3.RateLimitResponse_RateLimit {
	cl.Name = rl.Name
	cl.RequestsPerUnit = rl.RequestsPerUnit
	cl.Unit = rlsv3.RateLimitResponse_RateLimit_Unit(rl.Unit)
	if rl.UnitMultiplier > 1 {
		cl.UnitMultiplier = wrapperspb.UInt32(rl.UnitMultiplier)
	}
	return cl
}

// ceilSeconds rounds microseconds up to whole seconds, as the reference
// service reports duration_until_reset.
func ceilSeconds(us int64) int64 {
	if us <= 0 {
		return 0
	}
	s := (us + 999_999) / 1_000_000
	if s > math.MaxInt32 {
		return math.MaxInt32
	}
	return s
}
