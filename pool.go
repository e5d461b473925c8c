//go:build linux || darwin

package forkserver

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/forkserver/forkserver/internal/wire"
)

// A warm pool: children already executed, initialised and blocked reading
// their assignment, so that a Fork costs a message instead of an exec and
// the Go runtime's start. The server hands each one, as it is ready, to
// the program's connection, whose Forks then write the assignment to the
// child themselves: one message from the program to a running process.
// What the program does not hold waits in the server, for the Forks it
// relays.

// kind is one pool of warm children: the plain pool, whose children get
// every setting once assigned, or a declared sandbox's, whose children are
// created in its shape and are handed out only once they are ready inside
// it.
type kind struct {
	index    int           // 0: the plain pool; i: the i-th declared sandbox, from 1
	size     int           // the children it keeps
	shape    wire.Settings // a sandbox's shape; zero for the plain pool
	pool     []*pooled     // waiting in the server
	handed   int           // handed to the program and not yet assigned
	starting int           // a sandbox's children started, not yet ready
	failures int           // its children in a row that did not start or get ready
	retry    time.Time     // no child of the kind starts before then
}

// Bounds of the wait before a kind's next child starts, after one did not
// start, or did not get ready inside its sandbox: it doubles with every
// failure in a row.
const (
	retryMin = 50 * time.Millisecond
	retryMax = 5 * time.Second
)

// pooled is a child waiting in the pool.
type pooled struct {
	pid   int
	kind  *kind
	ctl   int        // the server's end of its descriptor 3, blocking
	taken bool       // taken from the pool to be assigned
	exit  *wire.Exit // its exit, if it ended after it was taken
}

// newKinds returns the plain pool of size, and the sandboxes the program
// declared in sandboxesEnv, which it removes from the environment.
func newKinds(size int) []*kind {
	kinds := []*kind{{size: size}}
	if v, ok := os.LookupEnv(sandboxesEnv); ok {
		os.Unsetenv(sandboxesEnv)
		shapes, sizes, err := decodeSandboxes(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "forkserver: server: %s: %v\n", sandboxesEnv, err)
		}
		for i, sh := range shapes {
			kinds = append(kinds, &kind{index: i + 1, size: sizes[i], shape: sh})
		}
	}
	return kinds
}

// kindFor returns the kind of pooled child that may take l's child: the
// first declared sandbox that serves l's shape, then the plain pool, if
// l's settings allow; nil if none may. Only the program's connection takes
// a sandbox's children: another's requests carry the confinement of the
// child it was handed to, whose path layers no sandbox's shape shows.
func (sv *supervisor) kindFor(l *launch) *kind {
	if l.from == sv.program && len(l.from.rulesets) == 0 {
		sh := shape(&l.st)
		for _, k := range sv.kinds[1:] {
			if serves(&k.shape, &sh) {
				return k
			}
		}
	}
	// A plain warm child was created with the server's capabilities, which
	// a filter alone does not take from it.
	if l.st.Namespaces == 0 && len(l.st.PathLayers) == 0 && len(l.rulesets) == 0 && (!confined(&l.st) || !privileged()) {
		return sv.kinds[0]
	}
	return nil
}

// assignPooled writes the assignment frame, with fds, to a child of k
// waiting in the server and records it as l's child. It reports false if
// no pooled child could take it; the caller then starts one cold.
func (sv *supervisor) assignPooled(k *kind, frame []byte, fds []int, l *launch) bool {
	for {
		sv.mu.Lock()
		if sv.stopping || len(k.pool) == 0 {
			sv.mu.Unlock()
			return false
		}
		pc := k.pool[len(k.pool)-1]
		k.pool = k.pool[:len(k.pool)-1]
		pc.taken = true
		sv.mu.Unlock()
		err := sendMsgFd(pc.ctl, frame, fds)
		syscall.Close(pc.ctl)
		sv.mu.Lock()
		if err == nil && (pc.exit != nil || !sv.stopping) {
			sv.record(l, pc.pid, pc.exit)
			sv.mu.Unlock()
			return true
		}
		sv.mu.Unlock()
		// It died while waiting, or the server began to stop: it is reaped
		// unreported, and the next one is tried.
	}
}

// errSwept is spawnIdle's error when a sweep for strays came while it
// created its child: the child may have been killed, so it is not used.
var errSwept = errors.New("a sweep for strays came as the child started")

// refill starts pooled children of every kind until each, with the
// children handed to the program and not yet assigned, is full. One
// refill runs at a time, outside any Fork: a burst larger than a pool
// starts cold. A refill asked for while one runs makes that one look
// again before it ends, so that no ask is lost, a retry's included.
func (sv *supervisor) refill() {
	sv.mu.Lock()
	if sv.refilling {
		sv.refillAgain = true
		sv.mu.Unlock()
		return
	}
	sv.refilling = true
	defer func() {
		sv.refilling = false
		sv.mu.Unlock()
	}()
	for {
		k := sv.nextToStart()
		gen := sv.poolGen
		if k == nil {
			if !sv.refillAgain {
				return
			}
			sv.refillAgain = false
			continue
		}
		sv.mu.Unlock()
		err := sv.startPooled(k, gen)
		sv.mu.Lock()
		switch {
		case err == nil:
		case errors.Is(err, ErrClosed) || sv.stopping:
			return // whatever the child died of, the server is stopping
		case errors.Is(err, errSwept):
			// Killed with what a child left behind, it counts among the
			// strays, whose reaping sweeps again: the next start waits
			// for that sweep rather than meet it.
			sv.holdBack(k, retryMin)
		default:
			sv.failed(k, err)
		}
	}
}

// nextToStart returns a kind that lacks a child and may start one now,
// or nil. sv.mu must be held.
func (sv *supervisor) nextToStart() *kind {
	if sv.stopping {
		return nil
	}
	now := time.Now()
	for _, k := range sv.kinds {
		if len(k.pool)+k.handed+k.starting < k.size && !now.Before(k.retry) {
			return k
		}
	}
	return nil
}

// failed records that a child of k did not start, or, of a sandbox, did
// not get ready inside it, for the reason why, and holds the next one back
// for a time that doubles with every failure in a row. sv.mu must be held.
func (sv *supervisor) failed(k *kind, why error) {
	k.failures++
	wait := retryMax
	if k.failures < 8 {
		wait = min(retryMin<<(k.failures-1), retryMax)
	}
	what := "a warm child did not start"
	if k.index > 0 {
		what = fmt.Sprintf("a warm child of sandbox %d did not start inside it", k.index)
	}
	fmt.Fprintf(os.Stderr, "forkserver: server: %s: %v; next try in %v\n", what, why, wait)
	sv.holdBack(k, wait)
}

// holdBack starts no child of k for wait, then refills. sv.mu must be held.
func (sv *supervisor) holdBack(k *kind, wait time.Duration) {
	k.retry = time.Now().Add(wait)
	time.AfterFunc(wait, sv.refill)
}

// startPooled starts a child of k, created in k's shape. One of the plain
// pool is handed out at once; one of a sandbox, once it is ready inside
// it (see ready).
func (sv *supervisor) startPooled(k *kind, gen int) error {
	ctl, childCtl, err := socketpair()
	if err != nil {
		return err
	}
	started, childStarted, err := pipe()
	if err != nil {
		closeFds([]int{ctl, childCtl})
		return err
	}
	attr := &syscall.ProcAttr{Env: environ(os.Environ(), roleEnv+"="+rolePooled), Files: []uintptr{0, 1, 2, uintptr(childCtl), uintptr(childStarted)}}
	idle := k.index == 0 && sv.idleRefill // a sandbox's may not be allowed to leave it
	if idle {
		attr.Env = append(attr.Env, idleEnv+"=1")
	}
	var rulesets []int
	if k.index > 0 {
		attr.Sys, rulesets, err = sandboxProcAttr(&k.shape)
		for _, fd := range rulesets { // from startedFd+1 on
			attr.Files = append(attr.Files, uintptr(fd))
		}
		if len(rulesets) > 0 {
			attr.Env = append(attr.Env, landlockEnv+"="+strconv.Itoa(len(rulesets)))
		}
		if k.shape.Syscalls != 0 {
			attr.Env = append(attr.Env, syscallsEnv+"="+strconv.FormatUint(uint64(k.shape.Syscalls), 10))
		}
	}
	if err == nil {
		thread := threadFor(&k.shape, attr.Sys, false)
		if idle {
			thread = idleThread
		}
		err = sv.spawn(sv.exe, os.Args, attr, thread, func(pid int) error {
			pc := &pooled{pid: pid, ctl: ctl, kind: k}
			sv.children[pid] = &entry{pooled: pc, gone: make(chan struct{})}
			switch {
			case sv.stopping: // missed by the signals the stop sent
				syscall.Kill(pid, syscall.SIGKILL)
				return ErrClosed
			case k.index > 0:
				k.starting++ // handed out once ready
			case gen != sv.poolGen: // drained while it started: it may predate an Eval
				syscall.Close(ctl)
			default:
				k.failures = 0
				if !sv.handOff(pc) {
					k.pool = append(k.pool, pc)
				}
			}
			go sv.watchPooled(pc, started, gen)
			return nil
		})
	}
	closeFds(append([]int{childCtl, childStarted}, rulesets...))
	if err != nil {
		closeFds([]int{ctl, started})
	}
	return err
}

// sandboxProcAttr returns how the server creates a child of the shape sh,
// and the Landlock rulesets of its paths, resolved now, which the caller
// closes.
func sandboxProcAttr(sh *wire.Settings) (*syscall.SysProcAttr, []int, error) {
	sys, err := sysProcAttr(sh, false)
	if err != nil {
		return nil, nil, err
	}
	if sys == nil {
		sys = new(syscall.SysProcAttr)
	}
	if sh.Set&wire.SetCredential != 0 {
		sys.Credential = &syscall.Credential{Uid: sh.Uid, Gid: sh.Gid, Groups: sh.Groups}
	}
	if len(sh.PathLayers) == 0 {
		return sys, nil, nil
	}
	rulesets, err := pathRulesets(sh.PathLayers)
	return sys, rulesets, err
}

// ready records that the child pc of a sandbox has said it is ready
// inside it, if ok, and hands it out or pools it; if not, it ended before,
// having failed to enter its sandbox or to start, and is never handed out.
func (sv *supervisor) ready(pc *pooled, ok bool, gen int) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	k := pc.kind
	k.starting--
	e := sv.children[pc.pid]
	switch {
	case sv.stopping:
		syscall.Close(pc.ctl)
	case !ok:
		syscall.Close(pc.ctl)
		if gen == sv.poolGen {
			sv.failed(k, errors.New("it ended before it was ready"))
		}
	case e == nil || e.pooled != pc: // it ended just after
		syscall.Close(pc.ctl)
	case gen != sv.poolGen: // it may predate an Eval
		syscall.Close(pc.ctl)
	default:
		k.failures = 0
		if !sv.handOff(pc) {
			k.pool = append(k.pool, pc)
		}
	}
}

// handOff hands the pooled child pc to the program's connection, with the
// read end of an exit pipe, if the program holds fewer than its kind's size
// and may have another child alive. From then on the child is the
// program's, as a Fork's child is, and counts toward its bound, but warm:
// it is left out of KillAll until the program says it assigned it. sv.mu
// must be held.
func (sv *supervisor) handOff(pc *pooled) bool {
	k := pc.kind
	if sv.program == nil || k.handed >= k.size || sv.program.reserve() != nil {
		return false
	}
	r, w, err := pipe()
	if err == nil {
		err = syscall.SetNonblock(w, true)
	}
	if err != nil {
		closeFds([]int{r, w})
		sv.program.unreserve()
		return false
	}
	sv.nextWarm++
	id := 1<<31 | sv.nextWarm // requesters number their own requests below 1<<31
	sv.children[pc.pid] = &entry{owner: sv.program, id: id, exit: w, warm: k, gone: sv.children[pc.pid].gone}
	k.handed++
	sv.program.sendFds(id, &wire.Warm{Pid: uint32(pc.pid), Sandbox: uint32(k.index)}, []int{pc.ctl, r})
	return true
}

// handOffPooled hands children waiting in the pools to the program for as
// long as it may hold more: room may have come since they started. sv.mu
// must be held.
func (sv *supervisor) handOffPooled() {
	for _, k := range sv.kinds {
		for !sv.stopping && len(k.pool) > 0 && sv.handOff(k.pool[len(k.pool)-1]) {
			k.pool = k.pool[:len(k.pool)-1]
		}
	}
}

// taken records that cl assigned the warm child m.pid it was handed: the
// child is in its scope from now on, and leads a process group if m says
// so.
func (sv *supervisor) taken(cl *client, m *wire.Taken) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if e := sv.children[int(m.Pid)]; e != nil && e.owner == cl {
		e.group = m.Group
		sv.assigned(e)
	}
}

// assigned records that the warm child e was assigned, by its owner's word
// or its own; watchPooled replaces it. sv.mu must be held.
func (sv *supervisor) assigned(e *entry) {
	if e.warm != nil {
		e.warm.handed--
		e.warm = nil
	}
}

// watchPooled follows the pooled child pc, of the pool generation gen, by
// its started pipe: a sandbox's child is handed out once it says it is
// ready (see ready). Once it has read its assignment, or is gone, as the
// pipe's end says, it waits until the child exits or has run for
// refillPause, and starts its replacement: on a small machine a
// replacement started at once competes with the child it replaces, and a
// short-lived child's exit with it.
func (sv *supervisor) watchPooled(pc *pooled, started, gen int) {
	syscall.SetNonblock(started, true) // so that the runtime's poller waits, not a thread
	f := os.NewFile(uintptr(started), "forkserver-started")
	b := make([]byte, 1)
	n, _ := f.Read(b) // its byte once ready; else end-of-file, or an error: it is gone
	if pc.kind.index > 0 {
		sv.ready(pc, n == 1, gen)
	}
	if n == 1 {
		f.Read(b) // end-of-file, or an error: either way it is over
	}
	f.Close()
	sv.mu.Lock()
	e := sv.children[pc.pid]
	if e != nil {
		sv.assigned(e)
	}
	sv.mu.Unlock()
	if e != nil {
		pause := time.NewTimer(refillPause)
		select {
		case <-e.gone:
		case <-pause.C:
		}
		pause.Stop()
	}
	sv.refill()
}

// drainPool sends every pooled child of every kind away, those handed to
// the program and not yet assigned included, to be replaced by children
// that see the server as it is now; a sandbox's children still starting
// are sent away as they get ready. sv.mu must be held.
func (sv *supervisor) drainPool() {
	for _, k := range sv.kinds {
		for _, pc := range k.pool {
			syscall.Close(pc.ctl) // it reads end-of-file and exits
		}
		k.pool = nil
	}
	sv.poolGen++
	for pid, e := range sv.children {
		if e.warm != nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// leftPool removes the child pid from its pool if it died there. sv.mu
// must be held.
func (sv *supervisor) leftPool(pid int) {
	for _, k := range sv.kinds {
		for i, pc := range k.pool {
			if pc.pid == pid {
				syscall.Close(pc.ctl)
				k.pool = append(k.pool[:i], k.pool[i+1:]...)
				return
			}
		}
	}
}
