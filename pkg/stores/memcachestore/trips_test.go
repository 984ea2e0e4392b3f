package memcachestore

// roundTrips returns the number of round trips the Store's flushers have
// made, on all servers.
func (s *Store) roundTrips() uint64 {
	var n uint64
	for _, srv := range s.servers {
		n += srv.trips.Load()
	}
	return n
}
