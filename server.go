//go:build linux || darwin

package forkserver

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// errExecSettings: an external program cannot be set up after it starts.
var errExecSettings = errors.New("forkserver: exec: Rlimits apply to Fork only")

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
)

// server is the state of the fork server process.
type server struct {
	exe      string
	poolSize int

	// forkMu is held for reading across each fork and the recording of the
	// child, and for writing while reaping: every pid reaped is known.
	forkMu sync.RWMutex

	// mu guards the fields below. It is held while reaping, so that a pid
	// in children always names that child, alive or a zombie, while mu is
	// held: a signal sent under mu cannot reach a reused pid.
	mu        sync.Mutex
	children  map[int]*child
	pool      []*pooled
	poolGen   int // counts drains: a child started before one is not pooled
	refilling bool
	stopping  bool            // no new children
	idle      []chan struct{} // closed when children becomes empty
}

// running is the server this process runs, for functions run by Eval.
var running *server

// child is a process the server created.
type child struct {
	owner  *peer   // the connection that asked for it; nil while pooled
	id     uint32  // its Fork request's id, which its exit event carries
	group  bool    // it leads its own process group
	pooled *pooled // while it waits in the pool or is being assigned
}

// peer is one connection to the server: the program's, or one handed to a
// child with Attr.Server.
type peer struct {
	srv    *server
	conn   *net.UnixConn
	parent *peer // the connection through which this one was handed out
	rights Rights
	// base and std, for a connection handed to a child, are what that
	// child runs with: every child forked through the connection is
	// confined to base, and gets std (-1: the server's own) unless it is
	// given other standard descriptors.
	base *settings
	std  [3]int

	mu       sync.Mutex
	cond     sync.Cond // signalled as the queue drains
	out      []byte    // frames waiting to be written
	flushing bool      // a goroutine is writing out
	broken   bool      // writing failed or the connection closed; out is dropped
}

// serve runs the fork server on descriptor 3 until the program's
// connection ends, and returns the exit code.
func serve() int {
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
		var conn *net.UnixConn
		if conn, err = unixConn(3); err == nil {
			s := &server{exe: exe, children: make(map[int]*child)}
			s.poolSize, _ = strconv.Atoi(os.Getenv(poolEnv))
			os.Unsetenv(poolEnv)
			running = s
			s.watchExits()
			go s.refill()
			root := s.newPeer(conn, nil, allRights)
			root.send(0, &helloMsg{pid: uint32(os.Getpid())})
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
			s.programGone()
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
		flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
		if errno == 0 && flags&syscall.FD_CLOEXEC == 0 {
			syscall.Close(fd)
		}
	}
}

// programGone kills every child and waits, for a bounded time, until they
// are reaped, so that no child outlives the program that asked for it.
func (s *server) programGone() {
	s.mu.Lock()
	s.stopping = true
	s.signalAll(nil, syscall.SIGKILL, true)
	idle := s.whenIdle()
	s.mu.Unlock()
	select {
	case <-idle:
	case <-time.After(reapTimeout):
	}
}

func (s *server) newPeer(conn *net.UnixConn, parent *peer, rights Rights) *peer {
	p := &peer{srv: s, conn: conn, parent: parent, rights: rights, std: [3]int{-1, -1, -1}}
	p.cond.L = &p.mu
	return p
}

// release closes the connection and the descriptors p holds.
func (p *peer) release() {
	p.conn.Close()
	closeFds(p.std[:])
}

// serve reads and handles requests until the connection ends or breaks
// the protocol.
func (p *peer) serve() {
	r := newFrameReader(p.conn)
	for {
		f, err := r.read()
		if err == errFdsLost { // the server ran out of descriptors: refuse this request alone
			p.reply(f.id, err)
			continue
		}
		if err != nil || !p.handle(f) {
			break
		}
		p.throttle()
	}
	p.mu.Lock()
	p.broken = true
	p.out = nil
	p.mu.Unlock()
	p.release()
}

// handle handles one request. It reports false, having closed the frame's
// descriptors, if the frame is not a request.
func (p *peer) handle(f frame) bool {
	s := p.srv
	switch m := f.msg.(type) {
	case *forkMsg:
		if err := s.fork(p, f.id, m, f.fds); err != nil {
			p.reply(f.id, err)
		}
	case *execMsg:
		if err := s.exec(p, f.id, m, f.fds); err != nil {
			p.reply(f.id, err)
		}
	case *signalMsg:
		p.reply(f.id, s.signal(p, int(m.pid), syscall.Signal(m.sig), m.group))
	case *killAllMsg:
		if p.rights&RightSignal == 0 {
			p.reply(f.id, ErrPermission)
			break
		}
		s.mu.Lock()
		scope := p
		if s.stopping && p.rights&RightStop != 0 {
			scope = nil // Stop's last resort reaches every child, as Stop does
		}
		s.signalAll(scope, syscall.Signal(m.sig), m.groups)
		s.mu.Unlock()
		p.reply(f.id, nil)
	case *evalMsg:
		if p.rights&RightEval == 0 {
			p.reply(f.id, ErrPermission)
			break
		}
		go func() {
			err := eval(m)
			s.mu.Lock()
			s.drainPool() // pooled children predate what fn changed
			s.mu.Unlock()
			go s.refill()
			p.reply(f.id, err)
		}()
	case *stopMsg:
		if p.rights&RightStop == 0 {
			p.reply(f.id, ErrPermission)
			break
		}
		go s.stop(p, f.id)
	case *detachMsg:
		if p.rights&RightStop == 0 {
			p.reply(f.id, ErrPermission)
			break
		}
		s.mu.Lock()
		s.stopping = true
		s.mu.Unlock()
		p.exitAfter(f.id)
	default:
		closeFds(f.fds)
		return false
	}
	return true
}

// fork creates a child for the request id from p, from the pool when one
// waits there and the settings allow, cold otherwise. It owns fds and
// closes them. On success it sends the reply itself, before the child's
// exit event can be sent; on failure the caller replies with the error.
func (s *server) fork(p *peer, id uint32, m *forkMsg, fds []int) error {
	defer closeFds(fds)
	if p.rights&RightFork == 0 {
		return ErrPermission
	}
	if lookup(m.name) == nil {
		return ErrUnknownFunc
	}
	st := m.settings
	if err := s.admit(p, &st, false); err != nil {
		return err
	}
	socket, given, files := splitFds(m.flags, fds)
	std := p.stdio(m.flags, given)
	var sp *peer // the child's own connection, if it asked for one
	if m.flags&flagServer != 0 {
		var end int
		var err error
		if sp, end, err = s.childPeer(p, &st, std); err != nil {
			return err
		}
		defer closeFds([]int{end})
		socket = append(socket, end)
	}
	a := &assignMsg{flags: m.flags &^ stdFlags, nfiles: m.nfiles, serverPid: uint32(os.Getpid()), name: m.name, arg: m.arg, settings: st}
	if !st.empty() {
		a.flags |= flagSettings
	}
	frame := appendFrame(nil, 0, a)
	claim := func(pid int, exited *exitMsg) {
		if exited == nil {
			s.adopt(pid, p, id, &st)
		} else { // it ran and ended already: its pid may be another's now
			p.send(id, &replyMsg{value: uint32(pid)})
			p.send(id, exited)
		}
		if sp != nil {
			go sp.serve()
		}
	}
	err := s.forkChild(frame, a, &st, std, socket, files, claim)
	if err != nil && sp != nil {
		sp.release()
	}
	return err
}

// forkChild hands the assignment a, encoded as frame, to a pooled child
// when the settings st allow, or starts one cold, and claims it.
func (s *server) forkChild(frame []byte, a *assignMsg, st *settings, std [3]int, socket, files []int, claim func(pid int, exited *exitMsg)) error {
	if len(frame)-headerLen > maxBody {
		return fmt.Errorf("forkserver: assignment of %d bytes exceeds the limit of %d", len(frame)-headerLen, maxBody)
	}
	if st.namespaces == 0 && st.set&setNoNewPrivs == 0 {
		// A pooled child was executed with the server's standard
		// descriptors and gets other ones in its assignment.
		pa := *a
		var stdio []int
		for i, fd := range std {
			if fd >= 0 {
				pa.flags |= flagStdin << i
				stdio = append(stdio, fd)
			}
		}
		if s.assignPooled(appendFrame(nil, 0, &pa), concat(socket, stdio, files), claim) {
			return nil
		}
	}
	ctl, childCtl, err := socketConnPair()
	if err != nil {
		return err
	}
	sys, err := sysProcAttr(st, false)
	if err == nil {
		env := append(os.Environ(), roleEnv+"=child")
		err = s.spawn(s.exe, os.Args, env, "", append(stdFds(std), uintptr(childCtl)), sys, st.set&setNoNewPrivs != 0,
			s.claimer(func(pid int) { claim(pid, nil) }))
	}
	closeFds([]int{childCtl})
	if err == nil {
		// The child reads its assignment as soon as it runs; the frame
		// may be larger than the socket's buffer, so it is written only
		// now. Should this fail, the child has died, and its exit says so.
		writeMsg(ctl, frame, concat(socket, files))
	}
	ctl.Close()
	return err
}

// childPeer makes the connection a child forked with st and std gets: its
// rights are st's, at most p's, and it confines what is forked through it
// to st and std.
func (s *server) childPeer(p *peer, st *settings, std [3]int) (*peer, int, error) {
	rights := Rights(st.rights)
	if rights == 0 {
		rights = rightsChild
	}
	if rights&^p.rights != 0 {
		return nil, -1, ErrPermission
	}
	conn, end, err := socketConnPair()
	if err != nil {
		return nil, -1, err
	}
	sp := s.newPeer(conn, p, rights)
	sp.base = st
	for i, fd := range std {
		if fd >= 0 {
			if sp.std[i], err = dupCloexec(fd); err != nil {
				sp.release()
				syscall.Close(end)
				return nil, -1, err
			}
		}
	}
	return sp, end, nil
}

// exec starts an external program for the request id from p: its
// descriptors 0 to 2 are as a Fork's, Attr.Files follow from 3, and the
// socket, if asked for, comes after them.
func (s *server) exec(p *peer, id uint32, m *execMsg, fds []int) error {
	defer closeFds(fds)
	if p.rights&RightFork == 0 {
		return ErrPermission
	}
	st := m.settings
	if err := s.admit(p, &st, true); err != nil {
		return err
	}
	socket, given, files := splitFds(m.flags, fds)
	sys, err := sysProcAttr(&st, true)
	if err != nil {
		return err
	}
	env := os.Environ()
	if st.set&setEnv != 0 {
		env = st.env
	}
	env = mergeEnv(env, st.extraEnv)
	all := stdFds(p.stdio(m.flags, given))
	for _, fd := range concat(files, socket) {
		all = append(all, uintptr(fd))
	}
	return s.spawn(m.path, m.argv, env, st.dir, all, sys, st.set&setNoNewPrivs != 0, s.claimer(func(pid int) {
		s.adopt(pid, p, id, &st)
	}))
}

// adopt records pid as the child that request id from p created with st,
// and answers the request, before any exit event of the child can be sent.
// s.mu must be held.
func (s *server) adopt(pid int, p *peer, id uint32, st *settings) {
	s.children[pid] = &child{owner: p, id: id, group: st.set&(setSetsid|setSetpgid) != 0}
	p.send(id, &replyMsg{value: uint32(pid)})
}

// mergeEnv returns env with extra added, each key once, the later entry
// winning, as a Go child's os.Setenv would have it.
func mergeEnv(env, extra []string) []string {
	if len(extra) == 0 {
		return env
	}
	index := make(map[string]int)
	var out []string
	for _, kv := range append(env[:len(env):len(env)], extra...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// claimer returns the add function for spawn that records a new child
// with claim, unless the server began to stop meanwhile.
func (s *server) claimer(claim func(pid int)) func(pid int) error {
	return func(pid int) error {
		if s.stopping {
			s.children[pid] = &child{} // reaped, reported to no one
			syscall.Kill(pid, syscall.SIGKILL)
			return ErrClosed
		}
		claim(pid)
		return nil
	}
}

// stdFlags are the flags of the standard descriptors, 0 to 2 in order.
const stdFlags = flagStdin | flagStdout | flagStderr

// splitFds splits the descriptors of a Fork or Exec request by role.
func splitFds(flags uint32, fds []int) (socket, stdio, files []int) {
	next := 0
	if flags&flagSocket != 0 {
		socket = []int{fds[0]}
		next++
	}
	n := bits.OnesCount32(flags & stdFlags)
	return socket, fds[next : next+n], fds[next+n:]
}

// stdio returns the descriptors 0 to 2 for a child forked through p: those
// the request gave, else those of the child p was handed to, else -1 for
// the server's own.
func (p *peer) stdio(flags uint32, given []int) [3]int {
	std := p.std
	for i := range std {
		if flags&(flagStdin<<i) != 0 {
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

// admit confines st to what p may ask for and checks that the server can
// honour it, so that a refusal is Fork's error rather than the child's.
func (s *server) admit(p *peer, st *settings, external bool) error {
	if err := p.confine(st); err != nil {
		return err
	}
	if st.set&setCredential != 0 && os.Geteuid() != 0 && !sameCredential(st) {
		return os.NewSyscallError("setuid", syscall.EPERM)
	}
	if st.chroot != "" {
		if os.Geteuid() != 0 {
			return os.NewSyscallError("chroot", syscall.EPERM)
		}
		if fi, err := os.Stat(st.chroot); err != nil || !fi.IsDir() {
			return os.NewSyscallError("chroot", syscall.ENOTDIR)
		}
	}
	if st.dir != "" && st.chroot == "" {
		if fi, err := os.Stat(st.dir); err != nil || !fi.IsDir() {
			return os.NewSyscallError("chdir", syscall.ENOTDIR)
		}
	}
	_, err := sysProcAttr(st, external)
	return err
}

// sameCredential reports whether st's credential is the one this process
// has, the only one a process without privileges can run a child as.
func sameCredential(st *settings) bool {
	groups, err := os.Getgroups()
	if err != nil || int(st.uid) != os.Geteuid() || int(st.gid) != os.Getegid() || len(groups) != len(st.groups) {
		return false
	}
	for i, g := range groups {
		if uint32(g) != st.groups[i] {
			return false
		}
	}
	return true
}

// confine makes st no more privileged than the child p was handed to.
func (p *peer) confine(st *settings) error {
	b := p.base
	if b == nil {
		return nil
	}
	if b.set&setCredential != 0 {
		if st.set&setCredential == 0 {
			st.set |= setCredential
			st.uid, st.gid, st.groups = b.uid, b.gid, b.groups
		} else if st.uid != b.uid || st.gid != b.gid || !slices.Equal(st.groups, b.groups) {
			return ErrPermission
		}
	}
	restricted := b.set&(setCredential|setNoNewPrivs|setEnv) != 0 || b.chroot != "" || b.namespaces != 0
	if st.chroot == "" {
		st.chroot = b.chroot
	} else if st.chroot != b.chroot && restricted {
		return ErrPermission // a root of its choosing could hold setuid binaries of its making
	}
	if b.set&setEnv != 0 && st.set&setEnv == 0 {
		// What the child was not given, such as the server's secrets,
		// its children are not given either.
		st.set |= setEnv
		st.env = mergeEnv(b.env, b.extraEnv)
	}
	if restricted {
		if st.uidMaps == nil && st.gidMaps == nil {
			st.uidMaps, st.gidMaps = b.uidMaps, b.gidMaps
		} else if !slices.Equal(st.uidMaps, b.uidMaps) || !slices.Equal(st.gidMaps, b.gidMaps) {
			return ErrPermission
		}
	}
	st.namespaces |= b.namespaces
	st.set |= b.set & setNoNewPrivs
	for _, limit := range b.rlimits {
		i := slices.IndexFunc(st.rlimits, func(r rlimit) bool { return r.resource == limit.resource })
		if i < 0 {
			st.rlimits = append(st.rlimits, limit)
			continue
		}
		st.rlimits[i].cur = min(st.rlimits[i].cur, limit.cur)
		st.rlimits[i].max = min(st.rlimits[i].max, limit.max)
	}
	return nil
}

func concat(fds ...[]int) []int {
	var all []int
	for _, f := range fds {
		all = append(all, f...)
	}
	return all
}

// spawn executes path with files as its first descriptors, from a thread
// with no_new_privs if nnp is set, then calls add with its pid, with s.mu
// held, to record it in children. The reaper cannot run between the two,
// so every pid it reaps is already recorded.
func (s *server) spawn(path string, argv, env []string, dir string, files []uintptr, sys *syscall.SysProcAttr, nnp bool, add func(pid int) error) error {
	s.forkMu.RLock()
	defer s.forkMu.RUnlock()
	var pid int
	var err error
	forkExec := func() {
		pid, err = syscall.ForkExec(path, argv, &syscall.ProcAttr{Dir: dir, Env: env, Files: files, Sys: sys})
	}
	if nnp {
		if terr := withNoNewPrivs(forkExec); terr != nil {
			return terr
		}
	} else {
		forkExec()
	}
	if err != nil {
		return os.NewSyscallError("fork/exec", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return add(pid)
}

// signal sends sig to the child pid, or to the process group it leads, if
// it is in p's scope.
func (s *server) signal(p *peer, pid int, sig syscall.Signal, group bool) error {
	if p.rights&RightSignal == 0 {
		return ErrPermission
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.children[pid]
	if !ok {
		return os.ErrProcessDone
	}
	if c.owner == nil || !c.owner.within(p) {
		return ErrPermission
	}
	if group {
		if !c.group {
			return fmt.Errorf("forkserver: process %d leads no process group: fork it with Setsid or Setpgid", pid)
		}
		pid = -pid
	}
	return os.NewSyscallError("kill", syscall.Kill(pid, sig))
}

// signalAll sends sig to every child in p's scope, or to every child if p
// is nil; with groups, to the process group of every child that leads one.
// s.mu must be held.
func (s *server) signalAll(p *peer, sig syscall.Signal, groups bool) {
	for pid, c := range s.children {
		if p == nil || c.owner != nil && c.owner.within(p) {
			if groups && c.group {
				syscall.Kill(-pid, sig)
			} else {
				syscall.Kill(pid, sig)
			}
		}
	}
}

// within reports whether q is p or was handed out, transitively, through p.
func (q *peer) within(p *peer) bool {
	for ; q != nil; q = q.parent {
		if q == p {
			return true
		}
	}
	return false
}

// whenIdle returns a channel closed once no child is left. s.mu must be
// held.
func (s *server) whenIdle() chan struct{} {
	ch := make(chan struct{})
	if len(s.children) == 0 {
		close(ch)
	} else {
		s.idle = append(s.idle, ch)
	}
	return ch
}

// stop terminates every child, waits until all are reaped, answers the
// request id and exits the server.
func (s *server) stop(p *peer, id uint32) {
	s.mu.Lock()
	s.stopping = true
	s.signalAll(nil, syscall.SIGTERM, false)
	idle := s.whenIdle()
	s.mu.Unlock()
	<-idle
	p.exitAfter(id)
}

// exitAfter answers the request id, waits until every queued frame, the
// exit events before it included, is written, and exits the server.
func (p *peer) exitAfter(id uint32) {
	p.reply(id, nil)
	p.mu.Lock()
	for (p.flushing || len(p.out) > 0) && !p.broken {
		p.cond.Wait()
	}
	p.mu.Unlock()
	os.Exit(0)
}

// eval runs a registered function in the server.
func eval(m *evalMsg) (err error) {
	fn := lookup(m.name)
	if fn == nil {
		return ErrUnknownFunc
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn(context.Background(), &Child{arg: m.arg})
}

// reply answers the request id with err, nil meaning success.
func (p *peer) reply(id uint32, err error) {
	p.send(id, replyFor(err))
}

func replyFor(err error) *replyMsg {
	var se *os.SyscallError
	var errno syscall.Errno
	switch {
	case err == nil:
		return &replyMsg{}
	case errors.Is(err, ErrUnknownFunc):
		return &replyMsg{code: codeUnknownFunc}
	case errors.Is(err, ErrPermission):
		return &replyMsg{code: codePermission}
	case errors.Is(err, os.ErrProcessDone):
		return &replyMsg{code: codeProcessDone}
	case errors.Is(err, ErrClosed):
		return &replyMsg{code: codeClosed}
	case errors.As(err, &se) && errors.As(err, &errno):
		return &replyMsg{code: codeErrno, value: uint32(errno), text: truncate(se.Syscall)}
	}
	return &replyMsg{code: codeFailed, text: truncate(err.Error())}
}

func truncate(s string) string {
	if len(s) > maxText {
		return s[:maxText]
	}
	return s
}

// send queues a frame for p and makes sure a goroutine is writing the
// queue out. It never blocks, so the reaper and the handlers may call it
// with s.mu held.
func (p *peer) send(id uint32, m message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken {
		return
	}
	p.out = appendFrame(p.out, id, m)
	if !p.flushing {
		p.flushing = true
		go p.flush()
	}
}

func (p *peer) flush() {
	p.mu.Lock()
	for len(p.out) > 0 && !p.broken {
		buf := p.out
		p.out = nil
		p.mu.Unlock()
		_, err := p.conn.Write(buf)
		p.mu.Lock()
		if err != nil {
			p.broken = true
			p.out = nil
			p.conn.Close()
		}
		p.cond.Broadcast()
	}
	p.flushing = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// throttle waits while too much is queued for p.
func (p *peer) throttle() {
	p.mu.Lock()
	for len(p.out) > highWater && !p.broken {
		p.cond.Wait()
	}
	p.mu.Unlock()
}
