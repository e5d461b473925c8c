package forkserver

import "syscall"

// The system call interface the seccomp filter is written for: x86-64.
// Numbers that package syscall lacks are the kernel's
// arch/x86/entry/syscalls/syscall_64.tbl.
const (
	auditArch  = 0xc000003e // AUDIT_ARCH_X86_64
	sysSeccomp = 317

	// x32Bit marks the x32 interface's calls, which the filter denies
	// all: their numbers differ from the ones below.
	x32Bit = 0x40000000
)

var sysnums = sysnumTable{
	socket: syscall.SYS_SOCKET, socketpair: syscall.SYS_SOCKETPAIR, clone: syscall.SYS_CLONE, clone3: 435,
	network: []uint32{syscall.SYS_CONNECT, syscall.SYS_BIND, syscall.SYS_LISTEN, syscall.SYS_ACCEPT, syscall.SYS_ACCEPT4, ioUringSetup},
	exec:    []uint32{syscall.SYS_EXECVE, 322},                                // execveat
	trace:   []uint32{syscall.SYS_PTRACE, 310, 311, 438, processMadvise, 312}, // process_vm_readv, process_vm_writev, pidfd_getfd, kcmp
	mount: append([]uint32{syscall.SYS_MOUNT, syscall.SYS_UMOUNT2, syscall.SYS_PIVOT_ROOT, syscall.SYS_UNSHARE, 308}, // setns
		mountAPI...),
	kernel: append([]uint32{
		321, syscall.SYS_PERF_EVENT_OPEN, 323, // bpf, userfaultfd
		syscall.SYS_KEYCTL, syscall.SYS_ADD_KEY, syscall.SYS_REQUEST_KEY,
		syscall.SYS_INIT_MODULE, 313, syscall.SYS_DELETE_MODULE, // finit_module
		syscall.SYS_KEXEC_LOAD, 320, // kexec_file_load
		syscall.SYS_REBOOT, syscall.SYS_SWAPON, syscall.SYS_SWAPOFF, syscall.SYS_SYSLOG, syscall.SYS_ACCT,
		syscall.SYS_IOPL, syscall.SYS_IOPERM,
	}, ioUring...),
}
