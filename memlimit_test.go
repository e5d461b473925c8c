//go:build linux

package forkserver_test

// Attr.MemoryLimit: a Go child lives within it under the README's
// settings, warm and cold, and one that keeps allocating past it ends as
// documented.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"

	"github.com/forkserver/forkserver"
)

const memLimit = 256 << 20

var (
	memSink [][]byte

	// memWithin allocates and touches 64 MiB ten times, holding at most
	// two such blocks at once, after checking that its limits are set.
	memWithin = forkserver.Register("mem-within", func(ctx context.Context, c *forkserver.Child) error {
		if got := debug.SetMemoryLimit(-1); got != memLimit {
			return fmt.Errorf("Go memory limit %d, want %d", got, memLimit)
		}
		var r syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_DATA, &r); err != nil || r.Cur == ^uint64(0) || r.Cur != r.Max {
			return fmt.Errorf("RLIMIT_DATA %+v, %v: want a backstop", r, err)
		}
		var held [][]byte
		for range 10 {
			if len(held) == 2 {
				held = held[1:]
			}
			held = append(held, touched(64<<20))
		}
		return nil
	})

	// memPast allocates, touches and holds 16 MiB at a time until it is
	// ended; it returns an error if it holds 64 GiB first.
	memPast = forkserver.Register("mem-past", func(ctx context.Context, c *forkserver.Child) error {
		for range 4096 {
			memSink = append(memSink, touched(16<<20))
		}
		return errors.New("64 GiB held: no bound")
	})
)

// touched returns n bytes with every page written.
func touched(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		b[i] = 1
	}
	return b
}

// TestMemoryLimitWithin checks that children with the README's settings
// of "Privilege separation" and "A child that may fork", and a plain
// pooled one, each with a MemoryLimit of 256 MiB, survive allocating 64
// MiB at a time, 128 MiB held at once, with and without the race
// detector: warm (the plain pool and a declared sandbox) and cold.
func TestMemoryLimitWithin(t *testing.T) {
	dataDir := t.TempDir()
	privsep := &forkserver.Attr{
		Socket:       true,
		Paths:        &forkserver.PathPolicy{ReadOnly: []string{dataDir}},
		DenySyscalls: forkserver.SyscallsNetwork | forkserver.SyscallsExec | forkserver.SyscallsTrace,
		NoNewPrivs:   true,
		Rlimits:      []forkserver.Rlimit{{Resource: syscall.RLIMIT_CPU, Cur: 2, Max: 2}},
		MemoryLimit:  memLimit,
	}
	mayFork := &forkserver.Attr{
		Socket:            true,
		Server:            true,
		ServerRights:      forkserver.RightFork | forkserver.RightSignal,
		ServerMaxChildren: 8,
		NoNewPrivs:        true,
		Rlimits:           []forkserver.Rlimit{{Resource: syscall.RLIMIT_CPU, Cur: 2, Max: 2}},
		MemoryLimit:       memLimit,
	}
	if os.Geteuid() == 0 {
		mayFork.Credential = &forkserver.Credential{Uid: 65534, Gid: 65534}
	}
	plain := &forkserver.Attr{MemoryLimit: memLimit}
	srv := forkserver.StartWith(t, &forkserver.Config{PoolSize: 1, Sandboxes: []forkserver.Sandbox{{Attr: privsep, Size: 1}}})
	attrs := []struct {
		name string
		attr *forkserver.Attr
	}{{"privilege separation", privsep}, {"a child that may fork", mayFork}, {"plain", plain}}
	for i := range 10 {
		a := attrs[i%len(attrs)]
		var stderr bytes.Buffer
		attr := *a.attr
		attr.Stderr = &stderr
		p, err := srv.Fork(forkserver.TestContext(t), memWithin, &attr)
		if err != nil {
			t.Fatalf("child %d (%s): %v", i, a.name, err)
		}
		if exit := forkserver.Wait(t, p); !exit.Success() {
			t.Errorf("child %d (%s): %v: %s", i, a.name, exit, stderr.Bytes())
		}
		if c := p.Conn(); c != nil {
			c.Close()
		}
	}
}

// TestMemoryLimitPast checks that a child that keeps allocating past its
// MemoryLimit ends as Attr.MemoryLimit documents: exit status 2 and the
// runtime's "out of memory" (or, in a binary linked with cgo, a thread it
// could not create: "pthread_create failed"), or under the race detector, whose shadow
// memory may run out first, status 66 and ThreadSanitizer's message.
func TestMemoryLimitPast(t *testing.T) {
	srv := forkserver.StartWith(t, &forkserver.Config{PoolSize: 1})
	for _, warm := range []bool{true, false} {
		var stderr bytes.Buffer
		attr := &forkserver.Attr{MemoryLimit: 64 << 20, Stderr: &stderr}
		if !warm {
			attr.NoNewPrivs = true // cold, from a program without capabilities too
			if os.Geteuid() == 0 {
				attr.Credential = &forkserver.Credential{Uid: 65534, Gid: 65534}
			}
		}
		p, err := srv.Fork(forkserver.TestContext(t), memPast, attr)
		if err != nil {
			t.Fatal(err)
		}
		exit := forkserver.Wait(t, p)
		out := stderr.String()
		first, _, _ := strings.Cut(out, "\n")
		t.Logf("warm %v: %v, %q", warm, exit, first)
		switch {
		case exit.ExitCode() == 2 && (strings.Contains(out, "fatal error: ") && strings.Contains(out, "out of memory") ||
			strings.Contains(out, "runtime/cgo: pthread_create failed")):
		case forkserver.RaceEnabled && exit.ExitCode() == 66 && strings.Contains(out, "ThreadSanitizer failed to allocate"):
		default:
			t.Errorf("warm %v: %v, stderr:\n%.2000s", warm, exit, out)
		}
	}
}

var (
	// memReport writes the Go memory limit it runs with on its socket.
	memReport = forkserver.Register("mem-report", func(ctx context.Context, c *forkserver.Child) error {
		_, err := fmt.Fprintln(c.Conn(), debug.SetMemoryLimit(-1))
		return err
	})

	// memForkUnder forks mem-report through its connection with the
	// MemoryLimit in its argument and relays its report, or the error.
	memForkUnder = forkserver.Register("mem-fork-under", func(ctx context.Context, c *forkserver.Child) error {
		var limit int64
		fmt.Sscan(string(c.Arg()), &limit)
		p, err := c.Server().Fork(ctx, memReport, &forkserver.Attr{Socket: true, MemoryLimit: limit})
		if err != nil {
			_, err = fmt.Fprintln(c.Conn(), errors.Is(err, forkserver.ErrPermission))
			return err
		}
		defer p.Conn().Close()
		var line string
		fmt.Fscanln(p.Conn(), &line)
		p.Wait()
		_, err = fmt.Fprintln(c.Conn(), line)
		return err
	})
)

// TestMemoryLimitConfined checks that a child cannot raise its MemoryLimit
// through its connection, and that a child forked through it gets it, and
// that Exec refuses MemoryLimit.
func TestMemoryLimitConfined(t *testing.T) {
	srv := start(t)
	for _, tc := range []struct{ ask, want string }{
		{"0", fmt.Sprint(64 << 20)},
		{fmt.Sprint(32 << 20), fmt.Sprint(32 << 20)},
		{fmt.Sprint(128 << 20), "true"}, // ErrPermission
	} {
		p, err := srv.Fork(forkserver.TestContext(t), memForkUnder, &forkserver.Attr{Socket: true, Server: true, MemoryLimit: 64 << 20, Arg: []byte(tc.ask)})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		fmt.Fscanln(p.Conn(), &got)
		p.Conn().Close()
		if exit := forkserver.Wait(t, p); !exit.Success() || got != tc.want {
			t.Errorf("asking for %s under 64 MiB: %q (%v), want %q", tc.ask, got, exit, tc.want)
		}
	}
	_, err := srv.Exec(forkserver.TestContext(t), "/bin/true", []string{"true"}, &forkserver.Attr{MemoryLimit: 64 << 20})
	if err == nil || !strings.Contains(err.Error(), "MemoryLimit applies to Fork only") {
		t.Errorf("Exec with MemoryLimit: %v, want a refusal", err)
	}
}
