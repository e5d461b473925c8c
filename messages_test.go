//go:build linux

package forkserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/forkserver/forkserver"
)

// onlyHere is registered in the program alone, never in the server or a
// child, whose role is in their environment as their package initialises:
// the server does not know it.
var onlyHere = func() forkserver.Func {
	if os.Getenv("FORKSERVER_ROLE") != "" {
		return forkserver.Func{}
	}
	return forkserver.Register("only-here", func(ctx context.Context, c *forkserver.Child) error { return nil })
}()

// confinedNofile forks priv-report through its own connection with the
// RLIMIT_NOFILE in its argument (none if empty) and writes the
// grandchild's limit, or "refused" if the server refused with
// ErrPermission, or the error.
var confinedNofile = forkserver.Register("confined-nofile", func(ctx context.Context, c *forkserver.Child) error {
	attr := &forkserver.Attr{Socket: true}
	if arg := string(c.Arg()); arg != "" {
		n, _ := strconv.ParseUint(arg, 10, 64)
		attr.Rlimits = []forkserver.Rlimit{{Resource: syscall.RLIMIT_NOFILE, Cur: n, Max: n}}
	}
	p, err := c.Server().Fork(ctx, privReport, attr)
	if errors.Is(err, forkserver.ErrPermission) {
		_, err = c.Conn().Write([]byte("refused"))
		return err
	} else if err != nil {
		return err
	}
	defer p.Conn().Close()
	var r report
	if err := json.NewDecoder(p.Conn()).Decode(&r); err != nil {
		return err
	}
	p.Wait()
	_, err = c.Conn().Write([]byte(strconv.FormatUint(r.NoFile, 10)))
	return err
})

// checkError checks that err is an *forkserver.Error with the text want.
func checkError(t *testing.T, what string, err error, want string) {
	t.Helper()
	var e *forkserver.Error
	if !errors.As(err, &e) || err.Error() != want {
		t.Errorf("%s: %v (%T); want *forkserver.Error %q", what, err, err, want)
	}
}

// TestErrorMessages checks the exact text users see for an unknown or zero
// Func, Exec with Rlimits and Chroot, too many Files and a failing Eval, and that
// those errors match ErrUnknownFunc and carry Op and Name.
func TestErrorMessages(t *testing.T) {
	srv := start(t) // no pool: the server judges the name
	ctx := forkserver.TestContext(t)
	_, err := srv.Fork(ctx, onlyHere, nil)
	checkError(t, "Fork of a function the server lacks", err, "forkserver: fork only-here: unknown function")
	if !errors.Is(err, forkserver.ErrUnknownFunc) {
		t.Errorf("%v does not match ErrUnknownFunc", err)
	}
	err = srv.Eval(ctx, onlyHere, nil)
	checkError(t, "Eval of a function the server lacks", err, "forkserver: eval only-here: unknown function")
	_, err = srv.Fork(ctx, forkserver.Func{}, nil)
	checkError(t, "Fork of the zero Func", err, "forkserver: fork: unknown function: the zero Func")
	if !errors.Is(err, forkserver.ErrUnknownFunc) {
		t.Errorf("%v does not match ErrUnknownFunc", err)
	}
	_, err = srv.Exec(ctx, "/bin/true", []string{"true"}, &forkserver.Attr{Chroot: "/", Rlimits: []forkserver.Rlimit{{Resource: syscall.RLIMIT_CPU, Cur: 1, Max: 1}}})
	checkError(t, "Exec with Rlimits and Chroot", err, "forkserver: exec /bin/true: Exec: Rlimits and Chroot exclude each other: the limits are set by the server's binary, outside the root")
	_, err = srv.Fork(ctx, returnNil, &forkserver.Attr{Files: make([]*os.File, forkserver.MaxFiles+1)})
	checkError(t, "Fork with too many files", err, "forkserver: fork return-nil: more than 64 files")
	err = srv.Eval(ctx, returnError, nil)
	checkError(t, "Eval of a failing function", err, "forkserver: eval return-error: boom")
	var e *forkserver.Error
	if errors.As(err, &e) && (e.Op != "eval" || e.Name != "return-error") {
		t.Errorf("Eval's error: Op %q, Name %q", e.Op, e.Name)
	}
}

// TestErrorPaths checks that a root or working directory that cannot be
// used is named, and the error matches what is wrong with it, whether the
// program judges it before it assigns a warm child or the server does.
func TestErrorPaths(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	chrootErr := fs.ErrNotExist
	chrootWhy := "no such file or directory"
	if os.Geteuid() != 0 {
		chrootErr, chrootWhy = fs.ErrPermission, "operation not permitted"
	}
	eachPool(t, func(t *testing.T, srv *forkserver.Server) {
		for _, c := range []struct {
			what  string
			attr  *forkserver.Attr
			match error
			want  string
		}{
			{"missing Chroot", &forkserver.Attr{Chroot: missing}, chrootErr, "chroot " + missing + ": " + chrootWhy},
			{"missing Dir", &forkserver.Attr{Dir: missing}, fs.ErrNotExist, "chdir " + missing + ": no such file or directory"},
			{"Dir a file", &forkserver.Attr{Dir: file}, syscall.ENOTDIR, "chdir " + file + ": not a directory"},
			{"missing relative Dir", &forkserver.Attr{Dir: "forkserver-missing-dir"}, fs.ErrNotExist, "chdir forkserver-missing-dir: no such file or directory"},
		} {
			_, err := srv.Fork(forkserver.TestContext(t), returnNil, c.attr)
			checkError(t, c.what, err, "forkserver: fork return-nil: "+c.want)
			var pe *os.PathError
			if !errors.Is(err, c.match) || !errors.As(err, &pe) {
				t.Errorf("%s: %v does not match %v as an *os.PathError", c.what, err, c.match)
			}
		}
	})
	if os.Geteuid() == 0 {
		return // a directory root cannot search is no such thing
	}
	locked := filepath.Join(dir, "locked")
	if err := os.Mkdir(locked, 0); err != nil {
		t.Fatal(err)
	}
	_, err := start(t).Fork(forkserver.TestContext(t), returnNil, &forkserver.Attr{Dir: filepath.Join(locked, "sub")})
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Dir below a directory without search permission: %v, want fs.ErrPermission", err)
	}
}

// TestConfinedRlimits checks that a confined child's children may have its
// resource limits or lower ones, never higher: asking for more is refused,
// not clamped.
func TestConfinedRlimits(t *testing.T) {
	srv := start(t)
	for _, c := range []struct{ ask, want string }{
		{"", "64"},
		{"32", "32"},
		{"64", "64"},
		{"128", "refused"},
	} {
		p := fork(t, srv, confinedNofile, &forkserver.Attr{
			Socket: true, Server: true, Arg: []byte(c.ask),
			Rlimits: []forkserver.Rlimit{{Resource: syscall.RLIMIT_NOFILE, Cur: 64, Max: 64}},
		})
		got, err := io.ReadAll(p.Conn())
		if err != nil || string(got) != c.want {
			t.Errorf("grandchild of a child limited to 64 descriptors asking for %q: %q, %v; want %q", c.ask, got, err, c.want)
		}
		forkserver.WaitSuccess(t, p)
	}
}
