package forkserver

import (
	"os"
	"os/signal"
	"syscall"
)

// watchExits makes the server reap its children as they exit: one goroutine
// woken by SIGCHLD, never a thread per child.
func (sv *supervisor) watchExits() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	go func() {
		for range sigs {
			sv.reapExited()
		}
	}()
}
