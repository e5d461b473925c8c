//go:build linux

package forkserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/forkserver/forkserver"
)

// report is what privReport tells about the child it runs in.
type report struct {
	Uid, Gid, Pid int
	Groups        []int
	Dir           string
	Env           []string
	NoNewPrivs    bool
	NoFile        uint64
	Interfaces    []string
	ProcMounted   bool
	Pgid, Sid     int
	Err           string
}

var (
	privReport = forkserver.Register("priv-report", func(ctx context.Context, c *forkserver.Child) error {
		return json.NewEncoder(c.Conn()).Encode(describeSelf())
	})
	// privForkAs forks priv-report through its own connection with the
	// credential in its argument ("" for none) and relays the report, or
	// the error, to its socket.
	privForkAs = forkserver.Register("priv-fork-as", func(ctx context.Context, c *forkserver.Child) error {
		attr := &forkserver.Attr{Socket: true}
		if arg := string(c.Arg()); arg == "root" {
			attr.Credential = &forkserver.Credential{}
		} else if arg == "chroot" {
			attr.Chroot = "/tmp"
		} else if arg == "eval" {
			attr.Server, attr.ServerRights = true, forkserver.RightFork|forkserver.RightEval
		}
		p, err := c.Server().Fork(ctx, privReport, attr)
		if err != nil {
			return json.NewEncoder(c.Conn()).Encode(report{Err: err.Error()})
		}
		defer p.Conn().Close()
		_, err = io.Copy(c.Conn(), p.Conn())
		p.Wait()
		return err
	})
	// privGroupLeader starts a sleep in its own process group, reports
	// its pid and waits.
	privGroupLeader = forkserver.Register("priv-group-leader", func(ctx context.Context, c *forkserver.Child) error {
		cmd := exec.Command("sleep", "1000")
		if err := cmd.Start(); err != nil {
			return err
		}
		json.NewEncoder(c.Conn()).Encode(cmd.Process.Pid)
		return cmd.Wait()
	})
)

func describeSelf() report {
	var r report
	r.Uid, r.Gid, r.Pid = os.Getuid(), os.Getgid(), os.Getpid()
	r.Groups, _ = os.Getgroups()
	r.Dir, _ = os.Getwd()
	r.Env = os.Environ()
	status, _ := os.ReadFile("/proc/self/status")
	r.NoNewPrivs = strings.Contains(string(status), "NoNewPrivs:\t1")
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	r.NoFile = lim.Cur
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		r.Interfaces = append(r.Interfaces, i.Name)
	}
	_, err := os.Stat("/proc/self")
	r.ProcMounted = err == nil
	r.Pgid, _ = syscall.Getpgid(0)
	sid, _, _ := syscall.RawSyscall(syscall.SYS_GETSID, 0, 0, 0)
	r.Sid = int(sid)
	return r
}

func forkReport(t *testing.T, srv *forkserver.Server, attr *forkserver.Attr) (report, *forkserver.Exit) {
	t.Helper()
	attr.Socket = true
	p := fork(t, srv, privReport, attr)
	var r report
	if err := json.NewDecoder(p.Conn()).Decode(&r); err != nil {
		t.Fatalf("no report from the child: %v", err)
	}
	return r, forkserver.Wait(t, p)
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: credentials, chroot and namespaces are privileged")
	}
}

// TestCredential checks that a child runs with Attr.Credential's uid, gid and groups.
func TestCredential(t *testing.T) {
	needRoot(t)
	eachPool(t, func(t *testing.T, srv *forkserver.Server) {
		r, _ := forkReport(t, srv, &forkserver.Attr{
			Credential: &forkserver.Credential{Uid: 65534, Gid: 65533, Groups: []uint32{65532}},
		})
		if r.Uid != 65534 || r.Gid != 65533 || !slices.Equal(r.Groups, []int{65532}) {
			t.Errorf("child runs as uid %d gid %d groups %v", r.Uid, r.Gid, r.Groups)
		}
	})
}

// TestChrootDirEnv checks that a child runs in Attr.Chroot and Dir, with Env and then ExtraEnv, a key's last value winning.
func TestChrootDirEnv(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	if err := os.Mkdir(root+"/work", 0o755); err != nil {
		t.Fatal(err)
	}
	eachPool(t, func(t *testing.T, srv *forkserver.Server) {
		r, _ := forkReport(t, srv, &forkserver.Attr{
			Chroot: root, Dir: "/work", Env: []string{"A=1"}, ExtraEnv: []string{"B=2", "A=3"},
		})
		if r.Dir != "/work" || r.ProcMounted {
			t.Errorf("child in %q, /proc visible %v: not in the empty root", r.Dir, r.ProcMounted)
		}
		if !slices.Equal(r.Env, []string{"A=3", "B=2"}) {
			t.Errorf("child's environment %q", r.Env)
		}
	})
}

// TestLimits checks that a child runs with Attr.NoNewPrivs and Attr.Rlimits.
func TestLimits(t *testing.T) {
	eachPool(t, func(t *testing.T, srv *forkserver.Server) {
		r, _ := forkReport(t, srv, &forkserver.Attr{
			NoNewPrivs: true,
			Rlimits:    []forkserver.Rlimit{{Resource: syscall.RLIMIT_NOFILE, Cur: 32, Max: 64}},
		})
		if !r.NoNewPrivs || r.NoFile != 32 {
			t.Errorf("child: no_new_privs %v, RLIMIT_NOFILE %d", r.NoNewPrivs, r.NoFile)
		}
	})
}

// TestNamespaces checks that a child in new PID and network namespaces is pid 1 and sees only lo.
func TestNamespaces(t *testing.T) {
	needRoot(t)
	srv := forkserver.StartWith(t, &forkserver.Config{PoolSize: 1}) // namespaces bypass the pool
	r, exit := forkReport(t, srv, &forkserver.Attr{
		Namespaces: forkserver.NewPID | forkserver.NewNet | forkserver.NewUTS | forkserver.NewIPC | forkserver.NewMount,
	})
	if r.Pid != 1 || !slices.Equal(r.Interfaces, []string{"lo"}) {
		t.Errorf("child is pid %d with interfaces %v, want pid 1 and lo alone", r.Pid, r.Interfaces)
	}
	if !exit.Success() {
		t.Errorf("child: %s", exit)
	}
}

// TestUserNamespace checks that a child in a new user namespace is uid 0 there, as UidMappings map it.
func TestUserNamespace(t *testing.T) {
	srv := start(t)
	r, _ := forkReport(t, srv, &forkserver.Attr{
		Namespaces:  forkserver.NewUser,
		UidMappings: []forkserver.IDMap{{ContainerID: 0, HostID: uint32(os.Getuid()), Size: 1}},
		GidMappings: []forkserver.IDMap{{ContainerID: 0, HostID: uint32(os.Getgid()), Size: 1}},
	})
	if r.Uid != 0 {
		t.Errorf("child is uid %d in its user namespace, want 0", r.Uid)
	}
}

// TestSessionAndGroup checks that Setsid and Setpgid make the child a leader, and that SignalGroup reaches its group or fails without one.
func TestSessionAndGroup(t *testing.T) { eachPool(t, checkSessionAndGroup) }

func checkSessionAndGroup(t *testing.T, srv *forkserver.Server) {
	r, _ := forkReport(t, srv, &forkserver.Attr{Setsid: true})
	if r.Sid != r.Pid || r.Pgid != r.Pid {
		t.Errorf("Setsid: pid %d, session %d, group %d", r.Pid, r.Sid, r.Pgid)
	}
	r, _ = forkReport(t, srv, &forkserver.Attr{Setpgid: true})
	if r.Pgid != r.Pid || r.Sid == r.Pid {
		t.Errorf("Setpgid: pid %d, session %d, group %d", r.Pid, r.Sid, r.Pgid)
	}

	// SignalGroup reaches what the child started in its group.
	p := fork(t, srv, privGroupLeader, &forkserver.Attr{Socket: true, Setpgid: true})
	var sleeper int
	if err := json.NewDecoder(p.Conn()).Decode(&sleeper); err != nil {
		t.Fatal(err)
	}
	if err := p.SignalGroup(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if exit := forkserver.Wait(t, p); exit.Status.Signal() != syscall.SIGKILL {
		t.Errorf("group leader: %s", exit)
	}
	forkserver.WaitGone(t, sleeper)

	q := fork(t, srv, ignoreTerm, &forkserver.Attr{Socket: true})
	ready(t, q)
	if err := q.SignalGroup(syscall.SIGKILL); err == nil {
		t.Error("SignalGroup of a child that leads no group succeeded")
	}
}

// A child's connection confines what it forks to what the child has.
func TestConfinement(t *testing.T) {
	needRoot(t)
	srv := start(t)
	ask := func(arg string, attr *forkserver.Attr) report {
		t.Helper()
		attr.Socket, attr.Server, attr.Arg = true, true, []byte(arg)
		p := fork(t, srv, privForkAs, attr)
		var r report
		if err := json.NewDecoder(bufio.NewReader(p.Conn())).Decode(&r); err != nil {
			t.Fatalf("no report: %v", err)
		}
		forkserver.Wait(t, p)
		return r
	}
	nobody := &forkserver.Credential{Uid: 65534, Gid: 65534}
	if r := ask("", &forkserver.Attr{Credential: nobody, NoNewPrivs: true}); r.Err != "" || r.Uid != 65534 || !r.NoNewPrivs {
		t.Errorf("grandchild of a nobody child: uid %d, no_new_privs %v, %s; want uid 65534 inherited", r.Uid, r.NoNewPrivs, r.Err)
	}
	if r := ask("root", &forkserver.Attr{Credential: nobody}); !strings.Contains(r.Err, "not permitted") {
		t.Errorf("a nobody child asked for a root grandchild: %+v, want refused", r)
	}
	if r := ask("chroot", &forkserver.Attr{Credential: nobody}); !strings.Contains(r.Err, "not permitted") {
		t.Errorf("a nobody child asked for a chroot of its choosing: %+v, want refused", r)
	}
	if r := ask("eval", &forkserver.Attr{}); !strings.Contains(r.Err, "not permitted") {
		t.Errorf("a child granted RightEval beyond its own: %+v, want refused", r)
	}

	// The program holds every right, so all it can ask beyond them is a
	// bit that names none; its side refuses that before sending anything,
	// and the connection serves on. The server's own refusal of such a
	// request, sent raw, is TestHostileForkRequests' "unknown right for a
	// grandchild"; of rights beyond a child's, TestHostileRights'.
	_, err := srv.Fork(forkserver.TestContext(t), returnNil, &forkserver.Attr{Server: true, ServerRights: 1 << 7})
	if err == nil || !strings.Contains(err.Error(), "unknown Namespace or Rights bits") {
		t.Errorf("Fork granting an unknown right: %v, want it refused as unknown", err)
	}
	forkserver.Wait(t, fork(t, srv, returnNil, nil))
}

// TestExec checks that Exec gives a program its Stdout, Files, socket and ExtraEnv, applies NoNewPrivs, and fails with ENOENT for a missing program.
func TestExec(t *testing.T) {
	srv := start(t)
	r, w := forkserver.TestPipe(t)
	file, err := os.Open("/etc/hostname")
	if err != nil {
		t.Skip(err)
	}
	defer file.Close()
	p, err := srv.Exec(forkserver.TestContext(t), "/bin/sh", []string{"sh", "-c", `echo "$GREETING"; cat <&3 >/dev/null && echo file; exec >&4; echo socket; exit 3`},
		&forkserver.Attr{Stdout: w, Files: []*os.File{file}, Socket: true, ExtraEnv: []string{"GREETING=hello", "GREETING=hi"}, Setsid: true})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Conn().Close()
	out, _ := io.ReadAll(r)
	if string(out) != "hi\nfile\n" {
		t.Errorf("program wrote %q on stdout", out)
	}
	line, _ := bufio.NewReader(p.Conn()).ReadString('\n')
	if line != "socket\n" {
		t.Errorf("program wrote %q on its socket", line)
	}
	if exit := forkserver.Wait(t, p); exit.Status.ExitStatus() != 3 {
		t.Errorf("program: %s, want exit status 3", exit)
	}

	q, err := srv.Exec(forkserver.TestContext(t), "/bin/grep", []string{"grep", "-q", "NoNewPrivs:.1", "/proc/self/status"}, &forkserver.Attr{NoNewPrivs: true})
	if err != nil {
		t.Fatal(err)
	}
	if exit := forkserver.Wait(t, q); !exit.Success() {
		t.Errorf("Exec with NoNewPrivs: the program does not have it (%s)", exit)
	}
	_, err = srv.Exec(forkserver.TestContext(t), "/nonexistent", []string{"x"}, nil)
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("Exec of a missing program: %v, want ENOENT", err)
	}
}

var (
	// describeStdio reports where its descriptors 0 to 2 and its files
	// lead, and its environment, as one JSON object.
	describeStdio = forkserver.Register("describe-stdio", func(ctx context.Context, c *forkserver.Child) error {
		d := map[string]any{"env": os.Environ()}
		for fd := 0; fd <= 2; fd++ {
			d[fmt.Sprint(fd)], _ = os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		}
		for i, f := range c.Files() {
			d[fmt.Sprintf("file%d", i)], _ = os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
		}
		d["server"] = c.Server() != nil
		return json.NewEncoder(c.Conn()).Encode(d)
	})
	// relayGrandchild forks describe-stdio through its own connection,
	// with nothing in particular, and relays what it says.
	relayGrandchild = forkserver.Register("relay-grandchild", func(ctx context.Context, c *forkserver.Child) error {
		p, err := c.Server().Fork(ctx, describeStdio, &forkserver.Attr{Socket: true})
		if err != nil {
			return err
		}
		defer p.Conn().Close()
		_, err = io.Copy(c.Conn(), p.Conn())
		p.Wait()
		return err
	})
)

func decodeMap(t *testing.T, r io.Reader) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.NewDecoder(r).Decode(&d); err != nil {
		t.Fatalf("no description from the child: %v", err)
	}
	return d
}

// Every kind of descriptor at once reaches the child in its place, and
// the server keeps none of them.
func TestEveryDescriptorKind(t *testing.T) {
	eachPool(t, func(t *testing.T, srv *forkserver.Server) {
		file, err := os.Open("/etc/hostname")
		if err != nil {
			t.Skip(err)
		}
		defer file.Close()
		null, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer null.Close()
		attr := &forkserver.Attr{Socket: true, Server: true, Stdin: null, Files: []*os.File{file}}
		forkserver.Wait(t, fork(t, srv, returnNil, attr)) // warm up
		before := forkserver.CountFds(t, srv.Pid())
		for range 20 {
			p := fork(t, srv, describeStdio, attr)
			d := decodeMap(t, p.Conn())
			p.Conn().Close()
			forkserver.Wait(t, p)
			if d["0"] != os.DevNull || d["file0"] != "/etc/hostname" || d["server"] != true {
				t.Fatalf("child sees stdin %v, file %v, server %v", d["0"], d["file0"], d["server"])
			}
		}
		forkserver.Eventually(t, fmt.Sprintf("the server to have at most the %d descriptors it had", before),
			func() bool { return forkserver.CountFds(t, srv.Pid()) <= before })
	})
}

// An assignment larger than a socket's buffer still reaches a cold child.
func TestLargeAssignment(t *testing.T) {
	srv := start(t)
	big := make([]string, 5)
	for i := range big {
		big[i] = fmt.Sprintf("BIG%d=%s", i, strings.Repeat("x", 60<<10))
	}
	p := fork(t, srv, describeStdio, &forkserver.Attr{Socket: true, Arg: make([]byte, forkserver.MaxArg), ExtraEnv: big})
	d := decodeMap(t, p.Conn())
	if env, _ := d["env"].([]any); len(env) < len(big) {
		t.Errorf("child has %d environment entries", len(env))
	}
	forkserver.Wait(t, p)
	forkserver.Wait(t, fork(t, srv, returnNil, nil)) // the connection still serves
}

// What a child was given or not given, its children get or do not get.
func TestChildConnectionInherits(t *testing.T) {
	srv := start(t)
	r, w := forkserver.TestPipe(t)
	p := fork(t, srv, relayGrandchild, &forkserver.Attr{Socket: true, Server: true, Stdout: w, Env: []string{"ONLY=this"}})
	w.Close()
	d := decodeMap(t, p.Conn())
	forkserver.Wait(t, p)
	out, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", r.Fd()))
	if d["1"] != out {
		t.Errorf("grandchild's stdout is %v, want its parent's, %v", d["1"], out)
	}
	if env, _ := d["env"].([]any); len(env) != 1 || env[0] != "ONLY=this" {
		t.Errorf("grandchild's environment %v, want its parent's alone", env)
	}
}

// Bad arguments fail before anything is sent, and the connection serves on.
func TestBadArguments(t *testing.T) {
	srv := start(t)
	p := fork(t, srv, ignoreTerm, &forkserver.Attr{Socket: true})
	ready(t, p)
	if err := p.Signal(syscall.Signal(65)); err == nil {
		t.Error("Signal(65) succeeded")
	}
	if err := srv.KillAll(syscall.Signal(-1)); err == nil {
		t.Error("KillAll(-1) succeeded")
	}
	if _, err := srv.Exec(forkserver.TestContext(t), "/bin/true", []string{strings.Repeat("a", forkserver.MaxArg+1)}, nil); !errors.Is(err, forkserver.ErrArgTooLarge) {
		t.Errorf("Exec with a huge argument: %v", err)
	}
	if _, err := srv.Fork(forkserver.TestContext(t), returnNil, &forkserver.Attr{Setsid: true, Setpgid: true}); err == nil {
		t.Error("Fork with Setsid and Setpgid succeeded")
	}
	bad := &forkserver.Attr{Server: true, Namespaces: forkserver.NewUser, UidMappings: []forkserver.IDMap{{Size: 0}}}
	before := forkserver.CountFds(t, srv.Pid())
	for range 10 {
		if _, err := srv.Fork(forkserver.TestContext(t), returnNil, bad); err == nil {
			t.Fatal("Fork with an empty ID mapping succeeded")
		}
	}
	// The server closes a refused request's descriptors just after it
	// answers: wait for that, not for a leak.
	after := before
	if !forkserver.Await(func() bool { after = forkserver.CountFds(t, srv.Pid()); return after <= before }) {
		t.Errorf("failed Forks left the server with %d descriptors, had %d", after, before)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Errorf("the connection no longer serves: %v", err)
	}
	forkserver.Wait(t, p)
}

// TestBadFile checks that a closed *os.File in Attr.Files fails Fork and
// Exec with an error that names it and matches os.ErrClosed, not
// ErrConnLost, before anything is sent: the warm children held stay held
// and the next Fork takes one.
func TestBadFile(t *testing.T) {
	eachPool(t, func(t *testing.T, srv *forkserver.Server) {
		good, closed := forkserver.TestPipe(t)
		closed.Close()
		attr := &forkserver.Attr{Files: []*os.File{good, closed}}
		before := srv.Stats()
		_, ferr := srv.Fork(forkserver.TestContext(t), returnNil, attr)
		_, eerr := srv.Exec(forkserver.TestContext(t), "/bin/true", []string{"true"}, attr)
		for _, err := range []error{ferr, eerr} {
			if !errors.Is(err, os.ErrClosed) || errors.Is(err, forkserver.ErrConnLost) || !strings.Contains(fmt.Sprint(err), "Attr.Files[1]") {
				t.Errorf("a closed file in Files: %v; want an error naming Attr.Files[1], matching os.ErrClosed and not ErrConnLost", err)
			}
		}
		if after := srv.Stats(); after.Warm != before.Warm {
			t.Errorf("warm children held: %d before the bad Forks, %d after", before.Warm, after.Warm)
		}
		forkserver.WaitSuccess(t, fork(t, srv, returnNil, nil))
		if after := srv.Stats(); after.WarmForks != before.WarmForks+uint64(min(before.Warm, 1)) {
			t.Errorf("the Fork after the bad ones: %d warm Forks, want %d", after.WarmForks-before.WarmForks, min(before.Warm, 1))
		}
	})
}

// TestBadEnv checks that Fork and Exec refuse an Env or ExtraEnv entry
// with a NUL byte or without a name and '=', naming it, where Fork used to
// drop it silently in the child.
func TestBadEnv(t *testing.T) {
	srv := start(t)
	for _, kv := range []string{"A=b\x00c", "NOEQUALS", "", "=value"} {
		for _, c := range []struct {
			field string
			attr  *forkserver.Attr
		}{
			{"Env", &forkserver.Attr{Env: []string{"OK=1", kv}}},
			{"ExtraEnv", &forkserver.Attr{ExtraEnv: []string{"OK=1", kv}}},
		} {
			_, ferr := srv.Fork(forkserver.TestContext(t), returnNil, c.attr)
			_, eerr := srv.Exec(forkserver.TestContext(t), "/bin/true", []string{"true"}, c.attr)
			for _, err := range []error{ferr, eerr} {
				if want := fmt.Sprintf("Attr.%s[1]: environment entry %q ", c.field, kv); err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s entry %q: %v; want an error containing %s", c.field, kv, err, want)
				}
			}
		}
	}
}
