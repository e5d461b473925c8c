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
		if err := landlockSupported(st.pathLayers); err != nil {
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

// onSpawnThread runs forkExec, which creates a child with st, on a thread
// whose no_new_privs and path layers the child inherits, as st asks (nil:
// nothing).
func onSpawnThread(st *settings, forkExec func()) error {
	switch {
	case st == nil:
	case len(st.pathLayers) > 0:
		return onLandlockThread(st.pathLayers, forkExec)
	case st.set&setNoNewPrivs != 0:
		return withNoNewPrivs(forkExec)
	}
	forkExec()
	return nil
}

var errExecSandbox = newError("Paths and DenySyscalls apply to Fork only")
