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
	}
	if st.Syscalls != 0 {
		if err := sandbox.SeccompSupported(); err != nil {
			return fmt.Errorf("DenySyscalls: %w", err)
		}
	}
	return nil
}

var errExecSandbox = errors.New("Paths and DenySyscalls apply to Fork only")

// denySyscalls installs the filter that denies groups on every thread of
// this process.
func denySyscalls(groups SyscallGroup) error {
	if err := sandbox.Install(sandbox.Group(groups)); err != nil {
		return fmt.Errorf("DenySyscalls: %w", err)
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
