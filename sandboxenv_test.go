//go:build linux

package forkserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/forkserver/forkserver"
)

// The sandbox's system call groups as an attacker would try them: each
// group denied ahead and per call, and this package's variables planted in
// the server's environment.

// groupReport is what groupProbe reports: for each group, the error of
// one call that group denies ("" if it worked), every thread's Seccomp
// mode, the session, the directory, an env var, the rlimit and the
// syscalls env var.
type groupReport struct {
	Errs      map[string]string
	Modes     []string
	Sid, Pid  int
	Dir       string
	Env       string
	SysEnv    string
	NoFile    uint64
	NoNewPriv uintptr
}

// errStr is err's text, or "" for nil.
func errStr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// probeGroups tries one call of each group and returns, by the group's
// name, its error ("" if it worked).
func probeGroups() map[string]string {
	errs := map[string]string{}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err == nil {
		syscall.Close(fd)
	}
	errs["network"] = errStr(err)
	pid, err := syscall.ForkExec("/bin/true", []string{"true"}, nil)
	if err == nil {
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
	}
	errs["exec"] = ""
	if err == syscall.EPERM {
		errs["exec"] = err.Error()
	}
	// kcmp(self, self, KCMP_FILE, 0, 0): 0 unless denied.
	self := uintptr(os.Getpid())
	_, _, e := syscall.Syscall6(312 /* kcmp amd64 */, self, self, 0, 0, 0, 0)
	if e != 0 {
		errs["trace"] = e.Error()
	} else {
		errs["trace"] = ""
	}
	// unshare(0) does nothing unless denied.
	_, _, e = syscall.RawSyscall(syscall.SYS_UNSHARE, 0, 0, 0)
	if e != 0 {
		errs["mount"] = e.Error()
	} else {
		errs["mount"] = ""
	}
	// bpf with a bad command: EINVAL unless denied.
	_, _, e = syscall.Syscall(321 /* bpf amd64 */, 1000, 0, 0)
	if e == syscall.EPERM {
		errs["kernel"] = e.Error()
	} else {
		errs["kernel"] = ""
	}
	return errs
}

// threadModes returns the Seccomp mode of every thread of this process.
func threadModes() []string {
	var modes []string
	tasks, _ := filepath.Glob("/proc/self/task/*/status")
	for _, st := range tasks {
		b, err := os.ReadFile(st)
		if err != nil {
			modes = append(modes, "?"+err.Error())
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "Seccomp:") {
				modes = append(modes, strings.TrimSpace(strings.TrimPrefix(line, "Seccomp:")))
			}
		}
	}
	return modes
}

// groupProbe sends its groupReport as JSON on its socket.
var groupProbe = forkserver.Register("sandboxenv-group-probe", func(ctx context.Context, c *forkserver.Child) error {
	var r groupReport
	r.Errs = probeGroups()
	r.Modes = threadModes()
	r.Pid = os.Getpid()
	sid, _, _ := syscall.RawSyscall(syscall.SYS_GETSID, 0, 0, 0)
	r.Sid = int(sid)
	r.Dir, _ = os.Getwd()
	r.Env = os.Getenv("SANDBOXENV")
	r.SysEnv = os.Getenv("FORKSERVER_SYSCALLS")
	var rl syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	r.NoFile = rl.Cur
	r.NoNewPriv, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, 39, 0, 0)
	return json.NewEncoder(c.Conn()).Encode(r)
})

// groupNames are the system call groups, each with its name.
var groupNames = []struct {
	name string
	g    forkserver.SyscallGroup
}{
	{"network", forkserver.SyscallsNetwork},
	{"exec", forkserver.SyscallsExec},
	{"trace", forkserver.SyscallsTrace},
	{"mount", forkserver.SyscallsMount},
	{"kernel", forkserver.SyscallsKernel},
}

// runProbe forks groupProbe on srv, once it holds its warm children, and
// returns its report and whether the Fork took a warm child.
func runProbe(t *testing.T, srv *forkserver.Server, attr *forkserver.Attr) (groupReport, bool) {
	t.Helper()
	if err := srv.WaitWarm(forkserver.TestContext(t)); err != nil {
		t.Fatal(err)
	}
	before := srv.Stats().WarmForks
	p := fork(t, srv, groupProbe, attr)
	var r groupReport
	if err := json.NewDecoder(p.Conn()).Decode(&r); err != nil {
		t.Fatalf("no report from the child: %v", err)
	}
	forkserver.WaitSuccess(t, p)
	return r, srv.Stats().WarmForks > before
}

// checkDenied checks that the report r shows exactly the groups of deny
// denied, and a filter on every thread.
func checkDenied(t *testing.T, r groupReport, deny forkserver.SyscallGroup) {
	t.Helper()
	const eperm = "operation not permitted"
	for _, g := range groupNames {
		want := ""
		if deny&g.g != 0 {
			want = eperm
		}
		if r.Errs[g.name] != want {
			t.Errorf("denying %#x: %s call: %q, want %q", deny, g.name, r.Errs[g.name], want)
		}
	}
	for i, m := range r.Modes {
		if m != "2" {
			t.Errorf("thread %d: Seccomp %s, want 2", i, m)
		}
	}
}

// TestAttackSyscallsEnvOverride checks that a FORKSERVER_SYSCALLS in
// Config.Env (or the program's environment), which names the groups a
// declared sandbox's warm children deny ahead, takes none of the
// sandbox's groups from the child of a warm Fork.
func TestAttackSyscallsEnvOverride(t *testing.T) {
	sb := &forkserver.Attr{NoNewPrivs: true, DenySyscalls: forkserver.SyscallsNetwork}
	srv := forkserver.StartWith(t, &forkserver.Config{
		Env:       append(os.Environ(), "FORKSERVER_SYSCALLS=0"),
		Sandboxes: []forkserver.Sandbox{{Attr: sb, Size: 1}},
	})
	r, warm := runProbe(t, srv, &forkserver.Attr{NoNewPrivs: true, DenySyscalls: forkserver.SyscallsNetwork, Socket: true})
	if !warm {
		t.Fatal("not warm")
	}
	checkDenied(t, r, forkserver.SyscallsNetwork)
}

// TestAttackSyscallsEachGroup declares a sandbox denying each group, with
// and without Paths, as the test's user and as nobody, and forks with
// per-call settings, checking that the child works, is warm, denies
// exactly what it asked for on every thread, and does not see the
// variable that named its sandbox's groups; and that a Fork that denies
// less is not denied the sandbox's group.
func TestAttackSyscallsEachGroup(t *testing.T) {
	f := newSandboxFiles(t)
	dir := f.ReadWrite
	sandboxUsers(t, func(t *testing.T, cred *forkserver.Credential) {
		for _, paths := range []bool{false, true} {
			for _, g := range groupNames {
				t.Run(fmt.Sprintf("%s-paths=%v", g.name, paths), func(t *testing.T) {
					sb := &forkserver.Attr{NoNewPrivs: true, DenySyscalls: g.g, Credential: cred}
					if paths {
						sb.NoNewPrivs = false
						sb.Paths = f.policy()
					}
					srv := forkserver.StartWith(t, &forkserver.Config{Sandboxes: []forkserver.Sandbox{{Attr: sb, Size: 1}}})
					for _, extra := range []forkserver.SyscallGroup{0, forkserver.SyscallsNetwork | forkserver.SyscallsKernel} {
						attr := *sb
						attr.DenySyscalls |= extra
						attr.Socket = true
						attr.Setsid = true
						attr.Pdeathsig = syscall.SIGKILL
						attr.ExtraEnv = []string{"SANDBOXENV=yes"}
						attr.Rlimits = []forkserver.Rlimit{{Resource: syscall.RLIMIT_NOFILE, Cur: 123, Max: 123}}
						if !paths {
							attr.Dir = dir
						}
						r, warm := runProbe(t, srv, &attr)
						if !warm {
							t.Errorf("extra %#x: not warm", extra)
						}
						checkDenied(t, r, attr.DenySyscalls)
						if r.Sid != r.Pid || r.Env != "yes" || r.NoFile != 123 || (!paths && r.Dir != dir) || r.SysEnv != "" || r.NoNewPriv != 1 {
							t.Errorf("extra %#x: per call not applied or env leaked: %+v", extra, r)
						}
					}
					// A Fork that denies less must not be denied the sandbox's group.
					attr := *sb
					attr.DenySyscalls = 0
					attr.Socket = true
					r, _ := runProbe(t, srv, &attr)
					checkDenied(t, r, 0)
				})
			}
		}
	})
}

// setSyscallsEnv, evaluated in the server, sets FORKSERVER_SYSCALLS to its
// argument there.
var setSyscallsEnv = forkserver.Register("sandboxenv-set-syscalls-env", func(ctx context.Context, c *forkserver.Child) error {
	return os.Setenv("FORKSERVER_SYSCALLS", string(c.Arg()))
})

// TestAttackSyscallsEnvEval checks the same of a FORKSERVER_SYSCALLS an
// Eval sets in the server's environment, which the children created after
// it inherit.
func TestAttackSyscallsEnvEval(t *testing.T) {
	sb := &forkserver.Attr{NoNewPrivs: true, DenySyscalls: forkserver.SyscallsNetwork}
	srv := forkserver.StartWith(t, &forkserver.Config{Sandboxes: []forkserver.Sandbox{{Attr: sb, Size: 1}}})
	if err := srv.Eval(forkserver.TestContext(t), setSyscallsEnv, []byte("0")); err != nil {
		t.Fatal(err)
	}
	r, warm := runProbe(t, srv, &forkserver.Attr{NoNewPrivs: true, DenySyscalls: forkserver.SyscallsNetwork, Socket: true})
	if !warm {
		t.Fatal("not warm")
	}
	checkDenied(t, r, forkserver.SyscallsNetwork)
}

// TestAttackSyscallsEnvPlainPool checks that a FORKSERVER_SYSCALLS in the
// server's environment makes a plain warm child deny nothing its Fork did
// not ask for.
func TestAttackSyscallsEnvPlainPool(t *testing.T) {
	srv := forkserver.StartWith(t, &forkserver.Config{
		Env:      append(os.Environ(), "FORKSERVER_SYSCALLS=1"),
		PoolSize: 1,
	})
	r, warm := runProbe(t, srv, &forkserver.Attr{Socket: true})
	if !warm {
		t.Fatal("not warm")
	}
	if r.Errs["network"] != "" {
		t.Errorf("a Fork that denies nothing: socket: %q", r.Errs["network"])
	}
}

// readOutside reads the file its argument names and sends the error, as
// JSON on its socket.
var readOutside = forkserver.Register("sandboxenv-read-outside", func(ctx context.Context, c *forkserver.Child) error {
	_, err := os.ReadFile(string(c.Arg()))
	return json.NewEncoder(c.Conn()).Encode(errStr(err))
})

// TestAttackLandlockEnvOverride checks that a FORKSERVER_LANDLOCK=entered
// in the server's environment, which tells a child that it entered its
// rulesets already, does not let a child with Paths read outside them.
func TestAttackLandlockEnvOverride(t *testing.T) {
	f := newSandboxFiles(t)
	srv := forkserver.StartWith(t, &forkserver.Config{Env: append(os.Environ(), "FORKSERVER_LANDLOCK=entered")})
	p, err := srv.Fork(forkserver.TestContext(t), readOutside, &forkserver.Attr{Paths: f.policy(), Socket: true, Arg: []byte(f.Outside)})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := json.NewDecoder(p.Conn()).Decode(&got); err != nil {
		t.Fatal(err)
	}
	forkserver.WaitSuccess(t, p)
	if got == "" {
		t.Errorf("a child under Paths read %s, outside its policy", f.Outside)
	}
}
