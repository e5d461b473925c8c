//go:build linux

package forkserver

// A connection handed to a child forks no more children than its bounds
// allow, and every child forked through it dies when it ends.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

var (
	// limitsSleeper runs until it is killed or its socket closes.
	limitsSleeper = Register("limits-sleeper", func(ctx context.Context, c *Child) error {
		if c.conn == nil {
			<-ctx.Done() // ends with SIGTERM; SIGKILL ends it anyway
			return nil
		}
		_, err := io.Copy(io.Discard, c.conn)
		return err
	})

	// limitsOrphaner forks a sleeper through its connection to the server,
	// writes the sleeper's pid on its socket as a line, and returns, which
	// ends that connection.
	limitsOrphaner = Register("limits-orphaner", func(ctx context.Context, c *Child) error {
		p, err := c.server.Fork(ctx, limitsSleeper, nil)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(c.conn, p.Pid)
		return err
	})

	// limitsCounter starts sleep programs through its connection to the
	// server until one is refused, writes on its socket how many it
	// started and why the next was refused, and returns, which ends its
	// connection and so the sleeps.
	limitsCounter = Register("limits-counter", func(ctx context.Context, c *Child) error {
		n := 0
		for ; n < 1000; n++ {
			if _, err := c.server.Exec(ctx, "/bin/sleep", []string{"sleep", "1000"}, nil); err != nil {
				_, err = fmt.Fprintf(c.conn, "%d %v\n", n, errors.Is(err, ErrChildLimit))
				return err
			}
		}
		_, err := fmt.Fprintf(c.conn, "%d unbounded\n", n)
		return err
	})

	// forkBomb forks itself through its connection to the server, each
	// child with a connection of its own, in bombers goroutines as fast as
	// it can; its children do the same. It runs until it is killed. The
	// first one, which has a socket, writes 'r' on it once one of its
	// Forks is refused with ErrChildLimit, a line for the first Fork that
	// fails otherwise, and closes its connection to the server when it
	// reads a byte.
	forkBomb = Register(forkBombName, func(ctx context.Context, c *Child) error {
		const bombers = 4
		bombing, stop := context.WithCancel(ctx)
		defer stop()
		var wg sync.WaitGroup
		var refused, failed sync.Once
		var mu sync.Mutex // one write at a time on the socket
		report := func(b []byte) {
			if c.conn != nil {
				mu.Lock()
				c.conn.Write(b)
				mu.Unlock()
			}
		}
		for range bombers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for bombing.Err() == nil {
					_, err := c.server.Fork(bombing, Func{forkBombName}, &Attr{Server: true})
					switch {
					case err == nil, bombing.Err() != nil:
					case errors.Is(err, ErrChildLimit):
						refused.Do(func() { report([]byte{'r'}) })
					default:
						failed.Do(func() { report([]byte(err.Error() + "\n")) })
						return
					}
				}
			}()
		}
		if c.conn != nil {
			if _, err := c.conn.Read(make([]byte, 1)); err != nil {
				return err
			}
			stop()
			wg.Wait()
			c.server.Close()
		}
		<-ctx.Done() // SIGKILL ends it sooner
		return nil
	})
)

const forkBombName = "fork-bomb"

// TestMaxChildren checks that, with a pool or without, Fork and Exec beyond
// Config.MaxChildren fail with ErrChildLimit until a child's exit makes
// room, and that the pool warms again as room comes.
func TestMaxChildren(t *testing.T) {
	for _, pool := range []int{0, 2} {
		t.Run(fmt.Sprintf("pool %d", pool), func(t *testing.T) {
			const limit = 3
			srv := startWith(t, &Config{PoolSize: pool, MaxChildren: limit})
			ctx := testContext(t)
			if err := srv.WaitWarm(ctx); err != nil {
				t.Fatal(err)
			}
			var alive []*Process
			for range limit {
				p, err := srv.Fork(ctx, limitsSleeper, &Attr{Socket: true})
				if err != nil {
					t.Fatal(err)
				}
				alive = append(alive, p)
			}
			if _, err := srv.Fork(ctx, limitsSleeper, nil); !errors.Is(err, ErrChildLimit) {
				t.Fatalf("fork beyond MaxChildren: %v, want ErrChildLimit", err)
			}
			if _, err := srv.Exec(ctx, "/bin/true", nil, nil); !errors.Is(err, ErrChildLimit) {
				t.Fatalf("exec beyond MaxChildren: %v, want ErrChildLimit", err)
			}
			// Once one has exited, and Wait says so, there is room again.
			alive[0].conn.Close()
			waitSuccess(t, alive[0])
			p, err := srv.Fork(ctx, limitsSleeper, &Attr{Socket: true})
			if err != nil {
				t.Fatalf("fork after a child exited: %v", err)
			}
			for _, p := range append(alive[1:], p) {
				p.conn.Close()
				waitSuccess(t, p)
			}
			// The replacements that found no room are handed over as
			// room comes.
			if err := srv.WaitWarm(ctx); err != nil {
				t.Fatalf("the pool did not warm again: %v", err)
			}
		})
	}
}

// TestServerMaxChildrenBounded checks that a child's connection may not be
// given a ServerMaxChildren above the program's MaxChildren
// (ErrPermission), nor a negative one.
func TestServerMaxChildrenBounded(t *testing.T) {
	srv := startWith(t, &Config{MaxChildren: 5})
	ctx := testContext(t)
	_, err := srv.Fork(ctx, limitsSleeper, &Attr{Server: true, ServerMaxChildren: 6})
	if !errors.Is(err, ErrPermission) {
		t.Fatalf("a connection bound above the program's: %v, want ErrPermission", err)
	}
	if _, err := srv.Fork(ctx, limitsSleeper, &Attr{Server: true, ServerMaxChildren: -1}); err == nil {
		t.Fatal("a negative ServerMaxChildren was accepted")
	}
}

// TestServerMaxChildrenDefault checks that a connection handed to a child
// is bounded to 64 children alive when its requester asks for no bound,
// and to what it asks for otherwise, above 64 too.
func TestServerMaxChildrenDefault(t *testing.T) {
	srv := startWith(t, nil)
	for _, c := range []struct{ ask, want int }{{0, 64}, {70, 70}} {
		p, err := srv.Fork(testContext(t), limitsCounter, &Attr{Socket: true, Server: true, ServerMaxChildren: c.ask})
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(p.conn).ReadString('\n')
		p.conn.Close()
		if want := fmt.Sprintf("%d true\n", c.want); line != want {
			t.Errorf("ServerMaxChildren %d: the child started %q, %v; want %q: refused with ErrChildLimit beyond %d", c.ask, line, err, want, c.want)
		}
		waitSuccess(t, p)
	}
	eventually(t, "the sleeps to be killed with their requester", func() bool { return len(childrenOf(srv.Pid())) == 0 })
}

// TestChildrenDieWithRequester: a child's connection ends as it exits, and
// the child it forked through it is killed.
func TestChildrenDieWithRequester(t *testing.T) {
	srv := startWith(t, nil)
	p, err := srv.Fork(testContext(t), limitsOrphaner, &Attr{Socket: true, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.conn.Close()
	line, err := bufio.NewReader(p.conn).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(line[:len(line)-1])
	if err != nil {
		t.Fatalf("orphaner wrote %q", line)
	}
	waitSuccess(t, p)
	waitGone(t, pid)
}

// TestHostileForkBomb: a child that may fork forks as fast as it can, and
// so do its children. The server holds them to the bound of the first
// one's connection, keeps serving the program, and when the first one
// ends, in each way it can, kills and reaps every one of its descendants.
func TestHostileForkBomb(t *testing.T) {
	e := startHostile(t)
	pid := e.srv.Pid()
	const bound = 6
	for _, end := range []string{"SignalGroup", "KillAll", "connection closed"} {
		t.Run(end, func(t *testing.T) {
			ctx := testContext(t)
			bomb, err := e.srv.Fork(ctx, forkBomb, &Attr{Socket: true, Server: true, ServerMaxChildren: bound, Setpgid: true})
			if err != nil {
				t.Fatal(err)
			}
			defer bomb.conn.Close()
			expectByte(t, bomb.conn, 'r')

			// The program forks and talks to its children as ever, and
			// the bomb never has more than its bound alive: the server's
			// children are the bomb, its descendants and the program's
			// echo child.
			for range 10 {
				echo := e.forkEcho(t, nil)
				if n := len(childrenOf(pid)); n > 1+bound+1 {
					t.Errorf("%d children of the server, want at most %d", n, 1+bound+1)
				}
				if _, err := echo.conn.Write([]byte{'x'}); err != nil {
					t.Fatal(err)
				}
				expectByte(t, echo.conn, 'x')
				echo.conn.Close()
				wait(t, echo)
			}

			switch end {
			case "SignalGroup":
				err = bomb.SignalGroup(syscall.SIGKILL)
			case "KillAll":
				err = e.srv.KillAll(syscall.SIGKILL)
			case "connection closed":
				if _, err = bomb.conn.Write([]byte{'c'}); err == nil {
					// Its descendants die while it lives on.
					eventually(t, "the bomb's descendants to be reaped", func() bool {
						return len(childrenOf(pid)) == 1
					})
					err = bomb.Signal(syscall.SIGKILL)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if exit := wait(t, bomb); exit.Status.Signal() != syscall.SIGKILL {
				t.Errorf("bomb: %s, want killed", exit)
			}
			if b, _ := io.ReadAll(bomb.conn); len(b) > 0 {
				t.Errorf("a Fork failed otherwise than at the bound: %q", b)
			}
			e.settle(t)
		})
	}
}
