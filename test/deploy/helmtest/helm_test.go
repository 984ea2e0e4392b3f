package helmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
)

const (
	release     = "rls"
	namespace   = "envoy-rls"
	kubeVersion = "1.31.0"
)

// repoRoot returns the repository's root directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("helmtest: cannot locate the test's source file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

func chartDir(t *testing.T) string { return filepath.Join(repoRoot(t), "helm", "envoy-rls") }

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// helmBinary returns a helm binary, installing it with
// test/deploy/scripts/ensure-helm.sh when missing. Without one the test is
// skipped, except under CI=true, where it fails.
func helmBinary(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(repoRoot(t), "test", "deploy", "scripts", "ensure-helm.sh"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			helmErr = fmt.Errorf("helmtest: ensure-helm.sh: %w\n%s", err, stderr.String())
			return
		}
		helmPath = strings.TrimSpace(string(out))
	})
	if helmErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(helmErr)
		}
		t.Skip(helmErr)
	}
	return helmPath
}

// runHelm runs helm with args in the repository's root.
func runHelm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helmBinary(t), args...)
	cmd.Dir = repoRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// render runs `helm template` with the given extra arguments.
func render(t *testing.T, extra ...string) ([]byte, error) {
	t.Helper()
	args := append([]string{"template", release, chartDir(t), "--namespace", namespace, "--kube-version", kubeVersion}, extra...)
	return runHelm(t, args...)
}

// serviceMonitor is the subset of monitoring.coreos.com/v1 ServiceMonitor
// that the chart renders; it is a CRD, absent from client-go's scheme, so
// it is decoded strictly into this struct instead.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port              string           `json:"port"`
			Path              string           `json:"path"`
			Scheme            string           `json:"scheme"`
			Interval          string           `json:"interval"`
			ScrapeTimeout     string           `json:"scrapeTimeout"`
			Relabelings       []map[string]any `json:"relabelings"`
			MetricRelabelings []map[string]any `json:"metricRelabelings"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// manifests are the decoded objects of one rendering.
type manifests struct {
	deployment     *appsv1.Deployment
	service        *corev1.Service
	serviceAccount *corev1.ServiceAccount
	configMaps     map[string]*corev1.ConfigMap
	secrets        map[string]*corev1.Secret
	hpa            *autoscalingv2.HorizontalPodAutoscaler
	pdb            *policyv1.PodDisruptionBudget
	networkPolicy  *networkingv1.NetworkPolicy
	serviceMonitor *serviceMonitor
	kinds          []string
}

// decodeStrict decodes the documents of a rendering strictly: every
// field must exist in the Kubernetes type, none may repeat.
func decodeStrict(t *testing.T, rendered []byte) *manifests {
	t.Helper()
	codecs := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict)
	dec := codecs.UniversalDeserializer()
	m := &manifests{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	for i, doc := range bytes.Split(rendered, []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, doc)
		}
		m.kinds = append(m.kinds, tm.Kind)
		if tm.APIVersion == "monitoring.coreos.com/v1" && tm.Kind == "ServiceMonitor" {
			var sm serviceMonitor
			if err := yaml.UnmarshalStrict(doc, &sm); err != nil {
				t.Fatalf("ServiceMonitor: %v\n%s", err, doc)
			}
			m.serviceMonitor = &sm
			continue
		}
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: strict decoding: %v\n%s", tm.Kind, err, doc)
		}
		if gvk.GroupVersion().String() != tm.APIVersion {
			t.Fatalf("%s: decoded as %v", tm.Kind, gvk)
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			m.deployment = o
		case *corev1.Service:
			m.service = o
		case *corev1.ServiceAccount:
			m.serviceAccount = o
		case *corev1.ConfigMap:
			m.configMaps[o.Name] = o
		case *corev1.Secret:
			m.secrets[o.Name] = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			m.hpa = o
		case *policyv1.PodDisruptionBudget:
			m.pdb = o
		case *networkingv1.NetworkPolicy:
			m.networkPolicy = o
		default:
			t.Fatalf("unexpected object %T", obj)
		}
		if ns := obj.(metav1.Object).GetNamespace(); ns != namespace {
			t.Errorf("%s: namespace %q, want %q", tm.Kind, ns, namespace)
		}
	}
	sort.Strings(m.kinds)
	return m
}

// stripComments drops the YAML comment lines (helm's "# Source:").
func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// selects reports whether every selector label is among labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// knownMetrics are the Prometheus metrics envoy-rls exports (the
// dashboard may only use these and their _bucket/_count/_sum series).
var knownMetrics = []string{
	"envoy_rls_rule_hits_total", "envoy_rls_rule_over_limit_total", "envoy_rls_rule_near_limit_total",
	"envoy_rls_rule_within_limit_total", "envoy_rls_rule_shadow_mode_total", "envoy_rls_rule_exempted_total",
	"envoy_rls_request_duration_seconds", "envoy_rls_store_duration_seconds", "envoy_rls_store_errors_total",
	"envoy_rls_failure_mode_decisions_total", "envoy_rls_circuit_breaker_state", "envoy_rls_config_loads_total",
	"envoy_rls_config_last_success_timestamp_seconds", "envoy_rls_config_rules", "envoy_rls_local_cache_hits_total",
}

var metricRef = regexp.MustCompile(`\benvoy_rls_[a-z_]+`)

// checkCommon checks what every rendering must satisfy.
func checkCommon(t *testing.T, m *manifests) {
	t.Helper()
	d, svc := m.deployment, m.service
	if d == nil || svc == nil {
		t.Fatalf("no Deployment or Service among %v", m.kinds)
	}
	pod := d.Spec.Template
	if !selects(d.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("the Deployment's selector %v does not select its pods %v", d.Spec.Selector.MatchLabels, pod.Labels)
	}
	if !selects(svc.Spec.Selector, pod.Labels) {
		t.Errorf("the Service's selector %v does not select the pods %v", svc.Spec.Selector, pod.Labels)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]

	// Service ports → named container ports; gRPC declared as such.
	named := map[string]int32{}
	for _, p := range c.Ports {
		named[p.Name] = p.ContainerPort
	}
	for _, p := range svc.Spec.Ports {
		if _, ok := named[p.TargetPort.String()]; !ok {
			t.Errorf("Service port %s targets %q, not a container port", p.Name, p.TargetPort.String())
		}
		if p.Name == "grpc" && (p.AppProtocol == nil || *p.AppProtocol != "grpc") {
			t.Error("the Service's grpc port lacks appProtocol: grpc")
		}
	}
	if named["grpc"] == 0 || named["http"] == 0 {
		t.Errorf("container ports %v, want grpc and http", named)
	}

	// The restricted Pod Security Standard.
	sc := c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("the container's securityContext is not restricted: %+v", sc)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/livez" {
		t.Error("the liveness probe is not GET /livez")
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/healthcheck" {
		t.Error("the readiness probe is not GET /healthcheck")
	}

	// The arguments are accepted by the binary's own flag set, and every
	// ENVOY_RLS_ variable names one of its flags.
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("args %v do not start with serve", c.Args)
	}
	var s settings.Serve
	fs := settings.ServeFlags(&s, io.Discard)
	if err := fs.Parse(c.Args[1:]); err != nil {
		t.Errorf("envoy-rls serve rejects the chart's args %v: %v", c.Args[1:], err)
	}
	for _, e := range c.Env {
		if name, ok := strings.CutPrefix(e.Name, settings.EnvPrefix); ok {
			flagName := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
			if fs.Lookup(flagName) == nil {
				t.Errorf("env %s: envoy-rls has no flag --%s", e.Name, flagName)
			}
		}
	}

	// Volumes: the rules directory, and every referenced ConfigMap and
	// Secret rendered by the chart unless it is an existing one.
	var rulesCM string
	for _, v := range pod.Spec.Volumes {
		if v.Name == "rules" && v.ConfigMap != nil {
			rulesCM = v.ConfigMap.Name
		}
	}
	mounted := false
	for _, vm := range c.VolumeMounts {
		if vm.Name == "rules" && vm.MountPath == "/etc/envoy-rls" && vm.SubPath == "" {
			mounted = true
		}
	}
	if !mounted || !slices.Contains(c.Args, "--config=/etc/envoy-rls") {
		t.Error("the rules ConfigMap is not mounted as the --config directory (without subPath, so that updates reach the pod)")
	}
	if cm, ok := m.configMaps[rulesCM]; ok {
		files := map[string][]byte{}
		for k, v := range cm.Data {
			files[k] = []byte(v)
		}
		if _, err := descriptors.Parse(files); err != nil {
			t.Errorf("the rules ConfigMap %s does not load: %v", rulesCM, err)
		}
		if pod.Annotations["checksum/rules"] == "" {
			t.Error("no checksum/rules pod annotation")
		}
	}

	if m.hpa != nil {
		if m.hpa.Spec.ScaleTargetRef.Name != d.Name || d.Spec.Replicas != nil {
			t.Error("the HPA does not own the Deployment's replicas")
		}
	}
	if m.pdb != nil && !selects(m.pdb.Spec.Selector.MatchLabels, pod.Labels) {
		t.Error("the PodDisruptionBudget does not select the pods")
	}
	if m.networkPolicy != nil && !selects(m.networkPolicy.Spec.PodSelector.MatchLabels, pod.Labels) {
		t.Error("the NetworkPolicy does not select the pods")
	}
	if sa := m.serviceAccount; sa != nil && pod.Spec.ServiceAccountName != sa.Name {
		t.Errorf("the pods run as %q, the chart creates %q", pod.Spec.ServiceAccountName, sa.Name)
	}
	if sm := m.serviceMonitor; sm != nil {
		if !selects(sm.Spec.Selector.MatchLabels, svc.Labels) {
			t.Error("the ServiceMonitor does not select the Service")
		}
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "http" || sm.Spec.Endpoints[0].Path != "/metrics" {
			t.Errorf("the ServiceMonitor does not scrape the http port's /metrics: %+v", sm.Spec.Endpoints)
		}
	}
	for name, cm := range m.configMaps {
		if cm.Labels["grafana_dashboard"] == "" {
			continue
		}
		for key, text := range cm.Data {
			var dash struct {
				Panels []struct {
					Targets []struct {
						Expr string `json:"expr"`
					} `json:"targets"`
				} `json:"panels"`
			}
			if err := json.Unmarshal([]byte(text), &dash); err != nil {
				t.Fatalf("dashboard %s/%s: %v", name, key, err)
			}
			exprs := 0
			for _, p := range dash.Panels {
				for _, tg := range p.Targets {
					exprs++
					for _, ref := range metricRef.FindAllString(tg.Expr, -1) {
						base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(ref, "_bucket"), "_count"), "_sum")
						if !slices.Contains(knownMetrics, base) {
							t.Errorf("dashboard: %q uses %s, which envoy-rls does not export", tg.Expr, ref)
						}
					}
				}
			}
			if exprs == 0 {
				t.Error("the dashboard has no queries")
			}
		}
	}
}

// secretRefs returns the Secrets the pod reads (env and volumes).
func secretRefs(pod corev1.PodSpec) []string {
	var out []string
	for _, c := range pod.Containers {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				out = append(out, e.ValueFrom.SecretKeyRef.Name)
			}
		}
	}
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			out = append(out, v.Secret.SecretName)
		}
	}
	return out
}

// envFromSecret returns the Secret and key an env var comes from.
func envFromSecret(c corev1.Container, name string) (secret, key string) {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			return e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key
		}
	}
	return "", ""
}

func TestChartRendersStrictly(t *testing.T) {
	cases := []struct {
		file      string
		kinds     []string
		args      []string
		secrets   []string // the Secrets the pods read
		envSecret [2]string
		// envResource is an env var set from a container resource, and
		// that resource.
		envResource [2]string
	}{
		{
			file:  "defaults-values.yaml",
			kinds: []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"},
			args:  []string{"--store=memory", "--failure-mode=error"},
		},
		{
			file:      "redis-cluster-values.yaml",
			kinds:     []string{"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service", "ServiceAccount"},
			args:      []string{"--store=redis", "--redis-mode=cluster", "--redis-tls-ca=/var/run/secrets/envoy-rls/redis-tls/ca.crt", "--failure-mode=allow", "--store-timeout=20ms"},
			secrets:   []string{"redis-cluster-auth", "redis-cluster-tls"},
			envSecret: [2]string{"redis-cluster-auth", "password"},
		},
		{
			file:  "memcached-values.yaml",
			kinds: []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"},
			args:  []string{"--store=memcached", "--memcached-servers=memcached-0.memcached.cache.svc:11211,memcached-1.memcached.cache.svc:11211", "--debug-addr=127.0.0.1:6070"},
		},
		{
			file: "everything-on-values.yaml",
			kinds: []string{"ConfigMap", "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy",
				"PodDisruptionBudget", "Secret", "Service", "ServiceAccount", "ServiceMonitor"},
			args: []string{"--store=redis", "--redis-url=rediss://redis-master.redis.svc:6380/2", "--shadow-mode=true",
				"--over-limit-body=Too many requests: slow down", "--grpc-tls-client-ca=/var/run/secrets/envoy-rls/grpc-tls/ca.crt",
				"--redis-tls-cert=/var/run/secrets/envoy-rls/redis-tls/tls.crt", "--near-limit-ratio=0.9", "--log-format=console"},
			secrets:     []string{release + "-envoy-rls", release + "-envoy-rls", "envoy-rls-grpc-tls"},
			envSecret:   [2]string{release + "-envoy-rls", "redis-password"},
			envResource: [2]string{"GOMAXPROCS", "requests.cpu"},
		},
	}
	for _, tc := range cases {
		t.Run(strings.TrimSuffix(tc.file, "-values.yaml"), func(t *testing.T) {
			values := filepath.Join(chartDir(t), "ci", tc.file)
			if _, err := runHelm(t, "lint", "--strict", chartDir(t), "-f", values); err != nil {
				t.Fatal(err)
			}
			out, err := render(t, "-f", values)
			if err != nil {
				t.Fatal(err)
			}
			m := decodeStrict(t, out)
			if !slices.Equal(m.kinds, tc.kinds) {
				t.Errorf("kinds %v, want %v", m.kinds, tc.kinds)
			}
			checkCommon(t, m)
			c := m.deployment.Spec.Template.Spec.Containers[0]
			for _, a := range tc.args {
				if !slices.Contains(c.Args, a) {
					t.Errorf("args %v lack %s", c.Args, a)
				}
			}
			refs := secretRefs(m.deployment.Spec.Template.Spec)
			sort.Strings(refs)
			want := append([]string(nil), tc.secrets...)
			sort.Strings(want)
			if !slices.Equal(refs, want) {
				t.Errorf("the pods read the Secrets %v, want %v", refs, want)
			}
			for _, name := range refs {
				if strings.HasPrefix(name, release+"-") && m.secrets[name] == nil {
					t.Errorf("the pods read Secret %s, which the chart does not render", name)
				}
			}
			if s, k := envFromSecret(c, "ENVOY_RLS_REDIS_PASSWORD"); s != tc.envSecret[0] || k != tc.envSecret[1] {
				t.Errorf("ENVOY_RLS_REDIS_PASSWORD from %s/%s, want %s/%s", s, k, tc.envSecret[0], tc.envSecret[1])
			}
			if name := tc.envResource[0]; name != "" {
				i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
				if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.ResourceFieldRef == nil ||
					c.Env[i].ValueFrom.ResourceFieldRef.Resource != tc.envResource[1] || c.Env[i].ValueFrom.ResourceFieldRef.Divisor.String() != "1" {
					t.Errorf("env %s is not set from %s with divisor 1: %+v", name, tc.envResource[1], c.Env)
				}
			}
		})
	}
}

// TestChartRulesChecksum checks that `helm upgrade` rolls the pods when,
// and only when, the rules in values change.
func TestChartRulesChecksum(t *testing.T) {
	checksum := func(extra ...string) string {
		t.Helper()
		out, err := render(t, extra...)
		if err != nil {
			t.Fatal(err)
		}
		m := decodeStrict(t, out)
		sum := m.deployment.Spec.Template.Annotations["checksum/rules"]
		if sum == "" {
			t.Fatal("no checksum/rules annotation")
		}
		return sum
	}
	base := checksum()
	if got := checksum("--set", "replicaCount=5", "--set", "rateLimit.failureMode=allow"); got != base {
		t.Error("the rules checksum changed although the rules did not")
	}
	if got := checksum("--set-string", "rules.extra\\.yaml=domain: extra"); got == base {
		t.Error("the rules checksum did not change with the rules")
	}
	out, err := render(t, "--set", "existingConfigMap=my-rules")
	if err != nil {
		t.Fatal(err)
	}
	m := decodeStrict(t, out)
	if len(m.configMaps) != 0 || m.deployment.Spec.Template.Spec.Volumes[0].ConfigMap.Name != "my-rules" {
		t.Error("with existingConfigMap the chart must mount it and render no rules ConfigMap")
	}
}

// TestChartRejectsBadValues checks that values.schema.json and the
// chart's own checks reject typos and incomplete settings.
func TestChartRejectsBadValues(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"typo file", []string{"-f", filepath.Join(repoRoot(t), "test", "deploy", "testdata", "typo-values.yaml")}, "failurMode"},
		{"top-level typo", []string{"--set", "replicaCont=3"}, "replicaCont"},
		{"nested typo", []string{"--set", "store.redis.tls.enabeld=true"}, "enabeld"},
		{"bad enum", []string{"--set", "rateLimit.failureMode=open"}, "failureMode"},
		{"bad store", []string{"--set", "store.type=etcd"}, "store"},
		{"bad rules file name", []string{"--set-string", "rules.rules\\.json=x"}, "rules"},
		{"redis without address", []string{"--set", "store.type=redis"}, "store.redis.url"},
		{"sentinel without master", []string{"--set", "store.type=redis", "--set", "store.redis.mode=sentinel", "--set", "store.redis.addrs={s1:26379}"}, "master"},
		{"memcached without servers", []string{"--set", "store.type=memcached"}, "memcached.servers"},
		{"grpc tls without secret", []string{"--set", "server.grpc.tls.enabled=true"}, "existingSecret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, tc.args...)
			if err == nil {
				t.Fatalf("helm template accepted %v", tc.args)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("the error does not name %q: %v", tc.want, err)
			}
		})
	}
}

// The scheme must know every kind the chart renders except the CRD.
func TestSchemeKnowsChartKinds(t *testing.T) {
	for _, obj := range []kruntime.Object{&appsv1.Deployment{}, &corev1.Service{}, &autoscalingv2.HorizontalPodAutoscaler{},
		&policyv1.PodDisruptionBudget{}, &networkingv1.NetworkPolicy{}, &corev1.ConfigMap{}, &corev1.Secret{}, &corev1.ServiceAccount{}} {
		if _, _, err := scheme.Scheme.ObjectKinds(obj); err != nil {
			t.Errorf("%T: %v", obj, err)
		}
	}
}

// TestChartDefaultRulesAreTheExamples keeps the chart's built-in rules,
// used when values set none, identical to examples/ratelimit.yaml.
func TestChartDefaultRulesAreTheExamples(t *testing.T) {
	chart, err := os.ReadFile(filepath.Join(chartDir(t), "files", "ratelimit.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "ratelimit.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(chart, example) {
		t.Error("helm/envoy-rls/files/ratelimit.yaml differs from examples/ratelimit.yaml: copy it")
	}
}
