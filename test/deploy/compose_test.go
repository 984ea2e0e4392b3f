package deploy

import (
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"sigs.k8s.io/yaml"

	"github.com/envoy-rls/envoy-rls/internal/settings"
)

// composeFile is the part of the Compose specification the example uses;
// it is decoded strictly, so a misspelled key fails.
type composeFile struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
}

type composeService struct {
	Image string `json:"image"`
	Build *struct {
		Context    string `json:"context"`
		Dockerfile string `json:"dockerfile"`
	} `json:"build"`
	Command     []string                     `json:"command"`
	Environment map[string]string            `json:"environment"`
	Volumes     []string                     `json:"volumes"`
	Ports       []string                     `json:"ports"`
	DependsOn   map[string]map[string]string `json:"depends_on"`
	Healthcheck *struct {
		Test     []string `json:"test"`
		Interval string   `json:"interval"`
		Timeout  string   `json:"timeout"`
		Retries  int      `json:"retries"`
	} `json:"healthcheck"`
}

// mounts returns the service's bind mounts as container path → host path
// (relative to examples/).
func (s composeService) mounts() map[string]string {
	out := map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 {
			out[parts[1]] = parts[0]
		}
	}
	return out
}

// publishes reports whether the service publishes container port p.
func (s composeService) publishes(p string) bool {
	for _, spec := range s.Ports {
		if strings.HasSuffix(spec, ":"+p) || spec == p {
			return true
		}
	}
	return false
}

// flagValue returns the value of the flag name in args, written with one
// or two dashes, as "-name v" or "-name=v".
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		for _, f := range []string{"-" + name, "--" + name} {
			if a == f && i+1 < len(args) {
				return args[i+1], true
			}
			if v, ok := strings.CutPrefix(a, f+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

func TestDockerCompose(t *testing.T) {
	var cf composeFile
	if err := yaml.UnmarshalStrict(readRepoFile(t, "examples/docker-compose.yaml"), &cf); err != nil {
		t.Fatalf("examples/docker-compose.yaml: %v", err)
	}
	for _, name := range []string{"envoy", "envoy-rls", "redis", "upstream"} {
		if _, ok := cf.Services[name]; !ok {
			t.Fatalf("no service %q", name)
		}
	}
	envoy, rls, upstream := cf.Services["envoy"], cf.Services["envoy-rls"], cf.Services["upstream"]

	// Envoy runs examples/envoy.yaml and publishes its listener and admin.
	conf, ok := flagValue(envoy.Command, "c")
	if !ok {
		conf, ok = flagValue(envoy.Command, "config-path")
	}
	if !ok || envoy.mounts()[conf] != "./envoy.yaml" {
		t.Errorf("envoy: -c %q is not the mount of ./envoy.yaml (%v)", conf, envoy.mounts())
	}
	var b bootstrapv3.Bootstrap
	if err := unmarshalStrict(readRepoFile(t, "examples/envoy.yaml"), &b); err != nil {
		t.Fatal(err)
	}
	for _, l := range b.GetStaticResources().GetListeners() {
		if p := fmt.Sprint(l.GetAddress().GetSocketAddress().GetPortValue()); !envoy.publishes(p) {
			t.Errorf("envoy: listener port %s is not published", p)
		}
	}
	if p := fmt.Sprint(b.GetAdmin().GetAddress().GetSocketAddress().GetPortValue()); !envoy.publishes(p) {
		t.Errorf("envoy: admin port %s is not published", p)
	}

	// Every cluster of envoy.yaml points at a service of the file, on a
	// port that service listens on.
	exposed := dockerfilePorts(t)
	for _, c := range b.GetStaticResources().GetClusters() {
		host, port, err := clusterEndpoint(c)
		if err != nil {
			t.Fatal(err)
		}
		svc, ok := cf.Services[host]
		if !ok {
			t.Errorf("cluster %s: host %q is not a service of docker-compose.yaml", c.GetName(), host)
			continue
		}
		p := fmt.Sprint(port)
		switch host {
		case "envoy-rls":
			addr, _ := flagValue(svc.Command, "grpc-addr")
			if addr == "" {
				addr = ":8081" // the binary's default
			}
			if !strings.HasSuffix(addr, ":"+p) || !slices.Contains(exposed, p) {
				t.Errorf("cluster %s: port %s, but envoy-rls serves gRPC on %s and the image exposes %v", c.GetName(), p, addr, exposed)
			}
		case "upstream":
			if !slices.ContainsFunc(svc.Command, func(a string) bool { return strings.HasSuffix(a, ":"+p) }) {
				t.Errorf("cluster %s: port %s is not where the upstream listens (%v)", c.GetName(), p, svc.Command)
			}
		default:
			t.Errorf("cluster %s: no check for host %s", c.GetName(), host)
		}
	}

	// envoy-rls: built from the Dockerfile, serving the example rules from
	// Redis, with flags the binary accepts.
	if rls.Build == nil || path.Clean(path.Join("examples", rls.Build.Context)) != "." || rls.Build.Dockerfile != "Dockerfile" {
		t.Errorf("envoy-rls: build %+v, want the repository's Dockerfile", rls.Build)
	}
	if len(rls.Command) == 0 || rls.Command[0] != "serve" {
		t.Fatalf("envoy-rls: command %v does not start with serve", rls.Command)
	}
	var s settings.Serve
	if err := settings.ServeFlags(&s, io.Discard).Parse(rls.Command[1:]); err != nil {
		t.Errorf("envoy-rls: serve rejects %v: %v", rls.Command[1:], err)
	}
	if s.Store != "redis" || !strings.HasPrefix(s.RedisURL, "redis://redis:") {
		t.Errorf("envoy-rls: store %q at %q, want redis at redis://redis:6379", s.Store, s.RedisURL)
	}
	for env := range rls.Environment {
		name, ok := strings.CutPrefix(env, settings.EnvPrefix)
		if ok && settings.ServeFlags(&settings.Serve{}, io.Discard).Lookup(strings.ToLower(strings.ReplaceAll(name, "_", "-"))) == nil {
			t.Errorf("envoy-rls: %s names no flag", env)
		}
	}
	mounted := false
	for target, src := range rls.mounts() {
		if src == "./ratelimit.yaml" && (target == s.Config || path.Dir(target) == s.Config) {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("envoy-rls: --config %s is not where ./ratelimit.yaml is mounted (%v)", s.Config, rls.mounts())
	}
	for _, p := range []string{"8080", "8081"} {
		if !rls.publishes(p) || !slices.Contains(exposed, p) {
			t.Errorf("envoy-rls: port %s is not both published and EXPOSEd (%v)", p, exposed)
		}
	}
	if envoy.DependsOn["envoy-rls"]["condition"] != "service_healthy" {
		t.Error("envoy does not wait for envoy-rls to be healthy (the image's HEALTHCHECK)")
	}
	if upstream.Image == "" {
		t.Error("upstream: no image")
	}
}
