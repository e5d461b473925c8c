//go:build linux

package forkserver_test

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/forkserver/forkserver"
)

// TestRefillSurvivesConnectionEnds checks, on a machine whose processors
// are kept busy, where a plain pool's refill executes at idle priority for
// a long time, that connections ending meanwhile (each sweeps the server's
// strays) kill no refill: no warm Fork gets a child that was killed before
// it ran, and the pool is full again once the machine is quiet.
func TestRefillSurvivesConnectionEnds(t *testing.T) {
	var hogs []*exec.Cmd
	stopHogs := func() {
		for _, hog := range hogs {
			hog.Process.Kill()
			hog.Wait()
		}
		hogs = nil
	}
	defer stopHogs()
	for range runtime.NumCPU() {
		hog := exec.Command("/bin/sh", "-c", "while :; do :; done")
		if err := hog.Start(); err != nil {
			t.Fatal(err)
		}
		hogs = append(hogs, hog)
	}
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
