// Package source is the seam between where rate-limit rules come from
// and the limiter that serves them. A Source produces validated rule
// sets (*descriptors.Config, built with descriptors.Parse or
// descriptors.Build) and hands each one to an Updates; the caller swaps
// the limiter's tree atomically (limiter.SetConfig). A refused rule set
// is reported with every problem it has, and the previous rules keep
// serving.
//
// Two sources exist: File (this package: a YAML file or directory,
// reloaded on change and on SIGHUP) and xds.Source (internal/source/xds:
// RateLimitConfig resources over a State-of-the-World ADS stream).
// Adding a third source touches nothing in pkg/limiter or
// pkg/descriptors:
//
//  1. write the source (internal/source/NAME): a type with Name and Run
//     that turns its input into []descriptors.DomainSpec, builds them
//     with descriptors.Build (descriptors.Parse for YAML bytes), and calls
//     Apply or Refuse, reporting a refused input once;
//  2. add its flags and the value of --config-source in
//     internal/settings (a block or a file of its own, checks in
//     Validate);
//  3. add a case to newSource in internal/app/rules.go (its constructor
//     in a file of its own, as internal/app/xds.go);
//  4. test it against a real peer, as internal/source/xds does with
//     internal/xdstest.
package source

import (
	"context"

	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
)

// Updates receives what a Source produces. A Source calls its methods
// from one goroutine at a time, never concurrently.
type Updates interface {
	// Apply serves cfg from now on. cfg is validated and immutable.
	Apply(cfg *descriptors.Config)
	// Refuse reports a rule set that did not validate (err joins every
	// problem) or could not be read; the previous rules keep serving. A
	// source reports a given refused rule set once, however often it is
	// offered again.
	Refuse(err error)
}

// Source produces rule sets until its context is done.
type Source interface {
	// Name names the source in logs: "file" or "xds".
	Name() string
	// Run delivers the first rule set and every later one to u until
	// ctx is done, then returns nil. It returns an error when it cannot
	// go on at all (a config path that does not exist, for instance);
	// the rules applied so far keep serving.
	Run(ctx context.Context, u Updates) error
}
