//go:build linux

package forkserver

import (
	"context"
	"errors"
	"testing"

	"github.com/forkserver/forkserver/internal/wire"
)

// TestAwaitLaunchEnded: a launch abandoned by its ctx is awaited in the
// background; should the connection end first, the Process ends with its
// pipe closed, and the wait reports that end instead of reading a frame
// that never came (it dereferenced one and crashed the program).
func TestAwaitLaunchEnded(t *testing.T) {
	p := &Process{exitFd: -1, done: make(chan struct{})}
	p.finish(nil, ErrClosed)
	_, err := new(Server).awaitLaunch(context.Background(), p, &call{reply: make(chan *wire.Reply)})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("awaitLaunch of an ended Process: %v, want ErrClosed", err)
	}
}
