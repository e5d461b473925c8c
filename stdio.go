//go:build linux || darwin

package forkserver

// Standard input, output and error that are not files: as os/exec does, the
// requester gives the child one end of a pipe and copies between the other
// end and the caller's reader or writer in a goroutine of its own.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// stdio is the pipes and copying goroutines of one Fork or Exec.
type stdio struct {
	childEnds  []*os.File     // closed once the request is sent: the child holds its own
	parentEnds []*os.File     // closed by their goroutines, or at once if the request fails
	copiers    []func() error // each copies through one parent end, then closes it

	err    error         // the first error a copier returned; read once copied is closed
	copied chan struct{} // closed when every copier has returned
	done   chan struct{} // what Process.Done returns: the child has ended and, if its exit was learned, copying has too

	// waitDelay is Attr.WaitDelay: once it has passed since the child's
	// exit was learned or its ctx ended, the parent's ends are closed and
	// expired is closed, and Wait waits no longer for the copying.
	waitDelay time.Duration
	expiry    sync.Once // schedules expire
	expiring  sync.Once // runs expire
	expired   chan struct{}
	cutShort  bool // done was closed on expired, before copied; read once done is closed
}

// newStdio sets up a pipe for each of the standard streams stdin, stdout
// and stderr that is not an *os.File, whose copying waitDelay bounds (see
// Attr.WaitDelay), and returns the files the child gets as its descriptors
// 0 to 2: those streams given as files, the child's ends of the pipes, and
// nil for the server's own. Its *stdio is nil when there are no pipes.
func newStdio(stdin io.Reader, stdout, stderr io.Writer, waitDelay time.Duration) (*stdio, [3]*os.File, error) {
	var std *stdio
	var files [3]*os.File
	for i, v := range [3]any{stdin, stdout, stderr} {
		if f := fileOf(v); f != nil {
			f.Fd() // blocking, as programs expect of descriptors 0 to 2
			files[i] = f
			continue
		}
		if unset(v) {
			continue
		}
		if std == nil {
			std = &stdio{copied: make(chan struct{}), done: make(chan struct{}), expired: make(chan struct{}), waitDelay: waitDelay}
		}
		if i == 2 && sameWriter(stderr, stdout) {
			// One pipe and one goroutine, so that a writer that is not safe
			// for concurrent use gets one write at a time.
			files[2] = files[1]
			continue
		}
		child, parent, err := stdPipe(i)
		if err != nil {
			std.abort()
			return nil, [3]*os.File{}, err
		}
		files[i] = child
		std.childEnds = append(std.childEnds, child)
		std.parentEnds = append(std.parentEnds, parent)
		switch i {
		case 0:
			std.copiers = append(std.copiers, copyStdin(parent, stdin))
		case 1:
			std.copiers = append(std.copiers, copyOutput("output", stdout, parent))
		case 2:
			std.copiers = append(std.copiers, copyOutput("error", stderr, parent))
		}
	}
	return std, files, nil
}

// stdPipe returns a pipe for the child's descriptor i: the child's end
// blocks, as programs expect of their standard descriptors, and the
// requester's end goes through the runtime's poller, which costs no thread
// while it waits.
func stdPipe(i int) (child, parent *os.File, err error) {
	r, w, err := pipe()
	if err != nil {
		return nil, nil, err
	}
	childFd, parentFd := r, w
	if i > 0 {
		childFd, parentFd = w, r
	}
	if err := syscall.SetNonblock(parentFd, true); err != nil {
		closeFds([]int{r, w})
		return nil, nil, os.NewSyscallError("setnonblock", err)
	}
	name := [3]string{"stdin", "stdout", "stderr"}[i]
	return os.NewFile(uintptr(childFd), "|child "+name), os.NewFile(uintptr(parentFd), "|"+name), nil
}

// copyStdin copies r into the pipe w until r ends or the child no longer
// reads, then closes w, which the child sees as the end of its input.
func copyStdin(w *os.File, r io.Reader) func() error {
	return func() error {
		_, err := io.Copy(w, r)
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Op == "write" && pe.Err == syscall.EPIPE {
			err = nil // the child stopped reading, or ended: what it did not read it did not want
		}
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("copying to the child's standard input: %w", err)
		}
		return nil
	}
}

// copyOutput copies what the child writes to the pipe r into w, until
// every copy of the pipe's other end is closed, then closes r.
func copyOutput(what string, w io.Writer, r *os.File) func() error {
	return func() error {
		_, err := io.Copy(w, r)
		r.Close()
		if err != nil {
			return fmt.Errorf("copying the child's standard %s: %w", what, err)
		}
		return nil
	}
}

// start closes the child's ends of the pipes, which the child p now
// holds, and starts copying for p. A nil std has nothing to do.
func (std *stdio) start(p *Process) {
	if std == nil {
		return
	}
	closeFiles(std.childEnds)
	p.stdio = std
	results := make(chan error, len(std.copiers))
	for _, copy := range std.copiers {
		go func() { results <- copy() }()
	}
	go func() {
		for range std.copiers {
			if err := <-results; err != nil && std.err == nil {
				std.err = err
			}
		}
		close(std.copied)
	}()
	go func() {
		<-p.done
		if p.exit != nil { // the exit was learned: the child's ends are closed
			std.expireAfter()
			select {
			case <-std.copied:
			case <-std.expired:
			}
			select {
			case <-std.expired:
				std.cutShort = true
			default:
			}
		}
		close(std.done)
	}()
}

// expireAfter closes the parent's ends of the pipes once waitDelay has
// passed, if it is positive, as os/exec's Cmd.WaitDelay does: a copy that
// something the child started keeps going, or a reader of Stdin that never
// returns, then no longer holds up Wait. Only the first call counts.
func (std *stdio) expireAfter() {
	if std.waitDelay <= 0 {
		return
	}
	std.expiry.Do(func() { time.AfterFunc(std.waitDelay, std.expire) })
}

// expire closes the parent's ends of the pipes now, unless the copying
// has ended: what Cmd does once its WaitDelay has passed since its ctx
// ended. Only the first call counts.
func (std *stdio) expire() {
	std.expiring.Do(func() {
		select {
		case <-std.copied: // nothing to cut short
		default:
			close(std.expired) // first: the copying ends as the files close
			closeFiles(std.parentEnds)
		}
	})
}

// result is the error of the copying, for Wait once done is closed:
// exec.ErrWaitDelay if it was cut short.
func (std *stdio) result() error {
	if std.cutShort {
		return exec.ErrWaitDelay
	}
	return std.err
}

// abort closes every pipe set up so far, for a Fork or Exec that failed.
// A nil std has nothing to do.
func (std *stdio) abort() {
	if std == nil {
		return
	}
	closeFiles(std.childEnds)
	closeFiles(std.parentEnds)
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// fileOf returns v as a non-nil *os.File, or nil.
func fileOf(v any) *os.File {
	f, _ := v.(*os.File)
	return f
}

// unset reports whether v, a standard stream of Attr, leaves the child
// the server's own: nil, or a nil *os.File.
func unset(v any) bool {
	f, isFile := v.(*os.File)
	return v == nil || isFile && f == nil
}

// sameWriter reports whether a and b are the same writer, as os/exec judges
// it; values of a type that cannot be compared are different.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() { recover() }()
	return a == b
}
