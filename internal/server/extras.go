package server

import (
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
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
func (s *Service) decorate(resp *rlsv3.RateLimitResponse, in *rlsv3.RateLimitRequest, req *limiter.Request, st []limiter.Status) {
	over := resp.OverallCode == rlsv3.RateLimitResponse_OVER_LIMIT
	if s.headers.Enabled {
		resp.ResponseHeadersToAdd = s.rateLimitHeaders(resp, st, over)
	}
	if over && len(s.overBody) > 0 {
		resp.RawBody = s.overBody
	}
	if md := s.dynamicMetadata(in, req, st); md != nil {
		resp.DynamicMetadata = md
	}
}

// rateLimitHeaders builds the RateLimit-* headers from the status the
// reference service picks: the last over-limit status that is not in
// quota mode, else the one with the smallest remaining (on a tie the
// first); and Retry-After from the longest retry-after of the over-limit
// statuses.
func (s *Service) rateLimitHeaders(resp *rlsv3.RateLimitResponse, st []limiter.Status, over bool) []*corev3.HeaderValue {
	tight := -1
	denied := false
	for i, ds := range resp.Statuses {
		if ds.CurrentLimit == nil {
			continue
		}
		switch {
		case ds.Code == rlsv3.RateLimitResponse_OVER_LIMIT && !st[i].QuotaMode:
			tight, denied = i, true
		case denied:
		case tight < 0 || ds.LimitRemaining < resp.Statuses[tight].LimitRemaining:
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

// QuotaMetadataKey is the dynamic_metadata key of envoy-rls's quota-mode
// summary (Options.QuotaMetadata): {quotaModeEnabled: true,
// quotaModeViolations: [indexes of the over-limit quota-mode
// descriptors]}, present when a quota-mode rule matched.
const QuotaMetadataKey = "envoy_rls_quota"

// dynamicMetadata builds the response's dynamic_metadata. With the
// request-metadata option it has the reference service's shape and
// nothing else at its top level:
//
//	domain:      the request's domain
//	descriptors: [{entries: ["key=value", ...], limit: "<the override
//	             in proto text>", hitsAddend: n}, ...] (limit and
//	             hitsAddend only when the descriptor carries them)
//	hitsAddend:  the request's hits_addend, when not 0
//	metadata:    the metadata of the rules whose descriptors passed (not
//	             over the limit, not unlimited, not replaced), merged in
//	             request order: the first value of a key wins, nested maps
//	             merge; absent when empty
//
// With the quota-metadata option the quota-mode summary is added under
// QuotaMetadataKey. It returns nil when there is nothing to send.
func (s *Service) dynamicMetadata(in *rlsv3.RateLimitRequest, req *limiter.Request, st []limiter.Status) *structpb.Struct {
	fields := map[string]any{}
	if s.quotaMetadata {
		var violations []any
		quota := false
		for i := range st {
			if st[i].QuotaMode {
				quota = true
				if st[i].Code == limiter.OverLimit {
					violations = append(violations, i)
				}
			}
		}
		if quota {
			fields[QuotaMetadataKey] = map[string]any{"quotaModeEnabled": true, "quotaModeViolations": append([]any{}, violations...)}
		}
	}
	if s.requestMetadata {
		ds := make([]any, 0, len(in.GetDescriptors()))
		for _, d := range in.GetDescriptors() {
			es := make([]any, len(d.GetEntries()))
			for j, e := range d.GetEntries() {
				es[j] = e.GetKey() + "=" + e.GetValue()
			}
			m := map[string]any{"entries": es}
			if l := d.GetLimit(); l != nil {
				m["limit"] = overrideText(l)
			}
			if h := d.GetHitsAddend(); h != nil {
				m["hitsAddend"] = float64(h.GetValue())
			}
			ds = append(ds, m)
		}
		fields["domain"] = req.Domain
		fields["descriptors"] = ds
		if req.HitsAddend != 0 {
			fields["hitsAddend"] = float64(req.HitsAddend)
		}
		var passed map[string]any
		for i := range st {
			if !passedWithRule(&st[i]) {
				continue
			}
			if passed == nil {
				passed = map[string]any{}
			}
			mergeMetadata(passed, st[i].Rule.Metadata)
		}
		if len(passed) > 0 {
			fields["metadata"] = passed
		}
	}
	if len(fields) == 0 {
		return nil
	}
	md, err := structpb.NewStruct(fields)
	if err != nil {
		s.log.Warn("dynamic metadata not representable; omitted", zap.Error(err))
		return nil
	}
	return md
}

// passedWithRule reports whether st is a descriptor that passed a rule
// with metadata, as the reference counts it: a matched limit that was
// applied (not unlimited, not replaced) and did not deny.
func passedWithRule(st *limiter.Status) bool {
	if st.Rule == nil || len(st.Rule.Metadata) == 0 || st.Code != limiter.OK {
		return false
	}
	if st.Limit == nil && (st.Unlimited || st.Replaced) {
		return false
	}
	return true
}

// mergeMetadata copies src into dst without overwriting: a key already in
// dst keeps its value, except that two maps merge recursively. Maps of
// dst that come from src are copied first, so that rules never share
// (and never see modified) their own metadata.
func mergeMetadata(dst, src map[string]any) {
	for k, v := range src {
		cur, ok := dst[k]
		if !ok {
			if m, isMap := v.(map[string]any); isMap {
				c := make(map[string]any, len(m))
				mergeMetadata(c, m)
				v = c
			}
			dst[k] = v
			continue
		}
		cm, ok1 := cur.(map[string]any)
		sm, ok2 := v.(map[string]any)
		if ok1 && ok2 {
			mergeMetadata(cm, sm)
		}
	}
}

// overrideText renders a descriptor's limit override as the proto text
// format does (fields at their zero value omitted), the form the
// reference service puts in the descriptor's limit field.
func overrideText(l *rlcommon.RateLimitDescriptor_RateLimitOverride) string {
	var b strings.Builder
	if l.GetRequestsPerUnit() != 0 {
		b.WriteString("requests_per_unit:")
		b.WriteString(strconv.FormatUint(uint64(l.GetRequestsPerUnit()), 10))
	}
	if l.GetUnit() != 0 {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("unit:")
		b.WriteString(l.GetUnit().String())
	}
	if m := l.GetUnitMultiplier(); m != nil {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("unit_multiplier:{")
		if m.GetValue() != 0 {
			b.WriteString("value:")
			b.WriteString(strconv.FormatUint(uint64(m.GetValue()), 10))
		}
		b.WriteByte('}')
	}
	return b.String()
}
