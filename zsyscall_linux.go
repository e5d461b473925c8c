package forkserver

import (
	"os"
	"syscall"
)

// fdDir lists the open descriptors of the process reading it.
const fdDir = "/proc/self/fd"

// socketpair returns a connected pair of close-on-exec stream sockets.
func socketpair() (int, int, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, os.NewSyscallError("socketpair", err)
	}
	return fds[0], fds[1], nil
}

// executable names the running binary in a way an upgrade on disk cannot
// change: the server and every child run exactly this program's code.
func executable() (string, error) { return "/proc/self/exe", nil }

// serverSysProcAttr makes the kernel kill the server when the program dies,
// a second guard behind the end-of-file on its connection.
func serverSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// dup2 makes newfd a copy of oldfd that is not close-on-exec.
func dup2(oldfd, newfd int) error { return syscall.Dup3(oldfd, newfd, 0) }
