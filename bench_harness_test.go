//go:build linux

package forkserver_test

// The measuring framework of bench_test.go: the children it forks and
// execs, the interleaving of an operation with its os/exec counterpart and
// floors (benchInterleave) and its percentiles (benchRun), the machine's
// state read from /proc, and the loads FORKSERVER_BENCH_LOAD names.

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/forkserver/forkserver"
)

const (
	// benchExecProgram is the FORKSERVER_TEST_PROGRAM value on which
	// TestMain runs benchExecChild: the child of the os/exec counterparts.
	benchExecProgram = "bench-exec"
)

// benchFirstByte writes one byte on its socket as its first act, then reads
// the socket until end-of-file and returns.
var benchFirstByte = forkserver.Register("bench-first-byte", func(ctx context.Context, c *forkserver.Child) error {
	if _, err := c.Conn().Write([]byte{1}); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, c.Conn())
	return err
})

// benchReturn returns at once.
var benchReturn = forkserver.Register("bench-return", func(ctx context.Context, c *forkserver.Child) error {
	return nil
})

// benchEcho writes back what it reads on its socket, until end-of-file.
var benchEcho = forkserver.Register("bench-echo", func(ctx context.Context, c *forkserver.Child) error {
	_, err := io.Copy(c.Conn(), c.Conn())
	return err
})

// benchExitByte waits for a byte on its socket, writes one back and
// returns: its process exits next.
var benchExitByte = forkserver.Register("bench-exit-byte", func(ctx context.Context, c *forkserver.Child) error {
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c.Conn(), buf); err != nil {
		return err
	}
	_, err := c.Conn().Write(buf)
	return err
})

// benchBlock reads its first file until end-of-file, then exits.
var benchBlock = forkserver.Register("bench-block", func(ctx context.Context, c *forkserver.Child) error {
	_, err := io.Copy(io.Discard, c.Files()[0])
	return err
})

// benchExecByte, set in the environment of an os/exec child, makes it write
// one byte on its descriptor 3 before it exits.
const benchExecByte = "FORKSERVER_BENCH_EXEC_BYTE"

// benchExecTouch, set in the environment of an os/exec child to a count
// of KiB, makes it write to that much more memory before its byte;
// benchExecWait, to a count of ms, makes it wait that long first.
const (
	benchExecTouch = "FORKSERVER_BENCH_EXEC_TOUCH_KIB"
	benchExecWait  = "FORKSERVER_BENCH_EXEC_WAIT_MS"
)

// benchTouched keeps what benchExecChild touched alive until it exits.
var benchTouched []byte

// benchExecChild is the child of the os/exec counterparts: the same binary,
// started and initialised, which writes a byte on descriptor 3 as its one
// act if asked to, then exits as a Go program does at the end of main.
func benchExecChild() {
	if kib, _ := strconv.Atoi(os.Getenv(benchExecTouch)); kib > 0 {
		benchTouched = make([]byte, kib<<10)
		for i := range len(benchTouched) / 4096 {
			benchTouched[i*4096] = 1
		}
	}
	if ms, _ := strconv.Atoi(os.Getenv(benchExecWait)); ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	if os.Getenv(benchExecByte) != "" {
		syscall.Write(3, []byte{1})
	}
	os.Exit(0)
}

// The interleaving. Each latency benchmark measures our operation, its
// os/exec counterpart and its floors in the same run: every iteration runs
// each of them once, in an order that rotates from one iteration to the
// next, so that a drift of the machine or the program during the run
// reaches them all alike and none always follows the same other. Two
// untimed rounds warm them up first.
const benchWarmup = 2

// benchOp is one operation of an interleaved benchmark. run does the
// operation's set-up, its timed part between clock.begin and clock.end,
// and its teardown.
type benchOp struct {
	name string
	run  func(clock *benchClock)
}

// benchClock times the timed part of one run of an operation. For our
// operation, the first of a benchmark, it also runs the benchmark's timer,
// so that ns/op is the mean of that operation's timed part alone.
type benchClock struct {
	b     *testing.B // nil but for our operation
	start time.Time
	took  time.Duration
}

func (c *benchClock) begin() {
	if c.b != nil {
		c.b.StartTimer()
	}
	c.start = time.Now()
}

func (c *benchClock) end() {
	c.took = time.Since(c.start)
	if c.b != nil {
		c.b.StopTimer()
	}
}

// benchInterleave runs every op once per iteration, settle (if not nil)
// before each, untimed, and returns their timings. An op that has not
// finished within benchBound fails the run with every goroutine's stack, as
// go test -timeout would: a hang bound, per op, that does not grow with the
// count of iterations.
func benchInterleave(b *testing.B, settle func(), ops ...benchOp) *benchRun {
	r := &benchRun{took: make([][]time.Duration, len(ops))}
	once := func(i int, clock *benchClock) time.Duration {
		if settle != nil {
			settle()
		}
		hung := time.AfterFunc(forkserver.BenchBound, func() {
			debug.SetTraceback("all")
			panic(fmt.Sprintf("%s: %s did not finish in %v", b.Name(), ops[i].name, forkserver.BenchBound))
		})
		ops[i].run(clock)
		hung.Stop()
		return clock.took
	}
	for range benchWarmup {
		for i := range ops {
			once(i, &benchClock{})
		}
	}
	round := 0
	for b.Loop() {
		b.StopTimer()
		for k := range ops {
			i := (round + k) % len(ops)
			clock := &benchClock{}
			if i == 0 {
				clock.b = b
			}
			r.took[i] = append(r.took[i], once(i, clock))
		}
		round++
		b.StartTimer() // b.Loop wants it running
	}
	return r
}

// benchRun is what benchInterleave measured: took[i] holds the timed part
// of every run of operation i, ours being 0.
type benchRun struct{ took [][]time.Duration }

// p returns the q-quantile of operation i's timings, nearest rank.
func (r *benchRun) p(i int, q float64) time.Duration {
	l := slices.Sorted(slices.Values(r.took[i]))
	if len(l) == 0 {
		return 0
	}
	return l[max(0, min(int(q*float64(len(l))+0.5)-1, len(l)-1))]
}

// report reports the median and the 99th percentile of operation i, in µs,
// as prefix+"p50-µs" and prefix+"p99-µs".
func (r *benchRun) report(b *testing.B, i int, prefix string) {
	b.ReportMetric(r.p(i, 0.50).Seconds()*1e6, prefix+"p50-µs")
	b.ReportMetric(r.p(i, 0.99).Seconds()*1e6, prefix+"p99-µs")
}

// reportExec reports operation 0 as ours and operation 1 as its os/exec
// counterpart, with their ratio at p50.
func (r *benchRun) reportExec(b *testing.B) {
	r.report(b, 0, "")
	r.report(b, 1, "exec-")
	r.ratio(b, "x-exec", r.p(1, 0.50))
}

// reportAgainst reports, beside reportExec's figures, operation floor as
// the floor of operation 0, with their ratio at p50.
func (r *benchRun) reportAgainst(b *testing.B, floor int) {
	r.reportExec(b)
	r.report(b, floor, "floor-")
	r.ratio(b, "x-floor", r.p(floor, 0.50))
}

// ratio reports our operation's median over d as unit.
func (r *benchRun) ratio(b *testing.B, unit string, d time.Duration) {
	if d > 0 {
		b.ReportMetric(float64(r.p(0, 0.50))/float64(d), unit)
	}
}

// benchExecCmd returns a function that makes the command of an os/exec
// child of the test binary. Given a pipe's write end, the command makes the
// child write a byte on it as its one act.
func benchExecCmd(b *testing.B) func(w *os.File) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	env := append(os.Environ(), "FORKSERVER_TEST_PROGRAM="+benchExecProgram)
	envByte := append(slices.Clip(env), benchExecByte+"=1")
	return func(w *os.File) *exec.Cmd {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = env
		if w != nil {
			cmd.Env = envByte
			cmd.ExtraFiles = []*os.File{w}
		}
		return cmd
	}
}

// benchExecFirstByte: os/exec starts the binary; from making the pipe and
// the command until the child's byte arrives.
func benchExecFirstByte(b *testing.B, command func(*os.File) *exec.Cmd) func(*benchClock) {
	buf := make([]byte, 1)
	return func(clock *benchClock) {
		clock.begin()
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd := command(w)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		w.Close()
		_, err = io.ReadFull(r, buf)
		clock.end()
		r.Close()
		if err != nil {
			b.Fatalf("os/exec child %d: %v", cmd.Process.Pid, err)
		}
		if err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}

// benchExecRun: os/exec starts the binary, which exits at once, and waits
// for it.
func benchExecRun(b *testing.B, command func(*os.File) *exec.Cmd) func(*benchClock) {
	return func(clock *benchClock) {
		clock.begin()
		err := command(nil).Run()
		clock.end()
		if err != nil {
			b.Fatal(err)
		}
	}
}

// benchExecExit is the exit floor: an os/exec child of the binary writes a
// byte and exits; from reading the byte until cmd.Wait, the parent's own
// blocking wait for its child, returns.
func benchExecExit(b *testing.B, command func(*os.File) *exec.Cmd) func(*benchClock) {
	return benchExitAfterByte(b, func(w *os.File) (func() error, int) {
		cmd := command(w)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		return cmd.Wait, cmd.Process.Pid
	})
}

// benchExitAfterByte times the exit of the child start starts, given the
// write end of a pipe, on which it writes a byte and exits: from reading
// the byte until the wait start returns does.
func benchExitAfterByte(b *testing.B, start func(w *os.File) (wait func() error, pid int)) func(*benchClock) {
	buf := make([]byte, 1)
	return func(clock *benchClock) {
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		wait, pid := start(w)
		w.Close()
		if _, err := io.ReadFull(r, buf); err != nil {
			b.Fatalf("child %d: %v", pid, err)
		}
		clock.begin()
		err = wait()
		clock.end()
		if err != nil {
			b.Fatal(err)
		}
	}
}

// benchEchoChild forks an echo child, which the benchmark's end stops, and
// returns the requester's end of its socket.
func benchEchoChild(b *testing.B, srv *forkserver.Server) *net.UnixConn {
	p, err := srv.Fork(context.Background(), benchEcho, &forkserver.Attr{Socket: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		p.Conn().Close()
		forkserver.WaitSuccess(b, p)
	})
	return p.Conn()
}

// benchRoundTrip: 8 bytes to a running echo child and back.
func benchRoundTrip(b *testing.B, conn *net.UnixConn) func(*benchClock) {
	out, in := []byte("8 bytes!"), make([]byte, 8)
	return func(clock *benchClock) {
		clock.begin()
		if _, err := conn.Write(out); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(conn, in); err != nil {
			b.Fatal(err)
		}
		clock.end()
	}
}

// benchSettlePool waits until the server has exactly size children, each of
// whose threads sleeps and none of which has used CPU for a millisecond: a
// full pool of children that have finished starting.
func benchSettlePool(b *testing.B, server, size int) {
	for deadline := time.Now().Add(forkserver.BenchBound); ; {
		if benchPoolIdle(server, size) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the pool of server %d did not fill up", server)
		}
	}
}

func benchPoolIdle(server, size int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", server))
	var kids []string
	for _, t := range tasks {
		list, _ := os.ReadFile(t)
		kids = append(kids, strings.Fields(string(list))...)
	}
	if len(kids) != size {
		time.Sleep(time.Millisecond)
		return false
	}
	before, ok := benchSleepingCPU(kids)
	time.Sleep(time.Millisecond)
	after, ok2 := benchSleepingCPU(kids)
	return ok && ok2 && after == before
}

// benchSleepingCPU returns the CPU time the processes pids have used, in
// ns, and whether every one of their threads sleeps.
func benchSleepingCPU(pids []string) (ns int64, asleep bool) {
	for _, pid := range pids {
		tasks, _ := filepath.Glob("/proc/" + pid + "/task/*")
		if len(tasks) == 0 {
			return 0, false
		}
		for _, t := range tasks {
			stat, err1 := os.ReadFile(t + "/stat")
			sched, err2 := os.ReadFile(t + "/schedstat")
			i := strings.LastIndexByte(string(stat), ')')
			if err1 != nil || err2 != nil || i < 0 || i+2 >= len(stat) || stat[i+2] != 'S' {
				return 0, false
			}
			cpu, _ := strconv.ParseInt(strings.Fields(string(sched))[0], 10, 64)
			ns += cpu
		}
	}
	return ns, true
}

// benchMemAvailableMiB returns MemAvailable from /proc/meminfo.
func benchMemAvailableMiB(b *testing.B) int {
	meminfo, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(meminfo), "\n") {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			if kib, err := strconv.Atoi(strings.Fields(v)[0]); err == nil {
				return kib / 1024
			}
		}
	}
	b.Fatalf("no MemAvailable in /proc/meminfo")
	return 0
}

// benchTaskLimit returns how many processes and threads the system allows
// in all: the least of pid_max, threads-max and RLIMIT_NPROC.
func benchTaskLimit(b *testing.B) int {
	limit := 1 << 30
	for _, f := range []string{"/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"} {
		v, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(v))); err == nil {
			limit = min(limit, n)
		}
	}
	limits, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(limits), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max processes"); ok {
			if n, err := strconv.Atoi(strings.Fields(rest)[0]); err == nil { // "unlimited" is no limit
				limit = min(limit, n)
			}
		}
	}
	return limit
}

// The loads. benchSetupLoad builds the one FORKSERVER_BENCH_LOAD names,
// once per process, before the first server starts, and returns its name:
//
//   - big: 2 GiB of live heap in 64-byte objects linked in lists, which
//     the collector must trace; no goroutine runs.
//   - busy: the same heap, and 8 goroutines allocating without pause, so
//     the program's every thread is busy and it collects all the time.
//   - alloc: no large heap, and 16 goroutines allocating 64 KiB blocks in
//     a loop: a program whose processors are busy with a small heap that
//     the collector clears fast, so that every return from a blocking
//     system call waits for a processor.
//
// The heap lives in the program only: the server and the children are
// fresh, small processes.
var benchLoad struct {
	once  sync.Once
	lists []*benchObj
}

type benchObj struct {
	next *benchObj
	_    [56]byte
}

func benchSetupLoad(b *testing.B) string {
	load := os.Getenv("FORKSERVER_BENCH_LOAD")
	if load != "" && load != "big" && load != "busy" && load != "alloc" {
		b.Fatalf("FORKSERVER_BENCH_LOAD=%q: want big, busy or alloc, or nothing", load)
	}
	benchLoad.once.Do(func() {
		switch load {
		case "":
			return
		case "alloc":
			for i := range benchBlocks {
				go benchAllocateBlocks(i)
			}
			b.Logf("load %s: 16 goroutines allocating 64 KiB blocks", load)
			return
		}
		start := time.Now()
		const heap, list = 2 << 30, 4096
		old := debug.SetGCPercent(-1) // build it without collecting on the way
		for range heap / (list * 64) {
			var head *benchObj
			for range list {
				head = &benchObj{next: head}
			}
			benchLoad.lists = append(benchLoad.lists, head)
		}
		debug.SetGCPercent(old)
		runtime.GC()
		if load == "busy" {
			for range 8 {
				go benchAllocate()
			}
		}
		b.Logf("load %s: built in %v", load, time.Since(start).Round(time.Millisecond))
	})
	return load
}

// benchAllocate allocates small objects for ever, keeping the last 1,024
// alive.
func benchAllocate() {
	var keep [1024][]byte
	for i := 0; ; i++ {
		keep[i%len(keep)] = make([]byte, 16+i%512)
	}
}

// benchBlocks holds the last block of each benchAllocateBlocks, which so
// allocates on the heap.
var benchBlocks [16][]byte

// benchAllocateBlocks allocates 64 KiB blocks for ever, keeping only the
// last one alive, in benchBlocks[i].
func benchAllocateBlocks(i int) {
	for {
		benchBlocks[i] = make([]byte, 64<<10)
	}
}
