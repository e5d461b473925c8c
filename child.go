//go:build linux || darwin

package forkserver

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// startedFd is a pooled child's descriptor that it closes once it has read
// its assignment.
const startedFd = 4

// runChild reads the child's assignment from descriptor 3, runs the
// function it names and returns the exit code.
func runChild(pooled bool) int {
	c, fn, a, err := readAssignment()
	if pooled {
		// Descriptor 4 tells the server that this child runs, or is gone:
		// it starts the replacement only now, not to compete with it.
		syscall.Close(startedFd)
	}
	if err == io.EOF {
		return 0 // a pooled child the server sent away
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "forkserver: child: %v\n", err)
		return 2
	}
	if err := apply(&a.settings, int(a.serverPid)); err != nil {
		fmt.Fprintf(os.Stderr, "forkserver: child %s: %v\n", a.name, err)
		return 127
	}
	name := a.name
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := fn(ctx, c); err != nil {
		fmt.Fprintf(os.Stderr, "forkserver: %s: %v\n", name, err)
		return 1
	}
	return 0
}

// warmUp runs once what reading an assignment costs the first time, a
// descriptor received and a connection made of it, so that a pooled child
// pays for it while it waits rather than once it is assigned.
func warmUp() {
	a, b, err := socketpair()
	if err != nil {
		return
	}
	defer syscall.Close(b)
	c, err := unixConn(a)
	if err != nil {
		return
	}
	defer c.Close()
	frame := appendFrame(nil, 0, &assignMsg{flags: flagSocket, serverPid: 1, name: "warm-up"})
	if sendMsgFd(b, frame, []int{b}) != nil {
		return
	}
	if f, err := newFrameReader(c).read(); err == nil {
		if conn, err := unixConn(f.fds[0]); err == nil {
			conn.Close()
		}
	}
}

func readAssignment() (*Child, func(context.Context, *Child) error, *assignMsg, error) {
	conn, err := unixConn(3)
	if err != nil {
		return nil, nil, nil, err
	}
	f, err := newFrameReader(conn).read()
	conn.Close()
	if err == io.EOF {
		return nil, nil, nil, err
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading the assignment: %w", err)
	}
	a, ok := f.msg.(*assignMsg)
	if !ok {
		closeFds(f.fds)
		return nil, nil, nil, fmt.Errorf("%w: expected an assignment, got type %d", errMalformed, f.msg.kind())
	}
	fn := lookup(a.name)
	if fn == nil {
		closeFds(f.fds)
		return nil, nil, nil, fmt.Errorf("%w %q", ErrUnknownFunc, a.name)
	}
	c := &Child{arg: a.arg}
	fds := f.fds
	if a.flags&flagSocket != 0 {
		if c.conn, err = unixConn(fds[0]); err != nil {
			closeFds(fds[1:])
			return nil, nil, nil, err
		}
		fds = fds[1:]
	}
	if a.flags&flagServer != 0 {
		conn, err := unixConn(fds[0])
		if err != nil {
			closeFds(fds[1:])
			return nil, nil, nil, err
		}
		c.server = newServer(int(a.serverPid), conn, false)
		fds = fds[1:]
	}
	// A pooled child was executed before anyone asked for it and gets its
	// standard descriptors now.
	for std, flag := range []uint32{flagStdin, flagStdout, flagStderr} {
		if a.flags&flag != 0 {
			if err := dup2(fds[0], std); err != nil {
				closeFds(fds)
				return nil, nil, nil, os.NewSyscallError("dup2", err)
			}
			closeFds(fds[:1])
			fds = fds[1:]
		}
	}
	for i, fd := range fds {
		c.files = append(c.files, os.NewFile(uintptr(fd), fmt.Sprintf("forkserver-file-%d", i)))
	}
	return c, fn, a, nil
}

// runRole runs the role this process was executed for, and exits.
func runRole(role string) {
	switch role {
	case "server":
		os.Exit(runServer())
	case roleChild:
		os.Exit(runChild(false))
	case rolePooled:
		warmUp()
		os.Exit(runChild(true))
	}
	fmt.Fprintf(os.Stderr, "forkserver: unknown role %s=%q\n", roleEnv, role)
	os.Exit(2)
}
