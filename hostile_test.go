//go:build linux

package forkserver

// Nothing a hostile peer sends can hurt the fork server.
//
// A hostile peer is a connection with a child's rights (fork, and signal
// its own children) whose other end the test holds: a hostile-hand-over
// child, forked with Attr.Server, passes its connection to the server back
// over its socket, stops using it and exits, and the test writes whatever
// bytes and descriptors it likes. After each case the test checks that the
// server closed the hostile connection (or, for a request it must refuse,
// kept it open and answered), that it still serves the program, and that
// its goroutines, descriptors and children, measured in the server through
// Eval, come back to what they were before the case.
//
// Every server these tests start runs with its garbage collector off, so
// that a descriptor leaked on an error path is not closed behind the test's
// back by a finalizer.
//
// Tests skipped with "bug:" show server bugs found this way; remove the
// Skip once the bug is fixed.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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
		kill := appendFrame(nil, 1, &killAllMsg{})
		switch c.arg[0] % hostileChurnModes {
		case 0: // between frames: the connection just closes at exit
		case 1: // in the middle of a header
			conn.Write(kill[:5])
		case 2: // after garbage
			conn.Write(bytes.Repeat([]byte{0xff}, 64))
		case 3: // with a request in flight, whose reply finds no reader
			conn.Write(appendFrame(nil, 1, &forkMsg{name: hostileNil.name}))
		case 4: // in the middle of a body
			conn.Write(kill[:headerLen+2])
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
// or, for flagServer, a connection.
const hostileFdFlags = flagSocket | flagServer | flagStdin | flagStdout | flagStderr

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
	e := &hostileEnv{srv: startTestServer(t, cfg), dir: t.TempDir()}
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
	if exit := waitExit(t, p); !exit.Success() {
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
	if exit := waitExit(t, p); !exit.Success() {
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
	if exit := waitExit(t, p); !exit.Success() {
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
func (h *hconn) reply(t *testing.T, id uint32, code uint16) *replyMsg {
	t.Helper()
	f := h.next(t)
	r, ok := f.msg.(*replyMsg)
	if !ok || f.id != id {
		t.Fatalf("got a %T for id %d, want the reply to %d", f.msg, f.id, id)
	}
	if r.code != code {
		t.Fatalf("reply to %d: code %d (%q), want %d", id, r.code, r.text, code)
	}
	return r
}

// exit reads the exit event of the child forked by request id, which must
// come next.
func (h *hconn) exit(t *testing.T, id uint32) *Exit {
	t.Helper()
	f := h.next(t)
	m, ok := f.msg.(*exitMsg)
	if !ok || f.id != id {
		t.Fatalf("got a %T for id %d, want the exit of %d", f.msg, f.id, id)
	}
	return exitFromMsg(m)
}

// alive proves the server still reads and answers the connection.
func (h *hconn) alive(t *testing.T, id uint32) {
	t.Helper()
	h.send(t, appendFrame(nil, id, &killAllMsg{}))
	h.reply(t, id, codeOK)
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
	r, ok := f.msg.(*replyMsg)
	if !ok || f.id != id || r.code == codeOK {
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
	h.send(t, appendFrame(nil, id, &forkMsg{flags: flagSocket | flags, name: hostileEcho.name}), fd)
	syscall.Close(fd)
	r := h.reply(t, id, codeOK)
	expectByte(t, c, 'r')
	return c, int(r.value)
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
	m := &forkMsg{flags: flagSocket | flags, nfiles: nfiles, name: hostileFileKinds.name}
	h.send(t, appendFrame(nil, 1, m), append([]int{fd}, pipe.fds(m.numFds()-1)...)...)
	syscall.Close(fd)
	h.reply(t, 1, codeOK)
	c.SetReadDeadline(time.Now().Add(hangBound))
	out, err := io.ReadAll(c)
	if want := strings.Repeat("fifo\n", int(nfiles)); string(out) != want || err != nil {
		t.Errorf("the child's files are %q, %v; want %q", out, err, want)
	}
	if exit := h.exit(t, 1); !exit.Success() {
		t.Errorf("child with %d descriptors: %s", m.numFds(), exit)
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

// Malformed bytes end the connection that sent them, and only it; a valid
// frame in any number of pieces is served; a silent peer holds up no one.
func TestHostileFrames(t *testing.T) {
	e := startHostile(t)
	random := func(seed uint64, n int, prefix ...byte) []byte {
		rng := rand.New(rand.NewChaCha8([32]byte{byte(seed)}))
		for {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			copy(b, prefix)
			if _, err := parseHeader(b); err != nil {
				return b // the server must reject it on its header alone
			}
		}
	}
	kill := appendFrame(nil, 1, &killAllMsg{})
	malformed := []struct {
		name string
		b    []byte
	}{
		// Any reply to a valid frame before the garbage may be dropped when
		// the server closes the connection, so none is expected.
		{"random bytes", random(1, 64)},
		{"64 KiB of random bytes", random(2, 64<<10)},
		{"random bytes after a valid version and type", random(3, 256, protoVersion, byte(tFork))},
		{"zero header", make([]byte, headerLen)},
		{"unknown version", rawHeader(protoVersion+1, tKillAll, 0, 1, 4)},
		{"unknown type", rawHeader(protoVersion, 0, 0, 1, 0)},
		{"header claiming 4 GiB", rawHeader(protoVersion, tFork, 0, 1, 0xffffffff)},
		{"assignment header claiming 4 GiB", rawHeader(protoVersion, tAssign, 0, 1, 0xffffffff)},
		{"body one byte longer than the largest", rawHeader(protoVersion, tFork, 0, 1, maxBody+1)},
		{"trailing byte in the body", append(withLen(kill, 5), 0)},
		{"body shorter than its type", withLen(kill[:headerLen+2], 2)},
		{"hello to the server", appendFrame(nil, 1, &helloMsg{pid: 1})},
		{"reply to the server", appendFrame(nil, 1, &replyMsg{})},
		{"exit to the server", appendFrame(nil, 1, &exitMsg{pid: 1})},
		{"assignment to the server", appendFrame(nil, 1, &assignMsg{serverPid: 1, name: hostileNil.name})},
		{"valid frame, then garbage", append(slices.Clone(kill), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
	}
	for _, tc := range malformed {
		t.Run(tc.name, func(t *testing.T) {
			hc := e.dial(t)
			hc.SetWriteDeadline(time.Now().Add(hangBound))
			hc.Write(tc.b) // the server may close before it has read everything
			hc.expectClosed(t, !bytes.HasPrefix(tc.b, kill))
			e.check(t)
		})
	}

	// Cut short, then closed for writing: the server sees end-of-file in
	// the middle of a frame.
	for _, n := range []int{1, 5, headerLen - 1, headerLen, headerLen + 2} {
		t.Run(fmt.Sprintf("truncated to %d bytes, then closed", n), func(t *testing.T) {
			hc := e.dial(t)
			hc.send(t, kill[:n])
			hc.CloseWrite()
			hc.expectClosed(t, true)
			e.check(t)
		})
	}

	// A valid header, then silence: the server waits for the body, and
	// serves the program and other connections meanwhile.
	for _, n := range []uint32{4, maxBody} {
		t.Run(fmt.Sprintf("header promising %d bytes, then silence", n), func(t *testing.T) {
			hc := e.dial(t)
			hc.send(t, rawHeader(protoVersion, tKillAll, 0, 1, n))
			e.forkNil(t)
			p := e.forkEcho(t, nil)
			talk(t, p.conn)
			other := e.dial(t)
			other.alive(t, 1)
			other.Close()
			endEcho(t, p)
			e.measure(t, false)
			hc.CloseWrite()
			hc.expectClosed(t, true)
			e.check(t)
		})
	}

	t.Run("valid frames in one-byte writes", func(t *testing.T) {
		hc := e.dial(t)
		oneByOne := func(b []byte, fds ...int) {
			hc.send(t, b[:1], fds...)
			for i := 1; i < len(b); i++ {
				hc.send(t, b[i:i+1])
			}
		}
		oneByOne(appendFrame(nil, 7, &killAllMsg{}))
		hc.reply(t, 7, codeOK)

		// A fork, its socket traveling with the first byte.
		c, fd, err := socketConnPair()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		oneByOne(appendFrame(nil, 8, &forkMsg{flags: flagSocket, name: hostileEcho.name, arg: []byte("arg")}), fd)
		syscall.Close(fd)
		pid := hc.reply(t, 8, codeOK).value
		expectByte(t, c, 'r')
		talk(t, c)
		c.Close()
		if exit := hc.exit(t, 8); !exit.Success() || exit.Pid != int(pid) {
			t.Errorf("child %d forked in one-byte writes: %s (pid %d)", pid, exit, exit.Pid)
		}
		hc.alive(t, 9)
		hc.Close()
		e.check(t)
	})

	t.Run("frames coalesced and split across writes", func(t *testing.T) {
		hc := e.dial(t)
		var b []byte
		for id := uint32(1); id <= 3; id++ {
			b = appendFrame(b, id, &killAllMsg{})
		}
		cut := len(b) - 7
		hc.send(t, b[:cut])
		hc.reply(t, 1, codeOK)
		hc.reply(t, 2, codeOK)
		hc.send(t, b[cut:])
		hc.reply(t, 3, codeOK)
		hc.Close()
		e.check(t)
	})
}

// withLen returns a copy of frame b whose header claims a body of n bytes.
func withLen(b []byte, n uint32) []byte {
	b = slices.Clone(b)
	binary.LittleEndian.PutUint32(b[8:], n)
	return b
}

// Descriptors where none belong, too many, or too few end the connection,
// and every one of them is closed in the server.
func TestHostileDescriptors(t *testing.T) {
	e := startHostile(t)
	type chunk struct {
		b   []byte
		nfd int // copies of the pipe's write end attached
	}
	kill := appendFrame(nil, 1, &killAllMsg{})
	fork := func(flags uint32, nfiles uint16) []byte {
		return appendFrame(nil, 1, &forkMsg{flags: flags, nfiles: nfiles, name: hostileNil.name})
	}
	perByte := func(b []byte, n int) []chunk { // n descriptors on each byte of the header
		var cs []chunk
		for i := range headerLen {
			cs = append(cs, chunk{b[i : i+1], n})
		}
		return append(cs, chunk{b[headerLen:], 0})
	}
	k2 := withNfds(kill, 2)
	cases := []struct {
		name   string
		chunks []chunk
		// closeSend: close for writing after the chunks.
		closeSend bool
		// valid: a valid frame comes first, whose reply may or may not
		// be written before the server closes the connection.
		valid bool
		// refused: more descriptors than fit, with a header that claims
		// no more than fit. The server cannot tell them from descriptors
		// it had no room for, and may refuse the request alone (EMFILE)
		// instead of closing the connection.
		refused bool
	}{
		{name: "2 with a kill-all, header claiming 2", chunks: []chunk{{k2, 2}}},
		{name: "2 with a kill-all, header claiming none", chunks: []chunk{{kill, 2}}},
		{name: "1 with a stop, header claiming 1", chunks: []chunk{{withNfds(appendFrame(nil, 1, &stopMsg{}), 1), 1}}},
		{name: "3 with a fork declaring none, header claiming 3", chunks: []chunk{{withNfds(fork(0, 0), 3), 3}}},
		{name: "3 with a fork declaring 1, header claiming 3", chunks: []chunk{{withNfds(fork(0, 1), 3), 3}}},
		{name: "3 with a fork declaring 1, header claiming 1", chunks: []chunk{{fork(0, 1), 3}}},
		{name: "1 with a fork declaring 2", chunks: []chunk{{fork(flagStdout|flagStderr, 0), 1}}},
		{name: "none with a fork declaring 1", chunks: []chunk{{fork(0, 1), 0}}},
		{name: "65 files, one more than MaxFiles", chunks: []chunk{{fork(0, MaxFiles+1), MaxFiles + 1}}},
		{name: "one more than a frame carries, header claiming as many", chunks: []chunk{{withNfds(fork(hostileFdFlags, MaxFiles), maxFds+1), maxFds + 1}}},
		{name: "250 in one message", chunks: []chunk{{withNfds(kill, 250), 250}}},
		{name: "250 with a fork", chunks: []chunk{{fork(hostileFdFlags, MaxFiles), 250}}, refused: true},
		{name: "60 on each byte of a header", chunks: perByte(fork(hostileFdFlags, MaxFiles), 60), refused: true},
		{name: "2 on the second half of a header", chunks: []chunk{{k2[:6], 0}, {k2[6:], 2}}},
		{name: "2 on the body", chunks: []chunk{{kill[:headerLen], 0}, {kill[headerLen:], 2}}},
		{name: "2 on the next frame's body", chunks: []chunk{{append(slices.Clone(kill), kill[:headerLen]...), 0}, {kill[headerLen:], 2}}, valid: true},
		{name: "2 with a header claiming 4 GiB", chunks: []chunk{{rawHeader(protoVersion, tFork, 2, 1, 0xffffffff), 2}}},
		{name: "1 with an assignment", chunks: []chunk{{appendFrame(nil, 1, &assignMsg{flags: flagSocket, serverPid: 1, name: hostileNil.name}), 1}}},
		{name: "2 with a truncated header, then closed", chunks: []chunk{{k2[:5], 2}}, closeSend: true},
		{name: "2 with a fork's truncated body, then closed", chunks: []chunk{{fork(flagStdout|flagStderr, 0)[:headerLen+3], 2}}, closeSend: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hc := e.dial(t)
			pipe := newHostilePipe(t)
			hc.SetWriteDeadline(time.Now().Add(hangBound))
			for _, c := range tc.chunks {
				if writeMsg(hc.UnixConn, c.b, pipe.fds(c.nfd)) != nil {
					break // the server may close before it has read everything
				}
			}
			if tc.closeSend {
				hc.CloseWrite()
			}
			if tc.refused {
				hc.expectRefused(t, 1)
			} else {
				hc.expectClosed(t, !tc.valid)
			}
			pipe.expectAllClosed(t)
			hc.Close()
			e.check(t)
		})
	}
	// That the most descriptors a fork takes are served, and all closed in
	// the server, TestHostileForkSocketServerAndFiles shows.
}

// Fork requests the server must refuse are answered, and leave the
// connection open; malformed ones end it.
func TestHostileForkRequests(t *testing.T) {
	e := startHostile(t)
	t.Run("unregistered function", func(t *testing.T) {
		hc := e.dial(t)
		hc.send(t, appendFrame(nil, 1, &forkMsg{name: "hostile-no-such-function"}))
		hc.reply(t, 1, codeUnknownFunc)
		hc.alive(t, 2)
		hc.Close()
		e.check(t)
	})
	t.Run("unregistered function with descriptors and a server connection", func(t *testing.T) {
		hc := e.dial(t)
		pipe := newHostilePipe(t)
		m := &forkMsg{flags: hostileFdFlags, nfiles: MaxFiles, name: "hostile-no-such-function", arg: []byte("arg")}
		hc.send(t, appendFrame(nil, 1, m), pipe.fds(m.numFds())...)
		hc.reply(t, 1, codeUnknownFunc)
		pipe.expectAllClosed(t) // while the connection stays open
		hc.alive(t, 2)
		hc.Close()
		e.check(t)
	})
	malformed := []struct {
		name string
		m    message
	}{
		{"name of MaxName+1 bytes", &forkMsg{name: strings.Repeat("n", MaxName+1)}},
		{"empty name", &forkMsg{}},
		{"argument of MaxArg+1 bytes", &forkMsg{name: hostileNil.name, arg: make([]byte, MaxArg+1)}},
		{"unknown flag bit 31", &forkMsg{flags: 1 << 31, name: hostileNil.name}},
		{"eval name of MaxName+1 bytes", &evalMsg{name: strings.Repeat("n", MaxName+1)}},
		{"signal 65", &signalMsg{pid: 1, sig: maxSignal + 1}},
		{"signal to pid 0", &signalMsg{pid: 0}},
		{"signal to pid 2^30+1", &signalMsg{pid: 1<<30 + 1}},
		{"kill-all with signal 2^32-1", &killAllMsg{sig: 0xffffffff}},
		{"unknown right for a grandchild", &forkMsg{flags: flagServer | flagSettings, name: hostileNil.name,
			settings: settings{rights: 1 << 7}}},
	}
	for _, tc := range malformed {
		t.Run(tc.name, func(t *testing.T) {
			hc := e.dial(t)
			hc.SetWriteDeadline(time.Now().Add(hangBound))
			hc.Write(appendFrame(nil, 1, tc.m))
			hc.expectClosed(t, true)
			e.check(t)
		})
	}
}

// A child's connection may signal only its own children, transitively.
func TestHostileSignal(t *testing.T) {
	e := startHostile(t)
	t.Run("the program's child", func(t *testing.T) {
		p := e.forkEcho(t, &Attr{Setpgid: true})
		hc := e.dial(t)
		hc.send(t, appendFrame(nil, 1, &signalMsg{pid: uint32(p.Pid), sig: uint32(syscall.SIGKILL)}))
		hc.reply(t, 1, codePermission)
		hc.send(t, appendFrame(nil, 2, &signalMsg{pid: uint32(p.Pid), sig: uint32(syscall.SIGKILL), group: true}))
		hc.reply(t, 2, codePermission)
		talk(t, p.conn)
		hc.alive(t, 3)
		hc.Close()
		endEcho(t, p)
		e.check(t)
	})
	t.Run("a sibling connection's child", func(t *testing.T) {
		hc, sibling := e.dial(t), e.dial(t)
		c, pid := sibling.forkEcho(t, 1, 0)
		hc.send(t, appendFrame(nil, 1, &signalMsg{pid: uint32(pid), sig: uint32(syscall.SIGKILL)}))
		hc.reply(t, 1, codePermission)
		hc.send(t, appendFrame(nil, 2, &killAllMsg{sig: uint32(syscall.SIGKILL)}))
		hc.reply(t, 2, codeOK)
		talk(t, c)
		// Its own connection may.
		sibling.send(t, appendFrame(nil, 2, &signalMsg{pid: uint32(pid), sig: uint32(syscall.SIGKILL)}))
		sibling.reply(t, 2, codeOK)
		if exit := sibling.exit(t, 1); exit.Status.Signal() != syscall.SIGKILL {
			t.Errorf("child signalled through its own connection: %s", exit)
		}
		hc.Close()
		sibling.Close()
		e.check(t)
	})
	t.Run("no child of the server", func(t *testing.T) {
		other, err := Start(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		foreign, err := other.Fork(testContext(t), hostileEcho, &Attr{Socket: true})
		if err != nil {
			t.Fatal(err)
		}
		defer foreign.conn.Close()
		expectByte(t, foreign.conn, 'r')

		hc := e.dial(t)
		for i, target := range []struct {
			pid int
			sig syscall.Signal
		}{
			{foreign.Pid, syscall.SIGKILL}, // another server's child
			{e.srv.Pid(), syscall.SIGKILL}, // the server itself
			{other.Pid(), syscall.SIGKILL}, // another server
			{hc.pid, syscall.SIGKILL},      // the child the connection came from, gone
			{os.Getpid(), syscall.SIGCONT}, // the program
			{1, 0},                         // init
			{1 << 30, syscall.SIGKILL},     // the largest pid the codec takes
		} {
			id := uint32(i + 1)
			hc.send(t, appendFrame(nil, id, &signalMsg{pid: uint32(target.pid), sig: uint32(target.sig)}))
			hc.reply(t, id, codeProcessDone)
		}
		talk(t, foreign.conn)
		hc.alive(t, 100)
		hc.Close()
		foreign.conn.Close()
		waitExit(t, foreign)
		e.check(t)
	})
	t.Run("kill all", func(t *testing.T) {
		p := e.forkEcho(t, nil)
		q := e.forkEcho(t, &Attr{Setpgid: true})
		hc := e.dial(t)
		hc.send(t, appendFrame(nil, 10, &killAllMsg{sig: uint32(syscall.SIGKILL), groups: true}))
		hc.reply(t, 10, codeOK)
		_, own := hc.forkEcho(t, 1, 0)
		_, grand := hc.forkEcho(t, 2, flagServer) // its connection is within hc's scope
		hc.send(t, appendFrame(nil, 3, &killAllMsg{sig: uint32(syscall.SIGKILL)}))
		hc.reply(t, 3, codeOK)
		got := map[uint32]*Exit{}
		for range 2 {
			f := hc.next(t)
			m, ok := f.msg.(*exitMsg)
			if !ok {
				t.Fatalf("got a %T, want an exit", f.msg)
			}
			got[f.id] = exitFromMsg(m)
		}
		for id, pid := range map[uint32]int{1: own, 2: grand} {
			if x := got[id]; x == nil || x.Pid != pid || x.Status.Signal() != syscall.SIGKILL {
				t.Errorf("child %d after the connection's KillAll(SIGKILL): %v", pid, x)
			}
		}
		talk(t, p.conn) // the program's children are untouched
		talk(t, q.conn)
		hc.Close()
		endEcho(t, p)
		endEcho(t, q)
		e.check(t)
	})
}

// A child's connection may not Stop, Detach or Eval; the refusal leaves it
// open and the server running.
func TestHostileRights(t *testing.T) {
	e := startHostile(t)
	mustNotExist := filepath.Join(e.dir, "written-by-a-refused-eval")
	for i, tc := range []struct {
		name string
		m    message
	}{
		{"stop", &stopMsg{}},
		{"detach", &detachMsg{}},
		{"eval", &evalMsg{name: hostileMeasure.name, arg: []byte("n" + mustNotExist)}},
		{"eval of an unregistered function", &evalMsg{name: "hostile-no-such-function"}},
		// A connection for a grandchild with more rights than its own.
		{"fork granting Eval", &forkMsg{flags: flagServer | flagSettings, name: hostileNil.name,
			settings: settings{rights: uint32(RightFork | RightEval)}}},
		{"fork granting Stop", &forkMsg{flags: flagServer | flagSettings, name: hostileNil.name,
			settings: settings{rights: uint32(RightStop)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hc := e.dial(t)
			id := uint32(i + 1)
			hc.send(t, appendFrame(nil, id, tc.m))
			hc.reply(t, id, codePermission)
			hc.alive(t, id+10)
			if st := e.measure(t, false); st.Children != 0 {
				t.Errorf("a refused request left %d children", st.Children)
			}
			if _, err := os.Stat(mustNotExist); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the refused eval ran: %v", err)
			}
			hc.Close()
			e.check(t) // also: the server is not stopping
		})
	}
}

// The same through the public API: a child's Server gets ErrPermission.
func TestHostileRightsAPI(t *testing.T) {
	e := startHostile(t)
	p, err := e.srv.Fork(testContext(t), hostileTryRights, &Attr{Socket: true, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.conn.Close()
	p.conn.SetReadDeadline(time.Now().Add(hangBound))
	out, err := io.ReadAll(p.conn)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"stop": true, "detach": true, "eval": true, "fork": false, "killall": false}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(want) {
		t.Fatalf("child reported %q", out)
	}
	for _, line := range lines {
		op, rest, _ := strings.Cut(line, " ")
		denied, errText, _ := strings.Cut(rest, " ")
		if fmt.Sprint(want[op]) != denied || !want[op] && errText != "<nil>" {
			t.Errorf("through a child's Server, %s: %s (want ErrPermission: %v)", op, errText, want[op])
		}
	}
	if exit := waitExit(t, p); !exit.Success() {
		t.Errorf("child: %s", exit)
	}
	e.check(t)
}

// A flood of requests from a peer that reads no replies: the server stops
// reading it once highWater bytes of replies are queued, serves the program
// meanwhile, and answers every request, in order, once the peer reads.
func TestHostileFlood(t *testing.T) {
	e := startHostile(t)
	for _, tc := range []struct {
		n int
		// throttled: the replies (20 bytes each) overflow highWater and
		// the socket buffers, so the server must stop reading the peer.
		// 10,000 replies fit in them; 50,000 (1 MB) do not.
		throttled bool
	}{
		{10_000, false},
		{50_000, true},
	} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			hc := e.dial(t)
			var b []byte
			for id := uint32(1); id <= uint32(tc.n); id++ {
				if id%2 == 0 {
					b = appendFrame(b, id, &killAllMsg{})
				} else {
					b = appendFrame(b, id, &signalMsg{pid: 1}) // no child of the server
				}
			}
			throttles := e.measure(t, false).Throttles
			wrote := make(chan error, 1)
			go func() {
				hc.SetWriteDeadline(time.Now().Add(hangBound))
				_, err := hc.Write(b)
				wrote <- err
			}()
			if tc.throttled {
				eventually(t, "the server to stop reading a peer that reads no replies", func() bool {
					return e.measure(t, false).Throttles > throttles
				})
			}
			// The program is served meanwhile.
			e.forkNil(t)
			p := e.forkEcho(t, nil)
			talk(t, p.conn)
			endEcho(t, p)

			for id := uint32(1); id <= uint32(tc.n); id++ {
				code := codeOK
				if id%2 == 1 {
					code = codeProcessDone
				}
				f := hc.next(t)
				r, ok := f.msg.(*replyMsg)
				if !ok || f.id != id || r.code != code {
					t.Fatalf("frame %d: a %T for id %d (%+v), want the reply to %d with code %d", id, f.msg, f.id, f.msg, id, code)
				}
			}
			if err := <-wrote; err != nil {
				t.Fatalf("writing the flood: %v", err)
			}
			hc.alive(t, uint32(tc.n+1))
			hc.Close()
			e.check(t)
		})
	}
}

// Connections opened and closed many times, in every way a peer can end
// one, leave nothing behind in the server.
//
// The server opens a connection only for a child forked with Attr.Server,
// so each connection costs a fork and an exec of the test binary: with
// -race on a loaded 2-core machine 1,000 of them took two minutes. The
// check at the end is exact, so 100 connections, 20 for each way of
// ending one, 32 at a time, show a leak of a goroutine or a descriptor per
// connection 100 times over, or 20 times for one way of ending.
func TestHostileConnChurn(t *testing.T) {
	const n, window = 100, 32
	e := startHostile(t)
	hc := e.dial(t)
	sent, exited, outstanding := 0, 0, 0
	pids := map[uint32]uint32{}
	begin := time.Now()
	for exited < n {
		for outstanding < window && sent < n {
			sent++
			hc.send(t, appendFrame(nil, uint32(sent), &forkMsg{
				flags: flagServer, name: hostileChurn.name, arg: []byte{byte(sent % hostileChurnModes)}}))
			outstanding++
		}
		f := hc.next(t)
		switch m := f.msg.(type) {
		case *replyMsg:
			if m.code != codeOK {
				t.Fatalf("fork %d: code %d (%q)", f.id, m.code, m.text)
			}
			pids[f.id] = m.value
		case *exitMsg:
			if pids[f.id] == 0 || pids[f.id] != m.pid {
				t.Fatalf("exit of %d (pid %d) before its fork's reply", f.id, m.pid)
			}
			if x := exitFromMsg(m); !x.Success() {
				t.Fatalf("churn child %d (mode %d): %s", m.pid, f.id%hostileChurnModes, x)
			}
			exited++
			outstanding--
		default:
			t.Fatalf("got a %T", f.msg)
		}
	}
	t.Logf("%d connections opened and closed in %v", n, time.Since(begin))
	hc.Close()
	e.check(t)
}

// A fork with a socket, a connection to the server and more descriptors:
// the child gets the files it was given, and the server keeps no copy of
// any.
func TestHostileForkSocketServerAndFiles(t *testing.T) {
	e := startHostile(t)
	for _, tc := range []struct {
		name   string
		flags  uint32
		nfiles uint16
	}{
		{"standard output", flagSocket | flagServer | flagStdout, 0},
		{"a file", flagSocket | flagServer, 1},
		{"standard input, output and error and 64 files", hostileFdFlags, MaxFiles},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hc := e.dial(t)
			hc.forkFiles(t, tc.flags, tc.nfiles)
			hc.Close()
			e.check(t)
		})
	}
	t.Run("through the public API", func(t *testing.T) {
		pipe := newHostilePipe(t)
		p, err := e.srv.Fork(testContext(t), hostileFileKinds, &Attr{Socket: true, Server: true, Files: []*os.File{pipe.w}})
		if err != nil {
			t.Fatal(err)
		}
		defer p.conn.Close()
		p.conn.SetReadDeadline(time.Now().Add(hangBound))
		out, err := io.ReadAll(p.conn)
		if string(out) != "fifo\n" || err != nil {
			t.Errorf("the child's files are %q, %v; want %q", out, err, "fifo\n")
		}
		waitExit(t, p)
		pipe.expectAllClosed(t)
		e.check(t)
	})
}

// A fork refused because the server is stopping leaves nothing behind,
// even with a connection to the server asked for.
func TestHostileForkWhileStopping(t *testing.T) {
	e := startHostile(t)
	hc := e.dial(t)
	p := e.forkEcho(t, nil) // ignores SIGTERM: the server stops only once its socket closes
	stopped := make(chan error, 1)
	// No deadline: the test ends the echo child, which lets Stop return.
	go func() { stopped <- e.srv.Stop(context.Background()) }()
	eventually(t, "the server to begin to stop", func() bool { return e.measure(t, false).Stopping })
	before := e.resting(t)
	talk(t, p.conn)

	for i, flags := range []uint32{0, flagServer, flagSocket | flagServer} {
		id := uint32(i + 1)
		m := &forkMsg{flags: flags, name: hostileNil.name}
		var fds []int
		if flags&flagSocket != 0 {
			c, fd, err := socketConnPair()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			defer syscall.Close(fd)
			fds = []int{fd}
		}
		hc.send(t, appendFrame(nil, id, m), fds...)
		hc.reply(t, id, codeClosed)
	}
	e.base = before
	e.settle(t)

	p.conn.Close()
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Stop: %v", err)
		}
	case <-time.After(hangBound):
		t.Fatal("Stop did not return")
	}
}

// Hostile requests that bring descriptors, served by a warm pool: the
// descriptors travel in the assignment to a child that is already running.
// Eval replaces the pool's children, so the server is measured from
// outside: its descriptors, and its children, which at rest are the pool.
func TestHostilePool(t *testing.T) {
	const poolSize = 2
	e := newHostileEnv(t, &Config{PoolSize: poolSize})
	pid := e.srv.Pid()
	// At rest the pool is full. Descriptors open for a moment while it
	// fills, never fewer: the fewest seen with the pool full are the
	// server at rest.
	full := func() (fds int) {
		eventually(t, "the pool to fill", func() bool {
			fds = countFds(t, pid)
			return len(childrenOf(pid)) == poolSize
		})
		return fds
	}
	hc := e.dial(t)
	hc.Close()
	e.forkNil(t)
	base := full()
	for range 10 {
		base = min(base, full())
	}
	settle := func(t *testing.T) {
		t.Helper()
		e.forkNil(t)
		var fds, children int
		if !await(func() bool {
			fds, children = countFds(t, pid), len(childrenOf(pid))
			return fds == base && children == poolSize
		}) {
			t.Fatalf("server not back at rest: %d descriptors and %d children, want %d and %d", fds, children, base, poolSize)
		}
	}

	t.Run("the most descriptors a fork takes", func(t *testing.T) {
		hc := e.dial(t)
		hc.forkFiles(t, hostileFdFlags&^flagServer, MaxFiles)
		hc.Close()
		settle(t)
	})
	t.Run("unregistered function with descriptors", func(t *testing.T) {
		hc := e.dial(t)
		pipe := newHostilePipe(t)
		m := &forkMsg{flags: hostileFdFlags, nfiles: 3, name: "hostile-no-such-function"}
		hc.send(t, appendFrame(nil, 1, m), pipe.fds(m.numFds())...)
		hc.reply(t, 1, codeUnknownFunc)
		pipe.expectAllClosed(t)
		hc.alive(t, 2)
		hc.Close()
		settle(t)
	})
	t.Run("too few descriptors with a fork", func(t *testing.T) {
		hc := e.dial(t)
		pipe := newHostilePipe(t)
		hc.send(t, appendFrame(nil, 1, &forkMsg{flags: flagStdout | flagStderr, name: hostileNil.name}), pipe.fd)
		hc.expectClosed(t, true)
		pipe.expectAllClosed(t)
		settle(t)
	})
	t.Run("a burst larger than the pool", func(t *testing.T) {
		hc := e.dial(t)
		pipe := newHostilePipe(t)
		const n = 4 * poolSize
		for id := uint32(1); id <= n; id++ {
			hc.send(t, appendFrame(nil, id, &forkMsg{flags: flagStdout | flagServer, name: hostileNil.name}), pipe.fd)
		}
		exited := 0
		for exited < n {
			f := hc.next(t)
			switch m := f.msg.(type) {
			case *replyMsg:
				if m.code != codeOK {
					t.Fatalf("fork %d: code %d (%q)", f.id, m.code, m.text)
				}
			case *exitMsg:
				if x := exitFromMsg(m); !x.Success() {
					t.Errorf("child %d: %s", x.Pid, x)
				}
				exited++
			}
		}
		pipe.expectAllClosed(t)
		hc.Close()
		settle(t)
	})
}
