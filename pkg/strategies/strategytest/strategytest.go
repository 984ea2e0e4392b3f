// Package strategytest holds the shared proof of the strategies: step
// tables at named instants and property tests over random request
// sequences. The same tables run against the pure step functions and,
// through an Applier, against every Store, so that the Go math and every
// store's runtime of it (Lua in Redis, CAS loops in Memcached) are held to
// one definition.
package strategytest

import (
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// Step is one request of a table: Hits at At (microseconds since the Unix
// epoch), and the decision it must get.
type Step struct {
	At   int64
	Hits int64
	Want strategies.Decision
}

// Table is a sequence of requests on one fresh key of one strategy.
type Table struct {
	Name     string
	Strategy string
	// Limit before Prepare.
	Limit strategies.Limit
	Steps []Step
}

// Applier performs one request on the key of one table and returns its
// decision: the pure step function, or a Store.
type Applier func(t testing.TB, key string, s strategies.Strategy, lim strategies.Limit, now, hits int64) strategies.Decision

var tables []Table

// add registers tables; each strategy's tables file calls it from init.
func add(ts ...Table) { tables = append(tables, ts...) }

// Tables returns every registered step table.
func Tables() []Table { return append([]Table(nil), tables...) }
