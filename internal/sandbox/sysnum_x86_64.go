package sandbox

// The x86-64 system call interface, from the kernel's
// arch/x86/entry/syscalls/syscall_64.tbl: the numbers the seccomp program
// names on amd64.
const (
	amd64AuditArch = 0xc000003e // AUDIT_ARCH_X86_64

	// amd64X32Bit marks the x32 interface's calls, which the program
	// denies all: their numbers differ from the ones below.
	amd64X32Bit = 0x40000000

	amd64Socket          = 41
	amd64Connect         = 42
	amd64Accept          = 43
	amd64Bind            = 49
	amd64Listen          = 50
	amd64Socketpair      = 53
	amd64Clone           = 56
	amd64Fork            = 57
	amd64Vfork           = 58
	amd64Execve          = 59
	amd64Chmod           = 90
	amd64Ioctl           = 16
	amd64Shmget          = 29
	amd64Shmat           = 30
	amd64Shmctl          = 31
	amd64Semget          = 64
	amd64Semop           = 65
	amd64Semctl          = 66
	amd64Shmdt           = 67
	amd64Msgget          = 68
	amd64Msgsnd          = 69
	amd64Msgrcv          = 70
	amd64Msgctl          = 71
	amd64Fchmod          = 91
	amd64Fchown          = 93
	amd64Fsetxattr       = 190
	amd64Fremovexattr    = 199
	amd64Semtimedop      = 220
	amd64InotifyAddWatch = 254
	amd64FanotifyInit    = 300
	amd64FanotifyMark    = 301
	amd64Prlimit64       = 302
	amd64Chroot          = 161
	amd64Chown           = 92
	amd64Lchown          = 94
	amd64Ptrace          = 101
	amd64Syslog          = 103
	amd64Utime           = 132
	amd64PivotRoot       = 155
	amd64Acct            = 163
	amd64Mount           = 165
	amd64Umount2         = 166
	amd64Swapon          = 167
	amd64Swapoff         = 168
	amd64Reboot          = 169
	amd64Iopl            = 172
	amd64Ioperm          = 173
	amd64InitModule      = 175
	amd64DeleteModule    = 176
	amd64Setxattr        = 188
	amd64Lsetxattr       = 189
	amd64Removexattr     = 197
	amd64Lremovexattr    = 198
	amd64Utimes          = 235
	amd64KexecLoad       = 246
	amd64AddKey          = 248
	amd64RequestKey      = 249
	amd64Keyctl          = 250
	amd64Fchownat        = 260
	amd64Futimesat       = 261
	amd64Fchmodat        = 268
	amd64Unshare         = 272
	amd64Utimensat       = 280
	amd64Accept4         = 288
	amd64PerfEventOpen   = 298
	amd64Setns           = 308
	amd64ProcessVMReadv  = 310
	amd64ProcessVMWrite  = 311
	amd64Kcmp            = 312
	amd64FinitModule     = 313
	amd64Seccomp         = 317
	amd64KexecFileLoad   = 320
	amd64Bpf             = 321
	amd64Execveat        = 322
	amd64Userfaultfd     = 323
)

var amd64 = arch{
	auditArch: amd64AuditArch, x32Bit: amd64X32Bit, seccomp: amd64Seccomp,
	socketpair: amd64Socketpair, clone: amd64Clone, clone3: sysClone3, chroot: amd64Chroot,
	ioctl: amd64Ioctl, prlimit64: amd64Prlimit64,
	network: []uint32{amd64Socket, amd64Connect, amd64Bind, amd64Listen, amd64Accept, amd64Accept4, sysIoUringSetup},
	exec:    []uint32{amd64Execve, amd64Execveat, amd64Fork, amd64Vfork},
	trace:   []uint32{amd64Ptrace, amd64ProcessVMReadv, amd64ProcessVMWrite, sysPidfdGetfd, sysProcessMadvise, amd64Kcmp},
	mount:   append([]uint32{amd64Mount, amd64Umount2, amd64PivotRoot, amd64Unshare, amd64Setns}, mountAPI...),
	kernel: append([]uint32{
		amd64Bpf, amd64PerfEventOpen, amd64Userfaultfd,
		amd64Keyctl, amd64AddKey, amd64RequestKey,
		amd64InitModule, amd64FinitModule, amd64DeleteModule,
		amd64KexecLoad, amd64KexecFileLoad,
		amd64Reboot, amd64Swapon, amd64Swapoff, amd64Syslog, amd64Acct,
		amd64Iopl, amd64Ioperm,
	}, ioUring...),
	gaps: append([]uint32{
		amd64Chmod, amd64Fchmodat, amd64Chown, amd64Lchown, amd64Fchownat,
		amd64Utime, amd64Utimes, amd64Futimesat, amd64Utimensat,
		amd64Setxattr, amd64Lsetxattr, amd64Removexattr, amd64Lremovexattr,
		amd64Fchmod, amd64Fchown, amd64Fsetxattr, amd64Fremovexattr,
		amd64Keyctl, amd64AddKey, amd64RequestKey,
		amd64Shmget, amd64Shmat, amd64Shmctl, amd64Shmdt,
		amd64Semget, amd64Semop, amd64Semctl, amd64Semtimedop,
		amd64Msgget, amd64Msgsnd, amd64Msgrcv, amd64Msgctl,
		amd64InotifyAddWatch, amd64FanotifyInit, amd64FanotifyMark,
	}, gaps...),
}
