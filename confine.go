//go:build linux || darwin

package forkserver

import (
	"errors"
	"os"
	"slices"
	"strings"
	"syscall"
)

// admit confines st to what cl may ask for and checks that the server can
// honour it, so that a refusal is Fork's error rather than the child's.
func (cl *client) admit(st *settings, external bool) error {
	if err := cl.confine(st); err != nil {
		return err
	}
	if len(st.pathLayers) > 0 {
		st.set |= setNoNewPrivs // whoever sent st: the server forks such a child from a thread that has it
	}
	return admissible(st, external)
}

// admissible checks that this process, or the server it started, can
// honour st. A root or working directory it cannot use is an
// *os.PathError that names it.
func admissible(st *settings, external bool) error {
	if err := sandboxAdmissible(st, external); err != nil {
		return err
	}
	if st.set&setCredential != 0 && os.Geteuid() != 0 && !sameCredential(st) {
		return os.NewSyscallError("setuid", syscall.EPERM)
	}
	if st.chroot != "" {
		if os.Geteuid() != 0 {
			return &os.PathError{Op: "chroot", Path: st.chroot, Err: syscall.EPERM}
		}
		if err := isDir("chroot", st.chroot); err != nil {
			return err
		}
	}
	if st.dir != "" && st.chroot == "" {
		if err := isDir("chdir", st.dir); err != nil {
			return err
		}
	}
	_, err := sysProcAttr(st, external)
	return err
}

// isDir returns nil if path is a directory, else why not, as the error of
// op on path.
func isDir(op, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			errno = syscall.ENOENT
		}
		return &os.PathError{Op: op, Path: path, Err: errno}
	}
	if !fi.IsDir() {
		return &os.PathError{Op: op, Path: path, Err: syscall.ENOTDIR}
	}
	return nil
}

// sameCredential reports whether st's credential is the one this process
// has, the only one a process without privileges can run a child as.
func sameCredential(st *settings) bool {
	groups, err := os.Getgroups()
	if err != nil || int(st.uid) != os.Geteuid() || int(st.gid) != os.Getegid() || len(groups) != len(st.groups) {
		return false
	}
	for i, g := range groups {
		if uint32(g) != st.groups[i] {
			return false
		}
	}
	return true
}

// confine makes st no more privileged than the child cl was handed to.
func (cl *client) confine(st *settings) error {
	b := cl.base
	if b == nil {
		return nil
	}
	if b.set&setCredential != 0 {
		if st.set&setCredential == 0 {
			st.set |= setCredential
			st.uid, st.gid, st.groups = b.uid, b.gid, b.groups
		} else if st.uid != b.uid || st.gid != b.gid || !slices.Equal(st.groups, b.groups) {
			return ErrPermission
		}
	}
	restricted := b.set&(setCredential|setNoNewPrivs|setEnv) != 0 || b.chroot != "" || b.namespaces != 0
	if st.chroot == "" {
		st.chroot = b.chroot
	} else if st.chroot != b.chroot && restricted {
		return ErrPermission // a root of its choosing could hold setuid binaries of its making
	}
	if b.set&setEnv != 0 && st.set&setEnv == 0 {
		// What the child was not given, such as the server's secrets,
		// its children are not given either.
		st.set |= setEnv
		st.env = mergeEnv(b.env, b.extraEnv)
	}
	if restricted {
		if st.uidMaps == nil && st.gidMaps == nil {
			st.uidMaps, st.gidMaps = b.uidMaps, b.gidMaps
		} else if !slices.Equal(st.uidMaps, b.uidMaps) || !slices.Equal(st.gidMaps, b.gidMaps) {
			return ErrPermission
		}
	}
	if b.syscalls&uint32(SyscallsMount) != 0 && st.namespaces&^b.namespaces != 0 {
		return ErrPermission // what the child may not unshare, the server does not create for it
	}
	st.namespaces |= b.namespaces
	st.set |= b.set & setNoNewPrivs
	// Policies only tighten: the confining child's path layers, which
	// its connection holds (see layerRulesets), are enforced first and its
	// own on top; its system call groups stay denied.
	st.syscalls |= b.syscalls
	for _, limit := range b.rlimits {
		i := slices.IndexFunc(st.rlimits, func(r wireRlimit) bool { return r.resource == limit.resource })
		switch {
		case i < 0:
			st.rlimits = append(st.rlimits, limit)
		case st.rlimits[i].cur > limit.cur || st.rlimits[i].max > limit.max:
			return ErrPermission
		}
	}
	return nil
}

// mergeEnv returns env with extra added, each key once, the later entry
// winning, as a Go child's os.Setenv would have it.
func mergeEnv(env, extra []string) []string {
	if len(extra) == 0 {
		return env
	}
	index := make(map[string]int)
	var out []string
	for _, kv := range append(env[:len(env):len(env)], extra...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	return out
}
