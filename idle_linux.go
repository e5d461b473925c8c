package forkserver

// A refill that stays out of the way: the server starts a plain pool's
// children at idle scheduling priority (SCHED_IDLE), so that on a small
// machine their start, an exec and a Go runtime's, takes only the
// processor time that the Forks and children running meanwhile leave;
// a child assigned restores normal priority before it runs the function.

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"syscall"
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

// spawnIdle is spawn for a plain pool's child, which it creates from the
// calling goroutine's thread at idle priority: the child inherits it from
// its first instruction, so its exec and its runtime's start are idle too,
// and so is every thread it creates. The thread's priority is restored
// after, or, should that fail, the thread ends with its goroutine.
//
// It holds no sv.forkMu meanwhile: on a busy machine an idle exec can take
// long, and the reaper's sweeps, a stop and the end of a connection, which
// wait for the forks in flight, must not wait for it, nor every Fork
// behind them. The reaper may then take the child, should it die before it
// is recorded, for a stray and reap it; the child's pidfd says whether it
// did, so that a pid reaped, which may be reused, is never recorded.
func (sv *supervisor) spawnIdle(path string, argv []string, attr *syscall.ProcAttr, add func(pid int) error) error {
	pidfd := -1
	sys := syscall.SysProcAttr{}
	if attr.Sys != nil {
		sys = *attr.Sys
	}
	sys.PidFD = &pidfd
	withPidfd := *attr
	withPidfd.Sys = &sys
	runtime.LockOSThread()
	if err := schedSetscheduler(0, schedIdle); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	pid, err := syscall.ForkExec(path, argv, &withPidfd)
	if schedSetscheduler(0, schedOther) == nil {
		runtime.UnlockOSThread()
	}
	if err != nil {
		return os.NewSyscallError("fork/exec", err)
	}
	defer syscall.Close(pidfd)
	sv.noteForked()
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if pidfd < 0 || pidfdSignal(pidfd, 0) != nil {
		return errors.New("the child died as it started")
	}
	return add(pid)
}

// listedThreads holds the threads of a pooled child started idle, listed
// while it waits by listIdle, so that leaveIdle lists them once, not
// twice, after the assignment has come.
var listedThreads map[int]bool

// listIdle lists this process's threads, if the server started it idle,
// and gives normal priority back to the calling thread, which it locks:
// the thread that waits for the assignment wakes at normal priority, not
// behind every runnable task of the machine, and leaveIdle, on it, does
// the rest.
func listIdle() {
	if os.Getenv(idleEnv) == "" {
		return
	}
	runtime.LockOSThread()
	schedSetscheduler(0, schedOther)
	listedThreads, _ = threads()
}

// leaveIdle restores normal priority on every thread of this process, if
// the server started it idle: those listIdle listed, then those a listing
// finds that they did not include, until one finds none.
func leaveIdle() error {
	if os.Getenv(idleEnv) == "" {
		return nil
	}
	os.Unsetenv(idleEnv)
	defer runtime.UnlockOSThread()
	todo := listedThreads
	done := map[int]bool{}
	for {
		for tid := range todo {
			if err := schedSetscheduler(tid, schedOther); err != nil && !errors.Is(err, syscall.ESRCH) {
				return err
			}
			done[tid] = true
		}
		now, err := threads()
		if err != nil {
			return err
		}
		todo = map[int]bool{}
		for tid := range now {
			if !done[tid] {
				todo[tid] = true
			}
		}
		if len(todo) == 0 {
			return nil
		}
	}
}

// threads returns the ids of this process's threads.
func threads() (map[int]bool, error) {
	d, err := os.Open("/proc/self/task")
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	tids := make(map[int]bool, len(names))
	for _, name := range names {
		if tid, err := strconv.Atoi(name); err == nil {
			tids[tid] = true
		}
	}
	return tids, nil
}
