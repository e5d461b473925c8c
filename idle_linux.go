package forkserver

// A refill that stays out of the way: the server starts a plain pool's
// children at idle scheduling priority (SCHED_IDLE), so that on a small
// machine their start, an exec and a Go runtime's, takes only the
// processor time that the Forks and children running meanwhile leave;
// a child assigned restores normal priority before it runs the function.

import (
	"os"
	"runtime"
	"strconv"
)

// idleEnv tells a pooled child that it was started at idle priority and
// must leave it when assigned.
const idleEnv = "FORKSERVER_IDLE"

// canLeaveIdle reports whether this process may raise a thread from
// SCHED_IDLE back to SCHED_OTHER, which takes CAP_SYS_NICE or an
// RLIMIT_NICE of at least 20: it tries, on a thread of its own, which ends
// with its goroutine should it stay idle.
func canLeaveIdle() bool {
	ok := make(chan bool)
	go func() {
		runtime.LockOSThread()
		left := schedSetscheduler(0, schedIdle) == nil && schedSetscheduler(0, schedOther) == nil
		if left {
			runtime.UnlockOSThread()
		}
		ok <- left
	}()
	return <-ok
}

// startIdle makes the freshly executed child pid, a pooled child of the
// plain pool, idle: its main thread, and so every thread it creates from
// then on.
func startIdle(pid int) { schedSetscheduler(pid, schedIdle) }

// leaveIdle restores normal priority on every thread of this process that
// is idle, until a pass finds none, if the server started it idle.
func leaveIdle() error {
	if os.Getenv(idleEnv) == "" {
		return nil
	}
	os.Unsetenv(idleEnv)
	for {
		d, err := os.Open("/proc/self/task")
		if err != nil {
			return err
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return err
		}
		changed := false
		for _, name := range names {
			tid, err := strconv.Atoi(name)
			if err != nil {
				continue
			}
			if policy, err := schedGetscheduler(tid); err == nil && policy == schedIdle {
				if err := schedSetscheduler(tid, schedOther); err != nil {
					return err
				}
				changed = true
			}
		}
		if !changed {
			return nil
		}
	}
}
