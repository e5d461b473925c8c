package sandbox

// Installing the seccomp program.

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

// seccomp(2)'s operations and flags.
const (
	seccompSetModeFilter   = 1 // SECCOMP_SET_MODE_FILTER
	seccompGetActionAvail  = 2 // SECCOMP_GET_ACTION_AVAIL
	seccompFilterFlagTsync = 1 // SECCOMP_FILTER_FLAG_TSYNC
)

// SeccompSupported reports why Install cannot work here, or nil. Its
// error matches errors.ErrUnsupported.
var SeccompSupported = sync.OnceValue(func() error {
	if native == nil {
		return fmt.Errorf("on %s: %w", runtime.GOARCH, errors.ErrUnsupported)
	}
	action := uint32(retErrno)
	if _, errno := seccomp(seccompGetActionAvail, 0, unsafe.Pointer(&action)); errno != 0 {
		return fmt.Errorf("the kernel has no seccomp filters (%v): %w", errno, errors.ErrUnsupported)
	}
	return nil
})

// Install installs the program that denies groups on every thread of
// this process, after setting no_new_privs, which seccomp requires of a
// process without CAP_SYS_ADMIN and which the kernel then sets on every
// thread along with the filter. A filter cannot be removed.
func Install(groups Group) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return install(groups, seccompFilterFlagTsync)
}

// InstallThread installs the program that denies groups on the calling
// thread only, after setting its no_new_privs, and so on every process it
// creates from then on and what they execute. The caller locks the thread
// to its goroutine for good: the filter cannot be removed, and the thread
// should end with the goroutine.
func InstallThread(groups Group) error { return install(groups, 0) }

// install installs the program that denies groups with seccomp's flags,
// on the calling thread, which the caller has locked.
func install(groups Group, flags uintptr) error {
	if err := SeccompSupported(); err != nil {
		return err
	}
	prog := program(native, groups)
	filter := make([]syscall.SockFilter, len(prog))
	for i, in := range prog {
		filter[i] = syscall.SockFilter{Code: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	fprog := syscall.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := setNoNewPrivs(); err != nil {
		return err
	}
	tid, errno := seccomp(seccompSetModeFilter, flags, unsafe.Pointer(&fprog))
	runtime.KeepAlive(filter)
	switch {
	case errno != 0:
		return os.NewSyscallError("seccomp(SECCOMP_SET_MODE_FILTER)", errno)
	case tid != 0:
		return fmt.Errorf("seccomp: thread %d cannot take the filter", tid)
	}
	return nil
}
