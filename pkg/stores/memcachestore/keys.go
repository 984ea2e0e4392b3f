package memcachestore

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
)

// Memcached key rules (text protocol): at most maxKeyLen bytes, none of
// them whitespace or control characters.
const maxKeyLen = 250

// hashMarker separates the readable prefix of a hashed key from its
// digest. Keys that contain it are always hashed, so a key stored as it
// is never equals the hashed form of another key.
const hashMarker = '~'

// hashedPrefixLen is how many bytes of the original key a hashed key
// keeps, for people reading memcached dumps.
const hashedPrefixLen = 100

// memcacheKey maps a store key (arbitrary bytes) to a legal memcached key.
//
// A key of at most 250 bytes made only of printable ASCII (0x21–0x7e)
// other than '~' is used as it is. Any other key (too long, or holding
// spaces, control characters, bytes ≥ 0x80 or '~') becomes
//
//	readable prefix + "~" + hex(SHA-256(key))
//
// where the readable prefix is the first 100 bytes of the key with every
// byte outside that set replaced by '_'. The result is at most 165 bytes.
// The mapping is injective as far as SHA-256 is collision-free: kept keys
// contain no '~' and hashed keys always do, and two hashed keys are equal
// only when their digests are.
func memcacheKey(key string) string {
	if plainKey(key) {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	n := min(len(key), hashedPrefixLen)
	b := make([]byte, 0, n+1+2*len(sum))
	for i := 0; i < n; i++ {
		c := key[i]
		if !plainByte(c) {
			c = '_'
		}
		b = append(b, c)
	}
	b = append(b, hashMarker)
	b = hex.AppendEncode(b, sum[:])
	return string(b)
}

// windowKey returns the memcached key of the fixed_window counter of the
// store key key for the window starting at start (microseconds):
//
//	memcacheKey(key) + "~w" + decimal start
//
// or, when that exceeds 250 bytes, readable prefix (as in memcacheKey) +
// "~f" + hex(SHA-256(decimal start + "~" + key)). Neither form equals a
// key memcacheKey returns, nor the other form: plain keys hold no '~';
// hashed keys hold exactly one, followed by exactly 64 hex digits; the
// first form has a 'w' after a '~', the second 65 hex digits after its
// only '~'. Within each form, distinct (key, start) give distinct keys.
func windowKey(key string, start int64) string {
	mk := memcacheKey(key)
	var nb [24]byte
	num := strconv.AppendInt(nb[:0], start, 10)
	if len(mk)+2+len(num) <= maxKeyLen {
		b := make([]byte, 0, len(mk)+2+len(num))
		b = append(b, mk...)
		b = append(b, hashMarker, 'w')
		b = append(b, num...)
		return string(b)
	}
	h := sha256.New()
	h.Write(num)
	h.Write([]byte{hashMarker})
	h.Write([]byte(key))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	n := min(len(key), hashedPrefixLen)
	b := make([]byte, 0, n+2+2*len(sum))
	for i := 0; i < n; i++ {
		c := key[i]
		if !plainByte(c) {
			c = '_'
		}
		b = append(b, c)
	}
	b = append(b, hashMarker, 'f')
	b = hex.AppendEncode(b, sum[:])
	return string(b)
}

// plainKey reports whether key can be stored as it is.
func plainKey(key string) bool {
	if len(key) == 0 || len(key) > maxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if !plainByte(key[i]) {
			return false
		}
	}
	return true
}

func plainByte(c byte) bool { return c > ' ' && c < 0x7f && c != hashMarker }

// maxRelativeExpiration is the largest expiration memcached reads as
// seconds from now (30 days); larger values are absolute Unix times.
const maxRelativeExpiration = 30 * 24 * 60 * 60

// expiration converts a state's TTL (microseconds, as a Decision gives it)
// at now (microseconds since the Unix epoch) to a memcached expiration. It
// reports del when the state need not be kept (ttl ≤ 0), in which case
// the key is deleted, or not written at all.
//
// Memcached's clock ticks once a second, and an item expires at the first
// tick at or after its expiration: an item stored with expiration 1 may
// vanish a millisecond later. So the TTL is rounded up to whole seconds
// and one second is added; a state is never dropped early, and kept at
// most two seconds too long (which never changes a decision). Up to 30
// days this is sent as it is (seconds from now, by the server's clock). A
// longer one is sent as the absolute Unix time ⌈now⌉ + TTL + 1 s, as
// memcached requires; it then relies on the server's clock agreeing with
// now (a server clock ahead by d keeps the state d less). An absolute time
// beyond what memcached's 32-bit field holds (2038) becomes 0, "never
// expire".
func expiration(now, ttl int64) (exp int32, del bool) {
	if ttl <= 0 {
		return 0, true
	}
	const sec = 1_000_000
	secs := ttl / sec
	if ttl%sec != 0 {
		secs++
	}
	if secs < math.MaxInt64 {
		secs++ // the server's clock granularity
	}
	if secs <= maxRelativeExpiration {
		return int32(secs), false
	}
	nowSecs := now / sec
	if now%sec > 0 {
		nowSecs++
	}
	if nowSecs < 0 || secs > math.MaxInt32-nowSecs {
		return 0, false
	}
	return int32(nowSecs + secs), false
}
