package forkserver

import (
	"syscall"
	"testing"
)

// TestPeekExitedAsReaped checks that the exit waitid reports before a child
// is reaped, which the server tells first, is the one wait4 reports as it
// reaps the child: its status, for an exit and a death by a signal, and its
// resource usage. The usage is read from the same zombie an instant later,
// when its last moments on a processor may have been counted: its CPU time
// may grow by those, and each count of context switches by the last one.
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
		if ws != rws || !sameUsage(*ru, rru) {
			t.Errorf("%s: waitid saw status %#x, usage %+v; wait4 reaped %#x, %+v", script, ws, *ru, rws, rru)
		}
	}
}

// sameUsage reports whether peeked, a zombie's usage, and reaped, the same
// zombie's an instant later, agree: equal but for what the zombie's last
// moments on a processor add, up to a millisecond of CPU time and one
// context switch of each kind.
func sameUsage(peeked, reaped syscall.Rusage) bool {
	cpu := func(ru syscall.Rusage) int64 { return ru.Utime.Nano() + ru.Stime.Nano() }
	grew := cpu(reaped) - cpu(peeked)
	within := func(a, b int64) bool { return 0 <= b-a && b-a <= 1 }
	ok := 0 <= grew && grew <= 1e6 &&
		within(int64(peeked.Nvcsw), int64(reaped.Nvcsw)) && within(int64(peeked.Nivcsw), int64(reaped.Nivcsw))
	peeked.Utime, peeked.Stime, peeked.Nvcsw, peeked.Nivcsw = reaped.Utime, reaped.Stime, reaped.Nvcsw, reaped.Nivcsw
	return ok && peeked == reaped
}
