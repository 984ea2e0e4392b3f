package memcachestore

import "errors"

// cmdOp is what a cmd asks of memcached.
type cmdOp uint8

const (
	// cmdGet reads a value and its CAS id.
	cmdGet cmdOp = iota
	// cmdIncr adds delta to a decimal counter, creating it with the value
	// delta and expiration exp when it is missing, and returns the new
	// count.
	cmdIncr
	// cmdDecr subtracts delta from a decimal counter (stopping at 0) and
	// returns the new count; a missing counter is a miss.
	cmdDecr
	// cmdAdd stores value with expiration exp when the key is missing.
	cmdAdd
	// cmdCAS stores value with expiration exp when the key's CAS id is
	// still cas.
	cmdCAS
	// cmdDelete deletes the key when its CAS id is still cas.
	cmdDelete
	// cmdNoop asks for an answer and does nothing (Ping).
	cmdNoop
)

// result is how memcached answered a cmd that reached it.
type result uint8

const (
	// resOK: done (a get found the key).
	resOK result = iota
	// resMiss: the key does not exist (a get or decr on a missing key).
	resMiss
	// resConflict: a conditional write lost a race: the key was added
	// (add), changed (cas, delete) or removed (cas, delete) since it was
	// read.
	resConflict
)

// cmd is one memcached command of an Apply call and, once run, its
// answer. The fields up to cas are the request; the others are filled by
// the client.
type cmd struct {
	op    cmdOp
	key   string // the memcached key
	value []byte // cmdAdd, cmdCAS
	delta uint64 // cmdIncr, cmdDecr
	exp   int32  // cmdIncr (a created counter), cmdAdd, cmdCAS
	cas   uint64 // cmdCAS, cmdDelete

	res   result
	val   []byte // cmdGet: the value read (the cmd's own copy)
	num   uint64 // cmdIncr, cmdDecr: the new count
	casID uint64 // cmdGet: the CAS id read
	// err is the error of a cmd that got no answer (network, timeout,
	// closed store) or an error answer; errClientError is wrapped when
	// memcached refused the command itself (an incr of a value that is
	// not a decimal counter).
	err error
	// answered is set by the client once the answer is read.
	answered bool
}

// errClientError is wrapped by the error of a cmd that memcached answered
// with CLIENT_ERROR.
var errClientError = errors.New("memcached client error")
