//go:build linux

package forkserver

// The direct hand-off: warm children the server hands to the program's
// connection, which assigns them itself.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/forkserver/forkserver/internal/wire"
)

// takeWarmChild waits until srv holds a warm child and takes it, closing
// the socket sent to it ahead, if any.
func takeWarmChild(t *testing.T, srv *Server) (p *Process, ctl int) {
	t.Helper()
	var w warmChild
	if !await(func() bool { p, w = srv.takeWarm(0); return p != nil }) {
		t.Fatalf("the server handed over no warm child in %v", hangBound)
	}
	if w.conn != nil {
		w.conn.Close()
	}
	return p, w.ctl
}

// TestHandOffGarbage checks that a requester that writes garbage to a warm
// child it was handed hurts nothing but that child: the child exits with an
// error, its exit reaches the requester, and the server goes on handing
// over warm children that run what they are assigned.
func TestHandOffGarbage(t *testing.T) {
	srv := startWith(t, &Config{PoolSize: 1})
	assignment := func(a *wire.Assign) []byte { return wire.AppendFrame(nil, 0, a) }
	for _, tc := range []struct {
		name  string
		bytes []byte
		fds   int // how many descriptors travel with the bytes
	}{
		{"bytes that are no frame", []byte("not a frame at all"), 0},
		{"a frame that is no assignment", wire.AppendFrame(nil, 0, &wire.Reply{}), 0},
		{"an assignment of no registered function", assignment(&wire.Assign{ServerPid: 1, Name: "handoff-no-such-function"}), 0},
		{"an assignment without the socket it announces", assignment(&wire.Assign{Flags: wire.FlagSocket, ServerPid: 1, Name: hostileNil.name}), 0},
		{"descriptors no assignment announces", assignment(&wire.Assign{ServerPid: 1, Name: hostileNil.name}), 2},
		{"an assignment for a socket sent ahead, and none was", assignment(&wire.Assign{Flags: wire.FlagSocketAhead, ServerPid: 1, Name: hostileNil.name}), 0},
		{"a socket sent ahead, then no assignment", append(wire.AppendFrame(nil, 0, &wire.Socket{}), wire.AppendFrame(nil, 0, &wire.Reply{})...), 1},
		{"two sockets sent ahead", append(wire.AppendFrame(nil, 0, &wire.Socket{}), wire.AppendFrame(nil, 0, &wire.Socket{})...), 2},
		{"a cut assignment", assignment(&wire.Assign{ServerPid: 1, Name: hostileNil.name, Arg: make([]byte, 100)})[:40], 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ctl := takeWarmChild(t, srv)
			var fds []int
			for range tc.fds {
				r, w, err := pipe()
				if err != nil {
					t.Fatal(err)
				}
				fds = append(fds, r)
				defer closeFds([]int{r, w})
			}
			err := sendMsgFd(ctl, tc.bytes, fds)
			syscall.Close(ctl)
			if err != nil {
				t.Fatal(err)
			}
			if exit := wait(t, p); exit.Success() {
				t.Fatalf("the warm child took %s and exited 0", tc.name)
			}
		})
	}
	for range 3 { // warm children handed over after the garbage still work
		p, err := srv.Fork(testContext(t), hostileNil, nil)
		if err != nil {
			t.Fatal(err)
		}
		waitSuccess(t, p)
	}
}

// handOffDescriptors writes, as JSON, its open descriptors above 2 to its
// first file, which it leaves out, and "hi" on its socket if it has one.
var handOffDescriptors = Register("handoff-descriptors", func(ctx context.Context, c *Child) error {
	names, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	var fds []string
	for _, e := range names {
		fd, _ := strconv.Atoi(e.Name())
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		// The directory read and the runtime's poller are not the child's.
		if err != nil || fd <= 2 || fd == int(c.Files()[0].Fd()) || strings.HasPrefix(target, "anon_inode:") {
			continue
		}
		if strings.HasPrefix(target, "socket:") {
			target = "socket"
		}
		fds = append(fds, target)
	}
	if err := json.NewEncoder(c.Files()[0]).Encode(fds); err != nil {
		return err
	}
	if c.Conn() != nil {
		_, err = c.Conn().Write([]byte("hi"))
	}
	return err
})

// TestSocketAhead checks that after a warm Fork that asked for a socket,
// and only then, the warm children handed over get one ahead of their
// assignment; that a warm Fork with a socket gets that one, connected to
// the child's; and that neither such a Fork nor one without a socket
// leaves the child a descriptor it did not ask for.
func TestSocketAhead(t *testing.T) {
	srv := startWith(t, &Config{PoolSize: 1})
	forks := []bool{true, true, false, false, true}
	for i, socket := range forks {
		if err := srv.WaitWarm(testContext(t)); err != nil {
			t.Fatal(err)
		}
		srv.mu.Lock()
		ahead := len(srv.warm) == 1 && srv.warm[0].conn != nil
		srv.mu.Unlock()
		if want := i > 0 && forks[i-1]; ahead != want {
			t.Fatalf("Fork %d: the warm child has a socket sent ahead: %v, want %v", i, ahead, want)
		}
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		given, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		p, err := srv.Fork(testContext(t), handOffDescriptors, &Attr{Socket: socket, Files: []*os.File{w, given}})
		w.Close()
		given.Close()
		if err != nil {
			t.Fatal(err)
		}
		var fds []string
		err = json.NewDecoder(r).Decode(&fds)
		r.Close()
		if err != nil {
			t.Fatalf("Fork %d: %v", i, err)
		}
		want := []string{os.DevNull}
		if socket {
			want = append(want, "socket")
			buf := make([]byte, 2)
			if _, err := io.ReadFull(p.Conn(), buf); err != nil || string(buf) != "hi" {
				t.Errorf("Fork %d: the socket says %q, %v", i, buf, err)
			}
			p.Conn().Close()
		} else if p.Conn() != nil {
			t.Errorf("Fork %d: a socket not asked for", i)
		}
		slices.Sort(fds)
		if !slices.Equal(fds, want) {
			t.Errorf("Fork %d, socket %v: the child's descriptors above 2 are %q, want %q", i, socket, fds, want)
		}
		waitSuccess(t, p)
		if got := srv.Stats().WarmForks; got != uint64(i+1) {
			t.Fatalf("Fork %d: %d warm forks", i, got)
		}
	}
}

// startPooledChild executes this binary as a pooled child, its control
// socket and started pipe made here, and returns the test's end of the
// control socket, the command and the child's standard error.
func startPooledChild(t *testing.T) (int, *exec.Cmd, *bytes.Buffer) {
	t.Helper()
	ours, theirs, err := socketpair()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ctl := os.NewFile(uintptr(theirs), "ctl")
	var stderr bytes.Buffer
	cmd := exec.CommandContext(testContext(t), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"="+rolePooled)
	cmd.ExtraFiles = []*os.File{ctl, w} // descriptors 3 and 4
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctl.Close()
	w.Close()
	b := make([]byte, 1)
	if n, _ := r.Read(b); n != 1 { // it is ready
		t.Fatalf("the pooled child did not say it was ready")
	}
	r.Close()
	return ours, cmd, &stderr
}

// TestSocketAheadFdsLost checks that a warm child given a socket frame
// whose descriptors it cannot all receive (more than a frame may carry,
// or none free) fails with an error, as for any other frame, and does not
// crash.
func TestSocketAheadFdsLost(t *testing.T) {
	ctl, cmd, stderr := startPooledChild(t)
	var fds []int
	for range wire.MaxFds + 2 {
		r, w, err := pipe()
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, r)
		defer closeFds([]int{r, w})
	}
	err := sendMsgFd(ctl, wire.AppendFrame(nil, 0, &wire.Socket{}), fds)
	syscall.Close(ctl)
	if err != nil {
		t.Fatal(err)
	}
	werr := cmd.Wait()
	if werr == nil {
		t.Errorf("the warm child exited 0")
	}
	if strings.Contains(stderr.String(), "panic") {
		t.Errorf("the warm child crashed (%v):\n%s", werr, stderr)
	}
}

// TestSocketAheadThenEnd checks that a warm child sent a socket ahead and
// then sent away (its control socket closed with no assignment, as when
// the program's Fork fails or the program goes) exits 0, as one sent away
// without a socket does.
func TestSocketAheadThenEnd(t *testing.T) {
	ctl, cmd, stderr := startPooledChild(t)
	conn, theirs, err := socketConnPair()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = sendMsgFd(ctl, wire.AppendFrame(nil, 0, &wire.Socket{}), []int{theirs})
	syscall.Close(theirs)
	syscall.Close(ctl)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("the warm child sent away: %v\n%s", err, stderr)
	}
}
