package xds

import (
	"errors"
	"fmt"

	rlconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
)

// TypeURL is the type of the resources the source asks for: one
// RateLimitConfig per domain, as Envoy Gateway serves them.
const TypeURL = "type.googleapis.com/ratelimit.config.ratelimit.v3.RateLimitConfig"

// Build decodes RateLimitConfig resources and builds the rules they
// state. Every problem of every resource is reported at once: a
// resource of another type or that does not decode, and every rule
// problem (which names the domain and the descriptor path, see
// descriptors.Build). A resource set is refused whole.
func Build(resources []*anypb.Any) (*descriptors.Config, error) {
	var errs []error
	specs := make([]descriptors.DomainSpec, 0, len(resources))
	for i, res := range resources {
		if res.GetTypeUrl() != TypeURL {
			errs = append(errs, fmt.Errorf("xds: resource %d: type %q, want %s", i, res.GetTypeUrl(), TypeURL))
			continue
		}
		var rc rlconfv3.RateLimitConfig
		if err := proto.Unmarshal(res.GetValue(), &rc); err != nil {
			errs = append(errs, fmt.Errorf("xds: resource %d: %w", i, err))
			continue
		}
		specs = append(specs, DomainSpec(&rc))
	}
	cfg, err := descriptors.Build(specs)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// DomainSpec converts one RateLimitConfig into the rule model. It
// carries every field of the proto: domain, descriptors (key, value,
// rate_limit, nested descriptors, shadow_mode, detailed_metric,
// quota_mode, metadata) and each policy's unit (all seven, WEEK, MONTH
// and YEAR included), requests_per_unit, unlimited, name and replaces.
// The resource's name is not used: the domain field names the domain,
// and an empty domain is an error of the rules. It does no validation;
// descriptors.Build does.
func DomainSpec(rc *rlconfv3.RateLimitConfig) descriptors.DomainSpec {
	return descriptors.DomainSpec{Name: rc.GetDomain(), Descriptors: descriptorSpecs(rc.GetDescriptors())}
}

func descriptorSpecs(in []*rlconfv3.RateLimitDescriptor) []descriptors.DescriptorSpec {
	if len(in) == 0 {
		return nil
	}
	out := make([]descriptors.DescriptorSpec, len(in))
	for i, d := range in {
		out[i] = descriptors.DescriptorSpec{
			Key:            d.GetKey(),
			Value:          d.GetValue(),
			RateLimit:      rateLimitSpec(d.GetRateLimit()),
			Descriptors:    descriptorSpecs(d.GetDescriptors()),
			ShadowMode:     d.GetShadowMode(),
			DetailedMetric: d.GetDetailedMetric(),
			QuotaMode:      d.GetQuotaMode(),
		}
		if md := d.GetMetadata(); md != nil {
			out[i].Metadata = md.AsMap()
		}
	}
	return out
}

// rateLimitSpec converts a policy. proto3 cannot tell an absent
// requests_per_unit from 0, so a limited policy always gives it (0 means
// every request is over the limit, as in the reference); an unlimited one
// gives unit and requests_per_unit only when they are set, so that
// "unlimited with a unit" is refused as in YAML.
func rateLimitSpec(p *rlconfv3.RateLimitPolicy) *descriptors.RateLimitSpec {
	if p == nil {
		return nil
	}
	s := &descriptors.RateLimitSpec{Name: p.GetName(), Unlimited: p.GetUnlimited()}
	for _, r := range p.GetReplaces() {
		s.Replaces = append(s.Replaces, r.GetName())
	}
	unit := p.GetUnit()
	rpu := p.GetRequestsPerUnit()
	if !s.Unlimited || unit != rlconfv3.RateLimitUnit_UNKNOWN {
		s.Unit = unit.String() // an undefined number reads as its digits, an invalid unit
	}
	if !s.Unlimited || rpu != 0 {
		s.RequestsPerUnit = &rpu
	}
	return s
}
