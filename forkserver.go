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
// Package initialisation, the init functions and package-level variables
// of every package in the binary, runs again in the server and in every
// child, each a new execution of the binary with the program's os.Args, as
// it runs in the program. Whatever it does, opening files, starting
// goroutines, writing logs, parsing flags, is done again there, and a
// child sees package-level state as initialisation left it, not as the
// program changed it since.
//
// The server is the parent of every child. It reaps them, tells the
// requester each exit status with its resource usage, delivers signals to
// them without a pid-reuse race, and follows the program's lifetime: when
// the program's connection closes, whether by Close or because the program
// died, the server kills every child and exits. A connection handed to a
// child ends the same way for what was forked through it: when it closes,
// every child forked through it, at any depth, is killed.
package forkserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/forkserver/forkserver/internal/wire"
)

const (
	// MaxArg is the largest argument, in bytes, that Fork and Eval accept.
	MaxArg = wire.MaxArg

	// MaxFiles is the largest number of descriptors in Attr.Files.
	MaxFiles = wire.MaxFiles

	// MaxName is the longest function name, in bytes, that Register accepts.
	MaxName = wire.MaxName
)

// Errors of this package, to be matched with errors.Is. They reach the
// caller as the cause of an [*Error], which names the package and the
// operation; their own text names neither.
var (
	// [ErrClosed]: the Server was closed, stopped or detached, or the
	// server is stopping and takes no new children.
	ErrClosed = errors.New("server closed")

	// [ErrConnLost]: the connection to the server broke, most often because
	// the server process died.
	ErrConnLost = errors.New("connection to the server lost")

	// [ErrUnknownFunc]: no function is registered under the name given.
	ErrUnknownFunc = errors.New("unknown function")

	// [ErrArgTooLarge]: an argument is longer than [MaxArg].
	ErrArgTooLarge = errors.New("argument too large")

	// [ErrPermission]: the connection lacks the right for the operation, or
	// the process named is outside its scope.
	ErrPermission = errors.New("operation not permitted on this connection")

	// [ErrNoMain]: Start was called in a process where Main has not run.
	ErrNoMain = errors.New("Main was not called at the start of main")

	// [ErrChildLimit]: a Fork or Exec would take the children alive past
	// [Config.MaxChildren] or the [Attr.ServerMaxChildren] of the connection
	// it came through or of one that connection was handed out through.
	ErrChildLimit = errors.New("limit on children alive reached")

	errTooManyFiles = fmt.Errorf("more than %d files", MaxFiles)
	errNoProcess    = errors.New("the Process was not returned by Fork or Exec")
)

// roleEnv tells a process started by this package which role it plays;
// poolEnv and maxChildrenEnv tell a server its Config.
const (
	roleEnv = "FORKSERVER_ROLE"

	roleChild      = "child"
	rolePooled     = "pooled" // a child that waits in the pool
	poolEnv        = "FORKSERVER_POOL"
	maxChildrenEnv = "FORKSERVER_MAX_CHILDREN"
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
// the same functions. It panics if name is empty, longer than [MaxName], or
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
	// server hands the waiting children to the program's connection ahead
	// of need, so that a Fork there is one write from the program to the
	// child, and starts a replacement after each Fork; a burst larger than
	// the pool starts the rest cold. Forks the server must mediate always
	// start cold: those through a connection handed to a child, which the
	// server confines, and those asking for Attr.Server, Namespaces,
	// NoNewPrivs or a relative Dir. A pooled child behaves as a cold one in
	// every way the requester can see, except that it started earlier: it
	// sees the server's environment as it was then. Eval replaces every
	// waiting child, so that children forked after it see what it changed.
	PoolSize int

	// Sandboxes declares the sandboxes the program will fork children in,
	// each with its own warm children, which the server keeps executed,
	// initialised and waiting inside it: see [Sandbox]. A Fork whose
	// creation-time settings equal those of one of them takes one of its
	// warm children, as a plain Fork takes one from PoolSize's; any
	// other Fork is served as it would be without them. Each is refilled
	// and paced as the plain pool is, and its warm children count toward
	// MaxChildren as the plain pool's do. Start fails if the system or
	// the server cannot honour one of them, with the error a Fork asking
	// for it would get, so matching [errors.ErrUnsupported] or
	// [ErrPermission] alike.
	Sandboxes []Sandbox

	// MaxChildren bounds the children alive at once, forked through every
	// connection to the server; zero means no bound. A Fork or Exec beyond
	// it fails at once with [ErrChildLimit]. Children waiting in the pool
	// count toward no bound; those handed to the program's connection
	// count from then on, so MaxChildren should leave room above PoolSize
	// for the children that connections handed to children may fork.
	MaxChildren int
}

// Sandbox declares a sandbox whose children the server keeps warm (see
// [Config.Sandboxes]).
//
// A sandbox is the creation-time part of an Attr: Credential,
// Namespaces with UidMappings and GidMappings, NoNewPrivs and Paths
// (Chroot too, which a declared sandbox cannot hold yet). A warm child of
// the sandbox is created in it: the kernel gives it the credential, the
// namespaces and no_new_privs as it creates it, and it enters the path
// policy on its first thread and executes the binary again, so that every
// layer is in force from the first instruction of the image that runs the
// function, package initialisation included; a new network namespace and
// the rest of what is costly is paid for in the pool, not in the Fork.
// The paths of Paths are resolved as each warm child is created, not at
// the Fork that takes it. Only once the child has started inside all of
// it is it handed out; one that could not enter it exits, and the server
// logs that and tries again later, at growing intervals.
//
// The sandbox's DenySyscalls too is in force in a warm child before it is
// handed out: the child installs that filter as it starts. A Fork takes a
// warm child of the first declared sandbox whose creation-time settings
// equal its own and whose DenySyscalls it holds; one that denies fewer
// groups does not. The rest of the Fork's Attr is applied per call, by
// the child, once it is assigned, in the order Attr gives: Setsid or
// Setpgid, Rlimits and MemoryLimit, Dir, Pdeathsig, Env and ExtraEnv, and
// the groups DenySyscalls adds to the sandbox's last, with its standard
// descriptors, socket, files and connection.
//
// Only forks through the connection Start returns take warm children of
// a sandbox; those through a connection handed to a child, whose
// confinement the server adds to what they ask for, start cold.
type Sandbox struct {
	// Attr's creation-time settings, and its DenySyscalls, are the
	// sandbox's; its other fields are ignored, so that the Attr a program
	// forks with can be declared as it is. A nil Attr, or one that asks for none of them, is the
	// plain pool, which PoolSize sizes, and is refused here.
	Attr *Attr

	// Size is how many warm children of the sandbox the server keeps.
	Size int
}

// Attr says what a child gets. The zero value, or a nil *Attr, gives a child
// nothing but the server's standard input, output and error.
type Attr struct {
	// Arg is handed to the child as [Child.Arg]. At most [MaxArg] bytes.
	Arg []byte

	// Socket asks for a connected socket pair: one end is [Process.Conn] in
	// the requester, the other [Child.Conn] in the child.
	Socket bool

	// Files are passed to the child, which finds them in [Child.Files] in
	// the same order. At most [MaxFiles]. The caller keeps ownership: Fork
	// does not close them. A nil or closed file fails the Fork or Exec
	// before anything is sent, with an error naming it (Attr.Files[i])
	// that matches os.ErrClosed if it is closed; the connection and the
	// warm children held are untouched.
	Files []*os.File

	// Stdin, Stdout and Stderr are the child's standard input, output and
	// error, its descriptors 0, 1 and 2. Nil, or a nil *os.File, means the
	// server's own, which are the program's at Start. An *os.File is passed
	// to the child as it is, and the caller keeps ownership of it; as
	// os/exec does, Fork and Exec put it in blocking mode first (see
	// [os.File.Fd]), since programs expect blocking standard descriptors.
	//
	// Any other reader or writer is connected to the child through a pipe,
	// as in os/exec: a goroutine in the requester copies from Stdin into
	// the pipe until Stdin returns io.EOF or an error, or the child closes
	// its end, and copies what the child writes to Stdout and Stderr until
	// every copy of the pipe's end in the child is closed: by the child's
	// exit, unless something the child started keeps it open. When Stdout
	// and Stderr are the same writer, one pipe carries both and the writer
	// gets one write at a time. [Process.Wait] returns, and [Process.Done]
	// is closed, once the copying has ended as well as the child; Wait
	// reports an error from copying, other than the child no longer
	// reading, if the exit was learned. The goroutines end by themselves
	// whether or not anyone waits: a Process never waited for leaks
	// nothing once the copying ends. If the exit can no longer be learned
	// (the Server was closed), Wait does not wait for the copying, which
	// goes on until the child's ends close. If Fork or Exec fails, the
	// pipes are closed and nothing is copied.
	Stdin          io.Reader
	Stdout, Stderr io.Writer

	// Cancel is the signal, a syscall.Signal, the child gets when the ctx
	// given to Fork or Exec ends before the child's exit is known, as
	// with os/exec's Cmd.Cancel: nil means SIGKILL. SIGTERM cancels the
	// context of a forked child's function, which can then end cleanly.
	// [Process.Wait] reports ctx's error along with the exit. A child
	// meant to outlive a request is forked with a ctx that lives as long
	// as the child should. The signal is sent as [Process.Signal] sends
	// it, so through a connection without [RightSignal] (a child's
	// Server, see [Attr.ServerRights]) it cannot be, and the child lives
	// on until that connection ends.
	Cancel os.Signal

	// WaitDelay, if positive, bounds the wait as os/exec's Cmd.WaitDelay
	// does. A child sent Cancel that has not exited WaitDelay later is
	// sent SIGKILL. And once WaitDelay has passed since the ctx ended or
	// the child's exit was learned, whichever came first, the copying of
	// standard streams that are not files (see Stdin) is cut short: the
	// requester's ends of their pipes are closed, and [Process.Wait]
	// returns, with an error matching [os/exec.ErrWaitDelay] if there was
	// none other, even while something the child started holds the
	// pipes open or a Stdin reader does not return. Zero means no bound.
	WaitDelay time.Duration

	// Server gives the child its own connection to the server, as
	// [Child.Server], with the rights in ServerRights.
	Server bool

	// ServerRights are the rights of the connection Server gives: zero
	// means [RightFork]|[RightSignal]. They may not exceed the rights of the
	// connection Fork is called on. Children forked through that
	// connection are confined as this child is: they run with its
	// Credential, Chroot, Namespaces, NoNewPrivs, Paths (beneath any of
	// their own), DenySyscalls, environment (if Env was set), Rlimits and MemoryLimit,
	// or lower limits of their own, and by default with its standard
	// descriptors. Asking for another credential or root, or for a limit
	// above one of its Rlimits, is refused with [ErrPermission].
	// [RightEval] and [RightStop] act on the whole server and so reach beyond
	// any confinement: grant them only to a child you trust as the
	// program.
	ServerRights Rights

	// ServerMaxChildren bounds the children alive at once that are forked
	// through the connection Server gives and through every connection
	// handed on from it, at any depth; zero means 64, or the bound of the
	// connection Fork is called on if that is lower. A connection with no
	// bound would let a child fork as fast as the server can create
	// processes (400 children in 1.5 s, measured, slowing the program's own
	// Forks tenfold): ask for more with a larger value. The
	// bounds of the connection Fork is called on, and of those it was
	// handed out through, hold all the same: ServerMaxChildren may not
	// exceed any of them, and asking for more is refused with
	// [ErrPermission]. A Fork or Exec beyond a bound fails at once with
	// [ErrChildLimit]; a connection that keeps asking all the same is read
	// from at 20 requests a second at most, after a burst of 16, so that a
	// child forking in a loop sleeps rather than takes the processors from
	// everyone else. Whatever way a connection ends, the child holding
	// it exiting, killed, or closing it, every child forked through it,
	// and theirs, is killed.
	ServerMaxChildren int

	// The settings below make a child run with less than the server has.
	// Namespaces (with their ID mappings) and NoNewPrivs are applied by
	// the kernel as the server creates the child, and Paths as the child
	// starts (see Paths), so a Fork that asks for them starts cold, never
	// from the pool. Every other
	// setting is applied by the child itself after it is assigned its
	// function and before the function runs, in this order: Setsid or
	// Setpgid, Chroot, Credential, then, as that user, Rlimits, MemoryLimit and Dir,
	// then Pdeathsig, Env and ExtraEnv, and DenySyscalls last. Package
	// initialisation has run before, with the server's privileges (and,
	// under Paths, a second time, confined). A setting the system or the server cannot honour is an
	// error from Fork; should one fail in the child all the same, the
	// child prints why and exits with status 127.

	// Dir is the child's working directory, inside Chroot if that is set.
	// Empty means the server's.
	Dir string

	// Env, if not nil, is the child's whole environment. ExtraEnv is added
	// to the environment the child would otherwise have, later entries
	// winning. Every entry must be of the form name=value, with a name and
	// no NUL byte: Fork and Exec refuse any other with an error naming it,
	// before anything is sent.
	Env, ExtraEnv []string

	// Setsid makes the child the leader of a new session and process
	// group; Setpgid, of a new process group only. Either way
	// [Process.SignalGroup] and [Server.KillAllGroups] reach the child and whatever
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
	// A child with NoNewPrivs, Paths or DenySyscalls also holds no
	// capability, even as root (with Chroot, but CAP_SYS_CHROOT, which
	// its filter makes useless by denying chroot).
	NoNewPrivs bool

	// Paths, if not nil, limits the files the child may reach to those
	// it lists (Linux, Landlock and seccomp; see [PathPolicy]), and
	// implies NoNewPrivs. Such a Fork starts cold: the server resolves the paths
	// into rulesets, the new process enters them on its first thread and
	// executes the binary again, so that every thread of the image that
	// runs the function is confined from its first instruction: package
	// initialisation runs once unconfined, in the first image, and again
	// under the policy. To that end the child may also read and
	// execute the binary and the shared libraries it runs with, and read
	// the dynamic loader's cache. Fork fails with an error matching
	// [errors.ErrUnsupported] where the kernel cannot enforce it. For
	// Exec, see [Server.Exec].
	Paths *PathPolicy

	// DenySyscalls are groups of system calls the child may not make
	// (Linux, seccomp, amd64 and arm64; see [SyscallGroup]). The child
	// installs the filter on all its threads as the last of its
	// settings, after setting no_new_privs, which the filter requires of
	// an unprivileged process. For Exec, see [Server.Exec]: it refuses
	// [SyscallsExec].
	DenySyscalls SyscallGroup

	// Pdeathsig is the signal the child gets when the server dies (Linux).
	// It is not needed for containment: on Linux the server's keeper kills
	// every process the server leaves behind, whatever the signal set here
	// (see Start). It fires even when the keeper cannot, if both die at
	// once, but only for the child, not what it started; and it is cleared
	// when a program the child runs is set-user-ID or set-group-ID.
	Pdeathsig syscall.Signal

	// Rlimits are resource limits for the child, such as RLIMIT_NOFILE
	// or RLIMIT_CPU from package syscall. A Go child applies them after
	// its runtime has started and reserved over a gigabyte of address
	// space, so Fork refuses an RLIMIT_AS below 4 GiB, which would make
	// the child's next reservation or thread fail at random. An external
	// program gets them before its first instruction, any RLIMIT_AS
	// included, at the cost of a start of the Go runtime (see
	// [Server.Exec]); Exec refuses them with Chroot.
	//
	// A limit binds the child and is inherited by what it starts, but
	// each process counts on its own: RLIMIT_CPU and RLIMIT_AS bind one
	// process, not the child's descendants together; RLIMIT_NPROC counts
	// a user's processes, and binds neither root nor the children the
	// server forks through a connection (bound those with
	// ServerMaxChildren); no limit counts shared memory (System V, POSIX
	// or memfd) against the child. What binds a sandboxed child's
	// descendants is that it has none: SyscallsExec denies creating a
	// process. To bound a Go child's memory, use MemoryLimit.
	Rlimits []Rlimit

	// MemoryLimit, if not zero, is the memory in bytes the child's Go
	// heap may use (Linux; elsewhere an error matching
	// [errors.ErrUnsupported]). The child applies it with its Rlimits,
	// on every Fork, warm or cold: it sets the Go runtime's memory limit
	// (debug.SetMemoryLimit), which the garbage collector works to stay
	// under, and, as a hard backstop, lowers RLIMIT_DATA to the data it
	// has mapped (VmData; under Paths, which hide /proc, the Go runtime's
	// own plus 128 MiB) plus 3*MemoryLimit plus 128 MiB (under the race
	// detector, whose shadow memory counts, 8*MemoryLimit plus 1 GiB):
	// the Go runtime never unmaps its heap, and fragmentation takes the
	// most it maps above what it holds at once. A child that holds more
	// than MemoryLimit runs slower, the collector running more, then
	// exits with status 2 once the backstop refuses it memory, printing
	// "fatal error: runtime: out of memory", "fatal error: out of memory
	// ..." or, linked with cgo, "runtime/cgo: pthread_create failed"
	// (under the race detector, status 66, "ThreadSanitizer failed to
	// allocate"). A lower RLIMIT_DATA in Rlimits stays. Children forked
	// through the connection Server gives get it, or a lower one of their
	// own; a higher one is [ErrPermission], and an Exec through it is
	// refused. Exec refuses it too: bound an external program with
	// RLIMIT_AS or RLIMIT_DATA in Rlimits, set before it starts.
	MemoryLimit int64
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

// The bits the wire codec accepts are these: indexing an array of one
// with anything but 0 fails to compile where the two disagree.
var _ = [1]struct{}{}[(uint32(allNamespaces)^wire.AllNamespaces)|(uint32(allRights)^wire.AllRights)|(uint32(allSyscallGroups)^wire.AllSyscallGroups)]

// Child is what a registered function receives in a child process. The
// function owns what its methods return: it may close the connection, the
// files and the Server when it is done with them, and whatever it leaves
// open is closed when the child exits, which it does as the function
// returns.
type Child struct {
	arg    []byte
	conn   *net.UnixConn
	files  []*os.File
	server *Server
}

// Arg returns the argument given in [Attr.Arg]; nil if there was none.
func (c *Child) Arg() []byte { return c.arg }

// Conn returns the child's end of the socket asked for with [Attr.Socket],
// or nil.
func (c *Child) Conn() *net.UnixConn { return c.conn }

// Files returns the descriptors given in [Attr.Files], in the same order.
func (c *Child) Files() []*os.File { return c.files }

// Server returns the child's connection to the server asked for with
// [Attr.Server], or nil. The children forked through it are confined as
// [Attr.ServerRights] says, bounded by [Attr.ServerMaxChildren], and killed
// when it closes, which it does at the latest as the child exits.
func (c *Child) Server() *Server { return c.server }

// Exit describes how a child ended.
type Exit struct {
	Pid    int
	Status syscall.WaitStatus
	Rusage syscall.Rusage
}

// Success reports whether the child exited with status 0. [Process.Wait]
// returns a nil error for a child that failed: this is the check.
func (e *Exit) Success() bool { return e.Status.Exited() && e.Status.ExitStatus() == 0 }

// ExitCode returns the child's exit status, or -1 if a signal ended it or
// e is nil, as os.ProcessState's does.
func (e *Exit) ExitCode() int {
	if e == nil || !e.Status.Exited() {
		return -1
	}
	return e.Status.ExitStatus()
}

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
