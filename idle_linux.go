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
// behind them. A sweep meanwhile kills the child as a stray, at once, as
// it kills what a child left behind: its thread is a spawner (see
// killStrays), and a spawn a sweep came through kills its child, if it
// still lives, and returns errSwept. The reaper may take the child, should
// it die before it is recorded, for a stray and reap it; the child's pidfd
// says whether it did, so that a pid reaped, which may be reused, is never
// recorded.
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
	tid := syscall.Gettid()
	sv.mu.Lock()
	if sv.spawners == nil {
		sv.spawners = make(map[int]bool)
	}
	sv.spawners[tid] = false
	sv.mu.Unlock()
	pid := -1
	err := schedSetscheduler(0, schedIdle)
	if err == nil {
		pid, err = syscall.ForkExec(path, argv, &withPidfd)
		if schedSetscheduler(0, schedOther) != nil {
			runtime.LockOSThread() // the thread, which may not run idle, ends with its goroutine
		}
		if err != nil {
			err = os.NewSyscallError("fork/exec", err)
		} else {
			defer syscall.Close(pidfd)
			sv.noteForked()
		}
	}
	runtime.UnlockOSThread()
	sv.mu.Lock()
	defer sv.mu.Unlock()
	// The thread stops being a spawner in the same hold of sv.mu as the
	// child is recorded: every sweep before marked it, none after finds
	// the child unrecorded.
	swept := sv.spawners[tid]
	delete(sv.spawners, tid)
	switch {
	case err != nil:
		return err
	case swept:
		// Killed, maybe, and reaped too, or created after the sweep:
		// killed through its pidfd, which, unlike its pid, can name
		// nothing else.
		if pidfd >= 0 {
			pidfdSignal(pidfd, syscall.SIGKILL)
		}
		return errSwept
	case pidfd < 0 || pidfdSignal(pidfd, 0) != nil:
		return errors.New("the child died as it started")
	}
	return add(pid)
}

// hasten raises pid, a child of a spawner that a sweep kills, to normal
// priority: at idle priority, on a busy machine, it would take as long to
// die as to be given a processor, and every reap would sweep meanwhile.
func hasten(pid int) { schedSetscheduler(pid, schedOther) }

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
