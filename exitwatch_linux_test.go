package forkserver

import (
	"os"
	"strconv"
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
		wpid, ws, ru, ok, err := peekExited(pWaitPid, pid, 0)
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

// TestReapRecordedStalePeek checks that an exit the watcher saw before it
// held sv.mu is not told of a child that took the pid since: ForkExec
// reaps a child whose exec failed itself, and the pid may then be reused
// by a child the server records. The test reaps the first process itself,
// as ForkExec would, and has the next pid be the same through ns_last_pid.
func TestReapRecordedStalePeek(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("ns_last_pid is root's to write")
	}
	sv := &supervisor{children: make(map[int]*entry), forked: make(chan struct{}, 1)}
	first, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "exit 126"}, nil) // as a failed exec exits
	if err != nil {
		t.Fatal(err)
	}
	if pid, _, _, _, err := peekExited(pWaitPid, first, 0); err != nil || pid != first {
		t.Fatalf("waitid: pid %d, %v; want %d", pid, err, first)
	}
	var ws syscall.WaitStatus
	wait4(first, &ws, 0, nil)
	if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(first-1)), 0); err != nil {
		t.Skip(err)
	}
	var second int
	err = sv.spawnOn(nil, "/bin/sleep", []string{"sleep", "60"}, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}}, func(pid int) error {
		second = pid
		sv.children[pid] = &entry{gone: make(chan struct{})}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(second, syscall.SIGKILL)
		wait4(second, &ws, 0, nil)
	}()
	if second != first {
		t.Skipf("pid %d was not reused: got %d", first, second)
	}
	if !sv.reapRecorded(first) {
		t.Error("reapRecorded handed the stale exit on")
	}
	if _, ok := sv.children[second]; !ok {
		t.Errorf("child %d, alive, was taken for the earlier process of its pid, and left the table", second)
	}
}
