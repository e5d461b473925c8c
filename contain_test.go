//go:build linux

package forkserver_test

// Containment: every process dies with its owner. Each child says, from
// inside, its own pid and the pids of what it started, so that a test knows
// every process there is and can tell that none is left.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/forkserver/forkserver"
)

// deathBound is how long after its owner's end every process must be gone.
const deathBound = time.Second

// containChild starts what its Arg names, a comma-separated list of the
// kinds containStart knows, writes its own pid and theirs on its socket,
// one a line, then "ready", and lives until its socket's end-of-file.
// Registered in init: a kind forks it again.
var containChild forkserver.Func

func init() { containChild = forkserver.Register("contain", runContainChild) }

func runContainChild(ctx context.Context, c *forkserver.Child) error {
	pids := []int{os.Getpid()}
	for kind := range strings.SplitSeq(string(c.Arg()), ",") {
		more, err := containStart(ctx, c, kind)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		pids = append(pids, more...)
	}
	return reportPids(c, pids)
}

// containStart starts one kind of descendant of the child c and returns
// the pids of what it started:
//
//	exec    sleep, a child started with os/exec
//	double  sleep, double-forked through sh: orphaned at once
//	setsid  sleep in a session of its own, a child
//	fork    a grandchild forked through c's connection, which starts exec
//	        and double itself
func containStart(ctx context.Context, c *forkserver.Child, kind string) ([]int, error) {
	switch kind {
	case "":
		return nil, nil
	case "exec":
		cmd := exec.Command("sleep", "100")
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return []int{cmd.Process.Pid}, nil
	case "double":
		out, err := exec.Command("sh", "-c", "sleep 100 >/dev/null 2>&1 & echo $!").Output()
		if err != nil {
			return nil, err
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
		return []int{pid}, err
	case "setsid":
		path, err := exec.LookPath("sleep")
		if err != nil {
			return nil, err
		}
		pid, err := syscall.ForkExec(path, []string{"sleep", "100"}, &syscall.ProcAttr{Sys: &syscall.SysProcAttr{Setsid: true}})
		return []int{pid}, err
	case "fork":
		p, err := c.Server().Fork(ctx, containChild, &forkserver.Attr{Socket: true, Arg: []byte("exec,double")})
		if err != nil {
			return nil, err
		}
		// Its socket stays open with this child: the grandchild lives as
		// long as it does, or as the connection.
		return readPids(p.Conn())
	}
	return nil, fmt.Errorf("unknown kind %q", kind)
}

// readPids reads the pids a containChild writes, up to its "ready".
func readPids(conn *net.UnixConn) ([]int, error) {
	var pids []int
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		if sc.Text() == "ready" {
			return pids, nil
		}
		pid, err := strconv.Atoi(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("child said %q", sc.Text())
		}
		pids = append(pids, pid)
	}
	return nil, fmt.Errorf("child ended before it was ready: %v", sc.Err())
}

// nobody is the credential of the unprivileged children.
var nobody = &forkserver.Credential{Uid: 65534, Gid: 65534}

// containCase is a child to fork: the kinds it starts, and its settings.
type containCase struct {
	kinds string
	attr  forkserver.Attr
}

// containCases are children of every kind: pooled (those that the pool
// may serve) and cold (NoNewPrivs, which the pool cannot serve), session
// and process-group leaders, a child holding a connection, and children as
// nobody.
var containCases = []containCase{
	{"", forkserver.Attr{}},
	{"exec,double", forkserver.Attr{}},
	{"exec,double,setsid", forkserver.Attr{NoNewPrivs: true}},
	{"exec,double", forkserver.Attr{Setsid: true}},
	{"exec,setsid", forkserver.Attr{Setpgid: true}},
	{"fork,double", forkserver.Attr{Server: true}},
	{"exec,double", forkserver.Attr{Credential: nobody}},
	{"exec,double", forkserver.Attr{Credential: nobody, NoNewPrivs: true, Setsid: true}},
}

// forkEveryKind forks each of containCases, and Execs sleep twice, once as
// nobody, and returns every pid they report. The processes are killed, if
// they live, when tb ends.
func forkEveryKind(tb testing.TB, srv *forkserver.Server) []int {
	tb.Helper()
	var pids []int
	tb.Cleanup(func() {
		for _, pid := range pids { // what failed to die
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	err := startEveryKind(srv, func(pid int) { pids = append(pids, pid) })
	if err != nil {
		tb.Fatal(err)
	}
	return pids
}

// startEveryKind is forkEveryKind without a testing.TB, for a program of
// its own: it calls add with every pid.
func startEveryKind(srv *forkserver.Server, add func(pid int)) error {
	ctx := context.Background() // nothing but the test's end ends them
	for _, cc := range containCases {
		if cc.attr.Credential != nil && os.Getuid() != 0 {
			continue
		}
		attr := cc.attr
		attr.Socket, attr.Arg = true, []byte(cc.kinds)
		p, err := srv.Fork(ctx, containChild, &attr)
		if err != nil {
			return fmt.Errorf("Fork %q: %v", cc.kinds, err)
		}
		more, err := readPids(p.Conn())
		if err != nil {
			return fmt.Errorf("child %q: %v", cc.kinds, err)
		}
		for _, pid := range more {
			add(pid)
		}
	}
	for _, attr := range []*forkserver.Attr{nil, {Credential: nobody}} {
		if attr != nil && os.Getuid() != 0 {
			continue
		}
		p, err := srv.Exec(ctx, "sleep", []string{"sleep", "100"}, attr)
		if err != nil {
			return err
		}
		add(p.Pid)
	}
	return nil
}

// waitAllGone waits until none of pids runs, and fails tb unless that took
// at most deathBound since begin.
func waitAllGone(tb testing.TB, what string, begin time.Time, pids []int) {
	tb.Helper()
	var left []int
	forkserver.Await(func() bool {
		left = left[:0]
		for _, pid := range pids {
			if forkserver.Alive(pid) {
				left = append(left, pid)
			}
		}
		return len(left) == 0 || time.Since(begin) > deathBound
	})
	took := time.Since(begin)
	if len(left) > 0 {
		tb.Fatalf("%d of %d processes still alive %v after %s: %v", len(left), len(pids), took, what, describe(left))
	}
	tb.Logf("%d processes gone %v after %s", len(pids), took, what)
}

// describe names each pid's command, for a failure message.
func describe(pids []int) []string {
	var out []string
	for _, pid := range pids {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		out = append(out, fmt.Sprintf("%d(%s)", pid, strings.TrimSpace(string(comm))))
	}
	return out
}

// TestContainServerKilled checks that when the server dies, SIGKILLed as
// the OOM killer would, every process it started, and every process those
// started, dies with it within deathBound.
func TestContainServerKilled(t *testing.T) {
	srv := forkserver.StartWith(t, &forkserver.Config{PoolSize: 2})
	if err := srv.WaitWarm(forkserver.TestContext(t)); err != nil {
		t.Fatal(err)
	}
	pids := forkEveryKind(t, srv)
	if err := srv.WaitWarm(forkserver.TestContext(t)); err != nil {
		t.Fatal(err)
	}
	pids = append(pids, forkserver.ChildrenOf(srv.Pid())...) // the warm children the program holds
	pids = append(pids, srv.Pid())
	if len(pids) < 30 {
		t.Fatalf("only %d processes", len(pids))
	}
	begin := time.Now()
	if err := syscall.Kill(srv.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitAllGone(t, "the server was SIGKILLed", begin, pids)
}

// TestContainClose checks that when the Server Start returned is closed,
// every process the server started, and every process those started, is
// gone within deathBound.
func TestContainClose(t *testing.T) {
	srv := forkserver.StartWith(t, &forkserver.Config{PoolSize: 2})
	pids := forkEveryKind(t, srv)
	begin := time.Now()
	srv.Close()
	waitAllGone(t, "Close", begin, pids)
	if took := time.Since(begin); took > 100*time.Millisecond {
		t.Logf("(polled for %v: Close returned before all were gone)", took)
	}
}

// TestContainConnectionEnds checks that when a child holding a connection
// exits, what was forked through that connection dies, and so does what that started, a double fork included;
// a sibling and what it started, still its children, live on. (A process
// orphaned while its owner lives, such as a sibling's double fork, belongs
// to no connection: it dies with any.)
func TestContainConnectionEnds(t *testing.T) {
	srv := start(t)
	holder := fork(t, srv, containChild, &forkserver.Attr{Socket: true, Server: true, Arg: []byte("fork,fork,double")})
	theirs, err := readPids(holder.Conn())
	if err != nil {
		t.Fatal(err)
	}
	p := fork(t, srv, containChild, &forkserver.Attr{Socket: true, Setsid: true, Arg: []byte("exec,setsid")})
	sibling, err := readPids(p.Conn())
	if err != nil {
		t.Fatal(err)
	}
	holder.Conn().Close() // the holder returns: its connection ends
	forkserver.WaitSuccess(t, holder)
	waitAllGone(t, "their connection ended", time.Now(), theirs[1:])
	for _, pid := range sibling {
		if !forkserver.Alive(pid) {
			t.Errorf("process %d, no descendant of the connection, was killed with it", pid)
		}
	}
}

// containVictim is the role of containVictimProgram.
const containVictim = "contain-victim"

// containVictimProgram starts a server with a pool and children of every
// kind, prints every pid, the keeper's and the server's included, then
// "ready", and waits to be killed.
func containVictimProgram() {
	srv, err := forkserver.Start(&forkserver.Config{PoolSize: 2})
	if err == nil {
		err = startEveryKind(srv, func(pid int) { fmt.Println(pid) })
	}
	if err == nil {
		err = srv.WaitWarm(context.Background())
	}
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	for _, pid := range append(append(forkserver.ChildrenOf(srv.Pid()), srv.Pid()), forkserver.ChildrenOf(os.Getpid())...) {
		fmt.Println(pid) // the warm children, the server and the keeper
	}
	fmt.Println("ready")
	select {}
}

// TestContainProgramKilled checks that when the program dies, SIGKILLed,
// the keeper, the server, every child and every process a child started
// die with it: as root, and with the program running as nobody.
func TestContainProgramKilled(t *testing.T) {
	for _, as := range []string{"root", "nobody"} {
		t.Run(as, func(t *testing.T) {
			exe := os.Args[0]
			cmd := exec.Command(exe, "-test.run=^$")
			if as == "nobody" {
				if os.Getuid() != 0 {
					t.Skip("needs root to run a program as another user")
				}
				exe = copyExecutable(t)
				cmd = exec.Command(exe, "-test.run=^$")
				cmd.Dir = "/"
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody.Uid, Gid: nobody.Gid}}
			}
			cmd.Env = append(os.Environ(), "FORKSERVER_TEST_PROGRAM="+containVictim)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var pids []int
			t.Cleanup(func() {
				cmd.Process.Kill()
				cmd.Wait()
				for _, pid := range pids {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			})
			sc := bufio.NewScanner(out)
			for sc.Scan() && sc.Text() != "ready" {
				pid, err := strconv.Atoi(sc.Text())
				if err != nil {
					t.Fatalf("victim said %q", sc.Text())
				}
				pids = append(pids, pid)
			}
			if len(pids) < 20 {
				t.Fatalf("the victim reported %d processes", len(pids))
			}
			begin := time.Now()
			cmd.Process.Kill()
			cmd.Wait()
			waitAllGone(t, "the program was SIGKILLed", begin, pids)
		})
	}
}

// copyExecutable copies the test binary where any user may run it, and
// returns its path.
func copyExecutable(t *testing.T) string {
	dir, err := os.MkdirTemp("", "contain")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := dir + "/forkserver.test"
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}

// containHogs leaves behind as many processes as its Arg's first word
// says, each spinning on a processor, writes their pids on its socket, one
// a line, then "ready", and lives until its socket's end-of-file. With
// "orphans" they are double-forked, orphaned at once, so strays of the
// server; with "beside" they are created with CLONE_PARENT, children of
// the server thread that created this child, as a hostile child could
// place them.
var containHogs = forkserver.Register("contain-hogs", func(ctx context.Context, c *forkserver.Child) error {
	count, how, _ := strings.Cut(string(c.Arg()), " ")
	n, _ := strconv.Atoi(count)
	if how == "beside" {
		var pids []int
		for range n {
			cmd := exec.Command("sh", "-c", "while :; do :; done")
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_PARENT}
			if err := cmd.Start(); err != nil {
				return err
			}
			pids = append(pids, cmd.Process.Pid)
		}
		return reportPids(c, pids)
	}
	script := fmt.Sprintf("for i in $(seq %d); do (while :; do :; done) </dev/null >/dev/null 2>&1 & echo $!; done", n)
	out, err := exec.Command("sh", "-c", script).Output()
	if err != nil {
		return err
	}
	return reportPids(c, strings.Fields(string(out)))
})

// reportPids writes pids on c's socket, one a line, then "ready", as
// readPids reads them, and waits for the socket's end-of-file.
func reportPids[T any](c *forkserver.Child, pids []T) error {
	w := bufio.NewWriter(c.Conn())
	for _, pid := range pids {
		fmt.Fprintln(w, pid)
	}
	fmt.Fprintln(w, "ready")
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, c.Conn())
	return err
}

// containRelay forks containHogs through its own connection to the
// server, relays the pids it says, and lives until its socket's
// end-of-file: then it exits, its connection to the server ends, and with
// it the hogs' child, and, as the package promises, what that child left
// behind.
var containRelay = forkserver.Register("contain-relay", func(ctx context.Context, c *forkserver.Child) error {
	p, err := c.Server().Fork(ctx, containHogs, &forkserver.Attr{Socket: true, Arg: c.Arg()})
	if err != nil {
		return err
	}
	pids, err := readPids(p.Conn())
	if err != nil {
		return err
	}
	return reportPids(c, pids)
})

// TestContainDuringIdleRefill checks that what a child left behind dies
// within deathBound of its owner's end even while the plain pool's idle
// refill is creating a child: the leftovers here keep the processors busy,
// which is what keeps an idle exec from finishing. They are orphans, or
// processes the child placed beside itself as children of the server
// thread that created it, which may be the refill's.
func TestContainDuringIdleRefill(t *testing.T) {
	for _, how := range []string{"orphans", "beside"} {
		t.Run(how, func(t *testing.T) {
			srv := forkserver.StartWith(t, &forkserver.Config{PoolSize: 1})
			ctx := forkserver.TestContext(t)
			if err := srv.WaitWarm(ctx); err != nil {
				t.Fatal(err)
			}
			arg := fmt.Sprintf("%d %s", 8*runtime.NumCPU(), how)
			p, err := srv.Fork(ctx, containRelay, &forkserver.Attr{Server: true, Socket: true, Arg: []byte(arg)})
			if err != nil {
				t.Fatal(err)
			}
			pids, err := readPids(p.Conn())
			t.Cleanup(func() {
				for _, pid := range pids {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			// The warm child p took is being replaced, at idle priority,
			// on processors the leftovers keep busy; a Fork that takes the
			// replacement, should it be ready, starts another.
			if q, err := srv.Fork(ctx, returnNil, nil); err == nil {
				forkserver.Wait(t, q)
			}
			begin := time.Now()
			p.Conn().Close()
			forkserver.Wait(t, p)
			waitAllGone(t, "their owner's end, with an idle refill in flight", begin, pids)
		})
	}
}
