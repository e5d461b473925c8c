//go:build linux || darwin

package forkserver

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// lookPath returns the program Exec runs for name: name itself if it
// contains a slash, else the first executable file of that name in the
// directories of the PATH the child will have, as exec.LookPath finds it.
// A file found through a relative directory of PATH is refused with
// exec.ErrDot, and none found is exec.ErrNotFound. The names "." and ".."
// are exec.ErrNotFound before any search, as exec.LookPath has them since
// the fix for CVE-2025-47906: joined to a directory of PATH that names a
// file, they would find that file. The child's PATH is pathList, and its
// directories are looked in inside chroot, if that is not empty.
func (s *Server) lookPath(name, pathList, chroot string) (string, error) {
	if name == "." || name == ".." {
		return "", exec.ErrNotFound
	}
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range filepath.SplitList(pathList) {
		if dir == "" {
			dir = "." // as the shell, and exec.LookPath, read an empty entry
		}
		path := filepath.Join(dir, name)
		check := filepath.Join(chroot, path)
		if !strings.Contains(check, "/") {
			check = "./" + check // so that exec.LookPath checks this file, not PATH
		}
		if _, err := exec.LookPath(check); err != nil {
			continue
		}
		if !filepath.IsAbs(path) {
			return "", fmt.Errorf("%s in PATH: %w", path, exec.ErrDot)
		}
		return path, nil
	}
	return "", exec.ErrNotFound
}

// childPath returns the PATH of a child with the Attr.Env env and the
// Attr.ExtraEnv extraEnv: the last one in extraEnv, else, if env is set, the
// last one there, else the server's. The server's is the one it started
// with for the Server that Start returns; a child's Server uses the child's
// own.
func (s *Server) childPath(env, extraEnv []string) string {
	if v, ok := lastPath(extraEnv); ok {
		return v
	}
	if env != nil {
		v, _ := lastPath(env)
		return v
	}
	if s.root {
		return s.path
	}
	return os.Getenv("PATH")
}

// lastPath returns the value of the last PATH entry in env.
func lastPath(env []string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "PATH="); ok {
			return v, true
		}
	}
	return "", false
}
