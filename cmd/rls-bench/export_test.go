package main

import "time"

// Accessors only the tests read.

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.total }

// Min returns the smallest observation, 0 when there is none.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Len returns the cardinality.
func (ks *KeySpace) Len() int { return len(ks.values) }
