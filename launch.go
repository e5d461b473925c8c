//go:build linux || darwin

package forkserver

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/forkserver/forkserver/internal/sandbox"
	"github.com/forkserver/forkserver/internal/wire"
)

// How the server creates a child for a Fork or an Exec request: admitting
// the request, starting the child from the pool or cold, and recording it.

// launch is a Fork or Exec in flight, from its request to the recording of
// the child it creates.
type launch struct {
	from   *client       // the connection that asked
	id     uint32        // the request's id, which the reply and the exit event carry
	exit   int           // the request's exit pipe, which the launch owns; -1 if none
	st     wire.Settings // confined to what from may ask for
	std    [3]int        // the child's descriptors 0 to 2; -1: the server's own
	socket []int         // the requester's socket, then the child's connection, as asked for
	files  []int         // Attr.Files
	own    *client       // the child's connection to the server, if it asked for one
	// rulesets are the Landlock rulesets the child enters: see
	// layerRulesets.
	rulesets []int
	counts   bool // the child is counted toward from's bounds: see reserve
}

// newLaunch starts the launch for the request id from cl, with flags and
// the descriptors fds it came with. It takes the exit pipe out of fds, which
// the caller keeps owning otherwise.
func newLaunch(cl *client, id uint32, flags uint32, fds []int) (*launch, error) {
	l := &launch{from: cl, id: id, exit: -1}
	socket, exit, given, files := splitFds(flags, fds)
	l.socket, l.files, l.std = socket, files, cl.childStdio(flags, given)
	if len(exit) > 0 {
		if err := exitPipe(exit[0]); err != nil {
			return l, err // exit stays in fds, to be closed
		}
		l.exit, exit[0] = exit[0], -1
	}
	return l, nil
}

// answer sends r, the reply to l's request, on its exit pipe if it came
// with one, else on its connection.
func (l *launch) answer(r *wire.Reply) {
	if l.exit >= 0 {
		notifyPipe(l.exit, l.id, r)
	} else {
		l.from.send(l.id, r)
	}
}

// fail answers l's request with err and ends the launch.
func (l *launch) fail(err error) {
	if errors.Is(err, ErrChildLimit) && l.from == l.from.sv.program {
		// On the connection, after any warm child handed to the program
		// before the refusal, which the program then tries instead (see
		// Server.Fork); the pipe's end-of-file sends it there.
		l.from.reply(l.id, err)
	} else {
		l.answer(replyFor(err))
	}
	closeFds([]int{l.exit})
	if l.own != nil {
		l.own.release()
	}
	if l.counts {
		l.from.sv.mu.Lock()
		l.from.unreserve()
		l.from.sv.mu.Unlock()
	}
}

// record records pid as the child l created and answers the request,
// before any exit event of the child can be sent; with that exit too if
// the child ran and ended already, so that its pid may be another's now.
// The child's entry takes l's exit pipe, and its place among the children
// counted toward l's requester's bounds. sv.mu must be held.
func (sv *supervisor) record(l *launch, pid int, exited *wire.Exit) {
	l.answer(&wire.Reply{Value: uint32(pid)})
	if exited == nil {
		e := &entry{owner: l.from, id: l.id, exit: l.exit, group: l.st.Set&(wire.SetSetsid|wire.SetSetpgid) != 0}
		if pooled := sv.children[pid]; pooled != nil {
			e.gone = pooled.gone
		}
		sv.children[pid] = e
		if l.from.cut() { // its requester ended while it was created
			sv.killFor(pid, e)
		}
	} else {
		l.from.exited(l.id, l.exit, exited)
		if l.counts {
			l.from.unreserve()
		}
	}
	l.exit, l.counts = -1, false
	if l.own != nil {
		go l.own.serve()
	}
}

// adopt returns spawn's add function for l: it records the child, unless
// the server began to stop meanwhile.
func (sv *supervisor) adopt(l *launch) func(pid int) error {
	return func(pid int) error {
		if sv.stopping {
			e := &entry{exit: -1} // reaped, reported to no one
			sv.children[pid] = e
			sv.killFor(pid, e)
			return ErrClosed
		}
		sv.record(l, pid, nil)
		return nil
	}
}

// handleLaunch handles the Fork or Exec request id from cl, with flags
// and the descriptors fds, which it owns and closes: start creates the
// child. The request is answered, with the error start returns if it fails,
// which handleLaunch returns.
func (sv *supervisor) handleLaunch(cl *client, id uint32, flags uint32, fds []int, start func(l *launch) error) error {
	defer closeFds(fds)
	l, err := newLaunch(cl, id, flags, fds)
	defer func() { closeFds(l.rulesets) }()
	if err == nil {
		sv.mu.Lock()
		err = cl.reserve()
		sv.mu.Unlock()
		l.counts = err == nil
	}
	if err == nil {
		err = start(l)
	}
	if err != nil {
		l.fail(err)
	}
	return err
}

// fork creates the child of a Fork, from the pool when one waits there and
// the settings allow, cold otherwise.
func (sv *supervisor) fork(l *launch, m *wire.Fork) error {
	if lookup(m.Name) == nil {
		return ErrUnknownFunc
	}
	l.st = m.Settings
	if err := l.from.admit(&l.st, false); err != nil {
		return err
	}
	if err := l.layerRulesets(startFiles()); err != nil {
		return err
	}
	if m.Flags&wire.FlagServer != 0 {
		end, err := sv.childClient(l)
		if err != nil {
			return err
		}
		defer closeFds([]int{end})
		l.socket = append(l.socket, end)
	}
	a := &wire.Assign{Flags: m.Flags&^(stdFlags|wire.FlagSettings|wire.FlagExit) | l.st.Flag(), NumFiles: m.NumFiles, ServerPid: uint32(os.Getpid()), Name: m.Name, Arg: m.Arg, Settings: l.st}
	return sv.forkChild(l, a)
}

// forkChild hands the assignment a to a pooled child when l's settings
// allow, or starts one cold.
func (sv *supervisor) forkChild(l *launch, a *wire.Assign) error {
	frame := wire.AppendFrame(nil, 0, a)
	if len(frame)-wire.HeaderSize > wire.MaxBody {
		return fmt.Errorf("assignment of %d bytes exceeds the limit of %d", len(frame)-wire.HeaderSize, wire.MaxBody)
	}
	if k := sv.kindFor(l); k != nil {
		// A pooled child was executed with the server's standard
		// descriptors and gets other ones in its assignment; one of a
		// sandbox is in it already, and applies only what is per call.
		pa := *a
		if k.index > 0 {
			pa.Settings = perCall(&a.Settings)
			pa.Flags = pa.Flags&^wire.FlagSettings | pa.Settings.Flag()
		}
		var stdio []int
		for i, fd := range l.std {
			if fd >= 0 {
				pa.Flags |= wire.FlagStdin << i
				stdio = append(stdio, fd)
			}
		}
		if sv.assignPooled(k, wire.AppendFrame(nil, 0, &pa), concat(l.socket, stdio, l.files), l) {
			return nil
		}
	}
	// A raw socket, written with a blocking call: a net.UnixConn would
	// cost each cold fork a dup and the poller's registration and removal
	// before the child is created, about 14 µs measured.
	ctl, childCtl, err := socketpair()
	if err != nil {
		return err
	}
	sys, err := sysProcAttr(&l.st, false)
	if err == nil {
		attr := &syscall.ProcAttr{Env: childEnv(), Files: append(stdFds(l.std), uintptr(childCtl)), Sys: sys}
		if len(l.rulesets) > 0 { // from rulesetFd on
			for _, fd := range l.rulesets {
				attr.Files = append(attr.Files, uintptr(fd))
			}
			attr.Env = append(attr.Env, landlockEnv+"="+strconv.Itoa(len(l.rulesets)))
		}
		err = sv.spawn(sv.exe, os.Args, attr, threadFor(&l.st, sys, false), sv.adopt(l))
	}
	closeFds([]int{childCtl})
	if err == nil {
		// The child reads its assignment as soon as it runs; the frame
		// may be larger than the socket's buffer, so it is written only
		// now. Should this fail, the child has died, and its exit says so.
		sendMsgFd(ctl, frame, concat(l.socket, l.files))
	}
	syscall.Close(ctl)
	return err
}

// landlockEnv tells a child the number of Landlock rulesets it gets from
// descriptor rulesetFd on, to enter before it runs: see enterLandlock.
const (
	landlockEnv = "FORKSERVER_LANDLOCK"
	rulesetFd   = 4
)

// childEnv is the environment of a child executed to run a function.
func childEnv() []string { return environ(os.Environ(), roleEnv+"="+roleChild) }

// internalEnv are the variables through which this package tells a
// process it executes its role and what to enter before it runs. None is
// ever taken from an environment, the program's, one in Config.Env or one
// an Eval changed, where it could say that a child's sandbox is entered
// already: environ removes them, and each execution sets those it needs.
var internalEnv = []string{roleEnv, poolEnv, maxChildrenEnv, sandboxesEnv, syscallsEnv, landlockEnv, idleEnv, execLimitsEnv}

// environ returns env without the variables of internalEnv, followed by
// set, this package's variables for the process to execute.
func environ(env []string, set ...string) []string {
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); !slices.Contains(internalEnv, k) {
			out = append(out, kv)
		}
	}
	return append(out, set...)
}

// childClient makes the connection the child of l gets, sets l.own to it
// and returns the child's end: its rights are those l's settings ask for,
// at most those of the requester, and it confines what is forked through
// it to those settings and l's standard descriptors.
func (sv *supervisor) childClient(l *launch) (int, error) {
	rights := Rights(l.st.Rights)
	if rights == 0 {
		rights = rightsChild
	}
	limit, bound := int(l.st.Children), l.from.bound()
	if rights&^l.from.rights != 0 || bound > 0 && limit > bound {
		return -1, ErrPermission
	}
	if limit == 0 {
		limit = defaultLimit
		if bound > 0 {
			limit = min(limit, bound)
		}
	}
	conn, end, err := socketConnPair()
	if err != nil {
		return -1, err
	}
	own := sv.newClient(conn, l.from, rights)
	own.base, own.limit = &l.st, limit
	for _, fd := range l.rulesets {
		dup, err := dupCloexec(fd)
		if err != nil {
			own.release()
			syscall.Close(end)
			return -1, err
		}
		own.rulesets = append(own.rulesets, dup)
	}
	for i, fd := range l.std {
		if fd >= 0 {
			if own.std[i], err = dupCloexec(fd); err != nil {
				own.release()
				syscall.Close(end)
				return -1, err
			}
		}
	}
	l.own = own
	return end, nil
}

// exec starts the external program of an Exec: its descriptors 0 to 2
// are as a Fork's, Attr.Files follow from 3, and the socket, if asked for,
// comes after them.
func (sv *supervisor) exec(l *launch, m *wire.Exec) error {
	if b := l.from.base; b != nil && b.Syscalls&uint32(SyscallsExec) != 0 {
		return ErrPermission // its children may not execute a program
	}
	l.st = m.Settings
	if err := l.from.admit(&l.st, true); err != nil {
		return err
	}
	start := programFiles(l.st.Chroot, execPath(m.Path, l.st.Dir))
	if len(l.st.Rlimits) > 0 {
		start = slices.Concat(start, startFiles()) // the trampoline's: see viaTrampoline
	}
	if err := l.layerRulesets(start); err != nil {
		return err
	}
	sys, err := sysProcAttr(&l.st, true)
	if err != nil {
		return err
	}
	env := environ(os.Environ())
	if l.st.Set&wire.SetEnv != 0 {
		env = l.st.Env
	}
	attr := &syscall.ProcAttr{Dir: l.st.Dir, Env: mergeEnv(env, l.st.ExtraEnv), Files: stdFds(l.std), Sys: sys}
	for _, fd := range concat(l.files, l.socket) {
		attr.Files = append(attr.Files, uintptr(fd))
	}
	path, argv, add := m.Path, m.Argv, sv.adopt(l)
	var t *trampoline
	if len(l.st.Rlimits) > 0 {
		if path, argv, t, err = sv.viaTrampoline(path, argv, attr, l.st.Rlimits); err != nil {
			return err
		}
		defer t.close()
		add = sv.adoptHeld(l, t)
	}
	thread := threadFor(&l.st, sys, true)
	if len(l.rulesets) > 0 || l.st.Syscalls != 0 {
		err = sv.spawnOn(func(fn func()) error { return withSandbox(l.rulesets, sandbox.Group(l.st.Syscalls), fn) }, path, argv, attr, add)
	} else {
		err = sv.spawn(path, argv, attr, thread, add)
	}
	if err != nil || t == nil {
		return err
	}
	return sv.finish(l, t)
}

// execPath returns the path an external program at path is found at,
// from its working directory dir, or the server's if that is empty.
func execPath(path, dir string) string {
	if filepath.IsAbs(path) || dir == "" {
		return path
	}
	return filepath.Join(dir, path)
}

// stdFlags are the flags of the standard descriptors, 0 to 2 in order.
const stdFlags = wire.FlagStdin | wire.FlagStdout | wire.FlagStderr

// splitFds splits the descriptors of a Fork or Exec request by role, in
// the order they travel. Each part is a slice of fds that cannot grow into
// the next.
func splitFds(flags uint32, fds []int) (socket, exit, stdio, files []int) {
	next := 0
	take := func(n int) []int {
		part := fds[next : next+n : next+n]
		next += n
		return part
	}
	socket = take(bits.OnesCount32(flags & wire.FlagSocket))
	exit = take(bits.OnesCount32(flags & wire.FlagExit))
	stdio = take(bits.OnesCount32(flags & stdFlags))
	return socket, exit, stdio, fds[next:]
}

// childStdio returns the descriptors 0 to 2 for a child forked through cl: those
// the request gave, else those of the child cl was handed to, else -1 for
// the server's own.
func (cl *client) childStdio(flags uint32, given []int) [3]int {
	std := cl.std
	for i := range std {
		if flags&(wire.FlagStdin<<i) != 0 {
			std[i], given = given[0], given[1:]
		}
	}
	return std
}

// stdFds returns the descriptors 0 to 2 of a cold child.
func stdFds(std [3]int) []uintptr {
	out := []uintptr{0, 1, 2}
	for i, fd := range std {
		if fd >= 0 {
			out[i] = uintptr(fd)
		}
	}
	return out
}

func concat(fds ...[]int) []int {
	var all []int
	for _, f := range fds {
		all = append(all, f...)
	}
	return all
}

// spawnThread is the thread the server creates a child from.
type spawnThread int

const (
	plainThread           spawnThread = iota
	confiningThread                   // no_new_privs, and no capability passed on: see onConfiningThread
	confiningChrootThread             // the same but CAP_SYS_CHROOT, for a child that enters its Chroot itself
	idleThread                        // the calling goroutine's, at idle priority while it creates a plain pool's child: see spawnIdle
)

// confined reports whether a child with st is confined: one that asks for
// no_new_privs, a path policy or a system call filter. The server creates
// such a child on a confining thread, so that it holds no capability, root
// or not: root with a sandbox is not root.
func confined(st *wire.Settings) bool {
	return st.Set&wire.SetNoNewPrivs != 0 || st.Syscalls != 0 || len(st.PathLayers) > 0
}

// threadFor returns the thread to create a child with st from, and sets
// in sys what the kernel must then apply for it: a confined child holds no
// capability to take its credential itself.
func threadFor(st *wire.Settings, sys *syscall.SysProcAttr, external bool) spawnThread {
	switch {
	case !confined(st):
		return plainThread
	case external:
		return confiningThread // the kernel enters its Chroot too
	}
	if st.Set&wire.SetCredential != 0 && !sameCredential(st) {
		confineCredential(sys, st)
	}
	if st.Chroot != "" {
		return confiningChrootThread
	}
	return confiningThread
}

// spawn executes path as attr says, from thread, then calls add with its
// pid, with sv.mu held, to record it in children. The reaper cannot run
// between the two, so every pid it reaps is already recorded.
func (sv *supervisor) spawn(path string, argv []string, attr *syscall.ProcAttr, thread spawnThread, add func(pid int) error) error {
	var run func(func()) error
	switch thread {
	case plainThread:
	case idleThread:
		return sv.spawnIdle(path, argv, attr, add)
	default:
		run = func(fn func()) error { return onConfiningThread(thread == confiningChrootThread, fn) }
	}
	return sv.spawnOn(run, path, argv, attr, add)
}

// spawnOn is spawn, executing path through run, which runs the function
// it is given on a thread that gives the process what it must inherit, or
// on the calling goroutine's thread if run is nil.
func (sv *supervisor) spawnOn(run func(func()) error, path string, argv []string, attr *syscall.ProcAttr, add func(pid int) error) error {
	sv.forkMu.RLock()
	defer sv.forkMu.RUnlock()
	var pid int
	var err error
	forkExec := func() { pid, err = syscall.ForkExec(path, argv, attr) }
	if run == nil {
		forkExec()
	} else if terr := run(forkExec); terr != nil {
		return terr
	}
	if err != nil {
		return os.NewSyscallError("fork/exec", err)
	}
	sv.noteForked()
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return add(pid)
}

// noteForked tells the exit watcher, which may be waiting for a first
// child, that there is one.
func (sv *supervisor) noteForked() {
	select {
	case sv.forked <- struct{}{}:
	default:
	}
}
