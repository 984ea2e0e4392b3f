package app

import (
	"hash/maphash"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Log sampling: per message and level, in each second, the first
// sampleFirst entries are written, then one in sampleThereafter; a
// written entry carries in "suppressed" the number of entries like it that
// were dropped since the last one written. A store outage at thousands of
// requests a second so writes tens of lines a second, not thousands.
const (
	sampleTick       = time.Second
	sampleFirst      = 10
	sampleThereafter = 1000
	sampleSlots      = 1024
)

// sampler is a zapcore.Core that samples repeated entries (see
// sampleFirst). Cores made by With share their parent's counters. It is
// safe for concurrent use.
type sampler struct {
	zapcore.Core
	counts *sampleCounts
}

// sampleCounts are the counters of a sampler and its children: a fixed
// table of slots, so that memory stays bounded whatever the messages.
type sampleCounts struct {
	seed              maphash.Seed
	tick              int64
	first, thereafter uint64
	slots             [sampleSlots]sampleSlot
}

// sampleSlot counts the entries of one (hashed) message and level in the
// current tick.
type sampleSlot struct {
	resetAt atomic.Int64  // end of the current tick, in Unix nanoseconds
	n       atomic.Uint64 // entries in the current tick
	dropped atomic.Uint64 // dropped since the last written entry
}

// newSampler wraps core with the sampling of sampleFirst and
// sampleThereafter per tick.
func newSampler(core zapcore.Core, tick time.Duration, first, thereafter uint64) zapcore.Core {
	return &sampler{Core: core, counts: &sampleCounts{seed: maphash.MakeSeed(), tick: int64(tick), first: first, thereafter: max(thereafter, 1)}}
}

// With returns a child core that shares the counters.
func (s *sampler) With(fields []zapcore.Field) zapcore.Core {
	return &sampler{Core: s.Core.With(fields), counts: s.counts}
}

// Check decides whether ent is written; the entry's own time is the clock.
func (s *sampler) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if !s.Enabled(ent.Level) {
		return ce
	}
	c := s.counts
	h := maphash.String(c.seed, ent.Message) + uint64(ent.Level)
	write, dropped := c.slots[h%sampleSlots].take(ent.Time.UnixNano(), c.tick, c.first, c.thereafter)
	if !write {
		return ce
	}
	if dropped > 0 {
		return s.Core.With([]zapcore.Field{zap.Uint64("suppressed", dropped)}).Check(ent, ce)
	}
	return s.Core.Check(ent, ce)
}

// take counts one entry at t and reports whether it is written and, if
// so, how many were dropped since the last written one.
func (sl *sampleSlot) take(t, tick int64, first, thereafter uint64) (bool, uint64) {
	if reset := sl.resetAt.Load(); t >= reset && sl.resetAt.CompareAndSwap(reset, t+tick) {
		sl.n.Store(0)
	}
	n := sl.n.Add(1)
	if n <= first || (n-first)%thereafter == 0 {
		return true, sl.dropped.Swap(0)
	}
	sl.dropped.Add(1)
	return false, 0
}
