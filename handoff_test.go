//go:build linux

package forkserver

// The direct hand-off: warm children the server hands to the program's
// connection, which assigns them itself.

import (
	"syscall"
	"testing"

	"github.com/forkserver/forkserver/internal/wire"
)

// takeWarmChild waits until srv holds a warm child and takes it.
func takeWarmChild(t *testing.T, srv *Server) (p *Process, ctl int) {
	t.Helper()
	if !await(func() bool { p, ctl = srv.takeWarm(0); return p != nil }) {
		t.Fatalf("the server handed over no warm child in %v", hangBound)
	}
	return p, ctl
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
