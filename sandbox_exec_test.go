//go:build linux

package forkserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/forkserver/forkserver"
)

// sandboxExecProbe is the FORKSERVER_TEST_PROGRAM value on which the test
// binary, executed as an external program, runs the probes on the files
// FORKSERVER_TEST_PROBE gives and writes what they got on its standard
// output.
const sandboxExecProbe = "sandbox-exec-probe"

func sandboxExecProbeProgram() {
	var f sandboxFiles
	if err := json.Unmarshal([]byte(os.Getenv("FORKSERVER_TEST_PROBE")), &f); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	json.NewEncoder(os.Stdout).Encode(probe(f))
	os.Exit(0)
}

// probeProgram copies the test binary into a directory of its own that
// every user may read, outside f's paths, and returns its path there.
func probeProgram(t *testing.T) string {
	t.Helper()
	var b []byte
	dir, err := os.MkdirTemp("", "forkserver-probe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile(helperExecutable())
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "probe")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}

// execProbe runs the probes in the test binary executed at exe with attr.
func execProbe(t *testing.T, srv *forkserver.Server, exe string, f sandboxFiles, attr *forkserver.Attr) probes {
	t.Helper()
	arg, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	r, w := forkserver.TestPipe(t)
	attr.Stdout = w
	attr.ExtraEnv = []string{"FORKSERVER_TEST_PROGRAM=" + sandboxExecProbe, "FORKSERVER_TEST_PROBE=" + string(arg)}
	p, err := srv.Exec(forkserver.TestContext(t), exe, []string{"probe"}, attr)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	var res probes
	if err := json.NewDecoder(r).Decode(&res); err != nil {
		t.Fatalf("no report from the program: %v", err)
	}
	forkserver.WaitSuccess(t, p)
	return res
}

// TestSandboxExecProbes checks what an external program can do with no
// policy, a path policy, groups of system calls denied, and both, as the
// test's user and as nobody: the program, which is executed from a
// directory outside its paths, starts all the same.
func TestSandboxExecProbes(t *testing.T) {
	f := newSandboxFiles(t)
	exe := probeProgram(t)
	groups := allGroups &^ forkserver.SyscallsExec
	sandboxUsers(t, func(t *testing.T, cred *forkserver.Credential) {
		srv := start(t)
		for _, c := range []struct {
			name   string
			paths  *forkserver.PathPolicy
			groups forkserver.SyscallGroup
		}{
			{"none", nil, 0},
			{"paths", f.policy(), 0},
			{"groups", nil, groups},
			{"all", f.policy(), groups},
		} {
			t.Run(c.name, func(t *testing.T) {
				got := execProbe(t, srv, exe, f, &forkserver.Attr{Credential: cred, Paths: c.paths, DenySyscalls: c.groups})
				checkProbes(t, got, deniedBy(c.paths != nil, c.groups))
			})
		}
	})
}

// TestSandboxExecShell checks that a sandboxed shell is denied a file
// outside its paths and executing another program, and that its exit
// status and the errors of executing it are reported as for a plain Exec.
func TestSandboxExecShell(t *testing.T) {
	f := newSandboxFiles(t)
	sandboxUsers(t, func(t *testing.T, cred *forkserver.Credential) {
		srv := start(t)
		ctx := forkserver.TestContext(t)
		attr := func(stderr io.Writer) *forkserver.Attr {
			return &forkserver.Attr{Credential: cred, Paths: f.policy(), DenySyscalls: forkserver.SyscallsNetwork, NoNewPrivs: true, Stdout: io.Discard, Stderr: stderr}
		}
		for _, c := range []struct {
			script string
			status int
			stderr string
		}{
			{"read -r line < " + f.Inside + `; [ "$line" = inside ] && exit 3`, 3, ""},
			{"read -r line < " + f.Outside, 2, "Permission denied"},
			{"/bin/true", 126, "Permission denied"},
			{": > " + f.ReadWrite + "/new-$$", 0, ""},
		} {
			var stderr strings.Builder
			p, err := srv.Exec(ctx, "/bin/sh", []string{"sh", "-c", c.script}, attr(&stderr))
			if err != nil {
				t.Fatal(err)
			}
			if exit := forkserver.Wait(t, p); exit.ExitCode() != c.status || !strings.Contains(stderr.String(), c.stderr) {
				t.Errorf("%s: %s, stderr %q; want exit status %d, stderr with %q", c.script, exit, stderr.String(), c.status, c.stderr)
			}
		}
		for _, c := range []struct {
			path string
			want error
		}{{"/nonexistent/program", syscall.ENOENT}, {"/usr/bin/env", nil}, {f.Inside, syscall.EACCES}} {
			p, err := srv.Exec(ctx, c.path, []string{"x"}, attr(nil))
			if err == nil {
				forkserver.Wait(t, p)
			}
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("Exec %s: %v, want %v", c.path, err, c.want)
			}
		}
	})
}

// sandboxExecThrough executes the test binary as the probe program
// through its connection, with no settings of its own, and relays what
// the probes got; or, if that fails, "exec: " and the error, and whether
// it matches ErrPermission.
var sandboxExecThrough = forkserver.Register("sandbox-exec-through", func(ctx context.Context, c *forkserver.Child) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	p, err := c.Server().Exec(ctx, exe, []string{"probe"}, &forkserver.Attr{
		Stdout:   w,
		ExtraEnv: []string{"FORKSERVER_TEST_PROGRAM=" + sandboxExecProbe, "FORKSERVER_TEST_PROBE=" + string(c.Arg())},
	})
	w.Close()
	if err != nil {
		_, werr := fmt.Fprintf(c.Conn(), "exec: %v %v", errors.Is(err, forkserver.ErrPermission), err)
		return werr
	}
	if _, err := io.Copy(c.Conn(), r); err != nil {
		return err
	}
	_, err = p.Wait()
	return err
})

// TestSandboxExecConfined checks that a connection handed to a child
// under a policy executes a program within that policy: the child's path
// layers and groups carry over; and that one under SyscallsExec may not.
func TestSandboxExecConfined(t *testing.T) {
	f := newSandboxFiles(t)
	srv := start(t)
	groups := forkserver.SyscallsNetwork | forkserver.SyscallsTrace
	got := forkProbe(t, srv, sandboxExecThrough, f, &forkserver.Attr{Server: true, Paths: f.policy(), DenySyscalls: groups})
	checkProbes(t, got, deniedBy(true, groups))

	arg, _ := json.Marshal(f)
	p := fork(t, srv, sandboxExecThrough, &forkserver.Attr{Server: true, Socket: true, Arg: arg, DenySyscalls: forkserver.SyscallsExec})
	out, _ := io.ReadAll(p.Conn())
	if !strings.HasPrefix(string(out), "exec: true ") {
		t.Errorf("Exec through a connection under SyscallsExec: %q, want ErrPermission", out)
	}
	forkserver.WaitSuccess(t, p)
}

// TestSandboxExecRefused checks that Exec refuses what a sandboxed
// program cannot be given, before anything is sent.
func TestSandboxExecRefused(t *testing.T) {
	srv := start(t)
	for _, attr := range []*forkserver.Attr{
		{DenySyscalls: forkserver.SyscallsExec},
		{DenySyscalls: forkserver.SyscallsNetwork, Pdeathsig: syscall.SIGKILL},
		{DenySyscalls: forkserver.SyscallsMount, Namespaces: forkserver.NewNet},
	} {
		if p, err := srv.Exec(forkserver.TestContext(t), "/bin/true", []string{"true"}, attr); err == nil {
			forkserver.Wait(t, p)
			t.Errorf("Exec with %+v succeeded", attr)
		}
	}
}
