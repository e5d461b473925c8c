//go:build linux || darwin

package forkserver

import (
	"net"
	"os"
	"syscall"
)

// A warm pool: children already executed, initialised and blocked reading
// their assignment, so that a Fork costs a message instead of an exec and
// the Go runtime's start.

// pooled is a child waiting in the pool.
type pooled struct {
	pid   int
	ctl   *net.UnixConn // the server's end of its descriptor 3
	taken bool          // taken from the pool to be assigned
	exit  *exitMsg      // its exit, if it ended after it was taken
}

// assignPooled writes the assignment frame, with fds, to a child from the
// pool and calls claim with its pid, with s.mu held: with its exit too if
// it has already ended, having had its assignment. It reports false if no
// pooled child could take it; the caller then starts one cold.
func (s *server) assignPooled(frame []byte, fds []int, claim func(pid int, exited *exitMsg)) bool {
	for {
		s.mu.Lock()
		if s.stopping || len(s.pool) == 0 {
			s.mu.Unlock()
			return false
		}
		pc := s.pool[len(s.pool)-1]
		s.pool = s.pool[:len(s.pool)-1]
		pc.taken = true
		s.mu.Unlock()
		go s.refill()

		err := writeMsg(pc.ctl, frame, fds)
		pc.ctl.Close()
		s.mu.Lock()
		if err == nil && (pc.exit != nil || !s.stopping) {
			claim(pc.pid, pc.exit)
			s.mu.Unlock()
			return true
		}
		s.mu.Unlock()
		// It died while waiting, or the server began to stop: it is reaped
		// unreported, and the next one is tried.
	}
}

// refill starts pooled children until the pool is full. One refill runs at
// a time, outside any Fork: a burst larger than the pool starts cold.
func (s *server) refill() {
	s.mu.Lock()
	if s.refilling {
		s.mu.Unlock()
		return
	}
	s.refilling = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.refilling = false
		s.mu.Unlock()
	}()
	for {
		s.mu.Lock()
		full := s.stopping || len(s.pool) >= s.poolSize
		gen := s.poolGen
		s.mu.Unlock()
		if full {
			return
		}
		ctl, childCtl, err := socketConnPair()
		if err != nil {
			return
		}
		env := append(os.Environ(), roleEnv+"=child")
		err = s.spawn(s.exe, os.Args, env, "", []uintptr{0, 1, 2, uintptr(childCtl)}, nil, false, func(pid int) error {
			pc := &pooled{pid: pid, ctl: ctl}
			s.children[pid] = &child{pooled: pc}
			if s.stopping { // missed by the signals the stop sent
				syscall.Kill(pid, syscall.SIGKILL)
				return ErrClosed
			}
			if gen != s.poolGen { // drained while it started: it may predate an Eval
				ctl.Close()
				return nil
			}
			s.pool = append(s.pool, pc)
			return nil
		})
		syscall.Close(childCtl)
		if err != nil {
			ctl.Close()
			return // the next Fork tries again
		}
	}
}

// drainPool sends every pooled child away, to be replaced by children that
// see the server as it is now. s.mu must be held.
func (s *server) drainPool() {
	for _, pc := range s.pool {
		pc.ctl.Close() // it reads end-of-file and exits
	}
	s.pool = nil
	s.poolGen++
}

// leftPool removes the child pid from the pool if it died there. s.mu must
// be held.
func (s *server) leftPool(pid int) {
	for i, pc := range s.pool {
		if pc.pid == pid {
			pc.ctl.Close()
			s.pool = append(s.pool[:i], s.pool[i+1:]...)
			return
		}
	}
}
