package descriptors

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// ErrBadRate is wrapped by every error ParseRate returns.
var ErrBadRate = errors.New("descriptors: bad rate")

// Rate is a parsed rate string such as "100/min" or "10 per 5 minutes".
// The zero value is not a valid rate.
//
// Requests and Period are exact. Unit and Multiplier are how the rate is
// reported to Envoy (current_limit): the written unit and multiplier, so
// "10/5m" is MINUTE ×5 and "1000/30 days" is DAY ×30. Periods in
// milliseconds are reported in seconds: a whole number of seconds keeps
// its multiplier ("10/2000ms" is SECOND ×2), any other period is SECOND
// ×1 with RequestsPerUnit scaled to one second and rounded down
// ("10/500ms" reports 20 per SECOND, "1/1500ms" reports 0 per SECOND).
type Rate struct {
	// Requests is the number of hits admitted per Period; 0 ≤ Requests ≤
	// math.MaxUint32.
	Requests int64
	// Period is the window in microseconds; > 0.
	Period int64
	// Unit is the envoy unit the rate is reported in.
	Unit Unit
	// Multiplier is the number of Units in the reported window; ≥ 1.
	Multiplier uint32
}

// RequestsPerUnit returns the requests_per_unit Envoy is told: Requests
// when Unit×Multiplier is exactly Period, else Requests scaled to one
// Unit×Multiplier and rounded down (sub-second periods), capped at
// math.MaxUint32.
func (r Rate) RequestsPerUnit() uint32 {
	window := r.Unit.Micros() * int64(r.Multiplier)
	n := r.Requests
	if window != r.Period && r.Period > 0 {
		n = r.Requests * window / r.Period
	}
	if n > math.MaxUint32 {
		return math.MaxUint32
	}
	if n < 0 {
		return 0
	}
	return uint32(n)
}

// String returns the rate in the canonical form "<limit>/<n><unit>", for
// example "10/5m" or "20/1s".
func (r Rate) String() string {
	p := r.Period
	for _, u := range [...]struct {
		name string
		us   int64
	}{{"w", strategies.Week}, {"d", strategies.Day}, {"h", strategies.Hour}, {"m", strategies.Minute}, {"s", strategies.Second}, {"ms", strategies.Millisecond}} {
		if p%u.us == 0 {
			return fmt.Sprintf("%d/%d%s", r.Requests, p/u.us, u.name)
		}
	}
	return fmt.Sprintf("%d/%dus", r.Requests, p)
}

// rateUnits maps the grammar's unit words to microseconds.
var rateUnits = map[string]int64{
	"ms": strategies.Millisecond, "millisecond": strategies.Millisecond, "milliseconds": strategies.Millisecond,
	"s": strategies.Second, "sec": strategies.Second, "second": strategies.Second, "seconds": strategies.Second,
	"m": strategies.Minute, "min": strategies.Minute, "minute": strategies.Minute, "minutes": strategies.Minute,
	"h": strategies.Hour, "hr": strategies.Hour, "hour": strategies.Hour, "hours": strategies.Hour,
	"d": strategies.Day, "day": strategies.Day, "days": strategies.Day,
	"w": strategies.Week, "week": strategies.Week, "weeks": strategies.Week,
}

const rateUnitList = "ms, millisecond(s), s, sec, second(s), m, min, minute(s), h, hr, hour(s), d, day(s), w, week(s)"

// ParseRate parses the Traffik rate grammar: "<limit>/<n?><unit>" or
// "<limit> per <n?> <unit>", case-insensitive, with spaces allowed
// around the parts. Units are ms/millisecond(s), s/sec/second(s),
// m/min/minute(s), h/hr/hour(s), d/day(s) and w/week(s). Examples:
// "100/min", "5/s", "10/5m", "2 per second", "1000/30 days". The limit is
// a non-negative integer up to math.MaxUint32 (0 denies every request);
// the multiplier n is a positive integer. Errors wrap ErrBadRate.
func ParseRate(s string) (Rate, error) {
	in := strings.ToLower(strings.TrimSpace(s))
	var lim, per string
	if i := strings.IndexByte(in, '/'); i >= 0 {
		lim, per = in[:i], in[i+1:]
	} else if i := strings.Index(in, "per"); i >= 0 {
		lim, per = in[:i], in[i+len("per"):]
	} else {
		return Rate{}, fmt.Errorf(`%w %q: expected "<limit>/<period>" or "<limit> per <period>", such as "100/min"`, ErrBadRate, s)
	}
	requests, err := parseRateLimit(strings.TrimSpace(lim))
	if err != nil {
		return Rate{}, fmt.Errorf("%w %q: %s", ErrBadRate, s, err)
	}
	mult, unitUS, err := parseRatePeriod(strings.TrimSpace(per))
	if err != nil {
		return Rate{}, fmt.Errorf("%w %q: %s", ErrBadRate, s, err)
	}
	r := Rate{Requests: requests, Period: mult * unitUS, Multiplier: uint32(mult)}
	switch unitUS {
	case strategies.Millisecond:
		r.Unit = UnitSecond
		if r.Period%strategies.Second == 0 {
			r.Multiplier = uint32(r.Period / strategies.Second)
		} else {
			r.Multiplier = 1
		}
	case strategies.Second:
		r.Unit = UnitSecond
	case strategies.Minute:
		r.Unit = UnitMinute
	case strategies.Hour:
		r.Unit = UnitHour
	case strategies.Day:
		r.Unit = UnitDay
	case strategies.Week:
		r.Unit = UnitWeek
	}
	return r, nil
}

func parseRateLimit(lim string) (int64, error) {
	switch {
	case lim == "":
		return 0, errors.New("missing limit before the period")
	case strings.HasPrefix(lim, "-"):
		return 0, fmt.Errorf("limit %s is negative", lim)
	case strings.ContainsAny(lim, ".e"):
		if _, err := strconv.ParseFloat(lim, 64); err == nil {
			return 0, fmt.Errorf("limit %s is fractional; use a whole number of requests", lim)
		}
	}
	if !allDigits(lim) {
		return 0, fmt.Errorf("limit %q is not a whole number", lim)
	}
	n, err := strconv.ParseInt(lim, 10, 64)
	if err != nil || n > math.MaxUint32 {
		return 0, fmt.Errorf("limit %s is too large (at most %d)", lim, uint32(math.MaxUint32))
	}
	return n, nil
}

func parseRatePeriod(per string) (mult, unitUS int64, err error) {
	if per == "" {
		return 0, 0, errors.New("missing period after the limit")
	}
	i := 0
	for i < len(per) && (per[i] >= '0' && per[i] <= '9' || per[i] == '.' || per[i] == '-') {
		i++
	}
	num := per[:i]
	rest := strings.TrimLeft(per[i:], " \t")
	j := 0
	for j < len(rest) && rest[j] >= 'a' && rest[j] <= 'z' {
		j++
	}
	word, tail := rest[:j], strings.TrimSpace(rest[j:])
	if word == "" {
		return 0, 0, fmt.Errorf("missing unit in period %q (valid units: %s)", per, rateUnitList)
	}
	if tail != "" {
		if tail[0] >= '0' && tail[0] <= '9' {
			return 0, 0, fmt.Errorf("compound period %q is not supported; write it in one unit, such as 150m for 2h30m", per)
		}
		return 0, 0, fmt.Errorf("unknown unit %q (valid units: %s)", strings.TrimSpace(rest), rateUnitList)
	}
	us, ok := rateUnits[word]
	if !ok {
		return 0, 0, fmt.Errorf("unknown unit %q (valid units: %s)", word, rateUnitList)
	}
	mult = 1
	if num != "" {
		if !allDigits(num) {
			return 0, 0, fmt.Errorf("multiplier %s must be a positive whole number", num)
		}
		mult, err = strconv.ParseInt(num, 10, 64)
		if err != nil || mult > math.MaxUint32 || mult > strategies.MaxExact/us {
			return 0, 0, fmt.Errorf("multiplier %s is too large", num)
		}
		if mult == 0 {
			return 0, 0, errors.New("multiplier must not be zero")
		}
	}
	return mult, us, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
