//go:build linux || darwin

package forkserver

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"syscall"
)

func (a *Attr) settings() (settings, error) {
	st := settings{
		dir:        a.Dir,
		chroot:     a.Chroot,
		env:        a.Env,
		extraEnv:   a.ExtraEnv,
		namespaces: uint32(a.Namespaces),
		pdeathsig:  uint32(a.Pdeathsig),
		rights:     uint32(a.ServerRights),
		children:   uint32(a.ServerMaxChildren),
		syscalls:   uint32(a.DenySyscalls),
	}
	if p := a.Paths; p != nil {
		layer, err := p.layer()
		if err != nil {
			return st, err
		}
		st.pathLayers = []pathLayer{layer}
		st.set |= setNoNewPrivs // the kernel requires it of an unprivileged process
	}
	for _, b := range []struct {
		set  bool
		flag uint32
	}{{a.Setsid, setSetsid}, {a.Setpgid, setSetpgid}, {a.Env != nil, setEnv}, {a.Credential != nil, setCredential}, {a.NoNewPrivs, setNoNewPrivs}} {
		if b.set {
			st.set |= b.flag
		}
	}
	if c := a.Credential; c != nil {
		st.uid, st.gid, st.groups = c.Uid, c.Gid, c.Groups
	}
	for _, m := range a.UidMappings {
		st.uidMaps = append(st.uidMaps, wireIDMap{m.ContainerID, m.HostID, m.Size})
	}
	for _, m := range a.GidMappings {
		st.gidMaps = append(st.gidMaps, wireIDMap{m.ContainerID, m.HostID, m.Size})
	}
	for _, r := range a.Rlimits {
		if r.Resource < 0 || r.Resource > 1<<16 {
			return st, errorf("Rlimit resource %d out of range", r.Resource)
		}
		st.rlimits = append(st.rlimits, wireRlimit{uint32(r.Resource), r.Cur, r.Max})
	}
	switch {
	case len(a.Files) > MaxFiles:
		return st, errTooManyFiles
	case len(a.Dir) > maxPath || len(a.Chroot) > maxPath:
		return st, errorf("Dir or Chroot longer than %d bytes", maxPath)
	case len(a.Env) > maxList || len(a.ExtraEnv) > maxList:
		return st, errorf("more than %d environment entries", maxList)
	case len(st.groups) > maxGroups:
		return st, errorf("more than %d groups", maxGroups)
	case len(st.uidMaps) > maxIDMaps || len(st.gidMaps) > maxIDMaps:
		return st, errorf("more than %d ID mappings", maxIDMaps)
	case len(st.rlimits) > maxRlimits:
		return st, errorf("more than %d rlimits", maxRlimits)
	case a.Pdeathsig < 0 || a.Pdeathsig > maxSignal:
		return st, errorf("Pdeathsig %d out of range", a.Pdeathsig)
	case a.Namespaces&^allNamespaces != 0 || a.ServerRights&^allRights != 0:
		return st, newError("unknown Namespace or Rights bits")
	case a.ServerMaxChildren < 0 || int64(a.ServerMaxChildren) > math.MaxUint32:
		return st, errorf("ServerMaxChildren %d out of range", a.ServerMaxChildren)
	case a.DenySyscalls&^allSyscallGroups != 0:
		return st, newError("unknown SyscallGroup bits")
	case a.Setsid && a.Setpgid:
		return st, newError("Setsid and Setpgid exclude each other: a session leader leads its group")
	}
	for _, list := range [][]string{a.Env, a.ExtraEnv} {
		for _, kv := range list {
			if len(kv) > MaxArg {
				return st, errorf("%w: an environment entry of %d bytes", ErrArgTooLarge, len(kv))
			}
		}
	}
	// Checked here too, not only by the server, so that a refusal keeps
	// its identity: the program runs on the server's kernel.
	if err := sandboxAdmissible(&st, false); err != nil {
		return st, err
	}
	return st, nil
}

// layer checks p and returns it as it travels.
func (p *PathPolicy) layer() (pathLayer, error) {
	var l pathLayer
	for _, list := range []struct {
		paths []string
		out   *[]string
	}{{p.ReadOnly, &l.readOnly}, {p.ReadWrite, &l.readWrite}} {
		if len(list.paths) > maxRules {
			return l, errorf("Paths: more than %d paths in a list", maxRules)
		}
		for _, path := range list.paths {
			if !strings.HasPrefix(path, "/") || len(path) > maxPath || strings.IndexByte(path, 0) >= 0 {
				return l, errorf("Paths: %q is not an absolute path of at most %d bytes", path, maxPath)
			}
		}
		if len(list.paths) > 0 {
			*list.out = slices.Clone(list.paths)
		}
	}
	return l, nil
}

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

// apply sets the child up as st says, in the order Attr documents.
func apply(st *settings, serverPid int) error {
	switch {
	case st.set&setSetsid != 0:
		if _, err := syscall.Setsid(); err != nil {
			return os.NewSyscallError("setsid", err)
		}
	case st.set&setSetpgid != 0:
		if err := syscall.Setpgid(0, 0); err != nil {
			return os.NewSyscallError("setpgid", err)
		}
	}
	if st.chroot != "" {
		if err := syscall.Chroot(st.chroot); err != nil {
			return os.NewSyscallError("chroot", err)
		}
		if err := os.Chdir("/"); err != nil {
			return err
		}
	}
	if st.set&setCredential != 0 && !sameCredential(st) {
		groups := make([]int, len(st.groups))
		for i, g := range st.groups {
			groups[i] = int(g)
		}
		if err := syscall.Setgroups(groups); err != nil {
			return os.NewSyscallError("setgroups", err)
		}
		if err := syscall.Setgid(int(st.gid)); err != nil {
			return os.NewSyscallError("setgid", err)
		}
		if err := syscall.Setuid(int(st.uid)); err != nil {
			return os.NewSyscallError("setuid", err)
		}
	}
	// As the user it now is: limits it may not raise, a directory it may
	// not enter, fail here.
	for _, r := range st.rlimits {
		if err := syscall.Setrlimit(int(r.resource), &syscall.Rlimit{Cur: r.cur, Max: r.max}); err != nil {
			return os.NewSyscallError(fmt.Sprintf("setrlimit(%d)", r.resource), err)
		}
	}
	if st.dir != "" {
		if err := os.Chdir(st.dir); err != nil {
			return err
		}
	}
	if st.pdeathsig != 0 {
		if err := enablePdeathsig(syscall.Signal(st.pdeathsig)); err != nil {
			return err
		}
		if ppid := os.Getppid(); ppid != serverPid && ppid != 0 { // 0: the server is outside a new PID namespace
			return errors.New("the server died before the child started")
		}
	}
	if st.set&setEnv != 0 {
		os.Clearenv()
	}
	for _, list := range [][]string{st.env, st.extraEnv} {
		for _, kv := range list {
			if k, v, ok := strings.Cut(kv, "="); ok {
				os.Setenv(k, v)
			}
		}
	}
	// Last, so that nothing above needs a call it denies. The path
	// layers are in force already: the child entered them before it
	// executed the binary again (see enterLandlock).
	if st.syscalls != 0 {
		return denySyscalls(SyscallGroup(st.syscalls))
	}
	return nil
}

// empty reports whether st asks for nothing.
func (st *settings) empty() bool {
	return st.set == 0 && st.dir == "" && st.chroot == "" && len(st.env) == 0 && len(st.extraEnv) == 0 &&
		len(st.groups) == 0 && st.namespaces == 0 && len(st.uidMaps) == 0 && len(st.gidMaps) == 0 &&
		st.pdeathsig == 0 && len(st.rlimits) == 0 && st.rights == 0 && st.children == 0 && len(st.pathLayers) == 0 && st.syscalls == 0
}

// fdFlags returns the flags of the descriptors a Fork or Exec request with
// a carries: the socket, then those of the standard descriptors given.
func (a *Attr) fdFlags() uint32 {
	var flags uint32
	if a.Socket {
		flags |= flagSocket
	}
	for i, f := range a.stdFiles() {
		if f != nil {
			flags |= flagStdin << i
		}
	}
	return flags
}

// fdFiles returns the files a Fork or Exec request with a carries, in the
// order of fdFlags: the standard descriptors given, then Files.
func (a *Attr) fdFiles() []*os.File {
	var files []*os.File
	for _, f := range a.stdFiles() {
		if f != nil {
			files = append(files, f)
		}
	}
	return append(files, a.Files...)
}

// stdFiles returns the files a gives as the child's descriptors 0 to 2, nil
// for those it leaves as the server's. By the time a request is written,
// newStdio has replaced every stream that is not a file with a pipe.
func (a *Attr) stdFiles() [3]*os.File {
	return [3]*os.File{fileOf(a.Stdin), fileOf(a.Stdout), fileOf(a.Stderr)}
}

// flag returns flagSettings if st asks for anything, so that a frame
// carries a settings section only then.
func (st *settings) flag() uint32 {
	if st.empty() {
		return 0
	}
	return flagSettings
}
