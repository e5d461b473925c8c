package forkserver

// Written by hand, not generated: the system calls and kernel hooks that
// package syscall lacks or spells differently on macOS.

import (
	"errors"
	"os"
	"syscall"
	"unsafe"

	"github.com/forkserver/forkserver/internal/wire"
)

// fdDir lists the open descriptors of the process reading it.
const fdDir = "/dev/fd"

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

// executable is the path of the running binary, resolved once by Start and
// again by the server: macOS has no /proc/self/exe.
func executable() (string, error) { return os.Executable() }

// serverSysProcAttr: macOS has no parent-death signal; the server relies on
// the end-of-file on its connection alone.
func serverSysProcAttr() *syscall.SysProcAttr { return nil }

// recvmsgFlags: macOS has no MSG_CMSG_CLOEXEC. Only a child receives on a
// raw descriptor, its assignment, before it could start anything.
const recvmsgFlags = 0

// dup2 makes newfd a copy of oldfd that is not close-on-exec.
func dup2(oldfd, newfd int) error { return syscall.Dup2(oldfd, newfd) }

// sysProcAttr returns what the kernel must apply as it creates a child
// with st: on macOS, only what an external program cannot apply itself.
// Linux namespaces, no_new_privs and the parent-death signal do not exist.
func sysProcAttr(st *wire.Settings, external bool) (*syscall.SysProcAttr, error) {
	if st.Namespaces != 0 || len(st.UidMaps) > 0 || len(st.GidMaps) > 0 || st.Pdeathsig != 0 || st.Set&wire.SetNoNewPrivs != 0 {
		return nil, errorf("namespaces, NoNewPrivs and Pdeathsig: %w", errors.ErrUnsupported)
	}
	if !external {
		return nil, nil
	}
	if len(st.Rlimits) > 0 {
		return nil, errExecSettings
	}
	sys := &syscall.SysProcAttr{
		Setsid:  st.Set&wire.SetSetsid != 0,
		Setpgid: st.Set&wire.SetSetpgid != 0,
		Chroot:  st.Chroot,
	}
	if st.Set&wire.SetCredential != 0 {
		sys.Credential = &syscall.Credential{Uid: st.Uid, Gid: st.Gid, Groups: st.Groups}
	}
	return sys, nil
}

func withNoNewPrivs(fn func()) error           { return errors.ErrUnsupported }
func enablePdeathsig(sig syscall.Signal) error { return errors.ErrUnsupported }

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

// poll waits, with no timeout, until one of pfds has an event. It blocks
// the calling thread, never the runtime's poller.
func poll(pfds []pollFd) error {
	_, _, errno := syscall.Syscall(syscall.SYS_POLL, uintptr(unsafe.Pointer(&pfds[0])), uintptr(len(pfds)), ^uintptr(0))
	if errno != 0 {
		return errno
	}
	return nil
}
