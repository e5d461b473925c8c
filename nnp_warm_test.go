//go:build linux

package forkserver_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/forkserver/forkserver"
)

// threadsNoNewPrivs reports on its Conn, for every thread, whether it has
// no_new_privs, as "1" or "0" per thread.
var threadsNoNewPrivs = forkserver.Register("threads-no-new-privs", func(ctx context.Context, c *forkserver.Child) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	var flags []string
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "status"))
		if err != nil {
			continue // the thread ended meanwhile
		}
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "NoNewPrivs:"); ok {
				flags = append(flags, strings.TrimSpace(v))
			}
		}
	}
	return json.NewEncoder(c.Conn()).Encode(flags)
})

// TestNoNewPrivsWarm checks that a Fork asking for NoNewPrivs takes a
// plain warm child in a program without capabilities, and that the child
// has no_new_privs on every thread. As root, where such a Fork starts cold
// (see TestSandboxNoCapabilities), the test runs itself as nobody.
func TestNoNewPrivsWarm(t *testing.T) {
	if os.Geteuid() == 0 {
		exe := copyExecutable(t)
		cmd := exec.Command(exe, "-test.run=^TestNoNewPrivsWarm$", "-test.v")
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody.Uid, Gid: nobody.Gid}}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestNoNewPrivsWarm") {
			t.Fatalf("as nobody: %v\n%s", err, out)
		}
		return
	}
	ctx := forkserver.TestContext(t)
	srv := forkserver.StartWith(t, &forkserver.Config{PoolSize: 1})
	if err := srv.WaitWarm(ctx); err != nil {
		t.Fatal(err)
	}
	before := srv.Stats()
	p := fork(t, srv, threadsNoNewPrivs, &forkserver.Attr{Socket: true, NoNewPrivs: true})
	var flags []string
	if err := json.NewDecoder(p.Conn()).Decode(&flags); err != nil {
		t.Fatalf("no report from the child: %v", err)
	}
	forkserver.WaitSuccess(t, p)
	if got := srv.Stats().WarmForks - before.WarmForks; got != 1 {
		t.Errorf("the Fork took %d warm children, want 1", got)
	}
	if len(flags) < 2 {
		t.Errorf("%d threads seen, want the runtime's several", len(flags))
	}
	for i, f := range flags {
		if f != "1" {
			t.Errorf("thread %d of %d: NoNewPrivs %s", i, len(flags), f)
		}
	}
}
