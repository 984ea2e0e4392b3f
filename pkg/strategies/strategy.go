// Package strategies holds envoy-rls's rate-limiting algorithms as pure step
// functions: given the previous state of one key, the current time, the
// rule's limit and the hits of this request, a Strategy returns the next
// state and a Decision. Strategies do no I/O, read no clock and take no
// locks; the stores (pkg/stores/...) own state and concurrency.
//
// Time is an integer number of microseconds since the Unix epoch
// everywhere in this package. All intermediate values of every strategy
// stay within ±2^53 (MaxExact) so that the Lua runtime of the same math in
// Redis, whose numbers are float64, computes exactly the same results;
// Prepare rejects limits for which that cannot be guaranteed.
package strategies

import "errors"

// MaxExact is the largest magnitude an intermediate value may reach: 2^53,
// the largest integer range a float64 (Redis Lua's number) holds exactly.
const MaxExact = int64(1) << 53

// Microseconds per common unit.
const (
	Millisecond int64 = 1000
	Second            = 1000 * Millisecond
	Minute            = 60 * Second
	Hour              = 60 * Minute
	Day               = 24 * Hour
	Week              = 7 * Day
)

// ErrInvalidLimit is wrapped by every error Prepare returns.
var ErrInvalidLimit = errors.New("invalid limit")

// Limit is the rate of one rule: Requests hits per Period. The zero value
// is not usable; obtain a Limit through Strategy.Prepare, which validates
// it and fills the defaults and derived fields.
type Limit struct {
	// Requests is L, the hits admitted per Period. 0 denies every request
	// that has hits > 0.
	Requests int64
	// Period is W in microseconds; > 0.
	Period int64
	// Burst is the capacity of token_bucket and token_bucket_with_debt
	// (default Requests) and the burst of gcra (default 1). Other
	// strategies ignore it.
	Burst int64
	// MaxDebt is how far below zero token_bucket_with_debt lets tokens
	// fall (default 0). Other strategies ignore it.
	MaxDebt int64

	// Derived by Prepare; strategy specific (for example Period and
	// Requests divided by their greatest common divisor, so that rates
	// are computed exactly in integers).
	RateNum int64 // L / gcd(L, W)
	RateDen int64 // W / gcd(L, W)
}

// Entry is one element of a log or queue state: Hits admitted at At.
type Entry struct {
	At   int64
	Hits int64
}

// State is the stored state of one key. Its meaning is private to the
// strategy that produced it; the zero State is a fresh key. Fixed-size
// strategies use only the words A, B and C; sliding_window_log and
// leaky_bucket_with_queue also use Log.
//
// Step never writes to prev.Log[0:len(prev.Log)]: it may reslice it and
// append to it, so a caller that discards the returned State still holds
// an intact prev.
type State struct {
	A, B, C int64
	Log     []Entry
}

// Decision is a strategy's answer for one request on one key.
type Decision struct {
	// Allowed reports whether the hits were admitted (and consumed).
	Allowed bool
	// Exceeds reports that the hits exceed what the limit can ever admit
	// at once (hits > capacity): such a request is never allowed and has
	// RetryAfter 0.
	Exceeds bool
	// Remaining is the number of single-hit requests still admissible
	// now, after this request; never negative.
	Remaining int64
	// Reset is the time in microseconds until the state is back to fully
	// fresh (what a key that has never been seen would answer).
	Reset int64
	// RetryAfter is the exact time in microseconds after which the same
	// request would be admitted if nothing else arrives; 0 when allowed
	// or when Exceeds.
	RetryAfter int64
	// TTL is how long in microseconds the returned state must be kept;
	// after it the key may be deleted and read back as the zero State
	// with no change in behaviour. 0 means the state may be deleted now.
	TTL int64
}

// Strategy is one rate-limiting algorithm. Implementations are stateless
// values, safe for concurrent use.
type Strategy interface {
	// Name is the strategy's config name, such as "gcra".
	Name() string
	// Prepare validates lim for this strategy and returns it with its
	// defaults and derived fields filled. It is called once per rule when
	// a config is loaded, never per request.
	Prepare(lim Limit) (Limit, error)
	// Step applies one request of hits at now to prev and returns the next
	// state and the decision. hits > 0 consumes, hits == 0 checks without
	// consuming, hits < 0 refunds -hits (never more than was consumed).
	// A denied request returns prev unchanged. lim must come from Prepare.
	Step(prev State, now int64, lim Limit, hits int64) (State, Decision)
}

// Default is the strategy of a rule that names none.
const Default = "fixed_window"
