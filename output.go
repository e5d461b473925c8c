//go:build linux || darwin

package forkserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
)

// Output forks a child that runs fn, as Fork does, waits for it to end and
// returns what it wrote to its standard output. A child that does not exit
// with status 0 makes the error an [*ExitError], which holds its [Exit]
// and, unless attr sets Stderr, what it wrote to its standard error; the
// output is returned with it. attr must not set Stdout, which Output
// captures, nor Socket, whose end nobody would hold; a nil attr gives the
// child nothing else. ctx governs the child's life as Fork's does: if it
// ends first, the child is sent [Attr.Cancel], and the error matches ctx's
// error as well as *ExitError.
func (s *Server) Output(ctx context.Context, fn Func, attr *Attr) ([]byte, error) {
	out, err := output(attr, func(a *Attr) (*Process, error) { return s.Fork(ctx, fn, a) })
	return out, opError("fork", fn.name, err)
}

// ExecOutput is Output for an external program, which it starts as Exec
// does.
func (s *Server) ExecOutput(ctx context.Context, path string, argv []string, attr *Attr) ([]byte, error) {
	out, err := output(attr, func(a *Attr) (*Process, error) { return s.Exec(ctx, path, argv, a) })
	return out, opError("exec", path, err)
}

// output runs the child start creates and returns its output. The errors
// of start and Wait name their operation already.
func output(attr *Attr, start func(*Attr) (*Process, error)) ([]byte, error) {
	var a Attr
	if attr != nil {
		a = *attr
	}
	if !unset(a.Stdout) || a.Socket {
		return nil, errors.New("Output captures Stdout and gives no Socket: leave both unset")
	}
	var out bytes.Buffer
	a.Stdout = &out
	var stderr *headTail
	if unset(a.Stderr) {
		stderr = &headTail{n: stderrKept}
		a.Stderr = stderr
	}
	p, err := start(&a)
	if err != nil {
		return nil, err
	}
	exit, err := p.Wait()
	var waitErr *Error
	if exit == nil || err != nil && !errors.As(err, &waitErr) {
		return nil, err // the copying may go on: out is not ours to read
	}
	var cause error
	if !exit.Success() {
		cause = &ExitError{Exit: exit, Stderr: stderr.Bytes()}
	}
	if waitErr != nil { // the ctx ended first, or copying failed
		if cause == nil {
			cause = waitErr.Err
		} else {
			cause = fmt.Errorf("%w (%w)", waitErr.Err, cause)
		}
	}
	return out.Bytes(), cause
}
