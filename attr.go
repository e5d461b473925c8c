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
	"time"

	"github.com/forkserver/forkserver/internal/wire"
)

// A request is a Fork or an Exec as the program sends it: what runs, the
// settings, flags and descriptors that go with it, and what the program
// keeps for the child's life. readAttr makes it from the caller's Attr,
// which nothing reads afterwards: the warm path and the cold path both
// take the request.
type request struct {
	// What runs: for a Fork, fn, with arg; for an Exec, the program at
	// path, with argv.
	fn   Func
	arg  []byte
	exec bool
	path string
	argv []string

	settings wire.Settings
	flags    uint32     // the settings', FlagServer and those of the descriptors sent; not FlagExit, which only the cold path asks for
	files    []*os.File // sent after the socket FlagSocket asks for: the standard descriptors flags name, then numFiles of Attr.Files
	numFiles uint16
	std      *stdio // the pipes of the standard streams that are not files; nil if there are none

	cancel    syscall.Signal // Attr.Cancel
	waitDelay time.Duration  // Attr.WaitDelay
}

// name returns what rq's Process and errors are named: the Func's name, or
// the program's path.
func (rq *request) name() string {
	if rq.exec {
		return rq.path
	}
	return rq.fn.name
}

// readAttr completes rq, whose fn, or exec, path and argv, say what runs,
// with what attr asks for; a nil attr asks for nothing. It is the one place
// a Fork's or Exec's Attr is read, and checked: everything it refuses is
// refused before anything is sent, a pipe made, or a warm child taken. An
// Exec's path is looked up (see [Server.Exec]) and becomes the path found,
// which the errors from then on name. On error, nothing is left open.
func (s *Server) readAttr(rq *request, attr *Attr) error {
	if attr == nil {
		attr = new(Attr)
	}
	if !rq.exec {
		if err := checkCall(rq.fn, attr.Arg); err != nil {
			return err
		}
	} else {
		if rq.path == "" || len(rq.path) > wire.MaxPath || len(rq.argv) > wire.MaxList {
			return fmt.Errorf("path of 1 to %d bytes and at most %d arguments required", wire.MaxPath, wire.MaxList)
		}
		for _, v := range rq.argv {
			if len(v) > MaxArg {
				return fmt.Errorf("%w: an argument of %d bytes", ErrArgTooLarge, len(v))
			}
		}
		if attr.Server || len(attr.Arg) > 0 {
			return errors.New("Attr.Server and Arg are for Fork only")
		}
	}
	sig, err := cancelSignal(attr.Cancel)
	if err != nil {
		return err
	}
	if rq.exec {
		found, err := s.lookPath(rq.path, s.childPath(attr.Env, attr.ExtraEnv), attr.Chroot)
		if err != nil {
			return err
		}
		rq.path = found
	}
	st, err := attr.settings()
	if err == nil && rq.exec {
		err = sandboxAdmissible(&st, true)
	}
	if err != nil {
		return err
	}
	if err := attr.checkFiles(); err != nil {
		return err
	}
	std, childStd, err := newStdio(attr.Stdin, attr.Stdout, attr.Stderr, attr.WaitDelay)
	if err != nil {
		return err
	}
	rq.flags = st.Flag()
	if attr.Socket {
		rq.flags |= wire.FlagSocket
	}
	if attr.Server {
		rq.flags |= wire.FlagServer
	}
	for i, f := range childStd {
		if f != nil {
			rq.flags |= wire.FlagStdin << i
			rq.files = append(rq.files, f)
		}
	}
	rq.files = append(rq.files, attr.Files...)
	rq.arg, rq.settings, rq.numFiles, rq.std = attr.Arg, st, uint16(len(attr.Files)), std
	rq.cancel, rq.waitDelay = sig, attr.WaitDelay
	return nil
}

// cancelSignal returns the signal a child gets when its ctx ends, which
// Attr.Cancel, sig, says.
func cancelSignal(sig os.Signal) (syscall.Signal, error) {
	if sig == nil {
		return syscall.SIGKILL, nil
	}
	n, err := sysSignal(sig)
	if err != nil {
		return 0, fmt.Errorf("Attr.Cancel: %w", err)
	}
	return n, nil
}

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
	if a.MemoryLimit < 0 || a.MemoryLimit > wire.MaxMemoryLimit {
		return st, fmt.Errorf("MemoryLimit %d out of range", a.MemoryLimit)
	}
	st.MemoryLimit = uint64(a.MemoryLimit)
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
// for those that are not files.
func (a *Attr) stdFiles() [3]*os.File {
	return [3]*os.File{fileOf(a.Stdin), fileOf(a.Stdout), fileOf(a.Stderr)}
}
