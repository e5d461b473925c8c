//go:build linux || darwin

package forkserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// runChild reads the child's assignment from descriptor 3, runs the
// function it names and returns the exit code.
func runChild() int {
	c, fn, a, err := readAssignment()
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

// apply sets the child up as st says, in the order Attr documents.
func apply(st *settings, serverPid int) error {
	switch {
	case st.set&setSetsid != 0:
		if _, err := syscall.Setsid(); err != nil {
			return os.NewSyscallError("setsid", err)
		}
	case st.set&setSetpgid != 0:
		if err := syscall.Setpgid(0, 0); err != nil {
			return os.NewSyscallError("setpgid", err)
		}
	}
	if st.chroot != "" {
		if err := syscall.Chroot(st.chroot); err != nil {
			return os.NewSyscallError("chroot", err)
		}
		if err := os.Chdir("/"); err != nil {
			return err
		}
	}
	if st.set&setCredential != 0 && !sameCredential(st) {
		groups := make([]int, len(st.groups))
		for i, g := range st.groups {
			groups[i] = int(g)
		}
		if err := syscall.Setgroups(groups); err != nil {
			return os.NewSyscallError("setgroups", err)
		}
		if err := syscall.Setgid(int(st.gid)); err != nil {
			return os.NewSyscallError("setgid", err)
		}
		if err := syscall.Setuid(int(st.uid)); err != nil {
			return os.NewSyscallError("setuid", err)
		}
	}
	// As the user it now is: limits it may not raise, a directory it may
	// not enter, fail here.
	for _, r := range st.rlimits {
		if err := syscall.Setrlimit(int(r.resource), &syscall.Rlimit{Cur: r.cur, Max: r.max}); err != nil {
			return os.NewSyscallError(fmt.Sprintf("setrlimit(%d)", r.resource), err)
		}
	}
	if st.dir != "" {
		if err := os.Chdir(st.dir); err != nil {
			return err
		}
	}
	if st.pdeathsig != 0 {
		if err := enablePdeathsig(syscall.Signal(st.pdeathsig)); err != nil {
			return err
		}
		if ppid := os.Getppid(); ppid != serverPid && ppid != 0 { // 0: the server is outside a new PID namespace
			return errors.New("the server died before the child started")
		}
	}
	if st.set&setEnv != 0 {
		os.Clearenv()
	}
	for _, list := range [][]string{st.env, st.extraEnv} {
		for _, kv := range list {
			if k, v, ok := strings.Cut(kv, "="); ok {
				os.Setenv(k, v)
			}
		}
	}
	return nil
}
