//go:build linux || darwin

package forkserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/forkserver/forkserver/internal/wire"
)

// Start starts a fork server: a new execution of this program's binary
// that creates children on its behalf. A nil cfg means the defaults. Main
// must have run in this process. The server has started and answered when
// Start returns; its warm children, if [Config.PoolSize] asks for some,
// may still be starting: see [Server.WaitWarm].
//
// On Linux, Start executes a keeper, a small process that starts the server
// as its own child and, as a child subreaper, kills every process the
// server leaves behind when it dies, for any reason, SIGKILL included, and
// when the program dies: nothing the server started, nor anything those
// processes started, outlives the server, for any user, with no privilege.
// The server, a subreaper too, kills what children leave behind when a
// connection ends. The keeper and the server killed at once leave them
// all running. On macOS there is no keeper: a killed server leaves its
// children to init.
//
// In a binary built with the race detector (go test -race), Start adds
// atexit_sleep_ms=0 to the GORACE variable of the server's environment,
// which its children inherit, keeping the other options set there and
// leaving a value the environment gives that option as it is: otherwise
// the server and every child would sleep a second as they exit.
func Start(cfg *Config) (*Server, error) {
	s, err := startFrom(cfg)
	if err != nil {
		return nil, opError("start", "", err)
	}
	return s, nil
}

func startFrom(cfg *Config) (*Server, error) {
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
		return nil, fmt.Errorf("negative PoolSize %d or MaxChildren %d", cfg.PoolSize, cfg.MaxChildren)
	}
	shapes, err := declare(cfg.Sandboxes)
	if err != nil {
		return nil, err
	}
	env = environ(env, roleEnv+"="+serverRole, poolEnv+"="+strconv.Itoa(cfg.PoolSize), maxChildrenEnv+"="+strconv.Itoa(cfg.MaxChildren))
	if len(shapes) > 0 {
		env = append(env, sandboxesEnv+"="+encodeSandboxes(cfg.Sandboxes, shapes))
	}
	if raceEnabled {
		env = withoutExitSleep(env)
	}
	s, err := startServer(env)
	if err != nil {
		return nil, err
	}
	s.path, _ = lastPath(env)
	sizes := []int{cfg.PoolSize}
	for _, sb := range cfg.Sandboxes {
		sizes = append(sizes, sb.Size)
	}
	s.mu.Lock()
	s.poolSize, s.sandboxes, s.sizes = cfg.PoolSize, shapes, sizes
	s.mu.Unlock()
	return s, nil
}

// withoutExitSleep returns env with atexit_sleep_ms=0 added to GORACE,
// unless GORACE sets that option already: a program built with the race
// detector otherwise sleeps a second as it exits, and so would the server
// and every child.
func withoutExitSleep(env []string) []string {
	const option = "atexit_sleep_ms"
	out := make([]string, 0, len(env)+1)
	value := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GORACE="); ok {
			value = v // the last one is the one that counts
			continue
		}
		out = append(out, kv)
	}
	// The race detector's options are separated by spaces, commas or colons.
	for _, opt := range strings.FieldsFunc(value, func(r rune) bool { return strings.ContainsRune(" \t\n\r,:", r) }) {
		if strings.HasPrefix(opt, option+"=") {
			return env
		}
	}
	if strings.TrimSpace(value) != "" {
		value += " "
	}
	return append(out, "GORACE="+value+option+"=0")
}

// newServer returns the Server on conn to the server pid; a non-zero reap
// is the process Start executed, which this process reaps once conn ends.
func newServer(pid int, conn *net.UnixConn, reap int) *Server {
	s := &Server{
		pid:   pid,
		root:  reap != 0,
		reap:  reap,
		conn:  conn,
		calls: make(map[uint32]*call),
		procs: make(map[uint32]*Process),
		done:  make(chan struct{}),
	}
	if reap != 0 {
		// Alive: it has just answered. On Linux the handle is a pidfd.
		s.server, _ = os.FindProcess(pid)
	}
	go s.readLoop(newFrameReader(conn))
	return s
}

// WaitWarm waits until the server has handed s as many warm children as
// [Config.PoolSize] asks for, and as many of each of [Config.Sandboxes] as
// its Size asks for, all ready for a Fork, or until ctx ends. It
// returns at once on a Server without a pool, such as a child's. A Fork
// takes a warm child and the server replaces it shortly after; WaitWarm
// waits for the replacements too, and so does a call after an Eval, which
// discards the warm children held. Warm children count toward
// [Config.MaxChildren]: while the children alive leave no room for them,
// WaitWarm waits for room.
func (s *Server) WaitWarm(ctx context.Context) error {
	return opError("wait warm", "", s.waitWarm(ctx))
}

func (s *Server) waitWarm(ctx context.Context) error {
	for {
		s.mu.Lock()
		if err := s.err; err != nil {
			s.mu.Unlock()
			return err
		}
		if s.warmFull() {
			s.mu.Unlock()
			return nil
		}
		if s.warmed == nil {
			s.warmed = make(chan struct{})
		}
		warmed := s.warmed
		s.mu.Unlock()
		select {
		case <-warmed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// wakeWarmWaiters wakes the WaitWarm calls waiting. s.mu must be held.
func (s *Server) wakeWarmWaiters() {
	if s.warmed != nil {
		close(s.warmed)
		s.warmed = nil
	}
}

// Stats returns counts about s since it was started.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.PoolSize = s.poolSize
	st.Warm = len(s.warm)
	st.Alive = len(s.procs)
	total := 0
	for _, n := range s.sizes {
		total += n
	}
	if s.warmGotten > uint64(total) {
		st.Refills = s.warmGotten - uint64(total)
	}
	return st
}

// Fork asks the server to create a child that runs fn with what attr gives
// it; a nil attr gives it nothing. The child is a fresh execution of this
// binary.
//
// ctx governs the child's life, as exec.CommandContext's does: should ctx
// end before the child's exit is known, the child is sent [Attr.Cancel]
// (SIGKILL unless attr says otherwise) and, [Attr.WaitDelay] later,
// SIGKILL, and [Process.Wait] reports ctx's error with the exit. Fork a
// child meant to outlive a request with a ctx that lives as long as the
// child should, context.Background() if nothing should end it; a ctx that
// can never end costs nothing. The signals go through the connection Fork
// is called on, which needs [RightSignal] for them, as every one has by
// default.
//
// When the server has handed this connection a warm child that can take
// the request (see [Config.PoolSize]), Fork writes the assignment to that
// child itself and returns at once. Otherwise Fork waits for the server's
// answer: if ctx ends first, Fork returns ctx's error and a child created
// anyway is killed with SIGKILL. A ctx already done when Fork is called
// fails it either way.
//
// An error is an [*Error] naming the operation "fork" and fn. Waiting for
// the Process is optional: one that is never waited for leaks nothing once
// the child has exited.
func (s *Server) Fork(ctx context.Context, fn Func, attr *Attr) (*Process, error) {
	p, err := s.forkProcess(ctx, fn, attr)
	if err != nil {
		return nil, opError("fork", fn.name, err)
	}
	return p, nil
}

func (s *Server) forkProcess(ctx context.Context, fn Func, attr *Attr) (*Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rq := &request{fn: fn}
	if err := s.readAttr(rq, attr); err != nil {
		return nil, err
	}
	p, err := s.forkWarm(rq)
	if err != nil {
		rq.std.abort()
		return nil, err
	}
	if p == nil {
		p, err = s.startChild(ctx, rq)
		switch {
		case err == nil:
			k := s.warmKind(rq)
			s.mu.Lock()
			s.stats.ColdForks++
			if k >= 0 && s.sizes[k] > 0 {
				s.stats.PoolMisses++
			}
			s.mu.Unlock()
		case errors.Is(err, ErrChildLimit):
			// The room may have gone to a warm child the server handed
			// over just before: the refusal comes after it, so it is here
			// now.
			switch q, werr := s.forkWarm(rq); {
			case werr != nil:
				err = werr
			case q != nil:
				p, err = q, nil
			}
		}
		if err != nil {
			rq.std.abort()
			return nil, err
		}
	}
	return p.begin(ctx, rq.std, rq.cancel, rq.waitDelay), nil
}

// Exec asks the server to start the external program at path with argv
// (argv[0] included) and what attr gives it, as os/exec would from the
// program, but from the small server process. Its descriptors 0 to 2 are
// as a Fork's; [Attr.Files] become descriptors 3, 4, and so on; the socket,
// if [Attr.Socket] asks for one, comes after them. The settings of attr apply
// as the kernel creates the process; [Attr.Server] and [Attr.Arg] are
// refused.
//
// [Attr.Rlimits], which belong to the whole process and which neither the
// kernel's fork-and-exec nor the server's thread can set for the program,
// are in force from the program's first instruction all the same: the
// server creates the process as it would the program's, but executing its
// own binary in a small role that, before any of the binary's package
// initialisation, sets the limits and executes the program in its place,
// with the same pid, descriptors, environment and settings. Such an Exec
// costs a start of the Go runtime more than a plain one (about 3 ms against
// 1 ms for /bin/true on a 2-core machine); one without Rlimits never takes
// that path. A limit that cannot be set (above the hard limit, without
// privilege) is Exec's error, naming setrlimit; Rlimits with [Attr.Chroot]
// are refused, since the server's binary is outside the root. On macOS,
// Exec refuses Rlimits.
// The program's exit, signals, Stop and ctx work as for a Fork; an
// error is an [*Error] naming the operation "exec" and path, and an error
// of executing the program (ENOENT, EACCES) is Exec's, as with os/exec.
//
// [Attr.Paths] and [Attr.DenySyscalls] confine the program from its first
// instruction: the server creates it from a thread of its own that sets
// no_new_privs, enters the Landlock rulesets and installs the seccomp
// filter, all of which the program inherits and keeps across execve, and
// which then ends. Only such an Exec pays for that thread. The paths let
// the program read and execute what it needs to start, as the server finds
// it: the program, a script's interpreter, the dynamic loader an ELF
// binary names, the shared libraries it and they need, found in their run
// paths, /etc/ld.so.conf.d's directories and the system's library
// directories, and the loader's cache. What the program opens once it
// runs (locale files, /dev/null, its configuration, other programs) the
// policy must list. The groups deny the program what they deny a Go
// child: a program that resolves names or talks to a daemon over a Unix
// socket needs socket and connect ([SyscallsNetwork]); a shell that runs
// other programs needs clone or fork, and execve, which no policy here
// lets it have, since Exec refuses [SyscallsExec]: the program itself
// must be executed past the filter, which this design installs before
// it (the kernel applies a filter from the thread that creates the
// process; a check of execve's arguments could be fooled). Under a policy,
// Exec also refuses Pdeathsig (the creating thread ends, which would send
// the signal), ID mappings (which are written from that thread, outside
// the policy's paths), and Namespaces with [SyscallsMount] (whose filter
// would deny the clone that creates them).
//
// Through a connection handed to a child under Paths or DenySyscalls, the
// program runs under that child's policies too, as a child forked there
// would, beneath any of its own; its program, loader and libraries must
// then be within the child's paths (the server's binary and libraries
// are). Through one under [SyscallsExec], Exec is refused with
// [ErrPermission].
//
// A path without a slash is looked up, before the request is sent, in the
// directories of the PATH the child will have, as exec.LookPath does:
// the last PATH in [Attr.ExtraEnv], else, if [Attr.Env] is set, the last
// one there, else the server's, as it started (Eval's changes are not
// seen; through a child's Server, the child's own PATH). With [Attr.Chroot]
// the directories are those inside it. None found is an error matching
// exec.ErrNotFound, and so are "." and "..", refused before any search as
// exec.LookPath refuses them; one found through a relative directory of PATH is
// refused with exec.ErrDot, as os/exec refuses it. A path with a slash is
// used as it is, a relative one from the child's working directory: name
// a program in the current directory "./prog".
func (s *Server) Exec(ctx context.Context, path string, argv []string, attr *Attr) (*Process, error) {
	p, name, err := s.execProcess(ctx, path, argv, attr)
	if err != nil {
		return nil, opError("exec", name, err)
	}
	return p, nil
}

// execProcess is Exec; its error is of the program named, which is path or,
// once looked up, the path found.
func (s *Server) execProcess(ctx context.Context, path string, argv []string, attr *Attr) (*Process, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, path, err
	}
	rq := &request{exec: true, path: path, argv: argv}
	if err := s.readAttr(rq, attr); err != nil {
		return nil, rq.path, err // the path found, once it is
	}
	p, err := s.startChild(ctx, rq)
	if err != nil {
		rq.std.abort()
		return nil, rq.path, err
	}
	return p.begin(ctx, rq.std, rq.cancel, rq.waitDelay), rq.path, nil
}

// KillAll sends sig to every child created through this connection and,
// transitively, through the connections it handed to children. Through the
// connection Start returns, that is every child of the server.
// sig must be a syscall.Signal.
func (s *Server) KillAll(sig os.Signal) error {
	return opError("kill all", "", s.signalChildren(sig, false))
}

func (s *Server) signalChildren(sig os.Signal, groups bool) error {
	n, err := sysSignal(sig)
	if err != nil {
		return err
	}
	_, err = s.exchange(context.Background(), &wire.KillAll{Sig: uint32(n), Groups: groups})
	return err
}

// [Server.KillAllGroups] is KillAll, but a child that leads a process group
// ([Attr.Setsid] or [Attr.Setpgid]) gets sig sent to its whole group, which
// reaches what it started in the group, grandchildren included.
func (s *Server) KillAllGroups(sig os.Signal) error {
	return opError("kill all groups", "", s.signalChildren(sig, true))
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
	err := checkCall(fn, arg)
	if err == nil {
		_, err = s.exchange(ctx, &wire.Eval{Name: fn.name, Arg: arg})
	}
	return opError("eval", fn.name, err)
}

// Stop stops every child and then the server. It sends SIGTERM to every
// child, which cancels the context of a child's function, and waits for all
// of them to exit; if ctx ends first, it sends SIGKILL to those left and
// returns an error matching ctx's once they are gone. Their exits reach Wait before Stop
// returns. When Stop returns, the server has exited and s is closed; a
// refusal ([ErrPermission]) leaves s as it was. On Linux, on the Server
// Start returned, what the children started is SIGKILLed once the server
// has exited, and is gone too when Stop returns (see Start).
//
// Stop returns at most a quarter of a second after ctx's end, whatever the
// server does: a server that has not stopped by then, such as one stopped
// by SIGSTOP or stuck, is killed with SIGKILL, as [Server.Close] kills it,
// and Stop returns an error matching ctx's. Through a child's Server, which
// cannot kill the server, s is then closed as Close closes it.
func (s *Server) Stop(ctx context.Context) error {
	return opError("stop", "", s.stopServer(ctx))
}

func (s *Server) stopServer(ctx context.Context) error {
	c, err := s.post(&wire.Stop{})
	if err != nil {
		return err
	}
	var ctxErr error
	r, ok := (*wire.Reply)(nil), false
	select {
	case r, ok = <-c.reply:
	case <-ctx.Done():
		ctxErr = ctx.Err()
		// The children left get SIGKILL. Its reply is not waited for: a
		// server that does not answer the Stop in time is killed itself,
		// which also ends this write should it block.
		go s.post(&wire.KillAll{Sig: uint32(syscall.SIGKILL)})
		t := time.NewTimer(stopGrace)
		select {
		case r, ok = <-c.reply:
		case <-t.C:
			s.killServer()
			s.closeWith(ErrClosed)
			return ctxErr
		}
		t.Stop()
	}
	if _, err := s.outcome(r, ok); err != nil {
		return err
	}
	s.closeWith(ErrClosed)
	return ctxErr
}

// Detach stops the server but not the children, which live on without it,
// as daemons. Processes not yet exited report [ErrClosed] from Wait. When
// Detach returns the server has exited and s is closed.
func (s *Server) Detach() error {
	if _, err := s.exchange(context.Background(), &wire.Detach{}); err != nil {
		return opError("detach", "", err)
	}
	s.closeWith(ErrClosed)
	return nil
}

// stopGrace bounds how long Stop waits after its ctx has ended, and
// closeTimeout how long Close waits for the server to exit, before they
// kill the server process: the bounds their doc comments state.
const (
	stopGrace    = 250 * time.Millisecond
	closeTimeout = time.Second
)

// Close closes the connection. Pending calls and Wait return [ErrClosed].
// Close after Close, Stop or Detach does nothing.
//
// On the Server that Start returned, the server then kills every child and
// exits, and Close returns once it has: if it has not within a second,
// Close kills the server process with SIGKILL, as it must when the server
// is stopped (SIGSTOP) or stuck, and returns once it is gone. On Linux,
// what the children started goes with them: Close returns once every
// process the server started, at any depth, is gone, the server killed or
// not (see Start).
//
// On a child's Server, Close returns as soon as the connection is closed:
// the server is not the child's to kill. The server kills every child
// forked through that connection, at any depth, as it does when the child
// holding it exits, once it reads the connection's end; on Linux, what
// those children leave behind is killed as they die.
func (s *Server) Close() error {
	s.closeWith(ErrClosed)
	return nil
}

// closeWith closes s with err as the reason calls then return, and returns
// once the connection's reader has finished and, if s is root, the server
// process is reaped: killed, if it has not exited within closeTimeout.
func (s *Server) closeWith(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.conn.Close()
	t := time.AfterFunc(closeTimeout, s.killServer)
	<-s.done
	t.Stop()
}

// killServer sends SIGKILL to the server process, if this process started
// it and what it reaps has not exited. On Linux the server is the keeper's
// child, and s.server holds a pidfd for it, so the signal cannot reach a
// process that reused its pid; on macOS the server is this process's own
// child, left a zombie until s.exited is set.
func (s *Server) killServer() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.server != nil && !s.exited {
		s.server.Kill()
	}
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
