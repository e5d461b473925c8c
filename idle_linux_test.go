package forkserver

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
)

// idleThreads counts the threads of process pid at SCHED_IDLE.
func idleThreads(pid int) (int, error) {
	d, err := os.Open(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	n := 0
	for _, name := range names {
		tid, _ := strconv.Atoi(name)
		if policy, err := schedGetscheduler(tid); err == nil && policy == schedIdle {
			n++
		}
	}
	return n, err
}

var notIdle = Register("not-idle", func(ctx context.Context, c *Child) error {
	if n, err := idleThreads(os.Getpid()); err != nil || n > 0 {
		return fmt.Errorf("%d threads at SCHED_IDLE (%v)", n, err)
	}
	return nil
})

// TestIdleRefill checks that a warm child waits at idle priority where
// the server may raise it back, and runs its function with no thread
// left idle, its replacement started idle again.
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
	if n, err := idleThreads(warm); err != nil || n == 0 {
		t.Fatalf("warm child %d: %d threads at SCHED_IDLE (%v); want its threads idle", warm, n, err)
	}
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
	if n, err := idleThreads(next); err != nil || n == 0 {
		t.Errorf("replacement %d: %d threads at SCHED_IDLE (%v); want its threads idle", next, n, err)
	}
}
