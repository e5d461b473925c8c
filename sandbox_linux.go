package forkserver

// sandboxAdmissible checks that the kernel can enforce st's path layers
// and system call groups, which only a Go child can be given.
func sandboxAdmissible(st *settings, external bool) error {
	if len(st.pathLayers) == 0 && st.syscalls == 0 {
		return nil
	}
	if external {
		return errExecSandbox
	}
	if len(st.pathLayers) > 0 {
		if err := landlockSupported(); err != nil {
			return err
		}
	}
	if st.syscalls != 0 {
		if err := seccompSupported(); err != nil {
			return err
		}
	}
	return nil
}

var errExecSandbox = newError("Paths and DenySyscalls apply to Fork only")
