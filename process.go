package forkserver

import (
	"net"
	"sync"
	"time"
)

// Process is a child created by [Server.Fork] or [Server.Exec]. Its
// methods are safe for concurrent use. A Process made otherwise, such as
// &Process{Pid: pid}, names no child of a server: its Signal, Kill,
// SignalGroup and Wait return an error, its Done channel is closed and its
// Conn is nil.
type Process struct {
	// Pid is the child's process id. The server is the child's parent and
	// reaps it; use Signal rather than syscall.Kill, which could hit a
	// reused pid.
	Pid int

	srv  *Server
	name string // the function's name, or the program's path
	id   uint32 // the id its exit event carries: its Fork's, or the server's for a warm child
	conn *net.UnixConn
	done chan struct{}

	stdio *stdio // the copying for standard streams that are not files, or nil

	mu        sync.Mutex
	exitFd    int  // the read end of its exit pipe; -1 once closed
	reading   bool // a goroutine is blocked reading exitFd, which it closes
	launching bool // the launch's reply is still to come on exitFd, which stays open until it is read
	exit      *Exit
	err       error
	stopWatch func() bool // stops watching the Fork's ctx
	cancelErr error       // the Fork's ctx ended first, and the child was sent Attr.Cancel
	killTimer *time.Timer // sends SIGKILL once Attr.WaitDelay has passed
}

// Done returns a channel that is closed when Wait would no longer block.
// The connection's reader closes it, woken through the runtime's network
// poller: in a program whose processors are busy that can be a scheduling
// round after the exit, which Wait learns at once.
// A Process not returned by Fork or Exec has its channel closed, as Wait
// returns at once for it.
func (p *Process) Done() <-chan struct{} {
	switch {
	case p.done == nil:
		return closedChan
	case p.stdio != nil:
		return p.stdio.done
	}
	return p.done
}

var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// Conn returns the requester's end of the socket asked for with [Attr.Socket],
// or nil. The caller owns it and closes it.
func (p *Process) Conn() *net.UnixConn { return p.conn }
