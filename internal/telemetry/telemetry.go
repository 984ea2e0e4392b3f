// Package telemetry holds envoy-rls's Prometheus metrics: per-rule
// decision counters, request and store latencies, failure-mode and
// circuit-breaker state, config reloads and the in-memory store's size.
//
// Every metric lives on the Metrics' own prometheus.Registry (never the
// global one), served by Handler together with the Go runtime and process
// collectors. Names follow the Prometheus conventions: an envoy_rls_
// prefix, base units (seconds), _total for counters.
package telemetry

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/envoy-rls/envoy-rls/internal/breaker"
)

// Results of a request, the values of the result label of
// envoy_rls_request_duration_seconds.
const (
	ResultOK        = "ok"         // every descriptor within its limits
	ResultOverLimit = "over_limit" // the overall code was OVER_LIMIT
	ResultError     = "error"      // the store could not decide
	ResultInvalid   = "invalid"    // the request was refused as malformed
)

// Defaults of Options.
const (
	DefaultNearLimitRatio = 0.8
	DefaultMaxValueSeries = 1000
)

// Options configure Metrics. The zero value means the defaults.
type Options struct {
	// NearLimitRatio is the share of a limit's capacity beyond which an
	// allowed request counts as near the limit (see ObserveStatuses). A
	// value outside (0, 1] means DefaultNearLimitRatio.
	NearLimitRatio float64
	// MaxValueSeries bounds the number of distinct stats keys a rule
	// whose key depends on the request (detailed_metric, value_to_metric)
	// labels its series with, and the number of distinct override keys
	// and unknown domains per domain; further ones are counted under
	// value="_other_" (domain="_other_" for unknown domains). A value ≤ 0
	// means DefaultMaxValueSeries.
	MaxValueSeries int
	// ReferenceMetrics also exports envoyproxy/ratelimit's metric names,
	// as its statsd mapping (default_mapper.yaml) produces them (see
	// refMetrics). It costs nothing when false.
	ReferenceMetrics bool
}

// Metrics records envoy-rls's metrics on its own registry. It is safe for
// concurrent use. Build one with New; the zero value is not usable, but a
// nil *Metrics is: every method then records nothing (Handler answers
// 404), so that metrics can be optional for the code that calls them.
type Metrics struct {
	reg   *prometheus.Registry
	rules *ruleMetrics

	// nearRatio is NearLimitRatio as the reference holds it (float32).
	nearRatio float32
	// ref holds the reference service's metric names; nil when off.
	ref *refMetrics

	domainNotFound *prometheus.CounterVec
	notFoundMu     sync.RWMutex
	notFound       map[string]prometheus.Counter // bounded by maxValues
	maxValues      int

	reqDuration *prometheus.HistogramVec
	reqByResult map[string]prometheus.Observer // the four known results

	storeDuration *prometheus.HistogramVec
	storeErrors   *prometheus.CounterVec
	storeMu       sync.RWMutex
	storeSeries   map[storeKey]storeSeries

	failureMode *prometheus.CounterVec
	breaker     *prometheus.GaugeVec
	breakerMu   sync.Mutex // guards breakerStates and orders the gauge updates
	// breakerStates holds, per store, every state reported so far.
	breakerStates map[string]map[string]struct{}

	configLoads       *prometheus.CounterVec
	configLoadOK      prometheus.Counter
	configLoadErr     prometheus.Counter
	configLastSuccess prometheus.Gauge
	configRules       prometheus.Gauge

	localCacheHits prometheus.Counter
	shedHeavy      prometheus.Counter
	shedLight      prometheus.Counter
	shed           *prometheus.CounterVec

	memoryOnce sync.Once
}

type storeKey struct{ store, op string }

type storeSeries struct {
	duration prometheus.Observer
	errors   prometheus.Counter
}

// requestBuckets cover an RLS answer, from tens of microseconds (memory
// store) to beyond Envoy's default 20 ms filter timeout.
var requestBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1,
}

// New returns Metrics registered on a new registry that also holds the
// Go runtime and process collectors.
func New(opts Options) *Metrics {
	ratio := opts.NearLimitRatio
	if !(ratio > 0 && ratio <= 1) { // also catches NaN
		ratio = DefaultNearLimitRatio
	}
	maxValues := opts.MaxValueSeries
	if maxValues <= 0 {
		maxValues = DefaultMaxValueSeries
	}
	reg := prometheus.NewRegistry()
	var ref *refMetrics
	if opts.ReferenceMetrics {
		ref = newRefMetrics()
	}
	m := &Metrics{
		reg:       reg,
		rules:     newRuleMetrics(maxValues, ref),
		nearRatio: float32(ratio),
		ref:       ref,
		domainNotFound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_rls_domain_not_found_total",
			Help: "Requests for a domain the config does not have (the reference's domain_not_found), by domain.",
		}, []string{"domain"}),
		notFound:  map[string]prometheus.Counter{},
		maxValues: maxValues,
		reqDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "envoy_rls_request_duration_seconds",
			Help:    "Time taken to answer a ShouldRateLimit request, by result (ok, over_limit, error, invalid).",
			Buckets: requestBuckets,
		}, []string{"result"}),
		storeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "envoy_rls_store_duration_seconds",
			Help:    "Time taken by one store operation, by store and operation.",
			Buckets: requestBuckets,
		}, []string{"store", "op"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_rls_store_errors_total",
			Help: "Store operations that failed, by store and operation.",
		}, []string{"store", "op"}),
		storeSeries:   map[storeKey]storeSeries{},
		breakerStates: map[string]map[string]struct{}{},
		failureMode: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_rls_failure_mode_decisions_total",
			Help: "Requests decided by the failure mode because the store could not decide, by mode.",
		}, []string{"mode"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "envoy_rls_circuit_breaker_state",
			Help: "State of a store's circuit breaker: 1 for the current state, 0 for the others.",
		}, []string{"store", "state"}),
		configLoads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_rls_config_loads_total",
			Help: "Attempts to load the rate-limit config, by result (success, error).",
		}, []string{"result"}),
		configLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "envoy_rls_config_last_success_timestamp_seconds",
			Help: "Unix time of the last successful config load.",
		}),
		configRules: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "envoy_rls_config_rules",
			Help: "Number of rules in the config being served.",
		}),
		localCacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "envoy_rls_local_cache_hits_total",
			Help: "Descriptors answered over the limit from the local over-limit cache, without a store round trip.",
		}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_rls_store_shed_total",
			Help: "Requests shed before the store by --store-max-inflight (answered UNAVAILABLE \"overloaded\", or by the failure mode), by weight: heavy or light.",
		}, []string{"weight"}),
	}
	m.shedHeavy = m.shed.WithLabelValues("heavy")
	m.shedLight = m.shed.WithLabelValues("light")
	m.reqByResult = make(map[string]prometheus.Observer, 4)
	for _, r := range []string{ResultOK, ResultOverLimit, ResultError, ResultInvalid} {
		m.reqByResult[r] = m.reqDuration.WithLabelValues(r)
	}
	m.configLoadOK = m.configLoads.WithLabelValues("success")
	m.configLoadErr = m.configLoads.WithLabelValues("error")
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.rules.hits, m.rules.over, m.rules.near, m.rules.within, m.rules.shadow, m.rules.exempted,
		m.reqDuration,
		m.storeDuration, m.storeErrors,
		m.failureMode, m.breaker,
		m.configLoads, m.configLastSuccess, m.configRules,
		m.localCacheHits,
		m.shed,
		m.domainNotFound,
	)
	if ref != nil {
		ref.register(reg)
	}
	return m
}

// Registry returns the registry the metrics live on, for collectors of
// other packages (a Redis pool's statistics, for instance) and for tests.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler returns the handler of GET /metrics: every metric of the
// registry in the Prometheus exposition formats, plus the handler's own
// promhttp_metric_handler_* metrics.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	// The reference's counters carry no _total suffix, which OpenMetrics
	// would add: with them, only the classic text format is offered, as
	// the statsd exporter does.
	return promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:          m.reg,
		EnableOpenMetrics: m.ref == nil,
	}))
}

// ObserveRequest records the duration of one ShouldRateLimit request
// under its result, one of ResultOK, ResultOverLimit, ResultError and
// ResultInvalid. The histogram's _count gives the number of requests per
// result.
func (m *Metrics) ObserveRequest(result string, d time.Duration) {
	if m == nil {
		return
	}
	o, ok := m.reqByResult[result]
	if !ok {
		var err error
		if o, err = m.reqDuration.GetMetricWithLabelValues(result); err != nil {
			return // an invalid label value (not UTF-8) records nothing
		}
	}
	o.Observe(d.Seconds())
	m.ref.observeRequest(result, d)
}

// DomainNotFound counts one request for a domain the config does not
// have, under the domain (at most Options.MaxValueSeries distinct
// domains; the others count under "_other_").
func (m *Metrics) DomainNotFound(domain string) {
	if m == nil {
		return
	}
	m.notFoundMu.RLock()
	c, ok := m.notFound[domain]
	m.notFoundMu.RUnlock()
	if !ok {
		c = m.newNotFound(domain)
	}
	c.Inc()
}

func (m *Metrics) newNotFound(domain string) prometheus.Counter {
	m.notFoundMu.Lock()
	defer m.notFoundMu.Unlock()
	if c, ok := m.notFound[domain]; ok {
		return c
	}
	if len(m.notFound) >= m.maxValues {
		return m.domainNotFound.WithLabelValues(OtherValue)
	}
	c := m.domainNotFound.WithLabelValues(validLabel(domain))
	m.notFound[strings.Clone(domain)] = c
	return c
}

// ObserveStore records one store operation (op, such as "apply") of the
// named store ("memory", "redis", "memcache"): its duration, and an error
// when err is not nil.
func (m *Metrics) ObserveStore(store, op string, d time.Duration, err error) {
	if m == nil {
		return
	}
	k := storeKey{store, op}
	m.storeMu.RLock()
	s, ok := m.storeSeries[k]
	m.storeMu.RUnlock()
	if !ok {
		var gerr error
		if s, gerr = m.newStoreSeries(k); gerr != nil {
			return
		}
	}
	s.duration.Observe(d.Seconds())
	if err != nil {
		s.errors.Inc()
	}
}

func (m *Metrics) newStoreSeries(k storeKey) (storeSeries, error) {
	m.storeMu.Lock()
	defer m.storeMu.Unlock()
	if s, ok := m.storeSeries[k]; ok {
		return s, nil
	}
	d, err := m.storeDuration.GetMetricWithLabelValues(k.store, k.op)
	if err != nil {
		return storeSeries{}, fmt.Errorf("telemetry: store series: %w", err)
	}
	e, err := m.storeErrors.GetMetricWithLabelValues(k.store, k.op)
	if err != nil {
		return storeSeries{}, fmt.Errorf("telemetry: store series: %w", err)
	}
	s := storeSeries{duration: d, errors: e}
	m.storeSeries[k] = s
	return s, nil
}

// FailureModeDecision counts one request decided by the failure mode
// (for example "allow" or "deny") because the store could not decide.
func (m *Metrics) FailureModeDecision(mode string) {
	if m == nil {
		return
	}
	if c, err := m.failureMode.GetMetricWithLabelValues(mode); err == nil {
		c.Inc()
	}
}

// SetBreakerState records the current state of a store's circuit
// breaker (a breaker.State's String): the gauge of state is set to 1 and
// those of the store's other states (every breaker.States, and any other
// state reported before) to 0.
func (m *Metrics) SetBreakerState(store, state string) {
	if m == nil {
		return
	}
	m.breakerMu.Lock()
	defer m.breakerMu.Unlock()
	g, err := m.breaker.GetMetricWithLabelValues(store, state)
	if err != nil {
		return // an invalid label value (not UTF-8) records nothing
	}
	seen := m.breakerStates[store]
	if seen == nil {
		seen = map[string]struct{}{}
		for _, st := range breaker.States() {
			seen[st.String()] = struct{}{}
		}
		m.breakerStates[store] = seen
	}
	seen[state] = struct{}{}
	for s := range seen {
		if s != state {
			m.breaker.WithLabelValues(store, s).Set(0)
		}
	}
	g.Set(1)
}

// ConfigLoaded records a successful config load of rules rules at time
// at. It also forgets the per-rule lookup cache of the previous config,
// so that the old rule tree can be garbage collected (the series
// themselves stay: a rule kept by the new config continues its counts,
// found again by domain and path). Requests still running on the old
// config may cache its rules again; they are forgotten at the next load.
func (m *Metrics) ConfigLoaded(rules int, at time.Time) {
	if m == nil {
		return
	}
	m.configLoadOK.Inc()
	m.ref.configLoaded(true)
	m.configLastSuccess.Set(float64(at.UnixNano()) / 1e9)
	m.configRules.Set(float64(rules))
	m.rules.forgetRules()
}

// ConfigLoadFailed records a config load that failed; the previous config
// stays in service.
func (m *Metrics) ConfigLoadFailed() {
	if m != nil {
		m.configLoadErr.Inc()
		m.ref.configLoaded(false)
	}
}

// LocalCacheHit counts one descriptor answered over the limit by the
// local over-limit cache without asking the store.
func (m *Metrics) LocalCacheHit() {
	if m != nil {
		m.localCacheHits.Inc()
	}
}

// StoreShed counts one request shed before the store by the admission
// bound; heavy tells which share it was shed from.
func (m *Metrics) StoreShed(heavy bool) {
	if m == nil {
		return
	}
	if heavy {
		m.shedHeavy.Inc()
	} else {
		m.shedLight.Inc()
	}
}

// RegisterMemoryStore exports the in-memory store's statistics, read from
// stats at every scrape: envoy_rls_memory_store_keys (a gauge) and
// envoy_rls_memory_store_evictions_total (a counter). stats must be safe
// for concurrent use. It may be called once per Metrics; a second call
// returns an error. On a nil Metrics it does nothing and returns nil.
func (m *Metrics) RegisterMemoryStore(stats func() (keys, evictions int64)) error {
	if m == nil {
		return nil
	}
	if stats == nil {
		return errors.New("telemetry: memory store stats: nil function")
	}
	err := errors.New("telemetry: memory store stats already registered")
	m.memoryOnce.Do(func() {
		err = m.reg.Register(&memoryCollector{stats: stats})
		if err != nil {
			err = fmt.Errorf("telemetry: memory store stats: %w", err)
		}
	})
	return err
}

var (
	memoryKeysDesc = prometheus.NewDesc("envoy_rls_memory_store_keys",
		"Keys held by the in-memory store.", nil, nil)
	memoryEvictionsDesc = prometheus.NewDesc("envoy_rls_memory_store_evictions_total",
		"Keys the in-memory store evicted to stay within its size bound.", nil, nil)
)

// memoryCollector reads the memory store's statistics once per scrape.
type memoryCollector struct {
	stats func() (keys, evictions int64)
}

func (c *memoryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- memoryKeysDesc
	ch <- memoryEvictionsDesc
}

func (c *memoryCollector) Collect(ch chan<- prometheus.Metric) {
	keys, evictions := c.stats()
	ch <- prometheus.MustNewConstMetric(memoryKeysDesc, prometheus.GaugeValue, float64(keys))
	ch <- prometheus.MustNewConstMetric(memoryEvictionsDesc, prometheus.CounterValue, float64(evictions))
}
