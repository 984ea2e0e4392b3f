package deploy

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sort"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
)

// k8sObject is the part of a Kubernetes manifest these tests read; the
// rest of each document is decoded into typed structs below.
type k8sObject struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
}

// envoyFilter is Istio's EnvoyFilter (networking.istio.io/v1alpha3),
// with the fields the examples may use; decoded strictly.
type envoyFilter struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       struct {
		WorkloadSelector struct {
			Labels map[string]string `json:"labels"`
		} `json:"workloadSelector"`
		Priority      int `json:"priority,omitempty"`
		ConfigPatches []struct {
			ApplyTo string `json:"applyTo"`
			Match   struct {
				Context            string         `json:"context"`
				Proxy              map[string]any `json:"proxy,omitempty"`
				Listener           map[string]any `json:"listener,omitempty"`
				RouteConfiguration *struct {
					PortNumber int    `json:"portNumber,omitempty"`
					PortName   string `json:"portName,omitempty"`
					Gateway    string `json:"gateway,omitempty"`
					Name       string `json:"name,omitempty"`
					Vhost      *struct {
						Name  string `json:"name"`
						Route *struct {
							Name   string `json:"name,omitempty"`
							Action string `json:"action,omitempty"`
						} `json:"route,omitempty"`
					} `json:"vhost,omitempty"`
				} `json:"routeConfiguration,omitempty"`
				Cluster map[string]any `json:"cluster,omitempty"`
			} `json:"match"`
			Patch struct {
				Operation   string         `json:"operation"`
				Value       map[string]any `json:"value"`
				FilterClass string         `json:"filterClass,omitempty"`
			} `json:"patch"`
		} `json:"configPatches"`
	} `json:"spec"`
}

// virtualService is the part of an Istio VirtualService the tests read.
type virtualService struct {
	Spec struct {
		HTTP []struct {
			Name  string `json:"name"`
			Match []struct {
				URI map[string]string `json:"uri"`
			} `json:"match"`
		} `json:"http"`
	} `json:"spec"`
}

// splitYAML splits a multi-document YAML file.
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(data, []byte("\n---")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

// istioDocs returns every document of examples/istio/*.yaml by kind.
func istioDocs(t *testing.T) map[string][][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "examples", "istio", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("examples/istio: no files (%v)", err)
	}
	sort.Strings(files)
	out := map[string][][]byte{}
	for _, f := range files {
		data := readRepoFile(t, filepath.Join("examples", "istio", filepath.Base(f)))
		for _, doc := range splitYAML(data) {
			var o k8sObject
			if err := yaml.Unmarshal(doc, &o); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata["name"] == nil {
				t.Fatalf("%s: a document without apiVersion, kind or metadata.name", f)
			}
			out[o.Kind] = append(out[o.Kind], doc)
		}
	}
	return out
}

// patchProto returns the Envoy message an EnvoyFilter patch's value
// stands for, and for a MERGE the object it is merged into (so that the
// result, as Envoy would see it, can be validated).
func patchProto(applyTo, operation, routeName, prefix string) (value, base proto.Message, err error) {
	switch applyTo {
	case "HTTP_FILTER":
		return &hcmv3.HttpFilter{}, nil, nil
	case "CLUSTER":
		return &clusterv3.Cluster{}, nil, nil
	case "VIRTUAL_HOST":
		value = &routev3.VirtualHost{}
		if operation == "MERGE" {
			base = &routev3.VirtualHost{Name: "*:80", Domains: []string{"*"}}
		}
		return value, base, nil
	case "HTTP_ROUTE":
		value = &routev3.Route{}
		if operation == "MERGE" {
			base = &routev3.Route{
				Name:  routeName,
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "outbound|8080||web.default.svc.cluster.local"},
				}},
			}
		}
		return value, base, nil
	}
	return nil, nil, fmt.Errorf("deploy: applyTo %s: not handled by this test", applyTo)
}

func TestIstioExamples(t *testing.T) {
	docs := istioDocs(t)
	if len(docs["EnvoyFilter"]) == 0 {
		t.Fatal("no EnvoyFilter in examples/istio")
	}
	// The VirtualService's route names and prefixes, which HTTP_ROUTE
	// patches refer to.
	prefixes := map[string]string{}
	for _, doc := range docs["VirtualService"] {
		var vs virtualService
		if err := yaml.Unmarshal(doc, &vs); err != nil {
			t.Fatal(err)
		}
		for _, h := range vs.Spec.HTTP {
			p := "/"
			if len(h.Match) > 0 && h.Match[0].URI["prefix"] != "" {
				p = h.Match[0].URI["prefix"]
			}
			prefixes[h.Name] = p
		}
	}

	var (
		filterSeen, clusterSeen bool
		vhLimits                []*routev3.RateLimit
		routes                  []*routev3.Route
	)
	for _, doc := range docs["EnvoyFilter"] {
		var ef envoyFilter
		if err := yaml.UnmarshalStrict(doc, &ef); err != nil {
			t.Fatalf("EnvoyFilter: %v", err)
		}
		if ef.APIVersion != "networking.istio.io/v1alpha3" {
			t.Errorf("EnvoyFilter %v: apiVersion %s", ef.Metadata["name"], ef.APIVersion)
		}
		if ef.Spec.WorkloadSelector.Labels["istio"] != "ingressgateway" {
			t.Errorf("EnvoyFilter %v: not bound to the ingress gateway", ef.Metadata["name"])
		}
		for i, p := range ef.Spec.ConfigPatches {
			where := fmt.Sprintf("EnvoyFilter %v patch %d (%s)", ef.Metadata["name"], i, p.ApplyTo)
			if p.Match.Context != "GATEWAY" {
				t.Errorf("%s: context %q, want GATEWAY", where, p.Match.Context)
			}
			routeName := ""
			if rc := p.Match.RouteConfiguration; rc != nil && rc.Vhost != nil && rc.Vhost.Route != nil {
				routeName = rc.Vhost.Route.Name
			}
			prefix, known := prefixes[routeName]
			if p.ApplyTo == "HTTP_ROUTE" && !known {
				t.Fatalf("%s: route %q is not in virtualservice.yaml", where, routeName)
			}
			value, base, err := patchProto(p.ApplyTo, p.Patch.Operation, routeName, prefix)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if err := unmarshalValue(p.Patch.Value, value); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			merged := value
			if base != nil {
				proto.Merge(base, value)
				merged = base
			}
			requireValid(t, where, merged)

			switch m := merged.(type) {
			case *hcmv3.HttpFilter:
				if m.GetName() != "envoy.filters.http.ratelimit" {
					continue
				}
				filterSeen = true
				if p.Patch.Operation != "INSERT_BEFORE" {
					t.Errorf("%s: the filter must go before the router (INSERT_BEFORE), not %s", where, p.Patch.Operation)
				}
				var rl ratelimitv3.RateLimit
				if err := m.GetTypedConfig().UnmarshalTo(&rl); err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				checkRateLimitFilter(t, &rl, "edge", "envoy_rls")
			case *clusterv3.Cluster:
				if m.GetName() != "envoy_rls" {
					continue
				}
				clusterSeen = true
				requireHTTP2(t, m)
				if host, port, err := clusterEndpoint(m); err != nil || host != "envoy-rls.envoy-rls.svc.cluster.local" || port != 8081 {
					t.Errorf("%s: endpoint %s:%d (%v), want the Helm release's Service envoy-rls.envoy-rls.svc.cluster.local:8081", where, host, port, err)
				}
			case *routev3.VirtualHost:
				vhLimits = append(vhLimits, m.GetRateLimits()...)
			case *routev3.Route:
				routes = append(routes, m)
			}
		}
	}
	if !filterSeen || !clusterSeen {
		t.Fatalf("the EnvoyFilters add the ratelimit filter: %v, the envoy_rls cluster: %v", filterSeen, clusterSeen)
	}

	// Every descriptor the gateway sends matches a rule of the ConfigMap.
	var samples []descriptorSample
	for _, r := range routes {
		s, err := routeSamples("route "+r.GetName(), vhLimits, r)
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, s...)
	}
	// A route without a patch gets the virtual host's limits alone.
	s, err := routeSamples("route default", vhLimits, &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}})
	if err != nil {
		t.Fatal(err)
	}
	samples = append(samples, s...)
	requireRulesMatch(t, istioRules(t, docs), "edge", samples)
}

// istioRules loads the rules of examples/istio's ConfigMap, and checks
// that they are examples/ratelimit.yaml byte for byte.
func istioRules(t *testing.T, docs map[string][][]byte) *descriptors.Config {
	t.Helper()
	if len(docs["ConfigMap"]) != 1 {
		t.Fatalf("want one ConfigMap of rules in examples/istio, have %d", len(docs["ConfigMap"]))
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(docs["ConfigMap"][0], &cm); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for name, text := range cm.Data {
		files[name] = []byte(text)
	}
	if got, want := cm.Data["ratelimit.yaml"], string(readRepoFile(t, "examples/ratelimit.yaml")); got != want {
		t.Error("examples/istio/ratelimit-configmap.yaml's ratelimit.yaml differs from examples/ratelimit.yaml")
	}
	cfg, err := descriptors.Parse(files)
	if err != nil {
		t.Fatalf("examples/istio ConfigMap: %v", err)
	}
	return cfg
}
