package memcachestore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// ErrMalformedState is wrapped by the error Apply returns when a stored
// value cannot be decoded as a state (written by another program, or by an
// incompatible version). Such an error names the key; it does not wrap
// limiter.ErrUnavailable.
var ErrMalformedState = errors.New("malformed stored state")

// stateVersion is the first byte of every encoded state. A new encoding
// gets a new version; values of unknown versions are rejected.
const stateVersion byte = 1

// appendState appends the binary encoding of st to b:
//
//	version byte (1)
//	varint A, varint B, varint C          (zigzag signed varints)
//	uvarint len(Log)
//	len(Log) × (varint At−prevAt, varint Hits), prevAt starting at 0
//
// Log timestamps are delta-encoded, so a log of nearby instants costs a
// few bytes per entry.
func appendState(b []byte, st strategies.State) []byte {
	b = append(b, stateVersion)
	b = binary.AppendVarint(b, st.A)
	b = binary.AppendVarint(b, st.B)
	b = binary.AppendVarint(b, st.C)
	b = binary.AppendUvarint(b, uint64(len(st.Log)))
	prev := int64(0)
	for _, e := range st.Log {
		b = binary.AppendVarint(b, e.At-prev)
		b = binary.AppendVarint(b, e.Hits)
		prev = e.At
	}
	return b
}

// decodeState decodes a value written by appendState. It never panics:
// truncated values, unknown versions, impossible lengths and trailing
// bytes are errors wrapping ErrMalformedState.
func decodeState(v []byte) (strategies.State, error) {
	var st strategies.State
	if len(v) == 0 {
		return st, fmt.Errorf("%w: empty value", ErrMalformedState)
	}
	if v[0] != stateVersion {
		return st, fmt.Errorf("%w: unknown version %d", ErrMalformedState, v[0])
	}
	d := decoder{b: v[1:]}
	st.A = d.varint()
	st.B = d.varint()
	st.C = d.varint()
	n := d.uvarint()
	if d.err != nil {
		return strategies.State{}, d.err
	}
	// Every entry takes at least two bytes; this bounds the allocation by
	// the size of the value.
	if n > uint64(len(d.b)/2) {
		return strategies.State{}, fmt.Errorf("%w: log of %d entries in %d bytes", ErrMalformedState, n, len(d.b))
	}
	if n > 0 {
		st.Log = make([]strategies.Entry, n)
		prev := int64(0)
		for i := range st.Log {
			prev += d.varint()
			st.Log[i] = strategies.Entry{At: prev, Hits: d.varint()}
		}
	}
	if d.err != nil {
		return strategies.State{}, d.err
	}
	if len(d.b) != 0 {
		return strategies.State{}, fmt.Errorf("%w: %d trailing bytes", ErrMalformedState, len(d.b))
	}
	return st, nil
}

// decoder reads varints from b, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: truncated or overlong varint", ErrMalformedState)
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: truncated or overlong varint", ErrMalformedState)
		return 0
	}
	d.b = d.b[n:]
	return x
}
