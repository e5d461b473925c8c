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
	"syscall"
	"time"
)

// Rights of a connection to the server.
const (
	rightFork   uint8 = 1 << iota
	rightSignal       // signal and kill the connection's own children
	rightEval
	rightStop // Stop and Detach

	rightsAll   = rightFork | rightSignal | rightEval | rightStop
	rightsChild = rightFork | rightSignal
)

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
	owner *peer  // the connection that asked for it; nil while pooled
	id    uint32 // its Fork request's id, which its exit event carries
}

// peer is one connection to the server: the program's, or one handed to a
// child with Attr.Server.
type peer struct {
	srv    *server
	conn   *net.UnixConn
	parent *peer // the connection through which this one was handed out
	rights uint8

	mu       sync.Mutex
	cond     sync.Cond // signalled as the queue drains
	out      []byte    // frames waiting to be written
	flushing bool      // a goroutine is writing out
	broken   bool      // writing failed or the connection closed; out is dropped
}

// serve runs the fork server on descriptor 3 until the program's
// connection ends, and returns the exit code.
func serve() int {
	// A terminal's interrupt reaches the whole process group. The server
	// follows the program's lifetime instead: it ends when the program's
	// connection does.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGINT, syscall.SIGHUP)

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
			root := s.newPeer(conn, nil, rightsAll)
			root.send(0, &helloMsg{pid: uint32(os.Getpid())})
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
	s.signalAll(nil, syscall.SIGKILL)
	idle := s.whenIdle()
	s.mu.Unlock()
	select {
	case <-idle:
	case <-time.After(reapTimeout):
	}
}

func (s *server) newPeer(conn *net.UnixConn, parent *peer, rights uint8) *peer {
	p := &peer{srv: s, conn: conn, parent: parent, rights: rights}
	p.cond.L = &p.mu
	return p
}

// serve reads and handles requests until the connection ends or breaks
// the protocol.
func (p *peer) serve() {
	r := newFrameReader(p.conn)
	for {
		f, err := r.read()
		if err != nil || !p.handle(f) {
			break
		}
		p.throttle()
	}
	p.mu.Lock()
	p.broken = true
	p.out = nil
	p.mu.Unlock()
	p.conn.Close()
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
	case *signalMsg:
		p.reply(f.id, s.signal(p, int(m.pid), syscall.Signal(m.sig)))
	case *killAllMsg:
		if p.rights&rightSignal == 0 {
			p.reply(f.id, ErrPermission)
			break
		}
		s.mu.Lock()
		s.signalAll(p, syscall.Signal(m.sig))
		s.mu.Unlock()
		p.reply(f.id, nil)
	case *evalMsg:
		if p.rights&rightEval == 0 {
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
		if p.rights&rightStop == 0 {
			p.reply(f.id, ErrPermission)
			break
		}
		go s.stop(p, f.id)
	case *detachMsg:
		if p.rights&rightStop == 0 {
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
// waits there, cold otherwise. It owns fds and closes them. On success it
// sends the reply itself, before the child's exit event can be sent; on
// failure the caller replies with the error.
func (s *server) fork(p *peer, id uint32, m *forkMsg, fds []int) (err error) {
	defer closeFds(fds)
	if p.rights&rightFork == 0 {
		return ErrPermission
	}
	if lookup(m.name) == nil {
		return ErrUnknownFunc
	}
	// fds arrive as socket, stdin, stdout, stderr, files, each optional but
	// the files; the child's own connection to the server, if it asked for
	// one, goes in after the socket.
	var socket, stdio, files []int
	next := 0
	for _, flag := range []uint32{flagSocket, flagStdin, flagStdout, flagStderr} {
		if m.flags&flag == 0 {
			continue
		}
		if flag == flagSocket {
			socket = fds[next : next+1]
		} else {
			stdio = append(stdio, fds[next])
		}
		next++
	}
	files = fds[next:]
	var sp *peer
	if m.flags&flagServer != 0 {
		conn, end, err := socketConnPair()
		if err != nil {
			return err
		}
		defer closeFds([]int{end})
		sp = s.newPeer(conn, p, p.rights&rightsChild)
		defer func() {
			if err != nil {
				conn.Close()
			}
		}()
		socket = append(socket, end)
	}
	a := &assignMsg{flags: m.flags, nfiles: m.nfiles, serverPid: uint32(os.Getpid()), name: m.name, arg: m.arg}
	claim := func(pid int) {
		s.children[pid] = &child{owner: p, id: id}
		p.send(id, &replyMsg{value: uint32(pid)})
		if sp != nil {
			go sp.serve()
		}
	}
	if s.assignPooled(a, concat(socket, stdio, files), claim) {
		return nil
	}

	// A cold child gets its standard descriptors at exec, and the rest of
	// its assignment waits in its socket before it exists, so that it reads
	// it at once and the server holds no end open.
	a.flags &^= flagStdin | flagStdout | flagStderr
	ctl, childCtl, err := socketConnPair()
	if err != nil {
		return err
	}
	defer closeFds([]int{childCtl})
	err = writeMsg(ctl, appendFrame(nil, 0, a), concat(socket, files))
	ctl.Close()
	if err != nil {
		return err
	}
	std := []uintptr{0, 1, 2}
	for i, flag := range []uint32{flagStdin, flagStdout, flagStderr} {
		if m.flags&flag != 0 {
			std[i] = uintptr(stdio[0])
			stdio = stdio[1:]
		}
	}
	return s.spawn(std, childCtl, func(pid int) error {
		if s.stopping {
			s.children[pid] = &child{} // reaped, reported to no one
			syscall.Kill(pid, syscall.SIGKILL)
			return ErrClosed
		}
		claim(pid)
		return nil
	})
}

func concat(fds ...[]int) []int {
	var all []int
	for _, f := range fds {
		all = append(all, f...)
	}
	return all
}

// spawn executes a fresh child with std as its descriptors 0 to 2 and ctl
// as 3, then calls add with its pid, with s.mu held, to record it in
// children. The reaper cannot run between the two, so every pid it reaps is
// already recorded.
func (s *server) spawn(std []uintptr, ctl int, add func(pid int) error) error {
	env := append(os.Environ(), roleEnv+"=child")
	s.forkMu.RLock()
	defer s.forkMu.RUnlock()
	pid, err := syscall.ForkExec(s.exe, os.Args, &syscall.ProcAttr{
		Env:   env,
		Files: append(std, uintptr(ctl)),
	})
	if err != nil {
		return os.NewSyscallError("fork/exec", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return add(pid)
}

// signal sends sig to the child pid if it is in p's scope.
func (s *server) signal(p *peer, pid int, sig syscall.Signal) error {
	if p.rights&rightSignal == 0 {
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
	return os.NewSyscallError("kill", syscall.Kill(pid, sig))
}

// signalAll sends sig to every child in p's scope, or to every child if p
// is nil. s.mu must be held.
func (s *server) signalAll(p *peer, sig syscall.Signal) {
	for pid, c := range s.children {
		if p == nil || c.owner != nil && c.owner.within(p) {
			syscall.Kill(pid, sig)
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
	s.signalAll(nil, syscall.SIGTERM)
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
