package sandbox

// The seccomp program: classic BPF, assembled here for an architecture's
// table (see arch.go), which the kernel runs on every system call of
// every thread of the process that installs it.

// Group is a set of groups of system calls to deny. The bits of Network
// to Kernel are those of the root package's SyscallGroup constants, which
// document each group.
type Group uint32

// The groups of system calls the program can deny.
const (
	Network Group = 1 << iota
	Exec
	Trace
	Mount
	Kernel

	// LandlockGaps is no SyscallGroup of the root package: it denies, to
	// a process in a Landlock domain, the calls that reach what Landlock
	// does not cover. Those are the calls that change a file's metadata,
	// by path or by descriptor (chmod, fchmod, fchmodat, fchmodat2,
	// chown, fchown, lchown, fchownat, utime, utimes, futimesat,
	// utimensat, setxattr, fsetxattr, lsetxattr, removexattr,
	// fremovexattr, lremovexattr, setxattrat, removexattrat,
	// file_setattr): a read-only file can be opened, and its mode
	// changed through the descriptor; the keyrings (keyctl, add_key,
	// request_key), which a user's processes share; System V IPC (shm*,
	// sem*, msg*), whose objects no path names; and the watches of
	// inotify and fanotify, which would list what lies outside.
	LandlockGaps Group = 1 << 31

	// Chroot is no SyscallGroup of the root package either: it denies
	// chroot to a confined child that keeps CAP_SYS_CHROOT to enter its
	// Attr.Chroot, so that the capability cannot take it out again.
	Chroot Group = 1 << 30
)

// Insn is one instruction of a classic BPF program, laid out as the
// kernel's struct sock_filter.
type Insn struct {
	Code   uint16
	Jt, Jf uint8
	K      uint32
}

// The instructions the program uses, by their opcode: load a 32-bit word
// of struct seccomp_data at an absolute offset; jump on the accumulator's
// equality to, order against or common bits with a constant; return a
// constant action.
const (
	bpfLdWAbs = 0x00 | 0x00 | 0x20 // BPF_LD | BPF_W | BPF_ABS
	bpfJeqK   = 0x05 | 0x10 | 0x00 // BPF_JMP | BPF_JEQ | BPF_K
	bpfJgeK   = 0x05 | 0x30 | 0x00 // BPF_JMP | BPF_JGE | BPF_K
	bpfJsetK  = 0x05 | 0x40 | 0x00 // BPF_JMP | BPF_JSET | BPF_K
	bpfRetK   = 0x06 | 0x00        // BPF_RET | BPF_K
)

// seccomp's actions, and the errors a denied call returns, as Linux
// numbers them on every architecture the tables cover.
const (
	retAllow = 0x7fff0000 // SECCOMP_RET_ALLOW
	retErrno = 0x00050000 // SECCOMP_RET_ERRNO, with the error in the low 16 bits

	errnoEPERM  = 1
	errnoENOSYS = 38
)

// Offsets in struct seccomp_data: the call's number, its audit
// architecture, then the instruction pointer and six 64-bit arguments,
// whose low half comes first on the little-endian systems the tables
// cover.
const (
	dataNr   = 0
	dataArch = 4
	dataArgs = 16
)

// argLow returns the offset of the low 32 bits of argument i, which is
// all the kernel reads of an int argument, and of clone's flags.
func argLow(i int) uint32 { return dataArgs + 8*uint32(i) }

// argHigh returns the offset of the high 32 bits of argument i, which a
// pointer has.
func argHigh(i int) uint32 { return argLow(i) + 4 }

// The flags of clone(2) the program looks at. CLONE_NEWTIME shares its
// bit with the exit signal there, and clone cannot ask for it.
const (
	cloneThread    = 0x00010000
	cloneNewNS     = 0x00020000
	cloneNewCgroup = 0x02000000
	cloneNewUTS    = 0x04000000
	cloneNewIPC    = 0x08000000
	cloneNewUser   = 0x10000000
	cloneNewPID    = 0x20000000
	cloneNewNet    = 0x40000000

	cloneNamespaces = cloneNewNS | cloneNewCgroup | cloneNewUTS | cloneNewIPC | cloneNewUser | cloneNewPID | cloneNewNet
)

// The requests of ioctl(2) the program denies.
const (
	tiocsti   = 0x5412
	tioclinux = 0x541c
)

// The family and types of socketpair(2) the program looks at.
const (
	afUnix        = 1
	sockStream    = 1
	sockSeqpacket = 5
	sockNonblock  = 0x800
	sockCloexec   = 0x80000
)

func stmt(code uint16, k uint32) Insn { return Insn{Code: code, K: k} }

func jump(code uint16, k uint32, jt, jf uint8) Insn { return Insn{Code: code, Jt: jt, Jf: jf, K: k} }

func deny(errno uint32) Insn { return stmt(bpfRetK, retErrno|errno) }

// check is a test of one 32-bit word of a call's seccomp_data: the call
// is denied with EPERM when the jump op with k takes the branch denyIf
// says.
type check struct {
	offset uint32
	op     uint16
	k      uint32
	denyIf bool
}

// program assembles the filter that denies groups on a. Each rule jumps
// only within itself, so rules are laid end to end: the accumulator holds
// the call's number between them.
func program(a *arch, groups Group) []Insn {
	prog := []Insn{
		stmt(bpfLdWAbs, dataArch),
		jump(bpfJeqK, a.auditArch, 1, 0),
		deny(errnoEPERM), // another architecture's interface, such as 32-bit calls on amd64
		stmt(bpfLdWAbs, dataNr),
	}
	if a.x32Bit != 0 {
		prog = append(prog, jump(bpfJgeK, a.x32Bit, 0, 1), deny(errnoEPERM))
	}
	// argRule denies nr with EPERM when any of checks says so.
	argRule := func(nr uint32, checks ...check) {
		if len(checks) == 0 {
			return
		}
		prog = append(prog, jump(bpfJeqK, nr, 0, uint8(3*len(checks)+1)))
		for _, c := range checks {
			var jt, jf uint8 = 1, 0 // to the denial when the test fails
			if c.denyIf {
				jt, jf = 0, 1
			}
			prog = append(prog, stmt(bpfLdWAbs, c.offset), jump(c.op, c.k, jt, jf), deny(errnoEPERM))
		}
		prog = append(prog, stmt(bpfLdWAbs, dataNr))
	}
	denyCall := func(nr, errno uint32) {
		prog = append(prog, jump(bpfJeqK, nr, 0, 1), deny(errno))
	}
	if groups&Network != 0 {
		// A pair of Unix stream or seqpacket sockets, which can reach
		// nothing but each other: a stream socket refuses an address
		// (EISCONN) and a seqpacket one ignores it, where a datagram
		// socket would send to any socket it names by path.
		argRule(a.socketpair,
			check{argLow(0), bpfJeqK, afUnix, false},
			check{argLow(1), bpfJsetK, ^uint32(sockSeqpacket | sockNonblock | sockCloexec), true},
			check{argLow(1), bpfJsetK, sockStream, false}) // of the types left, 1 and 5
	}
	var clone []check
	if groups&Exec != 0 {
		// A thread of this process, which ends with it, and nothing
		// else: no process that could outlive it.
		clone = append(clone, check{argLow(0), bpfJsetK, cloneThread, false})
	}
	if groups&Mount != 0 {
		clone = append(clone, check{argLow(0), bpfJsetK, cloneNamespaces, true})
	}
	argRule(a.clone, clone...)
	if groups&(Exec|Mount) != 0 {
		// Its flags are out of the filter's sight; ENOSYS makes the C
		// library fall back to clone.
		denyCall(a.clone3, errnoENOSYS)
	}
	if groups&Trace != 0 {
		// prlimit64 on itself only: another process's limits are
		// another process's to set.
		argRule(a.prlimit64, check{argLow(0), bpfJeqK, 0, false})
	}
	// Whatever the groups: no characters pushed into the input of a
	// terminal the child shares with the program's shell, which would run
	// them as the user (TIOCSTI), nor a console's selection pasted there
	// (TIOCLINUX).
	argRule(a.ioctl,
		check{argLow(1), bpfJeqK, tiocsti, true},
		check{argLow(1), bpfJeqK, tioclinux, true})
	for _, g := range []Group{Network, Exec, Trace, Mount, Kernel, LandlockGaps, Chroot} {
		if groups&g != 0 {
			for _, nr := range a.denied(g) {
				denyCall(nr, errnoEPERM)
			}
		}
	}
	return append(prog, stmt(bpfRetK, retAllow))
}
