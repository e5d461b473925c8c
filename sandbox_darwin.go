package forkserver

import (
	"errors"
)

// sandboxAdmissible refuses path policies and system call groups: macOS
// has neither Landlock nor seccomp.
func sandboxAdmissible(st *settings, external bool) error {
	if len(st.pathLayers) > 0 || st.syscalls != 0 {
		return errorf("Paths and DenySyscalls: %w", errors.ErrUnsupported)
	}
	return nil
}

// onSpawnThread runs forkExec, which creates a child with st (nil:
// nothing).
func onSpawnThread(st *settings, forkExec func()) error {
	if st != nil && st.set&setNoNewPrivs != 0 {
		return withNoNewPrivs(forkExec)
	}
	forkExec()
	return nil
}

// denySyscalls is never reached: sandboxAdmissible refuses what asks
// for it.
func denySyscalls(SyscallGroup) error { return errors.ErrUnsupported }
