//go:build linux

package forkserver_test

// Benchmarks. They run only with -bench, for example
//
//	go test -run '^$' -bench . -benchtime 50x .
//
// Each latency benchmark (PooledForkRunning, PooledForkWait, PooledExitWait,
// ColdForkWait) interleaves, iteration by iteration, our operation with its
// os/exec counterpart and, where there is one, its floor: the least the
// kernel and a Go child of the same binary cost the same path, measured in
// the same run (see benchInterleave). Each is timed by itself; the
// benchmark reports
//
//	p50-µs, p99-µs            ours: the median and the 99th percentile
//	exec-p50-µs, exec-p99-µs  the os/exec counterpart
//	floor-p50-µs              the floor (PooledForkWait: the sum of two,
//	                          reported also as exitfloor-* and rtt-*)
//	x-exec, x-floor           ours over os/exec and over the floor, at p50
//
// ns/op is the mean of ours alone: set-up, teardown and the other
// operations run with the timer stopped. Nothing fails on a figure; a
// benchmark fails only on an error or a hang (benchBound).
//
// FORKSERVER_BENCH_LOAD=big or =busy runs the same benchmarks inside a
// loaded program (see benchSetupLoad): idle, big and busy are three runs,
// which go run ./examples/benchtable makes and puts in one table.

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
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/forkserver/forkserver"
)

const (
	// benchPool is the pool of the "pooled" servers. One waiting child is
	// enough for one Fork at a time; 4, twice the cores of a small machine,
	// also serves a short burst of concurrent Forks warm. A waiting child
	// costs an idle process, and the server refills one at a time whatever
	// the size, so a bigger pool buys nothing for sustained forking.
	benchPool = 4

	// benchBound turns a hang into a failure; it never decides an outcome.
	benchBound = 5 * time.Minute

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

// benchExecChild is the child of the os/exec counterparts: the same binary,
// started and initialised, which writes a byte on descriptor 3 as its one
// act if asked to, then exits as a Go program does at the end of main.
func benchExecChild() {
	if os.Getenv(benchExecByte) != "" {
		syscall.Write(3, []byte{1})
	}
	os.Exit(0)
}

// BenchmarkPooledForkRunning: a pooled Fork until the child runs: from the
// call to Fork until the requester reads the byte the child writes on its
// socket as its first act. Interleaved with os/exec starting the same
// binary until the byte it writes on a pipe as its first act, and with the
// floor: 8 bytes to an echo child, a Go child of the same server that sat
// idle since the last iteration, and back.
func BenchmarkPooledForkRunning(b *testing.B) {
	benchSetupLoad(b)
	srv := startWith(b, &forkserver.Config{PoolSize: benchPool})
	echo := benchEchoChild(b, srv)
	settle := func() { benchSettlePool(b, srv.Pid(), benchPool+1) } // the pool and the echo child
	buf := make([]byte, 1)
	ours := func(c *benchClock) {
		c.begin()
		p, err := srv.Fork(context.Background(), benchFirstByte, &forkserver.Attr{Socket: true})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(p.Conn(), buf); err != nil {
			b.Fatalf("child %d: %v", p.Pid, err)
		}
		c.end()
		p.Conn().Close() // the child reads end-of-file and returns
		waitSuccess(b, p)
	}
	r := benchInterleave(b, settle,
		benchOp{"pooled Fork until running", ours},
		benchOp{"os/exec until running", benchExecFirstByte(b, benchExecCmd(b))},
		benchOp{"round trip", benchRoundTrip(b, echo)})
	r.reportAgainst(b, 2)
}

// BenchmarkPooledForkWait: a pooled Fork of a child that returns at once,
// and Wait. Interleaved with os/exec starting the same binary, which exits
// at once, and waiting for it, and with two floors whose sum bounds it from
// below: the exit floor, from an os/exec child's last write until the
// parent's own blocking wait for it returns, and the round trip to an idle
// echo child (a Fork is at least one).
func BenchmarkPooledForkWait(b *testing.B) {
	benchSetupLoad(b)
	srv := startWith(b, &forkserver.Config{PoolSize: benchPool})
	echo := benchEchoChild(b, srv)
	settle := func() { benchSettlePool(b, srv.Pid(), benchPool+1) } // the pool and the echo child
	command := benchExecCmd(b)
	r := benchInterleave(b, settle,
		benchOp{"pooled Fork+Wait", benchForkWait(b, srv)},
		benchOp{"os/exec Start+Wait", benchExecRun(b, command)},
		benchOp{"exit floor", benchExecExit(b, command)},
		benchOp{"round trip", benchRoundTrip(b, echo)})
	r.report(b, 0, "")
	r.report(b, 1, "exec-")
	r.report(b, 2, "exitfloor-")
	r.report(b, 3, "rtt-")
	floor := r.p(2, 0.50) + r.p(3, 0.50)
	b.ReportMetric(floor.Seconds()*1e6, "floor-p50-µs")
	r.ratio(b, "x-exec", r.p(1, 0.50))
	r.ratio(b, "x-floor", floor)
}

// BenchmarkColdForkWait: Fork and Wait on a server without a pool, so the
// server starts the binary for each Fork as os/exec does. Interleaved with
// os/exec starting the same binary, which exits at once, and waiting for it.
func BenchmarkColdForkWait(b *testing.B) {
	benchSetupLoad(b)
	srv := startWith(b, &forkserver.Config{PoolSize: 0})
	r := benchInterleave(b, nil,
		benchOp{"cold Fork+Wait", benchForkWait(b, srv)},
		benchOp{"os/exec Start+Wait", benchExecRun(b, benchExecCmd(b))})
	r.reportExec(b)
}

// BenchmarkForkBomb: pooled Fork+Wait in the program, quiet and then beside
// a fork bomb: a child whose connection may have bound children
// alive, which, with each of its children, forks through its connection as
// fast as it can and is refused at the bound. Each run interleaves ours with
// os/exec Start+Wait, which shows what the machine's load alone costs.
func BenchmarkForkBomb(b *testing.B) {
	const bound = 6
	for _, bombing := range []bool{false, true} {
		name := "quiet"
		if bombing {
			name = "bomb"
		}
		b.Run(name, func(b *testing.B) {
			srv := startWith(b, &forkserver.Config{PoolSize: benchPool})
			if bombing {
				bomb, err := srv.Fork(context.Background(), forkserver.ForkBomb, &forkserver.Attr{Socket: true, Server: true, ServerMaxChildren: bound, Setpgid: true})
				if err != nil {
					b.Fatal(err)
				}
				expectByte(b, bomb.Conn(), 'r')
				defer func() {
					bomb.SignalGroup(syscall.SIGKILL)
					wait(b, bomb)
					bomb.Conn().Close()
				}()
			}
			// The bomb never idles: settle until the pool is full again.
			settle := func() {
				if err := srv.WaitWarm(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			r := benchInterleave(b, settle,
				benchOp{"pooled Fork+Wait", benchForkWait(b, srv)},
				benchOp{"os/exec Start+Wait", benchExecRun(b, benchExecCmd(b))})
			r.reportExec(b)
		})
	}
}

// benchForkWait: Fork a child that returns at once, and Wait.
func benchForkWait(b *testing.B, srv *forkserver.Server) func(*benchClock) {
	return func(clock *benchClock) {
		clock.begin()
		p, err := srv.Fork(context.Background(), benchReturn, nil)
		if err != nil {
			b.Fatal(err)
		}
		exit, err := p.Wait()
		clock.end()
		if err != nil || !exit.Success() {
			b.Fatalf("child %d: %v, %v", p.Pid, exit, err)
		}
	}
}

// BenchmarkPooledExitWait: a child's exit until Wait returns. A pooled
// child writes a byte and returns; from reading the byte until Wait
// returns. Interleaved with the same for an os/exec child of the binary,
// from its byte until cmd.Wait returns, which is the exit floor: the
// os/exec counterpart is this benchmark's floor, so floor-p50-µs and
// x-floor repeat exec-p50-µs and x-exec. Both count from the moment the
// program has read the byte: a busy program reads it late, often after
// the child is gone, so there they measure what of the exit's delivery is
// left once the program has noticed the byte.
func BenchmarkPooledExitWait(b *testing.B) {
	benchSetupLoad(b)
	srv := startWith(b, &forkserver.Config{PoolSize: benchPool})
	settle := func() { benchSettlePool(b, srv.Pid(), benchPool) }
	buf := make([]byte, 1)
	ours := func(clock *benchClock) {
		p, err := srv.Fork(context.Background(), benchExitByte, &forkserver.Attr{Socket: true})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Conn().Close()
		// The Fork took a child from the pool: let the refill finish, the
		// child waiting for its cue, so that it does not compete with the
		// exit.
		benchSettlePool(b, srv.Pid(), benchPool+1)
		if _, err := p.Conn().Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(p.Conn(), buf); err != nil {
			b.Fatalf("child %d: %v", p.Pid, err)
		}
		clock.begin()
		exit, err := p.Wait()
		clock.end()
		if err != nil || !exit.Success() {
			b.Fatalf("child %d: %v, %v", p.Pid, exit, err)
		}
	}
	r := benchInterleave(b, settle,
		benchOp{"exit until Wait", ours},
		benchOp{"exit floor", benchExecExit(b, benchExecCmd(b))})
	r.reportAgainst(b, 1)
}

// BenchmarkManyAlive: 2,000 children of a pooled server alive at once, all
// blocked reading one pipe that the program holds the write end of, then
// released by closing it; every exit must arrive. The program awaits the
// exits with Done, a goroutine selecting on each, as a program that
// watches many children would. With all of them alive and awaited, it
// reports the server's threads and resident memory and the program's
// threads (program-threads-before: the program's before the first Fork);
// and how long starting and ending them all took. It runs once whatever
// b.N; run it alone with -bench ManyAlive.
func BenchmarkManyAlive(b *testing.B) {
	const n = 2000
	benchSetupLoad(b)
	// A child is a Go process of 5 or 6 threads and about 1 MiB of its
	// own memory; the program and the server need a handful of descriptors
	// whatever n.
	if limit := benchTaskLimit(b); limit < 10*n {
		b.Skipf("the system allows %d tasks; %d children need about %d", limit, n, 10*n)
	}
	if avail := benchMemAvailableMiB(b); avail < 2*n {
		b.Skipf("%d MiB of memory available; %d children need about %d", avail, n, 2*n)
	}
	ran := false
	for b.Loop() {
		if !ran {
			ran = true
			b.StopTimer()
			benchManyAlive(b, n)
			b.StartTimer()
		}
	}
}

func benchManyAlive(b *testing.B, n int) {
	srv := startWith(b, &forkserver.Config{PoolSize: benchPool})
	ctx := testContext(b)
	programBefore := procStatus(b, os.Getpid(), "Threads")
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	// Eight goroutines fork, so that a busy program, slow to notice each
	// reply, does not take minutes over it.
	procs := make([]*forkserver.Process, n)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				procs[i], errs[i] = srv.Fork(ctx, benchBlock, &forkserver.Attr{Files: []*os.File{r}})
			}
		}()
	}
	wg.Wait()
	started := time.Since(start)
	r.Close()
	for i, err := range errs {
		if err != nil {
			b.Fatalf("Fork %d of %d: %v", i+1, n, err)
		}
	}

	// Await every exit with Done.
	var waiting, exited sync.WaitGroup
	for _, p := range procs {
		waiting.Add(1)
		exited.Add(1)
		go func() {
			defer exited.Done()
			done := p.Done()
			waiting.Done()
			select {
			case <-done:
			case <-ctx.Done():
			}
		}()
	}
	waiting.Wait()
	// The most seen over 100 ms, in case threads come and go.
	var threads, rssKiB, program int
	for range 10 {
		threads = max(threads, procStatus(b, srv.Pid(), "Threads"))
		rssKiB = max(rssKiB, procStatus(b, srv.Pid(), "VmRSS"))
		program = max(program, procStatus(b, os.Getpid(), "Threads"))
		time.Sleep(10 * time.Millisecond)
	}

	start = time.Now()
	w.Close() // every child reads end-of-file and exits
	exited.Wait()
	ended := time.Since(start)
	for _, p := range procs {
		select {
		case <-p.Done():
		default:
			b.Fatalf("the exit of child %d was not delivered", p.Pid)
		}
		if exit, err := p.Wait(); err != nil || !exit.Success() {
			b.Fatalf("child %d: %v, %v", p.Pid, exit, err)
		}
	}
	b.ReportMetric(float64(threads), "server-threads")
	b.ReportMetric(float64(rssKiB)/1024, "server-rss-MiB")
	b.ReportMetric(float64(program), "program-threads")
	b.ReportMetric(float64(programBefore), "program-threads-before")
	b.ReportMetric(started.Seconds()*1e3, "start-all-ms")
	b.ReportMetric(ended.Seconds()*1e3, "exit-all-ms")
}

// BenchmarkLoadedProgram describes the load FORKSERVER_BENCH_LOAD sets up:
// the live heap as the last collection found it, and collections and
// allocation per second over five seconds. It runs once whatever b.N.
func BenchmarkLoadedProgram(b *testing.B) {
	load := benchSetupLoad(b)
	if load == "" {
		b.Skip("no load: set FORKSERVER_BENCH_LOAD=big (2 GiB live heap) or =busy (the same and 8 goroutines allocating) to run every benchmark inside a loaded program")
	}
	read := func() []metrics.Sample {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/allocs:bytes"}}
		metrics.Read(s)
		return s
	}
	ran := false
	for b.Loop() {
		if ran {
			continue
		}
		ran = true
		const window = 5 * time.Second
		before := read()
		time.Sleep(window)
		after := read()
		perSecond := func(i int) float64 {
			return float64(after[i].Value.Uint64()-before[i].Value.Uint64()) / window.Seconds()
		}
		b.ReportMetric(float64(after[0].Value.Uint64())/(1<<20), "live-heap-MiB")
		b.ReportMetric(perSecond(1), "gc-cycles/s")
		b.ReportMetric(perSecond(2)/(1<<20), "alloc-MiB/s")
	}
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
		hung := time.AfterFunc(benchBound, func() {
			debug.SetTraceback("all")
			panic(fmt.Sprintf("%s: %s did not finish in %v", b.Name(), ops[i].name, benchBound))
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
	buf := make([]byte, 1)
	return func(clock *benchClock) {
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		cmd := command(w)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		w.Close()
		if _, err := io.ReadFull(r, buf); err != nil {
			b.Fatalf("os/exec child %d: %v", cmd.Process.Pid, err)
		}
		clock.begin()
		err = cmd.Wait()
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
		waitSuccess(b, p)
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
	for deadline := time.Now().Add(benchBound); ; {
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
	if load != "" && load != "big" && load != "busy" {
		b.Fatalf("FORKSERVER_BENCH_LOAD=%q: want big or busy, or nothing", load)
	}
	benchLoad.once.Do(func() {
		if load == "" {
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
