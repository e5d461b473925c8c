//go:build linux || darwin

package forkserver

import (
	"errors"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/forkserver/forkserver/internal/wire"
)

// admit confines st to what cl may ask for and checks that the server can
// honour it, so that a refusal is Fork's error rather than the child's.
func (cl *client) admit(st *wire.Settings, external bool) error {
	if err := cl.confine(st); err != nil {
		return err
	}
	if len(st.PathLayers) > 0 {
		st.Set |= wire.SetNoNewPrivs // whoever sent st: the server forks such a child from a thread that has it
	}
	return admissible(st, external)
}

// admissible checks that this process, or the server it started, can
// honour st. A root or working directory it cannot use is an
// *os.PathError that names it.
func admissible(st *wire.Settings, external bool) error {
	if external && len(st.Rlimits) > 0 && st.Chroot != "" {
		return errExecSettings
	}
	if err := sandboxAdmissible(st, external); err != nil {
		return err
	}
	if !external {
		if err := goLimitsAdmissible(st); err != nil {
			return err
		}
	}
	if st.Set&wire.SetCredential != 0 && os.Geteuid() != 0 && !sameCredential(st) {
		return os.NewSyscallError("setuid", syscall.EPERM)
	}
	if st.Chroot != "" {
		if os.Geteuid() != 0 {
			return &os.PathError{Op: "chroot", Path: st.Chroot, Err: syscall.EPERM}
		}
		if err := isDir("chroot", st.Chroot); err != nil {
			return err
		}
	}
	if st.Dir != "" && st.Chroot == "" {
		if err := isDir("chdir", st.Dir); err != nil {
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
func sameCredential(st *wire.Settings) bool {
	groups, err := os.Getgroups()
	if err != nil || int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid() || len(groups) != len(st.Groups) {
		return false
	}
	for i, g := range groups {
		if uint32(g) != st.Groups[i] {
			return false
		}
	}
	return true
}

// confine makes st no more privileged than the child cl was handed to.
func (cl *client) confine(st *wire.Settings) error {
	b := cl.base
	if b == nil {
		return nil
	}
	if b.Set&wire.SetCredential != 0 {
		if st.Set&wire.SetCredential == 0 {
			st.Set |= wire.SetCredential
			st.Uid, st.Gid, st.Groups = b.Uid, b.Gid, b.Groups
		} else if st.Uid != b.Uid || st.Gid != b.Gid || !slices.Equal(st.Groups, b.Groups) {
			return ErrPermission
		}
	}
	restricted := b.Set&(wire.SetCredential|wire.SetNoNewPrivs|wire.SetEnv) != 0 || b.Chroot != "" || b.Namespaces != 0
	if st.Chroot == "" {
		st.Chroot = b.Chroot
	} else if st.Chroot != b.Chroot && restricted {
		return ErrPermission // a root of its choosing could hold setuid binaries of its making
	}
	if b.Set&wire.SetEnv != 0 && st.Set&wire.SetEnv == 0 {
		// What the child was not given, such as the server's secrets,
		// its children are not given either.
		st.Set |= wire.SetEnv
		st.Env = mergeEnv(b.Env, b.ExtraEnv)
	}
	if restricted {
		if st.UidMaps == nil && st.GidMaps == nil {
			st.UidMaps, st.GidMaps = b.UidMaps, b.GidMaps
		} else if !slices.Equal(st.UidMaps, b.UidMaps) || !slices.Equal(st.GidMaps, b.GidMaps) {
			return ErrPermission
		}
	}
	if b.Syscalls&uint32(SyscallsMount) != 0 && st.Namespaces&^b.Namespaces != 0 {
		return ErrPermission // what the child may not unshare, the server does not create for it
	}
	if confined(b) && st.Namespaces&^b.Namespaces&uint32(NewUser) != 0 {
		return ErrPermission // a new user namespace holds every capability in it: root with a sandbox is not root
	}
	st.Namespaces |= b.Namespaces
	st.Set |= b.Set & wire.SetNoNewPrivs
	// Policies only tighten: the confining child's path layers, which
	// its connection holds (see layerRulesets), are enforced first and its
	// own on top; its system call groups stay denied.
	st.Syscalls |= b.Syscalls
	if b.MemoryLimit != 0 {
		if st.MemoryLimit == 0 {
			st.MemoryLimit = b.MemoryLimit
		} else if st.MemoryLimit > b.MemoryLimit {
			return ErrPermission
		}
	}
	for _, limit := range b.Rlimits {
		i := slices.IndexFunc(st.Rlimits, func(r wire.Rlimit) bool { return r.Resource == limit.Resource })
		switch {
		case i < 0:
			st.Rlimits = append(st.Rlimits, limit)
		case st.Rlimits[i].Cur > limit.Cur || st.Rlimits[i].Max > limit.Max:
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
