//go:build linux

package forkserver_test

// Benchmarks. They run only with -bench, for example
//
//	go test -run '^$' -bench . -benchtime 200x .
//
// Each latency benchmark times every iteration itself and reports the
// median and the 99th percentile as p50-µs and p99-µs: those are the
// figures to read. ns/op is the mean of the same timed part (set-up and
// teardown run with the timer stopped).
//
// FORKSERVER_BENCH_LOAD=big or =busy runs the same benchmarks inside a
// loaded program (see benchSetupLoad); run the suite three times, idle, big
// and busy, and compare.

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
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

	// benchExecProgram is the FORKSERVER_TEST_PROGRAM value on which
	// TestMain runs benchExecChild: the os/exec baseline's child.
	benchExecProgram = "bench-exec"
)

// benchStampExit writes the time, in Unix nanoseconds, and returns: its
// process exits next.
var benchStampExit = forkserver.Register("bench-stamp-exit", func(ctx context.Context, c *forkserver.Child) error {
	_, err := c.Conn().Write(binary.LittleEndian.AppendUint64(nil, uint64(time.Now().UnixNano())))
	return err
})

// benchBlock reads its first file until end-of-file, then exits.
var benchBlock = forkserver.Register("bench-block", func(ctx context.Context, c *forkserver.Child) error {
	_, err := io.Copy(io.Discard, c.Files()[0])
	return err
})

// benchExecChild is the child of the os/exec baseline: the same binary,
// started, initialised and gone, doing nothing.
func benchExecChild() { os.Exit(0) }

// BenchmarkForkWait: Fork and Wait for a child that returns at once.
func BenchmarkForkWait(b *testing.B) {
	benchModes(b, func(b *testing.B, srv *forkserver.Server, pooled bool, settle func()) {
		ctx := testContext(b)
		var lat benchLatencies
		settle()
		for b.Loop() {
			start := time.Now()
			p, err := srv.Fork(ctx, returnNil, nil)
			if err != nil {
				b.Fatal(err)
			}
			waitSuccess(b, p)
			lat.add(start)
			if pooled {
				b.StopTimer()
				settle()
				b.StartTimer()
			}
		}
		lat.report(b)
	})
}

// BenchmarkForkRunning: from the call to Fork until the child's first byte
// arrives, so until the function runs in the child.
func BenchmarkForkRunning(b *testing.B) {
	benchModes(b, func(b *testing.B, srv *forkserver.Server, _ bool, settle func()) {
		ctx := testContext(b)
		var lat benchLatencies
		buf := make([]byte, 1)
		settle()
		for b.Loop() {
			start := time.Now()
			p := benchForkRead(b, ctx, srv, ignoreTerm, buf)
			lat.add(start)
			b.StopTimer()
			p.Conn().Close() // ignore-term reads end-of-file and returns
			waitSuccess(b, p)
			settle()
			b.StartTimer()
		}
		lat.report(b)
	})
}

// BenchmarkExecBaseline: what a program does without this package: os/exec
// starts the same binary, which exits at once, and waits for it.
func BenchmarkExecBaseline(b *testing.B) {
	benchSetupLoad(b)
	env := append(os.Environ(), "FORKSERVER_TEST_PROGRAM="+benchExecProgram)
	var lat benchLatencies
	for b.Loop() {
		start := time.Now()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = env
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		lat.add(start)
	}
	lat.report(b)
}

// BenchmarkSocketRoundTrip: 8 bytes to a running echo child and back.
func BenchmarkSocketRoundTrip(b *testing.B) {
	benchSetupLoad(b)
	srv := startBench(b, 0)
	ctx := testContext(b)
	deadline, _ := ctx.Deadline()
	p, err := srv.Fork(ctx, echo, &forkserver.Attr{Socket: true})
	if err != nil {
		b.Fatal(err)
	}
	conn := p.Conn()
	conn.SetDeadline(deadline)
	out, in := []byte("8 bytes!"), make([]byte, 8)
	var lat benchLatencies
	for b.Loop() {
		start := time.Now()
		if _, err := conn.Write(out); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(conn, in); err != nil {
			b.Fatal(err)
		}
		lat.add(start)
	}
	lat.report(b)
	conn.Close()
	waitSuccess(b, p)
}

// BenchmarkExitNotify: a child writes the time and returns; from that time
// until Done fires, so the child's exit, the server's reaping and the
// exit's delivery. The child's clock starts it rather than the arrival of
// its bytes, which a busy program notices late: the two processes read the
// same wall clock. ns/op times only from reading the bytes until Done.
func BenchmarkExitNotify(b *testing.B) {
	benchSetupLoad(b)
	srv := startBench(b, 0) // a pool would refill during the timed part
	ctx := testContext(b)
	buf := make([]byte, 8)
	var lat benchLatencies
	for b.Loop() {
		b.StopTimer()
		p := benchForkRead(b, ctx, srv, benchStampExit, buf)
		b.StartTimer()
		waitSuccess(b, p)
		lat.add(time.Unix(0, int64(binary.LittleEndian.Uint64(buf))))
		b.StopTimer()
		p.Conn().Close()
		b.StartTimer()
	}
	lat.report(b)
}

// BenchmarkManyAlive: 2,000 children alive at once, all blocked reading
// one pipe that the program holds the write end of, then released by
// closing it; every exit must arrive. It reports the server's threads and
// resident memory with all of them alive, and how long starting and ending
// them all took. It runs once whatever b.N.
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
	srv := startBench(b, 0)
	ctx := testContext(b)
	r, w := testPipe(b)
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
	threads := procStatus(b, srv.Pid(), "Threads")
	rssKiB := procStatus(b, srv.Pid(), "VmRSS")

	start = time.Now()
	w.Close() // every child reads end-of-file and exits
	for _, p := range procs {
		select {
		case <-p.Done():
		case <-ctx.Done():
			b.Fatalf("the exit of child %d was not delivered", p.Pid)
		}
		if exit, err := p.Wait(); err != nil || !exit.Success() {
			b.Fatalf("child %d: %v, %v", p.Pid, exit, err)
		}
	}
	ended := time.Since(start)
	b.ReportMetric(float64(threads), "server-threads")
	b.ReportMetric(float64(rssKiB)/1024, "server-rss-MiB")
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

// benchModes runs body against a server without a pool, "cold", and one
// with benchPool children waiting, "pooled". body calls settle, with the
// timer stopped, before each Fork: for the pooled server it waits until the
// pool is full again and every child in it has started and sleeps, so that
// each Fork finds a warm child, as it would if Forks came no faster than
// the pool refills; for the cold one it does nothing.
func benchModes(b *testing.B, body func(b *testing.B, srv *forkserver.Server, pooled bool, settle func())) {
	benchSetupLoad(b)
	for _, mode := range []struct {
		name string
		pool int
	}{{"cold", 0}, {"pooled", benchPool}} {
		b.Run(mode.name, func(b *testing.B) {
			srv := startBench(b, mode.pool)
			settle := func() {}
			if mode.pool > 0 {
				settle = func() { benchSettlePool(b, srv.Pid(), mode.pool) }
			}
			body(b, srv, mode.pool > 0, settle)
		})
	}
}

// benchForkRead forks fn with a socket and reads len(buf) bytes from it.
func benchForkRead(b *testing.B, ctx context.Context, srv *forkserver.Server, fn forkserver.Func, buf []byte) *forkserver.Process {
	p, err := srv.Fork(ctx, fn, &forkserver.Attr{Socket: true})
	if err != nil {
		b.Fatal(err)
	}
	deadline, _ := ctx.Deadline()
	p.Conn().SetReadDeadline(deadline)
	if _, err := io.ReadFull(p.Conn(), buf); err != nil {
		b.Fatalf("child %d: %v", p.Pid, err)
	}
	return p
}

func startBench(b *testing.B, pool int) *forkserver.Server {
	return startWith(b, &forkserver.Config{PoolSize: pool})
}

// benchLatencies records the duration of every iteration.
type benchLatencies []time.Duration

func (l *benchLatencies) add(start time.Time) { *l = append(*l, time.Since(start)) }

// report reports the median and the 99th percentile, nearest rank, in µs.
func (l benchLatencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	at := func(p float64) float64 {
		i := int(p*float64(len(l))+0.5) - 1
		return l[max(0, min(i, len(l)-1))].Seconds() * 1e6
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}

// benchSettlePool waits until the server has exactly size children, each of
// whose threads sleeps and none of which has used CPU for a millisecond: a
// full pool of children that have finished starting.
func benchSettlePool(b *testing.B, server, size int) {
	eventually(b, fmt.Sprintf("the pool of server %d to fill up", server), func() bool { return benchPoolIdle(server, size) })
}

// benchPoolIdle reports whether server has size children, none of which
// used CPU over a millisecond.
func benchPoolIdle(server, size int) bool {
	kids := childrenOf(server)
	if len(kids) != size {
		return false
	}
	before, ok := benchSleepingCPU(kids)
	time.Sleep(time.Millisecond) // the window idleness is measured over
	after, ok2 := benchSleepingCPU(kids)
	return ok && ok2 && after == before
}

// benchSleepingCPU returns the CPU time the processes pids have used, in
// ns, and whether every one of their threads sleeps.
func benchSleepingCPU(pids []int) (ns int64, asleep bool) {
	for _, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
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
