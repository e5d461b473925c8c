//go:build linux || darwin

package forkserver

import (
	"math"
	"os"
	"slices"
	"strings"
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

// empty reports whether st asks for nothing.
func (st *settings) empty() bool {
	return st.set == 0 && st.dir == "" && st.chroot == "" && len(st.env) == 0 && len(st.extraEnv) == 0 &&
		len(st.groups) == 0 && st.namespaces == 0 && len(st.uidMaps) == 0 && len(st.gidMaps) == 0 &&
		st.pdeathsig == 0 && len(st.rlimits) == 0 && st.rights == 0 && st.children == 0 && len(st.pathLayers) == 0 && st.syscalls == 0
}

// fileFlags returns the flags of the descriptors a Fork or Exec request with
// a carries: the socket, then those of the standard descriptors given.
func (a *Attr) fileFlags() uint32 {
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
// order of fileFlags: the standard descriptors given, then Files.
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
