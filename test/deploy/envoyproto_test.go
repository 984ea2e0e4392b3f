package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/envoy-rls/envoy-rls/pkg/descriptors"

	// Extensions whose typed_config the examples use: importing them
	// registers their types, so that protojson resolves each Any.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// repoRoot returns the repository's root directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("deploy: cannot locate the test's source file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// readRepoFile reads a file given relative to the repository's root.
func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	return data
}

// unmarshalStrict decodes YAML or JSON into m as Envoy does: unknown fields
// and Any values of unregistered types are errors.
func unmarshalStrict(doc []byte, m proto.Message) error {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return fmt.Errorf("deploy: yaml: %w", err)
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, m); err != nil {
		return fmt.Errorf("deploy: %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}

// unmarshalValue decodes a value already parsed from YAML (such as an
// EnvoyFilter patch's value) into m, strictly.
func unmarshalValue(v any, m proto.Message) error {
	js, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("deploy: re-encode: %w", err)
	}
	return unmarshalStrict(js, m)
}

// validateDeep runs the protoc-gen-validate rules of m and of every
// message packed in an Any anywhere inside it (PGV does not look inside
// Any values), returning every violation found.
func validateDeep(m proto.Message) []error {
	var errs []error
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.ProtoReflect().Descriptor().FullName(), err))
		}
	}
	walkAnys(m.ProtoReflect(), func(a *anypb.Any) {
		inner, err := a.UnmarshalNew()
		if err != nil {
			errs = append(errs, fmt.Errorf("deploy: any %s: %w", a.GetTypeUrl(), err))
			return
		}
		errs = append(errs, validateDeep(inner)...)
	})
	return errs
}

// walkAnys calls f for every Any in m's set fields, without descending
// into the Anys themselves.
func walkAnys(m protoreflect.Message, f func(*anypb.Any)) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		f(a)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walkAnys(l.Get(i).Message(), f)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				walkAnys(mv.Message(), f)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			walkAnys(v.Message(), f)
		}
		return true
	})
}

// requireValid fails t with every validation error of m.
func requireValid(t *testing.T, what string, m proto.Message) {
	t.Helper()
	for _, err := range validateDeep(m) {
		t.Errorf("%s: %v", what, err)
	}
}

// descriptorSample is one descriptor that a rate_limits entry can send,
// with a representative value for each entry, and where it comes from.
type descriptorSample struct {
	where   string
	entries []descriptors.Entry
}

// sampleDescriptor builds the descriptor that rl produces for a request
// on a route matched by match (nil for a virtual host's rate limits),
// with representative values: an IPv4 client, user "alice", a path the
// route's match admits.
func sampleDescriptor(rl *routev3.RateLimit, match *routev3.RouteMatch) ([]descriptors.Entry, error) {
	var entries []descriptors.Entry
	for _, a := range rl.GetActions() {
		switch x := a.GetActionSpecifier().(type) {
		case *routev3.RateLimit_Action_RemoteAddress_:
			entries = append(entries, descriptors.Entry{Key: "remote_address", Value: "192.0.2.1"})
		case *routev3.RateLimit_Action_MaskedRemoteAddress_:
			bits := uint32(32)
			if l := x.MaskedRemoteAddress.GetV4PrefixMaskLen(); l != nil {
				bits = l.GetValue()
			}
			value := "192.0.2.1/32"
			if bits == 24 {
				value = "192.0.2.0/24"
			} else if bits != 32 {
				return nil, fmt.Errorf("deploy: masked_remote_address: no sample for a /%d mask", bits)
			}
			entries = append(entries, descriptors.Entry{Key: "masked_remote_address", Value: value})
		case *routev3.RateLimit_Action_RequestHeaders_:
			h := x.RequestHeaders
			var value string
			switch strings.ToLower(h.GetHeaderName()) {
			case ":path":
				value = samplePath(match)
			case "x-user-id":
				value = "alice"
			default:
				return nil, fmt.Errorf("deploy: request_headers %q: no sample value", h.GetHeaderName())
			}
			entries = append(entries, descriptors.Entry{Key: h.GetDescriptorKey(), Value: value})
		case *routev3.RateLimit_Action_GenericKey_:
			key := x.GenericKey.GetDescriptorKey()
			if key == "" {
				key = "generic_key"
			}
			entries = append(entries, descriptors.Entry{Key: key, Value: x.GenericKey.GetDescriptorValue()})
		case *routev3.RateLimit_Action_HeaderValueMatch_:
			key := x.HeaderValueMatch.GetDescriptorKey()
			if key == "" {
				key = "header_match"
			}
			entries = append(entries, descriptors.Entry{Key: key, Value: x.HeaderValueMatch.GetDescriptorValue()})
		default:
			return nil, fmt.Errorf("deploy: action %T: no sample", x)
		}
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("deploy: a rate_limits entry without actions")
	}
	return entries, nil
}

// samplePath returns a path that match admits: the exact path, or the
// prefix followed by "sample".
func samplePath(match *routev3.RouteMatch) string {
	switch {
	case match == nil:
		return "/"
	case match.GetPath() != "":
		return match.GetPath()
	case match.GetPrefix() != "":
		return match.GetPrefix() + "sample"
	case match.GetPathSeparatedPrefix() != "":
		return match.GetPathSeparatedPrefix() + "/sample"
	}
	return "/"
}

// routeSamples returns the descriptors a route sends: its own rate
// limits, plus the virtual host's when the route has none or includes
// them (RateLimitPerRoute vh_rate_limits INCLUDE, or the deprecated
// include_vh_rate_limits).
func routeSamples(where string, vhLimits []*routev3.RateLimit, r *routev3.Route) ([]descriptorSample, error) {
	own := r.GetRoute().GetRateLimits()
	limits := own
	//lint:ignore SA1019 Envoy still honours the deprecated include_vh_rate_limits, so the check reads it too
	include := len(own) == 0 || r.GetRoute().GetIncludeVhRateLimits().GetValue()
	if a, ok := r.GetTypedPerFilterConfig()["envoy.filters.http.ratelimit"]; ok {
		var per ratelimitv3.RateLimitPerRoute
		if err := a.UnmarshalTo(&per); err != nil {
			return nil, fmt.Errorf("deploy: %s: per-route config: %w", where, err)
		}
		switch per.GetVhRateLimits() {
		case ratelimitv3.RateLimitPerRoute_INCLUDE:
			include = true
		case ratelimitv3.RateLimitPerRoute_IGNORE:
			include = false
		}
		limits = append(limits, per.GetRateLimits()...)
	}
	if include {
		limits = append(append([]*routev3.RateLimit(nil), limits...), vhLimits...)
	}
	var out []descriptorSample
	for i, rl := range limits {
		entries, err := sampleDescriptor(rl, r.GetMatch())
		if err != nil {
			return nil, fmt.Errorf("%s: rate_limits[%d]: %w", where, i, err)
		}
		out = append(out, descriptorSample{where: fmt.Sprintf("%s rate_limits[%d]", where, i), entries: entries})
	}
	return out, nil
}

// requireRulesMatch checks that every sample is matched, in domain, by a
// rule that has limits.
func requireRulesMatch(t *testing.T, cfg *descriptors.Config, domain string, samples []descriptorSample) {
	t.Helper()
	d := cfg.Domain(domain)
	if d == nil {
		t.Fatalf("the rules have no domain %q", domain)
	}
	if len(samples) == 0 {
		t.Fatal("no descriptor samples: the route config sends nothing")
	}
	for _, s := range samples {
		rule, _ := d.Match(s.entries)
		if rule == nil || len(rule.Limits) == 0 {
			t.Errorf("%s: descriptor %v matches no rule with a limit in domain %q", s.where, s.entries, domain)
		}
	}
}

// checkRateLimitFilter checks the envoy.filters.http.ratelimit config:
// domain, V3 transport, and a gRPC service on the named cluster.
func checkRateLimitFilter(t *testing.T, rl *ratelimitv3.RateLimit, domain, cluster string) {
	t.Helper()
	if rl.GetDomain() != domain {
		t.Errorf("ratelimit filter: domain %q, want %q", rl.GetDomain(), domain)
	}
	svc := rl.GetRateLimitService()
	if svc.GetTransportApiVersion().String() != "V3" {
		t.Errorf("ratelimit filter: transport_api_version %v, want V3", svc.GetTransportApiVersion())
	}
	if got := svc.GetGrpcService().GetEnvoyGrpc().GetClusterName(); got != cluster {
		t.Errorf("ratelimit filter: cluster %q, want %q", got, cluster)
	}
	if rl.GetFailureModeDeny() {
		t.Error("ratelimit filter: failure_mode_deny is true; the examples let requests pass when envoy-rls is down")
	}
	if rl.GetEnableXRatelimitHeaders() != ratelimitv3.RateLimit_DRAFT_VERSION_03 {
		t.Errorf("ratelimit filter: enable_x_ratelimit_headers %v, want DRAFT_VERSION_03", rl.GetEnableXRatelimitHeaders())
	}
	if d := rl.GetTimeout().AsDuration(); d <= 0 || d > 1e9 {
		t.Errorf("ratelimit filter: timeout %v, want a positive timeout of at most 1s", d)
	}
}

// loadExampleRules loads examples/ratelimit.yaml.
func loadExampleRules(t *testing.T) *descriptors.Config {
	t.Helper()
	cfg, err := descriptors.Load(filepath.Join(repoRoot(t), "examples", "ratelimit.yaml"))
	if err != nil {
		t.Fatalf("examples/ratelimit.yaml: %v", err)
	}
	return cfg
}
