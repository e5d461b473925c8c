package forkserver

import "syscall"

// The system call interface the seccomp filter is written for: AArch64.
// Numbers that package syscall lacks are the kernel's
// include/uapi/asm-generic/unistd.h.
const (
	auditArch  = 0xc00000b7 // AUDIT_ARCH_AARCH64
	sysSeccomp = syscall.SYS_SECCOMP
	x32Bit     = 0 // no second interface with other numbers
)

var sysnums = sysnumTable{
	socket: syscall.SYS_SOCKET, socketpair: syscall.SYS_SOCKETPAIR, clone: syscall.SYS_CLONE, clone3: 435,
	network: []uint32{syscall.SYS_CONNECT, syscall.SYS_BIND, syscall.SYS_LISTEN, syscall.SYS_ACCEPT, syscall.SYS_ACCEPT4, ioUringSetup},
	exec:    []uint32{syscall.SYS_EXECVE, syscall.SYS_EXECVEAT},
	trace:   []uint32{syscall.SYS_PTRACE, syscall.SYS_PROCESS_VM_READV, syscall.SYS_PROCESS_VM_WRITEV, 438, processMadvise, 272}, // pidfd_getfd, kcmp
	mount: append([]uint32{syscall.SYS_MOUNT, syscall.SYS_UMOUNT2, syscall.SYS_PIVOT_ROOT, syscall.SYS_UNSHARE, syscall.SYS_SETNS},
		mountAPI...),
	kernel: append([]uint32{
		syscall.SYS_BPF, syscall.SYS_PERF_EVENT_OPEN, 282, // userfaultfd
		syscall.SYS_KEYCTL, syscall.SYS_ADD_KEY, syscall.SYS_REQUEST_KEY,
		syscall.SYS_INIT_MODULE, syscall.SYS_FINIT_MODULE, syscall.SYS_DELETE_MODULE,
		syscall.SYS_KEXEC_LOAD, 294, // kexec_file_load
		syscall.SYS_REBOOT, syscall.SYS_SWAPON, syscall.SYS_SWAPOFF, syscall.SYS_SYSLOG, syscall.SYS_ACCT,
	}, ioUring...),
}
