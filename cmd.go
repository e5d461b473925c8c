package forkserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Cmd is an external program, or a registered function, being prepared or
// run through a [Server]: os/exec's Cmd, created by the server. Replacing
// exec.Command with srv.Command, and exec.CommandContext with
// srv.CommandContext, is the whole change for a program that relies on
// what os/exec documents. Every field and method means what os/exec's does:
//
//   - Env nil is the program's environment as Start is called, with
//     duplicates removed, the last one winning, and PWD set from Dir when
//     Dir is set; Dir empty is the program's working directory as Start is
//     called (the server's may differ); a relative Path or Dir is taken
//     from the program's working directory, as os/exec takes it.
//   - Stdin, Stdout and Stderr nil are the null device.
//   - A name without a slash is looked up in the program's PATH by
//     Command, with [os/exec.LookPath] itself: Err is then an
//     [*os/exec.Error] matching exec.ErrNotFound or exec.ErrDot, and
//     GODEBUG=execerrdot=0 is honoured; ".", ".." and "" are never looked
//     up.
//   - Wait and Run report a non-zero exit as an [*ExitError], returned as
//     it is, so that err.(*forkserver.ExitError) finds it, and a copy cut
//     short by WaitDelay as exec.ErrWaitDelay itself. Every other error,
//     from Start, Wait and the rest, is an [*Error], as everywhere in this
//     package.
//
// What this package adds to os/exec (children that die with the program,
// signals without a pid-reuse race, the sandbox, credentials, limits) goes
// in one field, Attr, as os/exec keeps its own extras in SysProcAttr.
//
// Its differences from os/exec: a Cmd must be made by a Server, not
// declared as a literal; ProcessState is an [*Exit], whose Pid is a field
// rather than a method, and ExitError embeds that Exit rather than an
// *os.ProcessState; Process is a [*Process] of this package; Start
// refuses more than 1024 arguments or environment entries, or one longer
// than [MaxArg].
//
// A Cmd cannot be reused after Start, Run, Output or CombinedOutput.
type Cmd struct {
	// Path is the program to run: the only field that must be set. A
	// relative Path is taken from Dir. For a Cmd made by CommandFunc, it
	// is the function's name, and says nothing to Start.
	Path string

	// Args are the program's arguments, Args[0] included; empty means
	// {Path}. A function ignores them: it gets the arg given to
	// CommandFunc.
	Args []string

	// Env is the program's environment, "key=value" entries of which the
	// last wins for each key. Nil means the program's environment as Start
	// is called, with PWD set to Dir, made absolute, if Dir is set.
	Env []string

	// Dir is the program's working directory. Empty means the program's
	// working directory as Start is called, not the server's; a relative
	// Dir is taken from it. With Attr.Chroot, Dir is a path inside the
	// new root, passed as it is, and empty leaves the directory as Exec
	// leaves it.
	Dir string

	// Stdin is the program's standard input: nil is the null device, an
	// *os.File is given to the program as it is, and anything else is
	// copied into a pipe by a goroutine, which Wait waits for.
	Stdin io.Reader

	// Stdout and Stderr are the program's standard output and error: nil
	// is the null device, an *os.File is given to the program as it is,
	// and anything else is filled from a pipe by a goroutine, which Wait
	// waits for. When they are the same writer, one goroutine at a time
	// writes to it.
	Stdout io.Writer
	Stderr io.Writer

	// ExtraFiles become descriptors 3, 4, and so on of the program.
	ExtraFiles []*os.File

	// Attr holds what this package adds to os/exec, for the program or
	// function to run with: Credential, Chroot, Setsid, Setpgid,
	// Namespaces, NoNewPrivs, Pdeathsig, Rlimits (not with Chroot for a
	// program); and, for a function,
	// Paths, DenySyscalls, Socket and Server. Nil means none of them. The
	// fields of Attr that Cmd has itself must be left zero, or Start
	// fails: Env, ExtraEnv, Dir, Stdin, Stdout, Stderr, Files, Cancel,
	// WaitDelay and Arg.
	Attr *Attr

	// Process is the child, once Start has started it. Signal it
	// through Process, which cannot hit a reused pid.
	Process *Process

	// ProcessState is how the child ended, set by Wait; nil before.
	ProcessState *Exit

	// Err is the error of Command's lookup of the program, if any, which
	// Start returns. Clearing an error matching exec.ErrDot runs the
	// program found relative to the working directory all the same.
	Err error

	// Cancel, when the Cmd was made by CommandContext (which sets it to
	// kill the child), is called when its ctx ends before Wait has seen
	// the child exit. An error it returns, unless it matches
	// os.ErrProcessDone, is Wait's error if the child then exits with
	// status 0; if it returns nil, that error is the ctx's. Nil Cancel
	// does nothing at the ctx's end, but WaitDelay still applies.
	Cancel func() error

	// WaitDelay, if not zero, bounds Wait as os/exec's does: WaitDelay
	// after the ctx ends, or after Wait sees the child exit, whichever
	// comes first, a child still running is killed, and then pipes still
	// being copied are closed; if nothing else went wrong, Wait then
	// returns exec.ErrWaitDelay.
	WaitDelay time.Duration

	srv *Server
	ctx context.Context
	fn  Func   // the function to run, or the zero Func for a program
	arg []byte // the function's Child.Arg

	// Closed once Start returns: what the child holds, and, on failure,
	// what the caller would have.
	childIOFiles []io.Closer
	// Closed by Wait, or by Start if it fails: the pipes StdoutPipe,
	// StderrPipe and StdinPipe returned.
	parentIOPipes []io.Closer

	watch *cmdWatch // the watch of ctx, from Start on; nil if none

	// startCalled is set by Start, through atomic.SwapInt32 rather than an
	// atomic.Bool, so that copying a Cmd does not trip vet's copylocks,
	// as os/exec does.
	startCalled int32
}

// cmdWatch is what the end of a Cmd's ctx did: Cancel's outcome, and the
// timer that kills the child WaitDelay later.
type cmdWatch struct {
	stop  func() bool   // stops watching; false once the ctx's end has been seen
	fired chan struct{} // closed once err and timer are set after the ctx's end

	mu     sync.Mutex
	err    error
	timer  *time.Timer
	waited bool // Wait has its result: the timer does nothing from then on
}

// Command returns the Cmd to run the program name with arg, as
// exec.Command does: Path is name, Args is name followed by arg, and a
// name without a slash is looked up in the program's PATH with
// exec.LookPath, whose error, if any, goes in Err.
func (s *Server) Command(name string, arg ...string) *Cmd {
	c := &Cmd{srv: s, Path: name, Args: append([]string{name}, arg...)}
	if filepath.Base(name) == name {
		lp, err := exec.LookPath(name)
		if lp != "" {
			c.Path = lp
		}
		if err != nil {
			c.Err = err
		}
	}
	return c
}

// CommandContext is Command with a ctx whose end, if it comes before the
// child's exit, calls Cancel, which it sets to kill the child. It panics
// if ctx is nil.
func (s *Server) CommandContext(ctx context.Context, name string, arg ...string) *Cmd {
	if ctx == nil {
		panic("forkserver: CommandContext: nil Context")
	}
	c := s.Command(name, arg...)
	c.ctx = ctx
	c.Cancel = func() error { return c.Process.Kill() }
	return c
}

// CommandFunc returns the Cmd to run the registered function fn in a child,
// as Fork does, with arg as its [Child.Arg]: a Cmd like any other, with its
// Env, Dir, standard streams, ExtraFiles (the child's [Child.Files]),
// Output, pipes and ExitError, for a Go function. Path and Args[0] are
// fn's name.
func (s *Server) CommandFunc(fn Func, arg []byte) *Cmd {
	return &Cmd{srv: s, Path: fn.name, Args: []string{fn.name}, fn: fn, arg: arg}
}

// CommandFuncContext is CommandFunc with a ctx, as CommandContext is
// Command with one.
func (s *Server) CommandFuncContext(ctx context.Context, fn Func, arg []byte) *Cmd {
	if ctx == nil {
		panic("forkserver: CommandFuncContext: nil Context")
	}
	c := s.CommandFunc(fn, arg)
	c.ctx = ctx
	c.Cancel = func() error { return c.Process.Kill() }
	return c
}

// String describes c for debugging, as os/exec's does: Path and the
// arguments, or Args alone if the lookup failed.
func (c *Cmd) String() string {
	if c.Err != nil {
		return strings.Join(c.Args, " ")
	}
	b := new(strings.Builder)
	b.WriteString(c.Path)
	for _, a := range c.Args[min(1, len(c.Args)):] {
		b.WriteByte(' ')
		b.WriteString(a)
	}
	return b.String()
}

// argv returns the program's arguments: Args, or {Path}.
func (c *Cmd) argv() []string {
	if len(c.Args) > 0 {
		return c.Args
	}
	return []string{c.Path}
}

// Run starts c and waits for it to end: Start, then Wait.
func (c *Cmd) Run() error {
	if err := c.Start(); err != nil {
		return err
	}
	return c.Wait()
}

// Output runs c and returns its standard output. Unless Stderr was set,
// an [*ExitError] holds what the child wrote to its standard error: all of
// it up to 64 KiB, else its first and last 32 KiB with a line between them
// that says how much was omitted.
func (c *Cmd) Output() ([]byte, error) {
	if c.Stdout != nil {
		return nil, c.error("output", errors.New("Stdout already set"))
	}
	var stdout bytes.Buffer
	c.Stdout = &stdout
	captureErr := c.Stderr == nil
	if captureErr {
		c.Stderr = &headTail{n: stderrKept}
	}
	err := c.Run()
	if ee, ok := err.(*ExitError); ok && captureErr {
		ee.Stderr = c.Stderr.(*headTail).Bytes()
	}
	return stdout.Bytes(), err
}

// CombinedOutput runs c and returns its standard output and error
// together.
func (c *Cmd) CombinedOutput() ([]byte, error) {
	if c.Stdout != nil || c.Stderr != nil {
		return nil, c.error("combined output", errors.New("Stdout or Stderr already set"))
	}
	var b bytes.Buffer
	c.Stdout = &b
	c.Stderr = &b
	err := c.Run()
	return b.Bytes(), err
}

// StdinPipe returns a pipe that is the child's standard input once it
// starts. Wait closes it after seeing the child exit; close it sooner for
// a child that reads its input to the end.
func (c *Cmd) StdinPipe() (io.WriteCloser, error) {
	pr, pw, err := c.streamPipe("Stdin", c.Stdin != nil)
	if err != nil {
		return nil, err
	}
	c.Stdin = pr
	c.childIOFiles = append(c.childIOFiles, pr)
	c.parentIOPipes = append(c.parentIOPipes, pw)
	return pw, nil
}

// StdoutPipe returns a pipe that carries the child's standard output
// once it starts. Wait closes it after seeing the child exit, so read all
// of it before calling Wait, and do not use Run with it.
func (c *Cmd) StdoutPipe() (io.ReadCloser, error) {
	pr, pw, err := c.streamPipe("Stdout", c.Stdout != nil)
	if err != nil {
		return nil, err
	}
	c.Stdout = pw
	c.childIOFiles = append(c.childIOFiles, pw)
	c.parentIOPipes = append(c.parentIOPipes, pr)
	return pr, nil
}

// StderrPipe is StdoutPipe for the child's standard error.
func (c *Cmd) StderrPipe() (io.ReadCloser, error) {
	pr, pw, err := c.streamPipe("Stderr", c.Stderr != nil)
	if err != nil {
		return nil, err
	}
	c.Stderr = pw
	c.childIOFiles = append(c.childIOFiles, pw)
	c.parentIOPipes = append(c.parentIOPipes, pr)
	return pr, nil
}

// streamPipe returns a new pipe for the stream named, refused if the stream is
// set already or the process has started.
func (c *Cmd) streamPipe(stream string, set bool) (r, w *os.File, err error) {
	op := strings.ToLower(stream) + " pipe"
	switch {
	case set:
		return nil, nil, c.error(op, errors.New(stream+" already set"))
	case c.Process != nil:
		return nil, nil, c.error(op, errors.New(stream+"Pipe after process started"))
	}
	if r, w, err = os.Pipe(); err != nil {
		return nil, nil, c.error(op, err)
	}
	return r, w, nil
}

// Environ returns a copy of the environment c would run with as it is
// now configured.
func (c *Cmd) Environ() []string {
	env, _ := c.environ() // the best it can do, as os/exec's
	return env
}

// environ returns the environment c runs with, as os/exec computes it,
// and the first error met in computing it, with what it could compute.
func (c *Cmd) environ() ([]string, error) {
	var err error
	env := c.Env
	if env == nil {
		env = os.Environ()
		if c.Dir != "" {
			if pwd, absErr := filepath.Abs(c.Dir); absErr == nil {
				env = append(env, "PWD="+pwd)
			} else {
				err = absErr
			}
		}
	}
	env, dedupErr := dedupEnv(env)
	if err == nil {
		err = dedupErr
	}
	return env, err
}

// dedupEnv returns env without duplicates, the last of each key winning,
// and without the entries that hold a NUL, which make the error. Entries
// without "=" are kept as they are; the key of one that starts with "="
// runs to the next "=".
func dedupEnv(env []string) ([]string, error) {
	var err error
	out := make([]string, 0, len(env))
	saw := make(map[string]bool, len(env))
	for n := len(env); n > 0; n-- {
		kv := env[n-1]
		if strings.IndexByte(kv, 0) != -1 {
			err = errors.New("environment variable contains NUL")
			continue
		}
		i := strings.Index(kv, "=")
		if i == 0 {
			i = strings.Index(kv[1:], "=") + 1
		}
		if i < 0 {
			if kv != "" {
				out = append(out, kv)
			}
			continue
		}
		if k := kv[:i]; !saw[k] {
			saw[k] = true
			out = append(out, kv)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

// error returns err as the *Error of op on c's program.
func (c *Cmd) error(op string, err error) error {
	return &Error{Op: op, Name: c.Path, Err: err}
}

func closeDescriptors(closers []io.Closer) {
	for _, fd := range closers {
		fd.Close()
	}
}

// Exited reports whether the child exited rather than died of a signal,
// as os.ProcessState's does.
func (e *Exit) Exited() bool { return e.Status.Exited() }

// Sys returns the wait status, a syscall.WaitStatus, as os.ProcessState's
// does.
func (e *Exit) Sys() any { return e.Status }

// SysUsage returns the resource usage, a *syscall.Rusage, as
// os.ProcessState's does.
func (e *Exit) SysUsage() any { return &e.Rusage }
