//go:build linux || darwin

package forkserver

// A child seen from the program: how Fork and Exec start it, from a warm
// child the server handed over or through the server, and how its exit is
// learned. The reply to a Fork or Exec and the exit of its child reach the
// requester on a pipe of their own as well as on the connection: the
// goroutine that waits reads the pipe with a blocking system call, as
// os/exec's Wait does, and so resumes as soon as its event happens, while a
// goroutine woken through the runtime's poller, or handed an event by
// another goroutine, waits a scheduling round in a program whose processors
// are busy.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/forkserver/forkserver/internal/wire"
)

// Wait waits for the child to exit and returns how it ended. Unlike
// os/exec's Cmd.Wait, and [Cmd.Wait], a child that exits non-zero or dies
// by a signal is not an error: Wait returns its Exit and a nil error, so
// check [Exit.Success], or run the child as a [Cmd].
// Wait returns an error when the exit can no longer be learned: [ErrClosed]
// after the Server was closed or detached, [ErrConnLost] when the server
// died. And, as os/exec's does, it returns the Exit together with the error
// of the Fork's or Exec's ctx when that ctx ended before the child's exit
// was known and the child was sent [Attr.Cancel]: what the child did
// afterwards may be the doing of that signal. Wait may be called any number
// of times and from any goroutine. When the child's standard streams are
// readers or writers other than files, Wait also waits for the copying to
// end and returns the exit with the error copying met, if any (see
// [Attr.Stdin]).
//
// Wait blocks in a system call on the calling goroutine's thread, as
// os/exec's Wait does, and so returns as soon as the server has seen the
// child exit, however busy the program's other goroutines keep its
// processors. The server tells the exit just before it reaps the child,
// and sends no signal and counts no child until it has.
// Like os/exec, a program that blocks many goroutines in Wait at once may
// use a thread for each; [Process.Done] uses none.
func (p *Process) Wait() (*Exit, error) {
	exit, err := p.wait()
	return exit, opError("wait", p.name, err)
}

func (p *Process) wait() (*Exit, error) {
	if p.srv == nil {
		return nil, errNoProcess
	}
	if f, ok, err := p.readPipe(context.Background()); ok && err == nil {
		if m, isExit := f.msg.(*wire.Exit); isExit {
			p.srv.mu.Lock()
			closed := errors.Is(p.srv.err, ErrClosed)
			p.srv.mu.Unlock()
			if closed {
				p.finish(nil, ErrClosed) // as if the reader had come first
			} else {
				p.finish(exitFromMsg(m), nil)
			}
		}
	}
	<-p.Done() // the reader learns what the pipe could not tell; and the copying ends
	if p.stdio != nil {
		if err := p.stdio.result(); p.err == nil && err != nil {
			return p.exit, err
		}
	}
	return p.exit, p.err
}

// UserTime returns the CPU time the child spent in user mode.
func (e *Exit) UserTime() time.Duration { return time.Duration(e.Rusage.Utime.Nano()) }

// SystemTime returns the CPU time the child spent in the kernel.
func (e *Exit) SystemTime() time.Duration { return time.Duration(e.Rusage.Stime.Nano()) }

// Signal sends sig, which must be a syscall.Signal, to the child through
// the server, which is the child's parent and so cannot race with the
// reuse of its pid. It returns an error matching os.ErrProcessDone if the
// child has already exited.
func (p *Process) Signal(sig os.Signal) error {
	return opError("signal", p.name, p.sendSignal(sig, false))
}

// Kill sends SIGKILL to the child, as Signal does.
func (p *Process) Kill() error { return p.Signal(syscall.SIGKILL) }

// SignalGroup sends sig, which must be a syscall.Signal, to the process
// group the child leads, which it must have been forked with [Attr.Setsid]
// or [Attr.Setpgid] to do: it reaches what the child started in its group.
// The server refuses once the child has exited, since the group id could
// then be reused.
func (p *Process) SignalGroup(sig os.Signal) error {
	return opError("signal group", p.name, p.sendSignal(sig, true))
}

// sendSignal sends sig to the child, or to its group.
func (p *Process) sendSignal(sig os.Signal, group bool) error {
	if p.srv == nil {
		return errNoProcess
	}
	if !group {
		select {
		case <-p.done:
			if p.exit != nil {
				return os.ErrProcessDone
			}
		default:
		}
	}
	s, err := sysSignal(sig)
	if err != nil {
		return err
	}
	_, err = p.srv.exchange(context.Background(), &wire.Signal{Pid: uint32(p.Pid), Sig: uint32(s), Group: group})
	return err
}

// sysSignal returns sig as the signal number the server sends.
func sysSignal(sig os.Signal) (syscall.Signal, error) {
	s, ok := sig.(syscall.Signal)
	switch {
	case !ok:
		return 0, fmt.Errorf("unsupported signal type %T", sig)
	case s < 0 || s > wire.MaxSignal:
		return 0, fmt.Errorf("signal %d out of range", int(s))
	}
	return s, nil
}

// begin starts the life of p, which a Fork or Exec with ctx created: the
// copying of std, then the watch of ctx, whose end may cut the copying
// short. It returns p.
func (p *Process) begin(ctx context.Context, std *stdio, sig syscall.Signal, delay time.Duration) *Process {
	std.start(p)
	p.watch(ctx, sig, delay)
	return p
}

// watch makes the end of ctx, should it come before the child's exit is
// known, send the child sig (Attr.Cancel) and, delay (Attr.WaitDelay)
// later, SIGKILL. A ctx that is never done costs nothing: no goroutine
// waits for it.
func (p *Process) watch(ctx context.Context, sig syscall.Signal, delay time.Duration) {
	if ctx.Done() == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.finished() {
		p.stopWatch = context.AfterFunc(ctx, func() { p.cancel(ctx.Err(), sig, delay) })
	}
}

// cancel sends sig to the child, whose ctx ended with cause, and SIGKILL
// delay later unless the child has exited by then.
func (p *Process) cancel(cause error, sig os.Signal, delay time.Duration) {
	p.mu.Lock()
	if p.finished() {
		p.mu.Unlock()
		return
	}
	p.cancelErr = cause // before the signal, so that the exit it causes reports it
	p.mu.Unlock()
	err := p.sendSignal(sig, false)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.finished():
	case errors.Is(err, os.ErrProcessDone): // it had exited: ctx did nothing to it
		p.cancelErr = nil
	case err == nil && sig != syscall.SIGKILL && delay > 0:
		p.killTimer = time.AfterFunc(delay, func() { p.Kill() })
	}
	if p.stdio != nil {
		p.stdio.expireAfter()
	}
}

// finished reports whether p's end is known. p.mu must be held.
func (p *Process) finished() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// finish records how the child ended, once: the first to learn it wins.
func (p *Process) finish(exit *Exit, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished() {
		return
	}
	if err == nil && p.cancelErr != nil {
		err = p.cancelErr
	}
	p.exit, p.err = exit, err
	close(p.done)
	if p.stopWatch != nil {
		p.stopWatch()
	}
	if p.killTimer != nil {
		p.killTimer.Stop()
	}
	if !p.reading && !p.launching {
		p.closeExitFd()
	}
}

// launched records that the reply to p's launch has been read, or will
// never be: from now on p's end closes its exit pipe.
func (p *Process) launched() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.launching = false
	if p.finished() && !p.reading {
		p.closeExitFd()
	}
}

// closeExitFd closes the exit pipe. p.mu must be held.
func (p *Process) closeExitFd() {
	if p.exitFd >= 0 {
		syscall.Close(p.exitFd)
		p.exitFd = -1
	}
}

// readPipe reads the next frame from p's exit pipe, blocking the calling
// thread until it comes or ctx ends. ok is false, and nothing is read, when
// another goroutine is reading or p has finished. Once p has finished, or
// the pipe has failed, the pipe is closed.
func (p *Process) readPipe(ctx context.Context) (f frame, ok bool, err error) {
	p.mu.Lock()
	fd := p.exitFd
	if p.reading || fd < 0 {
		p.mu.Unlock()
		return frame{}, false, nil
	}
	p.reading = true
	p.mu.Unlock()
	err = waitReadable(ctx, fd)
	if err == nil {
		f, err = readFrameFd(fd)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reading = false
	select {
	case <-p.done:
		p.closeExitFd()
	default:
		if err != nil && ctx.Err() == nil {
			p.closeExitFd()
		}
	}
	return f, true, err
}
