package memcachestore

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

func TestStateRoundTrip(t *testing.T) {
	states := []strategies.State{
		{},
		{A: 1},
		{A: -1, B: math.MaxInt64, C: math.MinInt64},
		{A: 1_693_440_000_000_000, B: 3, C: -7, Log: []strategies.Entry{
			{At: 1_693_440_000_000_000, Hits: 1},
			{At: 1_693_440_000_000_500, Hits: 2},
			{At: 1_693_439_999_999_000, Hits: 0}, // out of order: negative delta
			{At: math.MaxInt64, Hits: math.MinInt64},
			{At: math.MinInt64, Hits: -1},
		}},
	}
	for _, st := range states {
		b := appendState(nil, st)
		got, err := decodeState(b)
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", st, err)
		}
		if !reflect.DeepEqual(got, st) {
			t.Errorf("round trip: got %+v, want %+v", got, st)
		}
	}
}

func TestStateEncodingIsCompact(t *testing.T) {
	st := strategies.State{A: 1_693_440_000_000_000, B: 5}
	for i := range int64(10) {
		st.Log = append(st.Log, strategies.Entry{At: 1_693_440_000_000_000 + i*1000, Hits: 1})
	}
	// version + 8-byte varint + 1 + 1 + count + first entry (9 + 1) + 9 × (2 + 1).
	if n := len(appendState(nil, st)); n > 50 {
		t.Errorf("a log of 10 entries 1 ms apart encodes to %d bytes, want at most 50", n)
	}
}

func TestDecodeMalformed(t *testing.T) {
	good := appendState(nil, strategies.State{A: 300, B: 2, Log: []strategies.Entry{{At: 5, Hits: 1}}})
	cases := map[string][]byte{
		"empty":            {},
		"unknown version":  {2, 0, 0, 0, 0},
		"truncated words":  {stateVersion, 0x80},
		"missing count":    {stateVersion, 0, 0, 0},
		"huge count":       {stateVersion, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0},
		"truncated log":    good[:len(good)-1],
		"trailing bytes":   append(append([]byte(nil), good...), 0),
		"overlong varint":  {stateVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0},
		"text from a peer": []byte("42"),
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			st, err := decodeState(v)
			if !errors.Is(err, ErrMalformedState) {
				t.Fatalf("decode(%x) = %+v, %v; want an error wrapping ErrMalformedState", v, st, err)
			}
		})
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add(appendState(nil, strategies.State{A: 1, Log: []strategies.Entry{{At: 2, Hits: 3}}}))
	f.Add([]byte{stateVersion})
	f.Fuzz(func(t *testing.T, v []byte) {
		st, err := decodeState(v)
		if err != nil {
			return
		}
		if got := appendState(nil, st); string(got) != string(v) {
			// Varints have one canonical encoding per value except for
			// padded forms, which binary.Varint rejects as overlong only
			// beyond 10 bytes; a decoded state must re-decode equal.
			again, err := decodeState(got)
			if err != nil || !reflect.DeepEqual(again, st) {
				t.Fatalf("re-encoding %+v: %x, %v", st, got, err)
			}
		}
	})
}
