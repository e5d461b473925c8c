//go:build linux || darwin

package forkserver

import (
	"os"
	"syscall"
	"time"

	"github.com/forkserver/forkserver/internal/wire"
)

// A warm pool: children already executed, initialised and blocked reading
// their assignment, so that a Fork costs a message instead of an exec and
// the Go runtime's start. The server hands each one, as it is ready, to
// the program's connection, whose Forks then write the assignment to the
// child themselves: one message from the program to a running process.
// What the program does not hold waits in the server, for the Forks it
// relays.

// pooled is a child waiting in the pool.
type pooled struct {
	pid   int
	ctl   int        // the server's end of its descriptor 3, blocking
	taken bool       // taken from the pool to be assigned
	exit  *wire.Exit // its exit, if it ended after it was taken
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
		err := sendMsgFd(pc.ctl, frame, fds)
		syscall.Close(pc.ctl)
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

// refill starts pooled children until the pool, with the children handed
// to the program and not yet assigned, is full. One refill runs at a time,
// outside any Fork: a burst larger than the pool starts cold.
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
		full := sv.stopping || len(sv.pool)+sv.handed >= sv.poolSize
		gen := sv.poolGen
		sv.mu.Unlock()
		if full {
			return
		}
		ctl, childCtl, err := socketpair()
		if err != nil {
			return
		}
		started, childStarted, err := pipe()
		if err != nil {
			closeFds([]int{ctl, childCtl})
			return
		}
		attr := &syscall.ProcAttr{Env: append(os.Environ(), roleEnv+"="+rolePooled), Files: []uintptr{0, 1, 2, uintptr(childCtl), uintptr(childStarted)}}
		err = sv.spawn(sv.exe, os.Args, attr, false, func(pid int) error {
			pc := &pooled{pid: pid, ctl: ctl}
			sv.children[pid] = &entry{pooled: pc, gone: make(chan struct{})}
			switch {
			case sv.stopping: // missed by the signals the stop sent
				syscall.Kill(pid, syscall.SIGKILL)
				return ErrClosed
			case gen != sv.poolGen: // drained while it started: it may predate an Eval
				syscall.Close(ctl)
			case !sv.handOff(pc):
				sv.pool = append(sv.pool, pc)
			}
			go sv.replaceWhenStarted(pid, started)
			return nil
		})
		closeFds([]int{childCtl, childStarted})
		if err != nil {
			closeFds([]int{ctl, started})
			return // the next Fork tries again
		}
	}
}

// handOff hands the pooled child pc to the program's connection, with the
// read end of an exit pipe, if the program holds fewer than the pool's size
// and may have another child alive. From then on the child is the
// program's, as a Fork's child is, and counts toward its bound, but warm:
// it is left out of KillAll until the program says it assigned it. sv.mu
// must be held.
func (sv *supervisor) handOff(pc *pooled) bool {
	if sv.program == nil || sv.handed >= sv.poolSize || sv.program.reserve() != nil {
		return false
	}
	r, w, err := pipe()
	if err == nil {
		err = syscall.SetNonblock(w, true)
	}
	if err != nil {
		closeFds([]int{r, w})
		sv.program.unreserve()
		return false
	}
	sv.nextWarm++
	id := 1<<31 | sv.nextWarm // requesters number their own requests below 1<<31
	sv.children[pc.pid] = &entry{owner: sv.program, id: id, exit: w, warm: true, gone: sv.children[pc.pid].gone}
	sv.handed++
	sv.program.sendFds(id, &wire.Warm{Pid: uint32(pc.pid)}, []int{pc.ctl, r})
	return true
}

// handOffPooled hands children waiting in the pool to the program for as
// long as it may hold more: room may have come since they started. sv.mu
// must be held.
func (sv *supervisor) handOffPooled() {
	for !sv.stopping && len(sv.pool) > 0 && sv.handOff(sv.pool[len(sv.pool)-1]) {
		sv.pool = sv.pool[:len(sv.pool)-1]
	}
}

// taken records that cl assigned the warm child m.pid it was handed: the
// child is in its scope from now on, and leads a process group if m says
// so.
func (sv *supervisor) taken(cl *client, m *wire.Taken) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if e := sv.children[int(m.Pid)]; e != nil && e.owner == cl {
		e.group = m.Group
		sv.assigned(e)
	}
}

// assigned records that the warm child e was assigned, by its owner's word
// or its own; replaceWhenStarted replaces it. sv.mu must be held.
func (sv *supervisor) assigned(e *entry) {
	if e.warm {
		e.warm = false
		sv.handed--
	}
}

// replaceWhenStarted waits until the pooled child pid has read its
// assignment, or is gone, as the end of its started pipe says, and then
// until it exits or has run for refillPause, and starts its replacement:
// on a small machine a replacement started at once competes with the child
// it replaces, and a short-lived child's exit with it.
func (sv *supervisor) replaceWhenStarted(pid, started int) {
	syscall.SetNonblock(started, true) // so that the runtime's poller waits, not a thread
	f := os.NewFile(uintptr(started), "forkserver-started")
	f.Read(make([]byte, 1)) // end-of-file, or an error: either way it is over
	f.Close()
	sv.mu.Lock()
	e := sv.children[pid]
	if e != nil {
		sv.assigned(e)
	}
	sv.mu.Unlock()
	if e != nil {
		pause := time.NewTimer(refillPause)
		select {
		case <-e.gone:
		case <-pause.C:
		}
		pause.Stop()
	}
	sv.refill()
}

// drainPool sends every pooled child away, those handed to the program
// and not yet assigned included, to be replaced by children that see the
// server as it is now. sv.mu must be held.
func (sv *supervisor) drainPool() {
	for _, pc := range sv.pool {
		syscall.Close(pc.ctl) // it reads end-of-file and exits
	}
	sv.pool = nil
	sv.poolGen++
	for pid, e := range sv.children {
		if e.warm {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// leftPool removes the child pid from the pool if it died there. sv.mu must
// be held.
func (sv *supervisor) leftPool(pid int) {
	for i, pc := range sv.pool {
		if pc.pid == pid {
			syscall.Close(pc.ctl)
			sv.pool = append(sv.pool[:i], sv.pool[i+1:]...)
			return
		}
	}
}
