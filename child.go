//go:build linux || darwin

package forkserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/forkserver/forkserver/internal/wire"
)

// A child reads its assignment on descriptor 3; a pooled child writes a
// byte to descriptor 4 once it is ready for it, and closes it once it has
// read it.
const (
	assignFd  = 3
	startedFd = 4
)

// runChild reads the child's assignment from descriptor 3, runs the
// function it names and returns the exit code.
func runChild(pooled bool) int {
	// The context is never stopped: the process exits when runChild
	// returns, and undoing the notification first would cost the exit a
	// round trip to the runtime's thread that masks signals.
	var ctx context.Context
	var c *Child
	var fn func(context.Context, *Child) error
	var a *wire.Assign
	var err, idleErr error
	if pooled {
		// The context comes first, so that a pooled child pays for setting
		// up signal delivery while it waits; a SIGTERM before the
		// assignment ends the wait.
		ctx, _ = signal.NotifyContext(context.Background(), syscall.SIGTERM)
		// Started, it leaves idle priority before it waits, as the user
		// the server is, whose right to leave it the server checked: an
		// assignment then finds it at normal priority, with nothing of it
		// left to do (see leaveIdle). A failure is reported once it is
		// assigned, as the child's, before anything of the function's.
		idleErr = leaveIdle()
		// It is ready, inside its sandbox if it has one: only now may the
		// server hand it out.
		syscall.Write(startedFd, []byte{1})
		c, fn, a, err = readAssignment(ctx, true)
	} else {
		// A cold child's assignment was written as it was created: it
		// reads it first, on the thread it started on, which setting up
		// signal delivery leaves for a new one (about 25 µs less, measured).
		// Until the notification is set up, a SIGTERM ends the child as it
		// does during the runtime's start; the function never runs
		// without it.
		c, fn, a, err = readAssignment(context.Background(), false)
		ctx, _ = signal.NotifyContext(context.Background(), syscall.SIGTERM)
	}
	if err == nil && pooled {
		if idleErr != nil {
			fmt.Fprintf(os.Stderr, "forkserver: child %s: leaving idle priority: %s\n", a.Name, idleErr)
			return 127
		}
	}
	switch {
	case ctx.Err() != nil:
		return 128 + int(syscall.SIGTERM) // as a shell reports a child SIGTERM ended
	case err == io.EOF:
		return 0 // a pooled child the server sent away
	case err != nil:
		fmt.Fprintf(os.Stderr, "forkserver: child: %s\n", err)
		return 2
	}
	if err := apply(&a.Settings, int(a.ServerPid)); err != nil {
		fmt.Fprintf(os.Stderr, "forkserver: child %s: %s\n", a.Name, err)
		return 127
	}
	name := a.Name
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
	defer closeFds([]int{a, b})
	frame := wire.AppendFrame(nil, 0, &wire.Assign{Flags: wire.FlagSocket, ServerPid: 1, Name: "warm-up"})
	if sendMsgFd(b, frame, []int{b}) != nil {
		return
	}
	if f, err := newRecvFrameReader(fdRecv(a)).read(); err == nil {
		if conn, err := unixConn(f.fds[0]); err == nil {
			conn.Close()
		}
	}
}

// readAssignment reads the assignment on descriptor 3 and returns the child
// it makes, the function it names and the assignment. A pooled child
// closes its descriptor 4 as soon as the assignment has come, or the wait
// has ended: see below.
func readAssignment(ctx context.Context, pooled bool) (*Child, func(context.Context, *Child) error, *wire.Assign, error) {
	// The calling thread waits in recvmsg itself, so that a pooled child
	// resumes as soon as its assignment comes, with no hand-over through
	// the runtime's poller. A SIGTERM before then shuts the socket down,
	// which ends the wait.
	shut := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		syscall.Shutdown(assignFd, syscall.SHUT_RD)
		close(shut)
	})
	r := newRecvFrameReader(fdRecv(assignFd))
	f, err := r.read()
	// A pooled child may get its function's socket ahead of its
	// assignment, and makes it a connection as it waits.
	var ahead *net.UnixConn
	defer func() {
		if ahead != nil {
			ahead.Close() // not asked for
		}
	}()
	if _, ok := f.msg.(*wire.Socket); ok && pooled && err == nil {
		if ahead, err = unixConn(f.fds[0]); err == nil {
			f, err = r.read()
		}
	}
	if pooled {
		// Descriptor 4 tells the server that this child runs, or is gone:
		// it starts the replacement only now, not to compete with it.
		// Its closing wakes the server, which so does its part while
		// this child decodes its assignment rather than as the function
		// starts, when its requester wakes up too.
		syscall.Close(startedFd)
	}
	if !stop() {
		<-shut // the descriptor stays open until the shutdown is done
	}
	syscall.Close(assignFd)
	if err == io.EOF {
		return nil, nil, nil, err
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading the assignment: %w", err)
	}
	a, ok := f.msg.(*wire.Assign)
	if !ok {
		closeFds(f.fds)
		return nil, nil, nil, fmt.Errorf("%w: expected an assignment, got type %d", wire.ErrMalformed, f.msg.Type())
	}
	fn := lookup(a.Name)
	if fn == nil {
		closeFds(f.fds)
		return nil, nil, nil, fmt.Errorf("%w %q", ErrUnknownFunc, a.Name)
	}
	c := &Child{arg: a.Arg}
	fds := f.fds
	switch {
	case a.Flags&wire.FlagSocketAhead != 0 && ahead == nil:
		closeFds(fds)
		return nil, nil, nil, fmt.Errorf("%w: an assignment for a socket sent ahead, and none came", wire.ErrMalformed)
	case a.Flags&wire.FlagSocketAhead != 0:
		c.conn, ahead = ahead, nil
	case a.Flags&wire.FlagSocket != 0:
		if c.conn, err = unixConn(fds[0]); err != nil {
			closeFds(fds[1:])
			return nil, nil, nil, err
		}
		fds = fds[1:]
	}
	if a.Flags&wire.FlagServer != 0 {
		conn, err := unixConn(fds[0])
		if err != nil {
			closeFds(fds[1:])
			return nil, nil, nil, err
		}
		c.server = newServer(int(a.ServerPid), conn, 0)
		fds = fds[1:]
	}
	// A pooled child was executed before anyone asked for it and gets its
	// standard descriptors now.
	for std, flag := range []uint32{wire.FlagStdin, wire.FlagStdout, wire.FlagStderr} {
		if a.Flags&flag != 0 {
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

// runRole runs the role this process was executed for, and exits. Each
// role first takes the program's name, once it will execute no more.
func runRole(role string) {
	switch role {
	case "server":
		nameProcess(programName())
		os.Exit(runServer())
	case roleKeeper:
		nameProcess(programName())
		os.Exit(runKeeper())
	case roleChild:
		if err := enterLandlock(rulesetFd, roleChild); err != nil {
			fmt.Fprintf(os.Stderr, "forkserver: child: %s\n", err)
			os.Exit(127)
		}
		nameProcess(programName())
		os.Exit(runChild(false))
	case rolePooled:
		// A warm child of a declared sandbox with Paths gets its rulesets
		// after its started pipe. Should it fail to enter them, it exits
		// before it says it is ready, and is never handed out.
		if err := enterLandlock(startedFd+1, rolePooled); err != nil {
			fmt.Fprintf(os.Stderr, "forkserver: warm child: %s\n", err)
			os.Exit(127)
		}
		nameProcess(programName())
		if err := enterSandboxAhead(); err != nil {
			fmt.Fprintf(os.Stderr, "forkserver: warm child: %s\n", err)
			os.Exit(127)
		}
		warmUp()
		os.Exit(runChild(true))
	}
	fmt.Fprintf(os.Stderr, "forkserver: unknown role %s=%q\n", roleEnv, role)
	os.Exit(2)
}

// programName is the name the program was executed under, as the kernel
// names a process: the last element of its first argument.
func programName() string {
	if len(os.Args) == 0 || os.Args[0] == "" {
		return ""
	}
	return filepath.Base(os.Args[0])
}

// apply sets the child up as st says, in the order Attr documents.
func apply(st *wire.Settings, serverPid int) error {
	switch {
	case st.Set&wire.SetSetsid != 0:
		if _, err := syscall.Setsid(); err != nil {
			return os.NewSyscallError("setsid", err)
		}
	case st.Set&wire.SetSetpgid != 0:
		if err := syscall.Setpgid(0, 0); err != nil {
			return os.NewSyscallError("setpgid", err)
		}
	}
	if st.Chroot != "" {
		if err := syscall.Chroot(st.Chroot); err != nil {
			return os.NewSyscallError("chroot", err)
		}
		if err := os.Chdir("/"); err != nil {
			return err
		}
	}
	if st.Set&wire.SetCredential != 0 && !sameCredential(st) {
		groups := make([]int, len(st.Groups))
		for i, g := range st.Groups {
			groups[i] = int(g)
		}
		if err := syscall.Setgroups(groups); err != nil {
			return os.NewSyscallError("setgroups", err)
		}
		if err := syscall.Setgid(int(st.Gid)); err != nil {
			return os.NewSyscallError("setgid", err)
		}
		if err := syscall.Setuid(int(st.Uid)); err != nil {
			return os.NewSyscallError("setuid", err)
		}
	}
	// As the user it now is: limits it may not raise, a directory it may
	// not enter, fail here.
	for _, r := range st.Rlimits {
		if err := syscall.Setrlimit(int(r.Resource), &syscall.Rlimit{Cur: r.Cur, Max: r.Max}); err != nil {
			return os.NewSyscallError(fmt.Sprintf("setrlimit(%d)", r.Resource), err)
		}
	}
	if err := applyMemoryLimit(st.MemoryLimit); err != nil {
		return err
	}
	if st.Dir != "" {
		if err := os.Chdir(st.Dir); err != nil {
			return err
		}
	}
	if st.Pdeathsig != 0 {
		if err := prctlPdeathsig(syscall.Signal(st.Pdeathsig)); err != nil {
			return err
		}
		if ppid := os.Getppid(); ppid != serverPid && ppid != 0 { // 0: the server is outside a new PID namespace
			return errors.New("the server died before the child started")
		}
	}
	if st.Set&wire.SetEnv != 0 {
		os.Clearenv()
	}
	for _, list := range [][]string{st.Env, st.ExtraEnv} {
		for _, kv := range list {
			if k, v, ok := strings.Cut(kv, "="); ok {
				os.Setenv(k, v)
			}
		}
	}
	// Last, so that nothing above needs a call it denies. The path
	// layers are in force already: the child entered them before it
	// executed the binary again (see enterLandlock).
	return enterSandbox(st)
}
