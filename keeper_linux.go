package forkserver

// The keeper: a small process between the program and its server, so that
// nothing the server started outlives it. The keeper is a child subreaper:
// when the server dies, for any reason, SIGKILL included, every process it
// left behind is reparented to the keeper, which kills them all and then
// exits as the server did. The program talks to the server directly; the
// keeper only waits.

import (
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// roleKeeper is the role of the process Start executes on Linux: it starts
// the server as its own child.
const roleKeeper = "keeper"

// serverRole is the role Start executes the binary in.
const serverRole = roleKeeper

// runKeeper starts the server with the program's connection, descriptor 3,
// waits for it to exit, kills every process left behind, and returns as
// the server ended: the program, which reaps the keeper, learns the server's
// status.
func runKeeper() int {
	// Forked from the main thread, which lives as long as the process: the
	// server's parent-death signal comes when the keeper dies, not a thread.
	runtime.LockOSThread()
	program := os.Getppid()
	signal.Notify(make(chan os.Signal, 1), syscall.SIGINT, syscall.SIGHUP)
	terms := make(chan os.Signal, 1)
	signal.Notify(terms, syscall.SIGTERM)
	if os.Getppid() != program || program == 1 {
		return 2 // the program died before the keeper could learn it
	}
	closeInherited()
	if err := prctlChildSubreaper(); err != nil {
		os.Stderr.WriteString("forkserver: keeper: " + err.Error() + "\n")
		return 2
	}
	exe, err := executable()
	if err != nil {
		return 2
	}
	server, err := syscall.ForkExec(exe, os.Args, &syscall.ProcAttr{
		Env:   append(os.Environ(), roleEnv+"=server"),
		Files: []uintptr{0, 1, 2, 3},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM},
	})
	syscall.Close(3) // the connection is the server's alone: its end is seen
	if err != nil {
		os.Stderr.WriteString("forkserver: keeper: fork/exec " + exe + ": " + err.Error() + "\n")
		return 2
	}
	go func() {
		// The program's death sends SIGTERM (see serverSysProcAttr), as
		// does the end of the thread that started the keeper, which is no
		// death: the parent tells them apart.
		for range terms {
			if os.Getppid() != program {
				syscall.Kill(server, syscall.SIGKILL)
			}
		}
	}()
	status := waitPid(server)
	if status.Exited() && status.ExitStatus() == exitDetached {
		return 0 // Detach: what the server started lives on, as init's
	}
	killDescendants()
	if status.Signaled() {
		// Die of the same signal, without a core dump of the keeper.
		syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{})
		signal.Reset(status.Signal())
		syscall.Kill(os.Getpid(), status.Signal())
		return 128 + int(status.Signal())
	}
	return status.ExitStatus()
}

// killDescendants kills every child of this process, a subreaper, and
// reaps it, until none is left: each death may reparent the dead one's own
// children to this process, before the death can be reaped, so that a
// child list read after a reap holds them.
func killDescendants() {
	for {
		for _, pid := range childPids() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.ECHILD {
			return
		}
	}
}

// childPids lists the processes, zombies included, whose parent is this
// process.
func childPids() []int {
	var pids []int
	eachThreadChildren(func(_ int, children []int) { pids = append(pids, children...) })
	return pids
}

// eachThreadChildren calls fn with each thread of this process and the
// processes whose parent it is, each list read once: a process reparented
// to this one names the first thread as its parent; one the process
// created, the thread that created it. A kernel without those lists
// (CONFIG_PROC_CHILDREN) has them found in every process's status, and
// given as the first thread's.
func eachThreadChildren(fn func(tid int, pids []int)) {
	if !haveThreadChildren() {
		fn(os.Getpid(), childPidsScan())
		return
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		if tid, err := strconv.Atoi(task.Name()); err == nil {
			fn(tid, threadChildren(tid)) // none if the thread ended meanwhile
		}
	}
}

// threadChildren lists the processes, zombies included, whose parent is
// the thread tid of this process, from the kernel's list.
func threadChildren(tid int) []int {
	b, _ := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/children")
	var pids []int
	for f := range strings.FieldsSeq(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// haveThreadChildren reports whether the kernel lists each thread's
// children (CONFIG_PROC_CHILDREN).
func haveThreadChildren() bool {
	_, err := os.Stat("/proc/self/task/" + strconv.Itoa(os.Getpid()) + "/children")
	return err == nil
}

// childPidsScan is childPids the slow way: every process's PPid.
func childPidsScan() []int {
	procs, _ := os.ReadDir("/proc")
	self := strconv.Itoa(os.Getpid())
	var pids []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + p.Name() + "/status")
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "PPid:"); ok && strings.TrimSpace(v) == self {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
