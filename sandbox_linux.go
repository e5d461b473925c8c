package forkserver

import (
	"errors"
	"fmt"

	"github.com/forkserver/forkserver/internal/sandbox"
	"github.com/forkserver/forkserver/internal/wire"
)

// sandboxAdmissible checks that the kernel can enforce st's path layers
// and system call groups, which only a Go child can be given.
func sandboxAdmissible(st *wire.Settings, external bool) error {
	if len(st.PathLayers) == 0 && st.Syscalls == 0 {
		return nil
	}
	if external {
		return errExecSandbox
	}
	if len(st.PathLayers) > 0 {
		if err := sandbox.LandlockSupported(); err != nil {
			return fmt.Errorf("Paths: %w", err)
		}
		// The child's filter denies what Landlock does not cover.
		if err := sandbox.SeccompSupported(); err != nil {
			return fmt.Errorf("Paths: %w", err)
		}
	}
	if st.Syscalls != 0 {
		if err := sandbox.SeccompSupported(); err != nil {
			return fmt.Errorf("DenySyscalls: %w", err)
		}
	}
	return nil
}

var errExecSandbox = errors.New("Paths and DenySyscalls apply to Fork only")

// enterSandbox, the last of a child's settings, installs the filter
// that denies st's system call groups on every thread of this process
// and, in a child confined by Paths (see enterLandlock), the calls that
// change a file's metadata by path, which Landlock does not cover; and,
// in a confined child that entered its Chroot with the CAP_SYS_CHROOT
// it was created with (see threadFor), chroot itself.
func enterSandbox(st *wire.Settings) error {
	groups := sandbox.Group(st.Syscalls)
	if landlocked {
		groups |= sandbox.LandlockGaps
	}
	if st.Chroot != "" && (landlocked || confined(st)) {
		groups |= sandbox.Chroot
	}
	if groups == 0 {
		return nil
	}
	if err := sandbox.Install(groups); err != nil {
		return fmt.Errorf("system call filter: %w", err)
	}
	return nil
}

// Each SyscallGroup travels to internal/sandbox as the group of the same
// bits: any difference makes groupsDiffer, the length of an array that
// must have none, non-zero, which does not compile.
const groupsDiffer = (uint32(SyscallsNetwork) ^ uint32(sandbox.Network)) |
	(uint32(SyscallsExec) ^ uint32(sandbox.Exec)) |
	(uint32(SyscallsTrace) ^ uint32(sandbox.Trace)) |
	(uint32(SyscallsMount) ^ uint32(sandbox.Mount)) |
	(uint32(SyscallsKernel) ^ uint32(sandbox.Kernel))

var _ [0]struct{} = [groupsDiffer]struct{}{}
