// Command benchtable runs the package's benchmarks, which interleave each
// operation with its os/exec counterpart and its floor iteration by
// iteration, in an idle program, in one with 2 GiB of live heap (big) and
// in one that also keeps its processors busy allocating (busy), and in one
// whose 16 goroutines allocate 64 KiB blocks with a small heap (alloc), and
// prints one markdown table of the results:
//
//	go run ./examples/benchtable                     # idle, big, busy and alloc
//	go run ./examples/benchtable -load=idle -n=500   # idle only
//
// It runs, in the module's directory, for each load,
//
//	FORKSERVER_BENCH_LOAD=<load> go test -count=1 -timeout=0 -run '^$' \
//		-bench '^Benchmark(PooledForkRunning|PooledForkWait|PooledForkWaitBackToBack|PooledExitWait|ColdForkWait)$' \
//		-benchtime <n>x .
//
// (no FORKSERVER_BENCH_LOAD for idle) and, unless -many=false, once more
// for BenchmarkManyAlive, idle. Run it inside the module, with the go
// command on PATH; go test's own output goes to standard error as it
// comes, the table to standard output. bench_test.go says what each
// operation, counterpart and floor measures.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
)

// The rows of the table, in order, the benchmarks they come from and, for
// a benchmark whose floor is reported under another name, that name.
var operations = []struct{ bench, label, floor string }{
	{"PooledForkRunning", "pooled `Fork` until the child runs", ""},
	{"PooledForkWait", "pooled `Fork`+`Wait`", ""},
	{"PooledForkWaitBackToBack", "pooled `Fork`+`Wait`, back to back", "spaced"},
	{"PooledExitWait", "child's exit until `Wait` returns", ""},
	{"ColdForkWait", "cold `Fork`+`Wait`", ""},
}

// metrics are one benchmark's reported figures, by unit.
type metrics map[string]float64

func main() {
	loads := flag.String("load", "idle,big,busy,alloc", "comma-separated loads to run the benchmarks in: idle, big (2 GiB live heap), busy (the same and 8 goroutines allocating), alloc (16 goroutines allocating 64 KiB blocks, small heap)")
	n := flag.Int("n", 200, "iterations of each benchmark, idle and big")
	busyN := flag.Int("busy-n", 20, "iterations of each benchmark, busy and alloc, where every wake-up costs the program up to about 100 ms")
	many := flag.Bool("many", true, "also run BenchmarkManyAlive once, idle: 2,000 children alive at once")
	sandboxed := flag.Bool("sandbox", true, "also run BenchmarkWarmSandbox and BenchmarkSandboxedExec, idle: the README's privilege-separation settings warm, cold and executed")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("benchtable: ")
	if *n < 1 || *busyN < 1 {
		log.Fatal("-n and -busy-n must be at least 1")
	}

	dir := moduleDir()
	var names []string
	for _, o := range operations {
		names = append(names, o.bench)
	}
	pattern := "^Benchmark(" + strings.Join(names, "|") + ")$"
	results := map[string]map[string]metrics{} // load, benchmark
	var order []string
	for _, load := range strings.Split(*loads, ",") {
		load = strings.TrimSpace(load)
		count := *n
		switch load {
		case "idle", "big":
		case "busy", "alloc":
			count = *busyN
		default:
			log.Fatalf("-load: %q: want idle, big, busy or alloc", load)
		}
		results[load] = runBench(dir, load, pattern, count)
		order = append(order, load)
	}
	var sandbox map[string]metrics
	if *sandboxed {
		sandbox = runBench(dir, "idle", "^Benchmark(WarmSandbox|SandboxedExec)$", *n)
	}
	var manyAlive metrics
	if *many {
		manyAlive = runBench(dir, "idle", "^BenchmarkManyAlive$", 1)["ManyAlive"]
	}

	fmt.Printf("%s; %d iterations of each benchmark (busy, alloc: %d); times in µs.\n\n", machine(), *n, *busyN)
	fmt.Println("| operation | load | ours p50 | os/exec p50 | floor p50 | ×os/exec | ×floor | ours p99 | os/exec p99 |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, o := range operations {
		for _, load := range order {
			m, ok := results[load][o.bench]
			if !ok {
				log.Fatalf("no result from Benchmark%s, load %s", o.bench, load)
			}
			floor, xFloor := "floor-p50-µs", "x-floor"
			if o.floor != "" {
				floor, xFloor = o.floor+"-p50-µs", "x-"+o.floor
			}
			fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", o.label, load,
				micros(m, "p50-µs"), micros(m, "exec-p50-µs"), micros(m, floor),
				ratio(m, "x-exec"), ratio(m, xFloor),
				micros(m, "p99-µs"), micros(m, "exec-p99-µs"))
		}
	}
	fmt.Print(`
os/exec starts the same binary. The floors, measured in the same runs:
until the child runs, an 8-byte round trip to an idle running child of the
same kind; Fork+Wait, that round trip plus the exit floor, from an os/exec
child's last write until its parent's own blocking wait returns; a child's
exit, the exit floor itself, which is also its os/exec counterpart. A
back-to-back Fork+Wait is issued as the previous pooled child exits, while
the server starts its replacement; its floor is the same Fork+Wait issued
20 ms after the previous one. A cold Fork+Wait has no floor of its own:
the server starts the binary as os/exec does.
`)
	if *sandboxed {
		printSandboxed(sandbox)
	}
	if *many {
		if manyAlive == nil {
			fmt.Println("\nBenchmarkManyAlive was skipped: see its output above.")
		} else {
			fmt.Printf("\n2,000 children alive at once on a pooled server, idle program: the server has %.0f threads and %.0f MiB resident; "+
				"the program has %.0f threads while it awaits every exit with Done (%.0f before the first Fork). "+
				"Every exit was delivered; starting them all took %.1f s, ending them %.1f s.\n",
				manyAlive["server-threads"], manyAlive["server-rss-MiB"],
				manyAlive["program-threads"], manyAlive["program-threads-before"],
				manyAlive["start-all-ms"]/1e3, manyAlive["exit-all-ms"]/1e3)
		}
	}
}

// printSandboxed prints the sandboxed children's table: the README's
// privilege-separation settings from a declared sandbox's warm children
// and cold, beside a plain pooled child and os/exec, and a sandboxed Exec
// beside a plain one.
func printSandboxed(results map[string]metrics) {
	w, x := results["WarmSandbox"], results["SandboxedExec"]
	if w == nil || x == nil {
		log.Fatal("no result from BenchmarkWarmSandbox or BenchmarkSandboxedExec")
	}
	fmt.Print("\nThe README's privilege-separation settings, idle program, p50 in µs (× plain pooled):\n\n")
	fmt.Println("| child | until it runs | Fork+Wait |")
	fmt.Println("|---|---:|---:|")
	row := func(label, prefix string) {
		fmt.Printf("| %s | %s (%s) | %s (%s) |\n", label,
			micros(w, prefix+"p50-µs"), times(w[prefix+"p50-µs"], w["plain-p50-µs"]),
			micros(w, "wait-"+prefix+"p50-µs"), times(w["wait-"+prefix+"p50-µs"], w["wait-plain-p50-µs"]))
	}
	row("plain, pooled", "plain-")
	row("sandboxed, warm (declared ahead)", "")
	row("sandboxed, cold", "cold-")
	row("os/exec of the same binary", "exec-")
	fmt.Printf("\nExec+Wait of /bin/true: sandboxed (Paths, DenySyscalls, NoNewPrivs) %s µs, plain %s µs, ×%s.\n",
		micros(x, "p50-µs"), micros(x, "plain-p50-µs"), ratio(x, "x-plain"))
}

// times formats a over b as a ratio.
func times(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return "×" + strconv.FormatFloat(a/b, 'f', 2, 64)
}

// moduleDir returns the directory of the module benchtable runs in.
func moduleDir() string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		log.Fatalf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		log.Fatal("run benchtable inside the forkserver module")
	}
	return filepath.Dir(mod)
}

// runBench runs the benchmarks pattern matches in the load given, count
// iterations each, and returns their figures by benchmark name, without
// the Benchmark prefix and the -GOMAXPROCS suffix.
func runBench(dir, load, pattern string, count int) map[string]metrics {
	args := []string{"test", "-count=1", "-timeout=0", "-run=^$", "-bench=" + pattern, "-benchtime=" + strconv.Itoa(count) + "x", "."}
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FORKSERVER_BENCH_LOAD=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if load != "idle" {
		cmd.Env = append(cmd.Env, "FORKSERVER_BENCH_LOAD="+load)
	}
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(os.Stderr, &out)
	cmd.Stderr = os.Stderr
	log.Printf("load %s: go %s", load, strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		log.Fatalf("load %s: go test: %v", load, err)
	}
	return parse(out.String())
}

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// parse reads the lines of go test -bench output that give results: a
// name, the iterations, then pairs of a value and its unit.
func parse(out string) map[string]metrics {
	results := map[string]metrics{}
	for _, line := range strings.Split(out, "\n") {
		match := benchLine.FindStringSubmatch(line)
		if match == nil {
			continue
		}
		m := metrics{}
		fields := strings.Fields(match[2])
		for i := 0; i+1 < len(fields); i += 2 {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				m[fields[i+1]] = v
			}
		}
		results[match[1]] = m
	}
	return results
}

// machine describes the machine: its processor, as /proc/cpuinfo names it,
// its processors, its kernel and the Go that builds the benchmarks.
func machine() string {
	cpu := "unknown processor"
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(info), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	kernel := "unknown kernel"
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		kernel = strings.TrimSpace(string(out))
	}
	goVersion := runtime.Version()
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		goVersion = strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("Machine: %s, %d cores, %s, %s", cpu, runtime.NumCPU(), kernel, goVersion)
}

// micros formats a time in µs, whole above 100.
func micros(m metrics, unit string) string {
	v, ok := m[unit]
	switch {
	case !ok:
		return "—"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func ratio(m metrics, unit string) string {
	v, ok := m[unit]
	if !ok {
		return "—"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
