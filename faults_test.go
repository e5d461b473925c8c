//go:build linux

package forkserver_test

// Fault injection through the public API: the program killed while the
// server is busy, the server killed under blocked calls, hundreds of exits at
// once, a Stop that must fall back to SIGKILL on a tree of children, and a
// server that cannot allocate descriptors.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/forkserver/forkserver"
)

// TestFaultProgramKilledBusy checks that when the program is killed while
// its server has 200 children and 50 Forks in flight, the server and every
// child it created, those of the Forks in flight included, are gone soon
// after.
func TestFaultProgramKilledBusy(t *testing.T) {
	outR, outW := forkserver.TestPipe(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FORKSERVER_TEST_PROGRAM=fault-busy")
	cmd.Stdout = outW
	cmd.Stderr = os.Stderr
	err := cmd.Start()
	outW.Close()
	if err != nil {
		t.Fatal(err)
	}
	var mark string
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		// After a failure, kill what is left, the server included.
		if mark != "" {
			forkserver.Eventually(t, "the marked processes to end", func() bool {
				left := markedProcs(mark)
				for _, pid := range left {
					syscall.Kill(pid, syscall.SIGKILL)
				}
				return len(left) == 0
			})
		}
	})

	outR.SetReadDeadline(time.Now().Add(forkserver.HangBound))
	var pids []int
	sc := bufio.NewScanner(outR)
	for sc.Scan() && sc.Text() != "busy" {
		switch f := strings.Fields(sc.Text()); {
		case len(f) == 2 && f[0] == "mark":
			mark = f[1]
		case len(f) == 2 && f[0] == "pid":
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("program said %q", sc.Text())
			}
			pids = append(pids, pid)
		default:
			t.Fatalf("program said %q", sc.Text())
		}
	}
	if sc.Text() != "busy" {
		t.Fatalf("program ended its output before it was busy: %v", sc.Err())
	}
	if mark == "" || len(pids) != 1+200 {
		t.Fatalf("program reported mark %q and %d pids, want a mark and 201 pids", mark, len(pids))
	}
	srvPid := pids[0]
	running := len(markedProcs(mark)) // the server, its 200 children, and those of Forks done so far
	if running < 1+200 {
		t.Fatalf("found %d processes with the mark, want at least the server and its 200 children", running)
	}

	// On Linux the server's parent is its keeper, which kills what the
	// server leaves behind: only once both are gone is that left for good.
	keeper := parentOf(srvPid)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	begin := time.Now()
	var left []int
	if !forkserver.Await(func() bool {
		left = markedProcs(mark)
		for _, pid := range pids {
			if forkserver.Alive(pid) && !slices.Contains(left, pid) {
				left = append(left, pid)
			}
		}
		if len(left) > 0 && !forkserver.Alive(srvPid) && !forkserver.Alive(keeper) {
			// Nothing kills what the server and its keeper leave behind:
			// a process not already dying is there for good.
			if leaked := notDying(left); len(leaked) > 0 {
				t.Fatalf("server gone %v after the program died, but %d of its children live on, not dying, e.g. %v",
					time.Since(begin), len(leaked), leaked[:min(len(leaked), 10)])
			}
		}
		return len(left) == 0
	}) {
		t.Fatalf("%d processes still running %v after the program died, e.g. %v", len(left), forkserver.HangBound, left[:min(len(left), 10)])
	}
	t.Logf("the server and every child (%d running before the kill, 200 of them known), those of 50 Forks in flight included, all gone %v after the program died",
		running-1, time.Since(begin))
}

// TestFaultServerKilledUnblocks checks that when the server dies, every
// call blocked on it returns ErrConnLost, and the goroutines behind them
// end.
func TestFaultServerKilledUnblocks(t *testing.T) {
	var orphans []int
	t.Cleanup(func() { // after the servers' own cleanup: they are dead
		for _, pid := range orphans {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	baseline := runtime.NumGoroutine()
	srv := start(t)
	var procs []*forkserver.Process
	for range 3 {
		p := fork(t, srv, faultHang, &forkserver.Attr{Socket: true})
		ready(t, p)
		orphans = append(orphans, p.Pid)
		procs = append(procs, p)
	}
	// A second server, busy with a Stop that its child's ignoring SIGTERM
	// makes wait.
	stopped := start(t)
	sp := fork(t, stopped, faultTermReport, &forkserver.Attr{Socket: true})
	ready(t, sp)
	orphans = append(orphans, sp.Pid)

	type result struct {
		call string
		err  error
	}
	results := make(chan result, 100)
	calls := 0
	// call runs fn in a goroutine and waits until it is under way: until
	// it says so, or at once for calls that are simply blocked.
	call := func(name string, fn func(running func()) error) {
		calls++
		running := make(chan struct{})
		var once sync.Once
		go func() {
			err := fn(func() { once.Do(func() { close(running) }) })
			once.Do(func() { close(running) })
			results <- result{name, err}
		}()
		<-running
	}
	blocked := func(f func() error) func(func()) error {
		return func(running func()) error { running(); return f() }
	}
	for i, p := range procs {
		call(fmt.Sprintf("Wait %d", i), blocked(func() error { _, err := p.Wait(); return err }))
		call(fmt.Sprintf("Signal loop %d", i), func(running func()) error {
			for {
				if err := p.Signal(syscall.Signal(0)); err != nil {
					return err
				}
				running()
			}
		})
	}
	for i := range 2 {
		call(fmt.Sprintf("KillAll loop %d", i), func(running func()) error {
			for {
				if err := srv.KillAll(syscall.Signal(0)); err != nil {
					return err
				}
				running()
			}
		})
	}
	call("Fork loop", func(running func()) error {
		for {
			p, err := srv.Fork(context.Background(), returnNil, nil)
			if err != nil {
				return err
			}
			<-p.Done()
			running()
		}
	})
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	evalStarted, err := os.OpenFile(fifo, os.O_RDWR, 0) // opens at once: it is a writer too
	if err != nil {
		t.Fatal(err)
	}
	defer evalStarted.Close()
	call("Eval", func(running func()) error {
		running()
		return srv.Eval(context.Background(), faultBlock, []byte(fifo))
	})
	evalStarted.SetReadDeadline(time.Now().Add(forkserver.HangBound))
	if _, err := io.ReadFull(evalStarted, make([]byte, 1)); err != nil {
		t.Fatalf("Eval did not start in the server: %v", err)
	}
	call("Stop", func(running func()) error {
		running()
		return stopped.Stop(context.Background())
	})
	forkserver.ExpectByte(t, sp.Conn(), 2) // Stop's SIGTERM reached the child

	for _, s := range []*forkserver.Server{srv, stopped} {
		if err := syscall.Kill(s.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	timeout := time.After(forkserver.HangBound)
	for range calls {
		select {
		case r := <-results:
			if !errors.Is(r.err, forkserver.ErrConnLost) {
				t.Errorf("%s returned %v, want ErrConnLost", r.call, r.err)
			}
		case <-timeout:
			t.Fatalf("calls still blocked %v after the servers died", forkserver.HangBound)
		}
	}
	if !forkserver.Await(func() bool { return runtime.NumGoroutine() <= baseline }) {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines, %d before the servers started:\n%s",
			runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
	}
}

// TestFaultManyExitAtOnce checks that hundreds of children released at once
// exit at once: every exit arrives, once, with its own status.
//
// Exits that come together reach the server at once: one wake-up of its
// watcher (on macOS, one SIGCHLD, which does not queue) finds many children
// exited, and each must be reaped and told. 256 exiting within the same
// moment make that certain, and give every child a status of its own, so
// an exit delivered twice, lost or to the wrong Fork shows; 1,000 proved
// no more, at four times the cost.
func TestFaultManyExitAtOnce(t *testing.T) {
	const n = 256
	srv := start(t)
	// Every child reads the release pipe until it ends, after writing a
	// byte to the ready pipe: four descriptors for all the children.
	releaseR, releaseW := forkserver.TestPipe(t) // closed on failure too: the children exit
	readyR, readyW := forkserver.TestPipe(t)

	begin := time.Now()
	procs := make([]*forkserver.Process, n)
	var wg sync.WaitGroup
	const workers = 4
	errs := make(chan error, workers)
	ctx := forkserver.TestContext(t)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				p, err := srv.Fork(ctx, faultExitOnRelease, &forkserver.Attr{
					Arg:   []byte{byte(i % 256)},
					Files: []*os.File{releaseR, readyW},
				})
				if err != nil {
					errs <- fmt.Errorf("Fork %d: %w", i, err)
					return
				}
				procs[i] = p
			}
		}()
	}
	wg.Wait()
	releaseR.Close()
	readyW.Close()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	forked := time.Since(begin)
	readyR.SetReadDeadline(time.Now().Add(forkserver.HangBound))
	if got, err := io.ReadFull(readyR, make([]byte, n)); err != nil {
		t.Fatalf("%d of %d children ready: %v", got, n, err)
	}
	readied := time.Since(begin)

	releaseW.Close()
	release := time.Now()
	pids := map[int]int{}
	for i, p := range procs {
		exit := forkserver.Wait(t, p)
		if exit.Pid != p.Pid || !exit.Status.Exited() || exit.Status.ExitStatus() != i%256 {
			t.Errorf("child %d (pid %d): exit %s of pid %d, want exit status %d of pid %d", i, p.Pid, exit, exit.Pid, i%256, p.Pid)
		}
		if j, dup := pids[exit.Pid]; dup {
			t.Errorf("children %d and %d both report pid %d", j, i, exit.Pid)
		}
		pids[exit.Pid] = i
	}
	t.Logf("%d children forked in %v, ready after %v; all exits in %v after the release", n, forked, readied, time.Since(release))
	// Every exit is reported once the server has reaped its process: the
	// server has nothing left, zombies included.
	if kids := forkserver.ChildrenOf(srv.Pid()); len(kids) != 0 {
		t.Errorf("server still has %d children after every exit arrived: %v", len(kids), kids)
	}
	forkserver.Wait(t, fork(t, srv, returnNil, nil)) // and still serves
}

// TestFaultStopGrandchildrenIgnoreTerm checks that Stop with a short
// deadline kills a child and its grandchildren that all ignore SIGTERM, and
// returns once they and the server are gone.
func TestFaultStopGrandchildrenIgnoreTerm(t *testing.T) {
	var pids []int
	t.Cleanup(func() { // after the server's own cleanup: only on failure
		for _, pid := range pids {
			if forkserver.Alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	srv := start(t)
	const grandchildren = 3
	p := fork(t, srv, faultSpawnHang, &forkserver.Attr{Socket: true, Server: true, Arg: []byte{grandchildren}})
	pids = append(pids, p.Pid)
	p.Conn().SetReadDeadline(time.Now().Add(forkserver.HangBound))
	line, err := bufio.NewReader(p.Conn()).ReadString('\n')
	if err != nil {
		t.Fatalf("child reported %q: %v", line, err)
	}
	for _, f := range strings.Fields(line) {
		pid, err := strconv.Atoi(f)
		if err != nil || !forkserver.Alive(pid) {
			t.Fatalf("child reported %q", line)
		}
		pids = append(pids, pid)
	}
	if len(pids) != 1+grandchildren {
		t.Fatalf("child reported %q, want %d pids", line, grandchildren)
	}

	// The deadline only makes Stop take its SIGKILL path.
	ctx, cancel := context.WithTimeout(forkserver.TestContext(t), 300*time.Millisecond)
	defer cancel()
	if err := srv.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop: %v, want context.DeadlineExceeded", err)
	}
	// Stop returns once every child is reaped and the server has exited.
	for _, pid := range pids {
		if forkserver.Alive(pid) {
			t.Errorf("process %d still running after Stop returned", pid)
		}
	}
	if forkserver.Alive(srv.Pid()) {
		t.Errorf("server %d still running after Stop returned", srv.Pid())
	}
	select {
	case <-p.Done():
		if exit, err := p.Wait(); err != nil || exit.Status.Signal() != syscall.SIGKILL {
			t.Errorf("child ended with %v, %v; want signal: killed", exit, err)
		}
	default:
		t.Errorf("child's exit not delivered before Stop returned")
	}
}

// TestFaultForkRefused checks that a server that cannot allocate a
// descriptor refuses a Fork with an error that names the cause, and serves
// again once it can.
func TestFaultForkRefused(t *testing.T) {
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	// Every Fork sends the server at least the write end of its exit pipe,
	// which the server cannot receive.
	testForkRefused(t, "recvmsg", map[string]*forkserver.Attr{
		"nothing":     nil,
		"Attr.Server": {Server: true},
		"Attr.Socket": {Socket: true},
		"Attr.Files":  {Files: []*os.File{devNull}},
	})
}

// testForkRefused runs a new server out of descriptors, checks that a Fork
// with each of attrs fails with EMFILE from the system call op, and that
// the server serves again once the limit is restored.
func testForkRefused(t *testing.T, op string, attrs map[string]*forkserver.Attr) {
	if op == "" {
		t.Fatal("testForkRefused needs the operation that fails")
	}
	srv := start(t)
	ctx := forkserver.TestContext(t)
	survivor := fork(t, srv, faultHang, &forkserver.Attr{Socket: true})
	ready(t, survivor)
	if err := srv.Eval(ctx, faultSetrlimitNofile, []byte("low")); err != nil {
		t.Fatal(err)
	}
	restored := false
	defer func() {
		if !restored {
			srv.Eval(ctx, faultSetrlimitNofile, []byte("restore"))
		}
	}()

	for given, attr := range attrs {
		_, err := srv.Fork(ctx, returnNil, attr)
		if !errors.Is(err, syscall.EMFILE) || !strings.Contains(err.Error(), op+": ") || errors.Is(err, forkserver.ErrConnLost) {
			t.Errorf("Fork given %s, with the server out of descriptors: %v; want EMFILE from %s", given, err, op)
		} else {
			t.Logf("Fork given %s: %v", given, err)
		}
	}
	// The server is still there and answers.
	if err := survivor.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("Signal with the server out of descriptors: %v", err)
	}
	if err := srv.KillAll(syscall.Signal(0)); err != nil {
		t.Errorf("KillAll with the server out of descriptors: %v", err)
	}

	if err := srv.Eval(ctx, faultSetrlimitNofile, []byte("restore")); err != nil {
		t.Fatal(err)
	}
	restored = true
	if exit := forkserver.Wait(t, fork(t, srv, returnNil, nil)); !exit.Success() {
		t.Errorf("Fork after the limit was restored: %s", exit)
	}
	if exit := forkserver.Wait(t, fork(t, srv, echoArg, &forkserver.Attr{Socket: true})); !exit.Success() {
		t.Errorf("Fork with a socket after the limit was restored: %s", exit)
	}
	if err := survivor.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if exit := forkserver.Wait(t, survivor); exit.Status.Signal() != syscall.SIGKILL {
		t.Errorf("child that lived through it ended with %s", exit)
	}
}

// parentOf returns the pid of pid's parent, or 0 if pid is gone.
func parentOf(pid int) int {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
