package deploy

import (
	"fmt"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// loadBootstrap parses examples/envoy.yaml strictly.
func loadBootstrap(t *testing.T) *bootstrapv3.Bootstrap {
	t.Helper()
	var b bootstrapv3.Bootstrap
	if err := unmarshalStrict(readRepoFile(t, "examples/envoy.yaml"), &b); err != nil {
		t.Fatalf("examples/envoy.yaml: %v", err)
	}
	return &b
}

// clusterEndpoint returns the single host:port a static cluster points at.
func clusterEndpoint(c *clusterv3.Cluster) (string, uint32, error) {
	eps := c.GetLoadAssignment().GetEndpoints()
	if len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 {
		return "", 0, fmt.Errorf("deploy: cluster %s: want exactly one endpoint", c.GetName())
	}
	sa := eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	return sa.GetAddress(), sa.GetPortValue(), nil
}

// requireHTTP2 checks that c speaks HTTP/2 to its hosts, as gRPC needs.
func requireHTTP2(t *testing.T, c *clusterv3.Cluster) {
	t.Helper()
	a, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	if !ok {
		t.Fatalf("cluster %s: no envoy.extensions.upstreams.http.v3.HttpProtocolOptions", c.GetName())
	}
	var opts httpv3.HttpProtocolOptions
	if err := a.UnmarshalTo(&opts); err != nil {
		t.Fatalf("cluster %s: %v", c.GetName(), err)
	}
	if opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Errorf("cluster %s: explicit_http_config is not http2_protocol_options", c.GetName())
	}
}

func TestEnvoyBootstrapIsValid(t *testing.T) {
	b := loadBootstrap(t)
	requireValid(t, "examples/envoy.yaml", b)
	if b.GetAdmin().GetAddress() == nil {
		t.Error("no admin address")
	}
}

func TestEnvoyBootstrapWiring(t *testing.T) {
	b := loadBootstrap(t)
	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range b.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = c
	}
	rls, ok := clusters["envoy_rls"]
	if !ok {
		t.Fatal("no envoy_rls cluster")
	}
	requireHTTP2(t, rls)
	if host, port, err := clusterEndpoint(rls); err != nil || host != "envoy-rls" || port != 8081 {
		t.Errorf("envoy_rls cluster: %s:%d (%v), want envoy-rls:8081", host, port, err)
	}

	listeners := b.GetStaticResources().GetListeners()
	if len(listeners) != 1 || listeners[0].GetAddress().GetSocketAddress().GetPortValue() != 10000 {
		t.Fatalf("want one listener on port 10000, have %d", len(listeners))
	}
	var hcm hcmv3.HttpConnectionManager
	found := false
	for _, fc := range listeners[0].GetFilterChains() {
		for _, f := range fc.GetFilters() {
			if f.GetName() == "envoy.filters.network.http_connection_manager" {
				if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
					t.Fatal(err)
				}
				found = true
			}
		}
	}
	if !found {
		t.Fatal("no http_connection_manager")
	}

	filters := hcm.GetHttpFilters()
	if len(filters) < 2 || filters[len(filters)-1].GetName() != "envoy.filters.http.router" {
		t.Fatal("the router is not the last HTTP filter")
	}
	var rl ratelimitv3.RateLimit
	rlFound := false
	for _, f := range filters {
		if f.GetName() == "envoy.filters.http.ratelimit" {
			if err := f.GetTypedConfig().UnmarshalTo(&rl); err != nil {
				t.Fatal(err)
			}
			rlFound = true
		}
	}
	if !rlFound {
		t.Fatal("no envoy.filters.http.ratelimit filter")
	}
	checkRateLimitFilter(t, &rl, "edge", "envoy_rls")

	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if c := r.GetRoute().GetCluster(); clusters[c] == nil {
				t.Errorf("virtual host %s: a route goes to cluster %q, which is not defined", vh.GetName(), c)
			}
		}
	}
}

// TestEnvoyDescriptorsMatchRules checks that every descriptor the routes
// of examples/envoy.yaml send is limited by a rule of
// examples/ratelimit.yaml.
func TestEnvoyDescriptorsMatchRules(t *testing.T) {
	b := loadBootstrap(t)
	var hcm hcmv3.HttpConnectionManager
	if err := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	var samples []descriptorSample
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for i, r := range vh.GetRoutes() {
			s, err := routeSamples(fmt.Sprintf("virtual host %s route %d", vh.GetName(), i), vh.GetRateLimits(), r)
			if err != nil {
				t.Fatal(err)
			}
			samples = append(samples, s...)
		}
	}
	requireRulesMatch(t, loadExampleRules(t), "edge", samples)
}

// TestEnvoyRejectsTypos checks that the strict loading used above does
// catch a misspelled field, so that the tests above mean something.
func TestEnvoyRejectsTypos(t *testing.T) {
	bad := []byte(`
static_resources:
  clusters:
    - name: x
      conect_timeout: 1s
`)
	var b bootstrapv3.Bootstrap
	if err := unmarshalStrict(bad, &b); err == nil {
		t.Fatal("a misspelled field was accepted")
	}
	badAny := []byte(`
static_resources:
  listeners:
    - name: l
      address: {socket_address: {address: 0.0.0.0, port_value: 1}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: x
                http_filters:
                  - name: envoy.filters.http.ratelimit
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
                      domian: edge
`)
	if err := unmarshalStrict(badAny, &b); err == nil {
		t.Fatal("a misspelled field inside a typed_config was accepted")
	}
	invalid := []byte(`
static_resources:
  clusters:
    - name: ""
      connect_timeout: 1s
`)
	b.Reset()
	if err := unmarshalStrict(invalid, &b); err != nil {
		t.Fatal(err)
	}
	if len(validateDeep(&b)) == 0 {
		t.Fatal("a cluster without a name passed validation")
	}
}
