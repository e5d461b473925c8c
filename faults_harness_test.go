//go:build linux

package forkserver_test

// The harness of faults_test.go: the children and Eval functions of its
// servers, the busy program TestFaultProgramKilledBusy kills, and the
// processes it finds by a mark in their environment.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/forkserver/forkserver"
)

// faultMarkEnv marks, in the environment, every process a server started
// by a test forks, so that the test can find children it was never told
// about.
const faultMarkEnv = "FORKSERVER_FAULT_MARK"

// Child functions, and functions Eval runs in the server, for these tests.
var (
	// faultHang says it is ready on its socket, then blocks for good. It
	// ignores SIGTERM and the end of its socket alike: only SIGKILL stops
	// it, so it outlives the program unless the server kills it.
	faultHang = forkserver.Register("fault-hang", func(ctx context.Context, c *forkserver.Child) error {
		c.Conn().Write([]byte{1})
		select {}
	})

	// faultTermReport says it is ready, says so again when SIGTERM cancels
	// its context, and blocks for good.
	faultTermReport = forkserver.Register("fault-term-report", func(ctx context.Context, c *forkserver.Child) error {
		c.Conn().Write([]byte{1})
		<-ctx.Done()
		c.Conn().Write([]byte{2})
		select {}
	})

	// faultExitOnRelease writes a byte to its second file to say it is
	// ready, reads its first file to the end, and exits with the status in
	// its argument.
	faultExitOnRelease = forkserver.Register("fault-exit-on-release", func(ctx context.Context, c *forkserver.Child) error {
		release, ready := c.Files()[0], c.Files()[1]
		if _, err := ready.Write([]byte{1}); err != nil {
			return err
		}
		ready.Close()
		if _, err := io.Copy(io.Discard, release); err != nil {
			return err
		}
		os.Exit(int(c.Arg()[0]))
		return nil
	})

	// faultSpawnHang forks as many fault-hang grandchildren as its argument
	// says through its own connection, waits until they are ready, writes
	// their pids on one line on its socket, and blocks for good, ignoring
	// SIGTERM.
	faultSpawnHang = forkserver.Register("fault-spawn-hang", func(ctx context.Context, c *forkserver.Child) error {
		var pids []string
		for range int(c.Arg()[0]) {
			p, err := c.Server().Fork(ctx, faultHang, &forkserver.Attr{Socket: true})
			if err != nil {
				return err
			}
			if _, err := io.ReadFull(p.Conn(), make([]byte, 1)); err != nil {
				return err
			}
			pids = append(pids, strconv.Itoa(p.Pid))
		}
		if _, err := fmt.Fprintln(c.Conn(), strings.Join(pids, " ")); err != nil {
			return err
		}
		select {}
	})

	// faultBlock, run by Eval in the server, writes a byte to the FIFO its
	// argument names, then blocks for good.
	faultBlock = forkserver.Register("fault-block", func(ctx context.Context, c *forkserver.Child) error {
		f, err := os.OpenFile(string(c.Arg()), os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		f.Write([]byte{1})
		f.Close()
		select {}
	})

	// faultSetrlimitNofile, run by Eval in the server, lowers the soft
	// limit on open files to the lowest descriptor number not in use, so
	// that the server cannot open another descriptor, given the argument
	// "low"; given "restore" it restores the limit "low" replaced.
	faultSetrlimitNofile = forkserver.Register("fault-setrlimit-nofile", func(ctx context.Context, c *forkserver.Child) error {
		faultNofile.Lock()
		defer faultNofile.Unlock()
		switch string(c.Arg()) {
		case "low":
			var lim syscall.Rlimit
			if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				return err
			}
			dir, err := os.Open("/proc/self/fd")
			if err != nil {
				return err
			}
			names, err := dir.Readdirnames(-1)
			rc, _ := dir.SyscallConn()
			own := -1
			rc.Control(func(fd uintptr) { own = int(fd) })
			dir.Close()
			if err != nil {
				return err
			}
			open := map[int]bool{}
			for _, name := range names {
				if fd, err := strconv.Atoi(name); err == nil && fd != own {
					open[fd] = true
				}
			}
			free := 0
			for open[free] {
				free++
			}
			faultNofile.saved = lim
			lim.Cur = uint64(free)
			return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		case "restore":
			return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &faultNofile.saved)
		}
		return fmt.Errorf("fault-setrlimit-nofile: argument %q", c.Arg())
	})
	faultNofile struct {
		sync.Mutex
		saved syscall.Rlimit
	}
)

// faultBusyProgram runs as a program of its own, for
// TestFaultProgramKilledBusy: it starts a server whose children carry a
// fresh mark in their environment, forks 200 children that only SIGKILL
// stops, starts 50 more Forks at once and, as soon as one of those has
// returned, prints the mark, the server's pid and the children's, and
// "busy", and waits to be killed.
func faultBusyProgram() {
	forkserver.Main()
	var b [16]byte
	rand.Read(b[:])
	mark := hex.EncodeToString(b[:])
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FORKSERVER_TEST_PROGRAM=") {
			env = append(env, kv)
		}
	}
	srv, err := forkserver.Start(&forkserver.Config{Env: append(env, faultMarkEnv+"="+mark)})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("mark", mark)
	fmt.Println("pid", srv.Pid())

	ctx := context.Background()
	var (
		mu   sync.Mutex
		keep []*forkserver.Process // their sockets stay open
		wg   sync.WaitGroup
	)
	const live, workers = 200, 8
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range live / workers {
				p, err := srv.Fork(ctx, faultHang, &forkserver.Attr{Socket: true})
				if err == nil {
					_, err = io.ReadFull(p.Conn(), make([]byte, 1))
				}
				if err != nil {
					fmt.Println("error:", w, err)
					os.Exit(1)
				}
				mu.Lock()
				keep = append(keep, p)
				mu.Unlock()
				fmt.Println("pid", p.Pid)
			}
		}()
	}
	wg.Wait()

	const inFlight = 50
	forked := make(chan error, inFlight)
	for range inFlight {
		go func() {
			p, err := srv.Fork(ctx, faultHang, &forkserver.Attr{Socket: true})
			if err == nil {
				mu.Lock()
				keep = append(keep, p)
				mu.Unlock()
			}
			forked <- err
		}()
	}
	if err := <-forked; err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("busy")
	select {}
}

// markedProcs lists the running processes, zombies left out, whose
// environment carries mark.
func markedProcs(mark string) []int {
	want := []byte(faultMarkEnv + "=" + mark)
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for kv := range bytes.SplitSeq(env, []byte{0}) {
			if bytes.Equal(kv, want) {
				if forkserver.Alive(pid) {
					pids = append(pids, pid)
				}
				break
			}
		}
	}
	return pids
}

// notDying returns the processes among pids that sleep with no SIGKILL
// pending and have not begun to exit: nothing is about to end them.
func notDying(pids []int) []int {
	const sigkillBit = 1 << (syscall.SIGKILL - 1)
	const pfExiting = 0x4
	var out []int
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 7 || f[0] != "S" {
			continue
		}
		if flags, _ := strconv.ParseUint(f[6], 10, 64); flags&pfExiting != 0 {
			continue
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		pending := false
		for line := range strings.SplitSeq(string(status), "\n") {
			k, v, _ := strings.Cut(line, ":")
			if k == "SigPnd" || k == "ShdPnd" {
				mask, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				pending = pending || mask&sigkillBit != 0
			}
		}
		if !pending {
			out = append(out, pid)
		}
	}
	return out
}
