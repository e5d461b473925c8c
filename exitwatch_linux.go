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
			switch err := waitAnyExited(); err {
			case nil:
				sv.reapExited()
			case syscall.ECHILD:
				<-sv.forked // no child to wait for until the next fork
			default:
				fmt.Fprintf(os.Stderr, "forkserver: server: %v\n", os.NewSyscallError("waitid", err))
				os.Exit(2)
			}
		}
	}()
}
