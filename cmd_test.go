//go:build linux

package forkserver_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/forkserver/forkserver"
)

// Functions that CommandFunc runs.
var (
	// shoutStdin writes its standard input in capitals, its argument on
	// its standard error, and exits with the status its environment's
	// SHOUT_EXIT names.
	shoutStdin = forkserver.Register("shout-stdin", func(ctx context.Context, c *forkserver.Child) error {
		in, err := io.ReadAll(os.Stdin)
		if err != nil {
			return err
		}
		os.Stdout.Write(bytes.ToUpper(in))
		os.Stderr.Write(c.Arg())
		if code := os.Getenv("SHOUT_EXIT"); code != "" {
			var n int
			fmt.Sscan(code, &n)
			os.Exit(n)
		}
		return nil
	})
	// pwdFunc prints its working directory.
	pwdFunc = forkserver.Register("pwd", func(ctx context.Context, c *forkserver.Child) error {
		wd, err := os.Getwd()
		fmt.Print(wd)
		return err
	})
)

// TestCommandFunc checks that a registered function runs as a Cmd: its
// standard streams, Env, Dir, Output's captured stderr and ExitError, and
// CombinedOutput, with and without a pool.
func TestCommandFunc(t *testing.T) {
	eachPool(t, func(t *testing.T, srv *forkserver.Server) {
		cmd := srv.CommandFuncContext(forkserver.TestContext(t), shoutStdin, []byte("to stderr"))
		cmd.Stdin = strings.NewReader("hello")
		out, err := cmd.Output()
		if err != nil || string(out) != "HELLO" {
			t.Fatalf("Output = %q, %v; want HELLO, nil", out, err)
		}

		cmd = srv.CommandFunc(shoutStdin, []byte("failed"))
		cmd.Env = append(os.Environ(), "SHOUT_EXIT=1", "SHOUT_EXIT=3")
		_, err = cmd.Output()
		ee, ok := err.(*forkserver.ExitError)
		if !ok || ee.ExitCode() != 3 || string(ee.Stderr) != "failed" {
			t.Fatalf("Output's error = %v; want an *ExitError with status 3 and Stderr %q", err, "failed")
		}

		cmd = srv.CommandFunc(shoutStdin, []byte("!"))
		cmd.Stdin = strings.NewReader("both")
		if out, err := cmd.CombinedOutput(); err != nil || string(out) != "BOTH!" {
			t.Fatalf("CombinedOutput = %q, %v; want BOTH!, nil", out, err)
		}

		dir := t.TempDir()
		cmd = srv.CommandFunc(pwdFunc, nil)
		cmd.Dir = dir
		if out, err := cmd.Output(); err != nil || string(out) != dir {
			t.Fatalf("pwd in Dir = %q, %v; want %q", out, err, dir)
		}
	})
}

// TestCmdDirIsTheProgramsNow checks that an empty Dir is the program's
// working directory as Start is called, not the server's.
func TestCmdDirIsTheProgramsNow(t *testing.T) {
	srv := cmdServer(t)
	dir := t.TempDir()
	t.Chdir(dir)
	for _, cmd := range []*forkserver.Cmd{srv.Command("/bin/sh", "-c", "/bin/pwd -P"), srv.CommandFunc(pwdFunc, nil)} {
		out, err := cmd.Output()
		if err != nil || strings.TrimSpace(string(out)) != dir {
			t.Errorf("%v: %q, %v; want %q", cmd, out, err, dir)
		}
	}
}

// TestCmdAttr checks that Attr's extras reach the program and that Attr's
// fields that Cmd has itself make Start fail with an *Error.
func TestCmdAttr(t *testing.T) {
	srv := cmdServer(t)
	cmd := srv.Command("/bin/sh", "-c", "ps -o pgid= -p $$; echo $$")
	cmd.Attr = &forkserver.Attr{Setpgid: true}
	out, err := cmd.Output()
	if f := strings.Fields(string(out)); err != nil || len(f) != 2 || f[0] != f[1] {
		t.Errorf("Setpgid: %q, %v; want the shell leading its group", out, err)
	}
	cmd = srv.Command("/bin/true")
	cmd.Attr = &forkserver.Attr{Dir: "/"}
	var fe *forkserver.Error
	if err := cmd.Run(); !errors.As(err, &fe) || !strings.Contains(err.Error(), "Cmd's own fields") {
		t.Errorf("Attr.Dir: %v; want an *Error saying to set the Cmd's own fields", err)
	}
}
