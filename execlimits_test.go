//go:build linux

package forkserver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/forkserver/forkserver"
)

// execLimits are the limits the tests of an Exec with Rlimits give, and
// what `ulimit -n; ulimit -t` then prints.
var (
	execLimits = []forkserver.Rlimit{
		{Resource: syscall.RLIMIT_NOFILE, Cur: 37, Max: 37},
		{Resource: syscall.RLIMIT_CPU, Cur: 7, Max: 7},
	}
	execLimitsShown = "37\n7\n"
)

// execUlimit runs `ulimit -n; ulimit -t` in /bin/sh with attr and returns
// what it printed.
func execUlimit(t *testing.T, srv *forkserver.Server, attr *forkserver.Attr) string {
	t.Helper()
	r, w := forkserver.TestPipe(t)
	attr.Stdout = w
	p, err := srv.Exec(forkserver.TestContext(t), "/bin/sh", []string{"sh", "-c", "ulimit -n; ulimit -t"}, attr)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r)
	forkserver.WaitSuccess(t, p)
	return string(out)
}

// TestExecRlimits checks that an external program runs with Attr.Rlimits,
// as the server's user and as nobody, plainly and under Paths and
// DenySyscalls, through the trampoline; and that an Exec without them
// does not go through it.
func TestExecRlimits(t *testing.T) {
	srv := start(t)
	creds := []*forkserver.Credential{nil}
	if os.Geteuid() == 0 {
		creds = append(creds, &forkserver.Credential{Uid: 65534, Gid: 65534})
	}
	for _, cred := range creds {
		for _, sandboxed := range []bool{false, true} {
			name := fmt.Sprintf("credential %v, sandboxed %v", cred, sandboxed)
			attr := &forkserver.Attr{Credential: cred, Rlimits: execLimits, Setsid: true}
			if sandboxed {
				attr.Paths = &forkserver.PathPolicy{ReadOnly: []string{t.TempDir()}}
				attr.DenySyscalls = forkserver.SyscallsNetwork | forkserver.SyscallsTrace | forkserver.SyscallsKernel
			}
			before := forkserver.Trampolines(t, srv)
			if out := execUlimit(t, srv, attr); out != execLimitsShown {
				t.Errorf("%s: the program's limits are %q, want %q", name, out, execLimitsShown)
			}
			if n := forkserver.Trampolines(t, srv) - before; n != 1 {
				t.Errorf("%s: %d trampolines, want 1", name, n)
			}
			attr.Rlimits = nil
			before = forkserver.Trampolines(t, srv)
			if out := execUlimit(t, srv, attr); out == execLimitsShown {
				t.Errorf("%s: without Rlimits, the program's limits are %q", name, out)
			}
			if n := forkserver.Trampolines(t, srv) - before; n != 0 {
				t.Errorf("%s, no Rlimits: %d trampolines, want none", name, n)
			}
		}
	}
}

// TestExecRlimitsProcess checks that the program executed through the
// trampoline is the server's child with the pid Exec returned, whose
// signals and exit work as a plain Exec's.
func TestExecRlimitsProcess(t *testing.T) {
	srv := start(t)
	r, w := forkserver.TestPipe(t)
	p, err := srv.Exec(forkserver.TestContext(t), "/bin/sh", []string{"sh", "-c", "echo $$; exec sleep 60"}, &forkserver.Attr{Stdout: w, Rlimits: execLimits})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Fscan(r, &pid)
	if pid != p.Pid {
		t.Errorf("the program's pid is %d, Exec returned %d", pid, p.Pid)
	}
	forkserver.Eventually(t, "the program to execute sleep", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.Pid))
		return strings.TrimSpace(string(b)) == "sleep"
	})
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if exit := forkserver.Wait(t, p); !exit.Status.Signaled() || exit.Status.Signal() != syscall.SIGTERM {
		t.Errorf("the program: %s, want killed by SIGTERM", exit)
	}
}

// TestExecRlimitsErrors checks that a program that cannot be executed is
// Exec's error through the trampoline exactly as without it, and a limit
// that cannot be set is Exec's error too.
func TestExecRlimitsErrors(t *testing.T) {
	srv := start(t)
	ctx := forkserver.TestContext(t)
	for _, path := range []string{"/nonexistent/program", "/etc/hostname", t.TempDir()} {
		_, plain := srv.Exec(ctx, path, []string{"x"}, nil)
		before := forkserver.Trampolines(t, srv)
		_, limited := srv.Exec(ctx, path, []string{"x"}, &forkserver.Attr{Rlimits: execLimits})
		if plain == nil || limited == nil || plain.Error() != limited.Error() {
			t.Errorf("Exec of %s: %v with Rlimits, %v without; want the same error", path, limited, plain)
		}
		var want syscall.Errno
		if errors.As(plain, &want) && !errors.Is(limited, want) {
			t.Errorf("Exec of %s with Rlimits: %v does not match %v", path, limited, want)
		}
		if n := forkserver.Trampolines(t, srv) - before; n != 1 {
			t.Errorf("Exec of %s with Rlimits: %d trampolines, want 1", path, n)
		}
	}
	if os.Geteuid() == 0 {
		nobody := &forkserver.Credential{Uid: 65534, Gid: 65534}
		high := []forkserver.Rlimit{{Resource: syscall.RLIMIT_NOFILE, Cur: 1 << 30, Max: 1 << 30}}
		_, err := srv.Exec(ctx, "/bin/true", []string{"true"}, &forkserver.Attr{Credential: nobody, Rlimits: high})
		if !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "setrlimit(7)") {
			t.Errorf("Exec as nobody raising RLIMIT_NOFILE: %v, want setrlimit(7)'s EPERM", err)
		}
	}
}

// execNofile execs `ulimit -n` through its connection, with the limit
// its Arg gives, if any, and writes what it printed, or "refused", on
// its socket.
var execNofile = forkserver.Register("exec-nofile", func(ctx context.Context, c *forkserver.Child) error {
	defer c.Conn().Close()
	var attr forkserver.Attr
	if n := string(c.Arg()); n != "" {
		var v uint64
		fmt.Sscan(n, &v)
		attr.Rlimits = []forkserver.Rlimit{{Resource: syscall.RLIMIT_NOFILE, Cur: v, Max: v}}
	}
	attr.Stdout = c.Conn()
	p, err := c.Server().Exec(ctx, "/bin/sh", []string{"sh", "-c", "ulimit -n"}, &attr)
	if errors.Is(err, forkserver.ErrPermission) {
		_, err = c.Conn().Write([]byte("refused"))
		return err
	}
	if err != nil {
		return err
	}
	_, err = p.Wait()
	return err
})

// TestConfinedExecRlimits checks that a program executed through the
// connection of a child with Rlimits runs with them, or lower ones of its
// own, and may not ask for higher ones.
func TestConfinedExecRlimits(t *testing.T) {
	srv := start(t)
	for _, c := range []struct{ ask, want string }{
		{"", "64\n"},
		{"32", "32\n"},
		{"128", "refused"},
	} {
		p := fork(t, srv, execNofile, &forkserver.Attr{
			Socket: true, Server: true, Arg: []byte(c.ask),
			Rlimits: []forkserver.Rlimit{{Resource: syscall.RLIMIT_NOFILE, Cur: 64, Max: 64}},
		})
		got, err := io.ReadAll(p.Conn())
		if err != nil || string(got) != c.want {
			t.Errorf("program of a child limited to 64 descriptors asking for %q: %q, %v; want %q", c.ask, got, err, c.want)
		}
		forkserver.WaitSuccess(t, p)
	}
}
