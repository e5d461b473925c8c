// Package forkserver lets a Go program create child processes that run Go
// functions, safely and cheaply, through a fork server.
//
// A Go program is always multithreaded, so fork(2) without exec is never
// safe in it: the child inherits a runtime whose other threads are gone. A
// fork server is a small helper process, running the same binary, that
// creates every child on the program's behalf. Each child is a fresh
// execution of the binary that runs one function registered by name, so no
// child ever continues Go code after a fork, and none shares memory with the
// program: secrets in the program's heap never reach a child.
//
// A program calls Main first thing in main (and in TestMain), registers its
// child functions with Register at package level, and starts a server:
//
//	var work = forkserver.Register("work", func(ctx context.Context, c *forkserver.Child) error {
//		_, err := c.Conn().Write(c.Arg())
//		return err
//	})
//
//	func main() {
//		forkserver.Main()
//		srv, err := forkserver.Start(nil)
//		...
//		p, err := srv.Fork(ctx, work, &forkserver.Attr{Socket: true, Arg: []byte("hi")})
//		...
//		exit, err := p.Wait()
//	}
//
// The server is the parent of every child. It reaps them, tells the
// requester each exit status with its resource usage, delivers signals to
// them without a pid-reuse race, and follows the program's lifetime: when
// the program's connection closes, whether by Close or because the program
// died, the server kills every child and exits.
package forkserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// Errors returned by this package, to be matched with errors.Is.
var (
	// ErrClosed: the Server was closed, stopped or detached, or the
	// server is stopping and takes no new children.
	ErrClosed = errors.New("forkserver: server closed")

	// ErrConnLost: the connection to the server broke, most often because
	// the server process died.
	ErrConnLost = errors.New("forkserver: connection to the server lost")

	// ErrUnknownFunc: no function is registered under the name given.
	ErrUnknownFunc = errors.New("forkserver: unknown function")

	// ErrArgTooLarge: an argument is longer than MaxArg.
	ErrArgTooLarge = errors.New("forkserver: argument too large")

	// ErrPermission: the connection lacks the right for the operation, or
	// the process named is outside its scope.
	ErrPermission = errors.New("forkserver: operation not permitted on this connection")

	// ErrNoMain: Start was called in a process where Main has not run.
	ErrNoMain = errors.New("forkserver: Main was not called at the start of main")

	errTooManyFiles = fmt.Errorf("forkserver: more than %d files", MaxFiles)
)

// roleEnv tells a process started by this package which role it plays;
// poolEnv tells a server the size of its pool.
const (
	roleEnv = "FORKSERVER_ROLE"
	poolEnv = "FORKSERVER_POOL"
)

var (
	mainCalled atomic.Bool
	registryMu sync.Mutex
	registry   = map[string]func(context.Context, *Child) error{}
)

// Main dispatches on the role of this process. It must be the first
// statement of main, and of TestMain in tests that start servers. In the
// program itself it returns at once. In a fork server, or in a child, it
// runs that role and exits the process: it never returns.
func Main() {
	if mainCalled.Swap(true) {
		return
	}
	role, ok := os.LookupEnv(roleEnv)
	if !ok {
		return
	}
	os.Unsetenv(roleEnv)
	runRole(role) // does not return
}

// Func is a function registered with Register. Its zero value names no
// function.
type Func struct{ name string }

// Name returns the name f was registered under.
func (f Func) Name() string { return f.name }

// Register makes fn available to children under name and returns the Func
// that Fork and Eval take. It must run during package initialisation, in a
// package-level variable declaration or an init function, so that the
// server and every child, which are fresh executions of the binary, register
// the same functions. It panics if name is empty, longer than MaxName, or
// already registered, or if Main has already run.
func Register(name string, fn func(ctx context.Context, c *Child) error) Func {
	if name == "" || len(name) > MaxName {
		panic(fmt.Sprintf("forkserver: Register: name must be 1 to %d bytes, got %d", MaxName, len(name)))
	}
	if fn == nil {
		panic("forkserver: Register " + name + ": nil function")
	}
	if mainCalled.Load() {
		panic("forkserver: Register " + name + " after Main: register functions during package initialisation")
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("forkserver: Register: duplicate name " + name)
	}
	registry[name] = fn
	return Func{name: name}
}

func lookup(name string) func(context.Context, *Child) error {
	registryMu.Lock()
	defer registryMu.Unlock()
	return registry[name]
}

// Config configures a fork server. The zero value, or a nil *Config, means
// the defaults.
type Config struct {
	// Env is the server's environment, which children inherit. Nil means
	// the program's environment at Start.
	Env []string

	// PoolSize is how many children the server keeps executed and waiting
	// for a Fork, so that Fork costs a message to a running process rather
	// than an exec and the Go runtime's start. Zero means no pool. The
	// server refills the pool in the background after each Fork; a burst
	// larger than the pool starts the rest cold. A pooled child behaves as a
	// cold one in every way the requester can see, except that it started
	// earlier: it sees the server's environment as it was then. Eval
	// replaces every waiting child, so that children forked after it see
	// what it changed.
	PoolSize int
}

// Attr says what a child gets. The zero value, or a nil *Attr, gives a child
// nothing but the server's standard input, output and error.
type Attr struct {
	// Arg is handed to the child as Child.Arg. At most MaxArg bytes.
	Arg []byte

	// Socket asks for a connected socket pair: one end is Process.Conn in
	// the requester, the other Child.Conn in the child.
	Socket bool

	// Files are passed to the child, which finds them in Child.Files in
	// the same order. At most MaxFiles. The caller keeps ownership: Fork
	// does not close them.
	Files []*os.File

	// Stdin, Stdout and Stderr become the child's descriptors 0, 1 and 2.
	// Nil means the server's own, which are the program's at Start.
	Stdin, Stdout, Stderr *os.File

	// Server gives the child its own connection to the server, as
	// Child.Server, with the rights in ServerRights.
	Server bool

	// ServerRights are the rights of the connection Server gives: zero
	// means RightFork|RightSignal. They may not exceed the rights of the
	// connection Fork is called on. Children forked through that
	// connection are confined as this child is: they run with its
	// Credential, Chroot, Namespaces, NoNewPrivs, environment (if Env was
	// set) and, at most, its Rlimits, and by default with its standard
	// descriptors; asking for more is refused with ErrPermission.
	// RightEval and RightStop act on the whole server and so reach beyond
	// any confinement: grant them only to a child you trust as the
	// program.
	ServerRights Rights

	// The settings below make a child run with less than the server has.
	// Namespaces (with their ID mappings) and NoNewPrivs are applied by
	// the kernel as the server creates the child, so a Fork that asks for
	// them starts cold, never from the pool. Every other setting is applied
	// by the child itself after it is assigned its function and before the
	// function runs, in this order: Setsid or Setpgid, Chroot, Credential,
	// then, as that user, Rlimits and Dir, then Pdeathsig, Env and
	// ExtraEnv. Package initialisation
	// has run before, with the server's privileges. A setting the system or
	// the server cannot honour is an error from Fork; should one fail in
	// the child all the same, the child prints why and exits with status
	// 127.

	// Dir is the child's working directory, inside Chroot if that is set.
	// Empty means the server's.
	Dir string

	// Env, if not nil, is the child's whole environment. ExtraEnv is added
	// to the environment the child would otherwise have, later entries
	// winning.
	Env, ExtraEnv []string

	// Setsid makes the child the leader of a new session and process
	// group; Setpgid, of a new process group only. Either way
	// Process.SignalGroup and KillAllGroups reach the child and whatever
	// it started in its group.
	Setsid, Setpgid bool

	// Credential, if not nil, is the user and groups the child runs as.
	Credential *Credential

	// Chroot, if not empty, is the child's root directory.
	Chroot string

	// Namespaces are new Linux namespaces for the child. With NewUser,
	// UidMappings and GidMappings map IDs in the new namespace to IDs
	// outside it.
	Namespaces               Namespace
	UidMappings, GidMappings []IDMap

	// NoNewPrivs sets Linux's no_new_privs: neither the child nor what it
	// executes can gain privileges, through setuid binaries or otherwise.
	NoNewPrivs bool

	// Pdeathsig is the signal the child gets when the server dies (Linux).
	Pdeathsig syscall.Signal

	// Rlimits are resource limits for the child, such as RLIMIT_NOFILE,
	// RLIMIT_AS or RLIMIT_CPU from package syscall.
	Rlimits []Rlimit
}

// Credential is a user and groups to run as.
type Credential struct {
	Uid, Gid uint32
	Groups   []uint32 // supplementary groups; nil means none
}

// IDMap maps Size IDs from HostID outside a user namespace to ContainerID
// inside it.
type IDMap struct{ ContainerID, HostID, Size uint32 }

// Rlimit is a resource limit: Resource is a syscall.RLIMIT_* constant.
type Rlimit struct {
	Resource int
	Cur, Max uint64
}

// Namespace is a set of Linux namespaces.
type Namespace uint32

// Linux namespaces a child can be given.
const (
	NewUser Namespace = 1 << iota
	NewMount
	NewPID
	NewNet
	NewUTS
	NewIPC

	allNamespaces = NewUser | NewMount | NewPID | NewNet | NewUTS | NewIPC
)

// Rights is a set of rights of a connection to the server.
type Rights uint8

// The rights a connection may hold. The connection Start returns holds
// them all.
const (
	RightFork   Rights = 1 << iota // Fork and Exec
	RightSignal                    // signal the connection's own children
	RightEval                      // Eval
	RightStop                      // Stop and Detach

	allRights = RightFork | RightSignal | RightEval | RightStop
)

// Child is what a registered function receives in a child process.
type Child struct {
	arg    []byte
	conn   *net.UnixConn
	files  []*os.File
	server *Server
}

// Arg returns the argument given in Attr.Arg; nil if there was none.
func (c *Child) Arg() []byte { return c.arg }

// Conn returns the child's end of the socket asked for with Attr.Socket, or
// nil.
func (c *Child) Conn() *net.UnixConn { return c.conn }

// Files returns the descriptors given in Attr.Files, in the same order.
func (c *Child) Files() []*os.File { return c.files }

// Server returns the child's connection to the server asked for with
// Attr.Server, or nil.
func (c *Child) Server() *Server { return c.server }

// Exit describes how a child ended.
type Exit struct {
	Pid    int
	Status syscall.WaitStatus
	Rusage syscall.Rusage
}

// Success reports whether the child exited with status 0.
func (e *Exit) Success() bool { return e.Status.Exited() && e.Status.ExitStatus() == 0 }

// String describes the exit as os.ProcessState does: "exit status 1",
// "signal: killed".
func (e *Exit) String() string {
	switch {
	case e.Status.Exited():
		return fmt.Sprintf("exit status %d", e.Status.ExitStatus())
	case e.Status.Signaled():
		return "signal: " + e.Status.Signal().String()
	}
	return fmt.Sprintf("wait status %v", e.Status)
}

// Process is a child created by Fork. Its methods are safe for concurrent
// use.
type Process struct {
	// Pid is the child's process id. The server is the child's parent and
	// reaps it; use Signal rather than syscall.Kill, which could hit a
	// reused pid.
	Pid int

	srv  *Server
	id   uint32 // the Fork request's id, which its exit event carries
	conn *net.UnixConn
	done chan struct{}
	exit *Exit // set before done is closed, unless err is
	err  error
}

// Conn returns the requester's end of the socket asked for with Attr.Socket,
// or nil. The caller owns it and closes it.
func (p *Process) Conn() *net.UnixConn { return p.conn }

// Done returns a channel that is closed when Wait would no longer block.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the child to exit and returns how it ended. A child that
// exits non-zero or dies by a signal is not an error: see Exit.Status. Wait
// returns an error only when the exit can no longer be learned: ErrClosed
// after the Server was closed or detached, ErrConnLost when the server died.
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
// must have been forked with Attr.Setsid or Attr.Setpgid to do: it reaches
// what the child started in its group. The server refuses once the child
// has exited, since the group id could then be reused.
func (p *Process) SignalGroup(sig syscall.Signal) error {
	return p.signal("signal group", sig, true)
}

func (p *Process) finish(exit *Exit, err error) {
	p.exit, p.err = exit, err
	close(p.done)
}

// Server is a connection to a fork server: the one Start returns, or the
// one a child receives as Child.Server. Its methods are safe for concurrent
// use. Every Server must end with Close, Stop or Detach.
type Server struct {
	pid  int
	root bool // started by Start: this process reaps the server
	conn *net.UnixConn
	wmu  sync.Mutex // one frame at a time on conn

	mu     sync.Mutex
	nextID uint32
	calls  map[uint32]*call    // requests waiting for their reply
	procs  map[uint32]*Process // children waiting for their exit, by Fork request id
	err    error               // why the Server no longer works; nil while it does
	done   chan struct{}       // closed when the reader has finished and the server is reaped
}

type call struct {
	reply     chan *replyMsg // gets the reply, or is closed when the connection ends
	fork      bool
	final     bool // a Stop or Detach: once it succeeds, the server exits
	abandoned bool // the caller gave up; a child this Fork creates is killed
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

// Pid returns the process id of the fork server.
func (s *Server) Pid() int { return s.pid }

// Fork asks the server to create a child that runs fn with what attr gives
// it; a nil attr gives it nothing. The child is a fresh execution of this
// binary. ctx bounds the wait for the server's answer: if ctx ends first,
// Fork returns ctx's error and a child created anyway is killed (through
// a connection that holds RightSignal, as every one does by default).
//
// The caller must Wait for the Process or let the server end; a Process
// that is never waited for costs nothing but its entry in a map.
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
	m := &forkMsg{name: fn.name, arg: attr.Arg, nfiles: uint16(len(attr.Files)), settings: st}
	if !st.empty() {
		m.flags |= flagSettings
	}
	if attr.Server {
		m.flags |= flagServer
	}
	return s.launch(ctx, op, m, &m.flags, attr)
}

// Exec asks the server to start the external program at path with argv
// (argv[0] included) and what attr gives it, as os/exec would from the
// program, but from the small server process. Its descriptors 0 to 2 are
// as a Fork's; Attr.Files become descriptors 3, 4, and so on; the socket,
// if Attr.Socket asks for one, comes after them. The settings of attr apply
// as the kernel creates the process, except Rlimits, which only a Go child
// can apply and which are refused here, as are Attr.Server and Attr.Arg.
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
	m := &execMsg{path: path, argv: argv, nfiles: uint16(len(attr.Files)), settings: st}
	if !st.empty() {
		m.flags |= flagSettings
	}
	return s.launch(ctx, op, m, &m.flags, attr)
}

// launch sends the Fork or Exec request m, whose flags it completes from
// attr, with the descriptors attr gives, and returns the new Process.
func (s *Server) launch(ctx context.Context, op string, m message, flags *uint32, attr *Attr) (*Process, error) {
	if len(attr.Files) > MaxFiles {
		return nil, opError(op, errTooManyFiles)
	}
	var files []*os.File
	for i, f := range []*os.File{attr.Stdin, attr.Stdout, attr.Stderr} {
		if f != nil {
			*flags |= flagStdin << i
			files = append(files, f)
		}
	}
	files = append(files, attr.Files...)
	p := &Process{srv: s, done: make(chan struct{})}
	theirs := -1
	if attr.Socket {
		*flags |= flagSocket
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

// settings checks the settings of a and puts them in wire form.
func (a *Attr) settings() (settings, error) {
	st := settings{
		dir:        a.Dir,
		chroot:     a.Chroot,
		env:        a.Env,
		extraEnv:   a.ExtraEnv,
		namespaces: uint32(a.Namespaces),
		pdeathsig:  uint32(a.Pdeathsig),
		rights:     uint32(a.ServerRights),
	}
	for _, b := range []struct {
		set  bool
		flag uint32
	}{{a.Setsid, setSetsid}, {a.Setpgid, setSetpgid}, {a.Env != nil, setEnv}, {a.Credential != nil, setCredential}, {a.NoNewPrivs, setNoNewPrivs}} {
		if b.set {
			st.set |= b.flag
		}
	}
	if c := a.Credential; c != nil {
		st.uid, st.gid, st.groups = c.Uid, c.Gid, c.Groups
	}
	for _, m := range a.UidMappings {
		st.uidMaps = append(st.uidMaps, idMap{m.ContainerID, m.HostID, m.Size})
	}
	for _, m := range a.GidMappings {
		st.gidMaps = append(st.gidMaps, idMap{m.ContainerID, m.HostID, m.Size})
	}
	for _, r := range a.Rlimits {
		if r.Resource < 0 || r.Resource > 1<<16 {
			return st, fmt.Errorf("forkserver: rlimit resource %d out of range", r.Resource)
		}
		st.rlimits = append(st.rlimits, rlimit{uint32(r.Resource), r.Cur, r.Max})
	}
	switch {
	case len(a.Dir) > maxPath || len(a.Chroot) > maxPath:
		return st, fmt.Errorf("forkserver: Dir or Chroot longer than %d bytes", maxPath)
	case len(a.Env) > maxList || len(a.ExtraEnv) > maxList:
		return st, fmt.Errorf("forkserver: more than %d environment entries", maxList)
	case len(st.groups) > maxGroups:
		return st, fmt.Errorf("forkserver: more than %d groups", maxGroups)
	case len(st.uidMaps) > maxIDMaps || len(st.gidMaps) > maxIDMaps:
		return st, fmt.Errorf("forkserver: more than %d ID mappings", maxIDMaps)
	case len(st.rlimits) > maxRlimits:
		return st, fmt.Errorf("forkserver: more than %d rlimits", maxRlimits)
	case a.Pdeathsig < 0 || a.Pdeathsig > maxSignal:
		return st, fmt.Errorf("forkserver: Pdeathsig %d out of range", a.Pdeathsig)
	case a.Namespaces&^allNamespaces != 0 || a.ServerRights&^allRights != 0:
		return st, errors.New("forkserver: unknown Namespace or Rights bits")
	case a.Setsid && a.Setpgid:
		return st, errors.New("forkserver: Setsid and Setpgid exclude each other: a session leader leads its group")
	}
	for _, list := range [][]string{a.Env, a.ExtraEnv} {
		for _, kv := range list {
			if len(kv) > MaxArg {
				return st, fmt.Errorf("%w: an environment entry of %d bytes", ErrArgTooLarge, len(kv))
			}
		}
	}
	return st, nil
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

// KillAllGroups is KillAll, but a child that leads a process group
// (Attr.Setsid or Attr.Setpgid) gets sig sent to its whole group, which
// reaches what it started in the group, grandchildren included.
func (s *Server) KillAllGroups(sig syscall.Signal) error {
	return s.killAll("kill all groups", sig, true)
}

// Eval runs fn in the server process, with arg as Child.Arg and no
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
// refusal (ErrPermission) leaves s as it was.
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
// as daemons. Processes not yet exited report ErrClosed from Wait. When
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
// Wait return ErrClosed. Close after Close, Stop or Detach does nothing.
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
		reap(s.pid)
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
