//go:build linux || darwin

package forkserver

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// startServer executes this binary as a fork server with env, with the
// program's standard descriptors and its end of their connection as
// descriptor 3, and waits for the server's hello.
func startServer(env []string) (*Server, error) {
	exe, err := executable()
	if err != nil {
		return nil, err
	}
	conn, theirs, err := socketConnPair()
	if err != nil {
		return nil, err
	}
	pid, err := syscall.ForkExec(exe, os.Args, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2, uintptr(theirs)},
		Sys:   serverSysProcAttr(),
	})
	syscall.Close(theirs)
	if err != nil {
		conn.Close()
		return nil, os.NewSyscallError("fork/exec "+exe, err)
	}
	f, err := newFrameReader(conn).read()
	if err == nil {
		if h, ok := f.msg.(*helloMsg); !ok || int(h.pid) != pid {
			closeFds(f.fds)
			err = fmt.Errorf("%w: the server's first frame is not its hello", errMalformed)
		}
	}
	if err != nil {
		conn.Close()
		status := reap(pid)
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("forkserver: the server exited before it was ready (%s)", (&Exit{Status: status}).String())
		}
		return nil, err
	}
	return newServer(pid, conn, true), nil
}

// reap waits for the process pid, a child of this one, to end.
func reap(pid int) syscall.WaitStatus {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			return ws
		}
	}
}

// runRole runs the role this process was executed for, and exits.
func runRole(role string) {
	switch role {
	case "server":
		os.Exit(serve())
	case "child":
		os.Exit(runChild())
	}
	fmt.Fprintf(os.Stderr, "forkserver: unknown role %s=%q\n", roleEnv, role)
	os.Exit(2)
}
