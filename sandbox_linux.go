package forkserver

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"

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
		if err := execSandboxAdmissible(st); err != nil {
			return err
		}
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

// execSandboxAdmissible refuses what a sandboxed external program cannot
// be given: see withSandbox.
func execSandboxAdmissible(st *wire.Settings) error {
	switch {
	case st.Syscalls&uint32(SyscallsExec) != 0:
		return errExecSyscallsExec
	case st.Pdeathsig != 0:
		return errors.New("Exec: Pdeathsig and a sandbox exclude each other: the thread that creates the program ends as it has")
	case len(st.UidMaps) > 0 || len(st.GidMaps) > 0:
		return errors.New("Exec: ID mappings and a sandbox exclude each other: the mappings are written from the confined thread")
	case st.Namespaces != 0 && st.Syscalls&uint32(SyscallsMount) != 0:
		return errors.New("Exec: Namespaces and SyscallsMount exclude each other: the filter would deny the clone that creates them")
	}
	return nil
}

// errExecSyscallsExec: the program would have to be executed past the
// filter that denies it.
var errExecSyscallsExec = errors.New("Exec: SyscallsExec cannot be given to an external program, which must itself be executed")

// withSandbox runs fn, which creates an external program, on a thread of
// its own that first sets its no_new_privs, enters rulesets and installs
// the filter denying groups (with the calls Landlock does not cover, under
// rulesets). A process inherits all three from the thread that creates it,
// and keeps them across execve, so the program runs confined from its
// first instruction. The thread ends with fn: neither a domain nor a
// filter can be undone.
func withSandbox(rulesets []int, groups sandbox.Group, fn func()) error {
	if len(rulesets) > 0 {
		groups |= sandbox.LandlockGaps
	}
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // for good: the thread ends with the goroutine
		done <- func() error {
			if err := prctlNoNewPrivs(); err != nil { // which Landlock requires of an unprivileged thread
				return err
			}
			if err := sandbox.LimitExec(0); err != nil { // root with a sandbox is not root: see onConfiningThread
				return err
			}
			for _, fd := range rulesets {
				if err := sandbox.RestrictSelf(fd); err != nil {
					return err
				}
			}
			if groups != 0 {
				if err := sandbox.InstallThread(groups); err != nil {
					return fmt.Errorf("system call filter: %w", err)
				}
			}
			fn()
			return nil
		}()
	}()
	return <-done
}

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
	groups &^= deniedAhead
	// With no group, the filter denies nothing but what every filter does;
	// installed, it gives no_new_privs to every thread, which a warm child
	// created without it needs for NoNewPrivs.
	if groups == 0 && st.Set&wire.SetNoNewPrivs == 0 {
		return nil
	}
	if err := sandbox.Install(groups); err != nil {
		return fmt.Errorf("system call filter: %w", err)
	}
	return nil
}

// deniedAhead are the groups a warm child of a declared sandbox denies
// since before its assignment, which enterSandbox need not deny again.
var deniedAhead sandbox.Group

// enterSandboxAhead installs, in a warm child of a declared sandbox, the
// filter that denies the sandbox's system call groups, which syscallsEnv
// names, and, if it runs confined by Paths, the calls Landlock does not
// cover, before it says it is ready: installing a filter costs about
// 140 µs, which its Fork would wait for if the child installed it once
// assigned, as it installs the rest of what its Fork asks for. Nothing a
// child does after this, up to its function, is in a group.
func enterSandboxAhead() error {
	var groups sandbox.Group
	if v, ok := os.LookupEnv(syscallsEnv); ok {
		os.Unsetenv(syscallsEnv)
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n&^uint64(wire.AllSyscallGroups) != 0 {
			return fmt.Errorf("%s=%q: not a set of system call groups", syscallsEnv, v)
		}
		groups = sandbox.Group(n)
	}
	if landlocked {
		groups |= sandbox.LandlockGaps
	}
	if groups == 0 {
		return nil
	}
	if err := sandbox.Install(groups); err != nil {
		return fmt.Errorf("system call filter: %w", err)
	}
	deniedAhead = groups
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
