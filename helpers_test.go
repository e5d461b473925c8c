//go:build linux

package forkserver

// The helpers every test file shares: those of this package use them as
// they are, forkserver_test through export_test.go. Each takes a
// testing.TB, so that tests, benchmarks and fuzz targets share one set.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/forkserver/forkserver/internal/wire"
)

const (
	// hangBound bounds every wait in the tests: it only turns a hang into
	// a failure and never decides an outcome.
	hangBound = 2 * time.Minute

	// benchBound is hangBound for a benchmark, whose one context covers
	// all its iterations.
	benchBound = 5 * time.Minute
)

// testContext returns a context that ends with tb, or after hangBound
// (benchBound for a benchmark).
func testContext(tb testing.TB) context.Context {
	bound := hangBound
	if _, ok := tb.(*testing.B); ok {
		bound = benchBound
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	tb.Cleanup(cancel)
	return ctx
}

// startWith starts a server that is closed when tb ends, and checks
// that the server process is gone by then.
func startWith(tb testing.TB, cfg *Config) *Server {
	tb.Helper()
	srv, err := Start(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		srv.Close()
		if alive(srv.Pid()) {
			tb.Errorf("server %d still running after Close", srv.Pid())
		}
	})
	return srv
}

// testPipe returns a pipe whose ends are closed, if the test has not
// closed them, when tb ends.
func testPipe(tb testing.TB) (r, w *os.File) {
	tb.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// waitBounded returns what p's Wait does, once p's exit is known, and
// fails tb if that takes longer than hangBound.
func waitBounded(tb testing.TB, p *Process) (*Exit, error) {
	tb.Helper()
	timer := time.NewTimer(hangBound)
	defer timer.Stop()
	select {
	case <-p.Done():
	case <-timer.C:
		tb.Fatalf("child %d did not exit in %v", p.Pid, hangBound)
	}
	return p.Wait()
}

// wait waits for p's exit and returns it; Wait must not fail.
func wait(tb testing.TB, p *Process) *Exit {
	tb.Helper()
	exit, err := waitBounded(tb, p)
	if err != nil {
		tb.Fatalf("Wait %d: %v", p.Pid, err)
	}
	return exit
}

// waitSuccess waits for p's exit, which must be a success.
func waitSuccess(tb testing.TB, p *Process) {
	tb.Helper()
	if exit := wait(tb, p); !exit.Success() {
		tb.Fatalf("child %d: %s", p.Pid, exit)
	}
}

// expectByte reads one byte from c, which must be want: the byte a child
// writes to say it is ready, or has got somewhere.
func expectByte(tb testing.TB, c *net.UnixConn, want byte) {
	tb.Helper()
	c.SetReadDeadline(time.Now().Add(hangBound))
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != want {
		tb.Fatalf("read %q, %v; want %q", b, err, want)
	}
	c.SetReadDeadline(time.Time{})
}

// await polls cond until it holds, first at once, then after 1 ms, and
// at intervals that double up to 100 ms, and reports whether it held
// before hangBound passed. The bound only turns a hang into a failure.
func await(cond func() bool) bool {
	deadline := time.Now().Add(hangBound)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(delay)
	}
}

// eventually fails tb unless cond comes to hold; what says what cond
// waits for.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	if !await(cond) {
		tb.Fatalf("waited %v for %s", hangBound, what)
	}
}

// alive reports whether pid runs: a zombie, which is dead and waits only
// for its parent to reap it, does not.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// waitGone waits until pid no longer runs.
func waitGone(tb testing.TB, pid int) {
	tb.Helper()
	eventually(tb, fmt.Sprintf("process %d to end", pid), func() bool { return !alive(pid) })
}

// childrenOf lists the processes, zombies included, whose parent is pid.
// It needs no testing.TB: a server runs it through Eval too.
func childrenOf(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var kids []int
	for _, task := range tasks {
		b, _ := os.ReadFile(task) // a thread may end meanwhile
		for _, f := range strings.Fields(string(b)) {
			if kid, err := strconv.Atoi(f); err == nil {
				kids = append(kids, kid)
			}
		}
	}
	return kids
}

// countFds returns the number of descriptors pid has open.
func countFds(tb testing.TB, pid int) int {
	tb.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		tb.Fatal(err)
	}
	return len(entries)
}

// procStatus returns the number after key in /proc/pid/status: the first
// field, so kB for a size.
func procStatus(tb testing.TB, pid int, key string) int {
	tb.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				if n, err := strconv.Atoi(f[0]); err == nil {
					return n
				}
			}
			tb.Fatalf("%s in /proc/%d/status: %q", key, pid, line)
		}
	}
	tb.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}

// rawHeader builds a frame header with any fields, valid or not.
func rawHeader(version byte, typ wire.Type, nfds uint16, id, n uint32) []byte {
	b := []byte{version, byte(typ)}
	b = binary.LittleEndian.AppendUint16(b, nfds)
	b = binary.LittleEndian.AppendUint32(b, id)
	return binary.LittleEndian.AppendUint32(b, n)
}
