//go:build linux

package forkserver_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/forkserver/forkserver"
)

var (
	// outputFails writes "partial" to its standard output and "why" to its
	// standard error, then fails.
	outputFails = forkserver.Register("output-fails", func(ctx context.Context, c *forkserver.Child) error {
		os.Stdout.WriteString("partial")
		os.Stderr.WriteString("why\n")
		return errors.New("boom")
	})
	// outputHangs writes a byte to its first file, then reads its
	// standard input to the end.
	outputHangs = forkserver.Register("output-hangs", func(ctx context.Context, c *forkserver.Child) error {
		if _, err := c.Files()[0].Write([]byte{1}); err != nil {
			return err
		}
		_, err := io.Copy(io.Discard, os.Stdin)
		return err
	})
)

// TestOutput checks that Output returns a child's standard output and, when
// the child fails, an *ExitError with its status and its standard error,
// kept only when the caller did not take Stderr.
func TestOutput(t *testing.T) { eachPool(t, checkOutput) }

func checkOutput(t *testing.T, srv *forkserver.Server) {
	ctx := forkserver.TestContext(t)
	out, err := srv.Output(ctx, stdioUpper, &forkserver.Attr{Stdin: strings.NewReader("abc")})
	if err != nil || string(out) != "ABC" {
		t.Errorf("Output: %q, %v; want \"ABC\"", out, err)
	}

	out, err = srv.Output(ctx, outputFails, nil)
	var exitErr *forkserver.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("Output of a failing child: %q, %v; want an *ExitError", out, err)
	}
	if string(out) != "partial" || exitErr.Status.ExitStatus() != 1 || exitErr.Pid == 0 ||
		!strings.HasPrefix(string(exitErr.Stderr), "why\n") || !strings.Contains(string(exitErr.Stderr), "boom") {
		t.Errorf("Output of a failing child: %q, status %d, pid %d, stderr %q", out, exitErr.Status.ExitStatus(), exitErr.Pid, exitErr.Stderr)
	}
	if want := "forkserver: fork output-fails: exit status 1"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}

	// Standard error the caller takes is not kept.
	var stderr strings.Builder
	_, err = srv.Output(ctx, outputFails, &forkserver.Attr{Stderr: &stderr})
	if !errors.As(err, &exitErr) || exitErr.Stderr != nil || !strings.HasPrefix(stderr.String(), "why\n") {
		t.Errorf("Output with Stderr set: %v, ExitError.Stderr %q, Stderr got %q", err, exitErr.Stderr, stderr.String())
	}
}

// TestOutputRefuses checks that Output refuses an Attr with a Stdout of its
// own or a Socket.
func TestOutputRefuses(t *testing.T) {
	srv := start(t)
	ctx := forkserver.TestContext(t)
	for _, attr := range []*forkserver.Attr{{Stdout: io.Discard}, {Stdout: os.Stdout}, {Socket: true}} {
		if _, err := srv.Output(ctx, returnNil, attr); err == nil || !strings.Contains(err.Error(), "fork return-nil: Output captures Stdout") {
			t.Errorf("Output with %+v: %v; want a refusal", attr, err)
		}
	}
}

// TestExecOutput checks that ExecOutput returns a program's standard output
// and, when it fails, an *ExitError with its status and standard error.
func TestExecOutput(t *testing.T) {
	srv := start(t)
	ctx := forkserver.TestContext(t)
	out, err := srv.ExecOutput(ctx, "echo", []string{"echo", "hi"}, nil)
	if err != nil || string(out) != "hi\n" {
		t.Errorf("ExecOutput echo: %q, %v", out, err)
	}
	out, err = srv.ExecOutput(ctx, "sh", []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, nil)
	var exitErr *forkserver.ExitError
	if !errors.As(err, &exitErr) || exitErr.Status.ExitStatus() != 3 || string(exitErr.Stderr) != "err\n" || string(out) != "out\n" {
		t.Errorf("ExecOutput sh: %q, %v; want \"out\\n\" and an *ExitError with status 3 and stderr \"err\\n\"", out, err)
	}
}

// TestOutputCancel checks that a child still running when Output's ctx
// ends is killed, and that the error says both.
func TestOutputCancel(t *testing.T) { eachPool(t, checkOutputCancel) }

func checkOutputCancel(t *testing.T, srv *forkserver.Server) {
	ctx, cancel := context.WithCancel(forkserver.TestContext(t))
	defer cancel()
	ready, readyW := forkserver.TestPipe(t)
	stdin, _ := forkserver.TestPipe(t) // its write end stays open: the child reads on until it is killed
	go func() {
		ready.Read(make([]byte, 1))
		cancel()
	}()
	_, err := srv.Output(ctx, outputHangs, &forkserver.Attr{Files: []*os.File{readyW}, Stdin: stdin})
	var exitErr *forkserver.ExitError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &exitErr) || exitErr.Status.Signal() != syscall.SIGKILL {
		t.Errorf("Output cancelled: %v; want context.Canceled and an *ExitError for SIGKILL", err)
	}
}
