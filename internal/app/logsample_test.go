package app

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// fakeClock is a zapcore.Clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time                         { return c.t }
func (c *fakeClock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }

func TestSamplerBoundsRepeatedLines(t *testing.T) {
	obs, logs := observer.New(zapcore.DebugLevel)
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	log := zap.New(newSampler(obs, sampleTick, sampleFirst, sampleThereafter), zap.WithClock(clk))
	// An outage: 5,000 identical warnings a second for three seconds,
	// spread over the second, and a few other messages.
	for sec := range 3 {
		for i := range 5000 {
			clk.t = time.Unix(1_700_000_000+int64(sec), int64(i)*200_000)
			log.Warn("store unavailable", zap.Int("i", i))
		}
		log.Info("config reloaded")
	}
	perMessage := map[string]int{}
	var suppressed int64
	for _, e := range logs.All() {
		perMessage[e.Message]++
		if v, ok := e.ContextMap()["suppressed"]; ok {
			suppressed += int64(v.(uint64))
		}
	}
	// Each second: the first 10, then one in 1,000 (entries 1010, 2010,
	// 3010, 4010).
	if got := perMessage["store unavailable"]; got != 3*14 {
		t.Fatalf("%d warnings written for 15,000, want %d", got, 3*14)
	}
	if got := perMessage["config reloaded"]; got != 3 {
		t.Fatalf("other message written %d times, want 3", got)
	}
	// Every dropped entry is counted on a later written one, except those
	// after the last written entry.
	if want := int64(15000 - 3*14 - 990); suppressed != want {
		t.Fatalf("suppressed counts sum to %d, want %d", suppressed, want)
	}
}

func TestSamplerChildrenShareCounts(t *testing.T) {
	obs, logs := observer.New(zapcore.InfoLevel)
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	log := zap.New(newSampler(obs, sampleTick, 2, 1000), zap.WithClock(clk))
	a, b := log.With(zap.String("c", "a")), log.Named("b")
	for range 10 {
		a.Warn("x")
		b.Warn("x")
	}
	log.Debug("below the level")
	if n := logs.Len(); n != 2 {
		t.Fatalf("%d lines written, want 2", n)
	}
}

func TestNewLoggerSamples(t *testing.T) {
	log, err := NewLogger("info", "json")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := log.Core().(*sampler); !ok {
		t.Fatalf("core %T is not sampled", log.Core())
	}
}
