package descriptors

import (
	"strings"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// Unit is the time unit of a rate limit as Envoy reports it in
// current_limit. Its numeric values are those of envoy's
// RateLimitResponse_RateLimit_Unit, so the server converts with a cast.
// The zero value, UnitUnknown, is never the unit of a loaded limit.
type Unit int32

// The units of envoy's RateLimitResponse.RateLimit.Unit, with the same
// numeric values.
const (
	UnitUnknown Unit = 0
	UnitSecond  Unit = 1
	UnitMinute  Unit = 2
	UnitHour    Unit = 3
	UnitDay     Unit = 4
	UnitMonth   Unit = 5
	UnitYear    Unit = 6
	UnitWeek    Unit = 7
)

var unitNames = [...]string{
	UnitUnknown: "UNKNOWN",
	UnitSecond:  "SECOND",
	UnitMinute:  "MINUTE",
	UnitHour:    "HOUR",
	UnitDay:     "DAY",
	UnitMonth:   "MONTH",
	UnitYear:    "YEAR",
	UnitWeek:    "WEEK",
}

var unitMicros = [...]int64{
	UnitSecond: strategies.Second,
	UnitMinute: strategies.Minute,
	UnitHour:   strategies.Hour,
	UnitDay:    strategies.Day,
	UnitMonth:  30 * strategies.Day,
	UnitYear:   365 * strategies.Day,
	UnitWeek:   strategies.Week,
}

// String returns the unit's envoy name, such as "MINUTE".
func (u Unit) String() string {
	if u < 0 || int(u) >= len(unitNames) {
		return "UNKNOWN"
	}
	return unitNames[u]
}

// Valid reports whether u is one of the seven real units.
func (u Unit) Valid() bool { return u >= UnitSecond && u <= UnitWeek }

// Micros returns the length of the unit in microseconds (a month is 30
// days and a year 365 days, as in the reference service), or 0 for an
// invalid unit.
func (u Unit) Micros() int64 {
	if !u.Valid() {
		return 0
	}
	return unitMicros[u]
}

// ParseUnit returns the unit named s (second, minute, hour, day, week,
// month or year), case-insensitively.
func ParseUnit(s string) (Unit, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "second":
		return UnitSecond, true
	case "minute":
		return UnitMinute, true
	case "hour":
		return UnitHour, true
	case "day":
		return UnitDay, true
	case "week":
		return UnitWeek, true
	case "month":
		return UnitMonth, true
	case "year":
		return UnitYear, true
	}
	return UnitUnknown, false
}
