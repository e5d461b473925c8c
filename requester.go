//go:build linux || darwin

package forkserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Wait waits for the child to exit and returns how it ended. A child that
// exits non-zero or dies by a signal is not an error: see [Exit.Status]. Wait
// returns an error only when the exit can no longer be learned: [ErrClosed]
// after the Server was closed or detached, [ErrConnLost] when the server died.
// Wait may be called any number of times and from any goroutine.
func (p *Process) Wait() (*Exit, error) {
	<-p.done
	return p.exit, p.err
}

// Signal sends sig to the child through the server, which is the child's
// parent and so cannot race with the reuse of its pid. It returns
// os.ErrProcessDone if the child has already exited.
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		if p.exit != nil {
			return os.ErrProcessDone
		}
	default:
	}
	return p.signal("signal", sig, false)
}

func (p *Process) signal(op string, sig syscall.Signal, group bool) error {
	if err := checkSignal(sig); err != nil {
		return opError(op, err)
	}
	_, err := p.srv.roundTrip(context.Background(), op, &signalMsg{pid: uint32(p.Pid), sig: uint32(sig), group: group})
	return err
}

func checkSignal(sig syscall.Signal) error {
	if sig < 0 || sig > maxSignal {
		return fmt.Errorf("forkserver: signal %d out of range", int(sig))
	}
	return nil
}

// SignalGroup sends sig to the process group the child leads, which it
// must have been forked with [Attr.Setsid] or [Attr.Setpgid] to do: it reaches
// what the child started in its group. The server refuses once the child
// has exited, since the group id could then be reused.
func (p *Process) SignalGroup(sig syscall.Signal) error {
	return p.signal("signal group", sig, true)
}

func (p *Process) finish(exit *Exit, err error) {
	p.exit, p.err = exit, err
	close(p.done)
}

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
	if cfg.PoolSize < 0 {
		return nil, fmt.Errorf("forkserver: start: negative pool size %d", cfg.PoolSize)
	}
	env = append(withoutRole(env), roleEnv+"=server", poolEnv+"="+strconv.Itoa(cfg.PoolSize))
	s, err := startServer(env)
	if err != nil {
		return nil, opError("start", err)
	}
	return s, nil
}

// withoutRole returns env without the variables this package sets.
func withoutRole(env []string) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		if !strings.HasPrefix(kv, roleEnv+"=") && !strings.HasPrefix(kv, poolEnv+"=") {
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
// binary. ctx bounds the wait for the server's answer: if ctx ends first,
// Fork returns ctx's error and a child created anyway is killed (through
// a connection that holds [RightSignal], as every one does by default).
//
// Waiting for the Process is optional: one that is never waited for leaks
// nothing once the child has exited.
func (s *Server) Fork(ctx context.Context, fn Func, attr *Attr) (*Process, error) {
	if attr == nil {
		attr = new(Attr)
	}
	op := "fork " + fn.name
	if err := checkCall(fn, attr.Arg); err != nil {
		return nil, opError(op, err)
	}
	st, err := attr.settings()
	if err != nil {
		return nil, opError(op, err)
	}
	m := &forkMsg{flags: attr.fdFlags() | st.flag(), nfiles: uint16(len(attr.Files)), name: fn.name, arg: attr.Arg, settings: st}
	if attr.Server {
		m.flags |= flagServer
	}
	return s.launch(ctx, op, m, attr)
}

// Exec asks the server to start the external program at path with argv
// (argv[0] included) and what attr gives it, as os/exec would from the
// program, but from the small server process. Its descriptors 0 to 2 are
// as a Fork's; [Attr.Files] become descriptors 3, 4, and so on; the socket,
// if [Attr.Socket] asks for one, comes after them. The settings of attr apply
// as the kernel creates the process, except Rlimits, which only a Go child
// can apply and which are refused here, as are [Attr.Server] and [Attr.Arg].
// The program's exit, signals and Stop work as for a Fork.
func (s *Server) Exec(ctx context.Context, path string, argv []string, attr *Attr) (*Process, error) {
	if attr == nil {
		attr = new(Attr)
	}
	op := "exec " + path
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
	st, err := attr.settings()
	if err != nil {
		return nil, opError(op, err)
	}
	m := &execMsg{flags: attr.fdFlags() | st.flag(), nfiles: uint16(len(attr.Files)), path: path, argv: argv, settings: st}
	return s.launch(ctx, op, m, attr)
}

// launch sends the Fork or Exec request m with the descriptors attr gives,
// in the order attr.fdFlags says, and returns the new Process.
func (s *Server) launch(ctx context.Context, op string, m message, attr *Attr) (*Process, error) {
	if len(attr.Files) > MaxFiles {
		return nil, opError(op, errTooManyFiles)
	}
	var files []*os.File
	for _, f := range []*os.File{attr.Stdin, attr.Stdout, attr.Stderr} {
		if f != nil {
			files = append(files, f)
		}
	}
	files = append(files, attr.Files...)
	p := &Process{srv: s, done: make(chan struct{})}
	theirs := -1
	if attr.Socket {
		var err error
		if p.conn, theirs, err = socketConnPair(); err != nil {
			return nil, opError(op, err)
		}
		defer closeFds([]int{theirs})
	}
	r, err := s.do(ctx, m, theirs, files, p)
	if err != nil {
		if p.conn != nil {
			p.conn.Close()
		}
		return nil, opError(op, err)
	}
	p.Pid = int(r.value)
	return p, nil
}

// KillAll sends sig to every child created through this connection and,
// transitively, through the connections it handed to children. Through the
// connection Start returns, that is every child of the server.
func (s *Server) KillAll(sig syscall.Signal) error {
	return s.killAll("kill all", sig, false)
}

func (s *Server) killAll(op string, sig syscall.Signal, groups bool) error {
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
	return s.killAll("kill all groups", sig, true)
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
	m := &stopMsg{}
	id, c, err := s.register(m, nil)
	if err == nil {
		if err = s.write(id, m, nil); err != nil {
			s.forget(id)
		}
	}
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
	if err := s.replyErr(r, ok); err != nil {
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
// on a child's Server, the children it created live on. Pending calls and
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
	r, err := s.do(ctx, m, -1, nil, nil)
	if err != nil {
		return nil, opError(op, err)
	}
	return r, nil
}

// do sends m with extra, unless it is -1, and the descriptors of files, and
// waits for the reply. A Fork passes the Process that will get its exit.
func (s *Server) do(ctx context.Context, m message, extra int, files []*os.File, p *Process) (*replyMsg, error) {
	id, c, err := s.register(m, p)
	if err != nil {
		return nil, err
	}
	err = withFds(files, func(fds []int) error {
		if extra >= 0 {
			fds = append([]int{extra}, fds...)
		}
		return s.write(id, m, fds)
	})
	if err != nil {
		s.forget(id)
		return nil, err
	}
	select {
	case r, ok := <-c.reply:
		if err := s.replyErr(r, ok); err != nil {
			s.forget(id)
			return nil, err
		}
		return r, nil
	case <-ctx.Done():
		s.abandon(id, c)
		return nil, ctx.Err()
	}
}

func (s *Server) register(m message, p *Process) (uint32, *call, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, nil, s.err
	}
	for {
		s.nextID++
		if _, used := s.calls[s.nextID]; !used && s.nextID != 0 && s.procs[s.nextID] == nil {
			break
		}
	}
	c := &call{reply: make(chan *replyMsg, 1), fork: p != nil, final: m.kind() == tStop || m.kind() == tDetach}
	s.calls[s.nextID] = c
	if p != nil {
		p.id = s.nextID
		s.procs[s.nextID] = p
	}
	return s.nextID, c, nil
}

func (s *Server) forget(id uint32) {
	s.mu.Lock()
	delete(s.calls, id)
	delete(s.procs, id)
	s.mu.Unlock()
}

// abandon gives up on the call id: its reply is dropped, and a child its
// Fork creates is killed.
func (s *Server) abandon(id uint32, c *call) {
	s.mu.Lock()
	pending := s.calls[id] == c
	c.abandoned = pending
	delete(s.procs, id)
	s.mu.Unlock()
	if !pending { // the reply came as ctx ended, or the connection is gone
		if r, ok := <-c.reply; ok {
			s.dropReply(c, r)
		}
	}
}

func (s *Server) dropReply(c *call, r *replyMsg) {
	if c.fork && r.code == codeOK {
		go s.do(context.Background(), &signalMsg{pid: r.value, sig: uint32(syscall.SIGKILL)}, -1, nil, nil)
	}
}

func (s *Server) write(id uint32, m message, fds []int) error {
	buf := appendFrame(nil, id, m)
	if len(buf)-headerLen > maxBody {
		return fmt.Errorf("forkserver: request of %d bytes exceeds the limit of %d", len(buf)-headerLen, maxBody)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := writeMsg(s.conn, buf, fds); err != nil {
		return s.failure(err)
	}
	return nil
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
func (s *Server) replyErr(r *replyMsg, ok bool) error {
	if !ok {
		return s.failure(nil)
	}
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
		abandoned := c != nil && c.abandoned
		if c != nil && c.final && m.code == codeOK && s.err == nil {
			s.err = ErrClosed // the server exits now: that is no lost connection
		}
		s.mu.Unlock()
		switch {
		case c == nil: // a call given up on, not a Fork
		case abandoned:
			s.dropReply(c, m)
		default:
			c.reply <- m
		}
	case *exitMsg:
		s.mu.Lock()
		p := s.procs[f.id]
		delete(s.procs, f.id)
		s.mu.Unlock()
		if p != nil {
			p.finish(exitFromMsg(m), nil)
		}
	default:
		closeFds(f.fds)
		return fmt.Errorf("%w: unexpected frame type %d from the server", errMalformed, f.msg.kind())
	}
	return nil
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
