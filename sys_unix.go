//go:build linux || darwin

package forkserver

// The system calls that Linux and macOS spell alike, by name, one wrapper
// each, and the one place that retries a call EINTR interrupted. The calls
// that differ are in sys_linux.go and sys_darwin.go.

import (
	"syscall"
)

// pollFd is the system's struct pollfd.
type pollFd struct {
	fd      int32
	events  int16
	revents int16
}

// pollIn is POLLIN.
const pollIn = 0x1

// ignoringEINTR calls fn until it fails with something other than EINTR,
// as package os does: a signal may interrupt a blocking call even with
// SA_RESTART, and a call that blocks this thread is retried here, never in
// a loop at the call site.
func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != syscall.EINTR {
			return err
		}
	}
}

// fcntl calls fcntl(2) with cmd and arg and returns its result.
func fcntl(fd, cmd, arg int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), uintptr(arg))
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// wait4 waits for the child pid as wait4(2) does, retrying on EINTR.
func wait4(pid int, ws *syscall.WaitStatus, options int, ru *syscall.Rusage) (wpid int, err error) {
	err = ignoringEINTR(func() error {
		wpid, err = syscall.Wait4(pid, ws, options, ru)
		return err
	})
	return wpid, err
}

// sendmsg sends p, with oob as the control message, on the socket fd and
// returns how much of p it sent, retrying on EINTR.
func sendmsg(fd int, p, oob []byte) (n int, err error) {
	err = ignoringEINTR(func() error {
		n, err = syscall.SendmsgN(fd, p, oob, nil, 0)
		return err
	})
	return n, err
}

// recvmsg receives into p, with oob as the control buffer, on the socket
// fd, with recvmsgFlags, retrying on EINTR.
func recvmsg(fd int, p, oob []byte) (n, oobn, flags int, err error) {
	err = ignoringEINTR(func() error {
		n, oobn, flags, _, err = syscall.Recvmsg(fd, p, oob, recvmsgFlags)
		return err
	})
	return n, oobn, flags, err
}
