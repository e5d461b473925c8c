//go:build linux

package forkserver_test

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/forkserver/forkserver"
)

// comm returns the name of process pid as ps shows it.
func comm(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSuffix(b, []byte("\n")))
}

// parent returns the parent of process pid.
func parent(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The name, field 2, is in parentheses and may hold anything: the
	// fields after its last ')' are state, then the parent.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		t.Fatal(err)
	}
	return ppid
}

// TestProcessNames checks that the keeper, the server and every kind of
// child, warm or cold, plain or inside a path policy, bear the program's
// name where ps, top and pgrep look for it.
func TestProcessNames(t *testing.T) {
	want := comm(t, os.Getpid())
	paths := &forkserver.PathPolicy{ReadOnly: []string{t.TempDir()}}
	srv := forkserver.StartWith(t, &forkserver.Config{
		PoolSize:  1,
		Sandboxes: []forkserver.Sandbox{{Attr: &forkserver.Attr{Paths: paths}, Size: 1}},
	})
	if err := srv.WaitWarm(forkserver.TestContext(t)); err != nil {
		t.Fatal(err)
	}
	if got := comm(t, srv.Pid()); got != want {
		t.Errorf("the server is named %q, want %q", got, want)
	}
	if keeper := parent(t, srv.Pid()); keeper != os.Getpid() {
		if got := comm(t, keeper); got != want {
			t.Errorf("the keeper is named %q, want %q", got, want)
		}
	}
	cold := forkserver.StartWith(t, &forkserver.Config{PoolSize: 0})
	for _, c := range []struct {
		name string
		srv  *forkserver.Server
		attr *forkserver.Attr
	}{
		{"warm", srv, &forkserver.Attr{}},
		{"warm sandboxed", srv, &forkserver.Attr{Paths: paths}},
		{"cold", cold, &forkserver.Attr{}},
		{"cold sandboxed", cold, &forkserver.Attr{Paths: paths}},
	} {
		c.attr.Socket = true
		p := fork(t, c.srv, echo, c.attr)
		// The echo proves the child runs its function, past its start.
		if _, err := p.Conn().Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Conn().Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		if got := comm(t, p.Pid); got != want {
			t.Errorf("a %s child is named %q, want %q", c.name, got, want)
		}
		p.Conn().Close()
		forkserver.WaitSuccess(t, p)
	}
}
