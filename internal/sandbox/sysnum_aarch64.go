package sandbox

// The AArch64 system call interface, from the kernel's
// include/uapi/asm-generic/unistd.h: the numbers the seccomp program
// names on arm64.
const (
	arm64AuditArch = 0xc00000b7 // AUDIT_ARCH_AARCH64

	arm64Setxattr        = 5
	arm64Fsetxattr       = 7
	arm64Fremovexattr    = 16
	arm64InotifyAddWatch = 27
	arm64Ioctl           = 29
	arm64Fchmod          = 52
	arm64Fchown          = 55
	arm64Msgget          = 186
	arm64Msgctl          = 187
	arm64Msgrcv          = 188
	arm64Msgsnd          = 189
	arm64Semget          = 190
	arm64Semctl          = 191
	arm64Semtimedop      = 192
	arm64Semop           = 193
	arm64Shmget          = 194
	arm64Shmctl          = 195
	arm64Shmat           = 196
	arm64Shmdt           = 197
	arm64Prlimit64       = 261
	arm64FanotifyInit    = 262
	arm64FanotifyMark    = 263
	arm64Lsetxattr       = 6
	arm64Removexattr     = 14
	arm64Lremovexattr    = 15
	arm64Umount2         = 39
	arm64Mount           = 40
	arm64PivotRoot       = 41
	arm64Fchmodat        = 53
	arm64Chroot          = 51
	arm64Fchownat        = 54
	arm64Utimensat       = 88
	arm64Acct            = 89
	arm64Unshare         = 97
	arm64KexecLoad       = 104
	arm64InitModule      = 105
	arm64DeleteModule    = 106
	arm64Syslog          = 116
	arm64Ptrace          = 117
	arm64Reboot          = 142
	arm64AddKey          = 217
	arm64RequestKey      = 218
	arm64Keyctl          = 219
	arm64Clone           = 220
	arm64Execve          = 221
	arm64Swapon          = 224
	arm64Swapoff         = 225
	arm64Socket          = 198
	arm64Socketpair      = 199
	arm64Bind            = 200
	arm64Listen          = 201
	arm64Accept          = 202
	arm64Connect         = 203
	arm64PerfEventOpen   = 241
	arm64Accept4         = 242
	arm64Setns           = 268
	arm64ProcessVMReadv  = 270
	arm64ProcessVMWrite  = 271
	arm64Kcmp            = 272
	arm64FinitModule     = 273
	arm64Seccomp         = 277
	arm64Bpf             = 280
	arm64Execveat        = 281
	arm64Userfaultfd     = 282
	arm64KexecFileLoad   = 294
)

var arm64 = arch{
	auditArch: arm64AuditArch, seccomp: arm64Seccomp, // no second interface
	socketpair: arm64Socketpair, clone: arm64Clone, clone3: sysClone3, chroot: arm64Chroot,
	ioctl: arm64Ioctl, prlimit64: arm64Prlimit64,
	network: []uint32{arm64Socket, arm64Connect, arm64Bind, arm64Listen, arm64Accept, arm64Accept4, sysIoUringSetup},
	exec:    []uint32{arm64Execve, arm64Execveat},
	trace:   []uint32{arm64Ptrace, arm64ProcessVMReadv, arm64ProcessVMWrite, sysPidfdGetfd, sysProcessMadvise, arm64Kcmp},
	mount:   append([]uint32{arm64Mount, arm64Umount2, arm64PivotRoot, arm64Unshare, arm64Setns}, mountAPI...),
	kernel: append([]uint32{
		arm64Bpf, arm64PerfEventOpen, arm64Userfaultfd,
		arm64Keyctl, arm64AddKey, arm64RequestKey,
		arm64InitModule, arm64FinitModule, arm64DeleteModule,
		arm64KexecLoad, arm64KexecFileLoad,
		arm64Reboot, arm64Swapon, arm64Swapoff, arm64Syslog, arm64Acct,
	}, ioUring...),
	gaps: append([]uint32{
		arm64Fchmodat, arm64Fchownat, arm64Utimensat,
		arm64Setxattr, arm64Lsetxattr, arm64Removexattr, arm64Lremovexattr,
		arm64Fchmod, arm64Fchown, arm64Fsetxattr, arm64Fremovexattr,
		arm64Keyctl, arm64AddKey, arm64RequestKey,
		arm64Shmget, arm64Shmat, arm64Shmctl, arm64Shmdt,
		arm64Semget, arm64Semop, arm64Semctl, arm64Semtimedop,
		arm64Msgget, arm64Msgsnd, arm64Msgrcv, arm64Msgctl,
		arm64InotifyAddWatch, arm64FanotifyInit, arm64FanotifyMark,
	}, gaps...),
}
