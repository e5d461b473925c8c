//go:build linux

package forkserver_test

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/forkserver/forkserver"
)

// startHogs starts n processes that keep a processor busy each, until the
// test ends or stop is called.
func startHogs(t *testing.T, n int) (stop func()) {
	var hogs []*exec.Cmd
	stop = func() {
		for _, hog := range hogs {
			hog.Process.Kill()
			hog.Wait()
		}
		hogs = nil
	}
	t.Cleanup(stop)
	for range n {
		hog := exec.Command("/bin/sh", "-c", "while :; do :; done")
		if err := hog.Start(); err != nil {
			t.Fatal(err)
		}
		hogs = append(hogs, hog)
	}
	return stop
}

// TestRefillSurvivesConnectionEnds checks, on a machine whose processors
// are kept busy, where a plain pool's refill executes at idle priority for
// a long time, that connections ending meanwhile (each sweeps the server's
// strays) kill no refill: no warm Fork gets a child that was killed before
// it ran, and the pool is full again once the machine is quiet.
func TestRefillSurvivesConnectionEnds(t *testing.T) {
	stopHogs := startHogs(t, runtime.NumCPU())
	srv := forkserver.StartWith(t, &forkserver.Config{PoolSize: 2})
	ctx := forkserver.TestContext(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // children with a connection of their own, which ends as they exit
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if p, err := srv.Fork(ctx, returnNil, &forkserver.Attr{Server: true}); err == nil {
				p.Wait()
			}
		}
	}()
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		p, err := srv.Fork(ctx, returnNil, nil)
		if err != nil {
			t.Fatal(err)
		}
		exit := forkserver.Wait(t, p)
		if exit.Status.Signaled() && exit.Status.Signal() == syscall.SIGKILL {
			t.Errorf("child %d was killed before it ran its function", exit.Pid)
		}
	}
	close(stop)
	wg.Wait()
	stopHogs()
	if err := srv.WaitWarm(ctx); err != nil {
		t.Errorf("the pool did not refill once the machine was quiet: %v (%+v)", err, srv.Stats())
	}
}

// TestCloseDuringRefillQuiet checks that a server closed while its plain
// pool's refill is creating a child, on processors kept busy, says nothing
// on its standard error: the child the stop kills is no failure to start.
// The servers run in an execution of the test binary of their own, whose
// output the test reads.
func TestCloseDuringRefillQuiet(t *testing.T) {
	if os.Getenv("FORKSERVER_TEST_CLOSE_LOOP") != "" {
		for i := range 20 {
			srv, err := forkserver.Start(&forkserver.Config{PoolSize: 2})
			if err != nil {
				t.Fatal(err)
			}
			// Each Close comes at another point of the refill Start
			// began, 0 to 1.5 ms in: a spread of timings, not a wait.
			time.Sleep(time.Duration(i%6) * 300 * time.Microsecond)
			srv.Close()
		}
		return
	}
	// Busy processors keep the idle exec of the refill going while the
	// server is closed.
	startHogs(t, 2*runtime.NumCPU())
	cmd := exec.Command(os.Args[0], "-test.run=^TestCloseDuringRefillQuiet$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FORKSERVER_TEST_CLOSE_LOOP=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, "forkserver: server:") {
			t.Errorf("a server that was only closed said: %s", strings.TrimSpace(line))
		}
	}
}
