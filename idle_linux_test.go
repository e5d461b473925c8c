package forkserver

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
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

// startCat starts cat as a child of the test, through start, which calls
// spawnIdle or ForkExec with the attributes it is given, and returns its
// input and output: as long as the cat lives, it echoes what it is sent.
// Once the cat is created, release closes the test's copies of its ends,
// so that its output reads end-of-file once it is dead.
func startCat(t *testing.T, start func(*syscall.ProcAttr) error) (toCat, fromCat *os.File, release func()) {
	t.Helper()
	in, toCat, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromCat, out, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	release = func() { in.Close(); out.Close() }
	t.Cleanup(func() { release(); toCat.Close(); fromCat.Close() })
	if err := start(&syscall.ProcAttr{Files: []uintptr{in.Fd(), out.Fd(), 2}}); err != nil {
		t.Fatal(err)
	}
	return toCat, fromCat, release
}

// echoes reports whether the cat at the other end of toCat and fromCat
// still echoes; once it is dead, its output reads end-of-file.
func echoes(toCat, fromCat *os.File) bool {
	toCat.Write([]byte("x"))
	_, err := fromCat.Read(make([]byte, 1))
	return err == nil
}

// TestIdleSpawnSparedBySweeps checks that a sweep for strays, which a
// connection's end runs, kills a stray but not the child an idle spawn is
// creating, which is not recorded yet.
func TestIdleSpawnSparedBySweeps(t *testing.T) {
	if !canLeaveIdle() || !havePidfds() {
		t.Skip("no idle spawn here")
	}
	sv := &supervisor{children: make(map[int]*entry), forked: make(chan struct{}, 1), idleRefill: true}
	for _, pid := range childPids() {
		sv.children[pid] = &entry{} // the test's own, not strays
	}
	// A stray is a child of the process's first thread, where the kernel
	// puts what is reparented: so is a child whose creating thread ended.
	toStray, fromStray, release := startCat(t, func(attr *syscall.ProcAttr) error {
		forked := make(chan error)
		go func() {
			runtime.LockOSThread() // for good: the thread ends with the goroutine
			_, err := syscall.ForkExec("/bin/cat", []string{"cat"}, attr)
			forked <- err
		}()
		return <-forked
	})
	release()
	// The sweep comes as the spawn records its child: after the fork,
	// before the recording, in the same hold of sv.mu, which on a busy
	// machine is where the whole idle exec lies.
	var strayLives bool
	toCat, fromCat, release := startCat(t, func(attr *syscall.ProcAttr) error {
		return sv.spawnIdle("/bin/cat", []string{"cat"}, attr, func(pid int) error {
			if !sv.forkMu.TryLock() {
				t.Error("sv.forkMu is held during the idle spawn")
			} else {
				sv.strays = sv.killStrays() // as a connection's end sweeps
				sv.forkMu.Unlock()
			}
			strayLives = echoes(toStray, fromStray)
			sv.children[pid] = &entry{pooled: &pooled{pid: pid}}
			return nil
		})
	})
	release()
	if !echoes(toCat, fromCat) {
		t.Error("a sweep killed the child an idle spawn was creating")
	}
	if strayLives {
		t.Error("a stray outlived a sweep made during an idle spawn")
	}
	sv.mu.Lock()
	defer sv.mu.Unlock()
	for pid := range sv.children {
		if sv.children[pid].pooled != nil {
			syscall.Kill(pid, syscall.SIGKILL)
			var ws syscall.WaitStatus
			wait4(pid, &ws, 0, nil)
		}
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

// TestIdleSpawnRacesSweeps checks that sweeps made back to back while idle
// spawns create their children never kill one: each sweep reads a
// spawner's list of children once, so a child created while it reads is
// either spared or not seen.
func TestIdleSpawnRacesSweeps(t *testing.T) {
	if !canLeaveIdle() || !havePidfds() || !haveThreadChildren() {
		t.Skip("no idle spawn here")
	}
	sv := &supervisor{children: make(map[int]*entry), forked: make(chan struct{}, 1), idleRefill: true}
	for _, pid := range childPids() {
		sv.children[pid] = &entry{} // the test's own, not strays
	}
	stop := make(chan struct{})
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		for {
			select {
			case <-stop:
				return
			default:
			}
			sv.forkMu.Lock()
			sv.mu.Lock()
			sv.killStrays()
			sv.mu.Unlock()
			sv.forkMu.Unlock()
		}
	}()
	var pids []int
	for range 200 {
		err := sv.spawnIdle("/bin/sleep", []string{"sleep", "60"}, &syscall.ProcAttr{}, func(pid int) error {
			sv.children[pid] = &entry{}
			pids = append(pids, pid)
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	close(stop)
	<-swept
	killed := 0
	for _, pid := range pids {
		if sentKill(pid) {
			killed++
		}
		syscall.Kill(pid, syscall.SIGKILL)
		var ws syscall.WaitStatus
		wait4(pid, &ws, 0, nil)
	}
	if killed > 0 {
		t.Errorf("%d of %d idle spawns' children were killed by a sweep before they were recorded", killed, len(pids))
	}
}
