//go:build linux

package forkserver_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/forkserver/forkserver"
)

// execOut runs name through Exec with attr and returns its standard output.
func execOut(t *testing.T, srv *forkserver.Server, name string, attr *forkserver.Attr) (string, error) {
	t.Helper()
	var out bytes.Buffer
	attr.Stdout = &out
	p, err := srv.Exec(forkserver.TestContext(t), name, []string{name}, attr)
	if err != nil {
		return "", err
	}
	forkserver.WaitSuccess(t, p)
	return out.String(), nil
}

// script writes an executable shell script named name into dir that
// prints says.
func script(t *testing.T, dir, name, says string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\necho "+says+"\n"), mode); err != nil {
		t.Fatal(err)
	}
}

// TestExecLooksUpPath checks that Exec finds a name without a slash in the
// PATH the child will have, as exec.LookPath does.
func TestExecLooksUpPath(t *testing.T) {
	srv := start(t)
	first, second := t.TempDir(), t.TempDir()
	script(t, first, "fs-prog", "first, not executable", 0o644)
	script(t, second, "fs-prog", "second", 0o755)
	search := strings.Join([]string{first, second}, string(os.PathListSeparator))
	tests := []struct {
		name string
		attr *forkserver.Attr
		want string // the output, or, if it starts with "error ", the error
	}{
		{"a system program in the server's PATH", &forkserver.Attr{}, ""},
		{"PATH from ExtraEnv", &forkserver.Attr{ExtraEnv: []string{"PATH=/nowhere", "PATH=" + search}}, "second\n"},
		{"PATH from Env", &forkserver.Attr{Env: []string{"PATH=" + search}}, "second\n"},
		{"ExtraEnv's PATH wins over Env's", &forkserver.Attr{Env: []string{"PATH=/nowhere"}, ExtraEnv: []string{"PATH=" + second}}, "second\n"},
		{"Env without PATH", &forkserver.Attr{Env: []string{"HOME=/"}}, "error not found"},
		{"only a file that is not executable", &forkserver.Attr{ExtraEnv: []string{"PATH=" + first}}, "error not found"},
		{"PATH inside Chroot", &forkserver.Attr{ExtraEnv: []string{"PATH=" + second}, Chroot: first}, "error not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "fs-prog"
			if tt.want == "" {
				name, tt.want = "true", ""
			}
			got, err := execOut(t, srv, name, tt.attr)
			switch {
			case tt.want == "error not found":
				if !errors.Is(err, exec.ErrNotFound) || !strings.Contains(err.Error(), "exec "+name) {
					t.Errorf("Exec %s: %q, %v; want an error naming it and matching exec.ErrNotFound", name, got, err)
				}
			case err != nil || got != tt.want:
				t.Errorf("Exec %s: %q, %v; want %q", name, got, err, tt.want)
			}
		})
	}
}

// TestExecRefusesRelativePath checks that a program found through a
// relative directory of PATH is refused, as exec.LookPath refuses it.
func TestExecRefusesRelativePath(t *testing.T) {
	srv := start(t)
	dir := t.TempDir()
	script(t, dir, "fs-dot", "dot", 0o755)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = execOut(t, srv, "fs-dot", &forkserver.Attr{ExtraEnv: []string{"PATH=" + rel}})
	if !errors.Is(err, exec.ErrDot) {
		t.Errorf("Exec through PATH=%s: %v; want exec.ErrDot", rel, err)
	}
	// Named with a slash, it runs.
	if got, err := execOut(t, srv, filepath.Join(dir, "fs-dot"), &forkserver.Attr{}); err != nil || got != "dot\n" {
		t.Errorf("Exec by its path: %q, %v", got, err)
	}
}

// TestExecRefusesDots checks that Exec refuses the names "." and "..",
// as exec.LookPath does since the fix for CVE-2025-47906, even where a
// directory of PATH names a file that they would find.
func TestExecRefusesDots(t *testing.T) {
	srv := start(t)
	dir := t.TempDir()
	script(t, dir, "fs-file", "ran", 0o755)
	file := filepath.Join(dir, "fs-file")
	for _, c := range []struct{ name, path string }{
		{".", file},               // the file itself
		{"..", file + "/beneath"}, // its parent, the file again
	} {
		got, err := execOut(t, srv, c.name, &forkserver.Attr{ExtraEnv: []string{"PATH=" + c.path}})
		if !errors.Is(err, exec.ErrNotFound) || got != "" {
			t.Errorf("Exec %q with PATH=%s: %q, %v; want exec.ErrNotFound and nothing run", c.name, c.path, got, err)
		}
	}
}

// TestExecPathOfConfigEnv checks that without Env or ExtraEnv, Exec looks
// in the PATH the server started with.
func TestExecPathOfConfigEnv(t *testing.T) {
	dir := t.TempDir()
	script(t, dir, "fs-prog", "from-config", 0o755)
	srv := forkserver.StartWith(t, &forkserver.Config{Env: append(os.Environ(), "PATH="+dir)})
	if got, err := execOut(t, srv, "fs-prog", &forkserver.Attr{}); err != nil || got != "from-config\n" {
		t.Errorf("Exec: %q, %v; want %q", got, err, "from-config\n")
	}
}
