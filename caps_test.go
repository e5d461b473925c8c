//go:build linux

package forkserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/forkserver/forkserver"
)

// capsReport is what sandbox-caps reports: the capability sets of the
// calling thread, from capget, those of every thread, from /proc where
// the child can read it, and what sethostname and chroot said.
type capsReport struct {
	Effective, Permitted, Inheritable uint64            // the calling thread's
	Threads                           map[string]string // set name (CapEff...) to the union over every thread, in hex; nil inside a Chroot
	Sethostname, Chroot               string
}

// sandboxCaps reports its capabilities on its Conn. Its argument says
// whether to try sethostname, which only a child in a new UTS namespace
// may be let to try: with the capability, it would rename the host.
var sandboxCaps = forkserver.Register("sandbox-caps", func(ctx context.Context, c *forkserver.Child) error {
	var r capsReport
	hdr := struct {
		version uint32
		pid     int32
	}{version: 0x20080522} // _LINUX_CAPABILITY_VERSION_3
	var data [2]struct{ effective, permitted, inheritable uint32 }
	if _, _, errno := syscall.RawSyscall(syscall.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); errno != 0 {
		return errno
	}
	r.Effective = uint64(data[0].effective) | uint64(data[1].effective)<<32
	r.Permitted = uint64(data[0].permitted) | uint64(data[1].permitted)<<32
	r.Inheritable = uint64(data[0].inheritable) | uint64(data[1].inheritable)<<32
	if tasks, err := os.ReadDir("/proc/self/task"); err == nil {
		r.Threads = map[string]string{}
		union := map[string]uint64{}
		for _, task := range tasks {
			b, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "status"))
			if err != nil {
				continue // the thread ended meanwhile
			}
			for line := range strings.Lines(string(b)) {
				name, v, ok := strings.Cut(line, ":")
				if !ok || !strings.HasPrefix(name, "Cap") {
					continue
				}
				n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				if err != nil {
					return fmt.Errorf("%s: %q", name, v)
				}
				union[name] |= n
			}
		}
		for name, n := range union {
			r.Threads[name] = strconv.FormatUint(n, 16)
		}
	}
	errText := func(err error) string {
		if err == nil {
			return "ok"
		}
		return err.Error()
	}
	if string(c.Arg()) == "sethostname" {
		r.Sethostname = errText(syscall.Sethostname([]byte("forkserver-test")))
	}
	r.Chroot = errText(syscall.Chroot("/"))
	return json.NewEncoder(c.Conn()).Encode(r)
})

// forkCaps forks sandbox-caps with attr and returns its report.
func forkCaps(t *testing.T, srv *forkserver.Server, attr *forkserver.Attr) capsReport {
	t.Helper()
	attr.Socket = true
	p := fork(t, srv, sandboxCaps, attr)
	var r capsReport
	if err := json.NewDecoder(p.Conn()).Decode(&r); err != nil {
		t.Fatalf("no report from the child: %v (%s)", err, forkserver.Wait(t, p))
	}
	forkserver.WaitSuccess(t, p)
	return r
}

// checkNoCaps fails t unless r shows no capability in any set of any
// thread, the calling thread's effective set but keep.
func checkNoCaps(t *testing.T, r capsReport, keep uint64) {
	t.Helper()
	if r.Effective != keep || r.Permitted != keep || r.Inheritable&^keep != 0 {
		t.Errorf("calling thread: effective %#x, permitted %#x, inheritable %#x; want %#x", r.Effective, r.Permitted, r.Inheritable, keep)
	}
	for _, set := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if r.Threads != nil && r.Threads[set] != "0" {
			t.Errorf("%s over every thread: %s, want 0", set, r.Threads[set])
		}
	}
}

// TestSandboxNoCapabilities checks that a child running as root with a
// sandbox (Paths, DenySyscalls or NoNewPrivs) holds no capability in any
// set of any thread, cold, beside a pool, and executed: root with a
// sandbox is not root. A child that enters its Chroot keeps only
// CAP_SYS_CHROOT, which its filter makes useless.
func TestSandboxNoCapabilities(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: without it a child holds no capability anyway")
	}
	ctx := forkserver.TestContext(t)
	srv := forkserver.StartWith(t, &forkserver.Config{PoolSize: 2})
	if err := srv.WaitWarm(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	readme := &forkserver.Attr{
		Paths:        &forkserver.PathPolicy{ReadOnly: []string{dir, "/proc"}}, // /proc: for the report
		DenySyscalls: forkserver.SyscallsNetwork | forkserver.SyscallsExec | forkserver.SyscallsTrace,
		NoNewPrivs:   true,
		Namespaces:   forkserver.NewUTS, // so that a failing sethostname renames no host
		Arg:          []byte("sethostname"),
	}
	t.Run("README", func(t *testing.T) {
		r := forkCaps(t, srv, readme)
		checkNoCaps(t, r, 0)
		if !strings.Contains(r.Sethostname, "not permitted") {
			t.Errorf("sethostname: %s, want EPERM", r.Sethostname)
		}
	})
	t.Run("DenySyscalls beside a pool", func(t *testing.T) {
		// With a warm child to take, a filter alone would leave it root's.
		r := forkCaps(t, srv, &forkserver.Attr{DenySyscalls: forkserver.SyscallsNetwork})
		checkNoCaps(t, r, 0)
	})
	t.Run("NoNewPrivs", func(t *testing.T) {
		checkNoCaps(t, forkCaps(t, srv, &forkserver.Attr{NoNewPrivs: true}), 0)
	})
	t.Run("plain", func(t *testing.T) {
		// The control: without a sandbox, root's child is root.
		if r := forkCaps(t, srv, &forkserver.Attr{}); r.Effective == 0 {
			t.Errorf("a plain child of root holds no capability: the test sees nothing")
		}
	})
	chroot, err := os.MkdirTemp("", "forkserver-chroot-") // searchable by nobody, unlike t.TempDir's parent
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(chroot) })
	if err := os.Chmod(chroot, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, cred := range []*forkserver.Credential{nil, {Uid: 65534, Gid: 65534}} {
		t.Run(fmt.Sprintf("Chroot as %v", cred), func(t *testing.T) {
			r := forkCaps(t, srv, &forkserver.Attr{Chroot: chroot, Credential: cred, DenySyscalls: forkserver.SyscallsNetwork})
			checkNoCaps(t, r, 1<<18) // CAP_SYS_CHROOT
			if !strings.Contains(r.Chroot, "not permitted") {
				t.Errorf("chroot: %s, want EPERM", r.Chroot)
			}
		})
	}
	t.Run("Exec", func(t *testing.T) {
		out, err := srv.ExecOutput(ctx, "/bin/cat", []string{"cat", "/proc/self/status"}, &forkserver.Attr{NoNewPrivs: true})
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(out)) {
			if strings.HasPrefix(line, "Cap") && strings.Trim(strings.TrimSpace(line[7:]), "0") != "" {
				t.Errorf("executed with NoNewPrivs: %s", strings.TrimSpace(line))
			}
		}
	})
}
