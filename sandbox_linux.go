package forkserver

import "github.com/forkserver/forkserver/internal/wire"

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
		if err := landlockSupported(); err != nil {
			return err
		}
	}
	if st.Syscalls != 0 {
		if err := seccompSupported(); err != nil {
			return err
		}
	}
	return nil
}

var errExecSandbox = newError("Paths and DenySyscalls apply to Fork only")
