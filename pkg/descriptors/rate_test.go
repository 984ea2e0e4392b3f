package descriptors

import (
	"errors"
	"strings"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in    string
		want  Rate
		rpu   uint32
		canon string
	}{
		{"100/min", Rate{100, strategies.Minute, UnitMinute, 1}, 100, "100/1m"},
		{"5/s", Rate{5, strategies.Second, UnitSecond, 1}, 5, "5/1s"},
		{"10/5m", Rate{10, 5 * strategies.Minute, UnitMinute, 5}, 10, "10/5m"},
		{"2 per second", Rate{2, strategies.Second, UnitSecond, 1}, 2, "2/1s"},
		{"1000/30 days", Rate{1000, 30 * strategies.Day, UnitDay, 30}, 1000, "1000/30d"},
		{"  7 PER 2 Hours ", Rate{7, 2 * strategies.Hour, UnitHour, 2}, 7, "7/2h"},
		{"3 / hr", Rate{3, strategies.Hour, UnitHour, 1}, 3, "3/1h"},
		{"1/w", Rate{1, strategies.Week, UnitWeek, 1}, 1, "1/1w"},
		{"4 per 2 weeks", Rate{4, 2 * strategies.Week, UnitWeek, 2}, 4, "4/2w"},
		{"9/d", Rate{9, strategies.Day, UnitDay, 1}, 9, "9/1d"},
		{"0/s", Rate{0, strategies.Second, UnitSecond, 1}, 0, "0/1s"},
		{"60/minutes", Rate{60, strategies.Minute, UnitMinute, 1}, 60, "60/1m"},
		{"8/sec", Rate{8, strategies.Second, UnitSecond, 1}, 8, "8/1s"},
		// Millisecond periods are reported in seconds.
		{"10/500ms", Rate{10, 500 * strategies.Millisecond, UnitSecond, 1}, 20, "10/500ms"},
		{"1/1500ms", Rate{1, 1500 * strategies.Millisecond, UnitSecond, 1}, 0, "1/1500ms"},
		{"10/2000 milliseconds", Rate{10, 2 * strategies.Second, UnitSecond, 2}, 10, "10/2s"},
		{"4294967295/s", Rate{4294967295, strategies.Second, UnitSecond, 1}, 4294967295, "4294967295/1s"},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if err != nil {
			t.Errorf("ParseRate(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseRate(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if rpu := got.RequestsPerUnit(); rpu != tt.rpu {
			t.Errorf("ParseRate(%q).RequestsPerUnit() = %d, want %d", tt.in, rpu, tt.rpu)
		}
		if s := got.String(); s != tt.canon {
			t.Errorf("ParseRate(%q).String() = %q, want %q", tt.in, s, tt.canon)
		}
	}
}

func TestParseRateErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"100", `expected "<limit>/<period>" or "<limit> per <period>"`},
		{"100 min", `expected "<limit>/<period>" or "<limit> per <period>"`},
		{"-5/s", "limit -5 is negative"},
		{"1.5/s", "limit 1.5 is fractional"},
		{"ten/s", `limit "ten" is not a whole number`},
		{"/s", "missing limit"},
		{"5/", "missing period"},
		{"5/0s", "multiplier must not be zero"},
		{"5 per 0 minutes", "multiplier must not be zero"},
		{"5/1.5h", "multiplier 1.5 must be a positive whole number"},
		{"5/fortnight", `unknown unit "fortnight"`},
		{"5/month", `unknown unit "month"`},
		{"5/2h30m", `compound period "2h30m" is not supported`},
		{"5/1h 30m", `compound period "1h 30m" is not supported`},
		{"5/10", `missing unit in period "10"`},
		{"5/min!", `unknown unit "min!"`},
		{"4294967296/s", "limit 4294967296 is too large"},
		{"1/99999999999w", "multiplier 99999999999 is too large"},
	}
	for _, tt := range tests {
		_, err := ParseRate(tt.in)
		if err == nil {
			t.Errorf("ParseRate(%q): no error, want %q", tt.in, tt.want)
			continue
		}
		if !errors.Is(err, ErrBadRate) {
			t.Errorf("ParseRate(%q): error %v does not wrap ErrBadRate", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseRate(%q) error = %q, want it to contain %q", tt.in, err, tt.want)
		}
	}
}

func TestParseUnit(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Unit
		us   int64
	}{
		{"second", UnitSecond, strategies.Second},
		{"MINUTE", UnitMinute, strategies.Minute},
		{"Hour", UnitHour, strategies.Hour},
		{"day", UnitDay, strategies.Day},
		{"week", UnitWeek, strategies.Week},
		{"month", UnitMonth, 30 * strategies.Day},
		{"year", UnitYear, 365 * strategies.Day},
	} {
		u, ok := ParseUnit(tt.in)
		if !ok || u != tt.want || u.Micros() != tt.us {
			t.Errorf("ParseUnit(%q) = %v, %v (%dµs), want %v (%dµs)", tt.in, u, ok, u.Micros(), tt.want, tt.us)
		}
		if u.String() != strings.ToUpper(tt.in) {
			t.Errorf("%v.String() = %q", u, u.String())
		}
	}
	if _, ok := ParseUnit("fortnight"); ok {
		t.Error(`ParseUnit("fortnight") succeeded`)
	}
	if UnitUnknown.Valid() || Unit(8).Valid() || UnitUnknown.Micros() != 0 || Unit(99).String() != "UNKNOWN" {
		t.Error("invalid units must report as invalid")
	}
	// The numeric values are envoy's RateLimitResponse_RateLimit_Unit.
	if UnitSecond != 1 || UnitMinute != 2 || UnitHour != 3 || UnitDay != 4 || UnitMonth != 5 || UnitYear != 6 || UnitWeek != 7 {
		t.Error("unit values differ from envoy's")
	}
}
