// Package defaults fills in the fields of an options struct that were
// left out. It states once the rule the packages' Options share: a
// field whose value is zero (or otherwise out of its range) means its
// default.
package defaults

// Number is what Positive accepts: integers, floats and the types made
// from them, such as time.Duration.
type Number interface {
	~int | ~int32 | ~int64 | ~uint | ~uint32 | ~uint64 | ~float64
}

// Positive returns v when it is above zero, else def.
func Positive[T Number](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Share returns v when it is a share in (0, 1], else def.
func Share(v, def float64) float64 {
	if v > 0 && v <= 1 {
		return v
	}
	return def
}
