package forkserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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

// checkWarmLeft fails t unless the warm child pid, once ready, has no
// thread left at SCHED_IDLE. Handed over, it may still be starting.
func checkWarmLeft(t *testing.T, what string, pid int) {
	t.Helper()
	var idle, all int
	var err error
	if !await(func() bool { idle, all, err = idleThreads(pid); return err == nil && idle == 0 }) {
		t.Errorf("%s %d: %d of %d threads at SCHED_IDLE (%v); want none once ready", what, pid, idle, all, err)
	}
}

// notIdle fails unless the child runs with no thread at SCHED_IDLE, and
// found every thread it had at SCHED_IDLE as it left it, before it was
// ready: it was started idle, and inherited it from its first instruction.
var notIdle = Register("not-idle", func(ctx context.Context, c *Child) error {
	if idle, _, err := idleThreads(os.Getpid()); err != nil || idle > 0 {
		return fmt.Errorf("%d threads at SCHED_IDLE (%v)", idle, err)
	}
	if leftIdle.threads == 0 || leftIdle.idle != leftIdle.threads {
		return fmt.Errorf("%d of %d threads at SCHED_IDLE when it left it; want all", leftIdle.idle, leftIdle.threads)
	}
	return nil
})

// TestIdleRefill checks that a warm child starts at idle priority, every
// thread of it, where the server may raise it back, leaves it before it is
// ready and runs its function with no thread left idle, its replacement
// too, and that the server's threads are left at normal priority.
func TestIdleRefill(t *testing.T) {
	if !canLeaveIdle() {
		t.Skip("this user may not leave SCHED_IDLE: the pool starts at normal priority")
	}
	srv := startWith(t, &Config{PoolSize: 1})
	ctx := testContext(t)
	if err := srv.WaitWarm(ctx); err != nil {
		t.Fatal(err)
	}
	for _, what := range []string{"warm child", "replacement"} {
		srv.mu.Lock()
		warm := srv.warm[0].pid
		srv.mu.Unlock()
		checkWarmLeft(t, what, warm)
		p, err := srv.Fork(ctx, notIdle, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.Pid != warm {
			t.Fatalf("Fork took child %d, not the %s %d", p.Pid, what, warm)
		}
		waitSuccess(t, p)
		if err := srv.WaitWarm(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The server's thread that created them is back at normal priority.
	if idle, _, err := idleThreads(srv.Pid()); err != nil || idle > 0 {
		t.Errorf("server: %d threads at SCHED_IDLE (%v); want none", idle, err)
	}
}

// TestLeaveIdle checks leaveIdle in this process: threads made idle, and
// threads they created while idle, all leave it.
func TestLeaveIdle(t *testing.T) {
	if !canLeaveIdle() {
		t.Skip("this user may not leave SCHED_IDLE")
	}
	defer func() { leftIdle.threads, leftIdle.idle = 0, 0 }()
	release := make(chan struct{})
	defer close(release)
	for range 3 {
		ready := make(chan struct{})
		go func() {
			runtime.LockOSThread() // its thread ends with it
			schedSetscheduler(0, schedIdle)
			go func() { // on a thread the idle one may create
				runtime.LockOSThread()
				<-release
			}()
			close(ready)
			<-release
		}()
		<-ready
	}
	t.Setenv(idleEnv, "1")
	if err := leaveIdle(); err != nil {
		t.Fatal(err)
	}
	if idle, all, err := idleThreads(os.Getpid()); err != nil || idle > 0 {
		t.Fatalf("after leaveIdle: %d of %d threads at SCHED_IDLE (%v)", idle, all, err)
	}
	if _, set := os.LookupEnv(idleEnv); set {
		t.Errorf("after leaveIdle: %s still set", idleEnv)
	}
	if leftIdle.idle < 3 {
		t.Errorf("leaveIdle found %d of %d threads idle; want at least the 3 made so", leftIdle.idle, leftIdle.threads)
	}
}

// sentKill reports whether process pid has been sent SIGKILL: it is gone,
// a zombie, or has the signal pending.
func sentKill(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return true
	}
	for line := range strings.Lines(string(b)) {
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimSpace(value)
		switch name {
		case "State":
			if strings.HasPrefix(value, "Z") || strings.HasPrefix(value, "X") {
				return true
			}
		case "SigPnd", "ShdPnd":
			if mask, err := strconv.ParseUint(value, 16, 64); err == nil && mask&(1<<(syscall.SIGKILL-1)) != 0 {
				return true
			}
		}
	}
	return false
}

// TestIdleSpawnRacesSweeps checks, with sweeps made again and again while
// idle spawns create their children, each after reaping what exited as
// the server's reaper does, that no child a spawn records was killed by a
// sweep, and that a spawn a sweep came through says so (errSwept), not
// that its child died as it started, which would count as a failure.
func TestIdleSpawnRacesSweeps(t *testing.T) {
	if !canLeaveIdle() || !havePidfds() || !haveThreadChildren() {
		t.Skip("no idle spawn here")
	}
	sv := &supervisor{children: make(map[int]*entry), forked: make(chan struct{}, 1), idleRefill: true}
	before := childPids()
	for _, pid := range before {
		sv.children[pid] = &entry{} // the test's own, not strays
	}
	stop := make(chan struct{})
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			sv.forkMu.Lock()
			sv.mu.Lock()
			for { // as reapExited: reap what exited, then sweep
				var ws syscall.WaitStatus
				pid, err := wait4(-1, &ws, syscall.WNOHANG, nil)
				if err != nil || pid <= 0 {
					break
				}
				if _, ok := sv.children[pid]; ok {
					t.Errorf("recorded child %d exited", pid)
					delete(sv.children, pid)
				}
			}
			sv.killStrays()
			sv.mu.Unlock()
			sv.forkMu.Unlock()
			// A spread of timings between sweeps, not a wait.
			time.Sleep(time.Duration(i%4) * 100 * time.Microsecond)
		}
	}()
	var pids []int
	discarded := 0
	for range 300 {
		err := sv.spawnIdle("/bin/sleep", []string{"sleep", "60"}, &syscall.ProcAttr{}, func(pid int) error {
			sv.children[pid] = &entry{}
			pids = append(pids, pid)
			return nil
		})
		switch {
		case errors.Is(err, errSwept):
			discarded++
		case err != nil:
			t.Error(err)
		}
	}
	close(stop)
	<-swept
	t.Logf("%d spawns recorded their child, %d were swept", len(pids), discarded)
	killed := 0
	for _, pid := range pids {
		if sentKill(pid) {
			killed++
		}
	}
	for _, pid := range childPids() { // the recorded and the swept: all of them
		if !slices.Contains(before, pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			var ws syscall.WaitStatus
			wait4(pid, &ws, 0, nil)
		}
	}
	if killed > 0 {
		t.Errorf("%d of %d idle spawns' children were killed by a sweep before they were recorded", killed, len(pids))
	}
	if len(pids) == 0 || discarded == 0 {
		t.Errorf("no spawn both recorded and swept: the race was not run")
	}
}
