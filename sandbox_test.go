//go:build linux

package forkserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/forkserver/forkserver"
)

// sandboxFiles are the paths a probe tries, laid out so that only a path
// policy, never the files' permissions, stops a child running as nobody.
type sandboxFiles struct {
	ReadOnly  string // a directory anyone may write to, given read-only
	Inside    string // a file in ReadOnly
	ReadWrite string // a directory anyone may write to, given read-write
	Outside   string // a file anyone may read, in neither
}

func newSandboxFiles(t *testing.T) sandboxFiles {
	t.Helper()
	top, err := os.MkdirTemp("", "forkserver-sandbox-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	f := sandboxFiles{
		ReadOnly:  filepath.Join(top, "ro"),
		ReadWrite: filepath.Join(top, "rw"),
		Outside:   filepath.Join(top, "outside"),
	}
	f.Inside = filepath.Join(f.ReadOnly, "inside")
	for _, step := range []error{
		os.Chmod(top, 0o755),
		os.Mkdir(f.ReadOnly, 0o777),
		os.Mkdir(f.ReadWrite, 0o777),
		os.Chmod(f.ReadOnly, 0o777), // past the umask
		os.Chmod(f.ReadWrite, 0o777),
		os.WriteFile(f.Inside, []byte("inside"), 0o644),
		os.WriteFile(f.Outside, []byte("outside"), 0o644),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	return f
}

// policy lets a child read ReadOnly and write ReadWrite. It also lets it
// read /proc, where the race detector's runtime, which a policy that
// hides its settings in /proc/self/environ slows down by a second at
// exit, finds them.
func (f sandboxFiles) policy() *forkserver.PathPolicy {
	return &forkserver.PathPolicy{ReadOnly: []string{f.ReadOnly, "/proc"}, ReadWrite: []string{f.ReadWrite}}
}

// probes is what a child tried, each with the error it got ("" for none).
type probes map[string]string

// probe runs every probe in the child it runs in.
func probe(f sandboxFiles) probes {
	res := probes{}
	note := func(name string, err error) {
		res[name] = ""
		if err != nil {
			var errno syscall.Errno
			if errors.As(err, &errno) {
				res[name] = errno.Error()
			} else {
				res[name] = err.Error()
			}
		}
	}
	_, err := os.ReadFile(f.Inside)
	note("read inside", err)
	_, err = os.ReadFile(f.Outside)
	note("read outside", err)
	name := fmt.Sprintf("new-%d", os.Getpid())
	note("write read-only", os.WriteFile(filepath.Join(f.ReadOnly, name), nil, 0o644))
	note("write read-write", os.WriteFile(filepath.Join(f.ReadWrite, name), nil, 0o644))
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err == nil {
		syscall.Close(fd)
	}
	note("socket inet", err)
	fd, err = syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err == nil {
		syscall.Close(fd)
	}
	note("socket unix", err)
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err == nil {
		syscall.Close(pair[0])
		syscall.Close(pair[1])
	}
	note("socketpair unix", err)
	cmd := exec.Command("/bin/true")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr // not /dev/null, which no policy here lists
	note("exec", cmd.Run())
	// Calls whose failure, if allowed, is harmless and tells them apart
	// from a denial.
	_, _, errno := syscall.Syscall6(sysProcessVMReadv[runtime.GOARCH], uintptr(os.Getpid()), 0, 0, 0, 0, 0) // no vectors
	note("process_vm_readv", errnoErr(errno))
	note("unshare none", syscall.Unshare(0))
	_, _, errno = syscall.Syscall6(syscall.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0), ^uintptr(0), 0, 0)
	note("perf_event_open", errnoErr(errno))
	return res
}

// sysProcessVMReadv numbers process_vm_readv where the filter is written.
var sysProcessVMReadv = map[string]uintptr{"amd64": 310, "arm64": 270}

func errnoErr(errno syscall.Errno) error {
	if errno == 0 {
		return nil
	}
	return errno
}

var (
	sandboxProbe = forkserver.Register("sandbox-probe", func(ctx context.Context, c *forkserver.Child) error {
		var f sandboxFiles
		if err := json.Unmarshal(c.Arg(), &f); err != nil {
			return err
		}
		return json.NewEncoder(c.Conn()).Encode(probe(f))
	})
	// sandboxForkProbe forks sandbox-probe through its own connection,
	// asking it to read anything, and relays its report.
	sandboxForkProbe = forkserver.Register("sandbox-fork-probe", func(ctx context.Context, c *forkserver.Child) error {
		p, err := c.Server().Fork(ctx, sandboxProbe, &forkserver.Attr{
			Socket: true, Arg: c.Arg(), Paths: &forkserver.PathPolicy{ReadWrite: []string{"/"}},
		})
		if err != nil {
			return err
		}
		defer p.Conn().Close()
		var res probes
		if err := json.NewDecoder(p.Conn()).Decode(&res); err != nil {
			return err
		}
		if _, err := p.Wait(); err != nil {
			return err
		}
		return json.NewEncoder(c.Conn()).Encode(res)
	})
	// sandboxChurn allocates, collects and runs timers on many goroutines
	// for a second, then writes "ok" if it still cannot read /etc/passwd
	// nor make an AF_INET socket.
	sandboxChurn = forkserver.Register("sandbox-churn", func(ctx context.Context, c *forkserver.Child) error {
		end := time.Now().Add(time.Second)
		var wg sync.WaitGroup
		var keep [8][][]byte
		for i := range keep {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(time.Millisecond)
				defer tick.Stop()
				for time.Now().Before(end) {
					keep[i] = append(keep[i], make([]byte, 64<<10))
					if len(keep[i]) > 64 {
						keep[i] = nil
					}
					select { // both kinds of timer the runtime keeps: periodic and one-shot
					case <-tick.C:
					case <-time.After(time.Millisecond):
					}
				}
			}()
		}
		for time.Now().Before(end) {
			runtime.GC()
			time.Sleep(10 * time.Millisecond) // pacing the collections, not synchronising
		}
		wg.Wait()
		// Still under the policies after all that.
		answer := "ok"
		if _, err := os.ReadFile("/etc/passwd"); !errors.Is(err, syscall.EACCES) {
			answer = fmt.Sprintf("read /etc/passwd: %v", err)
		}
		if fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0); err != syscall.EPERM {
			syscall.Close(fd)
			answer = fmt.Sprintf("socket: %v", err)
		}
		_, err := c.Conn().Write([]byte(answer))
		return err
	})
)

// sandboxUsers are the users a test runs its children as: the test's own,
// and nobody too when the test runs as root.
func sandboxUsers(t *testing.T, test func(t *testing.T, cred *forkserver.Credential)) {
	t.Run("self", func(t *testing.T) { test(t, nil) })
	t.Run("nobody", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("only root can run a child as nobody")
		}
		test(t, &forkserver.Credential{Uid: 65534, Gid: 65534})
	})
}

func forkProbe(t *testing.T, srv *forkserver.Server, fn forkserver.Func, f sandboxFiles, attr *forkserver.Attr) probes {
	t.Helper()
	arg, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	attr.Socket, attr.Arg = true, arg
	p := fork(t, srv, fn, attr)
	var res probes
	if err := json.NewDecoder(p.Conn()).Decode(&res); err != nil {
		t.Fatalf("no report from the child: %v", err)
	}
	forkserver.WaitSuccess(t, p)
	return res
}

// checkProbes fails t for every probe whose error is not the one want
// gives, where want leaves out those that must succeed and says "not E"
// of those that may fail, but not with E.
func checkProbes(t *testing.T, got probes, want probes) {
	t.Helper()
	for name, err := range got {
		if not, ok := strings.CutPrefix(want[name], "not "); ok {
			if err == not {
				t.Errorf("%s: error %q", name, err)
			}
		} else if err != want[name] {
			t.Errorf("%s: error %q, want %q", name, err, want[name])
		}
	}
	if len(got) == 0 {
		t.Error("the child ran no probes")
	}
}

const (
	eacces = "permission denied"
	eperm  = "operation not permitted"
)

var allGroups = forkserver.SyscallsNetwork | forkserver.SyscallsExec | forkserver.SyscallsTrace | forkserver.SyscallsMount | forkserver.SyscallsKernel

// deniedBy are the probes each policy stops, with the error they get.
func deniedBy(paths bool, groups forkserver.SyscallGroup) probes {
	want := probes{"perf_event_open": "not " + eperm} // allowed, it fails for its bad arguments, or for want of privilege
	if paths {
		want["read outside"] = eacces
		want["write read-only"] = eacces
		want["exec"] = eacces // /bin/true is in no listed path
	}
	for _, g := range []struct {
		group  forkserver.SyscallGroup
		probes []string
	}{
		{forkserver.SyscallsNetwork, []string{"socket inet", "socket unix"}},
		{forkserver.SyscallsExec, []string{"exec"}}, // seccomp runs before Landlock's check
		{forkserver.SyscallsTrace, []string{"process_vm_readv"}},
		{forkserver.SyscallsMount, []string{"unshare none"}},
		{forkserver.SyscallsKernel, []string{"perf_event_open"}},
	} {
		if groups&g.group != 0 {
			for _, p := range g.probes {
				want[p] = eperm
			}
		}
	}
	return want
}

// TestSandboxProbes checks what a child can do with no policy, a path
// policy, and every policy at once, as the test's user and as nobody,
// started cold and from the pool.
func TestSandboxProbes(t *testing.T) {
	f := newSandboxFiles(t)
	sandboxUsers(t, func(t *testing.T, cred *forkserver.Credential) {
		eachPool(t, func(t *testing.T, srv *forkserver.Server) {
			for _, c := range []struct {
				name   string
				paths  *forkserver.PathPolicy
				groups forkserver.SyscallGroup
			}{
				{"none", nil, 0},
				{"paths", f.policy(), 0},
				{"all", f.policy(), allGroups},
			} {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					got := forkProbe(t, srv, sandboxProbe, f, &forkserver.Attr{Credential: cred, Paths: c.paths, DenySyscalls: c.groups})
					checkProbes(t, got, deniedBy(c.paths != nil, c.groups))
				})
			}
		})
	})
}

// TestSandboxGroups checks that each group denies its own calls and no
// other group's.
func TestSandboxGroups(t *testing.T) {
	f := newSandboxFiles(t)
	srv := start(t)
	for _, c := range groupNames {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := forkProbe(t, srv, sandboxProbe, f, &forkserver.Attr{DenySyscalls: c.g})
			checkProbes(t, got, deniedBy(false, c.g))
		})
	}
}

// TestSandboxConfined checks that a child with a policy passes it on to
// what it forks through its connection, which asks for no policy of its
// own but to read and write everything.
func TestSandboxConfined(t *testing.T) {
	f := newSandboxFiles(t)
	sandboxUsers(t, func(t *testing.T, cred *forkserver.Credential) {
		srv := start(t)
		got := forkProbe(t, srv, sandboxForkProbe, f, &forkserver.Attr{
			Server: true, Credential: cred,
			Paths:        f.policy(),
			DenySyscalls: forkserver.SyscallsNetwork | forkserver.SyscallsTrace,
		})
		checkProbes(t, got, deniedBy(true, forkserver.SyscallsNetwork|forkserver.SyscallsTrace))
	})
}

// TestSandboxRuntime checks that the Go runtime keeps working under every
// group and a path policy at once: goroutines, timers, collections, and
// the child's socket.
func TestSandboxRuntime(t *testing.T) {
	srv := forkserver.StartWith(t, &forkserver.Config{PoolSize: 1})
	p := fork(t, srv, sandboxChurn, &forkserver.Attr{
		Socket: true, Paths: &forkserver.PathPolicy{ReadOnly: []string{"/proc"}}, DenySyscalls: allGroups,
	})
	got, err := io.ReadAll(p.Conn())
	if err != nil || string(got) != "ok" {
		t.Errorf("child says %q, %v", got, err)
	}
	forkserver.WaitSuccess(t, p)
}

// TestSandboxRefused checks that Fork refuses a relative or missing path and an unknown group.
func TestSandboxRefused(t *testing.T) {
	srv := start(t)
	ctx := forkserver.TestContext(t)
	for _, c := range []struct {
		name string
		attr *forkserver.Attr
	}{
		{"relative path", &forkserver.Attr{Paths: &forkserver.PathPolicy{ReadOnly: []string{"etc"}}}},
		{"missing path", &forkserver.Attr{Paths: &forkserver.PathPolicy{ReadOnly: []string{"/nonexistent/forkserver"}}}},
		{"unknown group", &forkserver.Attr{DenySyscalls: 1 << 20}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if p, err := srv.Fork(ctx, returnNil, c.attr); err == nil {
				forkserver.Wait(t, p)
				t.Fatal("Fork succeeded")
			}
		})
	}
}

var (
	// sandboxRead writes on its socket what reading the file its argument
	// names gives: "ok", or the error.
	sandboxRead = forkserver.Register("sandbox-read", func(ctx context.Context, c *forkserver.Child) error {
		_, err := os.ReadFile(string(c.Arg()))
		res := "ok"
		if err != nil {
			res = err.Error()
		}
		_, err = io.WriteString(c.Conn(), res)
		return err
	})

	// sandboxSwap is given read-write access to a directory and read-only
	// access to a directory in it, whose path is its argument. It puts a
	// link to the directory beside the first in place of the second, and
	// relays what sandbox-read, forked through its connection, gets for a
	// file in the link's target.
	sandboxSwap = forkserver.Register("sandbox-swap", func(ctx context.Context, c *forkserver.Child) error {
		sub := string(c.Arg())
		outside := filepath.Join(filepath.Dir(filepath.Dir(sub)), "outside-dir")
		if err := os.RemoveAll(sub); err != nil {
			return err
		}
		if err := os.Symlink(outside, sub); err != nil {
			return err
		}
		p, err := c.Server().Fork(ctx, sandboxRead, &forkserver.Attr{Socket: true, Arg: []byte(filepath.Join(sub, "file"))})
		if err != nil {
			return err
		}
		defer p.Conn().Close()
		if _, err := io.Copy(c.Conn(), p.Conn()); err != nil {
			return err
		}
		_, err = p.Wait()
		return err
	})

	// sandboxHold echoes its socket until it closes.
	sandboxHold = forkserver.Register("sandbox-hold", func(ctx context.Context, c *forkserver.Child) error {
		_, err := io.Copy(c.Conn(), c.Conn())
		return err
	})
)

// TestSandboxResolvedOnce: a confining child's paths are resolved as it is
// created, so what it does to its files afterwards, such as putting a
// link to elsewhere in place of a directory it was given, does not widen
// what its children may read.
func TestSandboxResolvedOnce(t *testing.T) {
	top := t.TempDir()
	rw, sub, outside := filepath.Join(top, "rw"), filepath.Join(top, "rw", "sub"), filepath.Join(top, "outside-dir")
	for _, err := range []error{os.MkdirAll(sub, 0o755), os.Mkdir(outside, 0o755), os.WriteFile(filepath.Join(outside, "file"), []byte("secret"), 0o644)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	srv := start(t)
	p := fork(t, srv, sandboxSwap, &forkserver.Attr{
		Socket: true, Server: true, Arg: []byte(sub),
		Paths: &forkserver.PathPolicy{ReadOnly: []string{sub, "/proc"}, ReadWrite: []string{rw}},
	})
	got, err := io.ReadAll(p.Conn())
	if err != nil {
		t.Fatal(err)
	}
	forkserver.WaitSuccess(t, p)
	if !strings.Contains(string(got), eacces) {
		t.Errorf("the grandchild read through the swapped link: %q, want %q", got, eacces)
	}
}

// TestSandboxPdeathsig: creating a child under a path policy leaves the
// children that asked for Pdeathsig alive: no thread of the server that
// created them ends.
func TestSandboxPdeathsig(t *testing.T) {
	srv := start(t)
	var holders, sleepers []*forkserver.Process
	for range 8 {
		holders = append(holders, fork(t, srv, sandboxHold, &forkserver.Attr{Socket: true, Pdeathsig: syscall.SIGKILL}))
		p, err := srv.Exec(forkserver.TestContext(t), "/bin/sleep", []string{"sleep", "600"}, &forkserver.Attr{Pdeathsig: syscall.SIGKILL})
		if err != nil {
			t.Fatal(err)
		}
		sleepers = append(sleepers, p)
	}
	for range 20 {
		forkserver.WaitSuccess(t, fork(t, srv, returnNil, &forkserver.Attr{Paths: &forkserver.PathPolicy{ReadOnly: []string{"/proc"}}}))
	}
	for _, h := range holders {
		if _, err := h.Conn().Write([]byte{'x'}); err != nil {
			t.Fatalf("holder %d: %v", h.Pid, err)
		}
		forkserver.ExpectByte(t, h.Conn(), 'x')
		h.Conn().Close()
		forkserver.WaitSuccess(t, h)
	}
	for _, p := range sleepers {
		select {
		case <-p.Done():
			exit, _ := p.Wait()
			t.Errorf("sleep %d: %s", p.Pid, exit)
		default:
			p.Kill()
			forkserver.Wait(t, p)
		}
	}
}

// sandboxForkNamespace reports on its socket whether a Fork through its
// connection of a child in a new user namespace is refused with
// ErrPermission.
var sandboxForkNamespace = forkserver.Register("sandbox-fork-namespace", func(ctx context.Context, c *forkserver.Child) error {
	p, err := c.Server().Fork(ctx, returnNil, &forkserver.Attr{Namespaces: forkserver.NewUser})
	if err == nil {
		p.Wait()
	}
	_, werr := fmt.Fprint(c.Conn(), errors.Is(err, forkserver.ErrPermission), err)
	return werr
})

// TestSandboxMountGroupConfines: a child denied SyscallsMount cannot have
// the server make the namespaces it may not make itself.
func TestSandboxMountGroupConfines(t *testing.T) {
	srv := start(t)
	p := fork(t, srv, sandboxForkNamespace, &forkserver.Attr{Socket: true, Server: true, DenySyscalls: forkserver.SyscallsMount})
	got, err := io.ReadAll(p.Conn())
	if err != nil {
		t.Fatal(err)
	}
	forkserver.WaitSuccess(t, p)
	if !strings.HasPrefix(string(got), "true") {
		t.Errorf("a new namespace through a connection under SyscallsMount: %s, want ErrPermission", got)
	}
}

// sandboxUnixgram tries to reach the datagram socket its argument names
// by path from sockets it may still make: a datagram pair, whose sendto
// would pass the socket a descriptor; a seqpacket pair, which sends to
// its peer whatever address it is given; and its own stream Conn, which
// refuses an address. It reports what each got on its Conn.
var sandboxUnixgram = forkserver.Register("sandbox-unixgram", func(ctx context.Context, c *forkserver.Child) error {
	to := &syscall.SockaddrUnix{Name: string(c.Arg())}
	res := probes{}
	note := func(name string, err error) {
		res[name] = ""
		if err != nil {
			res[name] = err.Error()
		}
	}
	for _, s := range []struct {
		name string
		typ  int
	}{{"dgram", syscall.SOCK_DGRAM}, {"seqpacket", syscall.SOCK_SEQPACKET}} {
		pair, err := syscall.Socketpair(syscall.AF_UNIX, s.typ|syscall.SOCK_CLOEXEC, 0)
		note(s.name+" socketpair", err)
		if err != nil {
			continue
		}
		note(s.name+" sendmsg", syscall.Sendmsg(pair[0], []byte(s.name), syscall.UnixRights(0), to, 0))
		buf := make([]byte, 16)
		n, _, err := syscall.Recvfrom(pair[1], buf, syscall.MSG_DONTWAIT)
		if err == nil && string(buf[:n]) != s.name {
			err = fmt.Errorf("peer got %q", buf[:n])
		}
		note(s.name+" peer", err)
		syscall.Close(pair[0])
		syscall.Close(pair[1])
	}
	raw, err := c.Conn().SyscallConn()
	if err != nil {
		return err
	}
	raw.Control(func(fd uintptr) { note("conn sendto", syscall.Sendto(int(fd), []byte("x"), 0, to)) })
	return json.NewEncoder(c.Conn()).Encode(res)
})

// TestSandboxNoUnixPath: a child denied SyscallsNetwork can reach no
// socket by its path, not even with a datagram socketpair, while its
// stream Conn keeps working.
func TestSandboxNoUnixPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "program.sock")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := start(t)
	p := fork(t, srv, sandboxUnixgram, &forkserver.Attr{Socket: true, Arg: []byte(path), DenySyscalls: forkserver.SyscallsNetwork})
	var got probes
	if err := json.NewDecoder(p.Conn()).Decode(&got); err != nil {
		t.Fatalf("no report on the child's Conn: %v", err)
	}
	forkserver.WaitSuccess(t, p)
	checkProbes(t, got, probes{
		"dgram socketpair": eperm,
		"seqpacket peer":   "",
		"conn sendto":      "transport endpoint is already connected", // EISCONN
	})
	// The child has ended: whatever it sent is queued by now.
	raw, err := l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) {
		buf := make([]byte, 64)
		if n, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_DONTWAIT); err != syscall.EAGAIN {
			t.Errorf("the program's socket got %q from the child (%v)", buf[:max(n, 0)], err)
		}
	})
}

// rawFork forks this process with the system call, never through the
// runtime, and returns the error. Should the fork succeed, the new
// process ends at once, in the same breath, and rawFork reaps it.
func rawFork(nr uintptr, flags uintptr) error {
	pid, _, errno := syscall.RawSyscall6(nr, flags, 0, 0, 0, 0, 0)
	if errno != 0 {
		return errno
	}
	if pid == 0 { // the new process: nothing of the runtime may run here
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
	var ws syscall.WaitStatus
	syscall.Wait4(int(pid), &ws, 0, nil)
	return nil
}

// sysFork numbers fork where there is one.
var sysFork = map[string]uintptr{"amd64": 57}

// sandboxThreads makes threads, as many goroutines locked to their own
// thread and blocked in a read at once, then tries to fork the process
// with the raw system calls, and reports on its Conn: "threads N", then
// the error of each fork.
var sandboxThreads = forkserver.Register("sandbox-threads", func(ctx context.Context, c *forkserver.Child) error {
	const n = 16
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return err
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	tids := make(chan int)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // and leaves it locked: the thread ends with the goroutine
			tids <- syscall.Gettid()
			var b [1]byte
			syscall.Read(p[0], b[:]) // a blocking read: the thread waits in the kernel
		}()
	}
	seen := map[int]bool{}
	for range n {
		seen[<-tids] = true
	}
	syscall.Write(p[1], make([]byte, n))
	wg.Wait()
	res := probes{"threads": strconv.Itoa(len(seen))}
	note := func(name string, err error) {
		res[name] = ""
		if err != nil {
			res[name] = err.Error()
		}
	}
	note("clone", rawFork(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD)))
	note("clone vfork", rawFork(syscall.SYS_CLONE, syscall.CLONE_VFORK|uintptr(syscall.SIGCHLD)))
	if nr, ok := sysFork[runtime.GOARCH]; ok {
		note("fork", rawFork(nr, 0))
	}
	cmd := exec.Command("/bin/true")
	note("os/exec", cmd.Run())
	return json.NewEncoder(c.Conn()).Encode(res)
})

// TestSandboxExecNoProcesses: a child denied SyscallsExec cannot create a
// process by any system call, while the runtime still makes its threads.
func TestSandboxExecNoProcesses(t *testing.T) {
	sandboxUsers(t, func(t *testing.T, cred *forkserver.Credential) {
		srv := start(t)
		p := fork(t, srv, sandboxThreads, &forkserver.Attr{Socket: true, Credential: cred, DenySyscalls: forkserver.SyscallsExec})
		var got probes
		if err := json.NewDecoder(p.Conn()).Decode(&got); err != nil {
			t.Fatalf("no report from the child: %v", err)
		}
		forkserver.WaitSuccess(t, p)
		want := probes{"threads": "16", "clone": eperm, "clone vfork": eperm, "fork": eperm, "os/exec": "not "}
		checkProbes(t, got, want)
	})
}

// metadataFiles are the files sandbox-metadata works on.
type metadataFiles struct {
	Outside   string // a file outside the child's paths, the child's own
	ReadWrite string // a directory the child may write
}

// sandboxMetadata tries to change the metadata of a file outside its
// paths by every call that names it, and through an O_PATH descriptor of
// it, then works on a file inside its paths, and reports on its Conn.
var sandboxMetadata = forkserver.Register("sandbox-metadata", func(ctx context.Context, c *forkserver.Child) error {
	var f metadataFiles
	if err := json.Unmarshal(c.Arg(), &f); err != nil {
		return err
	}
	res := probes{}
	note := func(name string, err error) {
		res[name] = ""
		var errno syscall.Errno
		if errors.As(err, &errno) {
			res[name] = errno.Error()
		} else if err != nil {
			res[name] = err.Error()
		}
	}
	uid, gid := os.Getuid(), os.Getgid()
	now := time.Now()
	note("chmod", os.Chmod(f.Outside, 0o600))
	note("chown", os.Chown(f.Outside, uid, gid))
	note("lchown", os.Lchown(f.Outside, uid, gid))
	note("utimensat", os.Chtimes(f.Outside, now, now))
	note("setxattr", syscall.Setxattr(f.Outside, "user.forkserver", []byte("1"), 0))
	note("removexattr", syscall.Removexattr(f.Outside, "user.forkserver"))
	if runtime.GOARCH == "amd64" {
		note("utimes", syscall.Utimes(f.Outside, []syscall.Timeval{{}, {}}))
	}
	// An O_PATH descriptor is all the child can open outside its paths;
	// the calls that take a descriptor refuse it.
	fd, err := syscall.Open(f.Outside, oPath|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	note("O_PATH fchmod", syscall.Fchmod(fd, 0o600))
	note("O_PATH fchown", syscall.Fchown(fd, uid, gid))
	_, _, errno := syscall.Syscall6(syscall.SYS_FSETXATTR, uintptr(fd), uintptr(unsafe.Pointer(&[]byte("user.forkserver\x00")[0])), uintptr(unsafe.Pointer(&[]byte("1")[0])), 1, 0, 0)
	note("O_PATH fsetxattr", errnoErr(errno))
	_, _, errno = syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(fd), 0, 0, 0, 0, 0) // NULL path: fd itself
	note("O_PATH futimens", errnoErr(errno))
	empty := uintptr(unsafe.Pointer(&[]byte{0}[0]))
	_, _, errno = syscall.Syscall6(syscall.SYS_FCHOWNAT, uintptr(fd), empty, uintptr(uid), uintptr(gid), atEmptyPath, 0)
	note("O_PATH fchownat empty path", errnoErr(errno))
	_, _, errno = syscall.Syscall6(sysFchmodat2, uintptr(fd), empty, 0o600, atEmptyPath, 0, 0)
	note("O_PATH fchmodat2 empty path", errnoErr(errno))
	// Inside its paths, the child writes its files, but changes their
	// metadata neither by path nor through a descriptor.
	inside := filepath.Join(f.ReadWrite, fmt.Sprintf("meta-%d", os.Getpid()))
	file, err := os.Create(inside)
	note("create inside", err)
	if err == nil {
		_, err = file.WriteString("inside")
		note("write inside", err)
		note("fchmod inside", file.Chmod(0o600))
		file.Close()
	}
	note("chmod inside", os.Chmod(inside, 0o644))
	return json.NewEncoder(c.Conn()).Encode(res)
})

// Numbers and flags package syscall lacks.
const (
	oPath        = 0x200000 // O_PATH
	atEmptyPath  = 0x1000   // AT_EMPTY_PATH
	sysFchmodat2 = 452      // alike on every architecture
)

// TestSandboxPathMetadata: a child under Paths can change neither the
// mode, nor the owner, nor the times, nor the extended attributes of a
// file, by its path or through a descriptor (outside its paths the O_PATH
// one that is all it can open, inside one it wrote), as root and as its
// owner.
func TestSandboxPathMetadata(t *testing.T) {
	f := newSandboxFiles(t)
	sandboxUsers(t, func(t *testing.T, cred *forkserver.Credential) {
		mf := metadataFiles{Outside: filepath.Join(filepath.Dir(f.Outside), "meta-"+t.Name()[strings.LastIndexByte(t.Name(), '/')+1:]), ReadWrite: f.ReadWrite}
		if err := os.WriteFile(mf.Outside, []byte("outside"), 0o644); err != nil {
			t.Fatal(err)
		}
		if cred != nil {
			if err := os.Chown(mf.Outside, int(cred.Uid), int(cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
		before, err := os.Stat(mf.Outside)
		if err != nil {
			t.Fatal(err)
		}
		arg, err := json.Marshal(mf)
		if err != nil {
			t.Fatal(err)
		}
		srv := start(t)
		p := fork(t, srv, sandboxMetadata, &forkserver.Attr{Socket: true, Arg: arg, Credential: cred, Paths: f.policy()})
		var got probes
		if err := json.NewDecoder(p.Conn()).Decode(&got); err != nil {
			t.Fatalf("no report from the child: %v", err)
		}
		forkserver.WaitSuccess(t, p)
		checkProbes(t, got, probes{
			"chmod": eperm, "chown": eperm, "lchown": eperm, "utimensat": eperm, "utimes": eperm,
			"setxattr": eperm, "removexattr": eperm,
			"O_PATH fchmod": eperm, "O_PATH fchown": eperm, "O_PATH fsetxattr": eperm, "O_PATH futimens": eperm,
			"O_PATH fchownat empty path": eperm, "O_PATH fchmodat2 empty path": eperm,
			"create inside": "", "write inside": "",
			// Through a descriptor too: one of a read-only file would do.
			"fchmod inside": eperm, "chmod inside": eperm,
		})
		after, err := os.Stat(mf.Outside)
		if err != nil {
			t.Fatal(err)
		}
		if after.Mode() != before.Mode() || !after.ModTime().Equal(before.ModTime()) {
			t.Errorf("the file outside changed: %v %v, was %v %v", after.Mode(), after.ModTime(), before.Mode(), before.ModTime())
		}
	})
}
