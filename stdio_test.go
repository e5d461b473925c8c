//go:build linux

package forkserver_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/forkserver/forkserver"
)

// Child functions of the standard stream tests.
var (
	// stdioUpper copies its standard input, in upper case, to its
	// standard output, and writes "note" to its standard error.
	stdioUpper = forkserver.Register("stdio-upper", func(ctx context.Context, c *forkserver.Child) error {
		in, err := io.ReadAll(os.Stdin)
		if err != nil {
			return err
		}
		if _, err := os.Stdout.Write(bytes.ToUpper(in)); err != nil {
			return err
		}
		_, err = os.Stderr.WriteString("note")
		return err
	})
	// stdioInterleave writes "a" to standard output, "b" to standard
	// error, then "c" to standard output.
	stdioInterleave = forkserver.Register("stdio-interleave", func(ctx context.Context, c *forkserver.Child) error {
		for _, w := range []struct {
			f *os.File
			s string
		}{{os.Stdout, "a"}, {os.Stderr, "b"}, {os.Stdout, "c"}} {
			if _, err := w.f.WriteString(w.s); err != nil {
				return err
			}
		}
		return nil
	})
	// stdioBig writes 1 MiB of 'x' to its standard output, far more than
	// a pipe holds, and returns.
	stdioBig = forkserver.Register("stdio-big", func(ctx context.Context, c *forkserver.Child) error {
		_, err := os.Stdout.Write(bytes.Repeat([]byte{'x'}, 1<<20))
		return err
	})
)

// TestStdioReaderWriters checks that a child reads an io.Reader given as
// Stdin and writes to io.Writers given as Stdout and Stderr.
func TestStdioReaderWriters(t *testing.T) { eachPool(t, checkStdioReaderWriters) }

func checkStdioReaderWriters(t *testing.T, srv *forkserver.Server) {
	var out, errOut bytes.Buffer
	p := fork(t, srv, stdioUpper, &forkserver.Attr{Stdin: strings.NewReader("hello"), Stdout: &out, Stderr: &errOut})
	forkserver.WaitSuccess(t, p)
	if out.String() != "HELLO" || errOut.String() != "note" {
		t.Errorf("stdout %q, stderr %q; want \"HELLO\", \"note\"", out.String(), errOut.String())
	}
}

// TestStdioExec checks that an external program reads a reader given as
// Stdin and writes to a writer given as Stdout.
func TestStdioExec(t *testing.T) {
	srv := start(t)
	var out bytes.Buffer
	p, err := srv.Exec(forkserver.TestContext(t), "/bin/cat", []string{"cat"}, &forkserver.Attr{Stdin: strings.NewReader("through cat"), Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	forkserver.WaitSuccess(t, p)
	if out.String() != "through cat" {
		t.Errorf("stdout %q, want %q", out.String(), "through cat")
	}
}

// TestStdioSameWriter checks that a writer given as both Stdout and Stderr
// gets what the child writes in the order it wrote it, one write at a time
// (the race detector reports concurrent writes to the buffer).
func TestStdioSameWriter(t *testing.T) { eachPool(t, checkStdioSameWriter) }

func checkStdioSameWriter(t *testing.T, srv *forkserver.Server) {
	var both bytes.Buffer
	p := fork(t, srv, stdioInterleave, &forkserver.Attr{Stdout: &both, Stderr: &both})
	forkserver.WaitSuccess(t, p)
	if both.String() != "abc" {
		t.Errorf("combined output %q, want \"abc\"", both.String())
	}
}

// TestStdioWaitAwaitsCopying checks that Wait and Done wait for the copying
// of output larger than a pipe holds.
func TestStdioWaitAwaitsCopying(t *testing.T) { eachPool(t, checkStdioWaitAwaitsCopying) }

func checkStdioWaitAwaitsCopying(t *testing.T, srv *forkserver.Server) {
	for _, how := range []string{"Wait", "Done"} {
		var out bytes.Buffer
		p := fork(t, srv, stdioBig, &forkserver.Attr{Stdout: &out})
		if how == "Wait" {
			forkserver.WaitSuccess(t, p)
		} else {
			select {
			case <-p.Done():
			case <-forkserver.TestContext(t).Done():
				t.Fatal("Done was not closed")
			}
		}
		if out.Len() != 1<<20 {
			t.Errorf("after %s: %d bytes copied, want %d", how, out.Len(), 1<<20)
		}
	}
}

type failingWriter struct{}

var errWriterFull = errors.New("writer full")

func (failingWriter) Write([]byte) (int, error) { return 0, errWriterFull }

// TestStdioCopyError checks that Wait reports an error the copying met,
// along with the exit.
func TestStdioCopyError(t *testing.T) {
	srv := start(t)
	p := fork(t, srv, stdioBig, &forkserver.Attr{Stdout: failingWriter{}, Stderr: io.Discard})
	exit, err := p.Wait()
	if !errors.Is(err, errWriterFull) || exit == nil {
		t.Fatalf("Wait: %v, %v; want an exit and %v", exit, err, errWriterFull)
	}
	if !strings.Contains(err.Error(), "standard output") {
		t.Errorf("the error %q does not say which stream", err)
	}
}

// endless is a reader that never ends and counts its reads.
type endless struct{ reads atomic.Int64 }

func (r *endless) Read(p []byte) (int, error) {
	r.reads.Add(1)
	clear(p)
	return len(p), nil
}

// TestStdioUnreadInput checks that a child that does not read its input,
// of which there is more than a pipe holds, is no error, and that the
// copying ends when the child does.
func TestStdioUnreadInput(t *testing.T) { eachPool(t, checkStdioUnreadInput) }

func checkStdioUnreadInput(t *testing.T, srv *forkserver.Server) {
	in := new(endless)
	p := fork(t, srv, returnNil, &forkserver.Attr{Stdin: in})
	exit, err := p.Wait()
	if err != nil || !exit.Success() {
		t.Fatalf("Wait: %v, %v", exit, err)
	}
	if in.reads.Load() == 0 {
		t.Error("the input was never read")
	}
}

// TestStdioForkFails checks that a Fork that fails after its pipes were
// made closes them and copies nothing.
func TestStdioForkFails(t *testing.T) { eachPool(t, checkStdioForkFails) }

func checkStdioForkFails(t *testing.T, srv *forkserver.Server) {
	before := forkserver.CountFds(t, os.Getpid())
	in := new(endless)
	var out bytes.Buffer
	_, err := srv.Fork(forkserver.TestContext(t), returnNil, &forkserver.Attr{Stdin: in, Stdout: &out, Stderr: &out, Dir: "/nonexistent/dir"})
	if err == nil {
		t.Fatal("Fork with a missing Dir succeeded")
	}
	if after := forkserver.CountFds(t, os.Getpid()); after != before {
		t.Errorf("%d descriptors open after the failed Fork, %d before", after, before)
	}
	if in.reads.Load() != 0 {
		t.Error("the input of a failed Fork was read")
	}
}

// TestStdioNoWait checks that the copying of a Process nobody waits for
// ends, and closes its pipes, with the child.
func TestStdioNoWait(t *testing.T) { eachPool(t, checkStdioNoWait) }

func checkStdioNoWait(t *testing.T, srv *forkserver.Server) {
	before := forkserver.CountFds(t, os.Getpid())
	var out bytes.Buffer
	p := fork(t, srv, stdioUpper, &forkserver.Attr{Stdin: strings.NewReader("x"), Stdout: &out, Stderr: &out})
	forkserver.WaitGone(t, p.Pid)
	forkserver.Eventually(t, "the pipes to be closed", func() bool { return forkserver.CountFds(t, os.Getpid()) == before })
}

// TestStdioFiles checks that *os.File streams, nil ones among them, still
// pass straight to the child.
func TestStdioFiles(t *testing.T) { eachPool(t, checkStdioFiles) }

func checkStdioFiles(t *testing.T, srv *forkserver.Server) {
	r, w := forkserver.TestPipe(t)
	var nilFile *os.File
	p := fork(t, srv, stdioInterleave, &forkserver.Attr{Stdin: nilFile, Stdout: w, Stderr: w})
	forkserver.WaitSuccess(t, p)
	w.Close()
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "abc" {
		t.Errorf("read %q, %v; want \"abc\"", got, err)
	}
}

// TestStdioThroughGrandchild checks that the copying ends, and Wait
// returns, when a child with its own connection to the server, whose
// children inherit its standard output by default, and its child are done.
func TestStdioThroughGrandchild(t *testing.T) {
	srv := start(t)
	var out bytes.Buffer
	p := fork(t, srv, forkGrandchild, &forkserver.Attr{Socket: true, Server: true, Stdout: &out})
	if _, err := io.ReadAll(p.Conn()); err != nil {
		t.Fatal(err)
	}
	forkserver.WaitSuccess(t, p)
}

// TestStdioWaitDelay: once WaitDelay has passed since the exit, Wait no
// longer waits for copying that something the child started keeps going,
// and says so with exec.ErrWaitDelay.
func TestStdioWaitDelay(t *testing.T) {
	srv := start(t)
	var out bytes.Buffer // not read: a copy cut short may still be writing
	p, err := srv.Exec(forkserver.TestContext(t), "/bin/sh", []string{"sh", "-c", "sleep 600 & echo started"}, &forkserver.Attr{
		Stdout: &out, Setpgid: true, WaitDelay: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(-p.Pid, syscall.SIGKILL) // the sleep, which holds the pipe
	exit, err := p.Wait()
	if !errors.Is(err, exec.ErrWaitDelay) || exit == nil || !exit.Success() {
		t.Errorf("Wait: %v, %v; want a successful exit and exec.ErrWaitDelay", exit, err)
	}
}

// TestStdioWaitDelayCancel: once WaitDelay has passed since the ctx
// ended, Wait no longer waits for a Stdin reader that never returns.
func TestStdioWaitDelayCancel(t *testing.T) {
	srv := start(t)
	ctx, cancel := context.WithCancel(forkserver.TestContext(t))
	defer cancel()
	ready, readyW := forkserver.TestPipe(t)
	stdin, stdinW := io.Pipe()
	defer stdinW.Close() // ends the copying goroutine, which Wait left behind
	p, err := srv.Fork(ctx, outputHangs, &forkserver.Attr{Files: []*os.File{readyW}, Stdin: stdin, WaitDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ready.Read(make([]byte, 1))
	cancel()
	if _, err := p.Wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait: %v, want context.Canceled", err)
	}
}
