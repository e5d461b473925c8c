package forkserver

// PathPolicy says which files a child may reach: everything outside the
// paths it lists is denied, reading and listing included. Linux enforces
// it with Landlock (Linux 6.2 or later, Landlock ABI 3), which needs no
// privilege, and a seccomp filter (amd64 and arm64). A path is a
// directory, which covers everything beneath it, or a single file, and is
// resolved by the server at each Fork, outside any Chroot; one that does
// not exist fails the Fork.
//
// The policy covers opening, executing, creating, removing, renaming,
// linking and truncating files and, where the kernel has Landlock ABI 6
// (Linux 6.12), connecting to abstract Unix sockets and signalling
// processes outside the policy. What Landlock does not cover, the child's
// filter denies outright, inside the paths too:
//   - changing a file's mode, owner, times or extended attributes, by
//     path or through a descriptor (chmod, fchmod, fchmodat, fchmodat2,
//     chown, fchown, lchown, fchownat, utime, utimes, futimesat,
//     utimensat, setxattr, fsetxattr, lsetxattr, removexattr,
//     fremovexattr, lremovexattr, setxattrat, removexattrat,
//     file_setattr): a file the child may only read could otherwise be
//     opened and made writable;
//   - the keyrings (keyctl, add_key, request_key), which every process of
//     a user shares;
//   - System V IPC (shmget, shmat, shmctl, shmdt, semget, semop, semctl,
//     semtimedop, msgget, msgsnd, msgrcv, msgctl), whose objects no path
//     names;
//   - inotify and fanotify watches (inotify_add_watch, fanotify_init,
//     fanotify_mark), which would tell what happens outside the paths.
//
// The policy does not cover descriptors the child already holds (its
// socket, its server connection, Files, standard descriptors), nor
// connecting to a Unix socket by its path (deny socket with
// [SyscallsNetwork] for that), and it does not hide metadata: stat,
// access and readlink still work on any path the child can name.
type PathPolicy struct {
	// ReadOnly are paths the child may read and execute, and list if
	// they are directories.
	ReadOnly []string

	// ReadWrite are paths the child may read, execute, list and write
	// too: create, remove, rename and link files and directories there,
	// and write to and truncate the files.
	ReadWrite []string
}

// SyscallGroup is a set of groups of system calls that a child is denied.
// A denied call fails with EPERM (clone3 with ENOSYS, so that the C library
// falls back to clone), so that Go code sees an error rather than a crash;
// every other call is allowed, but for two requests of ioctl that every
// filter denies, whatever the groups: TIOCSTI and TIOCLINUX, with which a
// child sharing the program's terminal would type commands into the
// user's shell. The filter is written for the amd64 and
// arm64 interfaces: on amd64 it also denies every x32 and 32-bit call.
// Elsewhere, a Fork that asks for any group fails with an error matching
// errors.ErrUnsupported.
type SyscallGroup uint32

// The groups of system calls a child can be denied, each with the calls it
// covers.
const (
	// SyscallsNetwork: socket, for every family, AF_UNIX included (a
	// Unix socket of another program is a way out too); socketpair but
	// for a Unix SOCK_STREAM or SOCK_SEQPACKET pair, which can reach
	// nothing but each other (a datagram socket could send to any
	// socket it names by path); connect, bind, listen, accept and
	// accept4 on any socket (the seccomp filter cannot see a socket's
	// family); and io_uring_setup, whose requests could open
	// connections the filter cannot see. Sockets the child already
	// holds keep working, its Conn included, and so does a new stream
	// or seqpacket socketpair: a connected stream socket refuses an
	// address to send to, and a seqpacket one ignores it. An
	// unconnected datagram socket given to the child in Files can
	// still send to any socket it names by path.
	SyscallsNetwork SyscallGroup = 1 << iota

	// SyscallsExec: execve and execveat, and every way of creating a
	// process: fork and vfork (amd64), clone but for a thread (with
	// CLONE_THREAD, as the Go runtime makes its threads), and clone3
	// (ENOSYS). So nothing the child starts can outlive it, nor escape
	// its limits. The child can still fork children through its Server
	// connection: those are created by the server, and a child forked
	// through that connection inherits the child's groups; Exec through
	// it is refused. Exec refuses SyscallsExec: see [Server.Exec].
	SyscallsExec

	// SyscallsTrace: ptrace, process_vm_readv, process_vm_writev,
	// process_madvise, pidfd_getfd and kcmp, which read, change or compare
	// another process's memory or descriptors, and prlimit64 on any
	// process but the child itself, which would change another process's
	// limits.
	SyscallsTrace

	// SyscallsMount: mount, umount2, pivot_root, unshare, setns, the
	// mount API (open_tree, open_tree_attr, move_mount, fsopen, fsconfig,
	// fsmount, fspick, mount_setattr), clone with any namespace flag, and
	// clone3, whose flags the filter cannot see (ENOSYS, as under
	// SyscallsExec; threads are still made with clone). Through its
	// Server connection, such a child cannot ask for Namespaces it does
	// not have either.
	SyscallsMount

	// SyscallsKernel: kernel surfaces a parser never needs: bpf,
	// perf_event_open, userfaultfd, io_uring_setup, io_uring_enter,
	// io_uring_register, keyctl, add_key, request_key, init_module,
	// finit_module, delete_module, kexec_load, kexec_file_load, reboot,
	// swapon, swapoff, syslog, acct, and on amd64 iopl and ioperm.
	SyscallsKernel

	allSyscallGroups = SyscallsNetwork | SyscallsExec | SyscallsTrace | SyscallsMount | SyscallsKernel
)
