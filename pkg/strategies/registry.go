package strategies

import (
	"slices"
	"sort"
)

// registry lists every strategy with the parameters it reads beyond its
// rate. Adding a strategy is its file trio (x.go with its LuaSource,
// x.lua, x_test.go), its tables and properties in strategytest, and one
// line here; config validation (pkg/descriptors), the Lua prelude and the
// Redis argument layout are derived from this table.
var registry = [...]entry{
	{FixedWindow{}, nil},
	{SlidingWindowCounter{}, nil},
	{SlidingWindowLog{}, nil},
	{TokenBucket{}, []Param{ParamBurst}},
	{TokenBucketWithDebt{}, []Param{ParamBurst, ParamMaxDebt}},
	{LeakyBucket{}, nil},
	{LeakyBucketWithQueue{}, nil},
	{GCRA{}, []Param{ParamBurst}},
}

// params lists every parameter kind, in the order of the argument layout
// (see LimitFields). Adding a kind is a Limit field, a Param variable and
// one line here.
var params = [...]Param{ParamBurst, ParamMaxDebt}

// entry is one registered strategy.
type entry struct {
	Strategy Strategy
	// Params are the parameters the strategy reads beyond Requests and
	// Period; setting any other in a rule is a config error.
	Params []Param
}

// Param is a per-rule parameter that some strategies read beyond the rate
// (Requests per Period) every strategy reads.
type Param struct {
	// Name is the parameter's config key and its field in the Lua limit
	// table, such as "burst".
	Name  string
	field func(*Limit) *int64
}

// The parameter kinds.
var (
	// ParamBurst is Limit.Burst.
	ParamBurst = Param{Name: "burst", field: func(l *Limit) *int64 { return &l.Burst }}
	// ParamMaxDebt is Limit.MaxDebt.
	ParamMaxDebt = Param{Name: "max_debt", field: func(l *Limit) *int64 { return &l.MaxDebt }}
)

// Get returns the parameter's value in lim.
func (p Param) Get(lim Limit) int64 { return *p.field(&lim) }

// Lookup returns the strategy with the given config name.
func Lookup(name string) (Strategy, bool) {
	for _, e := range registry {
		if e.Strategy.Name() == name {
			return e.Strategy, true
		}
	}
	return nil, false
}

// Names returns the config names of all strategies, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for _, e := range registry {
		names = append(names, e.Strategy.Name())
	}
	sort.Strings(names)
	return names
}

// Reads reports whether the named strategy reads the named parameter.
func Reads(strategy, param string) bool {
	for _, e := range registry {
		if e.Strategy.Name() == strategy {
			return slices.ContainsFunc(e.Params, func(p Param) bool { return p.Name == param })
		}
	}
	return false
}

// Users returns the sorted names of the strategies that read the named
// parameter.
func Users(param string) []string {
	var names []string
	for _, n := range Names() {
		if Reads(n, param) {
			names = append(names, n)
		}
	}
	return names
}

// LimitFields returns the names of the fields of a prepared Limit that a
// runtime outside Go reads, in the order of the script argument layout:
// requests, period, each parameter kind in Params order, rate_num,
// rate_den. They are also the fields of the Lua limit table.
func LimitFields() []string {
	f := []string{"requests", "period"}
	for _, p := range params {
		f = append(f, p.Name)
	}
	return append(f, "rate_num", "rate_den")
}

// LimitArgs is len(LimitFields()): how many script arguments a Limit
// takes.
func LimitArgs() int { return 4 + len(params) }

// EncodeLimit writes lim's fields into dst in the LimitFields order and
// returns the number written, LimitArgs(); dst must have room for them.
func EncodeLimit(dst []int64, lim Limit) int {
	dst[0], dst[1] = lim.Requests, lim.Period
	n := 2
	for _, p := range params {
		dst[n] = p.Get(lim)
		n++
	}
	dst[n], dst[n+1] = lim.RateNum, lim.RateDen
	return n + 2
}
