package forkserver

// The system call filter a child installs on itself for
// Attr.DenySyscalls: a classic BPF program, assembled here, that seccomp
// runs on every call of every thread.

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

// sysnumTable lists, for one architecture, the calls the filter
// inspects and those each SyscallGroup denies.
type sysnumTable struct {
	socket, socketpair, clone, clone3 uint32

	network, exec, trace, mount, kernel []uint32
}

// Calls numbered alike on every architecture since Linux 5.1.
const ioUringSetup = 425

var (
	ioUring  = []uint32{ioUringSetup, 426, 427}                 // io_uring_setup, io_uring_enter, io_uring_register
	mountAPI = []uint32{428, 429, 430, 431, 432, 433, 442, 467} // open_tree, move_mount, fsopen, fsconfig, fsmount, fspick, mount_setattr, open_tree_attr

	processMadvise = uint32(440)
)

// Linux's seccomp and BPF constants that package syscall lacks.
const (
	seccompSetModeFilter   = 1
	seccompFilterFlagTsync = 1
	seccompRetAllow        = 0x7fff0000
	seccompRetErrno        = 0x00050000

	// Offsets in struct seccomp_data: nr, arch, then the instruction
	// pointer and six 64-bit arguments; the filter reads the low half of
	// the first argument, which is first on little-endian systems.
	seccompDataNr   = 0
	seccompDataArch = 4
	seccompDataArg0 = 16

	// The namespace flags of clone(2); CLONE_NEWTIME shares its bit
	// with the exit signal there, and clone cannot ask for it.
	cloneNamespaces = syscall.CLONE_NEWNS | syscall.CLONE_NEWCGROUP | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC |
		syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET

	seccompGetActionAvail = 2
)

// seccompSupported reports why a filter cannot be installed here, or nil.
var seccompSupported = sync.OnceValue(func() error {
	if auditArch == 0 {
		return errorf("DenySyscalls on %s: %w", runtime.GOARCH, errors.ErrUnsupported)
	}
	action := uint32(seccompRetErrno)
	if _, _, errno := syscall.RawSyscall(sysSeccomp, seccompGetActionAvail, 0, uintptr(unsafe.Pointer(&action))); errno != 0 {
		return errorf("DenySyscalls: the kernel has no seccomp filters (%v): %w", errno, errors.ErrUnsupported)
	}
	return nil
})

// filterProgram assembles the filter that denies groups. Each rule jumps
// only within itself, so rules are simply laid end to end: the
// accumulator holds the call's number between them.
func filterProgram(groups SyscallGroup) []syscall.SockFilter {
	const (
		ld   = syscall.BPF_LD | syscall.BPF_W | syscall.BPF_ABS
		jeq  = syscall.BPF_JMP | syscall.BPF_JEQ | syscall.BPF_K
		jge  = syscall.BPF_JMP | syscall.BPF_JGE | syscall.BPF_K
		jset = syscall.BPF_JMP | syscall.BPF_JSET | syscall.BPF_K
		ret  = syscall.BPF_RET | syscall.BPF_K
	)
	stmt := func(code uint16, k uint32) syscall.SockFilter { return syscall.SockFilter{Code: code, K: k} }
	jump := func(code uint16, k uint32, jt, jf uint8) syscall.SockFilter {
		return syscall.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
	}
	eperm := stmt(ret, seccompRetErrno|uint32(syscall.EPERM))
	prog := []syscall.SockFilter{
		stmt(ld, seccompDataArch),
		jump(jeq, auditArch, 1, 0),
		eperm, // another architecture's interface, such as 32-bit calls on amd64
		stmt(ld, seccompDataNr),
	}
	if x32Bit != 0 {
		prog = append(prog, jump(jge, x32Bit, 0, 1), eperm)
	}
	deny := func(nr uint32, errno syscall.Errno) {
		prog = append(prog, jump(jeq, nr, 0, 1), stmt(ret, seccompRetErrno|uint32(errno)))
	}
	// denyArg0 denies nr when test, a jump on its first argument, takes
	// its false branch.
	denyArg0 := func(nr uint32, test syscall.SockFilter) {
		prog = append(prog,
			jump(jeq, nr, 0, 4),
			stmt(ld, seccompDataArg0),
			test,
			eperm,
			stmt(ld, seccompDataNr))
	}
	t := &sysnums
	var denied []uint32
	if groups&SyscallsNetwork != 0 {
		denyArg0(t.socketpair, jump(jeq, syscall.AF_UNIX, 1, 0))
		denied = append(denied, t.socket)
		denied = append(denied, t.network...)
	}
	if groups&SyscallsExec != 0 {
		denied = append(denied, t.exec...)
	}
	if groups&SyscallsTrace != 0 {
		denied = append(denied, t.trace...)
	}
	if groups&SyscallsMount != 0 {
		denyArg0(t.clone, jump(jset, cloneNamespaces, 0, 1))
		deny(t.clone3, syscall.ENOSYS)
		denied = append(denied, t.mount...)
	}
	if groups&SyscallsKernel != 0 {
		denied = append(denied, t.kernel...)
	}
	for _, nr := range denied {
		deny(nr, syscall.EPERM)
	}
	return append(prog, stmt(ret, seccompRetAllow))
}

// denySyscalls installs the filter for groups on every thread of this
// process, after setting no_new_privs, which seccomp requires of a
// process without CAP_SYS_ADMIN and which the kernel then sets on every
// thread along with the filter.
func denySyscalls(groups SyscallGroup) error {
	if err := seccompSupported(); err != nil {
		return err
	}
	prog := filterProgram(groups)
	fprog := syscall.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0); errno != 0 {
		return os.NewSyscallError("prctl(PR_SET_NO_NEW_PRIVS)", errno)
	}
	tid, _, errno := syscall.RawSyscall(sysSeccomp, seccompSetModeFilter, seccompFilterFlagTsync, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	switch {
	case errno != 0:
		return os.NewSyscallError("seccomp(SECCOMP_SET_MODE_FILTER)", errno)
	case tid != 0:
		return errorf("seccomp: thread %d cannot take the filter", tid)
	}
	return nil
}
