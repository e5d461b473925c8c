//go:build linux

package forkserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"slices"
	"syscall"
	"testing"
	"unsafe"

	"github.com/forkserver/forkserver"
)

// initProbe is what package initialisation saw, in a child: see
// probeAtInit.
var initProbe = probeAtInit()

// outsideEnv names, in a server's environment, a file a child's path
// policy leaves out, for probeAtInit to try.
const outsideEnv = "FORKSERVER_TEST_OUTSIDE"

// layers are the layers of a sandbox as a child sees them.
type layers struct {
	Child       bool   // seen in a child
	ReadOutside string // the error reading the file outsideEnv names
	Uid, Gid    int
	NoNewPrivs  uintptr
	NetNS       string
	Socket      string // the error making an AF_INET socket
}

// probeAtInit looks at the layers a child runs under while the package
// initialises, if its server's environment names an outside file; in any
// other process it does nothing, so that the children of other tests and
// benchmarks do not pay for it (about 50 µs).
func probeAtInit() layers {
	if role := os.Getenv(forkserver.RoleEnv); role != "child" && role != "pooled" || os.Getenv(outsideEnv) == "" {
		return layers{}
	}
	return seeLayers()
}

func seeLayers() layers {
	l := layers{Child: true, Uid: os.Getuid(), Gid: os.Getgid()}
	errText := func(err error) string {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return errno.Error()
		}
		if err != nil {
			return err.Error()
		}
		return ""
	}
	_, err := os.ReadFile(os.Getenv(outsideEnv))
	l.ReadOutside = errText(err)
	l.NoNewPrivs, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, 39 /* PR_GET_NO_NEW_PRIVS */, 0, 0)
	l.NetNS, _ = os.Readlink("/proc/self/ns/net")
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err == nil {
		syscall.Close(fd)
	}
	l.Socket = errText(err)
	return l
}

// warmLayers reports the layers it saw at package initialisation and
// as it runs.
var warmLayers = forkserver.Register("warm-layers", func(ctx context.Context, c *forkserver.Child) error {
	return json.NewEncoder(c.Conn()).Encode([2]layers{initProbe, seeLayers()})
})

// TestWarmSandboxLayers checks that a warm child of a declared sandbox
// runs inside every layer of it from package initialisation on, and gets
// what is per call once assigned; and that a cold one with the same
// settings runs inside them when its function runs.
func TestWarmSandboxLayers(t *testing.T) {
	f := newSandboxFiles(t)
	hostNet, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	sandboxUsers(t, func(t *testing.T, cred *forkserver.Credential) {
		sb := &forkserver.Attr{Paths: f.policy(), Credential: cred, NoNewPrivs: true}
		if os.Geteuid() == 0 {
			sb.Namespaces = forkserver.NewNet | forkserver.NewIPC | forkserver.NewUTS
		}
		for _, warm := range []bool{true, false} {
			name := map[bool]string{true: "warm", false: "cold"}[warm]
			t.Run(name, func(t *testing.T) {
				cfg := &forkserver.Config{Env: append(os.Environ(), outsideEnv+"="+f.Outside), PoolSize: 1}
				if warm {
					cfg.Sandboxes = []forkserver.Sandbox{{Attr: sb, Size: 2}}
				}
				srv := forkserver.StartWith(t, cfg)
				if err := srv.WaitWarm(forkserver.TestContext(t)); err != nil {
					t.Fatal(err)
				}
				attr := *sb
				attr.Socket, attr.DenySyscalls = true, forkserver.SyscallsNetwork // per call
				p := fork(t, srv, warmLayers, &attr)
				var seen [2]layers
				if err := json.NewDecoder(p.Conn()).Decode(&seen); err != nil {
					t.Fatalf("no report from the child: %v", err)
				}
				forkserver.WaitSuccess(t, p)
				if got := srv.Stats().WarmForks; got != map[bool]uint64{true: 1, false: 0}[warm] {
					t.Errorf("%d warm forks", got)
				}
				atInit, running := seen[0], seen[1]
				wantUid := os.Getuid()
				if cred != nil {
					wantUid = int(cred.Uid)
				}
				for _, c := range []struct {
					when string
					l    layers
				}{{"running", running}, {"at initialisation", atInit}} {
					if !c.l.Child {
						t.Fatalf("%s: no report", c.when)
					}
					if c.l.ReadOutside != eacces {
						t.Errorf("%s: reading outside the policy: %q, want %q", c.when, c.l.ReadOutside, eacces)
					}
					if c.l.NoNewPrivs != 1 {
						t.Errorf("%s: no_new_privs %d", c.when, c.l.NoNewPrivs)
					}
					if sb.Namespaces != 0 && c.l.NetNS == hostNet {
						t.Errorf("%s: in the host's network namespace %s", c.when, hostNet)
					}
					if (warm || c.when == "running") && c.l.Uid != wantUid {
						t.Errorf("%s: uid %d, want %d", c.when, c.l.Uid, wantUid)
					}
				}
				if running.Socket != eperm || atInit.Socket == eperm {
					t.Errorf("DenySyscalls, per call: socket %q running, %q at initialisation", running.Socket, atInit.Socket)
				}
			})
		}
	})
}

// TestWarmSandboxConfined checks that a connection handed to a child
// under a path policy does not get a warm child of a declared sandbox
// wider than that policy, though it asks for that sandbox's settings.
func TestWarmSandboxConfined(t *testing.T) {
	f := newSandboxFiles(t)
	wide := &forkserver.Attr{Paths: &forkserver.PathPolicy{ReadWrite: []string{"/"}}} // what sandbox-fork-probe asks for
	srv := forkserver.StartWith(t, &forkserver.Config{Sandboxes: []forkserver.Sandbox{{Attr: wide, Size: 2}}})
	if err := srv.WaitWarm(forkserver.TestContext(t)); err != nil {
		t.Fatal(err)
	}
	got := forkProbe(t, srv, sandboxForkProbe, f, &forkserver.Attr{Paths: f.policy(), Server: true})
	if got["read outside"] != eacces {
		t.Errorf("a child forked through a confined connection read outside its policy: %q", got["read outside"])
	}
	if n := len(forkserver.WarmPids(srv, 1)); n != 2 {
		t.Errorf("the program holds %d warm children of the sandbox, want 2: the confined connection took one", n)
	}
	// The program itself takes them.
	got = forkProbe(t, srv, sandboxProbe, f, &forkserver.Attr{Paths: wide.Paths})
	if got["read outside"] != "" || srv.Stats().WarmForks != 1 {
		t.Errorf("the program's fork in the sandbox: read outside %q, %d warm forks", got["read outside"], srv.Stats().WarmForks)
	}
}

// TestWarmSandboxKilled checks that a warm child of a sandbox killed while
// it waits is never handed out, and is replaced.
func TestWarmSandboxKilled(t *testing.T) {
	f := newSandboxFiles(t)
	sb := &forkserver.Attr{Paths: f.policy()}
	srv := forkserver.StartWith(t, &forkserver.Config{Sandboxes: []forkserver.Sandbox{{Attr: sb, Size: 1}}})
	ctx := forkserver.TestContext(t)
	if err := srv.WaitWarm(ctx); err != nil {
		t.Fatal(err)
	}
	killed := forkserver.WarmPids(srv, 1)
	if len(killed) != 1 {
		t.Fatalf("warm children of the sandbox: %v", killed)
	}
	exited := pidExited(t, killed[0])
	syscall.Kill(killed[0], syscall.SIGKILL)
	exited()
	for i := range 2 { // the first as it comes, the second warm
		attr := *sb
		attr.Socket, attr.Arg = true, []byte{byte(i)}
		p := fork(t, srv, echoArg, &attr)
		forkserver.ExpectByte(t, p.Conn(), byte(i))
		forkserver.WaitSuccess(t, p)
		if p.Pid == killed[0] {
			t.Fatalf("fork %d: the killed child %d was handed out", i, p.Pid)
		}
		if err := srv.WaitWarm(ctx); err != nil {
			t.Fatal(err)
		}
		forkserver.Eventually(t, "a live replacement", func() bool {
			pids := forkserver.WarmPids(srv, 1)
			return len(pids) == 1 && !slices.Contains(killed, pids[0]) && forkserver.Alive(pids[0])
		})
	}
	if srv.Stats().WarmForks == 0 {
		t.Error("no fork took the replacement")
	}
}

// pidExited returns a function that waits until every thread of the
// process pid has exited, and its descriptors are closed: a thread group
// leader shows as a zombie while the others still run.
func pidExited(t *testing.T, pid int) func() {
	t.Helper()
	fd, _, errno := syscall.Syscall(434 /* pidfd_open */, uintptr(pid), 0, 0)
	if errno != 0 {
		t.Fatalf("pidfd_open %d: %v", pid, errno)
	}
	return func() {
		t.Helper()
		defer syscall.Close(int(fd))
		pfd := struct {
			fd              int32
			events, revents int16
		}{int32(fd), 1 /* POLLIN */, 0}
		ts := syscall.NsecToTimespec(int64(forkserver.HangBound))
		n, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		if errno != 0 || n != 1 {
			t.Fatalf("waiting for process %d to exit: %d, %v", pid, n, errno)
		}
	}
}

// TestWarmSandboxRefused checks that Start refuses a sandbox the server
// cannot create, with the error a Fork asking for it gets.
func TestWarmSandboxRefused(t *testing.T) {
	missing := &forkserver.Attr{Paths: &forkserver.PathPolicy{ReadOnly: []string{"/no/such/dir"}}}
	for _, c := range []struct {
		name string
		sb   forkserver.Sandbox
		want error
	}{
		{"missing path", forkserver.Sandbox{Attr: missing, Size: 1}, fs.ErrNotExist},
		{"chroot", forkserver.Sandbox{Attr: &forkserver.Attr{Chroot: "/"}, Size: 1}, errors.ErrUnsupported},
		{"user without privilege", forkserver.Sandbox{Attr: &forkserver.Attr{Credential: &forkserver.Credential{Uid: 4242, Gid: 4242}}, Size: 1}, fs.ErrPermission},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.want == fs.ErrPermission && os.Geteuid() == 0 {
				t.Skip("root may take any credential")
			}
			srv, err := forkserver.Start(&forkserver.Config{Sandboxes: []forkserver.Sandbox{c.sb}})
			if err == nil {
				srv.Close()
				t.Fatal("Start took it")
			}
			if !errors.Is(err, c.want) {
				t.Errorf("Start: %v, want an error matching %v", err, c.want)
			}
		})
	}
}

// syscallsProbe reports, as JSON on its socket, the errors of making an
// AF_INET socket and of creating a process, each "" if it worked.
var syscallsProbe = forkserver.Register("syscalls-probe", func(ctx context.Context, c *forkserver.Child) error {
	var got [2]string
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err == nil {
		syscall.Close(fd)
	} else {
		got[0] = err.Error()
	}
	pid, err := syscall.ForkExec("/bin/true", []string{"true"}, nil)
	if err == nil {
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
	} else {
		got[1] = err.Error()
	}
	return json.NewEncoder(c.Conn()).Encode(got)
})

// TestWarmSandboxSyscallsAhead checks that a declared sandbox's
// DenySyscalls is in force in its warm children before they are assigned,
// and that they serve only the Forks that deny at least as much: one that
// denies more gets the rest denied too, one that denies less starts cold.
func TestWarmSandboxSyscallsAhead(t *testing.T) {
	sb := &forkserver.Attr{NoNewPrivs: true, DenySyscalls: forkserver.SyscallsNetwork}
	srv := forkserver.StartWith(t, &forkserver.Config{Sandboxes: []forkserver.Sandbox{{Attr: sb, Size: 1}}})
	const eperm = "operation not permitted"
	for i, c := range []struct {
		deny             forkserver.SyscallGroup
		warm             bool
		socketErr, exErr string
	}{
		{forkserver.SyscallsNetwork, true, eperm, ""},
		{forkserver.SyscallsNetwork | forkserver.SyscallsExec, true, eperm, eperm},
		{0, false, "", ""},
		{forkserver.SyscallsExec, false, "", eperm},
	} {
		if err := srv.WaitWarm(forkserver.TestContext(t)); err != nil {
			t.Fatal(err)
		}
		before := srv.Stats().WarmForks
		p := fork(t, srv, syscallsProbe, &forkserver.Attr{NoNewPrivs: true, DenySyscalls: c.deny, Socket: true})
		var got [2]string
		if err := json.NewDecoder(p.Conn()).Decode(&got); err != nil {
			t.Fatalf("Fork %d: no report from the child: %v", i, err)
		}
		forkserver.WaitSuccess(t, p)
		if warm := srv.Stats().WarmForks > before; warm != c.warm {
			t.Errorf("Fork %d, denying %#x: warm %v, want %v", i, c.deny, warm, c.warm)
		}
		if got != [2]string{c.socketErr, c.exErr} {
			t.Errorf("Fork %d, denying %#x: making a socket and a process: %q, want %q", i, c.deny, got, [2]string{c.socketErr, c.exErr})
		}
	}
}
