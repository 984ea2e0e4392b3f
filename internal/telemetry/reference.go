package telemetry

import (
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// refMetrics are envoyproxy/ratelimit's metrics under the names its
// statsd mapping (src/stats/prom/default_mapper.yaml) gives them, which
// Envoy Gateway's dashboards and its users' alerts query:
//
//   - ratelimit_service_rate_limit_{total_hits,over_limit,near_limit,
//     within_limit,shadow_mode}{domain, key1, key2}: the per-rule
//     counters. The mapper splits the statsd name
//     ratelimit.service.rate_limit.<stats key>.<stat> at its dots: domain
//     is the stats key's first part, key1 the second, key2 the third (empty
//     for a one-level key); deeper parts are dropped. The stats key is
//     first sanitised as the reference does (':' and '|' become '_', and
//     the dots of an IPv4 address too).
//   - ratelimit_service_should_rate_limit_error{err_type}: requests that
//     failed, "redis_error" for a store failure and "service_error" for a
//     request refused as malformed.
//   - ratelimit_service_total_requests{grpc_method} and
//     ratelimit_service_response_time_seconds{grpc_method} (a histogram)
//     for ShouldRateLimit.
//   - ratelimit_service_config_load_{success,error}.
//
// The counters keep the reference's names, without a _total suffix.
type refMetrics struct {
	total, over, near, within, shadow *prometheus.CounterVec

	shouldRateLimitError *prometheus.CounterVec
	redisError           prometheus.Counter
	serviceError         prometheus.Counter
	totalRequests        prometheus.Counter
	responseTime         prometheus.Observer
	configLoadSuccess    prometheus.Counter
	configLoadError      prometheus.Counter

	collectors []prometheus.Collector

	mu     sync.Mutex
	series map[[3]string]*refCounters
}

// refCounters are the reference's counters of one (domain, key1, key2).
type refCounters struct {
	totalHits, overLimit, nearLimit, withinLimit, shadowMode prometheus.Counter
}

// ReferenceMethod is the grpc_method label of the reference's request
// metrics.
const ReferenceMethod = "ShouldRateLimit"

func newRefMetrics() *refMetrics {
	labels := []string{"domain", "key1", "key2"}
	vec := func(stat, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ratelimit_service_rate_limit_" + stat, Help: help}, labels)
	}
	r := &refMetrics{
		total:  vec("total_hits", "envoyproxy/ratelimit's total_hits of a stats key: every hit of a matched limit."),
		over:   vec("over_limit", "envoyproxy/ratelimit's over_limit of a stats key: hits over the limit."),
		near:   vec("near_limit", "envoyproxy/ratelimit's near_limit of a stats key: hits past floor(limit × near-limit ratio)."),
		within: vec("within_limit", "envoyproxy/ratelimit's within_limit of a stats key: hits of allowed requests."),
		shadow: vec("shadow_mode", "envoyproxy/ratelimit's shadow_mode of a stats key: over-limit hits answered OK by shadow mode."),
		shouldRateLimitError: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ratelimit_service_should_rate_limit_error",
			Help: "envoyproxy/ratelimit's failed ShouldRateLimit calls, by err_type (redis_error: the store failed; service_error: a malformed request).",
		}, []string{"err_type"}),
		series: map[[3]string]*refCounters{},
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ratelimit_service_total_requests",
		Help: "envoyproxy/ratelimit's gRPC requests, by method.",
	}, []string{"grpc_method"})
	responseTime := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ratelimit_service_response_time_seconds",
		Help:    "envoyproxy/ratelimit's gRPC response time, by method.",
		Buckets: prometheus.DefBuckets,
	}, []string{"grpc_method"})
	loadOK := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ratelimit_service_config_load_success",
		Help: "envoyproxy/ratelimit's successful config loads.",
	})
	loadErr := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ratelimit_service_config_load_error",
		Help: "envoyproxy/ratelimit's failed config loads.",
	})
	r.redisError = r.shouldRateLimitError.WithLabelValues("redis_error")
	r.serviceError = r.shouldRateLimitError.WithLabelValues("service_error")
	r.totalRequests = requests.WithLabelValues(ReferenceMethod)
	r.responseTime = responseTime.WithLabelValues(ReferenceMethod)
	r.configLoadSuccess, r.configLoadError = loadOK, loadErr
	r.collectors = []prometheus.Collector{r.total, r.over, r.near, r.within, r.shadow,
		r.shouldRateLimitError, requests, responseTime, loadOK, loadErr}
	return r
}

func (r *refMetrics) register(reg *prometheus.Registry) { reg.MustRegister(r.collectors...) }

// observeRequest records one ShouldRateLimit call; a nil r records
// nothing.
func (r *refMetrics) observeRequest(result string, d time.Duration) {
	if r == nil {
		return
	}
	r.totalRequests.Inc()
	r.responseTime.Observe(d.Seconds())
	switch result {
	case ResultError:
		r.redisError.Inc()
	case ResultInvalid:
		r.serviceError.Inc()
	}
}

// configLoaded records a config load; a nil r records nothing.
func (r *refMetrics) configLoaded(ok bool) {
	if r == nil {
		return
	}
	if ok {
		r.configLoadSuccess.Inc()
	} else {
		r.configLoadError.Inc()
	}
}

// forStatsKey returns the counters the reference's mapping gives
// statsKey; an empty statsKey (an overflow series) gives key1 "_other_"
// under domain.
func (r *refMetrics) forStatsKey(domain, statsKey string) *refCounters {
	labels := [3]string{domain, OtherValue, ""}
	if statsKey != "" {
		labels = refLabels(statsKey)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.series[labels]; ok {
		return c
	}
	c := &refCounters{
		totalHits:   r.total.WithLabelValues(labels[:]...),
		overLimit:   r.over.WithLabelValues(labels[:]...),
		nearLimit:   r.near.WithLabelValues(labels[:]...),
		withinLimit: r.within.WithLabelValues(labels[:]...),
		shadowMode:  r.shadow.WithLabelValues(labels[:]...),
	}
	r.series[labels] = c
	return c
}

// ipv4 matches an IPv4 address in a stats key, whose dots the reference
// replaces.
var ipv4 = regexp.MustCompile(`\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}`)

// statNameReplacer is the reference's stats-name sanitiser.
var statNameReplacer = strings.NewReplacer(":", "_", "|", "_")

// refLabels sanitises a stats key as the reference does and splits it
// into the domain, key1 and key2 labels its statsd mapping produces.
func refLabels(statsKey string) [3]string {
	s := ipv4.ReplaceAllStringFunc(statNameReplacer.Replace(statsKey), func(ip string) string {
		return strings.ReplaceAll(ip, ".", "_")
	})
	var out [3]string
	for i := 0; i < 3; i++ {
		part, rest, found := strings.Cut(s, ".")
		out[i] = part
		if !found {
			break
		}
		s = rest
	}
	return out
}
