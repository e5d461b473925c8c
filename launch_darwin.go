package forkserver

// What the server asks of the kernel, on macOS, as it creates a child.

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/forkserver/forkserver/internal/wire"
)

// sysProcAttr returns what the kernel must apply as it creates a child
// with st: on macOS, only what an external program cannot apply itself.
// Linux namespaces, no_new_privs and the parent-death signal do not exist.
func sysProcAttr(st *wire.Settings, external bool) (*syscall.SysProcAttr, error) {
	if st.Namespaces != 0 || len(st.UidMaps) > 0 || len(st.GidMaps) > 0 || st.Pdeathsig != 0 || st.Set&wire.SetNoNewPrivs != 0 {
		return nil, fmt.Errorf("namespaces, NoNewPrivs and Pdeathsig: %w", errors.ErrUnsupported)
	}
	if !external {
		return nil, nil
	}
	if st.MemoryLimit != 0 {
		return nil, errExecMemoryLimit
	}
	if len(st.Rlimits) > 0 {
		return nil, fmt.Errorf("Exec: Rlimits: %w", errors.ErrUnsupported)
	}
	sys := &syscall.SysProcAttr{
		Setsid:  st.Set&wire.SetSetsid != 0,
		Setpgid: st.Set&wire.SetSetpgid != 0,
		Chroot:  st.Chroot,
	}
	if st.Set&wire.SetCredential != 0 {
		sys.Credential = &syscall.Credential{Uid: st.Uid, Gid: st.Gid, Groups: st.Groups}
	}
	return sys, nil
}

// onConfiningThread: macOS has no no_new_privs.
func onConfiningThread(chroot bool, fn func()) error { return errors.ErrUnsupported }

// confineCredential: a child on macOS is never confined.
func confineCredential(sys *syscall.SysProcAttr, st *wire.Settings) {}

// privileged: a child on macOS is never confined, so it never matters.
func privileged() bool { return false }
