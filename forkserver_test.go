//go:build linux

package forkserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/forkserver/forkserver"
)

// TestForkExitStatus checks that every way a child ends (return, os.Exit,
// error, panic, signal) shows in its Exit's status, pid, Success and
// rusage, and that Signal after the exit returns os.ErrProcessDone.
func TestForkExitStatus(t *testing.T) { eachPool(t, checkExitStatus) }

func checkExitStatus(t *testing.T, srv *forkserver.Server) {
	tests := []struct {
		name   string
		fn     forkserver.Func
		arg    []byte
		want   string
		status int
	}{
		{"return nil", returnNil, nil, "exit status 0", 0},
		{"os.Exit(0)", exitWith, []byte{0}, "exit status 0", 0},
		{"os.Exit(3)", exitWith, []byte{3}, "exit status 3", 3},
		{"os.Exit(255)", exitWith, []byte{255}, "exit status 255", 255},
		{"error", returnError, nil, "exit status 1", 1},
		{"panic", panics, nil, "exit status 2", 2},
		{"signal", killSelf, nil, "signal: killed", -1},
	}
	quiet, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fork(t, srv, tt.fn, &forkserver.Attr{Arg: tt.arg, Stderr: quiet})
			exit := forkserver.Wait(t, p)
			if exit.String() != tt.want || exit.Status.ExitStatus() != tt.status {
				t.Errorf("exit = %s (status %d), want %s (status %d)", exit, exit.Status.ExitStatus(), tt.want, tt.status)
			}
			if exit.Pid != p.Pid || p.Pid <= 0 {
				t.Errorf("exit.Pid = %d, Process.Pid = %d", exit.Pid, p.Pid)
			}
			if exit.Success() != (tt.status == 0) {
				t.Errorf("Success() = %v", exit.Success())
			}
			if exit.Rusage.Maxrss <= 0 || exit.Rusage.Utime.Nano()+exit.Rusage.Stime.Nano() <= 0 {
				t.Errorf("rusage not filled: maxrss %d, utime %v, stime %v", exit.Rusage.Maxrss, exit.Rusage.Utime, exit.Rusage.Stime)
			}
			if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
				t.Errorf("Signal after exit: %v, want os.ErrProcessDone", err)
			}
		})
	}
}

// TestChildDescriptors checks that a child sees its standard descriptors,
// its socket, its files and nothing else of the program's or the server's.
func TestChildDescriptors(t *testing.T) { eachPool(t, checkChildDescriptors) }

func checkChildDescriptors(t *testing.T, srv *forkserver.Server) {
	file, err := os.Create(filepath.Join(t.TempDir(), "given"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	extra, err := os.Open(os.DevNull) // open in the program, not given
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()

	p := fork(t, srv, listFds, &forkserver.Attr{Socket: true, Files: []*os.File{file}})
	var fds map[int]string
	if err := json.NewDecoder(p.Conn()).Decode(&fds); err != nil {
		t.Fatal(err)
	}
	forkserver.Wait(t, p)
	var got []string
	for fd, target := range fds {
		if fd > 2 {
			got = append(got, target)
		}
	}
	sort.Strings(got)
	want := []string{file.Name(), "socket"}
	if !slices.Equal(got, want) {
		t.Errorf("child's descriptors above 2: %q, want %q (all: %v)", got, want, fds)
	}
	for fd := 0; fd <= 2; fd++ {
		if _, ok := fds[fd]; !ok {
			t.Errorf("child lacks descriptor %d", fd)
		}
	}
}

// TestSocketEcho checks that a child's socket carries more than a socket
// buffer's worth both ways, and that the child reads its end once the
// program closes its write side.
func TestSocketEcho(t *testing.T) { eachPool(t, checkSocketEcho) }

func checkSocketEcho(t *testing.T, srv *forkserver.Server) {
	p := fork(t, srv, echo, &forkserver.Attr{Socket: true})
	msg := bytes.Repeat([]byte("echo "), 100000) // larger than a socket buffer
	go func() {
		p.Conn().Write(msg)
		p.Conn().CloseWrite()
	}()
	got, err := io.ReadAll(p.Conn())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("echoed %d bytes, want %d", len(got), len(msg))
	}
	if exit := forkserver.Wait(t, p); !exit.Success() {
		t.Errorf("echo child: %s", exit)
	}
}

// TestArg checks that an Arg of 0, 1 or MaxArg bytes reaches the child
// intact, and that Fork and Eval refuse one byte more with ErrArgTooLarge.
func TestArg(t *testing.T) { eachPool(t, checkArg) }

func checkArg(t *testing.T, srv *forkserver.Server) {
	for _, n := range []int{0, 1, forkserver.MaxArg} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			arg := make([]byte, n)
			for i := range arg {
				arg[i] = byte(i * 7)
			}
			p := fork(t, srv, echoArg, &forkserver.Attr{Socket: true, Arg: arg})
			got, err := io.ReadAll(p.Conn())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, arg) {
				t.Errorf("child got %d bytes, want %d", len(got), n)
			}
			forkserver.Wait(t, p)
		})
	}
	t.Run("over", func(t *testing.T) {
		_, err := srv.Fork(forkserver.TestContext(t), echoArg, &forkserver.Attr{Arg: make([]byte, forkserver.MaxArg+1)})
		if !errors.Is(err, forkserver.ErrArgTooLarge) {
			t.Errorf("Fork with %d bytes: %v, want ErrArgTooLarge", forkserver.MaxArg+1, err)
		}
		err = srv.Eval(forkserver.TestContext(t), setenv, make([]byte, forkserver.MaxArg+1))
		if !errors.Is(err, forkserver.ErrArgTooLarge) {
			t.Errorf("Eval with %d bytes: %v, want ErrArgTooLarge", forkserver.MaxArg+1, err)
		}
	})
}

// TestFilesBothWays checks that files travel to the child in order, and
// back from it over its socket.
func TestFilesBothWays(t *testing.T) { eachPool(t, checkFilesBothWays) }

func checkFilesBothWays(t *testing.T, srv *forkserver.Server) {
	inR, inW := forkserver.TestPipe(t)
	outR, outW := forkserver.TestPipe(t)
	p := fork(t, srv, swapFiles, &forkserver.Attr{Socket: true, Files: []*os.File{inR, outW}})
	inR.Close()
	outW.Close()
	inW.WriteString("there")
	inW.Close()
	got, err := io.ReadAll(outR)
	if err != nil || string(got) != "there" {
		t.Errorf("child copied %q, %v; want %q", got, err, "there")
	}
	outR.Close()

	buf := make([]byte, 1)
	_, files, err := forkserver.ReadFds(p.Conn(), buf, 1)
	if err != nil || len(files) != 1 {
		t.Fatalf("ReadFds: %d files, %v", len(files), err)
	}
	back, err := io.ReadAll(files[0])
	files[0].Close()
	if string(back) != "back" {
		t.Errorf("file from the child holds %q, %v", back, err)
	}
	if exit := forkserver.Wait(t, p); !exit.Success() {
		t.Errorf("child: %s", exit)
	}
}

// TestStdio checks that a child whose function fails writes the error,
// prefixed with the package's and the function's names, to Attr.Stderr.
func TestStdio(t *testing.T) { eachPool(t, checkStdio) }

func checkStdio(t *testing.T, srv *forkserver.Server) {
	r, w := forkserver.TestPipe(t)
	p := fork(t, srv, returnError, &forkserver.Attr{Stderr: w})
	w.Close()
	got, _ := io.ReadAll(r)
	if want := "forkserver: return-error: boom\n"; string(got) != want {
		t.Errorf("child's stderr: %q, want %q", got, want)
	}
	forkserver.Wait(t, p)
}

// TestGrandchild checks that a child given Attr.Server forks a grandchild
// through its own connection and gets the grandchild's exit.
func TestGrandchild(t *testing.T) { eachPool(t, checkGrandchild) }

func checkGrandchild(t *testing.T, srv *forkserver.Server) {
	p := fork(t, srv, forkGrandchild, &forkserver.Attr{Socket: true, Server: true})
	var pid, status int
	if _, err := fmt.Fscan(p.Conn(), &pid, &status); err != nil {
		t.Fatal(err)
	}
	if status != 7 || pid <= 0 || pid == p.Pid {
		t.Errorf("grandchild %d exited %d, want 7", pid, status)
	}
	if exit := forkserver.Wait(t, p); !exit.Success() {
		t.Errorf("child: %s", exit)
	}
}

// TestEval checks that Eval changes the server, whose later children
// inherit the change, and not the program; that it reports a function's
// error or panic and refuses the zero Func; and that the server serves on
// after all of it.
func TestEval(t *testing.T) { eachPool(t, checkEval) }

func checkEval(t *testing.T, srv *forkserver.Server) {
	ctx := forkserver.TestContext(t)
	if err := srv.Eval(ctx, setenv, []byte("FORKSERVER_TEST_EVAL=changed")); err != nil {
		t.Fatal(err)
	}
	p := fork(t, srv, getenv, &forkserver.Attr{Socket: true, Arg: []byte("FORKSERVER_TEST_EVAL")})
	got, _ := io.ReadAll(p.Conn())
	if string(got) != "changed" {
		t.Errorf("child sees %q, want the value Eval set", got)
	}
	forkserver.Wait(t, p)
	if v := os.Getenv("FORKSERVER_TEST_EVAL"); v != "" {
		t.Errorf("Eval changed the program's environment: %q", v)
	}

	if err := srv.Eval(ctx, returnError, nil); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Eval of a failing function: %v", err)
	}
	if err := srv.Eval(ctx, panics, nil); err == nil || !strings.Contains(err.Error(), "panic: boom") {
		t.Errorf("Eval of a panicking function: %v", err)
	}
	if err := srv.Eval(ctx, forkserver.Func{}, nil); !errors.Is(err, forkserver.ErrUnknownFunc) {
		t.Errorf("Eval of the zero Func: %v", err)
	}
	// The server survived all of it.
	forkserver.Wait(t, fork(t, srv, returnNil, nil))
}

// TestUnknownFunc checks that a Fork of the zero Func fails with
// ErrUnknownFunc.
func TestUnknownFunc(t *testing.T) {
	srv := start(t)
	_, err := srv.Fork(forkserver.TestContext(t), forkserver.Func{}, nil)
	if !errors.Is(err, forkserver.ErrUnknownFunc) {
		t.Errorf("Fork of the zero Func: %v, want ErrUnknownFunc", err)
	}
}

// endServer calls end, srv's Close or Detach as how names it, and checks
// that the server process is gone and that Wait of its child p reports
// ErrClosed.
func endServer(t *testing.T, srv *forkserver.Server, p *forkserver.Process, how string, end func() error) {
	t.Helper()
	if err := end(); err != nil {
		t.Fatalf("%s: %v", how, err)
	}
	if forkserver.Alive(srv.Pid()) {
		t.Errorf("server %d alive after %s", srv.Pid(), how)
	}
	if _, err := p.Wait(); !errors.Is(err, forkserver.ErrClosed) {
		t.Errorf("Wait after %s: %v, want ErrClosed", how, err)
	}
}

// TestClose checks that Close ends the server and its children, that Wait,
// Fork and KillAll then fail with ErrClosed, and that a second Close
// returns nil.
func TestClose(t *testing.T) {
	srv := start(t)
	p := fork(t, srv, ignoreTerm, &forkserver.Attr{Socket: true})
	ready(t, p)
	endServer(t, srv, p, "Close", srv.Close)
	forkserver.WaitGone(t, p.Pid)
	if _, err := srv.Fork(forkserver.TestContext(t), returnNil, nil); !errors.Is(err, forkserver.ErrClosed) {
		t.Errorf("Fork after Close: %v, want ErrClosed", err)
	}
	if err := srv.KillAll(syscall.SIGKILL); !errors.Is(err, forkserver.ErrClosed) {
		t.Errorf("KillAll after Close: %v, want ErrClosed", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestStop checks that Stop ends the children with SIGTERM and returns only
// once their exits are delivered and the server is gone, and that Fork and
// Stop then fail with ErrClosed.
func TestStop(t *testing.T) { eachPool(t, checkStop) }

func checkStop(t *testing.T, srv *forkserver.Server) {
	var procs []*forkserver.Process
	for range 3 {
		p := fork(t, srv, untilTerm, &forkserver.Attr{Socket: true})
		ready(t, p)
		procs = append(procs, p)
	}
	if err := srv.Stop(forkserver.TestContext(t)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, p := range procs {
		// Stop has returned, so the exits are already known.
		select {
		case <-p.Done():
		default:
			t.Fatalf("child %d: exit not delivered before Stop returned", p.Pid)
		}
		if exit := forkserver.Wait(t, p); !exit.Success() {
			t.Errorf("child %d stopped with %s, want exit status 0", p.Pid, exit)
		}
	}
	if forkserver.Alive(srv.Pid()) {
		t.Errorf("server %d alive after Stop", srv.Pid())
	}
	if _, err := srv.Fork(forkserver.TestContext(t), returnNil, nil); !errors.Is(err, forkserver.ErrClosed) {
		t.Errorf("Fork after Stop: %v, want ErrClosed", err)
	}
	if err := srv.Stop(forkserver.TestContext(t)); !errors.Is(err, forkserver.ErrClosed) {
		t.Errorf("Stop after Stop: %v, want ErrClosed", err)
	}
}

// TestStopDeadline checks that a child that ignores SIGTERM is killed when
// Stop's context ends.
func TestStopDeadline(t *testing.T) { eachPool(t, checkStopDeadline) }

func checkStopDeadline(t *testing.T, srv *forkserver.Server) {
	p := fork(t, srv, ignoreTerm, &forkserver.Attr{Socket: true})
	ready(t, p)
	ctx, cancel := context.WithTimeout(forkserver.TestContext(t), 200*time.Millisecond)
	defer cancel()
	if err := srv.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop: %v, want context.DeadlineExceeded", err)
	}
	exit := forkserver.Wait(t, p)
	if !exit.Status.Signaled() || exit.Status.Signal() != syscall.SIGKILL {
		t.Errorf("child ended with %s, want signal: killed", exit)
	}
}

// TestDetach checks that Detach ends the server, so that Wait fails with
// ErrClosed, while the child lives on and still answers on its socket.
func TestDetach(t *testing.T) { eachPool(t, checkDetach) }

func checkDetach(t *testing.T, srv *forkserver.Server) {
	p := fork(t, srv, echo, &forkserver.Attr{Socket: true})
	endServer(t, srv, p, "Detach", srv.Detach)
	// The child lives on and still answers.
	fmt.Fprintln(p.Conn(), "still here")
	line, err := bufio.NewReader(p.Conn()).ReadString('\n')
	if line != "still here\n" {
		t.Errorf("detached child answered %q, %v", line, err)
	}
	p.Conn().Close() // the echo child ends
	forkserver.WaitGone(t, p.Pid)
}

// TestSignal checks that Signal delivers a signal the child ignores and
// then SIGKILL, and that KillAll reaches every child.
func TestSignal(t *testing.T) { eachPool(t, checkSignal) }

func checkSignal(t *testing.T, srv *forkserver.Server) {
	p := fork(t, srv, ignoreTerm, &forkserver.Attr{Socket: true})
	ready(t, p)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if exit := forkserver.Wait(t, p); exit.Status.Signal() != syscall.SIGKILL {
		t.Errorf("child ended with %s, want signal: killed", exit)
	}
	q := fork(t, srv, ignoreTerm, &forkserver.Attr{Socket: true})
	ready(t, q)
	if err := srv.KillAll(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if exit := forkserver.Wait(t, q); exit.Status.Signal() != syscall.SIGKILL {
		t.Errorf("child ended with %s after KillAll, want signal: killed", exit)
	}
}

// TestForkContext checks that a Fork with a ctx already cancelled fails
// with context.Canceled and leaves the server and its connection serving.
func TestForkContext(t *testing.T) {
	srv := start(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := srv.Fork(ctx, returnNil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Fork with a cancelled context: %v", err)
	}
	// The server and the connection are still fine.
	forkserver.Wait(t, fork(t, srv, returnNil, nil))
}

// TestConcurrentForks checks that forks from many goroutines at once each
// get their own child's exit.
//
// 16 goroutines are eight times the cores and the pool, so requests,
// replies and exits interleave on the one connection, and 128 forks each
// exit with a status of its own, so a reply or an exit delivered to the
// wrong Fork shows. 50 goroutines of 20 forks proved no more, at eight
// times the cost.
func TestConcurrentForks(t *testing.T) { eachPool(t, checkConcurrentForks) }

func checkConcurrentForks(t *testing.T, srv *forkserver.Server) {
	const workers, each = 16, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				code := byte((w*each + i) % 200)
				p, err := srv.Fork(forkserver.TestContext(t), exitWith, &forkserver.Attr{Arg: []byte{code}})
				if err != nil {
					errs <- err
					return
				}
				exit, err := p.Wait()
				if err != nil {
					errs <- err
				} else if exit.Status.ExitStatus() != int(code) || exit.Pid != p.Pid {
					errs <- fmt.Errorf("child %d: %s, want exit status %d", p.Pid, exit, code)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestThreadsDoNotGrow checks that neither the server nor the program needs
// a thread per child or per blocked read: the runtime poller parks
// goroutines.
func TestThreadsDoNotGrow(t *testing.T) {
	srv := start(t)
	before := forkserver.ProcStatus(t, os.Getpid(), "Threads")
	const n = 100
	for range n {
		ready(t, fork(t, srv, ignoreTerm, &forkserver.Attr{Socket: true}))
	}
	if got := forkserver.ProcStatus(t, srv.Pid(), "Threads"); got > 20 {
		t.Errorf("server has %d threads with %d children", got, n)
	}
	if got := forkserver.ProcStatus(t, os.Getpid(), "Threads"); got > before+10 {
		t.Errorf("program went from %d to %d threads with %d children", before, got, n)
	}
}

// TestNoLeaks checks that forks leave no descriptor, goroutine or zombie
// behind, in the program or the server.
//
// The counts are compared exactly, so a leak of one descriptor or
// goroutine per Fork leaves them 100 off after 100 forks, 50 with a
// connection to the server and 50 without; 500 proved no more. The
// warm-up Forks before the counts include a warm one with a socket, after
// which the Server holds the requester's end of a socket sent ahead to
// each warm child handed over (see sendSocketAhead); an Eval then replaces
// those handed over before, so that every one counted holds one.
func TestNoLeaks(t *testing.T) {
	for _, size := range []int{0, 2} {
		t.Run(fmt.Sprintf("pool=%d", size), func(t *testing.T) {
			checkNoLeaks(t, forkserver.StartWith(t, &forkserver.Config{PoolSize: size}), size)
		})
	}
}

func checkNoLeaks(t *testing.T, srv *forkserver.Server, pooled int) {
	warmUp := fork(t, srv, echo, &forkserver.Attr{Socket: true, Server: true})
	warmUp.Conn().Close()
	forkserver.Wait(t, warmUp)
	warmUp = fork(t, srv, echo, &forkserver.Attr{Socket: true})
	warmUp.Conn().Close()
	forkserver.Wait(t, warmUp)
	if err := srv.Eval(forkserver.TestContext(t), returnNil, nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitWarm(forkserver.TestContext(t)); err != nil {
		t.Fatal(err)
	}
	forkserver.Eventually(t, fmt.Sprintf("a pool of %d", pooled), func() bool { return len(forkserver.ChildrenOf(srv.Pid())) == pooled })
	fdsBefore, srvFdsBefore, goroutinesBefore := len(openFds()), forkserver.CountFds(t, srv.Pid()), runtime.NumGoroutine()
	for i := range 100 {
		attr := &forkserver.Attr{Socket: true, Server: i%2 == 0}
		p, err := srv.Fork(forkserver.TestContext(t), echo, attr)
		if err != nil {
			t.Fatal(err)
		}
		p.Conn().Close()
		forkserver.Wait(t, p)
	}
	// The server's count may have been taken while a refill held a
	// descriptor for a moment, so it may only end lower; a descriptor
	// leaked per Fork would leave it a hundred higher.
	settled := func() bool {
		return len(openFds()) == fdsBefore && forkserver.CountFds(t, srv.Pid()) <= srvFdsBefore &&
			runtime.NumGoroutine() <= goroutinesBefore && len(forkserver.ChildrenOf(srv.Pid())) == pooled
	}
	if !forkserver.Await(settled) {
		t.Errorf("program fds %d -> %d, server fds %d -> %d, goroutines %d -> %d, server's children %v",
			fdsBefore, len(openFds()), srvFdsBefore, forkserver.CountFds(t, srv.Pid()),
			goroutinesBefore, runtime.NumGoroutine(), forkserver.ChildrenOf(srv.Pid()))
	}
}

// TestProgramKilled checks that when the program dies, the server kills
// every child and exits.
func TestProgramKilled(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FORKSERVER_TEST_PROGRAM=victim")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "ready" {
		pid, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("victim said %q", sc.Text())
		}
		pids = append(pids, pid)
	}
	if len(pids) != 11 {
		t.Fatalf("victim reported %d pids, want 11", len(pids))
	}
	// The program also holds the pool's warm children, handed over by the
	// server, when it dies.
	var warm []int
	forkserver.Eventually(t, "the victim's pool to fill", func() bool {
		warm = slices.DeleteFunc(forkserver.ChildrenOf(pids[0]), func(pid int) bool { return slices.Contains(pids, pid) })
		return len(warm) == victimPool
	})
	cmd.Process.Kill()
	cmd.Wait()
	begin := time.Now()
	for _, pid := range append(pids, warm...) {
		forkserver.WaitGone(t, pid)
	}
	t.Logf("server, 10 children and %d warm ones gone %v after the program died", len(warm), time.Since(begin))
}

// TestServerKilled checks that when the server dies, every call fails and
// nothing hangs.
func TestServerKilled(t *testing.T) {
	srv := start(t)
	p := fork(t, srv, ignoreTerm, &forkserver.Attr{Socket: true})
	ready(t, p)
	defer syscall.Kill(p.Pid, syscall.SIGKILL) // orphaned by the server's death

	if err := syscall.Kill(srv.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(); !errors.Is(err, forkserver.ErrConnLost) {
		t.Errorf("Wait: %v, want ErrConnLost", err)
	}
	if _, err := srv.Fork(forkserver.TestContext(t), returnNil, nil); !errors.Is(err, forkserver.ErrConnLost) {
		t.Errorf("Fork: %v, want ErrConnLost", err)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, forkserver.ErrConnLost) {
		t.Errorf("Signal: %v, want ErrConnLost", err)
	}
	if err := srv.Stop(forkserver.TestContext(t)); !errors.Is(err, forkserver.ErrConnLost) {
		t.Errorf("Stop: %v, want ErrConnLost", err)
	}
}

// TestStartWithoutMain checks that Start in a program that never called
// Main fails with ErrNoMain and says why.
func TestStartWithoutMain(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FORKSERVER_TEST_PROGRAM=nomain")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "true forkserver: start: Main was not called") {
		t.Errorf("Start without Main: %q", out)
	}
}
