package testservers

import "syscall"

// Pause freezes the redis-server process (SIGSTOP): the kernel still
// accepts connections but nothing answers, as with a hung server, so
// clients run into their timeouts. Resume undoes it; Stop and the test's
// cleanup work on a paused server too.
func (s *Server) Pause() {
	s.h.Helper()
	if err := s.p.signal(syscall.SIGSTOP); err != nil {
		s.h.Fatalf("testservers: %v", err)
	}
}

// Resume lets a paused server run again.
func (s *Server) Resume() {
	s.h.Helper()
	if err := s.p.signal(syscall.SIGCONT); err != nil {
		s.h.Fatalf("testservers: %v", err)
	}
}
