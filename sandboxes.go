//go:build linux || darwin

package forkserver

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"

	"github.com/forkserver/forkserver/internal/wire"
)

// Declared sandboxes (see Sandbox): what of a child's settings is its
// sandbox's shape, applied as it is created, and how the program tells
// the server which shapes to keep warm children of.

// sandboxesEnv tells a server the sandboxes the program declared: see
// encodeSandboxes. syscallsEnv tells a warm child of one the system call
// groups it denies before its assignment: see enterSandboxAhead.
const (
	sandboxesEnv = "FORKSERVER_SANDBOXES"
	syscallsEnv  = "FORKSERVER_SYSCALLS"
)

// shapeSet are the bits of Settings.Set that belong to a sandbox's shape.
const shapeSet = wire.SetCredential | wire.SetNoNewPrivs

// shape returns the creation-time part of st: what a warm child of a
// declared sandbox has from its creation on, and the system call groups
// it denies from before its assignment on.
func shape(st *wire.Settings) wire.Settings {
	sh := wire.Settings{
		Set:        st.Set & shapeSet,
		Syscalls:   st.Syscalls,
		Chroot:     st.Chroot,
		Namespaces: st.Namespaces,
		UidMaps:    st.UidMaps,
		GidMaps:    st.GidMaps,
		PathLayers: st.PathLayers,
	}
	if sh.Set&wire.SetCredential != 0 {
		sh.Uid, sh.Gid, sh.Groups = st.Uid, st.Gid, st.Groups
	}
	return sh
}

// serves reports whether a warm child of the declared sandbox of shape sb
// may take a Fork of shape sh: the same shape, but for the system call
// groups, of which the Fork must deny at least those sb's children deny
// already.
func serves(sb, sh *wire.Settings) bool {
	rest := *sh
	rest.Syscalls = sb.Syscalls
	return sh.Syscalls&sb.Syscalls == sb.Syscalls && sameShape(sb, &rest)
}

// sameShape reports whether the shapes a and b are equal.
func sameShape(a, b *wire.Settings) bool {
	return a.Set == b.Set && a.Syscalls == b.Syscalls && a.Uid == b.Uid && a.Gid == b.Gid && slices.Equal(a.Groups, b.Groups) &&
		a.Chroot == b.Chroot && a.Namespaces == b.Namespaces &&
		slices.Equal(a.UidMaps, b.UidMaps) && slices.Equal(a.GidMaps, b.GidMaps) &&
		slices.EqualFunc(a.PathLayers, b.PathLayers, func(x, y wire.PathLayer) bool {
			return slices.Equal(x.ReadOnly, y.ReadOnly) && slices.Equal(x.ReadWrite, y.ReadWrite)
		})
}

// perCall returns st without its creation-time settings: what a warm
// child of a declared sandbox applies once assigned. Its system call
// groups stay whole: the child leaves out those it denies already, which
// it knows for itself (see enterSandboxAhead).
func perCall(st *wire.Settings) wire.Settings {
	out := *st
	out.Set &^= shapeSet
	out.Uid, out.Gid, out.Groups = 0, 0, nil
	out.Chroot, out.Namespaces, out.UidMaps, out.GidMaps, out.PathLayers = "", 0, nil, nil, nil
	return out
}

// declare checks the sandboxes of cfg as Fork would check a request for
// them, resolving their paths once, and returns their shapes, in order.
func declare(sandboxes []Sandbox) ([]wire.Settings, error) {
	if len(sandboxes) > wire.MaxSandboxes {
		return nil, fmt.Errorf("%d sandboxes exceed %d", len(sandboxes), wire.MaxSandboxes)
	}
	var shapes []wire.Settings
	for i, sb := range sandboxes {
		if sb.Size < 0 {
			return nil, fmt.Errorf("sandbox %d: negative Size %d", i, sb.Size)
		}
		var st wire.Settings
		if sb.Attr != nil {
			var err error
			if st, err = sb.Attr.settings(); err != nil {
				return nil, fmt.Errorf("sandbox %d: %w", i, err)
			}
		}
		sh := shape(&st)
		switch {
		case sh.Set == 0 && sh.Chroot == "" && sh.Namespaces == 0 && len(sh.PathLayers) == 0:
			return nil, fmt.Errorf("sandbox %d asks for no creation-time setting: PoolSize sizes the plain pool", i)
		case sh.Chroot != "":
			return nil, fmt.Errorf("sandbox %d: Chroot in a declared sandbox: %w", i, errors.ErrUnsupported)
		case slices.ContainsFunc(shapes, func(o wire.Settings) bool { return sameShape(&o, &sh) }):
			return nil, fmt.Errorf("sandbox %d is declared twice", i)
		}
		if err := honourable(&sh); err != nil {
			return nil, fmt.Errorf("sandbox %d: %w", i, err)
		}
		shapes = append(shapes, sh)
	}
	return shapes, nil
}

// honourable checks that the server this process starts can create a
// child of the shape sh: what admissible checks, the paths, which must
// resolve now, and namespaces, which only root may create outside a new
// user namespace.
func honourable(sh *wire.Settings) error {
	if err := admissible(sh, false); err != nil {
		return err
	}
	if sh.Namespaces != 0 && Namespace(sh.Namespaces)&NewUser == 0 && os.Geteuid() != 0 {
		return os.NewSyscallError("clone", syscall.EPERM)
	}
	if len(sh.PathLayers) > 0 {
		rulesets, err := pathRulesets(sh.PathLayers)
		closeFds(rulesets)
		return err
	}
	return nil
}

// encodeSandboxes encodes the shapes of sandboxes, with their sizes, for
// sandboxesEnv: a Fork frame of each, whose settings are the shape and
// whose id is the size, in hexadecimal.
func encodeSandboxes(sandboxes []Sandbox, shapes []wire.Settings) string {
	var b []byte
	for i, sh := range shapes {
		b = wire.AppendFrame(b, uint32(sandboxes[i].Size), &wire.Fork{Flags: wire.FlagSettings, Name: "sandbox", Settings: sh})
	}
	return hex.EncodeToString(b)
}

// decodeSandboxes decodes what encodeSandboxes encoded.
func decodeSandboxes(v string) ([]wire.Settings, []int, error) {
	b, err := hex.DecodeString(v)
	if err != nil {
		return nil, nil, err
	}
	var shapes []wire.Settings
	var sizes []int
	for len(b) > 0 && len(shapes) < wire.MaxSandboxes {
		h, err := wire.ParseHeader(b)
		if err != nil {
			return nil, nil, err
		}
		n := wire.HeaderSize + int(h.Len)
		if n > len(b) {
			return nil, nil, fmt.Errorf("%w: a sandbox cut short", wire.ErrMalformed)
		}
		h, m, err := wire.DecodeFrame(b[:n])
		if err != nil {
			return nil, nil, err
		}
		f, ok := m.(*wire.Fork)
		if !ok {
			return nil, nil, fmt.Errorf("%w: type %d where a sandbox belongs", wire.ErrMalformed, m.Type())
		}
		shapes = append(shapes, f.Settings)
		sizes = append(sizes, int(h.ID))
		b = b[n:]
	}
	return shapes, sizes, nil
}
