//go:build linux

package forkserver

// The harness of hostile_test.go: the children and Eval functions of its
// servers, the server measured at rest (hostileEnv), and the test's end of
// a hostile connection (hconn).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/forkserver/forkserver/internal/wire"
)

// Functions for the hostile tests' children and for Eval in their servers.
var (
	// hostileHandOver passes its connection to the server over its socket,
	// closes its own copy so that it reads none of the replies meant for
	// the test, and waits until its socket closes.
	hostileHandOver = Register("hostile-hand-over", func(ctx context.Context, c *Child) error {
		if c.conn == nil || c.server == nil {
			return errors.New("hostile-hand-over needs Attr.Socket and Attr.Server")
		}
		rc, err := c.server.conn.SyscallConn()
		if err != nil {
			return err
		}
		var werr error
		if err := rc.Control(func(fd uintptr) { werr = writeMsg(c.conn, []byte{'f'}, []int{int(fd)}) }); err != nil {
			return err
		}
		if werr != nil {
			return werr
		}
		c.server.Close() // returns once this process no longer reads the connection
		if _, err := c.conn.Write([]byte{'r'}); err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, c.conn)
		return err
	})

	hostileNil = Register("hostile-nil", func(ctx context.Context, c *Child) error { return nil })

	// hostileEcho says it is ready, then echoes its socket until it closes.
	// It ignores SIGTERM.
	hostileEcho = Register("hostile-echo", func(ctx context.Context, c *Child) error {
		if _, err := c.conn.Write([]byte{'r'}); err != nil {
			return err
		}
		_, err := io.Copy(c.conn, c.conn)
		return err
	})

	// hostileMeasure runs in a server, through Eval, and writes a
	// hostileStats as JSON to the path its argument names after a mode
	// byte: 'n' for the counts, 's' for the descriptors and stacks as well.
	hostileMeasure = Register("hostile-measure", func(ctx context.Context, c *Child) error {
		s := running
		if s == nil || len(c.arg) < 2 {
			return errors.New("hostile-measure runs in a server, through Eval, with a mode and a path")
		}
		full, path := c.arg[0] == 's', string(c.arg[1:])
		var st hostileStats
		s.mu.Lock()
		st.Children = len(s.children)
		st.Stopping = s.stopping
		st.Counted = s.program.alive
		s.mu.Unlock()
		st.Goroutines = runtime.NumGoroutine()
		st.Throttles = s.throttles.Load()
		ents, err := os.ReadDir("/proc/self/fd") // counts its own descriptor, every time
		if err != nil {
			return err
		}
		st.Fds = len(ents)
		st.OSChildren = len(childrenOf(os.Getpid()))
		if full {
			for _, e := range ents {
				target, _ := os.Readlink("/proc/self/fd/" + e.Name())
				st.FdList = append(st.FdList, e.Name()+" -> "+target)
			}
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			for n == len(buf) {
				buf = make([]byte, 2*len(buf))
				n = runtime.Stack(buf, true)
			}
			st.Stacks = string(buf[:n])
		}
		b, err := json.Marshal(&st)
		if err != nil {
			return err
		}
		return os.WriteFile(path, b, 0o600)
	})

	hostileNoGC = Register("hostile-no-gc", func(ctx context.Context, c *Child) error {
		if running == nil {
			return errors.New("hostile-no-gc runs in a server, through Eval")
		}
		debug.SetGCPercent(-1)
		return nil
	})

	// hostileTryRights tries, through the public API, what a child's
	// connection may not do, then what it may, and reports each result on
	// its socket as a line "op errors.Is(err, ErrPermission) err".
	hostileTryRights = Register("hostile-try-rights", func(ctx context.Context, c *Child) error {
		s := c.Server()
		w := bufio.NewWriter(c.Conn())
		report := func(op string, err error) {
			fmt.Fprintf(w, "%s %v %v\n", op, errors.Is(err, ErrPermission), err)
		}
		report("stop", s.Stop(ctx))
		report("detach", s.Detach())
		report("eval", s.Eval(ctx, hostileNil, nil))
		p, err := s.Fork(ctx, hostileNil, nil)
		if err == nil {
			var exit *Exit
			if exit, err = p.Wait(); err == nil && !exit.Success() {
				err = errors.New(exit.String())
			}
		}
		report("fork", err)
		report("killall", s.KillAll(syscall.SIGKILL))
		s.Close()
		return w.Flush()
	})

	// hostileChurn ends its connection to the server in the way its
	// argument chooses, and exits 0.
	hostileChurn = Register("hostile-churn", func(ctx context.Context, c *Child) error {
		conn := c.server.conn
		kill := wire.AppendFrame(nil, 1, &wire.KillAll{})
		switch c.arg[0] % hostileChurnModes {
		case 0: // between frames: the connection just closes at exit
		case 1: // in the middle of a header
			conn.Write(kill[:5])
		case 2: // after garbage
			conn.Write(bytes.Repeat([]byte{0xff}, 64))
		case 3: // with a request in flight, whose reply finds no reader
			conn.Write(wire.AppendFrame(nil, 1, &wire.Fork{Name: hostileNil.name}))
		case 4: // in the middle of a body
			conn.Write(kill[:wire.HeaderSize+2])
		}
		return nil
	})
)

const hostileChurnModes = 5

// hostileFileKinds writes on its socket, one per line, what each of its
// files is: "fifo", "socket" or "other".
var hostileFileKinds = Register("hostile-file-kinds", func(ctx context.Context, c *Child) error {
	w := bufio.NewWriter(c.conn)
	for _, f := range c.files {
		kind := "other"
		if fi, err := f.Stat(); err == nil {
			switch fi.Mode().Type() {
			case os.ModeNamedPipe:
				kind = "fifo"
			case os.ModeSocket:
				kind = "socket"
			}
		}
		fmt.Fprintln(w, kind)
	}
	return w.Flush()
})

// hostileFdFlags are the flags of a fork request that bring descriptors,
// or, for wire.FlagServer, a connection.
const hostileFdFlags = wire.FlagSocket | wire.FlagServer | wire.FlagStdin | wire.FlagStdout | wire.FlagStderr

// hostileStats is what hostileMeasure sees in the server.
type hostileStats struct {
	Children   int   // entries in the server's child table
	OSChildren int   // processes whose parent is the server, zombies included
	Goroutines int   // the measuring goroutine included
	Fds        int   // entries in /proc/self/fd, the listing's own included
	Stopping   bool  // the server takes no new children
	Counted    int   // children counted toward the program's connection's bound
	Throttles  int64 // times a client was not read from while too much was queued for it

	FdList []string `json:",omitempty"`
	Stacks string   `json:",omitempty"`
}

// atRest reports whether the server is back where base found it. A
// goroutine writing out a reply may linger for a moment, so base holds the
// fewest goroutines seen at rest, and more are allowed only while polling.
func (st hostileStats) atRest(base hostileStats) bool {
	return st.Children == base.Children && st.OSChildren == base.OSChildren && st.Counted == base.Counted &&
		st.Fds == base.Fds && st.Goroutines <= base.Goroutines && st.Stopping == base.Stopping
}

func (st hostileStats) String() string {
	return fmt.Sprintf("%d children (%d processes, %d counted), %d descriptors, %d goroutines, stopping %v",
		st.Children, st.OSChildren, st.Counted, st.Fds, st.Goroutines, st.Stopping)
}

// hostileEnv is a fresh server for one top-level test, with its resting
// state.
type hostileEnv struct {
	srv  *Server
	dir  string
	base hostileStats // at rest, with its descriptor list
}

// startHostile starts a server with its garbage collector off, warms it
// up and takes its resting state.
func startHostile(t *testing.T) *hostileEnv {
	t.Helper()
	e := newHostileEnv(t, nil)
	// Warm up: everything a case does once, so that what the runtime
	// creates for good is there before the count.
	hc := e.dial(t)
	hc.send(t, []byte("warm up, malformed"))
	hc.expectClosed(t, true)
	hc.Close()
	e.forkNil(t)
	e.measure(t, true)

	e.base = e.resting(t)
	if e.base.Children != 0 || e.base.OSChildren != 0 || e.base.Stopping {
		t.Fatalf("server not at rest after warming up: %v", e.base)
	}
	return e
}

// newHostileEnv starts a server with cfg and turns its garbage collector
// off.
func newHostileEnv(t *testing.T, cfg *Config) *hostileEnv {
	t.Helper()
	e := &hostileEnv{srv: startWith(t, cfg), dir: t.TempDir()}
	if err := e.srv.Eval(testContext(t), hostileNoGC, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

// resting returns the server's state with the fewest goroutines and
// descriptors seen in a few samples: those of the server at rest.
func (e *hostileEnv) resting(t *testing.T) hostileStats {
	t.Helper()
	rest := e.measure(t, true)
	for range 10 {
		st := e.measure(t, false)
		rest.Goroutines = min(rest.Goroutines, st.Goroutines)
		rest.Fds = min(rest.Fds, st.Fds)
	}
	return rest
}

// measure returns what hostileMeasure sees in the server now.
func (e *hostileEnv) measure(t *testing.T, full bool) hostileStats {
	t.Helper()
	path := filepath.Join(e.dir, "stats.json")
	mode := "n"
	if full {
		mode = "s"
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	if err := e.srv.Eval(ctx, hostileMeasure, []byte(mode+path)); err != nil {
		t.Fatalf("measuring the server: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st hostileStats
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// settle waits until the server is back at rest, and fails the test with
// the numbers if it is not by the deadline. The state it failed in becomes
// the resting state, so that a leak fails one case, not every one after.
func (e *hostileEnv) settle(t *testing.T) {
	t.Helper()
	if await(func() bool { return e.measure(t, false).atRest(e.base) }) {
		return
	}
	st := e.measure(t, true)
	msg := fmt.Sprintf("server not back at rest after %v: %v, want %v (goroutines at most)", hangBound, st, e.base)
	if st.Fds != e.base.Fds {
		msg += fmt.Sprintf("\ndescriptors now:  %q\ndescriptors then: %q", st.FdList, e.base.FdList)
	}
	if st.Goroutines > e.base.Goroutines {
		msg += "\ngoroutines now:\n" + st.Stacks
	}
	e.base = st
	t.Fatal(msg)
}

// check proves the server still serves the program: a child forked
// through the program's connection runs and its exit comes back. Then it
// waits until the server is back at rest.
func (e *hostileEnv) check(t *testing.T) {
	t.Helper()
	e.forkNil(t)
	e.settle(t)
}

// forkNil forks a child that returns nil through the program's connection
// and waits for it.
func (e *hostileEnv) forkNil(t *testing.T) {
	t.Helper()
	p, err := e.srv.Fork(testContext(t), hostileNil, nil)
	if err != nil {
		t.Fatalf("the server no longer forks for the program: %v", err)
	}
	if exit := wait(t, p); !exit.Success() {
		t.Fatalf("child of the program: %s", exit)
	}
}

// forkEcho forks a hostile-echo child through the program's connection and
// waits until it is ready. The test closes its socket, which ends it.
func (e *hostileEnv) forkEcho(t *testing.T, attr *Attr) *Process {
	t.Helper()
	if attr == nil {
		attr = new(Attr)
	}
	attr.Socket = true
	p, err := e.srv.Fork(testContext(t), hostileEcho, attr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.conn.Close() })
	expectByte(t, p.conn, 'r')
	return p
}

// endEcho closes the socket of a hostile-echo child of the program and
// waits for its exit.
func endEcho(t *testing.T, p *Process) {
	t.Helper()
	p.conn.Close()
	if exit := wait(t, p); !exit.Success() {
		t.Errorf("echo child %d: %s", p.Pid, exit)
	}
}

// talk proves a hostile-echo child still runs: it echoes a byte.
func talk(t *testing.T, c *net.UnixConn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(hangBound))
	if _, err := c.Write([]byte{'x'}); err != nil {
		t.Fatalf("echo child gone: %v", err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 'x' {
		t.Fatalf("echo child gone: read %q, %v", b, err)
	}
}

// hconn is the test's end of a hostile connection to the server.
type hconn struct {
	*net.UnixConn
	r   *frameReader
	pid int // the exited child the connection was handed out to
}

// dial returns a connection to the server with a child's rights, through
// a hostile-hand-over child that has exited by the time dial returns. The
// test closes it when it ends.
func (e *hostileEnv) dial(t *testing.T) *hconn {
	t.Helper()
	p, err := e.srv.Fork(testContext(t), hostileHandOver, &Attr{Socket: true, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.conn.Close()
	p.conn.SetReadDeadline(time.Now().Add(hangBound))
	b := make([]byte, 1)
	_, fds, err := readMsg(p.conn, b, make([]byte, syscall.CmsgSpace(4)), 1)
	if err != nil || len(fds) != 1 || b[0] != 'f' {
		closeFds(fds)
		t.Fatalf("hand-over child sent %q and %d descriptors: %v", b, len(fds), err)
	}
	c, err := unixConn(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	expectByte(t, p.conn, 'r') // the child no longer reads the connection
	p.conn.Close()
	if exit := wait(t, p); !exit.Success() {
		t.Fatalf("hand-over child: %s", exit)
	}
	return &hconn{UnixConn: c, r: newFrameReader(c), pid: p.Pid}
}

// send writes b with fds attached to its first byte.
func (h *hconn) send(t *testing.T, b []byte, fds ...int) {
	t.Helper()
	h.SetWriteDeadline(time.Now().Add(hangBound))
	if err := writeMsg(h.UnixConn, b, fds); err != nil {
		t.Fatalf("writing to the server: %v", err)
	}
}

// next reads the next frame from the server.
func (h *hconn) next(t *testing.T) frame {
	t.Helper()
	h.SetReadDeadline(time.Now().Add(hangBound))
	f, err := h.r.read()
	if err != nil {
		t.Fatalf("reading from the server: %v", err)
	}
	if len(f.fds) > 0 {
		closeFds(f.fds)
		t.Fatalf("the server sent %d descriptors", len(f.fds))
	}
	return f
}

// reply reads the reply to the request id, which must come next, and
// checks its code.
func (h *hconn) reply(t *testing.T, id uint32, code uint16) *wire.Reply {
	t.Helper()
	f := h.next(t)
	r, ok := f.msg.(*wire.Reply)
	if !ok || f.id != id {
		t.Fatalf("got a %T for id %d, want the reply to %d", f.msg, f.id, id)
	}
	if r.Code != code {
		t.Fatalf("reply to %d: code %d (%q), want %d", id, r.Code, r.Text, code)
	}
	return r
}

// exit reads the exit event of the child forked by request id, which must
// come next.
func (h *hconn) exit(t *testing.T, id uint32) *Exit {
	t.Helper()
	f := h.next(t)
	m, ok := f.msg.(*wire.Exit)
	if !ok || f.id != id {
		t.Fatalf("got a %T for id %d, want the exit of %d", f.msg, f.id, id)
	}
	return exitFromMsg(m)
}

// alive proves the server still reads and answers the connection.
func (h *hconn) alive(t *testing.T, id uint32) {
	t.Helper()
	h.send(t, wire.AppendFrame(nil, id, &wire.KillAll{}))
	h.reply(t, id, wire.CodeOK)
}

// expectClosed reads until the server closes the connection. With strict,
// nothing may come before the end.
func (h *hconn) expectClosed(t *testing.T, strict bool) {
	t.Helper()
	h.SetReadDeadline(time.Now().Add(hangBound))
	buf := make([]byte, 4096)
	n := 0
	for {
		m, err := h.Read(buf)
		n += m
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the server kept the connection open for %v", hangBound)
		}
		if err != nil {
			break // io.EOF, or ECONNRESET when the server left bytes unread
		}
	}
	if strict && n > 0 {
		t.Errorf("the server sent %d bytes before closing the connection, want none", n)
	}
}

// expectRefused reads until the server either closes the connection or
// refuses the request id with an error, in which case the connection must
// still be served.
func (h *hconn) expectRefused(t *testing.T, id uint32) {
	t.Helper()
	h.SetReadDeadline(time.Now().Add(hangBound))
	f, err := h.r.read()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server neither refused the request nor closed the connection in %v", hangBound)
	}
	if err != nil {
		return // closed
	}
	closeFds(f.fds)
	r, ok := f.msg.(*wire.Reply)
	if !ok || f.id != id || r.Code == wire.CodeOK {
		t.Fatalf("got a %T for id %d (%+v), want a refusal of %d or the end of the connection", f.msg, f.id, f.msg, id)
	}
	h.alive(t, id+1000)
}

// forkEcho asks, through h, for a hostile-echo child with flags besides its
// socket, and returns its socket once it is ready, and its pid.
func (h *hconn) forkEcho(t *testing.T, id, flags uint32) (*net.UnixConn, int) {
	t.Helper()
	c, fd, err := socketConnPair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h.send(t, wire.AppendFrame(nil, id, &wire.Fork{Flags: wire.FlagSocket | flags, Name: hostileEcho.name}), fd)
	syscall.Close(fd)
	r := h.reply(t, id, wire.CodeOK)
	expectByte(t, c, 'r')
	return c, int(r.Value)
}

// forkFiles asks through h for a hostile-file-kinds child with a socket
// and the descriptors flags and nfiles call for, all but the socket copies
// of a pipe's write end. The child must see nfiles pipes and exit 0, the
// server must keep no copy of any descriptor, and h must still be served.
// It uses the request ids 1 and 2.
func (h *hconn) forkFiles(t *testing.T, flags uint32, nfiles uint16) {
	t.Helper()
	pipe := newHostilePipe(t)
	c, fd, err := socketConnPair()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := &wire.Fork{Flags: wire.FlagSocket | flags, NumFiles: nfiles, Name: hostileFileKinds.name}
	h.send(t, wire.AppendFrame(nil, 1, m), append([]int{fd}, pipe.fds(m.NumFds()-1)...)...)
	syscall.Close(fd)
	h.reply(t, 1, wire.CodeOK)
	c.SetReadDeadline(time.Now().Add(hangBound))
	out, err := io.ReadAll(c)
	if want := strings.Repeat("fifo\n", int(nfiles)); string(out) != want || err != nil {
		t.Errorf("the child's files are %q, %v; want %q", out, err, want)
	}
	if exit := h.exit(t, 1); !exit.Success() {
		t.Errorf("child with %d descriptors: %s", m.NumFds(), exit)
	}
	pipe.expectAllClosed(t)
	h.alive(t, 2)
}

// hostilePipe is a pipe whose write end the tests pass to the server: once
// the test has closed its own, the read end sees end-of-file only if no
// copy is left open anywhere, in the server above all.
type hostilePipe struct {
	r, w *os.File
	fd   int // w's descriptor
}

func newHostilePipe(t *testing.T) *hostilePipe {
	t.Helper()
	r, w := testPipe(t)
	p := &hostilePipe{r: r, w: w, fd: -1}
	rc, err := w.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { p.fd = int(fd) })
	return p
}

// fds returns n copies of the write end's descriptor.
func (p *hostilePipe) fds(n int) []int {
	fds := make([]int, n)
	for i := range fds {
		fds[i] = p.fd
	}
	return fds
}

// expectAllClosed closes the test's write end and checks that no other
// copy is open.
func (p *hostilePipe) expectAllClosed(t *testing.T) {
	t.Helper()
	p.w.Close()
	p.r.SetReadDeadline(time.Now().Add(hangBound))
	if _, err := io.ReadAll(p.r); err != nil {
		t.Fatalf("a descriptor passed to the server is still open: %v", err)
	}
}

// withNfds returns a copy of frame b whose header claims n descriptors.
func withNfds(b []byte, n uint16) []byte {
	b = slices.Clone(b)
	binary.LittleEndian.PutUint16(b[2:], n)
	return b
}

// withLen returns a copy of frame b whose header claims a body of n bytes.
func withLen(b []byte, n uint32) []byte {
	b = slices.Clone(b)
	binary.LittleEndian.PutUint32(b[8:], n)
	return b
}
