package redistest

import (
	"fmt"
	"syscall"
)

// Pause freezes every node of the server with SIGSTOP, as a stalled host or a
// long GC-like stop would: connections stay open, the kernel still accepts
// new ones, but nothing is answered until Resume. Only local servers
// (SourceLocal) can be paused.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a server stopped by Pause (SIGCONT).
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	if s.nodes == nil {
		return fmt.Errorf("redistest: signals not supported for %s", s.desc)
	}
	for _, n := range s.nodes {
		ln, ok := n.(*localNode)
		if !ok {
			return fmt.Errorf("redistest: signals need a local server, not %s", s.desc)
		}
		if err := ln.signal(sig); err != nil {
			return err
		}
	}
	return nil
}

func (n *localNode) signal(sig syscall.Signal) error {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return fmt.Errorf("redistest: redis-server on port %d is not running", n.port)
	}
	return cmd.Process.Signal(sig)
}
