//go:build linux

package forkserver_test

// TestMain, and the harness the files of forkserver_test share: servers
// with and without a pool, the registered child functions, and the
// programs TestMain runs. The helpers of helpers_test.go come through
// export_test.go, as forkserver.Wait and the like.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/forkserver/forkserver"
)

// The test binary plays every role: TestMain dispatches a server or a child
// through Main, and the helpers below run as programs of their own.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == cmdHelper {
		runCmdHelper(os.Args[2:]) // in cmd_exec_test.go
	}
	switch os.Getenv("FORKSERVER_TEST_PROGRAM") {
	case "nomain":
		_, err := forkserver.Start(nil)
		fmt.Println(errors.Is(err, forkserver.ErrNoMain), err)
		os.Exit(0)
	case "victim":
		forkserver.Main()
		victimProgram()
		os.Exit(0)
	case sandboxExecProbe:
		sandboxExecProbeProgram() // in sandbox_exec_test.go
	case benchExecProgram:
		benchExecChild() // in bench_harness_test.go
	case "fault-busy":
		faultBusyProgram() // in faults_harness_test.go
	case containVictim:
		forkserver.Main()
		containVictimProgram() // in contain_test.go
	}
	forkserver.Main()
	// A program built with -race sleeps a second on exit to let reports
	// come in; the servers and children these tests start need not.
	os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	os.Exit(m.Run())
}

// start starts a server that the test closes when it ends, checking that
// the server process is gone by then.
func start(tb testing.TB) *forkserver.Server { return forkserver.StartWith(tb, nil) }

// ready waits for the byte a child writes when it is running.
func ready(tb testing.TB, p *forkserver.Process) {
	tb.Helper()
	forkserver.ExpectByte(tb, p.Conn(), 1)
}

// eachPool runs test against a server without a pool and one with, whose
// warm children the program holds before the test begins, so that its
// first Fork takes the direct path.
func eachPool(t *testing.T, test func(*testing.T, *forkserver.Server)) {
	for _, size := range []int{0, 2} {
		t.Run(fmt.Sprintf("pool=%d", size), func(t *testing.T) {
			srv := forkserver.StartWith(t, &forkserver.Config{PoolSize: size})
			if err := srv.WaitWarm(forkserver.TestContext(t)); err != nil {
				t.Fatal(err)
			}
			test(t, srv)
		})
	}
}

// Child functions used by the tests.
var (
	exitWith = forkserver.Register("exit-with", func(ctx context.Context, c *forkserver.Child) error {
		os.Exit(int(c.Arg()[0]))
		return nil
	})
	returnError = forkserver.Register("return-error", func(ctx context.Context, c *forkserver.Child) error {
		return errors.New("boom")
	})
	panics = forkserver.Register("panics", func(ctx context.Context, c *forkserver.Child) error {
		panic("boom")
	})
	killSelf = forkserver.Register("kill-self", func(ctx context.Context, c *forkserver.Child) error {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	})
	returnNil = forkserver.Register("return-nil", func(ctx context.Context, c *forkserver.Child) error {
		return nil
	})
	echo = forkserver.Register("echo", func(ctx context.Context, c *forkserver.Child) error {
		_, err := io.Copy(c.Conn(), c.Conn())
		return err
	})
	echoArg = forkserver.Register("echo-arg", func(ctx context.Context, c *forkserver.Child) error {
		_, err := c.Conn().Write(c.Arg())
		return err
	})
	listFds = forkserver.Register("list-fds", func(ctx context.Context, c *forkserver.Child) error {
		return json.NewEncoder(c.Conn()).Encode(openFds())
	})
	// swapFiles copies its first file into its second, then sends a pipe's
	// read end back over its socket with the word "back" in the pipe.
	swapFiles = forkserver.Register("swap-files", func(ctx context.Context, c *forkserver.Child) error {
		if _, err := io.Copy(c.Files()[1], c.Files()[0]); err != nil {
			return err
		}
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		w.WriteString("back")
		w.Close()
		return forkserver.WriteFds(c.Conn(), []byte{1}, r)
	})
	// forkGrandchild forks exit-with(7) through its own connection and
	// reports the grandchild's exit status on its socket.
	forkGrandchild = forkserver.Register("fork-grandchild", func(ctx context.Context, c *forkserver.Child) error {
		p, err := c.Server().Fork(ctx, exitWith, &forkserver.Attr{Arg: []byte{7}})
		if err != nil {
			return err
		}
		exit, err := p.Wait()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.Conn(), "%d %d\n", p.Pid, exit.Status.ExitStatus())
		return err
	})
	getenv = forkserver.Register("getenv", func(ctx context.Context, c *forkserver.Child) error {
		_, err := io.WriteString(c.Conn(), os.Getenv(string(c.Arg())))
		return err
	})
	setenv = forkserver.Register("setenv", func(ctx context.Context, c *forkserver.Child) error {
		k, v, _ := strings.Cut(string(c.Arg()), "=")
		return os.Setenv(k, v)
	})
	// untilTerm says it is ready, then returns when SIGTERM cancels ctx.
	untilTerm = forkserver.Register("until-term", func(ctx context.Context, c *forkserver.Child) error {
		c.Conn().Write([]byte{1})
		<-ctx.Done()
		return nil
	})
	// ignoreTerm says it is ready, then reads its socket to the end,
	// ignoring ctx: only SIGKILL or the socket's end stops it.
	ignoreTerm = forkserver.Register("ignore-term", func(ctx context.Context, c *forkserver.Child) error {
		c.Conn().Write([]byte{1})
		io.Copy(io.Discard, c.Conn())
		return nil
	})
)

// openFds describes this process's open descriptors, leaving out the one
// that lists them and those the Go runtime keeps for its poller.
func openFds() map[int]string {
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil
	}
	defer dir.Close()
	names, _ := dir.Readdirnames(-1)
	rc, _ := dir.SyscallConn()
	own := -1
	rc.Control(func(fd uintptr) { own = int(fd) })
	fds := map[int]string{}
	for _, name := range names {
		fd, _ := strconv.Atoi(name)
		target, err := os.Readlink("/proc/self/fd/" + name)
		if err != nil || fd == own || strings.HasPrefix(target, "anon_inode:[event") {
			continue
		}
		if strings.HasPrefix(target, "socket:") {
			target = "socket"
		}
		fds[fd] = target
	}
	return fds
}

// fork forks fn on srv with attr, failing t if Fork fails, and closes the
// child's socket, if it has one, when t ends.
func fork(t *testing.T, srv *forkserver.Server, fn forkserver.Func, attr *forkserver.Attr) *forkserver.Process {
	t.Helper()
	p, err := srv.Fork(forkserver.TestContext(t), fn, attr)
	if err != nil {
		t.Fatalf("Fork %s: %v", fn.Name(), err)
	}
	if p.Conn() != nil {
		t.Cleanup(func() { p.Conn().Close() })
	}
	return p
}

// victimPool is the pool of the victim's server.
const victimPool = 2

// victimProgram starts a server with 10 children that ignore SIGTERM and
// a pool, prints the server's pid and theirs, and waits to be killed.
func victimProgram() {
	srv, err := forkserver.Start(&forkserver.Config{PoolSize: victimPool})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(srv.Pid())
	for range 10 {
		p, err := srv.Fork(context.Background(), ignoreTerm, &forkserver.Attr{Socket: true})
		if err != nil {
			fmt.Println(err)
			return
		}
		p.Conn().Read(make([]byte, 1))
		fmt.Println(p.Pid)
	}
	fmt.Println("ready")
	select {}
}
