//go:build linux || darwin

package forkserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/forkserver/forkserver/internal/wire"
)

// exchange sends m, which carries no descriptors, and waits for its reply.
func (s *Server) exchange(ctx context.Context, m wire.Message) (*wire.Reply, error) {
	c, err := s.post(m)
	if err != nil {
		return nil, err
	}
	select {
	case r, ok := <-c.reply:
		return s.outcome(r, ok)
	case <-ctx.Done():
		s.forget(c.id) // the reply is dropped
		return nil, ctx.Err()
	}
}

// post sends m, which carries no descriptors, as a call awaiting its reply.
func (s *Server) post(m wire.Message) (*call, error) {
	c := &call{reply: make(chan *wire.Reply, 1), final: m.Type() == wire.TypeStop || m.Type() == wire.TypeDetach, eval: m.Type() == wire.TypeEval}
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

// outcome returns the reply r, or the error it stands for; ok false means
// the connection ended first.
func (s *Server) outcome(r *wire.Reply, ok bool) (*wire.Reply, error) {
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
func (s *Server) write(id uint32, m wire.Message, fds []int) error {
	buf := wire.AppendFrame(nil, id, m)
	if len(buf)-wire.HeaderSize > wire.MaxBody {
		return fmt.Errorf("request of %d bytes exceeds the limit of %d", len(buf)-wire.HeaderSize, wire.MaxBody)
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
		if bad := sendErr(err, fds); bad != nil {
			return bad // nothing was sent: the connection is as it was
		}
	}
	if err != nil {
		return s.failure(err)
	}
	return nil
}

// queueNotice queues the notice m, which has no reply, to go before the next
// request: the server learns it before anything that request could make
// depend on it, without a write of its own.
func (s *Server) queueNotice(m wire.Message) {
	s.wmu.Lock()
	s.notices = wire.AppendFrame(s.notices, 0, m)
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
func (s *Server) replyErr(r *wire.Reply) error {
	switch r.Code {
	case wire.CodeOK:
		return nil
	case wire.CodeErrno:
		if op, path, ok := strings.Cut(r.Text, " "); ok {
			return &os.PathError{Op: op, Path: path, Err: syscall.Errno(r.Value)}
		}
		return os.NewSyscallError(r.Text, syscall.Errno(r.Value))
	case wire.CodeUnknownFunc:
		return ErrUnknownFunc // the caller names the function
	case wire.CodePermission:
		return ErrPermission
	case wire.CodeProcessDone:
		return os.ErrProcessDone
	case wire.CodeClosed:
		return ErrClosed
	case wire.CodeChildLimit:
		return ErrChildLimit
	}
	return errors.New(r.Text)
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
	s.wakeWarmWaiters()
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
		waitExited(s.reap) // a zombie, its pid not reused, until s.exited is set
		s.mu.Lock()
		s.exited = true
		s.server.Release()
		s.mu.Unlock()
		waitPid(s.reap) // on Linux the keeper, which exits once every process the server left is gone
	}
	close(s.done)
}

func (s *Server) dispatch(f frame) error {
	switch m := f.msg.(type) {
	case *wire.Reply:
		s.mu.Lock()
		c := s.calls[f.id]
		delete(s.calls, f.id)
		if c != nil && c.final && m.Code == wire.CodeOK && s.err == nil {
			s.err = ErrClosed // the server exits now: that is no lost connection
		}
		if c != nil && c.eval {
			s.dropWarm() // they predate what Eval changed; new ones follow
		}
		s.mu.Unlock()
		if c != nil { // else a call given up on
			c.reply <- m
		}
	case *wire.Exit:
		s.mu.Lock()
		p := s.procs[f.id]
		delete(s.procs, f.id)
		if i := slices.IndexFunc(s.warm, func(w warmChild) bool { return w.id == f.id }); i >= 0 {
			s.warm[i].close()
			s.warm = slices.Delete(s.warm, i, i+1)
		}
		s.mu.Unlock()
		if p != nil {
			p.finish(exitFromMsg(m), nil)
		}
	case *wire.Warm:
		// Sandbox is at most wire.MaxSandboxes; a kind s does not know,
		// which a server it did not start could send, no Fork takes.
		w := warmChild{id: f.id, pid: int(m.Pid), kind: int(m.Sandbox), ctl: f.fds[0], exit: f.fds[1]}
		s.mu.Lock()
		ahead := s.wantSocket
		s.mu.Unlock()
		if ahead {
			w.conn = sendSocketAhead(w.ctl) // before a Fork can take the child
		}
		s.mu.Lock()
		s.warm = append(s.warm, w)
		s.warmGotten++
		s.wakeWarmWaiters()
		s.mu.Unlock()
	default:
		closeFds(f.fds)
		return fmt.Errorf("%w: unexpected frame type %d from the server", wire.ErrMalformed, f.msg.Type())
	}
	return nil
}

// close closes what the requester holds of the warm child w, which then
// exits.
func (w *warmChild) close() {
	closeFds([]int{w.ctl, w.exit})
	if w.conn != nil {
		w.conn.Close()
	}
}

// dropWarm closes the warm children s holds, which exit. s.mu must be held.
func (s *Server) dropWarm() {
	for i := range s.warm {
		s.warm[i].close()
	}
	s.warm = nil
}

// startServer executes this binary with env, in the role env gives, the
// keeper's on Linux, which executes it again as the server (see runKeeper),
// with the program's standard descriptors and its end of their connection
// as descriptor 3, and waits for the server's hello.
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
		if h, ok := f.msg.(*wire.Hello); !ok || h.Pid == 0 || serverRole == "server" && int(h.Pid) != pid {
			closeFds(f.fds)
			err = fmt.Errorf("%w: the server's first frame is not its hello", wire.ErrMalformed)
		}
	}
	if err != nil {
		conn.Close()
		status := waitPid(pid)
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("the server exited before it was ready (%s)", (&Exit{Status: status}).String())
		}
		return nil, err
	}
	return newServer(int(f.msg.(*wire.Hello).Pid), conn, pid), nil
}

// waitPid waits for the process pid, a child of this one, to end.
func waitPid(pid int) syscall.WaitStatus {
	var ws syscall.WaitStatus
	wait4(pid, &ws, 0, nil)
	return ws
}
