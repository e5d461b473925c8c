package sandbox

import "runtime"

// arch is the system call interface of one architecture, as the seccomp
// program needs it: the calls it inspects, and those each group denies.
// The tables are plain data on every system, so that the program of
// either architecture can be assembled and tested anywhere.
type arch struct {
	auditArch uint32 // AUDIT_ARCH_*, which seccomp_data carries
	x32Bit    uint32 // marks the calls of a second interface with other numbers; 0 if none
	seccomp   uint32 // seccomp(2) itself

	socketpair, clone, clone3, ioctl, prlimit64 uint32

	// The calls each group denies outright: exec holds the calls that
	// create processes, but clone and clone3, which the program
	// inspects.
	network, exec, trace, mount, kernel, gaps []uint32
	chroot                                    uint32
}

// denied returns the calls g denies outright on a.
func (a *arch) denied(g Group) []uint32 {
	switch g {
	case Network:
		return a.network
	case Exec:
		return a.exec
	case Trace:
		return a.trace
	case Mount:
		return a.mount
	case Kernel:
		return a.kernel
	case LandlockGaps:
		return a.gaps
	case Chroot:
		return []uint32{a.chroot}
	}
	return nil
}

// archs are the architectures the program is written for, by GOARCH.
var archs = map[string]*arch{"amd64": &amd64, "arm64": &arm64}

// native is this process's architecture, nil if the program is not
// written for it.
var native = archs[runtime.GOARCH]

// Calls numbered alike on every architecture since Linux 5.1, from the
// kernel's include/uapi/asm-generic/unistd.h and
// arch/x86/entry/syscalls/syscall_64.tbl.
const (
	sysIoUringSetup    = 425
	sysIoUringEnter    = 426
	sysIoUringRegister = 427
	sysOpenTree        = 428
	sysMoveMount       = 429
	sysFsopen          = 430
	sysFsconfig        = 431
	sysFsmount         = 432
	sysFspick          = 433
	sysClone3          = 435
	sysPidfdGetfd      = 438
	sysProcessMadvise  = 440
	sysMountSetattr    = 442
	sysFchmodat2       = 452
	sysSetxattrat      = 463
	sysRemovexattrat   = 466
	sysOpenTreeAttr    = 467
	sysFileSetattr     = 469
)

var (
	ioUring  = []uint32{sysIoUringSetup, sysIoUringEnter, sysIoUringRegister}
	mountAPI = []uint32{sysOpenTree, sysMoveMount, sysFsopen, sysFsconfig, sysFsmount, sysFspick, sysMountSetattr, sysOpenTreeAttr}
	gaps     = []uint32{sysFchmodat2, sysSetxattrat, sysRemovexattrat, sysFileSetattr}
)
