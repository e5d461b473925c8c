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
// pool and records it as l's child. It reports false if no pooled child
// could take it; the caller then starts one cold.
func (sv *supervisor) assignPooled(frame []byte, fds []int, l *launch) bool {
	for {
		sv.mu.Lock()
		if sv.stopping || len(sv.pool) == 0 {
			sv.mu.Unlock()
			return false
		}
		pc := sv.pool[len(sv.pool)-1]
		sv.pool = sv.pool[:len(sv.pool)-1]
		pc.taken = true
		sv.mu.Unlock()
		go sv.refill()

		err := writeMsg(pc.ctl, frame, fds)
		pc.ctl.Close()
		sv.mu.Lock()
		if err == nil && (pc.exit != nil || !sv.stopping) {
			sv.record(l, pc.pid, pc.exit)
			sv.mu.Unlock()
			return true
		}
		sv.mu.Unlock()
		// It died while waiting, or the server began to stop: it is reaped
		// unreported, and the next one is tried.
	}
}

// refill starts pooled children until the pool is full. One refill runs at
// a time, outside any Fork: a burst larger than the pool starts cold.
func (sv *supervisor) refill() {
	sv.mu.Lock()
	if sv.refilling {
		sv.mu.Unlock()
		return
	}
	sv.refilling = true
	sv.mu.Unlock()
	defer func() {
		sv.mu.Lock()
		sv.refilling = false
		sv.mu.Unlock()
	}()
	for {
		sv.mu.Lock()
		full := sv.stopping || len(sv.pool) >= sv.poolSize
		gen := sv.poolGen
		sv.mu.Unlock()
		if full {
			return
		}
		ctl, childCtl, err := socketConnPair()
		if err != nil {
			return
		}
		attr := &syscall.ProcAttr{Env: childEnv(), Files: []uintptr{0, 1, 2, uintptr(childCtl)}}
		err = sv.spawn(sv.exe, os.Args, attr, false, func(pid int) error {
			pc := &pooled{pid: pid, ctl: ctl}
			sv.children[pid] = &entry{pooled: pc}
			if sv.stopping { // missed by the signals the stop sent
				syscall.Kill(pid, syscall.SIGKILL)
				return ErrClosed
			}
			if gen != sv.poolGen { // drained while it started: it may predate an Eval
				ctl.Close()
				return nil
			}
			sv.pool = append(sv.pool, pc)
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
// see the server as it is now. sv.mu must be held.
func (sv *supervisor) drainPool() {
	for _, pc := range sv.pool {
		pc.ctl.Close() // it reads end-of-file and exits
	}
	sv.pool = nil
	sv.poolGen++
}

// leftPool removes the child pid from the pool if it died there. sv.mu must
// be held.
func (sv *supervisor) leftPool(pid int) {
	for i, pc := range sv.pool {
		if pc.pid == pid {
			pc.ctl.Close()
			sv.pool = append(sv.pool[:i], sv.pool[i+1:]...)
			return
		}
	}
}
