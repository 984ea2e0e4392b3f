package descriptors

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// ErrBadOverride is wrapped by the errors of OverrideLimit.
var ErrBadOverride = errors.New("descriptors: bad limit override")

// OverrideLimit builds the limit of a request descriptor's limit override
// (Envoy's RateLimitDescriptor.limit): requestsPerUnit hits per
// multiplier×unit (a multiplier of 0, the proto default, means 1),
// stepped by fixed_window. Its UID encodes the kind "o", the domain name,
// the number of entries, each entry's key, the override's rate and the
// strategy, so it never equals the UID of a configured rule, and two
// overrides with different rates on the same keys count apart. d may be
// nil (an unknown domain); its name is then "". The returned limit has no
// Rule. OverrideLimit costs one strategy Prepare and one UID string.
func OverrideLimit(d *Domain, entries []Entry, requestsPerUnit uint32, unit Unit, multiplier uint32) (*RateLimit, error) {
	if !unit.Valid() {
		return nil, fmt.Errorf("%w: unit %d is not a valid unit", ErrBadOverride, int32(unit))
	}
	if multiplier == 0 {
		multiplier = 1
	}
	period := unit.Micros()
	if int64(multiplier) > strategies.MaxExact/period {
		return nil, fmt.Errorf("%w: unit_multiplier %d is too large: a window of %d × %s is longer than a limit can count (at most %d × %s)",
			ErrBadOverride, multiplier, multiplier, unit, strategies.MaxExact/period, unit)
	}
	period *= int64(multiplier)
	strat, ok := strategies.Lookup(strategies.Default)
	if !ok {
		return nil, fmt.Errorf("%w: strategy %s is not registered", ErrBadOverride, strategies.Default)
	}
	lim, err := strat.Prepare(strategies.Limit{Requests: int64(requestsPerUnit), Period: period})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOverride, err)
	}
	name := ""
	if d != nil {
		name = d.Name
	}
	n := 48 + len(name)
	for _, e := range entries {
		n += len(e.Key) + 4
	}
	b := make([]byte, 0, n)
	b = AppendComponent(b, uidKindOverride)
	b = AppendComponent(b, name)
	b = AppendComponent(b, strconv.Itoa(len(entries)))
	for _, e := range entries {
		b = AppendComponent(b, e.Key)
	}
	b = appendUintComponent(b, uint64(requestsPerUnit))
	b = AppendComponent(b, unit.String())
	b = appendUintComponent(b, uint64(multiplier))
	b = AppendComponent(b, strat.Name())
	return &RateLimit{
		Unit:            unit,
		RequestsPerUnit: requestsPerUnit,
		UnitMultiplier:  multiplier,
		Strategy:        strat,
		Limit:           lim,
		UID:             string(b),
	}, nil
}

// appendUintComponent appends the decimal text of v as one component,
// as AppendComponent(dst, strconv.FormatUint(v, 10)) would, without
// allocating.
func appendUintComponent(dst []byte, v uint64) []byte {
	var num [20]byte
	digits := strconv.AppendUint(num[:0], v, 10)
	dst = strconv.AppendInt(dst, int64(len(digits)), 10)
	dst = append(dst, ':')
	return append(dst, digits...)
}
