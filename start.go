//go:build linux || darwin

package forkserver

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/forkserver/forkserver/internal/wire"
)

// startChild sends the Fork or Exec request rq to the server, asking for an
// exit pipe, and returns the new Process once the reply has come on that
// pipe.
func (s *Server) startChild(ctx context.Context, rq *request) (*Process, error) {
	r, w, err := pipe()
	if err != nil {
		return nil, err
	}
	// The child's exit may reach the connection's reader before the reply
	// is read from the pipe: the pipe stays open for the reply until then.
	p := &Process{srv: s, name: rq.name(), done: make(chan struct{}), exitFd: r, launching: true}
	// The server answers on the pipe, or on the connection if it could
	// not receive the pipe.
	c := &call{reply: make(chan *wire.Reply, 1)}
	fds := []int{w}
	if rq.flags&wire.FlagSocket != 0 {
		var theirs int
		if p.conn, theirs, err = socketConnPair(); err == nil {
			fds = []int{theirs, w}
		}
	}
	if err == nil {
		p.id, err = s.newID(func(id uint32) {
			s.procs[id] = p
			s.calls[id] = c
		})
	}
	if err == nil {
		err = withFds(rq.files, func(files []int) error { return s.write(p.id, rq.message(), append(fds, files...)) })
	}
	closeFds(fds)
	if err == nil {
		p.Pid, err = s.awaitLaunch(ctx, p, c)
	}
	if ctx.Err() == nil || err != ctx.Err() { // else awaitLaunch abandoned it
		if err != nil {
			s.forget(p.id)
			p.finish(nil, err)
		}
		p.launched()
	}
	if err != nil {
		if p.conn != nil {
			p.conn.Close()
		}
		return nil, err
	}
	return p, nil
}

// awaitLaunch waits for the reply to p's launch, c, and returns the
// child's pid. If ctx ends first, a child created all the same is killed
// once the reply comes.
func (s *Server) awaitLaunch(ctx context.Context, p *Process, c *call) (int, error) {
	f, ok, err := p.readPipe(ctx) // nobody else reads it yet
	if !ok {
		// p has ended and its pipe is closed: the connection ended while
		// the launch was abandoned.
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.err != nil {
			return 0, p.err
		}
		return 0, ErrClosed
	}
	switch {
	case err == nil:
		r, ok := f.msg.(*wire.Reply)
		if !ok {
			return 0, fmt.Errorf("%w: type %d where a reply belongs", wire.ErrMalformed, f.msg.Type())
		}
		s.mu.Lock()
		delete(s.calls, p.id)
		s.mu.Unlock()
		if err := s.replyErr(r); err != nil {
			return 0, err
		}
		return int(r.Value), nil
	case err == io.EOF: // the server did not get the pipe, or died
		select {
		case r, ok := <-c.reply:
			if _, err := s.outcome(r, ok); err != nil {
				return 0, err
			}
			return 0, fmt.Errorf("%w: a reply without its pipe", wire.ErrMalformed)
		case <-ctx.Done():
			return 0, fmt.Errorf("%w", ctx.Err()) // nothing to abandon: no child was created
		}
	case err == ctx.Err():
		go func() { // abandoned: the reply still comes
			if pid, err := s.awaitLaunch(context.Background(), p, c); err == nil {
				s.exchange(context.Background(), &wire.Signal{Pid: uint32(pid), Sig: uint32(syscall.SIGKILL)})
			}
			s.forget(p.id)
			p.finish(nil, ctx.Err())
			p.launched()
		}()
		return 0, err
	}
	return 0, s.failure(err) // the server broke the protocol
}

// forkWarm assigns the Fork request rq to a warm child the server handed
// over, of the plain pool or of the declared sandbox rq's settings ask for,
// writing the assignment to the child itself, and returns nil if it holds
// none that can take rq: the request then goes to the server.
func (s *Server) forkWarm(rq *request) (*Process, error) {
	st := &rq.settings
	kind := s.warmKind(rq)
	if kind < 0 {
		return nil, nil
	}
	s.mu.Lock()
	held := slices.ContainsFunc(s.warm, func(w warmChild) bool { return w.kind == kind })
	s.mu.Unlock()
	if !held {
		return nil, nil
	}
	if err := admissible(st, false); err != nil {
		return nil, err
	}
	// A child of a declared sandbox is in it already: it applies only
	// what is per call.
	assigned := *st
	if kind > 0 {
		assigned = perCall(st)
	}
	a := rq.assignment(s.pid, assigned)
	frame := wire.AppendFrame(nil, 0, a)
	if len(frame)-wire.HeaderSize > wire.MaxBody {
		return nil, nil // the server says why
	}
	for {
		p, w := s.takeWarm(kind)
		if p == nil {
			return nil, nil
		}
		p.name = rq.name()
		err := p.assign(&w, a, frame, rq)
		syscall.Close(w.ctl)
		if err == nil {
			// The child tells the server it runs; the program tells it the
			// child is its own, in scope of KillAll and SignalGroup, before
			// its next request.
			s.queueNotice(&wire.Taken{Pid: uint32(p.Pid), Group: st.Set&(wire.SetSetsid|wire.SetSetpgid) != 0})
			s.mu.Lock()
			s.stats.WarmForks++
			s.mu.Unlock()
			return p, nil
		}
		// The child died before it could be assigned, or a file was
		// closed under the call: its exit is nobody's.
		s.forget(p.id)
		p.finish(nil, err)
		if bad := sendErr(err, []int{w.ctl}); bad != nil {
			return nil, bad // the next warm child would fare no better
		}
	}
}

// warmKind returns the kind of warm child that may take the Fork request
// rq: the declared sandbox whose shape equals rq's, from 1, else 0, the plain
// pool, if rq asks for nothing a plain child cannot apply itself; -1 if none,
// because the server must create the child, or judge a path as it sees it.
func (s *Server) warmKind(rq *request) int {
	st := &rq.settings
	s.mu.Lock()
	sizes, sandboxes := s.sizes, s.sandboxes
	s.mu.Unlock()
	if len(sizes) == 0 || rq.flags&wire.FlagServer != 0 || st.Dir != "" && !filepath.IsAbs(st.Dir) {
		return -1
	}
	if st.Set&shapeSet != 0 || st.Chroot != "" || st.Namespaces != 0 || len(st.PathLayers) > 0 {
		sh := shape(st)
		for i := range sandboxes {
			if serves(&sandboxes[i], &sh) {
				return i + 1
			}
		}
	}
	// A plain warm child sets no_new_privs and installs its filter on
	// every thread itself, but holds the capabilities of the server, which
	// are this program's, and a filter does not take them (see confined).
	if st.Namespaces == 0 && len(st.PathLayers) == 0 && (!confined(st) || !privileged()) {
		return 0
	}
	return -1
}

// warmFull reports whether s holds as many warm children of every kind as
// it is to be handed. s.mu must be held.
func (s *Server) warmFull() bool {
	held := make([]int, wire.MaxSandboxes+1)
	for _, w := range s.warm {
		held[w.kind]++
	}
	for k, n := range s.sizes {
		if held[k] < n {
			return false
		}
	}
	return true
}

// takeWarm takes a warm child of kind from those s holds and returns it as
// a Process, with what s held of it, or nil if s holds none.
func (s *Server) takeWarm(kind int) (*Process, warmChild) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The last handed over of its kind, as a stack: taking the oldest
	// instead made a pooled Fork+Wait about 8% slower, measured.
	i := len(s.warm) - 1
	for ; i >= 0 && s.warm[i].kind != kind; i-- {
	}
	if s.err != nil || i < 0 {
		return nil, warmChild{}
	}
	w := s.warm[i]
	s.warm = slices.Delete(s.warm, i, i+1)
	p := &Process{Pid: w.pid, srv: s, id: w.id, done: make(chan struct{}), exitFd: w.exit}
	s.procs[w.id] = p
	return p, w
}

// assign writes the assignment a, whose frame is frame, to the warm child
// p on w's control socket, with the descriptors the request rq sends. The
// socket rq asks for is the one sent to the child ahead, if w has one: the
// assignment then says so rather than carrying it. A socket sent ahead
// that rq does not ask for is closed, and the child closes its end. The
// warm children handed over next get a socket ahead if rq asks for one.
func (p *Process) assign(w *warmChild, a *wire.Assign, frame []byte, rq *request) error {
	socket := rq.flags&wire.FlagSocket != 0
	p.srv.mu.Lock()
	p.srv.wantSocket = socket
	p.srv.mu.Unlock()
	var fds []int
	if socket {
		if w.conn != nil {
			p.conn, w.conn = w.conn, nil
			ahead := *a
			ahead.Flags = a.Flags&^wire.FlagSocket | wire.FlagSocketAhead
			frame = wire.AppendFrame(nil, 0, &ahead)
		} else {
			conn, theirs, err := socketConnPair()
			if err != nil {
				return err
			}
			p.conn = conn
			defer closeFds([]int{theirs})
			fds = []int{theirs}
		}
	}
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
	err := withFds(rq.files, func(files []int) error { return sendMsgFd(w.ctl, frame, append(fds, files...)) })
	if err != nil && p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
	return err
}

// sendSocketAhead sends the warm child on the control socket ctl its end
// of a new socket pair, which it makes a connection of while it waits, and
// returns the requester's end as a connection: a Fork that asks for a
// socket then sends no descriptor, and its child makes no connection once
// assigned (about 30 µs less until the child runs, measured). It returns
// nil if that fails, and the child's socket then goes with its assignment.
func sendSocketAhead(ctl int) *net.UnixConn {
	conn, theirs, err := socketConnPair()
	if err != nil {
		return nil
	}
	defer syscall.Close(theirs)
	if sendMsgFd(ctl, wire.AppendFrame(nil, 0, &wire.Socket{}), []int{theirs}) != nil {
		conn.Close()
		return nil
	}
	return conn
}

// message returns the request rq as the server takes it, asking for an exit
// pipe.
func (rq *request) message() wire.Message {
	if rq.exec {
		return &wire.Exec{Flags: rq.flags | wire.FlagExit, NumFiles: rq.numFiles, Path: rq.path, Argv: rq.argv, Settings: rq.settings}
	}
	return &wire.Fork{Flags: rq.flags | wire.FlagExit, NumFiles: rq.numFiles, Name: rq.fn.name, Arg: rq.arg, Settings: rq.settings}
}

// assignment returns the Fork request rq as a warm child of the server
// serverPid takes it, applying the settings st.
func (rq *request) assignment(serverPid int, st wire.Settings) *wire.Assign {
	return &wire.Assign{Flags: rq.flags&^wire.FlagSettings | st.Flag(), NumFiles: rq.numFiles, ServerPid: uint32(serverPid), Name: rq.fn.name, Arg: rq.arg, Settings: st}
}
