package sandbox

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// run runs prog, as seccomp would, on the call nr of audit architecture
// auditArch with args, and returns the action. It knows only the opcodes
// program uses, and fails t on any other, on a jump out of the program,
// on a load outside seccomp_data, and on a program that ends without
// returning.
func run(t *testing.T, prog []Insn, auditArch, nr uint32, args ...uint64) uint32 {
	t.Helper()
	var data [64]byte // struct seccomp_data
	binary.LittleEndian.PutUint32(data[dataNr:], nr)
	binary.LittleEndian.PutUint32(data[dataArch:], auditArch)
	for i, a := range args {
		binary.LittleEndian.PutUint64(data[dataArgs+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); {
		in := prog[pc]
		next := pc + 1
		switch in.Code {
		case bpfLdWAbs:
			if in.K%4 != 0 || in.K+4 > uint32(len(data)) {
				t.Fatalf("pc %d: load at offset %d", pc, in.K)
			}
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case bpfJeqK, bpfJgeK, bpfJsetK:
			var taken bool
			switch in.Code {
			case bpfJeqK:
				taken = acc == in.K
			case bpfJgeK:
				taken = acc >= in.K
			default:
				taken = acc&in.K != 0
			}
			if taken {
				next += int(in.Jt)
			} else {
				next += int(in.Jf)
			}
			if next >= len(prog) {
				t.Fatalf("pc %d: jump to %d, past the program's %d instructions", pc, next, len(prog))
			}
		case bpfRetK:
			return in.K
		default:
			t.Fatalf("pc %d: opcode %#x", pc, in.Code)
		}
		pc = next
	}
	t.Fatalf("the program ends without returning")
	return 0
}

// actionName names a seccomp action for messages.
func actionName(action uint32) string {
	switch action {
	case retAllow:
		return "ALLOW"
	case retErrno | errnoEPERM:
		return "ERRNO(EPERM)"
	case retErrno | errnoENOSYS:
		return "ERRNO(ENOSYS)"
	}
	return fmt.Sprintf("%#x", action)
}

const (
	allow  = retAllow
	eperm  = retErrno | errnoEPERM
	enosys = retErrno | errnoENOSYS
)

// The flags, families and types the calls below are made with.
const (
	afInet    = 2
	afNetlink = 16
	sockDgram = 2
	sockRaw   = 3
	sockRDM   = 4

	cloneVM, cloneFS, cloneFiles, cloneSighand = 0x100, 0x200, 0x400, 0x800
	cloneVfork, cloneSysvsem                   = 0x4000, 0x40000
	sigchld                                    = 17

	// goThread are the flags the Go runtime makes a thread with.
	goThread = cloneVM | cloneFS | cloneFiles | cloneSighand | cloneSysvsem | cloneThread
)

// call is a system call as a test makes it: its name, number and
// arguments.
type call struct {
	name string
	nr   uint32
	args []uint64
}

func (c call) String() string { return fmt.Sprintf("%s%v", c.name, c.args) }

// spec is what a test expects of one architecture's program: the calls
// each group denies by name, each with its number there, and calls every
// program must allow.
type spec struct {
	arch    *arch
	nums    map[string]uint32 // every call the groups' documentation names that this architecture has
	foreign uint32            // another architecture's audit number
	allowed []call
}

// groupCalls are the calls each group's documentation lists as denied
// outright (EPERM), whatever their arguments.
var groupCalls = map[Group][]string{
	Network: {"socket", "connect", "bind", "listen", "accept", "accept4", "io_uring_setup"},
	Exec:    {"execve", "execveat", "fork", "vfork"},
	Trace:   {"ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd", "kcmp"},
	Mount: {"mount", "umount2", "pivot_root", "unshare", "setns", "open_tree", "open_tree_attr", "move_mount",
		"fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr"},
	Kernel: {"bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
		"keyctl", "add_key", "request_key", "init_module", "finit_module", "delete_module", "kexec_load",
		"kexec_file_load", "reboot", "swapon", "swapoff", "syslog", "acct", "iopl", "ioperm"},
	LandlockGaps: {"chmod", "fchmodat", "fchmodat2", "chown", "lchown", "fchownat", "utime", "utimes", "futimesat",
		"utimensat", "setxattr", "lsetxattr", "removexattr", "lremovexattr", "setxattrat", "removexattrat", "file_setattr",
		"fchmod", "fchown", "fsetxattr", "fremovexattr", "keyctl", "add_key", "request_key",
		"shmget", "shmat", "shmctl", "shmdt", "semget", "semop", "semctl", "semtimedop",
		"msgget", "msgsnd", "msgrcv", "msgctl", "inotify_add_watch", "fanotify_init", "fanotify_mark"},
	Chroot: {"chroot"},
}

// common are the calls numbered alike on both architectures.
var common = map[string]uint32{
	"io_uring_setup": sysIoUringSetup, "io_uring_enter": sysIoUringEnter, "io_uring_register": sysIoUringRegister,
	"open_tree": sysOpenTree, "move_mount": sysMoveMount, "fsopen": sysFsopen, "fsconfig": sysFsconfig,
	"fsmount": sysFsmount, "fspick": sysFspick, "clone3": sysClone3, "pidfd_getfd": sysPidfdGetfd,
	"process_madvise": sysProcessMadvise, "mount_setattr": sysMountSetattr, "open_tree_attr": sysOpenTreeAttr,
	"fchmodat2": sysFchmodat2, "setxattrat": sysSetxattrat, "removexattrat": sysRemovexattrat, "file_setattr": sysFileSetattr,
}

func with(m map[string]uint32) map[string]uint32 {
	for k, v := range common {
		m[k] = v
	}
	return m
}

// The numbers of calls every program must allow, which the tables do not
// name.
const (
	amd64Read, amd64Write, amd64Close, amd64Mmap, amd64RtSigreturn = 0, 1, 3, 9, 15
	amd64Madvise, amd64Getpid, amd64Sendto, amd64Sendmsg           = 28, 39, 44, 46
	amd64Futex, amd64ExitGroup                                     = 202, 231
	amd64Openat, amd64EpollPwait, amd64SchedYield                  = 257, 281, 24

	arm64Close, arm64Read, arm64Write                        = 57, 63, 64
	arm64Openat, arm64EpollPwait, arm64ExitGroup, arm64Futex = 56, 22, 94, 98
	arm64SchedYield, arm64RtSigreturn, arm64Getpid           = 124, 139, 172
	arm64Sendto, arm64Sendmsg, arm64Mmap, arm64Madvise       = 206, 211, 222, 233
)

var specs = map[string]spec{
	"amd64": {
		arch: &amd64,
		nums: with(map[string]uint32{
			"socket": amd64Socket, "connect": amd64Connect, "bind": amd64Bind, "listen": amd64Listen,
			"accept": amd64Accept, "accept4": amd64Accept4, "socketpair": amd64Socketpair,
			"execve": amd64Execve, "execveat": amd64Execveat, "chroot": amd64Chroot,
			"clone": amd64Clone, "fork": amd64Fork, "vfork": amd64Vfork,
			"ptrace": amd64Ptrace, "process_vm_readv": amd64ProcessVMReadv, "process_vm_writev": amd64ProcessVMWrite, "kcmp": amd64Kcmp,
			"mount": amd64Mount, "umount2": amd64Umount2, "pivot_root": amd64PivotRoot, "unshare": amd64Unshare, "setns": amd64Setns,
			"bpf": amd64Bpf, "perf_event_open": amd64PerfEventOpen, "userfaultfd": amd64Userfaultfd,
			"keyctl": amd64Keyctl, "add_key": amd64AddKey, "request_key": amd64RequestKey,
			"init_module": amd64InitModule, "finit_module": amd64FinitModule, "delete_module": amd64DeleteModule,
			"kexec_load": amd64KexecLoad, "kexec_file_load": amd64KexecFileLoad, "reboot": amd64Reboot,
			"swapon": amd64Swapon, "swapoff": amd64Swapoff, "syslog": amd64Syslog, "acct": amd64Acct,
			"iopl": amd64Iopl, "ioperm": amd64Ioperm,
			"fchmod": amd64Fchmod, "fchown": amd64Fchown, "fsetxattr": amd64Fsetxattr, "fremovexattr": amd64Fremovexattr,
			"shmget": amd64Shmget, "shmat": amd64Shmat, "shmctl": amd64Shmctl, "shmdt": amd64Shmdt,
			"semget": amd64Semget, "semop": amd64Semop, "semctl": amd64Semctl, "semtimedop": amd64Semtimedop,
			"msgget": amd64Msgget, "msgsnd": amd64Msgsnd, "msgrcv": amd64Msgrcv, "msgctl": amd64Msgctl,
			"inotify_add_watch": amd64InotifyAddWatch, "fanotify_init": amd64FanotifyInit, "fanotify_mark": amd64FanotifyMark,
			"ioctl": amd64Ioctl, "prlimit64": amd64Prlimit64,
			"chmod": amd64Chmod, "fchmodat": amd64Fchmodat, "chown": amd64Chown, "lchown": amd64Lchown,
			"fchownat": amd64Fchownat, "utime": amd64Utime, "utimes": amd64Utimes, "futimesat": amd64Futimesat,
			"utimensat": amd64Utimensat, "setxattr": amd64Setxattr, "lsetxattr": amd64Lsetxattr,
			"removexattr": amd64Removexattr, "lremovexattr": amd64Lremovexattr,
		}),
		foreign: 0x40000003, // AUDIT_ARCH_I386
		allowed: []call{
			{"read", amd64Read, nil}, {"write", amd64Write, nil}, {"close", amd64Close, nil},
			{"mmap", amd64Mmap, nil}, {"rt_sigreturn", amd64RtSigreturn, nil}, {"madvise", amd64Madvise, nil},
			{"getpid", amd64Getpid, nil}, {"sendto", amd64Sendto, nil}, {"sendmsg", amd64Sendmsg, nil},
			{"futex", amd64Futex, nil},
			{"exit_group", amd64ExitGroup, nil}, {"openat", amd64Openat, nil}, {"epoll_pwait", amd64EpollPwait, nil},
			{"sched_yield", amd64SchedYield, nil},
		},
	},
	"arm64": {
		arch: &arm64,
		nums: with(map[string]uint32{
			"socket": arm64Socket, "connect": arm64Connect, "bind": arm64Bind, "listen": arm64Listen,
			"accept": arm64Accept, "accept4": arm64Accept4, "socketpair": arm64Socketpair,
			"execve": arm64Execve, "execveat": arm64Execveat, "clone": arm64Clone, "chroot": arm64Chroot,
			"ptrace": arm64Ptrace, "process_vm_readv": arm64ProcessVMReadv, "process_vm_writev": arm64ProcessVMWrite, "kcmp": arm64Kcmp,
			"mount": arm64Mount, "umount2": arm64Umount2, "pivot_root": arm64PivotRoot, "unshare": arm64Unshare, "setns": arm64Setns,
			"bpf": arm64Bpf, "perf_event_open": arm64PerfEventOpen, "userfaultfd": arm64Userfaultfd,
			"keyctl": arm64Keyctl, "add_key": arm64AddKey, "request_key": arm64RequestKey,
			"init_module": arm64InitModule, "finit_module": arm64FinitModule, "delete_module": arm64DeleteModule,
			"kexec_load": arm64KexecLoad, "kexec_file_load": arm64KexecFileLoad, "reboot": arm64Reboot,
			"swapon": arm64Swapon, "swapoff": arm64Swapoff, "syslog": arm64Syslog, "acct": arm64Acct,
			"fchmodat": arm64Fchmodat, "fchownat": arm64Fchownat, "utimensat": arm64Utimensat,
			"fchmod": arm64Fchmod, "fchown": arm64Fchown, "fsetxattr": arm64Fsetxattr, "fremovexattr": arm64Fremovexattr,
			"shmget": arm64Shmget, "shmat": arm64Shmat, "shmctl": arm64Shmctl, "shmdt": arm64Shmdt,
			"semget": arm64Semget, "semop": arm64Semop, "semctl": arm64Semctl, "semtimedop": arm64Semtimedop,
			"msgget": arm64Msgget, "msgsnd": arm64Msgsnd, "msgrcv": arm64Msgrcv, "msgctl": arm64Msgctl,
			"inotify_add_watch": arm64InotifyAddWatch, "fanotify_init": arm64FanotifyInit, "fanotify_mark": arm64FanotifyMark,
			"ioctl": arm64Ioctl, "prlimit64": arm64Prlimit64,
			"setxattr": arm64Setxattr, "lsetxattr": arm64Lsetxattr, "removexattr": arm64Removexattr, "lremovexattr": arm64Lremovexattr,
		}),
		foreign: 0x40000028, // AUDIT_ARCH_ARM
		allowed: []call{
			{"read", arm64Read, nil}, {"write", arm64Write, nil}, {"close", arm64Close, nil},
			{"mmap", arm64Mmap, nil}, {"rt_sigreturn", arm64RtSigreturn, nil}, {"madvise", arm64Madvise, nil},
			{"getpid", arm64Getpid, nil}, {"sendto", arm64Sendto, nil}, {"sendmsg", arm64Sendmsg, nil},
			{"futex", arm64Futex, nil},
			{"exit_group", arm64ExitGroup, nil}, {"openat", arm64Openat, nil}, {"epoll_pwait", arm64EpollPwait, nil},
			{"sched_yield", arm64SchedYield, nil},
		},
	},
}

// expectations returns the action s's program for groups must take on
// each call: those its groups deny by their arguments, both ways, and by
// name, and every other call the groups' documentation names, allowed.
func expectations(s spec, groups Group) map[string]struct {
	c    call
	want uint32
} {
	n := s.nums
	out := map[string]struct {
		c    call
		want uint32
	}{}
	set := func(c call, want uint32) {
		out[c.String()] = struct {
			c    call
			want uint32
		}{c, want}
	}
	denied := map[string]bool{}
	for g, names := range groupCalls {
		for _, name := range names {
			if groups&g != 0 {
				denied[name] = true
			}
		}
	}
	for _, names := range groupCalls {
		for _, name := range names {
			nr, ok := n[name]
			if !ok {
				continue // not on this architecture, such as iopl on arm64
			}
			want := uint32(allow)
			if denied[name] {
				want = eperm
			}
			set(call{name, nr, nil}, want)
		}
	}
	for _, c := range s.allowed {
		set(c, allow)
	}
	ifGroup := func(g Group, yes uint32) uint32 {
		if groups&g != 0 {
			return yes
		}
		return allow
	}
	// socketpair: a Unix stream or seqpacket pair only; any other family
	// is a network, and a datagram socket reaches sockets by path.
	for _, typ := range []uint64{sockStream, sockStream | sockCloexec, sockStream | sockNonblock | sockCloexec, sockSeqpacket | sockCloexec} {
		set(call{"socketpair", n["socketpair"], []uint64{afUnix, typ}}, allow)
	}
	for _, typ := range []uint64{sockDgram, sockDgram | sockCloexec, sockRaw, sockRDM, 0, sockStream | 0x100000, 1<<32 | sockDgram} {
		set(call{"socketpair", n["socketpair"], []uint64{afUnix, typ}}, ifGroup(Network, eperm))
	}
	set(call{"socketpair", n["socketpair"], []uint64{afInet, sockStream}}, ifGroup(Network, eperm))
	set(call{"socketpair", n["socketpair"], []uint64{afNetlink, sockRaw}}, ifGroup(Network, eperm))
	// clone: Go's threads always; a process never under Exec; a
	// namespace never under Mount. clone3: neither under either.
	execOrMount := func(yes uint32) uint32 {
		if groups&(Exec|Mount) != 0 {
			return yes
		}
		return allow
	}
	set(call{"clone", n["clone"], []uint64{goThread}}, allow)
	set(call{"clone", n["clone"], []uint64{goThread | 1<<32}}, allow)
	set(call{"clone", n["clone"], []uint64{sigchld}}, ifGroup(Exec, eperm))
	set(call{"clone", n["clone"], []uint64{cloneVM | cloneVfork | sigchld}}, ifGroup(Exec, eperm))
	set(call{"clone", n["clone"], []uint64{goThread&^cloneThread | 1<<32}}, ifGroup(Exec, eperm))
	set(call{"clone", n["clone"], []uint64{cloneNewUser | sigchld}}, execOrMount(eperm))
	set(call{"clone", n["clone"], []uint64{goThread | cloneNewNet}}, ifGroup(Mount, eperm))
	set(call{"clone3", n["clone3"], nil}, execOrMount(enosys))
	// ioctl: never TIOCSTI or TIOCLINUX, whatever the groups; any other
	// request always.
	set(call{"ioctl", n["ioctl"], []uint64{0, tiocsti}}, eperm)
	set(call{"ioctl", n["ioctl"], []uint64{0, 1<<32 | tiocsti}}, eperm)
	set(call{"ioctl", n["ioctl"], []uint64{0, tioclinux}}, eperm)
	set(call{"ioctl", n["ioctl"], []uint64{0, 0x5401}}, allow) // TCGETS
	set(call{"ioctl", n["ioctl"], []uint64{0, 0x5413}}, allow) // TIOCGWINSZ
	// prlimit64: on itself always; on another process never under Trace.
	set(call{"prlimit64", n["prlimit64"], []uint64{0}}, allow)
	set(call{"prlimit64", n["prlimit64"], []uint64{1}}, ifGroup(Trace, eperm))
	set(call{"prlimit64", n["prlimit64"], []uint64{12345}}, ifGroup(Trace, eperm))
	return out
}

// TestProgram runs the program of every architecture, for every
// combination of groups, on the calls each group denies and on calls
// every program must allow.
func TestProgram(t *testing.T) {
	for name, s := range specs {
		t.Run(name, func(t *testing.T) {
			for i := range 1 << 7 { // every combination of the seven groups
				groups := Group(i&0x1f) | Group(i>>5&1)*LandlockGaps | Group(i>>6&1)*Chroot
				prog := program(s.arch, groups)
				if len(prog) > 4096 { // BPF_MAXINSNS
					t.Fatalf("groups %#x: %d instructions", groups, len(prog))
				}
				for key, e := range expectations(s, groups) {
					if got := run(t, prog, s.arch.auditArch, e.c.nr, e.c.args...); got != e.want {
						t.Errorf("groups %#x: %s: %s, want %s", groups, key, actionName(got), actionName(e.want))
					}
				}
				// Another architecture's interface is denied whole, even
				// where the number is that of an allowed call.
				if got := run(t, prog, s.foreign, 0); got != eperm {
					t.Errorf("groups %#x: a call of audit architecture %#x: %s", groups, s.foreign, actionName(got))
				}
				if s.arch.x32Bit != 0 {
					if got := run(t, prog, s.arch.auditArch, s.arch.x32Bit|amd64Read); got != eperm {
						t.Errorf("groups %#x: x32 read: %s", groups, actionName(got))
					}
				}
			}
		})
	}
}

// TestArchs checks that every architecture the program is written for is
// tested.
func TestArchs(t *testing.T) {
	for name, a := range archs {
		if s, ok := specs[name]; !ok || s.arch != a {
			t.Errorf("%s: not tested", name)
		}
	}
}
