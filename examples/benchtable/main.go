// Command benchtable measures what starting a child through a fork server
// costs next to os/exec, and prints one table of latencies:
//
//	go run ./examples/benchtable            # an idle program
//	go run ./examples/benchtable -load=big  # with 2 GiB of live heap
//	go run ./examples/benchtable -load=busy # the same, and 8 goroutines allocating
//
// Each operation runs -n times after a warm-up; the table gives the median
// and the 99th percentile, and the median's ratio to that of os/exec
// starting the same binary, which is what a program would do without a
// fork server.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/forkserver/forkserver"
)

// The children's functions.
var (
	nothing = forkserver.Register("nothing", func(ctx context.Context, c *forkserver.Child) error {
		return nil
	})
	// ready writes a byte as soon as it runs, then waits for its socket to close.
	ready = forkserver.Register("ready", func(ctx context.Context, c *forkserver.Child) error {
		c.Conn().Write([]byte{1})
		_, err := io.Copy(io.Discard, c.Conn())
		return err
	})
	echo = forkserver.Register("echo", func(ctx context.Context, c *forkserver.Child) error {
		_, err := io.Copy(c.Conn(), c.Conn())
		return err
	})
	// bye writes the time and exits.
	bye = forkserver.Register("bye", func(ctx context.Context, c *forkserver.Child) error {
		_, err := c.Conn().Write(binary.LittleEndian.AppendUint64(nil, uint64(time.Now().UnixNano())))
		return err
	})
)

// execChild, set in its environment, makes this binary exit at once: the
// child of the os/exec baseline.
const execChild = "BENCHTABLE_EXEC_CHILD"

const poolSize = 4 // enough for one Fork at a time, and a short burst

var ctx = context.Background()

func main() {
	forkserver.Main()
	if os.Getenv(execChild) != "" {
		return
	}
	n := flag.Int("n", 200, "timed runs of each operation, after a warm-up of n/10")
	load := flag.String("load", "", "run inside a loaded program: big (2 GiB live heap) or busy (the same and 8 goroutines allocating)")
	flag.Parse()
	log.SetFlags(0)
	if *n < 1 {
		log.Fatal("-n must be at least 1")
	}
	if err := buildLoad(*load); err != nil {
		log.Fatal(err)
	}

	exe, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	cold := start(0)
	defer cold.Close()
	pooled := start(poolSize)
	defer pooled.Close()
	waitPool := func() { settle(pooled.Pid(), poolSize) }

	echoer, err := cold.Fork(ctx, echo, &forkserver.Attr{Socket: true})
	check(err)
	defer echoer.Conn().Close()

	baseline := measure(*n, func() time.Duration { return execRun(exe) })
	rows := []struct {
		name string
		lat  []time.Duration
	}{
		{"Fork+Wait, cold", measure(*n, func() time.Duration { return forkWait(cold, nil) })},
		{"Fork+Wait, pooled", measure(*n, func() time.Duration { return forkWait(pooled, waitPool) })},
		{"Fork until running, cold", measure(*n, func() time.Duration { return forkRunning(cold, nil) })},
		{"Fork until running, pooled", measure(*n, func() time.Duration { return forkRunning(pooled, waitPool) })},
		{"os/exec Start+Wait (baseline)", baseline},
		{"socket round trip, 8 bytes", measure(*n, func() time.Duration { return roundTrip(echoer.Conn()) })},
		{"child's exit until Done", measure(*n, func() time.Duration { return exitNotify(cold) })},
	}

	if *load == "" {
		*load = "none"
	}
	fmt.Printf("%d runs each; load %s; GOMAXPROCS %d; pool %d\n\n", *n, *load, runtime.GOMAXPROCS(0), poolSize)
	fmt.Printf("%-30s %10s %10s %14s\n", "operation", "p50 µs", "p99 µs", "p50 ÷ os/exec")
	for _, r := range rows {
		fmt.Printf("%-30s %10.1f %10.1f %14.2f\n", r.name, micros(pct(r.lat, 0.50)), micros(pct(r.lat, 0.99)),
			float64(pct(r.lat, 0.50))/float64(pct(baseline, 0.50)))
	}
}

func start(pool int) *forkserver.Server {
	srv, err := forkserver.Start(&forkserver.Config{PoolSize: pool})
	check(err)
	return srv
}

// measure runs op n/10 times to warm up, then n times, and returns the
// durations op reports, sorted.
func measure(n int, op func() time.Duration) []time.Duration {
	for range n / 10 {
		op()
	}
	lat := make([]time.Duration, n)
	for i := range lat {
		lat[i] = op()
	}
	slices.Sort(lat)
	return lat
}

// execRun is the baseline: os/exec runs this binary, which exits at once.
func execRun(exe string) time.Duration {
	t := time.Now()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), execChild+"=1")
	check(cmd.Run())
	return time.Since(t)
}

// forkWait forks a child that returns at once and waits for it. Before a
// pooled Fork, settle waits until the pool is full again.
func forkWait(srv *forkserver.Server, settle func()) time.Duration {
	if settle != nil {
		settle()
	}
	t := time.Now()
	p, err := srv.Fork(ctx, nothing, nil)
	check(err)
	wait(p)
	return time.Since(t)
}

// forkRunning times a Fork until the child's first byte arrives.
func forkRunning(srv *forkserver.Server, settle func()) time.Duration {
	if settle != nil {
		settle()
	}
	t := time.Now()
	p, err := srv.Fork(ctx, ready, &forkserver.Attr{Socket: true})
	check(err)
	_, err = p.Conn().Read(make([]byte, 1))
	check(err)
	d := time.Since(t)
	p.Conn().Close() // the child returns
	wait(p)
	return d
}

func roundTrip(conn io.ReadWriter) time.Duration {
	buf := []byte("8 bytes!")
	t := time.Now()
	_, err := conn.Write(buf)
	check(err)
	_, err = io.ReadFull(conn, buf)
	check(err)
	return time.Since(t)
}

// exitNotify times from a child's last act, writing the time, to its
// exit's delivery. The child's clock is the start: a busy program would
// notice its bytes late.
func exitNotify(srv *forkserver.Server) time.Duration {
	p, err := srv.Fork(ctx, bye, &forkserver.Attr{Socket: true})
	check(err)
	defer p.Conn().Close()
	stamp := make([]byte, 8)
	_, err = io.ReadFull(p.Conn(), stamp)
	check(err)
	<-p.Done()
	d := time.Since(time.Unix(0, int64(binary.LittleEndian.Uint64(stamp))))
	wait(p)
	return d
}

func wait(p *forkserver.Process) {
	exit, err := p.Wait()
	check(err)
	if !exit.Success() {
		log.Fatalf("child %d: %s", p.Pid, exit)
	}
}

// settle waits until the server has size children, all asleep and none of
// which used CPU for a millisecond: a full pool of children done starting.
// Without /proc it waits 50ms.
func settle(server, size int) {
	if _, err := os.Stat("/proc/self/task"); err != nil {
		time.Sleep(50 * time.Millisecond)
		return
	}
	for {
		kids := children(server)
		if len(kids) != size {
			time.Sleep(time.Millisecond)
			continue
		}
		before, ok1 := sleepingCPU(kids)
		time.Sleep(time.Millisecond)
		after, ok2 := sleepingCPU(kids)
		if ok1 && ok2 && after == before {
			return
		}
	}
}

func children(pid int) []string {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var kids []string
	for _, t := range tasks {
		list, _ := os.ReadFile(t)
		kids = append(kids, strings.Fields(string(list))...)
	}
	return kids
}

// sleepingCPU returns the CPU time in ns that the processes pids used, and
// whether every thread of theirs sleeps.
func sleepingCPU(pids []string) (ns int64, asleep bool) {
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

// The load: 2 GiB of live heap in 64-byte objects linked in lists, and for
// busy, 8 goroutines allocating without pause.
type obj struct {
	next *obj
	_    [56]byte
}

var heap []*obj

func buildLoad(load string) error {
	switch load {
	case "":
		return nil
	case "big", "busy":
	default:
		return fmt.Errorf("-load=%s: want big or busy", load)
	}
	const size, list = 2 << 30, 4096
	old := debug.SetGCPercent(-1)
	for range size / (list * 64) {
		var head *obj
		for range list {
			head = &obj{next: head}
		}
		heap = append(heap, head)
	}
	debug.SetGCPercent(old)
	runtime.GC()
	if load == "busy" {
		for range 8 {
			go func() {
				var keep [1024][]byte
				for i := 0; ; i++ {
					keep[i%len(keep)] = make([]byte, 16+i%512)
				}
			}()
		}
	}
	return nil
}

func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func micros(d time.Duration) float64 { return d.Seconds() * 1e6 }

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
