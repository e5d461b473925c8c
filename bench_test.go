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
	"io"
	"os"
	"os/exec"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/forkserver/forkserver"
)

// benchPool is the pool of the "pooled" servers. One waiting child is
// enough for one Fork at a time; 4, twice the cores of a small machine,
// also serves a short burst of concurrent Forks warm. A waiting child
// costs an idle process, and the server refills one at a time whatever
// the size, so a bigger pool buys nothing for sustained forking.
const benchPool = 4

// BenchmarkPooledForkRunning: a pooled Fork until the child runs: from the
// call to Fork until the requester reads the byte the child writes on its
// socket as its first act. Interleaved with os/exec starting the same
// binary until the byte it writes on a pipe as its first act, and with the
// floor: 8 bytes to an echo child, a Go child of the same server that sat
// idle since the last iteration, and back.
func BenchmarkPooledForkRunning(b *testing.B) {
	benchSetupLoad(b)
	srv := forkserver.StartWith(b, &forkserver.Config{PoolSize: benchPool})
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
		forkserver.WaitSuccess(b, p)
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
	srv := forkserver.StartWith(b, &forkserver.Config{PoolSize: benchPool})
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

// BenchmarkPooledForkWaitBackToBack: pooled Fork+Wait issued as the
// previous pooled child exits, as a burst of requests does, so that the
// Fork and its child share the processors with the replacement the server
// starts for that previous child. Interleaved with the same Fork+Wait
// issued 20 ms after the previous one ended, untimed, when the replacement
// has started; x-spaced is the first over the second at p50.
func BenchmarkPooledForkWaitBackToBack(b *testing.B) {
	benchSetupLoad(b)
	srv := forkserver.StartWith(b, &forkserver.Config{PoolSize: benchPool})
	forkWait := benchForkWait(b, srv)
	r := benchInterleave(b, nil,
		benchOp{"back to back", forkWait},
		benchOp{"20 ms apart", func(clock *benchClock) {
			time.Sleep(20 * time.Millisecond) // untimed: the gap
			forkWait(clock)
		}})
	r.report(b, 0, "")
	r.report(b, 1, "spaced-")
	r.ratio(b, "x-spaced", r.p(1, 0.50))
}

// BenchmarkColdForkWait: Fork and Wait on a server without a pool, so the
// server starts the binary for each Fork as os/exec does. Interleaved with
// os/exec starting the same binary, which exits at once, and waiting for it.
func BenchmarkColdForkWait(b *testing.B) {
	benchSetupLoad(b)
	srv := forkserver.StartWith(b, &forkserver.Config{PoolSize: 0})
	r := benchInterleave(b, nil,
		benchOp{"cold Fork+Wait", benchForkWait(b, srv)},
		benchOp{"os/exec Start+Wait", benchExecRun(b, benchExecCmd(b))})
	r.reportExec(b)
}

// BenchmarkSandboxedExec: Exec and Wait of /bin/true with Paths that list
// one data directory, DenySyscalls (network, trace, kernel) and
// NoNewPrivs, interleaved with a plain Exec and Wait of it, reported as
// plain-p50-µs, plain-p99-µs and their ratio at p50, x-plain.
func BenchmarkSandboxedExec(b *testing.B) {
	benchExecBeside(b, "sandboxed", &forkserver.Attr{
		Paths:        &forkserver.PathPolicy{ReadOnly: []string{b.TempDir()}},
		DenySyscalls: forkserver.SyscallsNetwork | forkserver.SyscallsTrace | forkserver.SyscallsKernel,
		NoNewPrivs:   true,
	})
}

// BenchmarkLimitedExec: Exec and Wait of /bin/true with one Rlimit, which
// goes through the exec-limits trampoline, interleaved with a plain Exec
// and Wait of it, reported as BenchmarkSandboxedExec is.
func BenchmarkLimitedExec(b *testing.B) {
	benchExecBeside(b, "limited", &forkserver.Attr{Rlimits: []forkserver.Rlimit{{Resource: syscall.RLIMIT_NOFILE, Cur: 256, Max: 256}}})
}

// benchExecBeside interleaves Exec and Wait of /bin/true with attr, named
// kind, and without, and reports both and their ratio at p50.
func benchExecBeside(b *testing.B, kind string, attr *forkserver.Attr) {
	benchSetupLoad(b)
	srv := forkserver.StartWith(b, nil)
	exec := func(attr *forkserver.Attr) func(*benchClock) {
		return func(c *benchClock) {
			c.begin()
			p, err := srv.Exec(context.Background(), "/bin/true", []string{"true"}, attr)
			if err != nil {
				b.Fatal(err)
			}
			forkserver.WaitSuccess(b, p)
			c.end()
		}
	}
	r := benchInterleave(b, nil,
		benchOp{kind + " Exec+Wait", exec(attr)},
		benchOp{"plain Exec+Wait", exec(nil)})
	r.report(b, 0, "")
	r.report(b, 1, "plain-")
	r.ratio(b, "x-plain", r.p(1, 0.50))
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
			srv := forkserver.StartWith(b, &forkserver.Config{PoolSize: benchPool})
			if bombing {
				bomb, err := srv.Fork(context.Background(), forkserver.ForkBomb, &forkserver.Attr{Socket: true, Server: true, ServerMaxChildren: bound, Setpgid: true})
				if err != nil {
					b.Fatal(err)
				}
				forkserver.ExpectByte(b, bomb.Conn(), 'r')
				defer func() {
					bomb.SignalGroup(syscall.SIGKILL)
					forkserver.Wait(b, bomb)
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
	srv := forkserver.StartWith(b, &forkserver.Config{PoolSize: benchPool})
	settle := func() { benchSettlePool(b, srv.Pid(), benchPool) }
	r := benchInterleave(b, settle,
		benchOp{"exit until Wait", benchPooledExit(b, srv, 0)},
		benchOp{"exit floor", benchExecExit(b, benchExecCmd(b))})
	r.reportAgainst(b, 1)
}

// benchPooledExit forks, from srv's pool, a child that writes a byte once
// cued and returns, cues it at least wait after the Fork, and times from
// reading that byte until Wait returns.
func benchPooledExit(b *testing.B, srv *forkserver.Server, wait time.Duration) func(*benchClock) {
	buf := make([]byte, 1)
	return func(clock *benchClock) {
		forked := time.Now()
		p, err := srv.Fork(context.Background(), benchExitByte, &forkserver.Attr{Socket: true})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Conn().Close()
		// The Fork took a child from the pool: let the refill finish, the
		// child waiting for its cue, so that it does not compete with the
		// exit.
		benchSettlePool(b, srv.Pid(), benchPool+1)
		time.Sleep(time.Until(forked.Add(wait))) // untimed: the wait asked for
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
}

// BenchmarkExitParts takes apart the exit row of BenchmarkPooledExitWait:
// the exit floor; the same with 512 KiB more memory written before the
// last write (touched-512k), what a child's exit costs per memory it
// holds; the same binary as the floor's, executed by the server through
// Command (server-exec), whose exit reaches Wait through the server as a
// pooled child's does; and a pooled child's exit (p50-µs). And the floor
// and the pooled child's exit again, each child having waited 10 ms
// before its last write (floor-waited-, waited-): a process that has sat
// idle takes longer to die, and a pooled child has always waited, in the
// pool at least. Each p50 in µs.
func BenchmarkExitParts(b *testing.B) {
	benchSetupLoad(b)
	srv := forkserver.StartWith(b, &forkserver.Config{PoolSize: benchPool})
	settle := func() { benchSettlePool(b, srv.Pid(), benchPool) }
	command := benchExecCmd(b)
	withEnv := func(kv string) func(w *os.File) *exec.Cmd {
		return func(w *os.File) *exec.Cmd {
			cmd := command(w)
			cmd.Env = append(cmd.Env, kv)
			return cmd
		}
	}
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	serverExec := benchExitAfterByte(b, func(w *os.File) (func() error, int) {
		cmd := srv.Command(exe, "-test.run=^$")
		cmd.Env = command(w).Env
		cmd.ExtraFiles = []*os.File{w}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		return cmd.Wait, cmd.Process.Pid
	})
	r := benchInterleave(b, settle,
		benchOp{"pooled exit until Wait", benchPooledExit(b, srv, 0)},
		benchOp{"exit floor", benchExecExit(b, command)},
		benchOp{"exit floor, 512 KiB more", benchExecExit(b, withEnv(benchExecTouch+"=512"))},
		benchOp{"executed by the server", serverExec},
		benchOp{"exit floor, after 10 ms", benchExecExit(b, withEnv(benchExecWait+"=10"))},
		benchOp{"pooled exit, after 10 ms", benchPooledExit(b, srv, 10*time.Millisecond)})
	r.report(b, 0, "")
	r.report(b, 1, "floor-")
	r.report(b, 2, "touched-512k-")
	r.report(b, 3, "server-exec-")
	r.report(b, 4, "floor-waited-")
	r.report(b, 5, "waited-")
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
	srv := forkserver.StartWith(b, &forkserver.Config{PoolSize: benchPool})
	ctx := forkserver.TestContext(b)
	programBefore := forkserver.ProcStatus(b, os.Getpid(), "Threads")
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
		threads = max(threads, forkserver.ProcStatus(b, srv.Pid(), "Threads"))
		rssKiB = max(rssKiB, forkserver.ProcStatus(b, srv.Pid(), "VmRSS"))
		program = max(program, forkserver.ProcStatus(b, os.Getpid(), "Threads"))
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

// benchPrivsep are the README's privilege-separation settings: Paths
// read-only on one directory, DenySyscalls network, exec and trace,
// NoNewPrivs and an Rlimit.
func benchPrivsep(dir string) *forkserver.Attr {
	return &forkserver.Attr{
		Paths:        &forkserver.PathPolicy{ReadOnly: []string{dir}},
		DenySyscalls: forkserver.SyscallsNetwork | forkserver.SyscallsExec | forkserver.SyscallsTrace,
		NoNewPrivs:   true,
		Rlimits:      []forkserver.Rlimit{{Resource: syscall.RLIMIT_NOFILE, Cur: 256, Max: 256}},
	}
}

// BenchmarkWarmSandbox: the README's privilege-separation settings, from
// a declared sandbox's warm children and cold, against a plain pooled
// child and os/exec of the same binary, interleaved: until the child
// runs (the byte it writes first), and Fork+Wait of a child that returns
// at once. Reported: the warm sandboxed figures, then each other's with
// its prefix, and warm sandboxed over plain pooled and over os/exec.
func BenchmarkWarmSandbox(b *testing.B) { benchWarmSandbox(b, benchPrivsep(b.TempDir())) }

// BenchmarkWarmSandboxNobody is BenchmarkWarmSandbox with what root adds
// to those settings: Credential nobody and new network, IPC, UTS and PID
// namespaces, which the pool pays for ahead.
func BenchmarkWarmSandboxNobody(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root to run children as nobody in new namespaces")
	}
	dir := b.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	sb := benchPrivsep(dir)
	sb.Credential = &forkserver.Credential{Uid: 65534, Gid: 65534}
	sb.Namespaces = forkserver.NewNet | forkserver.NewIPC | forkserver.NewUTS | forkserver.NewPID
	benchWarmSandbox(b, sb)
}

// benchWarmSandbox is BenchmarkWarmSandbox with the sandbox sb.
func benchWarmSandbox(b *testing.B, sb *forkserver.Attr) {
	benchSetupLoad(b)
	srv := forkserver.StartWith(b, &forkserver.Config{PoolSize: benchPool, Sandboxes: []forkserver.Sandbox{{Attr: sb, Size: benchPool}}})
	cold := forkserver.StartWith(b, nil)
	settle := func() { benchSettlePool(b, srv.Pid(), 2*benchPool) }
	buf := make([]byte, 1)
	running := func(srv *forkserver.Server, attr *forkserver.Attr) func(*benchClock) {
		return func(c *benchClock) {
			a := *attr
			a.Socket = true
			c.begin()
			p, err := srv.Fork(context.Background(), benchFirstByte, &a)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(p.Conn(), buf); err != nil {
				b.Fatalf("child %d: %v", p.Pid, err)
			}
			c.end()
			p.Conn().Close()
			forkserver.WaitSuccess(b, p)
		}
	}
	forkWait := func(srv *forkserver.Server, attr *forkserver.Attr) func(*benchClock) {
		return func(c *benchClock) {
			c.begin()
			p, err := srv.Fork(context.Background(), returnNil, attr)
			if err != nil {
				b.Fatal(err)
			}
			forkserver.WaitSuccess(b, p)
			c.end()
		}
	}
	command := benchExecCmd(b)
	r := benchInterleave(b, settle,
		benchOp{"warm sandboxed until running", running(srv, sb)},
		benchOp{"plain pooled until running", running(srv, new(forkserver.Attr))},
		benchOp{"cold sandboxed until running", running(cold, sb)},
		benchOp{"os/exec until running", benchExecFirstByte(b, command)},
		benchOp{"warm sandboxed Fork+Wait", forkWait(srv, sb)},
		benchOp{"plain pooled Fork+Wait", forkWait(srv, new(forkserver.Attr))},
		benchOp{"cold sandboxed Fork+Wait", forkWait(cold, sb)},
		benchOp{"os/exec Start+Wait", benchExecRun(b, command)})
	for i, prefix := range []string{"", "plain-", "cold-", "exec-", "wait-", "wait-plain-", "wait-cold-", "wait-exec-"} {
		r.report(b, i, prefix)
	}
	r.ratio(b, "x-plain", r.p(1, 0.50))
	r.ratio(b, "x-exec", r.p(3, 0.50))
	b.ReportMetric(float64(r.p(4, 0.50))/float64(r.p(5, 0.50)), "wait-x-plain")
}
