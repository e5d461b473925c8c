package forkserver

// The system calls that package syscall lacks or spells differently on
// macOS, by name, one wrapper each. Written by hand; policy lives with the
// role that decides it.

import (
	"errors"
	"os"
	"syscall"
	"unsafe"
)

// fdDir lists the open descriptors of the process reading it.
const fdDir = "/dev/fd"

// executable is the path of the running binary, resolved once by Start and
// again by the server: macOS has no /proc/self/exe.
func executable() (string, error) { return os.Executable() }

// nameProcess does nothing: macOS names a process by the path executed,
// which executable resolved.
func nameProcess(string) {}

// recvmsgFlags: macOS has no MSG_CMSG_CLOEXEC. Only a child receives on a
// raw descriptor, its assignment, before it could start anything.
const recvmsgFlags = 0

// socketpair returns a connected pair of close-on-exec stream sockets.
// macOS has no SOCK_CLOEXEC, so the pair is made under ForkLock, as the os
// package does for pipes, so no concurrent fork inherits it.
func socketpair() (int, int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return -1, -1, os.NewSyscallError("socketpair", err)
	}
	syscall.CloseOnExec(fds[0])
	syscall.CloseOnExec(fds[1])
	return fds[0], fds[1], nil
}

// pipe returns a close-on-exec pipe: its read end, then its write end.
// macOS has no pipe2, so the pipe is made under ForkLock, as socketpair is.
func pipe() (r, w int, err error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		return -1, -1, os.NewSyscallError("pipe", err)
	}
	syscall.CloseOnExec(p[0])
	syscall.CloseOnExec(p[1])
	return p[0], p[1], nil
}

// dup2 makes newfd a copy of oldfd that is not close-on-exec.
func dup2(oldfd, newfd int) error { return syscall.Dup2(oldfd, newfd) }

// poll waits, with no timeout, until one of pfds has an event, retrying
// on EINTR. It blocks the calling thread, never the runtime's poller.
func poll(pfds []pollFd) error {
	return ignoringEINTR(func() error {
		_, _, errno := syscall.Syscall(syscall.SYS_POLL, uintptr(unsafe.Pointer(&pfds[0])), uintptr(len(pfds)), ^uintptr(0))
		if errno != 0 {
			return errno
		}
		return nil
	})
}

// prctlPdeathsig: macOS has no parent-death signal.
func prctlPdeathsig(sig syscall.Signal) error { return errors.ErrUnsupported }

// prctlChildSubreaper does nothing: macOS has no child subreaper.
func prctlChildSubreaper() error { return nil }

// waitExited waits until the process pid, a child of this one, has
// exited, and leaves it a zombie for waitPid to reap, so that its pid cannot
// be reused in between: kqueue says when it exits, and fails with ESRCH if
// it has exited already.
func waitExited(pid int) {
	kq, err := syscall.Kqueue()
	if err != nil {
		return
	}
	defer syscall.Close(kq)
	change := []syscall.Kevent_t{{Ident: uint64(pid), Filter: syscall.EVFILT_PROC, Flags: syscall.EV_ADD | syscall.EV_ONESHOT, Fflags: syscall.NOTE_EXIT}}
	events := make([]syscall.Kevent_t, 1)
	ignoringEINTR(func() error {
		_, err := syscall.Kevent(kq, change, events, nil)
		return err
	})
}

// havePidfds reports false: macOS has no pidfd.
func havePidfds() bool { return false }
