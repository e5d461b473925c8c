//go:build linux || darwin

package forkserver

// Resource limits for an external program. A limit belongs to the whole
// process, which neither the server's creating thread nor the kernel's
// fork-and-exec can set for the child alone; so an Exec with Rlimits
// executes the server's binary in the small role exec-limits (the
// trampoline), which is created exactly as the program would have been
// (credential, namespaces, session, directory, descriptors at their final
// numbers, and, under a policy, the Landlock domain and seccomp filter of
// the thread that creates it), sets the limits and executes the program
// in its place: same pid, same parent, limits in force from its first
// instruction. An Exec without Rlimits never goes through it.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/forkserver/forkserver/internal/wire"
)

const (
	roleExecLimits = "exec-limits"
	// execLimitsEnv tells the trampoline the descriptor it reads what to
	// execute from, one above the program's highest, and reports a
	// failure on. The trampoline's environment holds it and roleEnv only:
	// the program's travels with the rest, untouched (duplicates and all).
	execLimitsEnv = "FORKSERVER_EXEC_LIMITS"
	// maxExecSpec bounds what the trampoline reads: an Exec's path, argv
	// and environment come in one request, which is smaller.
	maxExecSpec = 4 * wire.MaxBody
)

// The trampoline's report of a failure: the step, then its errno.
const (
	stepSpec   uint32 = 1 // reading what to execute
	stepRlimit uint32 = 2 // setrlimit of the resource given
	stepExec   uint32 = 3 // execve
)

// trampolines counts the trampolines the server started (see export_test.go).
var trampolines atomic.Int64

// The trampoline runs before anything else of the binary's: before the
// package initialisation of the program that imports this package, and
// before Main, which a user's init may take its time to reach.
func init() {
	if v, ok := syscall.Getenv(roleEnv); ok && v == roleExecLimits {
		os.Exit(runExecLimits())
	}
}

// runExecLimits is the trampoline: it reads the program, its argv and
// environment and the limits from its descriptor, sets the limits, makes
// the descriptor close-on-exec and executes the program, so that the
// server reads end-of-file on success. On failure it writes the step and
// errno there, and exits 127.
func runExecLimits() int {
	fd, err := strconv.Atoi(os.Getenv(execLimitsEnv))
	if err != nil || fd < 3 {
		fmt.Fprintf(os.Stderr, "forkserver: exec-limits: %s=%q\n", execLimitsEnv, os.Getenv(execLimitsEnv))
		return 127
	}
	fail := func(step, resource uint32, err error) int {
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			errno = syscall.EINVAL
		}
		var b [12]byte
		binary.LittleEndian.PutUint32(b[0:], step)
		binary.LittleEndian.PutUint32(b[4:], resource)
		binary.LittleEndian.PutUint32(b[8:], uint32(errno))
		syscall.Write(fd, b[:])
		return 127
	}
	b, err := readSpec(fd)
	if err != nil {
		return fail(stepSpec, 0, err)
	}
	path, argv, env, limits, err := decodeExecSpec(b)
	if err != nil {
		return fail(stepSpec, 0, err)
	}
	for _, r := range limits {
		// syscall.Setrlimit, which also keeps the runtime from restoring
		// its own RLIMIT_NOFILE at the execution.
		if err := syscall.Setrlimit(int(r.Resource), &syscall.Rlimit{Cur: r.Cur, Max: r.Max}); err != nil {
			return fail(stepRlimit, r.Resource, err)
		}
	}
	syscall.CloseOnExec(fd)
	err = syscall.Exec(path, argv, env)
	return fail(stepExec, 0, err)
}

// readSpec reads fd until end-of-file.
func readSpec(fd int) ([]byte, error) {
	var b []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.Read(fd, buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return nil, err
		case n == 0:
			return b, nil
		}
		if b = append(b, buf[:n]...); len(b) > maxExecSpec {
			return nil, syscall.E2BIG
		}
	}
}

// encodeExecSpec encodes what the trampoline executes, and the limits it
// sets first.
func encodeExecSpec(path string, argv, env []string, limits []wire.Rlimit) []byte {
	le := binary.LittleEndian
	b := le.AppendUint32(nil, uint32(len(argv)))
	b = le.AppendUint32(b, uint32(len(env)))
	b = le.AppendUint32(b, uint32(len(limits)))
	for _, r := range limits {
		b = le.AppendUint32(b, r.Resource)
		b = le.AppendUint64(b, r.Cur)
		b = le.AppendUint64(b, r.Max)
	}
	for _, s := range append(append([]string{path}, argv...), env...) {
		b = le.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

// decodeExecSpec decodes what encodeExecSpec encoded.
func decodeExecSpec(b []byte) (path string, argv, env []string, limits []wire.Rlimit, err error) {
	le := binary.LittleEndian
	u32 := func() uint32 {
		if len(b) < 4 {
			err = syscall.EINVAL
			return 0
		}
		v := le.Uint32(b)
		b = b[4:]
		return v
	}
	u64 := func() uint64 { return uint64(u32()) | uint64(u32())<<32 }
	str := func() string {
		n := u32()
		if err != nil || uint64(n) > uint64(len(b)) {
			err = syscall.EINVAL
			return ""
		}
		s := string(b[:n])
		b = b[n:]
		return s
	}
	nargv, nenv, nlimits := u32(), u32(), u32()
	if err != nil || uint64(nargv)+uint64(nenv) > uint64(len(b))/4 || nlimits > wire.MaxRlimits {
		return "", nil, nil, nil, syscall.EINVAL
	}
	for range nlimits {
		limits = append(limits, wire.Rlimit{Resource: u32(), Cur: u64(), Max: u64()})
	}
	path = str()
	for range nargv {
		argv = append(argv, str())
	}
	for range nenv {
		env = append(env, str())
	}
	if err == nil && len(b) != 0 {
		err = syscall.EINVAL
	}
	return path, argv, env, limits, err
}

// trampoline is the server's side of an Exec through the trampoline.
type trampoline struct {
	conn int    // the server's end of the trampoline's descriptor
	end  int    // the trampoline's end, until it is created; -1 after
	spec []byte // what conn carries to it
	pid  int
	held *held // the trampoline's entry in children, until the Exec is answered
}

// held is the exit of a child recorded but not yet answered for, if it
// ended meanwhile.
type held struct{ exit *wire.Exit }

// viaTrampoline makes attr, which would start path with argv, start the
// trampoline instead, which sets limits and executes path, and returns
// what to execute and the trampoline, which the caller closes.
func (sv *supervisor) viaTrampoline(path string, argv []string, attr *syscall.ProcAttr, limits []wire.Rlimit) (string, []string, *trampoline, error) {
	conn, end, err := socketpair()
	if err != nil {
		return "", nil, nil, err
	}
	t := &trampoline{conn: conn, end: end, spec: encodeExecSpec(path, argv, attr.Env, limits)}
	attr.Env = []string{roleEnv + "=" + roleExecLimits, execLimitsEnv + "=" + strconv.Itoa(len(attr.Files))}
	attr.Files = append(attr.Files, uintptr(end))
	exe := []string{"forkserver-exec"}
	if len(argv) > 0 {
		exe[0] = argv[0]
	}
	return sv.exe, exe, t, nil
}

// closeEnd closes the trampoline's end, which the server needs only until
// the trampoline is created.
func (t *trampoline) closeEnd() {
	if t.end >= 0 {
		syscall.Close(t.end)
		t.end = -1
	}
}

func (t *trampoline) close() {
	t.closeEnd()
	syscall.Close(t.conn)
}

// adoptHeld returns spawn's add function for l through t: it records the
// trampoline as held, so that its exit, should it come before the answer,
// is kept for it; or, if the server began to stop, as adopt does.
func (sv *supervisor) adoptHeld(l *launch, t *trampoline) func(pid int) error {
	return func(pid int) error {
		t.closeEnd()
		if sv.stopping {
			e := &entry{exit: -1}
			sv.children[pid] = e
			sv.killFor(pid, e)
			return ErrClosed
		}
		trampolines.Add(1)
		t.pid, t.held = pid, &held{}
		sv.children[pid] = &entry{exit: -1, held: t.held}
		return nil
	}
}

// finish sends the trampoline what to execute and reads until the
// execution closes its descriptor: an errno there is the Exec's error,
// reported as a plain Exec reports it, and the trampoline is reaped
// unreported; else the program runs, and is recorded as l's child.
func (sv *supervisor) finish(l *launch, t *trampoline) error {
	werr := writeAllFd(t.conn, t.spec)
	syscall.Shutdown(t.conn, syscall.SHUT_WR)
	var b [12]byte
	n := 0
	for n < len(b) {
		m, err := syscall.Read(t.conn, b[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || m == 0 {
			break
		}
		n += m
	}
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if n == len(b) {
		errno := syscall.Errno(binary.LittleEndian.Uint32(b[8:]))
		switch binary.LittleEndian.Uint32(b[0:]) {
		case stepExec:
			return os.NewSyscallError("fork/exec", errno)
		case stepRlimit:
			return os.NewSyscallError(fmt.Sprintf("setrlimit(%d)", binary.LittleEndian.Uint32(b[4:])), errno)
		}
		return fmt.Errorf("exec-limits: reading what to execute: %w", errno)
	}
	if e := sv.children[t.pid]; e != nil && e.held == t.held && (sv.stopping || werr != nil) {
		// It cannot have executed the program with what it did not get.
		sv.killFor(t.pid, e)
		if sv.stopping {
			return ErrClosed
		}
		return werr
	}
	// End-of-file: the program runs, or the trampoline died before it
	// could tell, whose exit then is the program's.
	sv.record(l, t.pid, t.held.exit)
	return nil
}

// writeAllFd writes all of b to the blocking descriptor fd.
func writeAllFd(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("write", err)
		}
		b = b[n:]
	}
	return nil
}
