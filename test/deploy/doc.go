// Package deploy holds the tests of the deployment files: the Dockerfile,
// examples/envoy.yaml, examples/istio and examples/docker-compose.yaml.
// They load each file the way its consumer does (Envoy's protos through
// go-control-plane, the rules through pkg/descriptors) so that a file that
// Envoy, Istio or Compose would reject fails here first. The Helm chart's
// tests live in the subpackage helmtest, which needs the Kubernetes API
// modules.
package deploy
