//go:build linux || darwin

package forkserver

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"
)

// Start starts c, through Exec for a program and Fork for a function, and
// sets c.Process. Wait must be called to release what it holds. Start
// fails if c was already started, even unsuccessfully; it returns Err if
// the lookup failed.
func (c *Cmd) Start() error {
	if atomic.SwapInt32(&c.startCalled, 1) != 0 {
		return c.error("start", errors.New("already started"))
	}
	started := false
	defer func() {
		closeDescriptors(c.childIOFiles)
		c.childIOFiles = nil
		if !started {
			closeDescriptors(c.parentIOPipes)
			c.parentIOPipes = nil
		}
	}()
	if c.Path == "" && c.Err == nil {
		c.Err = c.error("start", errors.New("no command"))
	}
	if c.Err != nil {
		return c.Err
	}
	p, err := c.startProcess()
	if err != nil {
		return opError("start", c.Path, err)
	}
	c.Process = p
	started = true
	c.watchCtx()
	return nil
}

// startProcess starts the child c describes.
func (c *Cmd) startProcess() (*Process, error) {
	switch {
	case c.srv == nil:
		return nil, errors.New("a Cmd must be made by a Server's Command, CommandContext, CommandFunc or CommandFuncContext")
	case c.Cancel != nil && c.ctx == nil:
		return nil, errors.New("a Cmd with a non-nil Cancel must be made with a ctx")
	}
	ctx := context.Background()
	if c.ctx != nil {
		if err := c.ctx.Err(); err != nil {
			return nil, err
		}
		ctx = context.WithoutCancel(c.ctx) // Cmd watches c.ctx itself, to call Cancel
	}
	var attr Attr
	if a := c.Attr; a != nil {
		if a.Env != nil || a.ExtraEnv != nil || a.Dir != "" || a.Stdin != nil || a.Stdout != nil || a.Stderr != nil ||
			a.Files != nil || a.Cancel != nil || a.WaitDelay != 0 || a.Arg != nil {
			return nil, errors.New("Cmd.Attr sets Env, ExtraEnv, Dir, Stdin, Stdout, Stderr, Files, Cancel, WaitDelay or Arg: set the Cmd's own fields")
		}
		attr = *a
	}
	attr.Stdin, attr.Stdout, attr.Stderr = c.Stdin, c.Stdout, c.Stderr
	var err error
	if c.Stdin == nil {
		attr.Stdin, err = c.devNull(os.O_RDONLY)
	}
	if c.Stdout == nil && err == nil {
		attr.Stdout, err = c.devNull(os.O_WRONLY)
	}
	if c.Stderr == nil && err == nil {
		attr.Stderr, err = c.devNull(os.O_WRONLY)
	}
	if err != nil {
		return nil, err
	}
	if attr.Env, err = c.environ(); err != nil {
		return nil, err
	}
	if attr.Dir, err = c.dir(); err != nil {
		return nil, err
	}
	attr.Files = c.ExtraFiles
	attr.WaitDelay = c.WaitDelay // bounds the copying once the exit is known
	if c.fn.name != "" {
		attr.Arg = c.arg
		return c.srv.Fork(ctx, c.fn, &attr)
	}
	path := c.Path
	if !strings.Contains(path, "/") {
		path = "./" + path // executed from Dir, as os/exec executes it, never looked up
	}
	return c.srv.Exec(ctx, path, c.argv(), &attr)
}

// devNull opens the null device with flag, for a standard stream left
// nil; c closes it once Start returns.
func (c *Cmd) devNull(flag int) (*os.File, error) {
	f, err := os.OpenFile(os.DevNull, flag, 0)
	if err != nil {
		return nil, err
	}
	c.childIOFiles = append(c.childIOFiles, f)
	return f, nil
}

// dir returns the directory the child runs in: Dir taken from the
// program's working directory, which is the server's business only under
// a Chroot.
func (c *Cmd) dir() (string, error) {
	if c.Attr != nil && c.Attr.Chroot != "" || strings.HasPrefix(c.Dir, "/") {
		return c.Dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	if c.Dir == "" {
		return wd, nil
	}
	return strings.TrimSuffix(wd, "/") + "/" + c.Dir, nil // not cleaned: "link/.." is the kernel's to resolve
}

// watchCtx calls Cancel when c's ctx ends, and kills the child WaitDelay
// later, as os/exec does.
func (c *Cmd) watchCtx() {
	if c.Cancel == nil && c.WaitDelay == 0 || c.ctx == nil || c.ctx.Done() == nil {
		return
	}
	w := &cmdWatch{fired: make(chan struct{})}
	c.watch = w
	w.stop = context.AfterFunc(c.ctx, func() {
		var err error
		if c.Cancel != nil {
			switch cerr := c.Cancel(); {
			case cerr == nil: // what the child does from now on may be ctx's doing
				err = c.error("wait", c.ctx.Err())
			case errors.Is(cerr, os.ErrProcessDone): // it had exited
			default:
				err = c.error("cancel", cerr)
			}
		}
		w.mu.Lock()
		w.err = err
		if c.WaitDelay > 0 && !w.waited {
			w.timer = time.AfterFunc(c.WaitDelay, func() { c.killAfterDelay(w) })
		}
		w.mu.Unlock()
		close(w.fired)
	})
}

// killAfterDelay kills the child WaitDelay after c's ctx ended, then cuts
// short the copying, unless Wait already has its result.
func (c *Cmd) killAfterDelay(w *cmdWatch) {
	w.mu.Lock()
	waited := w.waited
	w.mu.Unlock()
	if waited {
		return
	}
	// First the signal, then the pipes, so that the child dies of SIGKILL
	// rather than SIGPIPE.
	if err := c.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
	}
	if std := c.Process.stdio; std != nil {
		std.expire()
	}
}

// Wait waits for the child to exit and for the copying of its standard
// streams to end, then closes the pipes that StdinPipe, StdoutPipe and
// StderrPipe returned. It returns nil if the child exited with status 0
// and nothing went wrong; an [*ExitError], as it is, if it did not; the
// ctx's error or Cancel's if the ctx ended and Cancel did something;
// exec.ErrWaitDelay if WaitDelay cut the copying short; otherwise an
// [*Error]. Wait blocks in a system call of its own, as Process.Wait does,
// and may be called once.
func (c *Cmd) Wait() error {
	switch {
	case c.Process == nil:
		return c.error("wait", errors.New("not started"))
	case c.ProcessState != nil:
		return c.error("wait", errors.New("Wait was already called"))
	}
	p := c.Process
	p.wait() // its parts are read below
	if p.stdio != nil && p.exit != nil {
		// The copying was cut short or is done: once cut short it ends
		// as soon as the closed pipes fail it, and os/exec's Wait waits
		// for that too, so that nothing writes to Stdout or Stderr after
		// Wait returns.
		<-p.stdio.copied
	}
	var err error
	switch {
	case p.err != nil:
		err = opError("wait", p.name, p.err)
	case !p.exit.Success():
		err = &ExitError{Exit: p.exit}
	}
	c.ProcessState = p.exit
	if w := c.watch; w != nil {
		if !w.stop() {
			<-w.fired
		}
		w.mu.Lock()
		w.waited = true
		if w.timer != nil {
			w.timer.Stop()
		}
		if err == nil {
			err = w.err
		}
		w.mu.Unlock()
	}
	if std := p.stdio; err == nil && std != nil {
		if err = std.result(); err != nil && err != exec.ErrWaitDelay {
			err = opError("wait", p.name, err)
		}
	}
	closeDescriptors(c.parentIOPipes)
	c.parentIOPipes = nil
	return err
}
