package forkserver

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
)

// idleThreads counts the threads of process pid at SCHED_IDLE, and all its
// threads.
func idleThreads(pid int) (idle, all int, err error) {
	d, err := os.Open(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, 0, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	for _, name := range names {
		tid, _ := strconv.Atoi(name)
		if policy, err := schedGetscheduler(tid); err == nil && policy == schedIdle {
			idle++
		}
	}
	return idle, len(names), err
}

// checkWarmIdle fails t unless every thread of the warm child pid is at
// SCHED_IDLE, but for the one that waits for its assignment, which it may
// have raised already.
func checkWarmIdle(t *testing.T, what string, pid int) {
	t.Helper()
	if idle, all, err := idleThreads(pid); err != nil || idle < all-1 {
		t.Errorf("%s %d: %d of %d threads at SCHED_IDLE (%v); want all but the waiting one", what, pid, idle, all, err)
	}
}

var notIdle = Register("not-idle", func(ctx context.Context, c *Child) error {
	if idle, _, err := idleThreads(os.Getpid()); err != nil || idle > 0 {
		return fmt.Errorf("%d threads at SCHED_IDLE (%v)", idle, err)
	}
	return nil
})

// TestIdleRefill checks that a warm child waits at idle priority where
// the server may raise it back, every thread of it, and runs its function
// with no thread left idle, its replacement started idle again and the
// server's threads left at normal priority.
func TestIdleRefill(t *testing.T) {
	if !canLeaveIdle() {
		t.Skip("this user may not leave SCHED_IDLE: the pool starts at normal priority")
	}
	srv := startWith(t, &Config{PoolSize: 1})
	ctx := testContext(t)
	if err := srv.WaitWarm(ctx); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	warm := srv.warm[0].pid
	srv.mu.Unlock()
	checkWarmIdle(t, "warm child", warm)
	p, err := srv.Fork(ctx, notIdle, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid != warm {
		t.Fatalf("Fork took child %d, not the warm child %d", p.Pid, warm)
	}
	waitSuccess(t, p)
	if err := srv.WaitWarm(ctx); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	next := srv.warm[0].pid
	srv.mu.Unlock()
	checkWarmIdle(t, "replacement", next)
	// The server's thread that created it is back at normal priority.
	if idle, _, err := idleThreads(srv.Pid()); err != nil || idle > 0 {
		t.Errorf("server: %d threads at SCHED_IDLE (%v); want none", idle, err)
	}
}
