//go:build linux

package forkserver_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/forkserver/forkserver"
)

// spendTime spins, calling getrusage, until it has spent CPU time both in
// user mode and in the kernel, as its own getrusage counts it.
var spendTime = forkserver.Register("spend-time", func(ctx context.Context, c *forkserver.Child) error {
	for {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return err
		}
		if ru.Utime.Nano() > 0 && ru.Stime.Nano() > 0 {
			return nil
		}
	}
})

// TestCancelKills checks that the end of a Fork's ctx kills the child, by
// default with SIGKILL, and Wait reports it, whether a warm child took the
// Fork or the server created the child.
func TestCancelKills(t *testing.T) {
	eachPool(t, func(t *testing.T, srv *forkserver.Server) {
		exit, err := cancelRunning(t, srv, faultHang, &forkserver.Attr{}) // SIGTERM would not end it
		if exit == nil || exit.Status.Signal() != syscall.SIGKILL || exit.ExitCode() != -1 {
			t.Errorf("child after its ctx ended: %v, exit code %d; want killed by SIGKILL, -1", exit, exit.ExitCode())
		}
		var e *forkserver.Error
		if !errors.Is(err, context.Canceled) || !errors.As(err, &e) || err.Error() != "forkserver: wait fault-hang: context canceled" {
			t.Errorf("Wait after the ctx ended: %v; want forkserver: wait fault-hang: context canceled", err)
		}
	})
}

// cancelRunning forks fn with attr and a socket, waits until the child is
// ready, ends the Fork's ctx and returns what Wait then does.
func cancelRunning(t *testing.T, srv *forkserver.Server, fn forkserver.Func, attr *forkserver.Attr) (*forkserver.Exit, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(forkserver.TestContext(t))
	defer cancel()
	attr.Socket = true
	p, err := srv.Fork(ctx, fn, attr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Conn().Close()
	ready(t, p)
	cancel()
	return forkserver.WaitBounded(t, p)
}

// TestCancelSignal checks that Attr.Cancel chooses the signal: SIGTERM
// cancels a Go child's context, and the child ends as its function decides.
// Wait reports the ctx's end even though the child exited 0, as os/exec
// does.
func TestCancelSignal(t *testing.T) {
	eachPool(t, func(t *testing.T, srv *forkserver.Server) {
		exit, err := cancelRunning(t, srv, untilTerm, &forkserver.Attr{Cancel: syscall.SIGTERM, WaitDelay: forkserver.HangBound})
		if exit == nil || !exit.Success() || !errors.Is(err, context.Canceled) {
			t.Errorf("child sent SIGTERM as its ctx ended: %v, %v; want exit status 0 and context.Canceled", exit, err)
		}
	})
}

// TestCancelWaitDelay checks that a child that outlasts Attr.WaitDelay
// after Attr.Cancel gets SIGKILL.
func TestCancelWaitDelay(t *testing.T) {
	exit, err := cancelRunning(t, start(t), faultHang, &forkserver.Attr{Cancel: syscall.SIGTERM, WaitDelay: 1})
	if exit == nil || exit.Status.Signal() != syscall.SIGKILL || !errors.Is(err, context.Canceled) {
		t.Errorf("child that ignores SIGTERM: %v, %v; want SIGKILL after WaitDelay, and context.Canceled", exit, err)
	}
}

// TestCancelExec checks that an Exec's ctx governs the program's life as a
// Fork's does.
func TestCancelExec(t *testing.T) {
	srv := start(t)
	ctx, cancel := context.WithCancel(forkserver.TestContext(t))
	defer cancel()
	r, w := forkserver.TestPipe(t)
	p, err := srv.Exec(ctx, "/bin/sh", []string{"sh", "-c", "echo ready; exec sleep 1000"}, &forkserver.Attr{Stdout: w})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := r.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	cancel()
	exit, err := forkserver.WaitBounded(t, p)
	if exit == nil || exit.Status.Signal() != syscall.SIGKILL || !errors.Is(err, context.Canceled) {
		t.Errorf("program after its ctx ended: %v, %v; want SIGKILL and context.Canceled", exit, err)
	}
}

// TestCancelAfterExit checks that a ctx that ends after the child's exit is
// known changes nothing, and a ctx that can never end is not watched at
// all: no goroutine or callback is left waiting for it.
func TestCancelAfterExit(t *testing.T) {
	eachPool(t, func(t *testing.T, srv *forkserver.Server) {
		ctx, cancel := context.WithCancel(forkserver.TestContext(t))
		p, err := srv.Fork(ctx, faultHang, &forkserver.Attr{Socket: true})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Conn().Close()
		if !forkserver.Watching(p) {
			t.Error("a child forked with a ctx that can end does not watch it")
		}
		q, err := srv.Fork(ctx, returnNil, nil)
		if err != nil {
			t.Fatal(err)
		}
		forkserver.WaitSuccess(t, q)
		if forkserver.Watching(q) {
			t.Error("a child whose exit is known still watches its ctx")
		}
		cancel()
		if exit, err := q.Wait(); err != nil || !exit.Success() {
			t.Errorf("Wait after the ctx of a child that had exited ended: %v, %v; want success, no error", exit, err)
		}
		r, err := srv.Fork(context.Background(), faultHang, &forkserver.Attr{Socket: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Conn().Close()
		if forkserver.Watching(r) {
			t.Error("a child forked with context.Background watches it")
		}
		ready(t, r)
		if err := r.Kill(); err != nil {
			t.Fatal(err)
		}
		if exit := forkserver.Wait(t, r); exit.Status.Signal() != syscall.SIGKILL {
			t.Errorf("child after Kill: %v", exit)
		}
		if err := r.Kill(); !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("Kill after the exit: %v, want os.ErrProcessDone", err)
		}
	})
}

// TestExitCodeAndTimes checks that ExitCode is the status of an exit and -1
// for a signal, and that UserTime and SystemTime show the time a child
// spent.
func TestExitCodeAndTimes(t *testing.T) {
	eachPool(t, func(t *testing.T, srv *forkserver.Server) {
		exit := forkserver.Wait(t, fork(t, srv, exitWith, &forkserver.Attr{Arg: []byte{3}}))
		if exit.ExitCode() != 3 {
			t.Errorf("ExitCode of %v: %d, want 3", exit, exit.ExitCode())
		}
		exit = forkserver.Wait(t, fork(t, srv, killSelf, nil))
		if exit.ExitCode() != -1 {
			t.Errorf("ExitCode of %v: %d, want -1", exit, exit.ExitCode())
		}
		exit = forkserver.Wait(t, fork(t, srv, spendTime, nil))
		if exit.UserTime() <= 0 || exit.SystemTime() <= 0 {
			t.Errorf("child that spent time in user mode and in the kernel: user %v, system %v", exit.UserTime(), exit.SystemTime())
		}
	})
}

// TestSignalType checks that signals are os.Signals, as os.Process's are,
// and that only a syscall.Signal can be sent.
func TestSignalType(t *testing.T) {
	srv := start(t)
	p := fork(t, srv, faultHang, &forkserver.Attr{Socket: true})
	ready(t, p)
	for name, send := range map[string]func(os.Signal) error{"Signal": p.Signal, "SignalGroup": p.SignalGroup, "KillAll": srv.KillAll, "KillAllGroups": srv.KillAllGroups} {
		if err := send(fakeSignal{}); err == nil {
			t.Errorf("%s of a signal that is not a syscall.Signal: %v, want an error", name, err)
		}
	}
	_, err := srv.Fork(forkserver.TestContext(t), returnNil, &forkserver.Attr{Cancel: fakeSignal{}})
	if want := "forkserver: fork return-nil: Attr.Cancel: unsupported signal type forkserver_test.fakeSignal"; err == nil || err.Error() != want {
		t.Errorf("Fork with a Cancel that is not a syscall.Signal: %v, want %s", err, want)
	}
	if err := p.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if exit := forkserver.Wait(t, p); exit.Status.Signal() != syscall.SIGINT {
		t.Errorf("child sent os.Interrupt: %v", exit)
	}
}

type fakeSignal struct{}

func (fakeSignal) String() string { return "fake" }
func (fakeSignal) Signal()        {}

// TestForeignProcess checks that a Process that Fork or Exec did not
// return, such as one made from a pid, answers every method with an error
// or a zero value, never a panic.
func TestForeignProcess(t *testing.T) {
	for name, p := range map[string]*forkserver.Process{"zero": {}, "pid": {Pid: os.Getpid()}} {
		t.Run(name, func(t *testing.T) {
			const cause = ": the Process was not returned by Fork or Exec"
			for _, c := range []struct {
				method string
				err    error
				want   string
			}{
				{"Signal", p.Signal(syscall.SIGTERM), "forkserver: signal" + cause},
				{"SignalGroup", p.SignalGroup(syscall.SIGTERM), "forkserver: signal group" + cause},
				{"Kill", p.Kill(), "forkserver: signal" + cause},
			} {
				if c.err == nil || c.err.Error() != c.want {
					t.Errorf("%s: %v, want %s", c.method, c.err, c.want)
				}
			}
			if exit, err := p.Wait(); exit != nil || err == nil || err.Error() != "forkserver: wait"+cause {
				t.Errorf("Wait: %v, %v", exit, err)
			}
			select {
			case <-p.Done():
			default:
				t.Error("Done is not closed, though Wait returns at once")
			}
			if p.Conn() != nil {
				t.Error("Conn is not nil")
			}
		})
	}
}

// TestServerStopped checks that a server stopped by SIGSTOP cannot hang
// the program: Stop with a 1 s ctx returns by 1.5 s and Close by 2 s, both
// having killed the server and its child, and a pending Wait and a pending
// Fork return ErrClosed within 2 s after that.
func TestServerStopped(t *testing.T) {
	for _, c := range []struct {
		name  string
		bound time.Duration
		end   func(*forkserver.Server) error
		want  error
	}{
		{"Stop", 1500 * time.Millisecond, func(srv *forkserver.Server) error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			return srv.Stop(ctx)
		}, context.DeadlineExceeded},
		{"Close", 2 * time.Second, (*forkserver.Server).Close, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := start(t)
			p := fork(t, srv, ignoreTerm, &forkserver.Attr{Socket: true})
			ready(t, p)
			if err := syscall.Kill(srv.Pid(), syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if forkserver.Alive(srv.Pid()) {
					syscall.Kill(srv.Pid(), syscall.SIGCONT)
				}
			})
			pending := make(chan error, 2)
			go func() {
				_, err := p.Wait()
				pending <- err
			}()
			go func() {
				q, err := srv.Fork(context.Background(), returnNil, nil)
				if err == nil {
					_, err = q.Wait()
				}
				pending <- err
			}()
			begun := time.Now()
			err := c.end(srv)
			if took := time.Since(begun); took > c.bound || !errors.Is(err, c.want) {
				t.Errorf("%s of a stopped server: %v after %v; want %v within %v", c.name, err, took, c.want, c.bound)
			}
			ended := time.Now()
			for range 2 {
				select {
				case err := <-pending:
					if took := time.Since(ended); took > 2*time.Second || !errors.Is(err, forkserver.ErrClosed) {
						t.Errorf("pending call: %v %v after %s; want ErrClosed within 2s", err, took, c.name)
					}
				case <-time.After(forkserver.HangBound):
					t.Fatalf("a pending call still blocked %v after %s", forkserver.HangBound, c.name)
				}
			}
			// The keeper killed what the server left before it exited.
			for _, pid := range []int{srv.Pid(), p.Pid} {
				if forkserver.Alive(pid) {
					t.Errorf("process %d alive after %s of the stopped server", pid, c.name)
				}
			}
		})
	}
}

// TestLaunchRace checks that a child whose exit reaches the connection's
// reader before its Fork or Exec has read the launch's reply is reported as
// it ended, not as a failure of the launch: many concurrent Execs of
// /bin/true and cold Forks, in a program whose processors are all kept
// busy, each succeed and exit 0.
func TestLaunchRace(t *testing.T) {
	const (
		callers = 8
		calls   = 2000 // in all, or as many as fit in budget
		budget  = 8 * time.Second
	)
	srv := start(t)
	ctx := forkserver.TestContext(t)
	stop := make(chan struct{})
	var spinners sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		spinners.Add(1)
		go func() {
			defer spinners.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	defer spinners.Wait()
	defer close(stop)
	deadline := time.Now().Add(budget)
	var next, made, failed atomic.Int64
	var callersDone sync.WaitGroup
	for i := range callers {
		callersDone.Add(1)
		go func() {
			defer callersDone.Done()
			for next.Add(1) <= calls && time.Now().Before(deadline) {
				var p *forkserver.Process
				var err error
				if i%2 == 0 {
					p, err = srv.Exec(ctx, "/bin/true", []string{"true"}, nil)
				} else {
					p, err = srv.Fork(ctx, returnNil, nil)
				}
				if err == nil {
					var exit *forkserver.Exit
					if exit, err = p.Wait(); err == nil && !exit.Success() {
						err = errors.New(exit.String())
					}
				}
				if err != nil && failed.Add(1) <= 3 {
					t.Errorf("caller %d: %v", i, err)
				}
				made.Add(1)
			}
		}()
	}
	callersDone.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d calls failed", n, made.Load())
	}
	t.Logf("%d calls", made.Load())
}
