package forkserver

import (
	"syscall"
	"testing"
)

// TestPeekExitedAsReaped checks that the exit waitid reports before a child
// is reaped, which the server tells first, is the one wait4 reports as it
// reaps the child: its status, for an exit and a death by a signal, and its
// resource usage.
func TestPeekExitedAsReaped(t *testing.T) {
	for _, script := range []string{"exit 0", "exit 7", "exit 255", "kill -KILL $$", "kill -TERM $$", "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; exit 3"} {
		pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", script}, nil)
		if err != nil {
			t.Fatal(err)
		}
		wpid, ws, ru, ok, err := peekExited(pWaitPid, pid)
		if err != nil || wpid != pid || !ok {
			t.Fatalf("%s: waitid: pid %d, known %v, %v; want %d", script, wpid, ok, err, pid)
		}
		var rws syscall.WaitStatus
		var rru syscall.Rusage
		if rpid, err := wait4(pid, &rws, 0, &rru); err != nil || rpid != pid {
			t.Fatalf("%s: wait4: %d, %v", script, rpid, err)
		}
		if ws != rws || *ru != rru {
			t.Errorf("%s: waitid saw status %#x, usage %+v; wait4 reaped %#x, %+v", script, ws, *ru, rws, rru)
		}
	}
}
