package forkserver

// The system calls that package syscall lacks or spells differently on
// Linux, by name, one wrapper each, and the numbers it lacks. Written by
// hand; policy lives with the role that decides it.

import (
	"os"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"github.com/forkserver/forkserver/internal/sysnum"
)

// prSetNoNewPrivs is PR_SET_NO_NEW_PRIVS, which package syscall lacks.
const prSetNoNewPrivs = 38

// fdDir lists the open descriptors of the process reading it.
const fdDir = "/proc/self/fd"

// executable names the running binary in a way an upgrade on disk cannot
// change: the server and every child run exactly this program's code.
func executable() (string, error) { return "/proc/self/exe", nil }

// nameProcess gives this process the name ps, top, pgrep and the journal
// show (the kernel keeps 15 bytes of it), in place of the "exe" executing
// /proc/self/exe gave it: through the calling thread if it is the
// process's first, as it is during a role's start, else through
// /proc/self/comm, which a sandbox with Paths may refuse. Either way it is
// the name of the first thread alone: the process's name.
func nameProcess(name string) {
	if name == "" {
		return
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if syscall.Gettid() == syscall.Getpid() {
		b := append([]byte(name), 0)
		syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0)
		return
	}
	if f, err := os.OpenFile("/proc/self/comm", os.O_WRONLY, 0); err == nil {
		f.WriteString(name)
		f.Close()
	}
}

// recvmsgFlags makes every descriptor received close-on-exec from birth.
const recvmsgFlags = syscall.MSG_CMSG_CLOEXEC

// socketpair returns a connected pair of close-on-exec stream sockets.
func socketpair() (int, int, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, os.NewSyscallError("socketpair", err)
	}
	return fds[0], fds[1], nil
}

// pipe returns a close-on-exec pipe: its read end, then its write end.
func pipe() (r, w int, err error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return -1, -1, os.NewSyscallError("pipe2", err)
	}
	return p[0], p[1], nil
}

// dup2 makes newfd a copy of oldfd that is not close-on-exec.
func dup2(oldfd, newfd int) error { return syscall.Dup3(oldfd, newfd, 0) }

// poll waits, with no timeout, until one of pfds has an event, retrying
// on EINTR. It blocks the calling thread, never the runtime's poller.
func poll(pfds []pollFd) error {
	return ignoringEINTR(func() error {
		_, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfds[0])), uintptr(len(pfds)), 0, 0, 0, 0)
		if errno != 0 {
			return errno
		}
		return nil
	})
}

// prctlNoNewPrivs sets no_new_privs on the calling thread.
func prctlNoNewPrivs() error {
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0)
	if errno != 0 {
		return os.NewSyscallError("prctl(PR_SET_NO_NEW_PRIVS)", errno)
	}
	return nil
}

// prctlPdeathsig asks for sig when the parent dies.
func prctlPdeathsig(sig syscall.Signal) error {
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(sig), 0)
	if errno != 0 {
		return os.NewSyscallError("prctl(PR_SET_PDEATHSIG)", errno)
	}
	return nil
}

// schedYield gives the calling thread's processor to another ready thread,
// if there is one.
func schedYield() { syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER, which package syscall lacks.
const prSetChildSubreaper = 36

// prctlChildSubreaper makes this process a child subreaper: a descendant
// orphaned by its parent's death is reparented to it, not to init.
func prctlChildSubreaper() error {
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	if errno != 0 {
		return os.NewSyscallError("prctl(PR_SET_CHILD_SUBREAPER)", errno)
	}
	return nil
}

// havePidfds reports whether the kernel makes pidfds (Linux 5.3 on).
func havePidfds() bool {
	fd, _, errno := syscall.Syscall(sysnum.PidfdOpen, uintptr(os.Getpid()), 0, 0)
	if errno != 0 {
		return false
	}
	syscall.Close(int(fd))
	return true
}

// pidfdSignal sends sig to the process pidfd refers to; 0 checks that it
// exists, a zombie included: ESRCH once it has been reaped.
func pidfdSignal(pidfd int, sig syscall.Signal) error {
	_, _, errno := syscall.Syscall6(sysnum.PidfdSendSignal, uintptr(pidfd), uintptr(sig), 0, 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// waitid's P_ALL and P_PID.
const (
	pWaitAll = 0
	pWaitPid = 1
)

// waitExited waits until the process pid, a child of this one, has exited,
// and leaves it a zombie for waitPid to reap, so that its pid cannot be
// reused in between.
func waitExited(pid int) {
	var info [128]byte // siginfo_t, unread
	ignoringEINTR(func() error {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pWaitPid, uintptr(pid), uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if errno != 0 {
			return errno
		}
		return nil
	})
}

// waitAnyExited waits until a child of this process has exited, leaves it
// a zombie for wait4 to reap, and returns its pid. It returns ECHILD at
// once when the process has no child.
func waitAnyExited() (pid int, err error) {
	pid, _, _, _, err = peekExited(pWaitAll, 0, 0)
	return pid, err
}

// exitedNow returns, without waiting, the exit of the child pid, which it
// leaves a zombie for wait4 to reap: its pid, 0 if it has not exited, its
// wait status and its resource usage. These are what wait4 would report at
// the same instant: the kernel reads both from the same zombie, whose last
// moments on a processor (microseconds, a context switch) a later wait4
// may count besides. ok is false when the status is not one of an exit
// (the caller then learns it from wait4).
func exitedNow(pid int) (wpid int, ws syscall.WaitStatus, ru *syscall.Rusage, ok bool, err error) {
	return peekExited(pWaitPid, pid, syscall.WNOHANG)
}

// peekExited is waitid(idtype, id, WEXITED|WNOWAIT|options), as
// waitAnyExited and exitedNow use it.
func peekExited(idtype, id, options int) (pid int, ws syscall.WaitStatus, ru *syscall.Rusage, ok bool, err error) {
	var info [128]byte // siginfo_t; si_pid stays 0 if, with WNOHANG, no child has exited
	ru = new(syscall.Rusage)
	err = ignoringEINTR(func() error {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, uintptr(idtype), uintptr(id), uintptr(unsafe.Pointer(&info[0])), uintptr(syscall.WEXITED|syscall.WNOWAIT|options), uintptr(unsafe.Pointer(ru)), 0)
		if errno != 0 {
			return errno
		}
		return nil
	})
	field := func(off uintptr) int32 { return *(*int32)(unsafe.Pointer(&info[off])) }
	status := field(siginfoPid + 8) // after si_pid and si_uid
	switch field(siginfoCode) {
	case cldExited:
		ws, ok = syscall.WaitStatus(status&0xff)<<8, true
	case cldKilled:
		ws, ok = syscall.WaitStatus(status&0x7f), true
	case cldDumped:
		ws, ok = syscall.WaitStatus(status&0x7f|0x80), true
	}
	return int(field(siginfoPid)), ws, ru, ok, err
}

// siginfoPid is the offset of si_pid in a siginfo_t: after three ints,
// aligned as a pointer.
const siginfoPid = (12 + unsafe.Sizeof(uintptr(0)) - 1) &^ (unsafe.Sizeof(uintptr(0)) - 1)

// siginfoCode is the offset of si_code in a siginfo_t: after si_signo and
// si_errno, but before si_errno on MIPS.
var siginfoCode = func() uintptr {
	if strings.HasPrefix(runtime.GOARCH, "mips") {
		return 4
	}
	return 8
}()

// The si_code of a child's exit: by exit, by a signal, by a signal with a
// core dump.
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// schedOther and schedIdle are SCHED_OTHER and SCHED_IDLE.
const (
	schedOther = 0
	schedIdle  = 5
)

// schedSetscheduler sets the scheduling policy of the thread tid, 0 for
// the calling one, to policy at priority 0.
func schedSetscheduler(tid, policy int) error {
	var prio int32
	_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, uintptr(tid), uintptr(policy), uintptr(unsafe.Pointer(&prio)))
	if errno != 0 {
		return os.NewSyscallError("sched_setscheduler", errno)
	}
	return nil
}

// schedGetscheduler returns the scheduling policy of the thread tid.
func schedGetscheduler(tid int) (int, error) {
	policy, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_GETSCHEDULER, uintptr(tid), 0, 0)
	if errno != 0 {
		return -1, os.NewSyscallError("sched_getscheduler", errno)
	}
	return int(policy), nil
}
