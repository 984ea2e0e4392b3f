// Package memory is an in-process limiter.Store: a sharded map from key to
// strategy state, for a single envoy-rls instance or for tests.
package memory

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// Defaults of Options.
const (
	DefaultMaxKeys       = 1_000_000
	DefaultShards        = 64
	DefaultSweepInterval = time.Second
)

// evictionSample is how many entries a full shard looks at to find one to
// drop.
const evictionSample = 8

// ErrClosed is wrapped by the error Apply returns after Close; that error
// also wraps limiter.ErrUnavailable.
var ErrClosed = errors.New("memory: store closed")

var _ limiter.Store = (*Store)(nil)

// Options configure a Store. The zero value means all defaults.
type Options struct {
	// MaxKeys bounds the keys held (default DefaultMaxKeys). Each shard
	// holds at most MaxKeys/Shards (at least 1); when a shard is full, an
	// insert first drops expired entries among a sample of the shard, else
	// evicts the sampled entry that expires first. An evicted key starts
	// fresh.
	MaxKeys int
	// Shards is the number of independently locked maps, rounded up to a
	// power of two (default DefaultShards).
	Shards int
	// SweepInterval is how often the background sweeper removes expired
	// entries (default DefaultSweepInterval).
	SweepInterval time.Duration
}

// Stats are counters for metrics.
type Stats struct {
	// Keys is the number of keys held, expired or not.
	Keys int64
	// Evictions counts live entries dropped because their shard was full.
	Evictions int64
}

// Store is a limiter.Store held in process memory. It indexes keys by a
// 128-bit keyed digest (see digest) and keeps the three words of
// fixed-size states inline in its map entries: a fixed number of bytes per
// key whatever the key's length, in maps the garbage collector never has to
// scan (see TestBytesPerKey), and log states in a second map. An entry expires at now + Decision.TTL of the request that
// wrote it; an expired entry reads as the zero State, and a background
// sweeper removes expired entries every SweepInterval, using the largest
// now any Apply has seen as its clock (never the wall clock).
//
// Create a Store with New; the zero value is not usable. A Store is safe
// for concurrent use. Close stops the sweeper; Apply then fails.
type Store struct {
	shards   []shard
	mask     uint64
	perShard int
	seeds    [2]maphash.Seed

	maxNow    atomic.Int64
	keys      atomic.Int64
	evictions atomic.Int64
	closed    atomic.Bool

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// shard is one locked map, padded to its own cache lines. logs holds the
// Log of the keys of m whose state has one, out of line so that the
// entries of fixed-size strategies stay at four words.
type shard struct {
	mu   sync.Mutex
	m    map[digest]entry
	logs map[digest][]strategies.Entry
	_    [40]byte
}

// digest is the 128-bit keyed hash a key is stored under: two maphash
// values with independent random seeds. Holding no pointer, it keeps the
// map out of the garbage collector's way and a key at a fixed size
// however long the descriptor values are. Two distinct keys share a
// digest with probability about n²/2¹²⁹ for n keys (10⁻²⁶ at a million),
// and the seeds are new in every process, so no client can aim at a
// collision.
type digest [2]uint64

func (s *Store) digest(key string) digest {
	return digest{maphash.String(s.seeds[0], key), maphash.String(s.seeds[1], key)}
}

// entry is the stored form of a strategies.State's fixed words and its
// expiry.
type entry struct {
	a, b, c int64
	exp     int64 // expires when now ≥ exp
}

// New returns a Store with its sweeper running; Close it when done.
func New(opts Options) *Store {
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	if opts.Shards <= 0 {
		opts.Shards = DefaultShards
	}
	n := 1 << bits.Len(uint(opts.Shards-1))
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	s := &Store{
		shards:   make([]shard, n),
		mask:     uint64(n - 1),
		perShard: max(opts.MaxKeys/n, 1),
		seeds:    [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for i := range s.shards {
		s.shards[i].m = make(map[digest]entry)
		s.shards[i].logs = make(map[digest][]strategies.Entry)
	}
	go s.sweeper(opts.SweepInterval)
	return s
}

// Stats returns the current counters.
func (s *Store) Stats() Stats {
	return Stats{Keys: s.keys.Load(), Evictions: s.evictions.Load()}
}

// Close stops the sweeper and waits for it to return. Later calls to
// Apply fail with ErrClosed; Close itself may be called more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.stop)
		<-s.done
	})
	return nil
}

func (s *Store) sweeper(every time.Duration) {
	defer close(s.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			s.sweep()
		}
	}
}

// sweep removes every entry expired at the largest now Apply has seen;
// the sweeper calls it every SweepInterval.
func (s *Store) sweep() {
	now := s.maxNow.Load()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if e.exp <= now {
				sh.delete(k)
				s.keys.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
}

// slot is where one distinct key of an Apply call lives: its digest and
// its shard.
type slot struct {
	key   digest
	shard uint32
}

// Apply implements limiter.Store: it locks the shards of all keys of the
// call in ascending order, reads every key once, decides the ops with
// limiter.Stage (ops on one key in order, the all-or-nothing rule across
// keys) and writes back the states that changed.
func (s *Store) Apply(ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) error {
	if s.closed.Load() {
		return fmt.Errorf("%w: %w", ErrClosed, limiter.ErrUnavailable)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	if len(out) != len(ops) {
		return fmt.Errorf("memory: %d ops but room for %d decisions", len(ops), len(out))
	}
	for i := range ops {
		if ops[i].Strategy == nil {
			return fmt.Errorf("memory: op %d (key %q) has no strategy", i, ops[i].Key)
		}
	}
	if len(ops) == 0 {
		return nil
	}
	for m := s.maxNow.Load(); now > m && !s.maxNow.CompareAndSwap(m, now); m = s.maxNow.Load() {
	}

	// owner[i] is the index in keys (and slots) of op i's key.
	var ownerBuf [8]int
	var keysBuf [8]limiter.Staged
	var slotsBuf [8]slot
	var lockBuf [8]uint32
	owner, keys, slots, locks := ownerBuf[:0], keysBuf[:0], slotsBuf[:0], lockBuf[:0]
	if len(ops) > len(ownerBuf) {
		owner, keys = make([]int, 0, len(ops)), make([]limiter.Staged, 0, len(ops))
		slots, locks = make([]slot, 0, len(ops)), make([]uint32, 0, len(ops))
	}
	var index map[string]int // only for calls with many ops
	if len(ops) > 16 {
		index = make(map[string]int, len(ops))
	}
	for i := range ops {
		k := -1
		if index != nil {
			if j, ok := index[ops[i].Key]; ok {
				k = j
			}
		} else {
			for j := range i {
				if ops[j].Key == ops[i].Key {
					k = owner[j]
					break
				}
			}
		}
		if k < 0 {
			k = len(keys)
			d := s.digest(ops[i].Key)
			sh := uint32(d[0] & s.mask)
			keys = append(keys, limiter.Staged{})
			slots = append(slots, slot{shard: sh, key: d})
			locks = insertSorted(locks, sh)
			if index != nil {
				index[ops[i].Key] = k
			}
		}
		owner = append(owner, k)
	}

	for _, sh := range locks {
		s.shards[sh].mu.Lock()
	}
	defer func() {
		for _, sh := range locks {
			s.shards[sh].mu.Unlock()
		}
	}()

	for k := range keys {
		sl := &slots[k]
		sh := &s.shards[sl.shard]
		if e, ok := sh.m[sl.key]; ok && e.exp > now {
			keys[k].Orig = e.state()
			if len(sh.logs) > 0 {
				keys[k].Orig.Log = sh.logs[sl.key]
			}
		}
	}
	limiter.Stage(now, ops, owner, keys, out)
	for k := range keys {
		if keys[k].Dirty {
			s.write(&s.shards[slots[k].shard], slots[k].key, &keys[k].State, now+keys[k].TTL, now)
		}
	}
	return nil
}

// write stores st under key in sh, whose lock is held, to expire at exp;
// a state that expires by now is deleted.
func (s *Store) write(sh *shard, key digest, st *strategies.State, exp, now int64) {
	_, had := sh.m[key]
	if exp <= now {
		if had {
			sh.delete(key)
			s.keys.Add(-1)
		}
		return
	}
	if !had {
		if len(sh.m) >= s.perShard {
			s.makeRoom(sh, now)
		}
		s.keys.Add(1)
	}
	sh.m[key] = entry{a: st.A, b: st.B, c: st.C, exp: exp}
	if len(st.Log) > 0 {
		sh.logs[key] = st.Log
	} else if len(sh.logs) > 0 {
		delete(sh.logs, key)
	}
}

// delete removes key from sh, whose lock is held.
func (sh *shard) delete(key digest) {
	delete(sh.m, key)
	if len(sh.logs) > 0 {
		delete(sh.logs, key)
	}
}

// makeRoom frees at least one slot of the full shard sh: it drops the
// expired entries among a sample, else evicts the sampled entry that
// expires first.
func (s *Store) makeRoom(sh *shard, now int64) {
	now = max(now, s.maxNow.Load())
	var victim digest
	victimExp, seen, dropped := int64(0), 0, 0
	for k, e := range sh.m {
		if e.exp <= now {
			sh.delete(k)
			dropped++
		} else if seen == 0 || e.exp < victimExp {
			victim, victimExp = k, e.exp
		}
		seen++
		if seen == evictionSample {
			break
		}
	}
	if dropped == 0 && seen > 0 {
		sh.delete(victim)
		dropped++
		s.evictions.Add(1)
	}
	s.keys.Add(int64(-dropped))
}

func (e entry) state() strategies.State {
	return strategies.State{A: e.a, B: e.b, C: e.c}
}

// insertSorted adds v to the ascending set xs unless it is there.
func insertSorted(xs []uint32, v uint32) []uint32 {
	i := len(xs)
	for i > 0 && xs[i-1] > v {
		i--
	}
	if i > 0 && xs[i-1] == v {
		return xs
	}
	xs = append(xs, 0)
	copy(xs[i+1:], xs[i:])
	xs[i] = v
	return xs
}
