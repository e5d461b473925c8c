//go:build linux || darwin

package forkserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Start starts a fork server: a new execution of this program's binary
// that creates children on its behalf. A nil cfg means the defaults. Main
// must have run in this process. The server has started and answered when
// Start returns.
func Start(cfg *Config) (*Server, error) {
	if !mainCalled.Load() {
		return nil, ErrNoMain
	}
	if cfg == nil {
		cfg = new(Config)
	}
	env := cfg.Env
	if env == nil {
		env = os.Environ()
	}
	if cfg.PoolSize < 0 || cfg.MaxChildren < 0 {
		return nil, fmt.Errorf("forkserver: start: negative PoolSize %d or MaxChildren %d", cfg.PoolSize, cfg.MaxChildren)
	}
	env = append(withoutRole(env), roleEnv+"=server", poolEnv+"="+strconv.Itoa(cfg.PoolSize), maxChildrenEnv+"="+strconv.Itoa(cfg.MaxChildren))
	s, err := startServer(env)
	if err != nil {
		return nil, opError("start", err)
	}
	s.path, _ = lastPath(env)
	return s, nil
}

// withoutRole returns env without the variables this package sets.
func withoutRole(env []string) []string {
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != roleEnv && k != poolEnv && k != maxChildrenEnv {
			out = append(out, kv)
		}
	}
	return out
}

func newServer(pid int, conn *net.UnixConn, root bool) *Server {
	s := &Server{
		pid:   pid,
		root:  root,
		conn:  conn,
		calls: make(map[uint32]*call),
		procs: make(map[uint32]*Process),
		done:  make(chan struct{}),
	}
	go s.readLoop(newFrameReader(conn))
	return s
}

// Fork asks the server to create a child that runs fn with what attr gives
// it; a nil attr gives it nothing. The child is a fresh execution of this
// binary.
//
// When the server has handed this connection a warm child that can take
// the request (see [Config.PoolSize]), Fork writes the assignment to that
// child itself and returns at once. Otherwise ctx bounds the wait for the
// server's answer: if ctx ends first, Fork returns ctx's error and a child
// created anyway is killed (through a connection that holds
// [RightSignal], as every one does by default). A ctx already done when
// Fork is called fails it either way.
//
// Waiting for the Process is optional: one that is never waited for leaks
// nothing once the child has exited.
func (s *Server) Fork(ctx context.Context, fn Func, attr *Attr) (*Process, error) {
	if attr == nil {
		attr = new(Attr)
	}
	op := "fork " + fn.name
	if err := ctx.Err(); err != nil {
		return nil, opError(op, err)
	}
	if err := checkCall(fn, attr.Arg); err != nil {
		return nil, opError(op, err)
	}
	st, err := attr.settings()
	if err != nil {
		return nil, opError(op, err)
	}
	std, attr, err := newStdio(attr)
	if err != nil {
		return nil, opError(op, err)
	}
	m := &forkMsg{flags: attr.fdFlags() | st.flag(), nfiles: uint16(len(attr.Files)), name: fn.name, arg: attr.Arg, settings: st}
	if attr.Server {
		m.flags |= flagServer
	}
	p, err := s.forkWarm(m, attr)
	if err != nil {
		return std.started(nil, opError(op, err))
	}
	if p != nil {
		return std.started(p, nil)
	}
	m.flags |= flagExit
	p, err = s.launch(ctx, op, m, attr)
	if errors.Is(err, ErrChildLimit) {
		// The room may have gone to a warm child the server handed over
		// just before: the refusal comes after it, so it is here now.
		m.flags &^= flagExit
		switch q, werr := s.forkWarm(m, attr); {
		case werr != nil:
			err = opError(op, werr)
		case q != nil:
			p, err = q, nil
		}
	}
	return std.started(p, err)
}

// Exec asks the server to start the external program at path with argv
// (argv[0] included) and what attr gives it, as os/exec would from the
// program, but from the small server process. Its descriptors 0 to 2 are
// as a Fork's; [Attr.Files] become descriptors 3, 4, and so on; the socket,
// if [Attr.Socket] asks for one, comes after them. The settings of attr apply
// as the kernel creates the process, except Rlimits, which only a Go child
// can apply and which are refused here, as are [Attr.Server] and [Attr.Arg].
// The program's exit, signals and Stop work as for a Fork.
//
// A path without a slash is looked up, before the request is sent, in the
// directories of the PATH the child will have, as exec.LookPath does:
// the last PATH in [Attr.ExtraEnv], else, if [Attr.Env] is set, the last
// one there, else the server's, as it started (Eval's changes are not
// seen; through a child's Server, the child's own PATH). With [Attr.Chroot]
// the directories are those inside it. None found is an error matching
// exec.ErrNotFound; one found through a relative directory of PATH is
// refused with exec.ErrDot, as os/exec refuses it. A path with a slash is
// used as it is, a relative one from the child's working directory: name
// a program in the current directory "./prog".
func (s *Server) Exec(ctx context.Context, path string, argv []string, attr *Attr) (*Process, error) {
	if attr == nil {
		attr = new(Attr)
	}
	op := "exec " + path
	if err := ctx.Err(); err != nil {
		return nil, opError(op, err)
	}
	if path == "" || len(path) > maxPath || len(argv) > maxList {
		return nil, opError(op, fmt.Errorf("forkserver: path of 1 to %d bytes and at most %d arguments required", maxPath, maxList))
	}
	for _, a := range argv {
		if len(a) > MaxArg {
			return nil, opError(op, fmt.Errorf("%w: an argument of %d bytes", ErrArgTooLarge, len(a)))
		}
	}
	if attr.Server || len(attr.Arg) > 0 {
		return nil, opError(op, errors.New("forkserver: Attr.Server and Attr.Arg are for Fork only"))
	}
	path, err := s.lookPath(path, attr)
	if err != nil {
		return nil, opError(op, err)
	}
	st, err := attr.settings()
	if err != nil {
		return nil, opError(op, err)
	}
	std, attr, err := newStdio(attr)
	if err != nil {
		return nil, opError(op, err)
	}
	m := &execMsg{flags: attr.fdFlags() | flagExit | st.flag(), nfiles: uint16(len(attr.Files)), path: path, argv: argv, settings: st}
	return std.started(s.launch(ctx, op, m, attr))
}

// KillAll sends sig to every child created through this connection and,
// transitively, through the connections it handed to children. Through the
// connection Start returns, that is every child of the server.
func (s *Server) KillAll(sig syscall.Signal) error {
	return s.signalChildren("kill all", sig, false)
}

func (s *Server) signalChildren(op string, sig syscall.Signal, groups bool) error {
	if err := checkSignal(sig); err != nil {
		return opError(op, err)
	}
	_, err := s.roundTrip(context.Background(), op, &killAllMsg{sig: uint32(sig), groups: groups})
	return err
}

// [Server.KillAllGroups] is KillAll, but a child that leads a process group
// ([Attr.Setsid] or [Attr.Setpgid]) gets sig sent to its whole group, which
// reaches what it started in the group, grandchildren included.
func (s *Server) KillAllGroups(sig syscall.Signal) error {
	return s.signalChildren("kill all groups", sig, true)
}

// Eval runs fn in the server process, with arg as [Child.Arg] and no
// connection or files, and returns its error. What fn changes in the server,
// such as its environment or working directory, children forked afterwards
// inherit. A panic in fn is returned as an error. If ctx ends first, Eval
// returns ctx's error and fn runs on to its end in the server.
//
// fn must not start processes and wait for them itself: the server reaps
// every child it has.
func (s *Server) Eval(ctx context.Context, fn Func, arg []byte) error {
	op := "eval " + fn.name
	if err := checkCall(fn, arg); err != nil {
		return opError(op, err)
	}
	_, err := s.roundTrip(ctx, op, &evalMsg{name: fn.name, arg: arg})
	return err
}

// Stop stops every child and then the server. It sends SIGTERM to every
// child, which cancels the context of a child's function, and waits for all
// of them to exit; if ctx ends first, it sends SIGKILL to those left and
// returns ctx's error once they are gone. Their exits reach Wait before Stop
// returns. When Stop returns, the server has exited and s is closed; a
// refusal ([ErrPermission]) leaves s as it was.
func (s *Server) Stop(ctx context.Context) error {
	c, err := s.send(&stopMsg{})
	if err != nil {
		return opError("stop", err)
	}
	var ctxErr error
	r, ok := (*replyMsg)(nil), false
	select {
	case r, ok = <-c.reply:
	case <-ctx.Done():
		ctxErr = ctx.Err()
		s.KillAll(syscall.SIGKILL) // an error here shows in the reply
		r, ok = <-c.reply
	}
	if _, err := s.answer(r, ok); err != nil {
		return opError("stop", err)
	}
	s.closeWith(ErrClosed)
	return ctxErr
}

// Detach stops the server but not the children, which live on without it,
// as daemons. Processes not yet exited report [ErrClosed] from Wait. When
// Detach returns the server has exited and s is closed.
func (s *Server) Detach() error {
	if _, err := s.roundTrip(context.Background(), "detach", &detachMsg{}); err != nil {
		return err
	}
	s.closeWith(ErrClosed)
	return nil
}

// Close closes the connection. On the Server that Start returned, the
// server then kills every child and exits, and Close returns once it has;
// on a child's Server, the server kills every child forked through it, at
// any depth, as it does when the child holding it exits. Pending calls and
// Wait return [ErrClosed]. Close after Close, Stop or Detach does nothing.
func (s *Server) Close() error {
	s.closeWith(ErrClosed)
	return nil
}

func (s *Server) closeWith(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.conn.Close()
	<-s.done
}

func checkCall(fn Func, arg []byte) error {
	if fn.name == "" {
		return fmt.Errorf("%w: the zero Func", ErrUnknownFunc)
	}
	if len(arg) > MaxArg {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrArgTooLarge, len(arg), MaxArg)
	}
	return nil
}

// roundTrip sends m, which carries no descriptors, and waits for its reply.
func (s *Server) roundTrip(ctx context.Context, op string, m message) (*replyMsg, error) {
	r, err := s.call(ctx, m)
	if err != nil {
		return nil, opError(op, err)
	}
	return r, nil
}

func (s *Server) call(ctx context.Context, m message) (*replyMsg, error) {
	c, err := s.send(m)
	if err != nil {
		return nil, err
	}
	select {
	case r, ok := <-c.reply:
		return s.answer(r, ok)
	case <-ctx.Done():
		s.forget(c.id) // the reply is dropped
		return nil, ctx.Err()
	}
}

// send sends m, which carries no descriptors, as a call awaiting its reply.
func (s *Server) send(m message) (*call, error) {
	c := &call{reply: make(chan *replyMsg, 1), final: m.kind() == tStop || m.kind() == tDetach, eval: m.kind() == tEval}
	var err error
	c.id, err = s.newID(func(id uint32) { s.calls[id] = c })
	if err == nil {
		err = s.write(c.id, m, nil)
	}
	if err != nil {
		s.forget(c.id)
		return nil, err
	}
	return c, nil
}

// answer returns the reply r, or the error it stands for; ok false means
// the connection ended first.
func (s *Server) answer(r *replyMsg, ok bool) (*replyMsg, error) {
	if !ok {
		return nil, s.failure(nil)
	}
	if err := s.replyErr(r); err != nil {
		return nil, err
	}
	return r, nil
}

// newID finds an id no call or process uses and calls use with it, with
// s.mu held. Ids from 1<<31 up are the server's, for warm children.
func (s *Server) newID(use func(id uint32)) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	for {
		s.nextID = (s.nextID + 1) % (1 << 31)
		if _, used := s.calls[s.nextID]; !used && s.nextID != 0 && s.procs[s.nextID] == nil {
			break
		}
	}
	use(s.nextID)
	return s.nextID, nil
}

func (s *Server) forget(id uint32) {
	s.mu.Lock()
	delete(s.calls, id)
	delete(s.procs, id)
	s.mu.Unlock()
}

// write writes the request m, with fds, after the notices queued before it.
func (s *Server) write(id uint32, m message, fds []int) error {
	buf := appendFrame(nil, id, m)
	if len(buf)-headerLen > maxBody {
		return fmt.Errorf("forkserver: request of %d bytes exceeds the limit of %d", len(buf)-headerLen, maxBody)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var err error
	switch {
	case len(s.notices) > 0 && len(fds) > 0: // the descriptors travel with m's first byte
		err = writeMsg(s.conn, s.notices, nil)
	case len(s.notices) > 0:
		buf = append(s.notices, buf...)
	}
	s.notices = nil
	if err == nil {
		err = writeMsg(s.conn, buf, fds)
	}
	if err != nil {
		return s.failure(err)
	}
	return nil
}

// queueNotice queues the notice m, which has no reply, to go before the next
// request: the server learns it before anything that request could make
// depend on it, without a write of its own.
func (s *Server) queueNotice(m message) {
	s.wmu.Lock()
	s.notices = appendFrame(s.notices, 0, m)
	s.wmu.Unlock()
}

// failure returns why s no longer works, or, if it does not know yet, cause.
func (s *Server) failure(cause error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	return fmt.Errorf("%w: %v", ErrConnLost, cause)
}

// replyErr turns a reply into the error it stands for.
func (s *Server) replyErr(r *replyMsg) error {
	switch r.code {
	case codeOK:
		return nil
	case codeErrno:
		return os.NewSyscallError(r.text, syscall.Errno(r.value))
	case codeUnknownFunc:
		return fmt.Errorf("%w %q", ErrUnknownFunc, r.text)
	case codePermission:
		return ErrPermission
	case codeProcessDone:
		return os.ErrProcessDone
	case codeClosed:
		return ErrClosed
	case codeChildLimit:
		return ErrChildLimit
	}
	return errors.New(r.text)
}

// readLoop reads what the server sends until the connection ends, then
// fails everything still waiting and, for a server this process started,
// reaps it.
func (s *Server) readLoop(r *frameReader) {
	var err error
	for err == nil {
		var f frame
		if f, err = r.read(); err == nil {
			err = s.dispatch(f)
		}
	}
	s.mu.Lock()
	if s.err == nil {
		s.err = fmt.Errorf("%w: %v", ErrConnLost, err)
	}
	calls, procs := s.calls, s.procs
	s.calls, s.procs = nil, nil
	s.dropWarm()
	err = s.err
	s.mu.Unlock()
	for _, c := range calls {
		close(c.reply)
	}
	for _, p := range procs {
		p.finish(nil, err)
	}
	s.conn.Close()
	if s.root {
		waitPid(s.pid)
	}
	close(s.done)
}

func (s *Server) dispatch(f frame) error {
	switch m := f.msg.(type) {
	case *replyMsg:
		s.mu.Lock()
		c := s.calls[f.id]
		delete(s.calls, f.id)
		if c != nil && c.final && m.code == codeOK && s.err == nil {
			s.err = ErrClosed // the server exits now: that is no lost connection
		}
		if c != nil && c.eval {
			s.dropWarm() // they predate what Eval changed; new ones follow
		}
		s.mu.Unlock()
		if c != nil { // else a call given up on
			c.reply <- m
		}
	case *exitMsg:
		s.mu.Lock()
		p := s.procs[f.id]
		delete(s.procs, f.id)
		if i := slices.IndexFunc(s.warm, func(w warmChild) bool { return w.id == f.id }); i >= 0 {
			closeFds([]int{s.warm[i].ctl, s.warm[i].exit})
			s.warm = slices.Delete(s.warm, i, i+1)
		}
		s.mu.Unlock()
		if p != nil {
			p.finish(exitFromMsg(m), nil)
		}
	case *warmMsg:
		s.mu.Lock()
		s.warm = append(s.warm, warmChild{id: f.id, pid: int(m.pid), ctl: f.fds[0], exit: f.fds[1]})
		s.mu.Unlock()
	default:
		closeFds(f.fds)
		return fmt.Errorf("%w: unexpected frame type %d from the server", errMalformed, f.msg.kind())
	}
	return nil
}

// dropWarm closes the warm children s holds, which exit. s.mu must be held.
func (s *Server) dropWarm() {
	for _, w := range s.warm {
		closeFds([]int{w.ctl, w.exit})
	}
	s.warm = nil
}

// opError prefixes err with the operation that failed, keeping it
// matchable with errors.Is.
func opError(op string, err error) error {
	if e, ok := err.(*wrapError); ok && e.op != "" {
		return err // already names its operation
	}
	return &wrapError{op: op, err: err}
}

type wrapError struct {
	op  string
	err error
}

func (e *wrapError) Error() string {
	msg := e.err.Error()
	const prefix = "forkserver: "
	if len(msg) >= len(prefix) && msg[:len(prefix)] == prefix {
		msg = msg[len(prefix):]
	}
	return prefix + e.op + ": " + msg
}

func (e *wrapError) Unwrap() error { return e.err }

// startServer executes this binary as a fork server with env, with the
// program's standard descriptors and its end of their connection as
// descriptor 3, and waits for the server's hello.
func startServer(env []string) (*Server, error) {
	exe, err := executable()
	if err != nil {
		return nil, err
	}
	conn, theirs, err := socketConnPair()
	if err != nil {
		return nil, err
	}
	pid, err := syscall.ForkExec(exe, os.Args, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2, uintptr(theirs)},
		Sys:   serverSysProcAttr(),
	})
	syscall.Close(theirs)
	if err != nil {
		conn.Close()
		return nil, os.NewSyscallError("fork/exec "+exe, err)
	}
	f, err := newFrameReader(conn).read()
	if err == nil {
		if h, ok := f.msg.(*helloMsg); !ok || int(h.pid) != pid {
			closeFds(f.fds)
			err = fmt.Errorf("%w: the server's first frame is not its hello", errMalformed)
		}
	}
	if err != nil {
		conn.Close()
		status := waitPid(pid)
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("forkserver: the server exited before it was ready (%s)", (&Exit{Status: status}).String())
		}
		return nil, err
	}
	return newServer(pid, conn, true), nil
}

// waitPid waits for the process pid, a child of this one, to end.
func waitPid(pid int) syscall.WaitStatus {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			return ws
		}
	}
}
