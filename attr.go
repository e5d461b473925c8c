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

	"github.com/forkserver/forkserver/internal/wire"
)

func (a *Attr) settings() (wire.Settings, error) {
	st := wire.Settings{
		Dir:        a.Dir,
		Chroot:     a.Chroot,
		Env:        a.Env,
		ExtraEnv:   a.ExtraEnv,
		Namespaces: uint32(a.Namespaces),
		Pdeathsig:  uint32(a.Pdeathsig),
		Rights:     uint32(a.ServerRights),
		Children:   uint32(a.ServerMaxChildren),
		Syscalls:   uint32(a.DenySyscalls),
	}
	if p := a.Paths; p != nil {
		layer, err := p.layer()
		if err != nil {
			return st, err
		}
		st.PathLayers = []wire.PathLayer{layer}
		st.Set |= wire.SetNoNewPrivs // the kernel requires it of an unprivileged process
	}
	for _, b := range []struct {
		set  bool
		flag uint32
	}{{a.Setsid, wire.SetSetsid}, {a.Setpgid, wire.SetSetpgid}, {a.Env != nil, wire.SetEnv}, {a.Credential != nil, wire.SetCredential}, {a.NoNewPrivs, wire.SetNoNewPrivs}} {
		if b.set {
			st.Set |= b.flag
		}
	}
	if c := a.Credential; c != nil {
		st.Uid, st.Gid, st.Groups = c.Uid, c.Gid, c.Groups
	}
	for _, m := range a.UidMappings {
		st.UidMaps = append(st.UidMaps, wire.IDMap{ContainerID: m.ContainerID, HostID: m.HostID, Size: m.Size})
	}
	for _, m := range a.GidMappings {
		st.GidMaps = append(st.GidMaps, wire.IDMap{ContainerID: m.ContainerID, HostID: m.HostID, Size: m.Size})
	}
	for _, r := range a.Rlimits {
		if r.Resource < 0 || r.Resource > 1<<16 {
			return st, fmt.Errorf("Rlimit resource %d out of range", r.Resource)
		}
		st.Rlimits = append(st.Rlimits, wire.Rlimit{Resource: uint32(r.Resource), Cur: r.Cur, Max: r.Max})
	}
	switch {
	case len(a.Files) > MaxFiles:
		return st, errTooManyFiles
	case len(a.Dir) > wire.MaxPath || len(a.Chroot) > wire.MaxPath:
		return st, fmt.Errorf("Dir or Chroot longer than %d bytes", wire.MaxPath)
	case len(a.Env) > wire.MaxList || len(a.ExtraEnv) > wire.MaxList:
		return st, fmt.Errorf("more than %d environment entries", wire.MaxList)
	case len(st.Groups) > wire.MaxGroups:
		return st, fmt.Errorf("more than %d groups", wire.MaxGroups)
	case len(st.UidMaps) > wire.MaxIDMaps || len(st.GidMaps) > wire.MaxIDMaps:
		return st, fmt.Errorf("more than %d ID mappings", wire.MaxIDMaps)
	case len(st.Rlimits) > wire.MaxRlimits:
		return st, fmt.Errorf("more than %d rlimits", wire.MaxRlimits)
	case a.Pdeathsig < 0 || a.Pdeathsig > wire.MaxSignal:
		return st, fmt.Errorf("Pdeathsig %d out of range", a.Pdeathsig)
	case a.Namespaces&^allNamespaces != 0 || a.ServerRights&^allRights != 0:
		return st, errors.New("unknown Namespace or Rights bits")
	case a.ServerMaxChildren < 0 || int64(a.ServerMaxChildren) > math.MaxUint32:
		return st, fmt.Errorf("ServerMaxChildren %d out of range", a.ServerMaxChildren)
	case a.DenySyscalls&^allSyscallGroups != 0:
		return st, errors.New("unknown SyscallGroup bits")
	case a.Setsid && a.Setpgid:
		return st, errors.New("Setsid and Setpgid exclude each other: a session leader leads its group")
	}
	for _, list := range []struct {
		name string
		env  []string
	}{{"Env", a.Env}, {"ExtraEnv", a.ExtraEnv}} {
		for i, kv := range list.env {
			if err := checkEnv(kv); err != nil {
				return st, fmt.Errorf("Attr.%s[%d]: %w", list.name, i, err)
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

// checkEnv returns why kv cannot be an entry of a child's environment: too
// long, a NUL byte, which would cut it short, or no name and '=', which
// would drop it. A Go child and the kernel would each lose it silently.
func checkEnv(kv string) error {
	show := kv
	if len(show) > 64 {
		show = show[:64] + "..."
	}
	switch k, _, ok := strings.Cut(kv, "="); {
	case len(kv) > MaxArg:
		return fmt.Errorf("%w: an environment entry of %d bytes", ErrArgTooLarge, len(kv))
	case strings.IndexByte(kv, 0) >= 0:
		return fmt.Errorf("environment entry %q contains NUL", show)
	case !ok || k == "":
		return fmt.Errorf("environment entry %q is not of the form name=value", show)
	}
	return nil
}

// layer checks p and returns it as it travels.
func (p *PathPolicy) layer() (wire.PathLayer, error) {
	var l wire.PathLayer
	for _, list := range []struct {
		paths []string
		out   *[]string
	}{{p.ReadOnly, &l.ReadOnly}, {p.ReadWrite, &l.ReadWrite}} {
		if len(list.paths) > wire.MaxRules {
			return l, fmt.Errorf("Paths: more than %d paths in a list", wire.MaxRules)
		}
		for _, path := range list.paths {
			if !strings.HasPrefix(path, "/") || len(path) > wire.MaxPath || strings.IndexByte(path, 0) >= 0 {
				return l, fmt.Errorf("Paths: %q is not an absolute path of at most %d bytes", path, wire.MaxPath)
			}
		}
		if len(list.paths) > 0 {
			*list.out = slices.Clone(list.paths)
		}
	}
	return l, nil
}

// fileFlags returns the flags of the descriptors a Fork or Exec request with
// a carries: the socket, then those of the standard descriptors given.
func (a *Attr) fileFlags() uint32 {
	var flags uint32
	if a.Socket {
		flags |= wire.FlagSocket
	}
	for i, f := range a.stdFiles() {
		if f != nil {
			flags |= wire.FlagStdin << i
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

// checkFiles returns an error naming the first file a gives that cannot
// be sent: nil, closed, or whose descriptor was closed under it. It is
// checked before anything is sent or a warm child taken, so that a bad file
// costs neither the connection nor a warm child.
func (a *Attr) checkFiles() error {
	for i, f := range a.stdFiles() {
		if f != nil {
			if err := checkFile(f); err != nil {
				return fmt.Errorf("Attr.%s: %w", [...]string{"Stdin", "Stdout", "Stderr"}[i], err)
			}
		}
	}
	for i, f := range a.Files {
		if f == nil {
			return fmt.Errorf("Attr.Files[%d] is nil", i)
		}
		if err := checkFile(f); err != nil {
			return fmt.Errorf("Attr.Files[%d]: %w", i, err)
		}
	}
	return nil
}

// checkFile returns an error matching os.ErrClosed if f, or its descriptor,
// is closed.
func checkFile(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var closed error
	if err := rc.Control(func(fd uintptr) {
		var st syscall.Stat_t
		if syscall.Fstat(int(fd), &st) == syscall.EBADF {
			closed = fmt.Errorf("descriptor %d closed under its *os.File: %w", fd, os.ErrClosed)
		}
	}); err != nil {
		return os.ErrClosed // Control fails only on a closed file
	}
	return closed
}

// sendErr returns the error of a write of fds that failed with err: a
// descriptor closed during the call is the caller's file, not the
// connection or the child it was written to, and is said so.
func sendErr(err error, fds []int) error {
	if len(fds) > 0 && errors.Is(err, syscall.EBADF) {
		return fmt.Errorf("a file given was closed during the call: %w", os.ErrClosed)
	}
	return nil
}

// stdFiles returns the files a gives as the child's descriptors 0 to 2, nil
// for those it leaves as the server's. By the time a request is written,
// newStdio has replaced every stream that is not a file with a pipe.
func (a *Attr) stdFiles() [3]*os.File {
	return [3]*os.File{fileOf(a.Stdin), fileOf(a.Stdout), fileOf(a.Stderr)}
}
