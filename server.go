package forkserver

import (
	"net"
	"os"
	"sync"

	"github.com/forkserver/forkserver/internal/wire"
)

// Server is a connection to a fork server: the one Start returns, or the
// one a child receives as [Child.Server]. Its methods are safe for concurrent
// use. Every Server must end with Close, Stop or Detach.
type Server struct {
	pid    int
	root   bool        // started by Start: this process reaps the server
	reap   int         // if root, the process it reaps: the keeper on Linux, else the server
	server *os.Process // if root, the server, for killServer; nil on a child's Server
	path   string      // PATH in the environment the server started with, if root
	conn   *net.UnixConn
	wmu    sync.Mutex // one frame at a time on conn

	notices []byte // frames with no reply, to go before the next request; under wmu

	mu     sync.Mutex
	nextID uint32
	calls  map[uint32]*call    // requests waiting for their reply
	procs  map[uint32]*Process // children waiting for their exit, by Fork request id
	err    error               // why the Server no longer works; nil while it does
	done   chan struct{}       // closed when the reader has finished and the server is reaped
	exited bool                // the process s.reap has exited: a kill by pid could hit a reused one
	warm   []warmChild         // handed over by the server, for Fork to assign

	poolSize   int             // Config.PoolSize, for the Server Start returned
	sandboxes  []wire.Settings // the shapes of Config.Sandboxes, in order
	sizes      []int           // PoolSize, then each sandbox's Size: the warm children of each kind
	warmed     chan struct{}   // closed when warm grows or s.err is set; nil if nobody waits
	stats      Stats           // the counts; its other fields are filled in by Stats
	warmGotten uint64          // warm children handed over so far
	wantSocket bool            // the last warm Fork asked for a socket: send warm children theirs ahead
}

// Stats are counts about a Server, for sizing [Config.PoolSize] and the
// Size of each of [Config.Sandboxes]. The counts of warm children, Warm,
// WarmForks, PoolMisses and Refills, cover every kind at once: the plain
// pool's and every declared sandbox's.
type Stats struct {
	// PoolSize is the Config.PoolSize the Server was started with; zero
	// on a child's Server, which is handed no warm children.
	PoolSize int

	// Warm is how many warm children the Server holds now, ready for a
	// Fork: those of the plain pool and of every declared sandbox.
	Warm int

	// Alive is how many children forked or executed through the Server
	// have not had their exit learned by the connection's reader, which
	// may learn it a moment after Wait does.
	Alive int

	// WarmForks counts the Forks a warm child took, of the plain pool or
	// of a declared sandbox.
	WarmForks uint64

	// ColdForks counts the Forks the server created, Execs left out.
	ColdForks uint64

	// PoolMisses counts the Forks, among ColdForks, that a warm child
	// could have taken had the Server held one. If it grows, a larger
	// PoolSize, or Size of the sandbox they asked for, would have served
	// them warm.
	PoolMisses uint64

	// Refills counts the warm children handed to the Server beyond the
	// first PoolSize and sandbox Sizes: those that replaced children a Fork took, that
	// died, or that an Eval discarded.
	Refills uint64
}

// Pid returns the process id of the fork server.
func (s *Server) Pid() int { return s.pid }

type call struct {
	id    uint32
	reply chan *wire.Reply // gets the reply, or is closed when the connection ends
	final bool             // a Stop or Detach: once it succeeds, the server exits
	eval  bool             // an Eval: the warm children held before it are stale
}

// warmChild is a child the server handed over: executed, waiting for the
// assignment that its control socket carries.
type warmChild struct {
	id        uint32 // the server's id for it, which its exit event carries
	pid       int
	kind      int           // 0: the plain pool; i: the i-th of Config.Sandboxes, from 1
	ctl, exit int           // its control socket and the read end of its exit pipe
	conn      *net.UnixConn // the requester's end of the socket sent to it ahead, or nil
}
