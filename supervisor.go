//go:build linux || darwin

package forkserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/forkserver/forkserver/internal/wire"
)

// errExecSettings: the server's binary, which sets an external program's
// limits, is not inside the program's root.
var errExecSettings = errors.New("Exec: Rlimits and Chroot exclude each other: the limits are set by the server's binary, outside the root")

// errExecMemoryLimit: an external program has no Go runtime whose limit
// MemoryLimit could set.
var errExecMemoryLimit = errors.New("Exec: MemoryLimit applies to Fork only: it is the Go runtime's; bound an external program with RLIMIT_AS or RLIMIT_DATA in Rlimits")

// rightsChild are the rights of a connection handed to a child that asked
// for none in particular.
const rightsChild = RightFork | RightSignal

const (
	// highWater bounds the bytes queued for one connection: a peer that
	// sends requests but reads no replies is not read from until it does.
	highWater = 256 << 10

	// reapTimeout bounds how long a server whose program is gone waits for
	// its killed children before it exits anyway.
	reapTimeout = 5 * time.Second

	// refillPause is how long a pooled child that was assigned runs, unless
	// it exits first, before its replacement starts.
	refillPause = 10 * time.Millisecond

	// refusalBurst and refusalRate pace a connection whose Forks its
	// bounds refuse: see paceAfter.
	refusalBurst = 16
	refusalRate  = 20 // per second
)

// supervisor is the state of the fork server process.
type supervisor struct {
	exe   string
	kinds []*kind // the plain pool, then the declared sandboxes

	// forked gets a token after each fork, for the exit watcher, which
	// waits for one when the server has no child (Linux).
	forked chan struct{}

	// forkMu is held for reading across each fork and the recording of the
	// child, and for writing while reaping: every pid reaped is known.
	forkMu sync.RWMutex

	// mu guards the fields below. It is held while reaping, so that a pid
	// in children always names that child, alive or a zombie, while mu is
	// held: a signal sent under mu cannot reach a reused pid.
	mu          sync.Mutex
	children    map[int]*entry
	poolGen     int // counts drains: a child started before one is not pooled
	refilling   bool
	refillAgain bool            // a refill was asked for while one ran
	stopping    bool            // no new children
	idle        []chan struct{} // closed when children becomes empty and no stray is left

	// dying counts the children killed because their owner ended, not yet
	// reaped, and strays the processes the last sweep killed or spared:
	// while either is not zero, every reap sweeps again (see killStrays).
	dying, strays int

	// spawners are the threads creating a child at idle priority, each
	// with its own child not yet recorded, and whether a sweep killed a
	// child of theirs meanwhile (see spawnIdle).
	spawners map[int]bool

	// program is the program's connection, to which pooled children are
	// handed ahead of need, at most its kind's size of each kind
	// unassigned at once. nextWarm numbers them.
	program  *client
	nextWarm uint32

	// idleRefill says the plain pool's children start at idle priority,
	// which they may leave (see canLeaveIdle), and are created without
	// sv.forkMu, which takes pidfds and each thread's list of children
	// (see spawnIdle and killStrays).
	idleRefill bool

	// throttles counts the times a client was not read from because too
	// much was queued for it.
	throttles atomic.Int64
}

// running is the server this process runs, for functions run by Eval.
var running *supervisor

// entry is a process the server created.
type entry struct {
	owner  *client       // the connection that asked for it; nil while pooled
	id     uint32        // its Fork request's id, which its exit event carries
	exit   int           // with an owner: the exit pipe, or -1
	group  bool          // it leads its own process group
	warm   *kind         // handed to owner, which has not assigned it yet: its pool
	gone   chan struct{} // a pooled child's: closed once it is reaped
	pooled *pooled       // while it waits in the pool or is being assigned
	killed bool          // killed because its owner ended: counted in dying
	held   *held         // an Exec's trampoline, before the Exec is answered
}

// runServer runs the fork server on descriptor 3 until the program's
// connection ends, and returns the exit code.
func runServer() int {
	// The server follows the program's lifetime, not the terminal's: a
	// terminal's interrupt, which reaches the whole process group, and a
	// stray SIGTERM leave it be while the program lives.
	program := os.Getppid()
	signal.Notify(make(chan os.Signal, 1), syscall.SIGINT, syscall.SIGHUP)
	terms := make(chan os.Signal, 1)
	signal.Notify(terms, syscall.SIGTERM)

	closeInherited()
	exe, err := executable()
	if err == nil {
		// Whatever a child leaves behind comes back to the server, to be
		// killed as its owner ends (see killStrays).
		err = prctlChildSubreaper()
	}
	if err == nil {
		var conn *net.UnixConn
		if conn, err = unixConn(3); err == nil {
			sv := &supervisor{exe: exe, children: make(map[int]*entry), forked: make(chan struct{}, 1), idleRefill: canLeaveIdle() && havePidfds() && haveThreadChildren()}
			size, _ := strconv.Atoi(os.Getenv(poolEnv))
			sv.kinds = newKinds(size)
			root := sv.newClient(conn, nil, allRights)
			root.limit, _ = strconv.Atoi(os.Getenv(maxChildrenEnv))
			os.Unsetenv(poolEnv)
			os.Unsetenv(maxChildrenEnv)
			running = sv
			sv.watchExits()
			sv.program = root
			root.send(0, &wire.Hello{Pid: uint32(os.Getpid())}) // before any warm child
			go sv.refill()
			go func() {
				// On Linux the program's death sends SIGTERM (see
				// serverSysProcAttr), which may come before the end of
				// the connection does.
				for range terms {
					if os.Getppid() != program {
						conn.Close()
					}
				}
			}()
			root.serve()
			sv.programGone()
			return 0
		}
	}
	fmt.Fprintf(os.Stderr, "forkserver: server: %v\n", err)
	return 2
}

// closeInherited closes every descriptor above 3 that is not close-on-exec.
// Every descriptor the server opens itself is close-on-exec, so these came
// from the program, which may have inherited them in turn, and no child may
// see them.
func closeInherited() {
	dir, err := os.Open(fdDir)
	if err != nil {
		return
	}
	names, _ := dir.Readdirnames(-1)
	dir.Close()
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd <= 3 {
			continue
		}
		flags, err := fcntl(fd, syscall.F_GETFD, 0)
		if err == nil && flags&syscall.FD_CLOEXEC == 0 {
			syscall.Close(fd)
		}
	}
}

// programGone kills every child and every stray and waits, for a bounded
// time, until they are reaped, so that no child outlives the program that
// asked for it, nor anything a child started.
func (sv *supervisor) programGone() {
	sv.forkMu.Lock()
	sv.mu.Lock()
	sv.stopping = true
	for pid, e := range sv.children {
		sv.killFor(pid, e)
	}
	sv.strays = sv.killStrays()
	idle := sv.whenIdle()
	sv.mu.Unlock()
	sv.forkMu.Unlock()
	select {
	case <-idle:
	case <-time.After(reapTimeout):
	}
}

// orphan kills every child forked through cl, whose connection ended, or
// through a connection handed out through it: a child dies with its
// requester. A child being created through it meanwhile is killed as it is
// recorded. What the children started dies with them: see killStrays.
func (sv *supervisor) orphan(cl *client) {
	sv.forkMu.Lock()
	defer sv.forkMu.Unlock()
	sv.mu.Lock()
	defer sv.mu.Unlock()
	cl.ended = true
	for pid, e := range sv.children {
		if e.owner != nil && e.owner.within(cl) {
			sv.killFor(pid, e)
		}
	}
	sv.strays = sv.killStrays()
}

// killFor kills the child pid, whose entry e is, because its owner ended,
// and counts it in dying until it is reaped. sv.mu must be held.
func (sv *supervisor) killFor(pid int, e *entry) {
	e.kill(pid)
	if !e.killed {
		e.killed = true
		sv.dying++
	}
}

// killStrays sends SIGKILL to every stray: a child of the server that it
// did not create, which the server, a child subreaper, adopted when its
// parent died (a double fork, or what a dead child started). A stray
// belongs to no connection: it is killed when a connection ends, when the
// server stops, and at every reap while a child killed for its owner's
// end is not yet reaped, so that what a dying child leaves behind, and what
// that leaves in turn, dies with it. It returns the number of strays
// killed or spared. sv.forkMu and sv.mu must be held, so that every child created is
// recorded and every pid listed still names its process.
//
// An idle spawn creates its child without sv.forkMu, so that a child not
// recorded may be its child rather than a stray: it is killed all the
// same, and the spawn, whose thread the kernel lists as that child's
// parent, is marked swept, so that it does not record a child that may be
// dead (see spawnIdle).
func (sv *supervisor) killStrays() int {
	n := 0
	eachThreadChildren(func(tid int, children []int) {
		_, spawner := sv.spawners[tid]
		for _, pid := range children {
			if _, ok := sv.children[pid]; !ok {
				if spawner {
					hasten(pid)
					sv.spawners[tid] = true
				}
				syscall.Kill(pid, syscall.SIGKILL)
				n++
			}
		}
	})
	return n
}

// kill sends SIGKILL to the child pid, whose entry e is, and to the
// process group it leads, if it leads one: killed alone, a leader would
// leave the processes it started behind; killed through its group alone,
// a child that has not yet set its group up would escape.
func (e *entry) kill(pid int) {
	if e.group {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// signal sends sig to the child pid, or to the process group it leads, if
// it is in cl's scope.
func (sv *supervisor) signal(cl *client, pid int, sig syscall.Signal, group bool) error {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	e, ok := sv.children[pid]
	if !ok {
		return os.ErrProcessDone
	}
	if e.owner == nil || !e.owner.within(cl) {
		return ErrPermission
	}
	if group {
		if !e.group {
			return fmt.Errorf("process %d leads no process group: fork it with Setsid or Setpgid", pid)
		}
		pid = -pid
	}
	return os.NewSyscallError("kill", syscall.Kill(pid, sig))
}

// signalAll sends sig to every child in the scope of scope, warm children
// it holds unassigned left out, or to every child if scope is nil; with
// groups, to the process group of every child that leads one. sv.mu must be
// held.
func (sv *supervisor) signalAll(scope *client, sig syscall.Signal, groups bool) {
	for pid, e := range sv.children {
		if scope == nil || e.owner != nil && e.warm == nil && e.owner.within(scope) {
			if groups && e.group {
				syscall.Kill(-pid, sig)
			} else {
				syscall.Kill(pid, sig)
			}
		}
	}
}

// whenIdle returns a channel closed once no child and no stray is left.
// sv.mu must be held.
func (sv *supervisor) whenIdle() chan struct{} {
	ch := make(chan struct{})
	if len(sv.children) == 0 && sv.strays == 0 {
		close(ch)
	} else {
		sv.idle = append(sv.idle, ch)
	}
	return ch
}

// stop terminates every child, waits until all are reaped, answers the
// request id and exits the server.
func (sv *supervisor) stop(cl *client, id uint32) {
	sv.mu.Lock()
	sv.stopping = true
	sv.signalAll(nil, syscall.SIGTERM, false)
	idle := sv.whenIdle()
	sv.mu.Unlock()
	<-idle
	cl.exitAfter(id, 0)
}

// eval runs a registered function in the server.
func eval(m *wire.Eval) (err error) {
	fn := lookup(m.Name)
	if fn == nil {
		return ErrUnknownFunc
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn(context.Background(), &Child{arg: m.Arg})
}
