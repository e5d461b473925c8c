//go:build linux || darwin

package forkserver

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/forkserver/forkserver/internal/wire"
)

// client is one connection to the server: the program's, or one handed to a
// child with Attr.Server.
type client struct {
	sv     *supervisor
	conn   *net.UnixConn
	parent *client // the connection through which this one was handed out
	rights Rights
	// base and std, for a connection handed to a child, are what that
	// child runs with: every child forked through the connection is
	// confined to base, and gets std (-1: the server's own) unless it is
	// given other standard descriptors.
	base     *wire.Settings
	std      [3]int
	rulesets []int // the Landlock rulesets that child entered, which those forked through cl enter too

	// limit bounds the children alive through cl and the connections
	// handed out through it, at any depth, which alive counts; 0: no bound
	// of its own. It is set before cl serves. ended is set once cl's
	// connection ends, when every child forked through it is killed. alive
	// and ended are guarded by sv.mu.
	limit int
	alive int
	ended bool

	// refusals is what paceAfter has left of its burst, as of lastRefusal;
	// the serve goroutine alone uses them.
	refusals    float64
	lastRefusal time.Time

	mu       sync.Mutex
	cond     sync.Cond // signalled as the queue drains
	out      []chunk   // frames waiting to be written
	queued   int       // bytes in out
	flushing bool      // a goroutine is writing out
	broken   bool      // writing failed or the connection closed; out is dropped
}

// chunk is frames waiting to be written, with descriptors, which the
// client owns, to travel with the first of them.
type chunk struct {
	b   []byte
	fds []int
}

func (sv *supervisor) newClient(conn *net.UnixConn, parent *client, rights Rights) *client {
	cl := &client{sv: sv, conn: conn, parent: parent, rights: rights, std: [3]int{-1, -1, -1}}
	cl.cond.L = &cl.mu
	return cl
}

// release closes the connection and the descriptors cl holds.
func (cl *client) release() {
	cl.conn.Close()
	closeFds(cl.std[:])
	closeFds(cl.rulesets)
}

// serve reads and handles requests until the connection ends or breaks
// the protocol.
func (cl *client) serve() {
	r := newFrameReader(cl.conn)
	for {
		f, err := r.read()
		if err == errFdsLost { // the server ran out of descriptors: refuse this request alone
			cl.reply(f.id, err)
			continue
		}
		if err != nil || !cl.handle(f) {
			break
		}
		cl.throttle()
	}
	cl.mu.Lock()
	cl.drop()
	cl.mu.Unlock()
	cl.release()
	if cl != cl.sv.program { // the program's end ends the server: see programGone
		cl.sv.orphan(cl)
	}
}

// cut reports whether cl's connection, or one it was handed out through,
// has ended. sv.mu must be held.
func (cl *client) cut() bool {
	for c := cl; c != nil; c = c.parent {
		if c.ended {
			return true
		}
	}
	return false
}

// reserve counts a child about to be created through cl toward the bound
// of cl and of every connection it was handed out through. It fails with
// ErrChildLimit if that would exceed one of them, and with ErrClosed if one
// of them has ended. sv.mu must be held.
func (cl *client) reserve() error {
	if cl.cut() {
		return ErrClosed
	}
	for c := cl; c != nil; c = c.parent {
		if c.limit > 0 && c.alive >= c.limit {
			return ErrChildLimit
		}
	}
	for c := cl; c != nil; c = c.parent {
		c.alive++
	}
	return nil
}

// unreserve uncounts a child of cl that reserve counted, once it is gone
// or was not created. sv.mu must be held.
func (cl *client) unreserve() {
	for c := cl; c != nil; c = c.parent {
		c.alive--
	}
}

// paceAfter paces cl after a request that err answered: a connection
// handed to a child whose requests its bounds refuse is read from again at
// refusalRate at most, after a burst of refusalBurst. Each refusal is still
// answered at once; a child that forks in a loop at its bound then sleeps
// in its Forks instead of taking the processors from every other process.
func (cl *client) paceAfter(err error) {
	if !errors.Is(err, ErrChildLimit) || cl == cl.sv.program {
		return
	}
	now := time.Now()
	cl.refusals = min(refusalBurst, cl.refusals+now.Sub(cl.lastRefusal).Seconds()*refusalRate) - 1
	cl.lastRefusal = now
	if cl.refusals < 0 {
		time.Sleep(time.Duration(-cl.refusals / refusalRate * float64(time.Second)))
	}
}

// defaultLimit is the bound of a connection handed to a child whose
// requester asked for none (Attr.ServerMaxChildren zero): with no bound,
// one child forked 400 children in 1.5 s and made the program's Fork+Wait
// ten times slower.
const defaultLimit = 64

// bound returns the tightest bound on the children alive through cl; 0 if
// there is none.
func (cl *client) bound() int {
	b := 0
	for c := cl; c != nil; c = c.parent {
		if c.limit > 0 && (b == 0 || c.limit < b) {
			b = c.limit
		}
	}
	return b
}

// needs is the right each request needs. A frame of a type not listed is
// not a request.
var needs = map[wire.Type]Rights{
	wire.TypeFork:         RightFork,
	wire.TypeExec:         RightFork,
	wire.TypeSignal:       RightSignal,
	wire.TypeSignalGroup:  RightSignal,
	wire.TypeKillAll:      RightSignal,
	wire.TypeKillAllGroup: RightSignal,
	wire.TypeTaken:        RightFork,
	wire.TypeEval:         RightEval,
	wire.TypeStop:         RightStop,
	wire.TypeDetach:       RightStop,
}

// handle handles one request. It reports false, having closed the frame's
// descriptors, if the frame is not a request.
func (cl *client) handle(f frame) bool {
	need, ok := needs[f.msg.Type()]
	if !ok {
		closeFds(f.fds)
		return false
	}
	if cl.rights&need == 0 {
		closeFds(f.fds)
		cl.reply(f.id, ErrPermission)
		return true
	}
	sv := cl.sv
	switch m := f.msg.(type) {
	case *wire.Fork:
		cl.paceAfter(sv.handleLaunch(cl, f.id, m.Flags, f.fds, func(l *launch) error { return sv.fork(l, m) }))
	case *wire.Exec:
		cl.paceAfter(sv.handleLaunch(cl, f.id, m.Flags, f.fds, func(l *launch) error { return sv.exec(l, m) }))
	case *wire.Taken:
		sv.taken(cl, m)
	case *wire.Signal:
		cl.reply(f.id, sv.signal(cl, int(m.Pid), syscall.Signal(m.Sig), m.Group))
	case *wire.KillAll:
		sv.mu.Lock()
		scope := cl
		if sv.stopping && cl.rights&RightStop != 0 {
			scope = nil // Stop's last resort reaches every child, as Stop does
		}
		sv.signalAll(scope, syscall.Signal(m.Sig), m.Groups)
		sv.mu.Unlock()
		cl.reply(f.id, nil)
	case *wire.Eval:
		go func() {
			err := eval(m)
			sv.mu.Lock()
			sv.drainPool() // pooled children predate what fn changed
			sv.mu.Unlock()
			cl.reply(f.id, err) // before any warm child that replaces them
			sv.refill()
		}()
	case *wire.Stop:
		go sv.stop(cl, f.id)
	case *wire.Detach:
		sv.mu.Lock()
		sv.stopping = true
		sv.mu.Unlock()
		cl.exitAfter(f.id, exitDetached)
	}
	return true
}

// within reports whether cl is scope or was handed out, transitively,
// through scope.
func (cl *client) within(scope *client) bool {
	for ; cl != nil; cl = cl.parent {
		if cl == scope {
			return true
		}
	}
	return false
}

// exitDetached is the server's exit code after a Detach: it tells the
// keeper to leave the children be.
const exitDetached = 3

// exitAfter answers the request id, waits until every queued frame, the
// exit events before it included, is written, and exits the server with
// code.
func (cl *client) exitAfter(id uint32, code int) {
	cl.reply(id, nil)
	cl.mu.Lock()
	for (cl.flushing || len(cl.out) > 0) && !cl.broken {
		cl.cond.Wait()
	}
	cl.mu.Unlock()
	os.Exit(code)
}

// reply answers the request id with err, nil meaning success.
func (cl *client) reply(id uint32, err error) {
	cl.send(id, replyFor(err))
}

func replyFor(err error) *wire.Reply {
	var se *os.SyscallError
	var pe *os.PathError
	var errno syscall.Errno
	switch {
	case err == nil:
		return &wire.Reply{}
	case errors.Is(err, ErrUnknownFunc):
		return &wire.Reply{Code: wire.CodeUnknownFunc}
	case errors.Is(err, ErrPermission):
		return &wire.Reply{Code: wire.CodePermission}
	case errors.Is(err, os.ErrProcessDone):
		return &wire.Reply{Code: wire.CodeProcessDone}
	case errors.Is(err, ErrClosed):
		return &wire.Reply{Code: wire.CodeClosed}
	case errors.Is(err, ErrChildLimit):
		return &wire.Reply{Code: wire.CodeChildLimit}
	case errors.As(err, &se) && errors.As(err, &errno):
		return &wire.Reply{Code: wire.CodeErrno, Value: uint32(errno), Text: truncate(se.Syscall)}
	case errors.As(err, &pe) && errors.As(err, &errno):
		return &wire.Reply{Code: wire.CodeErrno, Value: uint32(errno), Text: truncate(pe.Op + " " + pe.Path)}
	}
	return &wire.Reply{Code: wire.CodeFailed, Text: truncate(err.Error())}
}

func truncate(s string) string {
	if len(s) > wire.MaxText {
		return s[:wire.MaxText]
	}
	return s
}

// send queues a frame for cl and makes sure a goroutine is writing the
// queue out. It never blocks, so the reaper and the handlers may call it
// with sv.mu held.
func (cl *client) send(id uint32, m wire.Message) { cl.sendFds(id, m, nil) }

// sendFds is send with descriptors, which it takes ownership of, to travel
// with the frame.
func (cl *client) sendFds(id uint32, m wire.Message, fds []int) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.broken {
		closeFds(fds)
		return
	}
	n := len(cl.out)
	if fds != nil || n == 0 {
		cl.out = append(cl.out, chunk{fds: fds})
		n++
	}
	size := len(cl.out[n-1].b)
	cl.out[n-1].b = wire.AppendFrame(cl.out[n-1].b, id, m)
	cl.queued += len(cl.out[n-1].b) - size
	if !cl.flushing {
		cl.flushing = true
		go cl.flush()
	}
}

func (cl *client) flush() {
	cl.mu.Lock()
	for len(cl.out) > 0 && !cl.broken {
		c := cl.out[0]
		cl.out = cl.out[1:]
		cl.mu.Unlock()
		err := writeMsg(cl.conn, c.b, c.fds)
		closeFds(c.fds)
		cl.mu.Lock()
		cl.queued -= len(c.b)
		if err != nil {
			cl.drop()
			cl.conn.Close()
		}
		cl.cond.Broadcast()
	}
	cl.flushing = false
	cl.cond.Broadcast()
	cl.mu.Unlock()
}

// drop marks cl broken and drops what is queued for it. cl.mu must be held.
func (cl *client) drop() {
	cl.broken = true
	for _, c := range cl.out {
		closeFds(c.fds)
	}
	cl.out, cl.queued = nil, 0
}

// exited tells cl of the exit of its child id, on the child's exit pipe
// exit, which it closes, if there is one, and on the connection.
func (cl *client) exited(id uint32, exit int, m *wire.Exit) {
	if exit >= 0 {
		notifyPipe(exit, id, m)
		syscall.Close(exit)
	}
	cl.send(id, m)
}

// throttle waits while too much is queued for cl.
func (cl *client) throttle() {
	cl.mu.Lock()
	if cl.queued > highWater && !cl.broken {
		cl.sv.throttles.Add(1)
	}
	for cl.queued > highWater && !cl.broken {
		cl.cond.Wait()
	}
	cl.mu.Unlock()
}
