package memory

// Sweep runs the sweeper's pass at once, for the tests of package
// memory_test.
func (s *Store) Sweep() { s.sweep() }
