package forkserver

// A refill that stays out of the way: the server starts a plain pool's
// children at idle scheduling priority (SCHED_IDLE), so that on a small
// machine their start, an exec and a Go runtime's, takes only the
// processor time that the Forks and children running meanwhile leave;
// a child restores normal priority once started, before it says it is
// ready, and so waits for its assignment, and runs the function, at it.

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/forkserver/forkserver/internal/sysnum"
)

// idleEnv tells a pooled child that it was started at idle priority and
// must leave it once started, before it says it is ready.
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
// behind them. Its thread is a spawner (see killStrays) until the child is
// recorded, so that no sweep takes the child for a stray. The reaper may
// still take the child, should it die before it is recorded, for a stray
// and reap it; the child's pidfd says whether it did, so that a pid
// reaped, which may be reused, is never recorded.
func (sv *supervisor) spawnIdle(path string, argv []string, attr *syscall.ProcAttr, add func(pid int) error) error {
	runtime.LockOSThread()
	tid := syscall.Gettid()
	if tid == syscall.Getpid() {
		// The first thread, where the kernel lists strays, is never a
		// spawner: a new goroutine gets another while this one holds it.
		done := make(chan error, 1)
		go func() { done <- sv.spawnIdle(path, argv, attr, add) }()
		err := <-done
		runtime.UnlockOSThread()
		return err
	}
	pidfd := -1
	sys := syscall.SysProcAttr{}
	if attr.Sys != nil {
		sys = *attr.Sys
	}
	sys.PidFD = &pidfd
	withPidfd := *attr
	withPidfd.Sys = &sys
	// The thread becomes idle and a spawner in one hold of sv.mu: a sweep
	// that hurries it (see killStrays) comes after it is idle.
	sv.mu.Lock()
	if sv.spawners == nil {
		sv.spawners = make(map[int]bool)
	}
	sv.spawners[tid] = true
	err := schedSetscheduler(0, schedIdle)
	sv.mu.Unlock()
	pid, stuckIdle := -1, false
	if err == nil {
		pid, err = syscall.ForkExec(path, argv, &withPidfd)
		stuckIdle = schedSetscheduler(0, schedOther) != nil
		if err != nil {
			err = os.NewSyscallError("fork/exec", err)
		} else {
			defer syscall.Close(pidfd)
			sv.noteForked()
		}
	}
	if !stuckIdle {
		runtime.UnlockOSThread()
	} // else the thread, which may not run idle, ends with its goroutine
	sv.mu.Lock()
	// The thread stops being a spawner in the same hold of sv.mu as the
	// child is recorded: no sweep finds the child neither spared nor
	// recorded.
	switch {
	case err != nil:
	case pidfd < 0 || pidfdSignal(pidfd, 0) != nil:
		err = errors.New("the child died as it started")
	default:
		err = add(pid)
	}
	delete(sv.spawners, tid)
	sweep := sv.strays > 0 // the count included the child: make it afresh
	sv.mu.Unlock()
	switch {
	case !sweep:
	case stuckIdle:
		go sv.reapExited() // not at idle priority, holding what every Fork waits for
	default:
		sv.reapExited()
	}
	return err
}

// hurrySpawn raises the spawner thread tid and the children spared beside
// it to normal priority, so that the spawn ends, and its sweep comes,
// without waiting for idle processor time, which what a sweep spares may
// be keeping busy.
func hurrySpawn(tid int, spared []int) {
	for _, pid := range spared {
		schedSetscheduler(pid, schedOther)
	}
	schedSetscheduler(tid, schedOther)
}

// leaveIdle restores normal priority on every thread of this process, if
// the server started it idle, and removes idleEnv from its environment. A
// pooled child calls it once started, before it says it is ready, so that
// the assignment finds nothing of it left to do: it sets every thread a
// listing finds, then those a new listing finds that the previous did not,
// until one finds none while none it set but its own may have been
// creating a thread before the listing. A thread in creation takes its
// creator's priority as creation begins, and is listed only once created:
// one that a creator began while still idle either shows in the next
// listing or keeps its creator in clone. From then on a new thread is
// created by a thread at normal priority, and has it too: nothing makes a
// thread of it idle again, for it was idle from its first instruction
// (see spawnIdle). A thread that keeps running past maxCloneWaits
// listings is taken not to be creating one. It records how many threads
// it found, and how many of them idle, in leftIdle.
func leaveIdle() error {
	if os.Getenv(idleEnv) == "" {
		return nil
	}
	os.Unsetenv(idleEnv)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self := syscall.Gettid()
	done := map[int]bool{}
	for round := 0; ; round++ {
		cloning := round < maxCloneWaits && creatingThread(done, self)
		now, err := threads()
		if err != nil {
			return err
		}
		todo := 0
		for tid := range now {
			if done[tid] {
				continue
			}
			todo++
			if round == 0 {
				leftIdle.threads++
				if policy, err := schedGetscheduler(tid); err == nil && policy == schedIdle {
					leftIdle.idle++
				}
			}
			if err := schedSetscheduler(tid, schedOther); err != nil && !errors.Is(err, syscall.ESRCH) {
				return err
			}
			done[tid] = true
		}
		if todo == 0 && !cloning {
			return nil
		}
		if cloning {
			schedYield() // so that a creator running on this processor gets on
		}
	}
}

// maxCloneWaits bounds the listings leaveIdle makes while a thread may be
// creating another: a thread running runtime work can show as running for
// long, and then none of its work is a thread's creation begun while idle.
const maxCloneWaits = 100

// creatingThread reports whether one of the threads tids of this process,
// but self, may be creating a thread: in clone or clone3, as /proc shows
// its system call, or running, when /proc shows no system call at all.
func creatingThread(tids map[int]bool, self int) bool {
	for tid := range tids {
		if tid == self {
			continue
		}
		b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/syscall")
		if err != nil {
			continue // it has ended
		}
		nr, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		if nr == "running" || nr == strconv.Itoa(syscall.SYS_CLONE) || nr == strconv.Itoa(sysnum.Clone3) {
			return true
		}
	}
	return false
}

// leftIdle counts the threads of a pooled child that the first listing of
// leaveIdle found, and those of them it found idle, which were all of them
// unless the child was not started idle.
var leftIdle struct{ threads, idle int }

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
