// Package conformance replays envoyproxy/ratelimit's own test
// expectations, transcribed as data in testdata/*.yaml, against the built
// envoy-rls binary on the memory store, Redis and Memcached. Every step
// where envoy-rls answers differently on purpose says so next to it
// (difference), with what the reference answers (reference).
package conformance
