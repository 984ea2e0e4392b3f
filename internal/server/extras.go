package server

import (
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// Headers configure the response headers envoy-rls asks Envoy to add
// (response_headers_to_add). The zero value adds none.
type Headers struct {
	// Enabled adds the RateLimit-* headers, from the descriptor closest
	// to its limit, and Retry-After on OVER_LIMIT.
	Enabled bool
	// Header names; empty means the reference service's names.
	Limit, Remaining, Reset, RetryAfter string
}

func (h Headers) withDefaults() Headers {
	if h.Limit == "" {
		h.Limit = "RateLimit-Limit"
	}
	if h.Remaining == "" {
		h.Remaining = "RateLimit-Remaining"
	}
	if h.Reset == "" {
		h.Reset = "RateLimit-Reset"
	}
	if h.RetryAfter == "" {
		h.RetryAfter = "Retry-After"
	}
	return h
}

// decorate adds the optional parts of a response: headers, the
// over-limit body and dynamic metadata.
func (s *Service) decorate(resp *rlsv3.RateLimitResponse, req *limiter.Request, st []limiter.Status) {
	over := resp.OverallCode == rlsv3.RateLimitResponse_OVER_LIMIT
	if s.headers.Enabled {
		resp.ResponseHeadersToAdd = s.rateLimitHeaders(resp, st, over)
	}
	if over && len(s.overBody) > 0 {
		resp.RawBody = s.overBody
	}
	if md := s.dynamicMetadata(req, st); md != nil {
		resp.DynamicMetadata = md
	}
}

// rateLimitHeaders builds the RateLimit-* headers from the status closest
// to its limit (the smallest remaining; on a tie the first), as the
// reference service does, and Retry-After from the longest retry-after of
// the over-limit statuses.
func (s *Service) rateLimitHeaders(resp *rlsv3.RateLimitResponse, st []limiter.Status, over bool) []*corev3.HeaderValue {
	tight := -1
	for i, ds := range resp.Statuses {
		if ds.CurrentLimit == nil {
			continue
		}
		if tight < 0 || ds.LimitRemaining < resp.Statuses[tight].LimitRemaining {
			tight = i
		}
	}
	if tight < 0 {
		return nil
	}
	ds := resp.Statuses[tight]
	hs := []*corev3.HeaderValue{
		{Key: s.headers.Limit, Value: strconv.FormatUint(uint64(ds.CurrentLimit.RequestsPerUnit), 10)},
		{Key: s.headers.Remaining, Value: strconv.FormatUint(uint64(ds.LimitRemaining), 10)},
		{Key: s.headers.Reset, Value: strconv.FormatInt(ds.DurationUntilReset.GetSeconds(), 10)},
	}
	if over {
		var retry int64
		for i := range st {
			if st[i].Code == limiter.OverLimit && !st[i].Exceeds && st[i].RetryAfter > retry {
				retry = st[i].RetryAfter
			}
		}
		if retry > 0 {
			hs = append(hs, &corev3.HeaderValue{Key: s.headers.RetryAfter, Value: strconv.FormatInt(ceilSeconds(retry), 10)})
		}
	}
	return hs
}

// dynamicMetadata builds the response's dynamic_metadata as the reference
// service does: the metadata of every matched rule whose descriptor is
// within its limit, merged; quotaModeEnabled and quotaModeViolations (the
// indexes of over-limit quota-mode descriptors) when a quota-mode rule
// matched; and, with the request-metadata option, the request's domain,
// descriptors and hits_addend. It returns nil when there is nothing.
func (s *Service) dynamicMetadata(req *limiter.Request, st []limiter.Status) *structpb.Struct {
	var fields map[string]any
	set := func(k string, v any) {
		if fields == nil {
			fields = map[string]any{}
		}
		fields[k] = v
	}
	var violations []any
	quota := false
	for i := range st {
		if st[i].QuotaMode {
			quota = true
			if st[i].Code == limiter.OverLimit {
				violations = append(violations, i)
			}
		}
		if r := st[i].Rule; r != nil && len(r.Metadata) > 0 && st[i].Code == limiter.OK {
			for k, v := range r.Metadata {
				set(k, v)
			}
		}
	}
	if quota {
		set("quotaModeEnabled", true)
		set("quotaModeViolations", append([]any{}, violations...))
	}
	if s.requestMetadata {
		ds := make([]any, len(req.Descriptors))
		for i, d := range req.Descriptors {
			es := make([]any, len(d.Entries))
			for j, e := range d.Entries {
				es[j] = map[string]any{"key": e.Key, "value": e.Value}
			}
			ds[i] = map[string]any{"entries": es}
		}
		set("domain", req.Domain)
		set("descriptors", ds)
		if req.HitsAddend > 0 {
			set("hitsAddend", req.HitsAddend)
		}
	}
	if fields == nil {
		return nil
	}
	md, err := structpb.NewStruct(fields)
	if err != nil {
		s.log.Warn("dynamic metadata not representable; omitted", zap.Error(err))
		return nil
	}
	return md
}
