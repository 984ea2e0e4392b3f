// Package helmtest tests the Helm chart helm/envoy-rls: it renders the
// chart with each values file of helm/envoy-rls/ci and decodes every
// manifest strictly into the Kubernetes API types of client-go's scheme,
// so that a misspelled or misplaced field fails here rather than at
// `kubectl apply`. It is a package of its own because the Kubernetes
// modules are large and nothing else needs them.
package helmtest
